//! `ETag`, `If-None-Match`, `If-Match`, `Range` and `If-Range` on the served update tree,
//! over real HTTP (under `/updates/` and at the root).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::TestServer;
use reqwest::header::{ETAG, IF_MATCH, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;

const ARTIFACT: &str = "app/releases/1.0.0/app-1.0.0-linux-x64.tar.gz";
const CHANNEL: &str = "app/stable/channel.json";

/// Writes `bytes` at `path` through a temporary file and a rename (as the publisher does),
/// then pins the file's mtime, so only the content tells versions apart.
fn replace(path: &Path, bytes: &[u8], mtime: SystemTime) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).expect("write");
    fs::File::options()
        .write(true)
        .open(&tmp)
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
    fs::rename(&tmp, path).expect("rename");
}

fn artifact_bytes(seed: u8) -> Vec<u8> {
    (0..(2 << 20) as u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn server(root: &Path) -> TestServer {
    TestServer::tree(root).await
}

fn mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    fs::create_dir_all(dir.path().join("app/stable")).expect("dir");
    fs::create_dir_all(dir.path().join("app/releases/1.0.0")).expect("dir");
    replace(
        &dir.path().join(CHANNEL),
        br#"{"sequence":1,"state":"A"}"#,
        mtime(),
    );
    replace(&dir.path().join(ARTIFACT), &artifact_bytes(0), mtime());
    dir
}

fn etag(res: &reqwest::Response) -> String {
    res.headers()
        .get(ETAG)
        .expect("ETag")
        .to_str()
        .expect("ascii")
        .to_string()
}

#[tokio::test]
async fn if_none_match_answers_304_under_updates_and_at_the_root() {
    let dir = tree();
    let mut s = server(dir.path()).await;
    let http = reqwest::Client::new();
    for prefix in ["/updates/", "/"] {
        let url = format!("{}{prefix}{CHANNEL}", s.url());
        let res = http.get(&url).send().await.expect("get");
        assert_eq!(res.status(), StatusCode::OK);
        let tag = etag(&res);
        assert!(tag.starts_with('"') && !tag.starts_with("W/"), "{tag}");
        assert_eq!(
            res.bytes().await.expect("body").as_ref(),
            br#"{"sequence":1,"state":"A"}"#
        );

        let res = http
            .get(&url)
            .header(IF_NONE_MATCH, &tag)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(etag(&res), tag);
        assert!(res.bytes().await.expect("body").is_empty());

        // Weak comparison for If-None-Match, lists, and `*`.
        for inm in [format!("W/{tag}"), format!("\"other\", {tag}"), "*".into()] {
            let res = http
                .get(&url)
                .header(IF_NONE_MATCH, inm.as_str())
                .send()
                .await
                .expect("get");
            assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{inm}");
        }
        let res = http
            .get(&url)
            .header(IF_NONE_MATCH, "\"stale\"")
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::OK);

        let res = http.head(&url).send().await.expect("head");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(etag(&res), tag);
    }
    s.stop().await;
}

#[tokio::test]
async fn resigned_state_of_same_size_and_mtime_gets_a_new_etag() {
    let dir = tree();
    let mut s = server(dir.path()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/updates/{CHANNEL}", s.url());
    let old = etag(&http.get(&url).send().await.expect("get"));
    // Same length, same mtime (a re-sign within one timestamp tick): only the bytes differ.
    replace(
        &dir.path().join(CHANNEL),
        br#"{"sequence":2,"state":"B"}"#,
        mtime(),
    );
    let res = http
        .get(&url)
        .header(IF_NONE_MATCH, &old)
        .send()
        .await
        .expect("get");
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a client polling must see the new state"
    );
    assert_ne!(etag(&res), old);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        br#"{"sequence":2,"state":"B"}"#
    );
    s.stop().await;
}

#[tokio::test]
async fn range_with_if_range_resumes_only_the_same_file() {
    let dir = tree();
    let mut s = server(dir.path()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/updates/{ARTIFACT}", s.url());
    let full = artifact_bytes(0);

    let res = http
        .get(&url)
        .header(RANGE, "bytes=100-199")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let tag = etag(&res);
    let last_modified = res
        .headers()
        .get(LAST_MODIFIED)
        .expect("Last-Modified")
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(res.bytes().await.expect("body").as_ref(), &full[100..200]);

    // A matching If-Range (tag or date) keeps the range.
    for validator in [tag.as_str(), last_modified.as_str()] {
        let res = http
            .get(&url)
            .header(RANGE, "bytes=1000-")
            .header(IF_RANGE, validator)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{validator}");
        assert_eq!(res.bytes().await.expect("body").as_ref(), &full[1000..]);
    }

    // The file was replaced (same size, same mtime): the old tag must not splice bytes of
    // the new file onto the old download; the whole new file comes back.
    let new = artifact_bytes(7);
    replace(&dir.path().join(ARTIFACT), &new, mtime());
    let res = http
        .get(&url)
        .header(RANGE, "bytes=1000-")
        .header(IF_RANGE, &tag)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(etag(&res), tag);
    assert_eq!(res.bytes().await.expect("body").as_ref(), new.as_slice());

    // A date that is not the file's Last-Modified also drops the range; weak tags never match.
    for stale in ["Fri, 09 Aug 1996 14:21:40 GMT", "W/\"x\""] {
        let res = http
            .get(&url)
            .header(RANGE, "bytes=0-9")
            .header(IF_RANGE, stale)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::OK, "{stale}");
    }

    // If-Match with a stale tag fails; with the current one it serves.
    let res = http
        .get(&url)
        .header(IF_MATCH, &tag)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let current = etag(&http.head(&url).send().await.expect("head"));
    let res = http
        .get(&url)
        .header(IF_MATCH, &current)
        .header(RANGE, "bytes=0-9")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    s.stop().await;
}

#[tokio::test]
async fn traversal_and_missing_files_are_still_refused() {
    let dir = tree();
    let mut s = server(dir.path()).await;
    let http = reqwest::Client::new();
    for path in [
        "/updates/..%2fsecret",
        "/updates/app/%2e%2e/%2e%2e/secret",
        "/updates/app/stable/missing.json",
        "/updates/app/stable",
    ] {
        let res = http
            .get(format!("{}{path}", s.url()))
            .header(IF_NONE_MATCH, "*")
            .send()
            .await
            .expect("get");
        assert!(
            res.status().is_client_error() || res.status().is_redirection(),
            "{path}: {}",
            res.status()
        );
        assert_ne!(res.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(res.headers().get(ETAG).is_none(), "{path}");
    }
    s.stop().await;
}
