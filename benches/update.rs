//! Update-path benchmarks: the bucketing function, and verifying + parsing a channel state
//! and a 50-artifact release manifest (no network).
//!
//! Each figure has its ceiling or peer measured in the same run (scripts/bench.sh puts them
//! side by side): `bucket()` beside one bare SHA-256 of the same bytes (the hash it is made
//! of) and Yggdrasil's `normalized_hash` (Unleash's bucketing); the verify + parse beside
//! its bare cryptography and parsing: two ed25519 verifies of the same signed messages, the
//! SHA-256 of the manifest envelope and serde_json of the same two payloads into the same
//! types, with no envelope, no checks.

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use railgun_core::identity::bucket;
use railgun_core::trust::{
    pae, Envelope, KeyAlgorithm, PrivateKey, SignedDocument, TrustedKeys, PAYLOAD_CHANNEL,
    PAYLOAD_RELEASE,
};
use railgun_core::update::{
    check_digest, verify_channel_state, verify_manifest, Arch, Artifact, ChannelState, Format,
    Platform, ReleaseManifest,
};
use serde_json::json;
use sha2::{Digest, Sha256};

fn bench_bucket(c: &mut Criterion) {
    let (seed, id) = ("rail-gun:stable:0.2.0", "3f2a9c0e5b7d4e1f8a6c2b9d0e4f7a1c");
    c.bench_function("bucket", |b| {
        b.iter(|| bucket(black_box(seed), black_box(id)))
    });
    // The one hash bucket() computes: SHA-256(seed ‖ 0x00 ‖ id), of bytes already joined.
    let joined = [seed.as_bytes(), &[0], id.as_bytes()].concat();
    c.bench_function("bucket ceiling: bare SHA-256 of the same bytes", |b| {
        b.iter(|| Sha256::digest(black_box(&joined)))
    });
    c.bench_function("bucket peer: Yggdrasil normalized_hash", |b| {
        b.iter(|| {
            unleash_yggdrasil::strategy_parsing::normalized_hash(
                black_box(seed),
                black_box(id),
                10_000,
                0,
            )
            .expect("hash")
        })
    });
}

fn manifest_50() -> ReleaseManifest {
    let platforms = [Platform::Linux, Platform::Darwin, Platform::Win32];
    let arches = [Arch::X64, Arch::Arm64, Arch::Ia32];
    let mut artifacts = Vec::new();
    'outer: for p in platforms {
        for a in arches {
            for f in Format::ALL {
                artifacts.push(Artifact {
                    platform: p,
                    arch: a,
                    format: *f,
                    url: format!(
                        "https://cdn.example.com/rail-gun/1.0.0/rail-gun-1.0.0-{p}-{a}.{f}"
                    ),
                    size: 123_456_789,
                    sha256: hex::encode(Sha256::digest(format!("{p}{a}{f}"))),
                    sigstore_bundle: Some(format!("rail-gun-1.0.0-{p}-{a}.{f}.sigstore.json")),
                });
                if artifacts.len() == 50 {
                    break 'outer;
                }
            }
        }
    }
    ReleaseManifest {
        schema: 1,
        app: "rail-gun".into(),
        version: "1.0.0".parse().expect("v"),
        channel: "stable".into(),
        released_at: "2026-06-01T00:00:00Z".parse().expect("t"),
        notes: "Bug fixes and performance improvements.".into(),
        artifacts,
        rollout: None,
        patches: Vec::new(),
    }
}

fn bench_verify(c: &mut Criterion) {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let keys = TrustedKeys::single(key.public_key().clone());
    let manifest = manifest_50();
    assert_eq!(manifest.artifacts.len(), 50);
    let manifest_env = Envelope::sign(
        PAYLOAD_RELEASE,
        &serde_json::to_vec(&manifest).expect("json"),
        &[&key],
    )
    .expect("sign")
    .to_json_bytes();
    let digest = hex::encode(Sha256::digest(&manifest_env));
    let state = json!({
        "schema": 1, "app": "rail-gun", "channel": "stable", "sequence": 42,
        "issuedAt": "2026-06-01T00:00:00Z", "expiresAt": "2026-06-08T00:00:00Z",
        "release": {"version": "1.0.0", "manifest": "../releases/1.0.0/manifest.json", "manifestSha256": digest},
        "rollout": {"percentage": 10.0, "status": "active"},
        "fallback": {"version": "0.9.0", "manifest": "../releases/0.9.0/manifest.json", "manifestSha256": "0".repeat(64)}
    });
    let state_payload = serde_json::to_vec(&state).expect("json");
    let state_env = Envelope::sign(PAYLOAD_CHANNEL, &state_payload, &[&key])
        .expect("sign")
        .to_json_bytes();
    let url = url::Url::parse("https://updates.example.com/rail-gun/releases/1.0.0/manifest.json")
        .expect("url");
    c.bench_function("verify+parse channel state and 50-artifact manifest", |b| {
        b.iter(|| {
            let s = verify_channel_state(black_box(&state_env), &keys).expect("state");
            check_digest(&manifest_env, &s.release.manifest_sha256, &url).expect("digest");
            verify_manifest(black_box(&manifest_env), &keys).expect("manifest")
        })
    });
    // The ceiling: the same cryptography and parsing, bare.
    let manifest_payload = serde_json::to_vec(&manifest).expect("json");
    let signed = |kind: &str, payload: &[u8]| {
        let msg = pae(kind, payload);
        let sig = key.sign(&msg).expect("sign");
        (msg, sig)
    };
    let (state_msg, state_sig) = signed(PAYLOAD_CHANNEL, &state_payload);
    let (manifest_msg, manifest_sig) = signed(PAYLOAD_RELEASE, &manifest_payload);
    let public = key.public_key();
    c.bench_function(
        "verify+parse ceiling: 2 bare ed25519 verifies, SHA-256, serde_json of the 2 payloads",
        |b| {
            b.iter(|| {
                public
                    .verify(black_box(&state_msg), &state_sig)
                    .expect("ok");
                let s: ChannelState =
                    serde_json::from_slice(black_box(&state_payload)).expect("state");
                black_box(Sha256::digest(black_box(&manifest_env)));
                public
                    .verify(black_box(&manifest_msg), &manifest_sig)
                    .expect("ok");
                let m: ReleaseManifest =
                    serde_json::from_slice(black_box(&manifest_payload)).expect("manifest");
                (s, m)
            })
        },
    );
}

fn bench_parts(c: &mut Criterion) {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let keys = TrustedKeys::single(key.public_key().clone());
    let manifest = manifest_50();
    let payload = serde_json::to_vec(&manifest).expect("json");
    // The exact message the DSSE verify hands to ring: PAE(type, payload).
    let msg = pae(PAYLOAD_RELEASE, &payload);
    let sig = key.sign(&msg).expect("sign");
    c.bench_function(
        &format!(
            "part: bare ring ed25519 verify {} B (manifest PAE)",
            msg.len()
        ),
        |b| b.iter(|| key.public_key().verify(black_box(&msg), &sig).expect("ok")),
    );
    let small = vec![b'x'; 600];
    let small_sig = key.sign(&small).expect("sign");
    c.bench_function(
        "part: bare ring ed25519 verify 600 B (channel-state size)",
        |b| {
            b.iter(|| {
                key.public_key()
                    .verify(black_box(&small), &small_sig)
                    .expect("ok")
            })
        },
    );
    let env = Envelope::sign(PAYLOAD_RELEASE, &payload, &[&key])
        .expect("sign")
        .to_json_bytes();
    c.bench_function(
        "part: DSSE verify of the manifest envelope (no parse)",
        |b| b.iter(|| keys.verify(black_box(&env), PAYLOAD_RELEASE).expect("ok")),
    );
    let url = url::Url::parse("https://updates.example.com/m.json").expect("url");
    let env_digest = hex::encode(Sha256::digest(&env));
    c.bench_function(
        &format!(
            "part: SHA-256 digest check of the {} B manifest envelope",
            env.len()
        ),
        |b| b.iter(|| check_digest(black_box(&env), &env_digest, &url).expect("ok")),
    );
    c.bench_function("part: parse+validate 50-artifact manifest", |b| {
        b.iter(|| ReleaseManifest::from_verified_payload(black_box(&payload)).expect("ok"))
    });
    c.bench_function("part: validate 50-artifact manifest (parsed)", |b| {
        b.iter(|| black_box(&manifest).validate().expect("ok"))
    });
}

criterion_group!(benches, bench_bucket, bench_verify, bench_parts);
criterion_main!(benches);
