//! The core flags client against the real server's hosted config: a kill switch published
//! reaches a running client through the stream (the poll interval is an hour, so nothing
//! else can carry it), a replayed older revision is refused (also after a restart: the
//! highest revision is persisted with the cached document), a blocked stream falls back to
//! polling with `ETag`, and a document signed by a key the client does not trust never
//! changes a flag.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use railgun_core::flags::{FeatureFlags, FlagsConfig, FlagsError, FlagsEvent};
use railgun_core::store::Store;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};

use crate::config_support::{doc, hosted, publish, server, APP};
use crate::db::Kind;
use crate::support::{within, ScriptedServer};

fn client(url: &str, key: &PrivateKey, state: &std::path::Path) -> Arc<FeatureFlags> {
    let mut cfg = FlagsConfig::new(APP, "user-1", "1.0.0".parse().expect("v"));
    cfg.url = Some(url.to_string());
    cfg.keys = Some(TrustedKeys::single(key.public_key().clone()));
    // Polling alone could not deliver anything within a test's deadline.
    cfg.refresh_interval = Duration::from_secs(3600);
    cfg.reconnect_base = Duration::from_millis(50);
    let store = Arc::new(Store::open(state.join("railgun.db")).expect("store"));
    Arc::new(FeatureFlags::new(cfg, store).expect("client"))
}

async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<FlagsEvent>,
    want: impl Fn(&FlagsEvent) -> bool,
) -> FlagsEvent {
    within("flags event", async {
        loop {
            let e = rx.recv().await.expect("events");
            if want(&e) {
                return e;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_published_on_the_server_reaches_a_running_client_through_the_stream() {
    let (s, key) = server(Kind::Sqlite, "", |_, _| {})
        .await
        .expect("SQLite always runs");
    publish(&s, doc(false)).await;
    let state = tempfile::tempdir().expect("dir");
    let flags = client(&format!("{}/config/{APP}.json", s.url), &key, state.path());
    let mut events = flags.subscribe_events();
    let task = flags.spawn_refresh();
    let ready = wait_event(&mut events, |e| e.name() == "READY").await;
    assert_eq!(ready.revision(), Some(1));
    assert!(!flags.is_kill_switch_active());
    publish(&s, doc(true)).await;
    let changed = wait_event(&mut events, |e| e.name() == "CONFIGURATION_CHANGED").await;
    assert_eq!(changed.revision(), Some(2));
    assert!(flags.is_kill_switch_active());
    assert_eq!(flags.kill_switch().message.as_deref(), Some("Stop now"));
    assert!(
        !flags.get("new-composer"),
        "every flag is off under the kill switch"
    );
    assert_eq!(flags.revision(), Some(2));
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_older_revision_is_refused_also_after_a_restart() {
    let (s, key) = server(Kind::Sqlite, "", |_, _| {})
        .await
        .expect("SQLite always runs");
    publish(&s, doc(true)).await;
    let old = hosted(&s).await.into_bytes();
    publish(&s, doc(false)).await;
    let state = tempfile::tempdir().expect("dir");
    let url = format!("{}/config/{APP}.json", s.url);
    let flags = client(&url, &key, state.path());
    flags.refresh().await.expect("fetch");
    assert_eq!(flags.revision(), Some(2));
    // Revision 1 is validly signed but older: refused, nothing changes.
    let err = flags.load_document(&old).expect_err("replay");
    assert!(
        matches!(
            err,
            FlagsError::Replayed {
                got: Some(1),
                have: 2
            }
        ),
        "{err}"
    );
    assert!(!flags.is_kill_switch_active());
    drop(flags);
    // After a restart the highest revision comes back with the cached document.
    let again = client(&url, &key, state.path());
    assert_eq!(again.revision(), Some(2));
    assert!(matches!(
        again.load_document(&old),
        Err(FlagsError::Replayed { .. })
    ));
    // A document without a revision cannot pass either (it predates revisions).
    let plain = railgun_core::flags::sign_config(&doc(true), &[&key]).expect("sign");
    let plain = serde_json::to_vec(&plain).expect("json");
    assert!(matches!(
        again.load_document(&plain),
        Err(FlagsError::Replayed { got: None, .. })
    ));
}

/// Forwards `GET /config/{app}.json` (and `If-None-Match`) to the real server and answers
/// the stream with 404, as a proxy that does not pass event streams would.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    polls: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
}

async fn proxied_doc(State(p): State<Proxy>, headers: HeaderMap) -> Response {
    p.polls.fetch_add(1, Ordering::SeqCst);
    let mut rq = reqwest::Client::new().get(format!("{}/config/{APP}.json", p.upstream));
    if let Some(v) = headers.get("if-none-match") {
        rq = rq.header("if-none-match", v.clone());
    }
    let r = rq.send().await.expect("upstream");
    let status = StatusCode::from_u16(r.status().as_u16()).expect("status");
    let etag = r.headers().get("etag").cloned();
    let body = r.bytes().await.expect("body");
    let mut resp = (status, body).into_response();
    if let Some(e) = etag {
        resp.headers_mut().insert("etag", e);
    }
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stream_blocked_the_client_falls_back_to_polling() {
    let (s, key) = server(Kind::Sqlite, "", |_, _| {})
        .await
        .expect("SQLite always runs");
    publish(&s, doc(false)).await;
    let proxy = Proxy {
        upstream: s.url.clone(),
        polls: Arc::default(),
        streams: Arc::default(),
    };
    let streams = proxy.streams.clone();
    let polls = proxy.polls.clone();
    let router = axum::Router::new()
        .route(&format!("/config/{APP}.json"), get(proxied_doc))
        .route(
            &format!("/config/{APP}/stream"),
            get(|State(p): State<Proxy>| async move {
                p.streams.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_FOUND
            }),
        )
        .with_state(proxy);
    let front = ScriptedServer::spawn(router).await;
    let state = tempfile::tempdir().expect("dir");
    let mut cfg = FlagsConfig::new(APP, "user-1", "1.0.0".parse().expect("v"));
    cfg.url = Some(format!("{}/config/{APP}.json", front.url()));
    cfg.keys = Some(TrustedKeys::single(key.public_key().clone()));
    cfg.refresh_interval = Duration::from_millis(200);
    cfg.reconnect_base = Duration::from_millis(50);
    let store = Arc::new(Store::open(state.path().join("railgun.db")).expect("store"));
    let flags = Arc::new(FeatureFlags::new(cfg, store).expect("client"));
    let mut events = flags.subscribe_events();
    let task = flags.spawn_refresh();
    wait_event(&mut events, |e| e.name() == "READY").await;
    publish(&s, doc(true)).await;
    let changed = wait_event(&mut events, |e| e.name() == "CONFIGURATION_CHANGED").await;
    assert_eq!(changed.revision(), Some(2));
    assert!(flags.is_kill_switch_active());
    assert!(streams.load(Ordering::SeqCst) >= 1, "the stream was tried");
    assert!(polls.load(Ordering::SeqCst) >= 2, "the document was polled");
    task.abort();
    front.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_document_signed_by_an_untrusted_key_changes_nothing() {
    let (s, _server_key) = server(Kind::Sqlite, "", |_, _| {})
        .await
        .expect("SQLite always runs");
    publish(&s, doc(false)).await;
    let other = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let state = tempfile::tempdir().expect("dir");
    let flags = client(
        &format!("{}/config/{APP}.json", s.url),
        &other,
        state.path(),
    );
    let mut events = flags.subscribe_events();
    let task = flags.spawn_refresh();
    let e = wait_event(&mut events, |e| e.name() == "ERROR").await;
    assert!(e.reason().is_some_and(|r| r.contains("signature")), "{e:?}");
    assert!(flags.config().is_none(), "nothing accepted");
    assert_eq!(flags.revision(), None);
    task.abort();
}
