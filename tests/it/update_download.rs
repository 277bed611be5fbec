//! Download against hostile HTTP servers on loopback (axum): endless data, short bodies,
//! wrong hashes, ignored or wrong ranges, stalls, error statuses, resume and the lock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use railgun_core::update::{
    Arch, Artifact, DownloadConfig, DownloadError, Downloader, Format, LockMode, Platform,
    Progress, RetryPolicy, StagingLock,
};
use railgun_core::Version;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

const SIZE: usize = 300_000;

#[derive(Default)]
struct Seen {
    range: Option<String>,
    if_range: Option<String>,
}

struct Srv {
    data: Vec<u8>,
    requests: Mutex<Vec<Seen>>,
    served: AtomicU64,
    count: AtomicUsize,
    gate: Notify,
    entered: Notify,
}

type S = Arc<Srv>;

fn body_bytes(s: &S, bytes: Vec<u8>) -> Body {
    s.served.fetch_add(bytes.len() as u64, Ordering::SeqCst);
    Body::from(bytes)
}

/// A body that sends `bytes` in pieces then fails (connection cut) or hangs.
fn cut_body(s: &S, bytes: Vec<u8>, then_hang: bool) -> Body {
    s.served.fetch_add(bytes.len() as u64, Ordering::SeqCst);
    let chunks: Vec<Vec<u8>> = bytes.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), then_hang),
        |(mut it, hang)| async move {
            match it.next() {
                Some(c) => Some((Ok::<_, std::io::Error>(c), (it, hang))),
                None => {
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    // Let hyper flush what was sent before the connection is cut.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Err(std::io::Error::other("cut")), (it, hang)))
                }
            }
        },
    );
    Body::from_stream(stream)
}

fn resp(status: StatusCode, headers: &[(&str, String)], body: Body) -> Response {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(body).expect("response")
}

fn range_start(h: &HeaderMap) -> Option<usize> {
    h.get("range")?
        .to_str()
        .ok()?
        .strip_prefix("bytes=")?
        .trim_end_matches('-')
        .parse()
        .ok()
}

async fn handler(State(s): State<S>, Path(mode): Path<String>, h: HeaderMap) -> Response {
    let n = s.count.fetch_add(1, Ordering::SeqCst);
    s.requests.lock().expect("lock").push(Seen {
        range: h
            .get("range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        if_range: h
            .get("if-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let etag = ("etag", "\"v1\"".to_string());
    let full = s.data.clone();
    let half = full[..SIZE / 2].to_vec();
    match mode.as_str() {
        "good" => resp(StatusCode::OK, &[etag], body_bytes(&s, full)),
        "endless" => {
            // No Content-Length: chunked, more than announced in the manifest.
            let mut more = full.clone();
            more.extend(vec![0u8; 100_000]);
            resp(StatusCode::OK, &[], cut_body(&s, more, true))
        }
        "long-length" => resp(
            StatusCode::OK,
            &[("content-length", (SIZE + 1).to_string())],
            cut_body(&s, full, true),
        ),
        "short" => resp(StatusCode::OK, &[], body_bytes(&s, half)),
        "cut-always" => resp(
            StatusCode::OK,
            &[("content-length", SIZE.to_string())],
            cut_body(&s, half, false),
        ),
        "wrong-hash" => {
            let mut bad = full;
            bad[12345] ^= 0xff;
            resp(StatusCode::OK, &[], body_bytes(&s, bad))
        }
        "stall" => resp(
            StatusCode::OK,
            &[("content-length", SIZE.to_string())],
            cut_body(&s, half, true),
        ),
        "slow" => {
            // 20 pieces, 25 ms apart: about 500 ms in all.
            s.served.fetch_add(SIZE as u64, Ordering::SeqCst);
            let pieces: Vec<Vec<u8>> = full.chunks(SIZE / 20).map(<[u8]>::to_vec).collect();
            let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
                let c = it.next()?;
                tokio::time::sleep(Duration::from_millis(25)).await;
                Some((Ok::<_, std::io::Error>(c), it))
            });
            resp(StatusCode::OK, &[], Body::from_stream(stream))
        }
        "404" => resp(StatusCode::NOT_FOUND, &[], Body::empty()),
        "500" => resp(StatusCode::INTERNAL_SERVER_ERROR, &[], Body::empty()),
        "gated" => {
            s.entered.notify_one();
            s.gate.notified().await;
            resp(StatusCode::OK, &[etag], body_bytes(&s, full))
        }
        // First request cut at 60 %, then the mode's range behaviour.
        m => {
            let cut = SIZE * 6 / 10;
            if n == 0 {
                return resp(
                    StatusCode::OK,
                    &[etag, ("content-length", SIZE.to_string())],
                    cut_body(&s, full[..cut].to_vec(), false),
                );
            }
            let start = range_start(&h);
            match (m, start) {
                ("resume", Some(st)) => resp(
                    StatusCode::PARTIAL_CONTENT,
                    &[
                        etag,
                        ("content-range", format!("bytes {st}-{}/{SIZE}", SIZE - 1)),
                    ],
                    body_bytes(&s, full[st..].to_vec()),
                ),
                ("wrong-range", Some(st)) => {
                    // Claims to start elsewhere than asked.
                    let wrong = st / 2;
                    resp(
                        StatusCode::PARTIAL_CONTENT,
                        &[
                            etag,
                            (
                                "content-range",
                                format!("bytes {wrong}-{}/{SIZE}", SIZE - 1),
                            ),
                        ],
                        body_bytes(&s, full[wrong..].to_vec()),
                    )
                }
                ("garbage-range", Some(st)) => {
                    // Right header, wrong bytes: caught by the hash, then restarted from 0.
                    resp(
                        StatusCode::PARTIAL_CONTENT,
                        &[
                            etag,
                            ("content-range", format!("bytes {st}-{}/{SIZE}", SIZE - 1)),
                        ],
                        body_bytes(&s, vec![7u8; SIZE - st]),
                    )
                }
                // ignore-range, or any request without Range: the whole file with 200.
                _ => resp(StatusCode::OK, &[etag], body_bytes(&s, full)),
            }
        }
    }
}

async fn server() -> (SocketAddr, S) {
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    let s = Arc::new(Srv {
        data,
        requests: Mutex::new(Vec::new()),
        served: AtomicU64::new(0),
        count: AtomicUsize::new(0),
        gate: Notify::new(),
        entered: Notify::new(),
    });
    let app = Router::new()
        .route("/f/{mode}/app.tar.gz", get(handler))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, s)
}

fn artifact(s: &Srv) -> Artifact {
    Artifact {
        platform: Platform::Linux,
        arch: Arch::X64,
        format: Format::TarGz,
        url: "app.tar.gz".into(),
        size: SIZE as u64,
        sha256: hex::encode(Sha256::digest(&s.data)),
        sigstore_bundle: None,
    }
}

fn downloader(dir: &std::path::Path, attempts: u32) -> Downloader {
    let mut c = DownloadConfig::new(dir);
    c.retry = RetryPolicy {
        max_attempts: attempts,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        seed: 1,
    };
    c.stall_timeout = Duration::from_millis(500);
    c.space_margin = 0;
    Downloader::new(c).expect("downloader")
}

fn url(addr: SocketAddr, mode: &str) -> url::Url {
    format!("http://{addr}/f/{mode}/app.tar.gz")
        .parse()
        .expect("url")
}

fn v() -> Version {
    Version::new(0, 2, 0)
}

fn staged_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("staging/0.2.0"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

async fn run(
    mode: &str,
    attempts: u32,
) -> (
    Result<railgun_core::update::Downloaded, DownloadError>,
    S,
    tempfile::TempDir,
) {
    let (addr, s) = crate::within("the server", server()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = downloader(dir.path(), attempts);
    let r = crate::within(
        "download",
        d.download(&url(addr, mode), &artifact(&s), &v(), &mut |_| {}),
    )
    .await;
    (r, s, dir)
}

#[tokio::test]
async fn good_download_is_verified_and_staged() {
    let (addr, s) = crate::within("the server", server()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = downloader(dir.path(), 1);
    let mut events: Vec<Progress> = Vec::new();
    let r = crate::within(
        "download",
        d.download(&url(addr, "good"), &artifact(&s), &v(), &mut |p| {
            events.push(p)
        }),
    )
    .await
    .expect("download");
    assert_eq!(std::fs::read(&r.path).expect("read"), s.data);
    assert_eq!(hex::encode(r.sha256), artifact(&s).sha256);
    assert_eq!(r.path, dir.path().join("staging/0.2.0/app.tar.gz"));
    let last = events.last().expect("final progress");
    assert_eq!(
        (last.percent, last.transferred, last.total),
        (100.0, SIZE as u64, SIZE as u64)
    );
}

#[tokio::test]
async fn refuses_more_bytes_than_the_manifest_size() {
    let (r, _s, dir) = run("endless", 3).await;
    assert!(
        matches!(r, Err(DownloadError::TooMuchData { limit }) if limit == SIZE as u64),
        "{r:?}"
    );
    assert!(
        staged_files(dir.path()).is_empty(),
        "{:?}",
        staged_files(dir.path())
    );
    let (r, s, _dir) = run("long-length", 3).await;
    assert!(matches!(r, Err(DownloadError::TooMuchData { .. })), "{r:?}");
    assert_eq!(s.count.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn short_body_is_a_size_mismatch_and_deleted() {
    let (r, _s, dir) = run("short", 3).await;
    match r {
        Err(DownloadError::SizeMismatch { expected, actual }) => {
            assert_eq!((expected, actual), (SIZE as u64, SIZE as u64 / 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(staged_files(dir.path()).is_empty());
}

#[tokio::test]
async fn connection_cut_every_time_fails_after_the_retries() {
    let (r, s, dir) = run("cut-always", 3).await;
    match &r {
        Err(e @ DownloadError::Network { url, source }) => {
            // The error names the URL and keeps the transport error as its source.
            assert!(url.ends_with("/cut-always/app.tar.gz"), "{url}");
            assert!(source.is_decode() || source.is_body(), "{source:?}");
            assert!(std::error::Error::source(e).is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.count.load(Ordering::SeqCst), 3);
    assert!(!dir.path().join("staging/0.2.0/app.tar.gz").exists());
}

#[tokio::test]
async fn wrong_hash_names_both_digests_and_deletes_the_file() {
    let (r, s, dir) = run("wrong-hash", 3).await;
    match r {
        Err(DownloadError::ChecksumMismatch {
            expected,
            actual,
            path,
        }) => {
            assert_eq!(expected, artifact(&s).sha256);
            assert_ne!(actual, expected);
            assert_eq!(actual.len(), 64);
            assert!(!path.exists());
        }
        other => panic!("{other:?}"),
    }
    assert!(staged_files(dir.path()).is_empty());
}

#[tokio::test]
async fn interrupted_download_resumes_and_fetches_only_the_rest() {
    let (r, s, _dir) = run("resume", 3).await;
    let r = r.expect("resumed download");
    let cut = (SIZE * 6 / 10) as u64;
    assert_eq!(r.resumed_from, cut);
    assert_eq!(
        s.served.load(Ordering::SeqCst),
        SIZE as u64,
        "no byte served twice"
    );
    assert_eq!(std::fs::read(&r.path).expect("read"), s.data);
    let reqs = s.requests.lock().expect("lock");
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(reqs[1].if_range.as_deref(), Some("\"v1\""));
}

#[tokio::test]
async fn server_ignoring_range_means_starting_over_not_appending() {
    let (r, s, _dir) = run("ignore-range", 3).await;
    let r = r.expect("download");
    assert_eq!(r.resumed_from, 0);
    assert_eq!(std::fs::read(&r.path).expect("read"), s.data);
    assert_eq!(s.count.load(Ordering::SeqCst), 2);
    assert!(
        s.requests.lock().expect("lock")[1].range.is_some(),
        "it did ask for a range"
    );
}

#[tokio::test]
async fn range_answered_at_the_wrong_offset_is_refused_and_restarted() {
    let (r, s, _dir) = run("wrong-range", 4).await;
    let r = r.expect("download");
    assert_eq!(std::fs::read(&r.path).expect("read"), s.data);
    let reqs = s.requests.lock().expect("lock");
    assert_eq!(reqs.len(), 3, "cut, refused 206, full restart");
    assert!(reqs[1].range.is_some());
    assert!(reqs[2].range.is_none(), "restart asks for the whole file");
}

#[tokio::test]
async fn range_answered_with_wrong_bytes_is_caught_by_the_hash_and_restarted() {
    let (r, s, _dir) = run("garbage-range", 4).await;
    let r = r.expect("download");
    assert_eq!(std::fs::read(&r.path).expect("read"), s.data);
    assert_eq!(s.count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn stalled_body_times_out() {
    let (r, _s, _dir) = run("stall", 1).await;
    assert!(matches!(r, Err(DownloadError::Stalled { .. })), "{r:?}");
}

#[tokio::test]
async fn not_found_is_not_retried_and_server_errors_are() {
    let (r, s, _dir) = run("404", 3).await;
    assert!(
        matches!(r, Err(DownloadError::HttpStatus { status: 404, .. })),
        "{r:?}"
    );
    assert_eq!(s.count.load(Ordering::SeqCst), 1);
    let (r, s, _dir) = run("500", 3).await;
    assert!(
        matches!(r, Err(DownloadError::HttpStatus { status: 500, .. })),
        "{r:?}"
    );
    assert_eq!(s.count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn two_downloaders_on_one_data_dir_second_is_busy_or_waits() {
    let (addr, s) = crate::within("the server", server()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let first = downloader(dir.path(), 1);
    let a = artifact(&s);
    let u = url(addr, "gated");
    let (a2, u2) = (a.clone(), u.clone());
    let task = tokio::spawn(async move { first.download(&u2, &a2, &v(), &mut |_| {}).await });
    // The first holds the lock and is mid-request.
    crate::within("the first request", s.entered.notified()).await;

    let second = downloader(dir.path(), 1);
    let r = crate::within(
        "second download",
        second.download(&u, &a, &v(), &mut |_| {}),
    )
    .await;
    assert!(matches!(r, Err(DownloadError::Busy { .. })), "{r:?}");

    // A waiting one completes once the first is done (and finds the verified file).
    let mut cfg = second.config().clone();
    cfg.lock_mode = LockMode::Wait;
    let waiter = Downloader::new(cfg).expect("downloader");
    let (a3, u3) = (a.clone(), u.clone());
    let waiting = tokio::spawn(async move { waiter.download(&u3, &a3, &v(), &mut |_| {}).await });
    s.gate.notify_one();
    crate::within("first download", task)
        .await
        .expect("join")
        .expect("first download");
    let w = crate::within("waiting download", waiting)
        .await
        .expect("join")
        .expect("second download");
    assert_eq!(w.bytes_fetched, 0, "reused the staged, verified file");
    assert_eq!(s.count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lock_is_released_on_drop() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = StagingLock::acquire(&dir.path().join("staging"), LockMode::Fail)
        .await
        .expect("lock");
    assert!(
        StagingLock::acquire(&dir.path().join("staging"), LockMode::Fail)
            .await
            .is_err()
    );
    drop(l);
    assert!(
        StagingLock::acquire(&dir.path().join("staging"), LockMode::Fail)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn progress_is_reported_at_most_every_100_ms_and_once_at_the_end() {
    let (addr, s) = crate::within("the server", server()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = downloader(dir.path(), 1);
    let mut events: Vec<(std::time::Instant, Progress)> = Vec::new();
    let started = std::time::Instant::now();
    crate::within(
        "download",
        d.download(&url(addr, "slow"), &artifact(&s), &v(), &mut |p| {
            events.push((std::time::Instant::now(), p))
        }),
    )
    .await
    .expect("download");
    let total = started.elapsed();
    let (last_t, last) = events.last().copied().expect("final");
    assert_eq!(last.percent, 100.0);
    let intermediate: Vec<_> = events[..events.len() - 1].to_vec();
    assert!(!intermediate.is_empty(), "some progress before the end");
    for w in intermediate.windows(2) {
        assert!(
            w[1].0 - w[0].0 >= Duration::from_millis(90),
            "events too close"
        );
        assert!(w[1].1.transferred >= w[0].1.transferred);
    }
    assert!(
        events.len() as u128 <= total.as_millis() / 100 + 2,
        "{} events in {total:?}",
        events.len()
    );
    assert!(last_t <= std::time::Instant::now());
}
