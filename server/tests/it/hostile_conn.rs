//! Slow and stuck clients against a real `railgun serve` child with short, configured
//! limits: half-sent request heads (slowloris), idle kept-alive connections and a client
//! that stops reading are closed; after SIGTERM new connections are refused, the request
//! in flight finishes, and a slow connection no longer keeps the process alive past
//! `--shutdown-timeout`. A request answered before its body was read (a `413` from
//! `Content-Length`) reaches a client still uploading, and its connection is not reused.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::hostile_support::{raw_get, read_until_closed};
use crate::support::ChildServer;

const CHANNEL: &[u8] = br#"{"sequence":1,"state":"A"}"#;
/// Larger than what loopback socket buffers hold, so a client that does not read stalls
/// the server's writes.
const BIG: usize = 64 << 20;
const HALF_HEAD: &[u8] = b"GET /updates/app/stable/channel.json HTTP/1.1\r\nHost: localhost\r\n";
const BIG_GET: &[u8] =
    b"GET /updates/app/releases/1.0.0/big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("root/app/stable")).expect("dir");
    fs::create_dir_all(dir.join("root/app/releases/1.0.0")).expect("dir");
    fs::create_dir_all(dir.join("data")).expect("dir");
    fs::write(dir.join("root/app/stable/channel.json"), CHANNEL).expect("channel");
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    fs::write(dir.join("root/app/releases/1.0.0/big.bin"), big).expect("big");
}

fn start(dir: &Path, flags: &[&str]) -> ChildServer {
    let flags: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    ChildServer::serve(&dir.join("root"), &dir.join("data"), &flags, &[])
}

async fn connect(s: &ChildServer) -> TcpStream {
    TcpStream::connect(s.addr).await.expect("connect")
}

/// Reads the response head (up to the blank line) off `s`.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("a response head within 10 s")
            .expect("read");
        assert_eq!(n, 1, "closed before the response head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_request_heads_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    tree(dir.path());
    let mut s = start(
        dir.path(),
        &["--header-timeout", "1", "--idle-timeout", "60"],
    );
    let mut conns = JoinSet::new();
    for i in 0..200 {
        let mut c = connect(&s).await;
        conns.spawn(async move {
            if i % 50 == 0 {
                // Says nothing at all.
            } else if i % 50 == 1 {
                // Trickles its head a byte at a time, never finishing: activity does not
                // extend the head's deadline.
                for b in HALF_HEAD.iter().cycle().take(300) {
                    if c.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            } else {
                c.write_all(HALF_HEAD).await.expect("write");
            }
            read_until_closed(&mut c, Duration::from_secs(30)).await
        });
    }
    let mut closed = 0;
    while let Some(r) = conns.join_next().await {
        if r.expect("join").is_some() {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 200,
        "half-sent heads still open 30 s after a 1 s header timeout"
    );
    // The server still answers a whole request at once.
    let ok = raw_get(s.addr, "GET", b"/updates/app/stable/channel.json").await;
    assert_eq!(ok.status, 200);
    s.terminate(Duration::from_secs(20));
    assert!(s.error_lines().is_empty(), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_stalled_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    tree(dir.path());
    let mut s = start(
        dir.path(),
        &["--header-timeout", "30", "--idle-timeout", "1"],
    );

    // A kept-alive connection that sends no second request.
    let mut idle = connect(&s).await;
    idle.write_all(b"GET /updates/app/stable/channel.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut idle).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let mut body = vec![0u8; CHANNEL.len()];
    idle.read_exact(&mut body).await.expect("body");
    assert_eq!(
        read_until_closed(&mut idle, Duration::from_secs(30)).await,
        Some(0),
        "an idle kept-alive connection still open 30 s after a 1 s idle timeout"
    );

    // A client that asks for 64 MiB and stops reading: the server's writes stall.
    let mut stalled = connect(&s).await;
    stalled.write_all(BIG_GET).await.expect("write");
    let head = read_head(&mut stalled).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // The client's stall (the scenario, not a wait for a result): three idle timeouts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = read_until_closed(&mut stalled, Duration::from_secs(30))
        .await
        .expect("closed");
    assert!(
        got < BIG,
        "the stalled transfer was kept open ({got} bytes read)"
    );
    s.terminate(Duration::from_secs(20));
    assert!(s.error_lines().is_empty(), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_the_request_in_flight_finishes_and_new_connections_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    tree(dir.path());
    let mut s = start(dir.path(), &["--shutdown-timeout", "30"]);
    let mut download = connect(&s).await;
    download.write_all(BIG_GET).await.expect("write");
    let head = read_head(&mut download).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    s.signal(Signal::TERM);
    assert!(
        s.wait_log("stopped accepting", Duration::from_secs(20)),
        "no shutdown line: {}",
        s.log()
    );
    assert!(
        TcpStream::connect(s.addr).await.is_err(),
        "a new connection was accepted after SIGTERM"
    );
    let got = read_until_closed(&mut download, Duration::from_secs(60))
        .await
        .expect("closed after its response");
    assert_eq!(got, BIG, "the download in flight was cut");
    let status = s
        .wait_exit(Duration::from_secs(60))
        .expect("exited after the last request");
    assert!(status.success(), "{status:?}");
    assert!(!s.log().contains("deadline passed"), "{}", s.log());
    assert!(s.error_lines().is_empty(), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_keep_the_process_alive_past_the_shutdown_deadline() {
    let dir = tempfile::tempdir().expect("tmp");
    tree(dir.path());
    let mut s = start(
        dir.path(),
        &[
            "--shutdown-timeout",
            "2",
            "--header-timeout",
            "300",
            "--idle-timeout",
            "300",
        ],
    );
    // One client half-way through its head, one that stopped reading its download.
    let mut slowloris = connect(&s).await;
    slowloris.write_all(HALF_HEAD).await.expect("write");
    let mut stalled = connect(&s).await;
    stalled.write_all(BIG_GET).await.expect("write");
    let head = read_head(&mut stalled).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    s.signal(Signal::TERM);
    // Exits at the 2 s deadline; the margin is for a loaded machine, far below the 300 s
    // the two clients would otherwise hold it.
    let status = s
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running 30 s after SIGTERM: {}", s.log()));
    assert!(status.success(), "{status:?}");
    assert!(s.log().contains("deadline passed"), "{}", s.log());
    drop((slowloris, stalled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_body_is_read_reaches_the_client_and_ends_the_connection() {
    let dir = tempfile::tempdir().expect("tmp");
    tree(dir.path());
    let mut s = start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/analytics/events", s.url);
    let too_large = vec![b' '; 2 << 20];
    for i in 0..50 {
        // The server answers 413 from Content-Length while the client is still sending
        // 2 MiB; the next request goes out on whatever connection the client keeps.
        let res = http
            .post(&url)
            .header("content-type", "application/json")
            .body(too_large.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {i}: the 413 did not arrive: {e:?}"));
        assert_eq!(res.status(), 413, "round {i}");
        assert_eq!(
            res.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "round {i}"
        );
        let res = http
            .post(&url)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {i}: the request after the 413 failed: {e:?}"));
        assert_eq!(res.status(), 400, "round {i}");
    }
    s.terminate(Duration::from_secs(20));
    assert!(s.error_lines().is_empty(), "{}", s.log());
}
