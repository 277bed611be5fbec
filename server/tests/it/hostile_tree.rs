//! The update tree against hostile paths and hostile files, on a real `railgun serve` child:
//! symbolic links leaving the root (file or folder, at any depth), FIFOs and sockets,
//! names past the file system's limit, encoded separators, NUL, backslashes and `..`. Each
//! is 404 (or 400 when the request target is not even a valid URI), at once, without an
//! ERROR line in the server's log; the file outside the root is never served, hashed into an
//! `ETag` or named in the log. And `release export` never follows a link or opens a FIFO
//! swapped into the tree after its walk listed a regular file there.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};
use railgun_server::release::export::{verify_tree, TreeKeys};
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use rustix::fs::{mkfifoat, Mode, CWD};

use crate::hostile_support::raw_get;
use crate::support::ChildServer;

const SECRET: &str = "SECRET-ROLLOUT-PRIVATE-KEY-MATERIAL";
const CHANNEL: &[u8] = br#"{"sequence":1,"state":"A"}"#;

struct Fixture {
    dir: tempfile::TempDir,
    /// Kept open so the socket file stays a live socket.
    _socket: std::os::unix::net::UnixListener,
}

impl Fixture {
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

fn mkfifo(path: &Path) {
    mkfifoat(CWD, path, Mode::from_raw_mode(0o644)).expect("mkfifo");
}

/// `root/` with one good channel state and every kind of hostile entry; `outside/` beside
/// it with the secret, a folder holding another, and a FIFO.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("outside");
    let root = dir.path().join("root");
    fs::create_dir_all(out.join("dir")).expect("dir");
    fs::write(out.join("secret.key"), SECRET).expect("secret");
    fs::write(out.join("dir/secret.json"), SECRET).expect("secret");
    mkfifo(&out.join("pipe"));
    for d in ["app/stable", "app/releases/1.0.0"] {
        fs::create_dir_all(root.join(d)).expect("dir");
    }
    fs::write(root.join("app/stable/channel.json"), CHANNEL).expect("channel");
    symlink(
        "../../outside/secret.key",
        root.join("app/escape-file.json"),
    )
    .expect("link");
    symlink(out.join("secret.key"), root.join("escape-abs.json")).expect("link");
    symlink("../../outside/dir", root.join("app/escape-dir")).expect("link");
    symlink(
        out.join("secret.key"),
        root.join("app/releases/1.0.0/deep.json"),
    )
    .expect("link");
    symlink(out.join("dir"), root.join("app/releases/link-dir")).expect("link");
    symlink("channel.json", root.join("app/stable/alias.json")).expect("link");
    symlink(out.join("pipe"), root.join("app/outside-pipe.json")).expect("link");
    mkfifo(&root.join("app/pipe.json"));
    let socket =
        std::os::unix::net::UnixListener::bind(root.join("app/socket.json")).expect("socket");
    fs::create_dir_all(dir.path().join("data")).expect("data");
    Fixture {
        dir,
        _socket: socket,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// GET and HEAD of `rel` under `/updates/` and at the root: 404, no `ETag`, no secret.
async fn assert_not_found(http: &reqwest::Client, base: &str, rel: &str) {
    for prefix in ["/updates/", "/"] {
        let url = format!("{base}{prefix}{rel}");
        for head in [false, true] {
            let req = if head {
                http.head(&url)
            } else {
                http.get(&url)
            };
            let res = req
                .header(IF_NONE_MATCH, "*")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url} (head: {head}): {e}"));
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{url} (head: {head})");
            assert!(res.headers().get(ETAG).is_none(), "{url} has an ETag");
            let body = res.text().await.expect("body");
            assert!(!body.contains(SECRET), "{url} served the secret");
        }
    }
}

#[tokio::test]
async fn symlinks_leaving_the_root_are_not_found_and_never_read() {
    let f = fixture();
    let mut s = ChildServer::serve(&f.root(), &f.data(), &[], &[]);
    let http = client();
    let good = http
        .get(format!("{}/updates/app/stable/channel.json", s.url))
        .send()
        .await
        .expect("get");
    assert_eq!(good.status(), StatusCode::OK);
    assert_eq!(good.bytes().await.expect("body").as_ref(), CHANNEL);
    for rel in [
        "app/escape-file.json",
        "escape-abs.json",
        "app/escape-dir/secret.json",
        "app/releases/1.0.0/deep.json",
        "app/releases/link-dir/secret.json",
        // A link that stays inside the root is not followed either: the tree the
        // publisher writes has none.
        "app/stable/alias.json",
    ] {
        assert_not_found(&http, &s.url, rel).await;
    }
    s.terminate(Duration::from_secs(30));
    let log = s.log();
    assert!(s.error_lines().is_empty(), "ERROR lines: {log}");
    assert!(!log.contains("outside") && !log.contains(SECRET), "{log}");
}

#[tokio::test]
async fn fifos_and_sockets_in_the_tree_are_not_found_at_once() {
    let f = fixture();
    let mut s = ChildServer::serve(&f.root(), &f.data(), &[], &[]);
    let http = client();
    // Each request has the client's 10 s timeout: one waiting for a writer on a FIFO fails.
    for rel in [
        "app/pipe.json",
        "app/outside-pipe.json",
        "app/socket.json",
        "app/pipe.json/below",
    ] {
        assert_not_found(&http, &s.url, rel).await;
    }
    s.terminate(Duration::from_secs(30));
    assert!(s.error_lines().is_empty(), "{}", s.log());
}

#[tokio::test]
async fn overlong_names_and_other_lookup_errors_are_404_without_an_error_log() {
    let f = fixture();
    let mut s = ChildServer::serve(&f.root(), &f.data(), &[], &[]);
    let http = client();
    let long = "a".repeat(256);
    let longer = "b".repeat(4000);
    let at_limit = "c".repeat(255);
    for rel in [
        format!("app/{long}"),
        format!("app/stable/{longer}.json"),
        format!("{long}/stable/channel.json"),
        format!("app/{at_limit}"),
        "app/stable/channel.json/below".to_string(),
        "app/stable".to_string(),
        "app/stable/".to_string(),
        "app/stable/missing.json".to_string(),
    ] {
        assert_not_found(&http, &s.url, &rel).await;
    }
    s.terminate(Duration::from_secs(30));
    assert!(s.error_lines().is_empty(), "{}", s.log());
}

#[tokio::test]
async fn encoded_separators_nul_backslashes_and_dot_dot_are_refused() {
    let f = fixture();
    let mut s = ChildServer::serve(&f.root(), &f.data(), &[], &[]);
    let ok = raw_get(s.addr, "GET", b"/updates/app/stable/channel.json").await;
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert_eq!(ok.body, CHANNEL);
    for target in [
        &b"/updates/app%2Fstable%2Fchannel.json"[..],
        b"/updates/app%2fstable/channel.json",
        b"/app%2fstable/channel.json",
        b"/updates/app%5Cstable%5Cchannel.json",
        b"/updates/app\\stable\\channel.json",
        b"/updates/app/stable/channel.json%00",
        b"/updates/app/stable/channel.json%00.png",
        b"/updates/app/../app/stable/channel.json",
        b"/updates/app/stable/%2e%2e/stable/channel.json",
        b"/updates/%2e%2e/outside/secret.key",
        b"/updates/..%2f..%2foutside/secret.key",
        b"/../outside/secret.key",
        b"/updates/app/stable/%zz",
        b"/updates/app/stable/%c0%af",
    ] {
        for method in ["GET", "HEAD"] {
            let res = raw_get(s.addr, method, target).await;
            let shown = String::from_utf8_lossy(target);
            assert!(
                res.status == 404 || res.status == 400,
                "{method} {shown}: {}",
                res.head
            );
            assert!(res.header("etag").is_none(), "{method} {shown}");
            assert!(
                !String::from_utf8_lossy(&res.body).contains(SECRET),
                "{method} {shown}"
            );
        }
    }
    s.terminate(Duration::from_secs(30));
    assert!(s.error_lines().is_empty(), "{}", s.log());
}

#[tokio::test]
async fn a_range_in_a_unit_other_than_bytes_is_ignored() {
    let f = fixture();
    let mut s = ChildServer::serve(&f.root(), &f.data(), &[], &[]);
    let http = client();
    let url = format!("{}/updates/app/stable/channel.json", s.url);
    for unit in ["items=0-4", "lines=0-1", "Items=0-4"] {
        let res = http
            .get(&url)
            .header(reqwest::header::RANGE, unit)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::OK, "{unit}");
        assert!(res.headers().get(reqwest::header::CONTENT_RANGE).is_none());
        assert_eq!(res.bytes().await.expect("body").as_ref(), CHANNEL, "{unit}");
    }
    // Bytes still work, and a malformed byte range is still refused.
    let res = http
        .get(&url)
        .header(reqwest::header::RANGE, "bytes=0-4")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.expect("body").as_ref(), &CHANNEL[..5]);
    let res = http
        .get(&url)
        .header(reqwest::header::RANGE, "bytes=4-0")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    s.terminate(Duration::from_secs(30));
}

/// While another thread keeps swapping the manifest between a regular file and a link to a
/// FIFO outside the tree, `verify_tree` never blocks on the FIFO (the walk lists a regular
/// file; the read that follows must not follow the link the file became).
#[test]
fn export_never_follows_a_link_swapped_in_after_its_walk() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("root");
    let rel = "app/releases/1.0.0/manifest.json";
    fs::create_dir_all(root.join("app/releases/1.0.0")).expect("dir");
    let pipe = dir.path().join("pipe");
    mkfifo(&pipe);
    let manifest = root.join(rel);
    fs::write(&manifest, b"not even a signed document").expect("manifest");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let keys = TreeKeys {
        release: TrustedKeys::single(key.public_key().clone()),
        rollout: TrustedKeys::single(key.public_key().clone()),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (manifest, pipe) = (manifest.clone(), pipe.clone());
        let tmp_file = root.join("app/releases/1.0.0/.file");
        let tmp_link = root.join("app/releases/1.0.0/.link");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                fs::write(&tmp_file, b"not even a signed document").expect("tmp");
                fs::rename(&tmp_file, &manifest).expect("rename");
                let _ = fs::remove_file(&tmp_link);
                symlink(&pipe, &tmp_link).expect("link");
                fs::rename(&tmp_link, &manifest).expect("rename");
            }
        })
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let verifier = {
        let root = root.clone();
        std::thread::spawn(move || {
            for _ in 0..2_000 {
                // Refused (unsigned) or empty (the walk saw the link): never blocked.
                let _ = verify_tree(&root, &keys, chrono::Utc::now());
            }
            let _ = done_tx.send(());
        })
    };
    let finished = done_rx.recv_timeout(Duration::from_secs(60)).is_ok();
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    if !finished {
        // Release the blocked reader, then fail.
        let _ = fs::write(&pipe, b"x");
        panic!("verify_tree blocked on a FIFO outside the tree (it followed a link)");
    }
    verifier.join().expect("verifier");
}
