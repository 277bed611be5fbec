//! The flag client against a real HTTP server on loopback: signed documents, tampering,
//! broken servers, ETag, the offline cache, announcements across restarts and maintenance
//! windows with an injected clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use railgun_core::clock::ManualClock;
use railgun_core::flags::{
    sign_config, FeatureFlags, FlagsConfig, FlagsError, Reason, RefreshOutcome,
};
use railgun_core::store::Store;
use railgun_core::trust::{
    DsseError, Envelope, KeyAlgorithm, PrivateKey, TrustedKeys, PAYLOAD_RELEASE,
};
use serde_json::json;

#[derive(Clone)]
enum Reply {
    Doc { body: Vec<u8>, etag: Option<String> },
    Status(u16),
}

#[derive(Clone)]
struct Server {
    reply: Arc<Mutex<Reply>>,
    hits: Arc<AtomicUsize>,
    if_none_match: Arc<Mutex<Vec<Option<String>>>>,
}

impl Server {
    fn set(&self, r: Reply) {
        *self.reply.lock().expect("lock") = r;
    }
    fn doc(&self, body: Vec<u8>, etag: Option<&str>) {
        self.set(Reply::Doc {
            body,
            etag: etag.map(str::to_string),
        });
    }
}

async fn serve_config(State(s): State<Server>, headers: HeaderMap) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let inm = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.if_none_match.lock().expect("lock").push(inm.clone());
    let reply = s.reply.lock().expect("lock").clone();
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Reply::Doc { body, etag } => {
            if let (Some(e), Some(i)) = (&etag, &inm) {
                if e == i {
                    return StatusCode::NOT_MODIFIED.into_response();
                }
            }
            let mut resp = body.into_response();
            if let Some(e) = etag {
                resp.headers_mut()
                    .insert("etag", HeaderValue::from_str(&e).expect("etag"));
            }
            resp
        }
    }
}

/// Starts the config server; returns its URL, control handle and task.
async fn start() -> (String, Server, tokio::task::JoinHandle<()>) {
    let server = Server {
        reply: Arc::new(Mutex::new(Reply::Status(404))),
        hits: Arc::new(AtomicUsize::new(0)),
        if_none_match: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new()
        .route("/config.json", axum::routing::get(serve_config))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/config.json"), server, task)
}

fn key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key")
}

fn trusted(k: &PrivateKey) -> TrustedKeys {
    TrustedKeys::single(k.public_key().clone())
}

fn config_bytes(flag_on: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": if flag_on { "on" } else { "off" },
        "lastUpdated": "2026-11-29T00:00:00Z",
        "flags": [{"key": "composer", "enabled": flag_on, "rolloutPercentage": 100}]
    }))
    .expect("json")
}

fn signed(doc: &[u8], k: &PrivateKey) -> Vec<u8> {
    sign_config(doc, &[k]).expect("sign").to_json_bytes()
}

fn client(url: &str, store: &Arc<Store>, keys: Option<TrustedKeys>, version: &str) -> FeatureFlags {
    let mut cfg = FlagsConfig::new("rail-gun", "user-1", version.parse().expect("version"));
    cfg.url = Some(url.to_string());
    cfg.keys = keys;
    cfg.request_timeout = Duration::from_secs(20);
    FeatureFlags::new(cfg, store.clone()).expect("client")
}

#[tokio::test]
async fn signed_config_is_cached_and_used_offline_after_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("railgun.db");
    let k = key();
    let (url, server, task) = crate::within("the config server", start()).await;
    server.doc(signed(&config_bytes(true), &k), Some("\"v1\""));
    {
        let store = Arc::new(Store::open(&db).expect("store"));
        let flags = client(&url, &store, Some(trusted(&k)), "1.0.0");
        assert!(!flags.get("composer"), "nothing before the first fetch");
        assert_eq!(
            crate::within("refresh", flags.refresh())
                .await
                .expect("refresh"),
            RefreshOutcome::Updated { changed: true }
        );
        assert!(flags.get("composer"));
    }
    // The server goes away; the app restarts offline.
    task.abort();
    let _ = task.await;
    let store = Arc::new(Store::open(&db).expect("reopen"));
    let flags = client(&url, &store, Some(trusted(&k)), "1.0.0");
    assert!(flags.get("composer"), "the cached config is used offline");
    assert_eq!(flags.details("composer").reason, Reason::Static);
    match crate::within("refresh", flags.refresh()).await {
        Err(e @ FlagsError::Network { .. }) => {
            let cause = std::error::Error::source(&e).expect("the transport error is kept");
            assert!(cause.is::<reqwest::Error>(), "{cause:?}");
            // One line: the URL, then the causes, each once.
            let line = railgun_core::error::chain(&e).to_string();
            assert!(line.contains(&url) && !line.contains('\n'), "{line}");
        }
        other => panic!("expected a network error, got {other:?}"),
    }
    assert!(
        flags.get("composer"),
        "a failed refresh keeps the last good config"
    );
}

#[tokio::test]
async fn tampered_unsigned_foreign_and_mistyped_documents_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("railgun.db");
    let k = key();
    let (url, server, _task) = crate::within("the config server", start()).await;
    let store = Arc::new(Store::open(&db).expect("store"));
    let flags = client(&url, &store, Some(trusted(&k)), "1.0.0");
    server.doc(signed(&config_bytes(true), &k), None);
    crate::within("refresh", flags.refresh())
        .await
        .expect("good document");
    assert!(flags.get("composer"));

    // Tampered: the payload swapped, the signature kept.
    let mut env: Envelope =
        serde_json::from_slice(&signed(&config_bytes(true), &k)).expect("envelope");
    env.payload = base64::engine::general_purpose::STANDARD.encode(config_bytes(false));
    server.doc(env.to_json_bytes(), None);
    match crate::within("refresh", flags.refresh()).await {
        Err(FlagsError::Signature(DsseError::BadSignature { .. })) => {}
        other => panic!("expected a bad signature, got {other:?}"),
    }
    // Unsigned plain JSON.
    server.doc(config_bytes(false), None);
    match crate::within("refresh", flags.refresh()).await {
        Err(FlagsError::Signature(_)) => {}
        other => panic!("expected a refused unsigned document, got {other:?}"),
    }
    // Signed by a key that is not trusted.
    server.doc(signed(&config_bytes(false), &key()), None);
    match crate::within("refresh", flags.refresh()).await {
        Err(FlagsError::Signature(DsseError::UntrustedKey { .. })) => {}
        other => panic!("expected an untrusted key, got {other:?}"),
    }
    // Signed by the right key, but as a release manifest.
    let env = Envelope::sign(PAYLOAD_RELEASE, &config_bytes(false), &[&k]).expect("sign");
    server.doc(env.to_json_bytes(), None);
    match crate::within("refresh", flags.refresh()).await {
        Err(FlagsError::Signature(DsseError::WrongPayloadType { .. })) => {}
        other => panic!("expected a wrong payload type, got {other:?}"),
    }
    assert!(flags.get("composer"), "the last good config stays");
    drop(flags);
    // The cache still holds the good document.
    let flags = client(&url, &store, Some(trusted(&k)), "1.0.0");
    assert!(flags.get("composer"));
}

#[tokio::test]
async fn cached_unsigned_document_is_ignored_once_keys_are_configured() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (url, server, _task) = crate::within("the config server", start()).await;
    server.doc(config_bytes(true), None);
    let flags = client(&url, &store, None, "1.0.0");
    crate::within("refresh", flags.refresh())
        .await
        .expect("unsigned accepted without keys");
    assert!(flags.get("composer"));
    let flags = client(&url, &store, Some(trusted(&key())), "1.0.0");
    assert!(
        flags.config().is_none(),
        "an unverifiable cache is not trusted"
    );
    assert_eq!(flags.details("composer").reason, Reason::FlagNotFound);
}

#[tokio::test]
async fn garbage_500_and_huge_bodies_keep_the_last_good_config() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (url, server, _task) = crate::within("the config server", start()).await;
    let flags = client(&url, &store, None, "1.0.0");
    server.doc(config_bytes(true), None);
    crate::within("refresh", flags.refresh())
        .await
        .expect("good");

    server.doc(b"<html>502 Bad Gateway</html>".to_vec(), None);
    assert!(matches!(
        crate::within("refresh", flags.refresh()).await,
        Err(FlagsError::Schema(_))
    ));
    server.doc(
        br#"{"flags":[{"key":"composer","enabled":"sometimes"}]}"#.to_vec(),
        None,
    );
    match crate::within("refresh", flags.refresh()).await {
        Err(e @ FlagsError::Schema(_)) => assert!(e.to_string().contains("flags[0].enabled")),
        other => panic!("expected a schema error, got {other:?}"),
    }
    server.set(Reply::Status(500));
    assert!(matches!(
        crate::within("refresh", flags.refresh()).await,
        Err(FlagsError::HttpStatus { status: 500, .. })
    ));
    server.doc(vec![b' '; 50 * 1024 * 1024], None);
    assert!(matches!(
        crate::within("refresh", flags.refresh()).await,
        Err(FlagsError::TooLarge { .. })
    ));
    assert!(flags.get("composer"));
    assert_eq!(flags.config().expect("config").version, "on");
}

/// A server that streams an endless body without Content-Length.
#[tokio::test]
async fn endless_body_without_length_is_cut_at_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sent = Arc::new(AtomicUsize::new(0));
    let sent2 = sent.clone();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
            )
            .await;
        let chunk = vec![b' '; 64 * 1024];
        // 50 MiB at most, stopping when the client hangs up.
        for _ in 0..800 {
            if sock.write_all(&chunk).await.is_err() {
                return;
            }
            sent2.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let flags = client(&format!("http://{addr}/config.json"), &store, None, "1.0.0");
    flags.load_document(&config_bytes(true)).expect("last good");
    assert!(matches!(
        crate::within("refresh", flags.refresh()).await,
        Err(FlagsError::TooLarge { limit, .. }) if limit == 1024 * 1024
    ));
    assert!(flags.get("composer"));
    assert!(sent.load(Ordering::SeqCst) < 50 * 1024 * 1024);
}

#[tokio::test]
async fn etag_is_sent_and_304_keeps_the_config_across_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("railgun.db");
    let (url, server, _task) = crate::within("the config server", start()).await;
    server.doc(config_bytes(true), Some("\"v1\""));
    {
        let store = Arc::new(Store::open(&db).expect("store"));
        let flags = client(&url, &store, None, "1.0.0");
        assert_eq!(
            crate::within("refresh", flags.refresh())
                .await
                .expect("first"),
            RefreshOutcome::Updated { changed: true }
        );
        assert_eq!(
            crate::within("refresh", flags.refresh())
                .await
                .expect("second"),
            RefreshOutcome::NotModified
        );
        assert!(flags.get("composer"));
    }
    let store = Arc::new(Store::open(&db).expect("reopen"));
    let flags = client(&url, &store, None, "1.0.0");
    assert_eq!(
        crate::within("refresh", flags.refresh())
            .await
            .expect("after restart"),
        RefreshOutcome::NotModified
    );
    server.doc(config_bytes(false), Some("\"v2\""));
    let mut rx = flags.subscribe();
    rx.mark_unchanged();
    assert_eq!(
        crate::within("refresh", flags.refresh())
            .await
            .expect("new version"),
        RefreshOutcome::Updated { changed: true }
    );
    assert!(rx.has_changed().expect("open"));
    assert!(!flags.get("composer"));
    let sent = server.if_none_match.lock().expect("lock").clone();
    assert_eq!(
        sent,
        vec![
            None,
            Some("\"v1\"".to_string()),
            Some("\"v1\"".to_string()),
            Some("\"v1\"".to_string())
        ]
    );
}

#[tokio::test]
async fn background_refresh_tells_listeners() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (url, server, _task) = crate::within("the config server", start()).await;
    server.doc(config_bytes(true), None);
    let flags = Arc::new(client(&url, &store, None, "1.0.0"));
    let mut rx = flags.subscribe();
    rx.mark_unchanged();
    let task = flags.spawn_refresh();
    tokio::time::timeout(Duration::from_secs(20), rx.changed())
        .await
        .expect("told within 20 s")
        .expect("sender alive");
    assert!(flags.get("composer"));
    assert!(server.hits.load(Ordering::SeqCst) >= 1);
    task.abort();
}

fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("time")
}

#[tokio::test]
async fn show_once_and_dismissals_survive_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("railgun.db");
    let (url, server, _task) = crate::within("the config server", start()).await;
    let doc = json!({
        "announcements": [
            {"id": "welcome", "type": "info", "title": "Welcome", "message": "Hi",
             "dismissible": true, "showOnce": true},
            {"id": "tips", "type": "info", "title": "Tips", "message": "…",
             "dismissible": true, "showOnce": false},
            {"id": "legal", "type": "warning", "title": "Terms", "message": "…",
             "dismissible": false, "showOnce": false},
            {"id": "sale", "type": "info", "title": "Later", "message": "…",
             "dismissible": true, "showOnce": false,
             "startTime": "2026-12-01T00:00:00Z", "endTime": "2026-12-02T00:00:00Z"},
            {"id": "v2-only", "type": "info", "title": "New", "message": "…",
             "dismissible": true, "showOnce": false, "minVersion": "2.0.0"}
        ]
    });
    server.doc(serde_json::to_vec(&doc).expect("json"), None);
    let clock = ManualClock::new(t("2026-11-30T00:00:00Z"));
    let ids =
        |f: &FeatureFlags| -> Vec<String> { f.announcements().into_iter().map(|a| a.id).collect() };
    {
        let store = Arc::new(Store::open(&db).expect("store"));
        let flags = client(&url, &store, None, "1.5.0").with_clock(Arc::new(clock.clone()));
        crate::within("refresh", flags.refresh())
            .await
            .expect("refresh");
        assert_eq!(ids(&flags), ["welcome", "tips", "legal"]);
        // Still there for the rest of this session.
        assert_eq!(ids(&flags), ["welcome", "tips", "legal"]);
        flags.dismiss("tips").expect("dismiss");
        assert!(matches!(
            flags.dismiss("legal"),
            Err(FlagsError::NotDismissible { .. })
        ));
        assert_eq!(ids(&flags), ["welcome", "legal"]);
    }
    // Restart, offline (from the cache).
    let store = Arc::new(Store::open(&db).expect("reopen"));
    let flags = client(&url, &store, None, "1.5.0").with_clock(Arc::new(clock.clone()));
    assert_eq!(
        ids(&flags),
        ["legal"],
        "showOnce and dismissed never come back"
    );
    clock.set(t("2026-12-01T00:00:00Z"));
    assert_eq!(ids(&flags), ["legal", "sale"], "window start is inclusive");
    clock.set(t("2026-12-02T00:00:00Z"));
    assert_eq!(ids(&flags), ["legal", "sale"], "window end is inclusive");
    clock.set(t("2026-12-02T00:00:01Z"));
    assert_eq!(ids(&flags), ["legal"]);
    // The version filter.
    let v2 = client(&url, &store, None, "2.0.0").with_clock(Arc::new(clock.clone()));
    assert_eq!(ids(&v2), ["legal", "v2-only"]);
}

#[tokio::test]
async fn maintenance_window_edges() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let clock = ManualClock::new(t("2026-12-01T09:59:59Z"));
    let flags = client("http://127.0.0.1:9/none", &store, None, "1.0.0")
        .with_clock(Arc::new(clock.clone()));
    assert!(!flags.maintenance().active, "no config, no maintenance");
    flags
        .load_document(
            &serde_json::to_vec(&json!({"maintenance": {
                "active": false, "message": "Database upgrade",
                "startTime": "2026-12-01T10:00:00Z", "endTime": "2026-12-01T11:00:00Z",
                "allowReadOnly": true}}))
            .expect("json"),
        )
        .expect("load");
    assert!(!flags.maintenance().active, "one second before the start");
    clock.set(t("2026-12-01T10:00:00Z"));
    let m = flags.maintenance();
    assert!(m.active, "at the start");
    assert!(m.allow_read_only);
    assert_eq!(m.message.as_deref(), Some("Database upgrade"));
    clock.set(t("2026-12-01T11:00:00Z"));
    assert!(flags.maintenance().active, "at the end");
    clock.set(t("2026-12-01T11:00:00.001Z"));
    assert!(!flags.maintenance().active, "just after the end");
    // `active` forces it outside the window.
    flags
        .load_document(br#"{"maintenance": {"active": true, "allowReadOnly": false}}"#)
        .expect("load");
    let m = flags.maintenance();
    assert!(m.active && !m.allow_read_only);
}
