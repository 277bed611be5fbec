//! Download + verify vs a plain download over loopback, peak memory, SHA-256 throughput.
//!
//! `cargo bench --bench download` (256 MiB by default; `RAILGUN_BENCH_MIB=1024` for 1 GiB,
//! `RAILGUN_BENCH_RUNS` runs each, median reported). The server streams the file from disk
//! in 256 KiB chunks so the process's peak RSS (VmHWM) measures the client. Neither side
//! fsyncs (the downloader leaves durability to the installer's one `fsync`), so the overhead
//! is that of hashing and the resumable bookkeeping; the whole `railgun update` beside
//! `curl` + `fsync` is measured by `scripts/bench.sh`.

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use railgun_core::update::{Arch, Artifact, DownloadConfig, Downloader, Format, Platform};
use railgun_core::Version;
use sha2::{Digest, Sha256};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of this process so far (from /proc/self/stat, 100 Hz ticks).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(0.0)
}

async fn serve_file(State(path): State<PathBuf>) -> Response {
    let file = std::fs::File::open(&path).expect("open");
    let len = file.metadata().expect("meta").len();
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Response::builder()
        .header("content-length", len)
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn plain_download(http: &reqwest::Client, url: &str, out: &Path) -> u64 {
    let mut resp = http.get(url).send().await.expect("get");
    let mut f = std::fs::File::create(out).expect("create");
    let mut n = 0u64;
    while let Some(c) = resp.chunk().await.expect("chunk") {
        f.write_all(&c).expect("write");
        n += c.len() as u64;
    }
    n
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mib: u64 = std::env::var("RAILGUN_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let runs: usize = std::env::var("RAILGUN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let size = mib * 1024 * 1024;
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("artifact.tar.gz");
    // Write the artifact in 1 MiB blocks (pseudo-random, so nothing compresses it away).
    let mut hasher = Sha256::new();
    {
        let mut f = std::fs::File::create(&src).expect("create");
        let mut block = vec![0u8; 1024 * 1024];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..mib {
            for b in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            hasher.update(&block);
            f.write_all(&block).expect("write");
        }
        f.sync_all().expect("sync");
    }
    let digest = hex::encode(hasher.finalize());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let app = Router::new()
            .route("/artifact.tar.gz", get(serve_file))
            .with_state(src.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}/artifact.tar.gz");
        let http = reqwest::Client::new();
        let hwm_before = vm_hwm_kib();

        let mut plain = Vec::new();
        let mut verified = Vec::new();
        let (mut plain_cpu, mut verified_cpu) = (0.0, 0.0);
        for i in 0..runs {
            let out = dir.path().join("plain.bin");
            let t = Instant::now();
            let c = cpu_seconds();
            assert_eq!(plain_download(&http, &url, &out).await, size);
            plain.push(t.elapsed());
            plain_cpu += cpu_seconds() - c;
            let _ = std::fs::remove_file(&out);


            let data = dir.path().join(format!("data-{i}"));
            let mut cfg = DownloadConfig::new(&data);
            cfg.space_margin = 0;
            let d = Downloader::new(cfg).expect("downloader").with_http_client(http.clone());
            let artifact = Artifact {
                platform: Platform::Linux,
                arch: Arch::X64,
                format: Format::TarGz,
                url: "artifact.tar.gz".into(),
                size,
                sha256: digest.clone(),
                sigstore_bundle: None,
            };
            let t = Instant::now();
            let c = cpu_seconds();
            let r = d
                .download(&url.parse().expect("url"), &artifact, &Version::new(1, 0, 0), &mut |_| {})
                .await
                .expect("download");
            verified.push(t.elapsed());
            verified_cpu += cpu_seconds() - c;
            assert_eq!(r.size, size);
            let _ = std::fs::remove_dir_all(&data);
        }
        let hwm_after = vm_hwm_kib();
        let p = median(plain);
        let v = median(verified);
        let gbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e9;
        println!("artifact: {mib} MiB, {runs} runs each (median)");
        println!("plain download to disk : {:>8.3} s  {:.2} GB/s", p.as_secs_f64(), gbps(p));
        println!("download + SHA-256     : {:>8.3} s  {:.2} GB/s", v.as_secs_f64(), gbps(v));
        println!("overhead               : {:>+7.1} %  (target within 15 %)", (v.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0);
        println!(
            "CPU (client + server)  : {:.2} s plain, {:.2} s with SHA-256 (per run, on {} cores)",
            plain_cpu / runs as f64,
            verified_cpu / runs as f64,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        println!("peak RSS (VmHWM)       : {:.1} MiB before downloads, {:.1} MiB after (target < 64 MiB)", hwm_before as f64 / 1024.0, hwm_after as f64 / 1024.0);
    });

    // SHA-256 throughput on a 64 MiB buffer.
    let buf = vec![0x5au8; 64 * 1024 * 1024];
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let d = Sha256::digest(&buf);
        std::hint::black_box(d);
        best = best.min(t.elapsed());
    }
    let mut best_ring = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let d = ring::digest::digest(&ring::digest::SHA256, &buf);
        std::hint::black_box(d);
        best_ring = best_ring.min(t.elapsed());
    }
    println!(
        "SHA-256 ring::digest   : {:.2} GB/s",
        buf.len() as f64 / best_ring.as_secs_f64() / 1e9
    );
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.contains(" sha_ni"))
        .unwrap_or(false);
    println!(
        "SHA-256 sha2 crate     : {:.2} GB/s (CPU sha_ni: {sha_ni}; target >= 1 GB/s)",
        buf.len() as f64 / best.as_secs_f64() / 1e9
    );
}
