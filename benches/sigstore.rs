//! Time to verify one real Sigstore bundle (offline, all checks) and to load the embedded
//! trust root. `cargo bench --bench sigstore`.
//!
//! The ceiling beside it (same run; sigstore-rs, the peer, pulls in OpenSSL-era dependencies
//! this workspace does not build): the signature checks one public-good `hashedrekord`
//! bundle needs, bare, with ring on messages of a certificate's size: four ECDSA P-256
//! verifies (the artifact signature, the SET, the SCT, the checkpoint) and one P-384 (the
//! leaf certificate by Fulcio's intermediate). The rest of a verify is parsing DER and JSON,
//! the inclusion proof's hashes and the policy checks.

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use railgun_core::trust::sigstore::{
    IdentityMatcher, IdentityPolicy, SigstoreVerifier, GITHUB_ACTIONS_ISSUER,
};
use ring::signature::{self, KeyPair};
use sha2::{Digest, Sha256};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/sigstore/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn verifier(identity: &str) -> SigstoreVerifier {
    SigstoreVerifier::public_good(IdentityPolicy {
        identity: IdentityMatcher::Exact(identity.into()),
        issuer: GITHUB_ACTIONS_ISSUER.into(),
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sigstore");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));

    let wheel_id =
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2";
    let v = verifier(wheel_id);
    let digest: [u8; 32] = Sha256::digest(data("rfc8785-0.1.2-py3-none-any.whl")).into();
    let bundle = data("rfc8785-0.1.2-py3-none-any.whl.sigstore.json");
    g.bench_function("verify_digest hashedrekord v0.2", |b| {
        b.iter(|| {
            v.verify_digest(black_box(&digest), black_box(&bundle))
                .unwrap()
        })
    });

    let cosign_id = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
    let v = verifier(cosign_id);
    let digest: [u8; 32] =
        hex::decode("c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172")
            .unwrap()
            .try_into()
            .unwrap();
    let bundle = data("cosign_bundle_v03.json");
    g.bench_function("verify_digest dsse v0.3", |b| {
        b.iter(|| {
            v.verify_digest(black_box(&digest), black_box(&bundle))
                .unwrap()
        })
    });

    let v2 = SigstoreVerifier::with_trusted_root_json(
        &data("trusted_root.STAGING.sigstore-python-test-assets.json"),
        IdentityPolicy {
            identity: IdentityMatcher::Exact("jku@goto.fi".into()),
            issuer: "https://github.com/login/oauth".into(),
        },
    )
    .unwrap();
    let digest: [u8; 32] = Sha256::digest(data("staging-rekor-v2.txt")).into();
    let bundle = data("staging-rekor-v2.txt.sigstore.json");
    g.bench_function("verify_digest rekor v2 + rfc3161", |b| {
        b.iter(|| {
            v2.verify_digest(black_box(&digest), black_box(&bundle))
                .unwrap()
        })
    });

    g.bench_function("load embedded trust root", |b| {
        b.iter(|| verifier(wheel_id))
    });

    let p256 = Ecdsa::new(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &signature::ECDSA_P256_SHA256_ASN1,
    );
    let p384 = Ecdsa::new(
        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        &signature::ECDSA_P384_SHA384_ASN1,
    );
    g.bench_function(
        "ceiling: 4 bare ECDSA P-256 + 1 P-384 verifies (ring)",
        |b| {
            b.iter(|| {
                for _ in 0..4 {
                    p256.verify();
                }
                p384.verify();
            })
        },
    );
    g.finish();
}

/// A ring ECDSA key and its signature of 1 000 bytes (about a certificate's TBS part).
struct Ecdsa {
    public: Vec<u8>,
    alg: &'static signature::EcdsaVerificationAlgorithm,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

impl Ecdsa {
    fn new(
        signing: &'static signature::EcdsaSigningAlgorithm,
        alg: &'static signature::EcdsaVerificationAlgorithm,
    ) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        let key = signature::EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap();
        let msg = vec![0x5a; 1000];
        let sig = key.sign(&rng, &msg).unwrap().as_ref().to_vec();
        Self {
            public: key.public_key().as_ref().to_vec(),
            alg,
            msg,
            sig,
        }
    }

    fn verify(&self) {
        signature::UnparsedPublicKey::new(self.alg, &self.public)
            .verify(black_box(&self.msg), black_box(&self.sig))
            .unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
