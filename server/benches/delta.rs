//! Delta updates on a realistic app: the patch against the full artifact, and the update
//! through it against the full download from `railgun serve`'s application on loopback.
//!
//! The app is `demo::app`'s seeded generator at about 100 MiB (32 MiB with `BENCH_QUICK`,
//! `RAILGUN_BENCH_DELTA_MIB` to choose): a runtime binary and native modules
//! (machine-code-like), a bundled JS file of several MiB, images (incompressible) and locale
//! JSON, packed as tar.gz; its next version rebuilds the JS bundle with local edits,
//! recompiles one native module and adds a few assets. Measured, each beside its peer:
//!
//! - the patch the publisher makes (`release::delta::add_patches`, as `railgun release sign
//!   --delta-from` does): its size against the full tar.gz (goal ≤ 20 %) and against plain
//!   zstd of the new tar at the same level with long matching (the best a full download
//!   could be), and its creation time beside that zstd's;
//! - the client, the goal row: the whole delta update (the Updater's `download_update`: base
//!   record checked, patch downloaded and its SHA-256 checked while the kept base is read,
//!   patch applied, result hashed and written into staging) beside the same Updater with
//!   delta off (the full tar.gz downloaded, SHA-256 checked, written into staging) from the
//!   same server on loopback; `RAILGUN_BENCH_RUNS` runs each (3 by default), alternating,
//!   medians. Beside it, apply + verify alone (`KeptBase::load` then
//!   `update::delta::apply_to_file`, no download), against the same full download.
//!
//! The last row is the link speed below which the delta update beats the full download
//! (each download's loopback time plus its bytes over the link). No bsdiff-style peer: no
//! bsdiff crate is a dependency here (its suffix sort would also need several times the
//! base's size in memory).
//!
//! `cargo bench -p railgun-server --bench delta` (`scripts/bench.sh` runs it); each row is
//! printed as a `bench-row:` line.

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use railgun_core::store::Store;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};
use railgun_core::update::delta::{read_payload, window_log, KeptBase, PATCH_LEVEL};
use railgun_core::update::{
    Arch, Format, Platform, RolloutStatus, UpdateConfig, UpdateDownload, Updater, UpdaterConfig,
};
use railgun_core::Version;
use railgun_server::demo::app::AppShape;
use railgun_server::demo::artifacts::{build_release, BuiltRelease, ReleaseSpec};
use railgun_server::release::{publish, PublishOptions};
use railgun_server::serve::{App, ServerConfig};
use sha2::Digest;

const APP: &str = "rail-gun";
const MIB: f64 = 1024.0 * 1024.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Builds `version` (build `build` of the app) with patches from `bases`, as the demo does.
fn build(
    dir: &Path,
    key: &PrivateKey,
    shape: AppShape,
    version: Version,
    build: u32,
    bases: &[&BuiltRelease],
) -> BuiltRelease {
    let spec = ReleaseSpec {
        app: APP,
        channel: "stable",
        shape,
        version,
        build,
        bases,
        policy: None,
        released_at: Utc::now(),
    };
    build_release(dir, &spec, key).expect("build release")
}

/// Publishes `r` at 100 % into `tree`.
fn publish_release(tree: &Path, key: &PrivateKey, r: &BuiltRelease) {
    publish(&PublishOptions {
        root: tree.to_path_buf(),
        manifest: r.manifest_path.clone(),
        artifacts_dir: None,
        release_keys: TrustedKeys::single(key.public_key().clone()),
        rollout_key: key,
        percentage: Some(100.0),
        stages: Default::default(),
        status: RolloutStatus::Active,
        fallback: None,
        rollback_from: vec![],
        expires: chrono::Duration::days(7),
        now: Utc::now(),
    })
    .expect("publish");
}

/// Plain zstd of `payload` at the patches' level, long matching, no reference: (bytes, s).
fn plain_zstd(payload: &[u8]) -> (usize, f64) {
    let t = Instant::now();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), PATCH_LEVEL).expect("zstd");
    enc.long_distance_matching(true).expect("ldm");
    enc.window_log(window_log(0, payload.len() as u64))
        .expect("window");
    enc.include_checksum(true).expect("checksum");
    enc.write_all(payload).expect("compress");
    let out = enc.finish().expect("finish");
    (out.len(), t.elapsed().as_secs_f64())
}

/// Keeps 0.1.0's artifact `file` as the delta base under `data`, as the Updater does after
/// installing it (for a tar.gz: its tar).
fn keep_base(
    data: &Path,
    file: &railgun_server::release::ArtifactFile,
    art: &railgun_core::update::Artifact,
) {
    std::fs::create_dir_all(data).expect("data");
    let kept = KeptBase::new(data);
    let sha: [u8; 32] = hex::decode(&art.sha256)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let pending = kept
        .prepare(&file.path, &Version::new(0, 1, 0), art, art.size, &sha)
        .expect("prepare base");
    kept.commit(pending).expect("keep base");
}

/// One update from 0.1.0 with a fresh data dir: `delta` keeps 0.1.0's artifact as the base
/// (what the Updater keeps after installing it) and lets the Updater use the patch; otherwise
/// delta updates are off. Returns the seconds `download_update` took and what it reported.
async fn update(
    work: &Path,
    url: &str,
    key: &PrivateKey,
    base: Option<(
        &railgun_server::release::ArtifactFile,
        &railgun_core::update::Artifact,
    )>,
) -> (f64, UpdateDownload) {
    let data = work.join("data");
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(&data).expect("data");
    let from = Version::new(0, 1, 0);
    if let Some((file, art)) = base {
        keep_base(&data, file, art);
    }
    let mut cfg = UpdateConfig::new(
        url,
        APP,
        "stable",
        from,
        TrustedKeys::single(key.public_key().clone()),
    );
    cfg.platform = Platform::Linux;
    cfg.arch = Arch::X64;
    cfg.formats = vec![Format::TarGz];
    cfg.install_id = Some("bench".into());
    let store = Arc::new(Store::open(data.join("railgun.db")).expect("store"));
    let mut config = UpdaterConfig::new(cfg, &data, work.join("root"));
    config.delta.enabled = base.is_some();
    let updater = Updater::new(config, store).expect("updater");
    updater
        .check_for_updates()
        .await
        .expect("check")
        .expect("an update");
    let t = Instant::now();
    let d = updater.download_update().await.expect("download");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(d.delta, base.is_some(), "{:?}", d.fallback);
    (secs, d)
}

#[tokio::main]
async fn main() {
    let mib = env_u64("RAILGUN_BENCH_DELTA_MIB").unwrap_or(
        if std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty()) {
            32
        } else {
            100
        },
    );
    let runs = env_u64("RAILGUN_BENCH_RUNS").unwrap_or(3).max(1) as usize;
    let shape = AppShape {
        size: mib << 20,
        seed: 18,
    };
    let dir = tempfile::tempdir().expect("tmp");
    let (v1, v2) = (Version::new(0, 1, 0), Version::new(0, 2, 0));

    // The publisher: 0.1.0, then 0.2.0 with its patch from 0.1.0, into the served tree.
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let t = Instant::now();
    let old = build(dir.path(), &key, shape, v1, 0, &[]);
    let new = build(dir.path(), &key, shape, v2, 1, &[&old]);
    let made = new.patches.first().expect("one patch").clone();
    let full = made.full_size;
    eprintln!(
        "delta: built 0.1.0 and 0.2.0 of a {mib} MiB app in {:.1} s (0.2.0 tar.gz {:.1} MiB)",
        t.elapsed().as_secs_f64(),
        full as f64 / MIB
    );
    let tree = dir.path().join("tree");
    publish_release(&tree, &key, &old);
    publish_release(&tree, &key, &new);
    let patch_bytes = made.patch.size;
    let create_secs = made.elapsed.as_secs_f64();
    let payload = read_payload(&new.artifact_path, Format::TarGz).expect("payload");
    let (zstd_bytes, zstd_secs) = plain_zstd(&payload);
    // sha2 picks SHA-NI at run time when the CPU has it: ≳ 1 GiB/s then, a few hundred MiB/s
    // without.
    let t = Instant::now();
    let digest = sha2::Sha256::digest(&payload);
    eprintln!(
        "delta: SHA-256 of the new tar in memory at {:.0} MiB/s ({})",
        payload.len() as f64 / MIB / t.elapsed().as_secs_f64(),
        hex::encode(&digest[..4])
    );
    drop(payload);
    eprintln!(
        "delta: patch {patch_bytes} bytes in {create_secs:.2} s; full tar.gz {full} bytes; \
         zstd -{PATCH_LEVEL} --long of the new tar {zstd_bytes} bytes in {zstd_secs:.2} s"
    );

    // The client: apply + verify alone (no download): the kept base (0.1.0's tar, kept as
    // the Updater keeps it after installing 0.1.0) read, the patch applied, the result hashed.
    let alone_data = dir.path().join("client-alone");
    keep_base(
        &alone_data,
        &old.artifact_file(),
        &old.manifest.artifacts[0],
    );
    let kept = KeptBase::new(&alone_data);
    let mut apply = Vec::new();
    let (mut load, mut decode, mut one_thread) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let out = dir.path().join("applied.tar");
        let t = Instant::now();
        let base = kept.load(&made.patch).expect("kept base");
        load.push(t.elapsed().as_secs_f64());
        railgun_core::update::delta::apply_to_file(&made.patch, &base, &made.path, &out)
            .expect("apply");
        apply.push(t.elapsed().as_secs_f64());
        // A decoder of the patch against the kept base, as `apply_to_file` sets it up.
        let decoder = || {
            let patch = std::fs::File::open(&made.path).expect("patch");
            let mut dec = zstd::stream::read::Decoder::with_ref_prefix(
                std::io::BufReader::new(patch),
                base.bytes(),
            )
            .expect("decoder");
            dec.window_log_max(window_log(made.patch.base_size, made.patch.result_size))
                .expect("window");
            dec
        };
        // The floor of the apply: decoding alone, into nothing.
        let t = Instant::now();
        let mut dec = decoder();
        std::io::copy(&mut dec, &mut std::io::sink()).expect("decode");
        decode.push(t.elapsed().as_secs_f64());
        drop(dec);
        // The same work on one thread: decode, hash, write, chunk after chunk.
        let t = Instant::now();
        let mut dec = decoder();
        let mut f = std::fs::File::create(&out).expect("out");
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut dec, &mut buf).expect("decode");
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            f.write_all(&buf[..n]).expect("write");
        }
        assert_eq!(hex::encode(h.finalize()), made.patch.result_sha256);
        one_thread.push(t.elapsed().as_secs_f64());
        drop(dec);
        drop(base);
        std::fs::remove_file(&out).expect("rm");
    }
    eprintln!(
        "delta: of apply + verify, reading the kept base {:.3} s; decoding alone (into nothing) {:.3} s; decode + hash + write on one thread {:.3} s",
        median(load),
        median(decode),
        median(one_thread)
    );

    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).expect("server dir");
    let config = ServerConfig {
        root: tree.clone(),
        database: format!("sqlite:{}", server_dir.join("railgun.db").display()),
        run_retention: false,
        clock: railgun_core::clock::system(),
        ..ServerConfig::default()
    };
    let server = App::open(&config)
        .await
        .expect("app")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("spawn");
    let url = server.url();
    let (old_file, base_art) = (old.artifact_file(), &old.manifest.artifacts[0]);
    let (mut via_patch, mut via_full) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Alternate which goes first so neither always meets a warmer cache.
        for delta in [run % 2 == 0, run % 2 != 0] {
            let work = dir
                .path()
                .join(if delta { "client-delta" } else { "client-full" });
            let (secs, d) = update(&work, &url, &key, delta.then_some((&old_file, base_art))).await;
            if delta {
                assert_eq!(d.downloaded_bytes, patch_bytes);
                via_patch.push(secs);
            } else {
                assert_eq!(d.downloaded_bytes, full);
                via_full.push(secs);
            }
        }
    }
    server.stop().await.expect("stop");

    let (apply, via_patch, via_full) = (median(apply), median(via_patch), median(via_full));
    eprintln!(
        "delta: apply + verify {apply:.3} s; update via patch {via_patch:.3} s; full download + verify {via_full:.3} s ({runs} runs, medians)"
    );
    let app = format!("{mib} MiB app, tar.gz");
    println!(
        "bench-row: delta patch size, next version of a {app} | ≤ 20 % of the full artifact | {:.2} MiB | full artifact {:.1} MiB | {:.3} of the full artifact",
        patch_bytes as f64 / MIB,
        full as f64 / MIB,
        patch_bytes as f64 / full as f64
    );
    println!(
        "bench-row: delta patch size beside plain zstd -{PATCH_LEVEL} --long of the new version | — | {:.2} MiB | plain zstd {:.1} MiB | {:.3} of plain zstd",
        patch_bytes as f64 / MIB,
        zstd_bytes as f64 / MIB,
        patch_bytes as f64 / zstd_bytes as f64
    );
    println!(
        "bench-row: delta patch creation ({app}) | — | {create_secs:.2} s | plain zstd -{PATCH_LEVEL} --long {zstd_secs:.2} s | {:.2}×",
        create_secs / zstd_secs
    );
    println!(
        "bench-row: delta update: patch download + apply + verify (Updater, kept base) vs full download + SHA-256 verify + write (Updater, delta off), railgun serve on loopback | faster than the full download | {via_patch:.3} s | full download {via_full:.3} s | {:.2}×",
        via_patch / via_full
    );
    println!(
        "bench-row: delta apply + verify alone (kept base read, patch applied, result hashed and written; no download) beside the same full download | — (the goal is the row above) | {apply:.3} s | full download {via_full:.3} s | {:.2}×",
        apply / via_full
    );
    // On a link of B bytes/s each download takes about its loopback time plus its bytes / B:
    // the patch wins on links slower than (full - patch) / (delta time - full time).
    let extra = via_patch - via_full;
    let break_even = if extra > 0.0 {
        format!(
            "{:.0} Mbit/s",
            (full - patch_bytes) as f64 * 8.0 / extra / 1e6
        )
    } else {
        "any speed".into()
    };
    println!(
        "bench-row: delta update is faster than the full download on links slower than | — | {break_even} | — | —"
    );
}
