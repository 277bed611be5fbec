//! The hosted remote config: revisions published (signed by the server or by the
//! publisher), `GET /config/{app}.json` with its strong `ETag`, the SSE stream (current
//! revision first, every new one pushed, `Last-Event-ID` resume, heartbeats, the
//! subscriber bound), rollback as a new revision, and `railgun config` against the real
//! server. Both databases.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use railgun_core::flags::sign_config;
use railgun_core::flags::stream::{revision_of, with_revision, SseEvent, SseItem, SseParser};
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use serde_json::{json, Value};

use crate::config_support::{doc, hosted, publish, publish_raw, server, verified, APP};
use crate::db::Kind;
use crate::support::{within, TestServer, ADMIN, READ};

/// An open config stream read with the core's parser.
struct Stream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    parser: SseParser,
    queued: std::collections::VecDeque<SseItem>,
}

impl Stream {
    async fn open(s: &TestServer, last_id: Option<u64>) -> reqwest::Response {
        let mut rq = s.http.get(format!("{}/config/{APP}/stream", s.url));
        if let Some(id) = last_id {
            rq = rq.header("Last-Event-ID", id.to_string());
        }
        within("stream", rq.send()).await.expect("stream")
    }

    async fn connect(s: &TestServer, last_id: Option<u64>) -> Self {
        let r = Self::open(s, last_id).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().expect("ct"),
            "text/event-stream"
        );
        Self {
            body: r.bytes_stream().boxed(),
            parser: SseParser::new(1 << 20),
            queued: Default::default(),
        }
    }

    async fn item(&mut self) -> Option<SseItem> {
        loop {
            if let Some(i) = self.queued.pop_front() {
                return Some(i);
            }
            let chunk = self.body.next().await?.ok()?;
            self.queued
                .extend(self.parser.push(&chunk).expect("event size"));
        }
    }

    async fn event(&mut self) -> SseEvent {
        within("config event", async {
            loop {
                match self.item().await.expect("stream ended") {
                    SseItem::Event(e) => return e,
                    SseItem::Comment => {}
                }
            }
        })
        .await
    }

    /// No event within `d` (heartbeats allowed).
    async fn quiet_for(&mut self, d: Duration) {
        let r = tokio::time::timeout(d, async {
            loop {
                if let Some(SseItem::Event(e)) = self.item().await {
                    return e;
                }
            }
        })
        .await;
        assert!(r.is_err(), "unexpected event {r:?}");
    }
}

async fn server_signs_each_revision_and_serves_it_with_a_strong_etag(kind: Kind) {
    let Some((s, key)) = server(kind, "config", |_, _| {}).await else {
        return;
    };
    let missing = s.get(&format!("/config/{APP}.json"), None).await;
    assert_eq!(missing.status(), 404);
    let first = publish(&s, doc(false)).await;
    assert_eq!(first["revision"], 1);
    assert_eq!(first["signed"], true);
    let r = s.get(&format!("/config/{APP}.json"), None).await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    assert!(etag.starts_with("\"r1-"), "{etag}");
    let body = r.text().await.expect("body");
    assert!(!body.contains('\n'), "one line");
    let c = verified(&key, &body);
    assert_eq!(revision_of(&c), Some(1));
    // If-None-Match: 304 while current, 200 with a new tag after the next publish.
    let cond = s
        .http
        .get(format!("{}/config/{APP}.json", s.url))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(cond.status(), 304);
    publish(&s, doc(true)).await;
    let cond = s
        .http
        .get(format!("{}/config/{APP}.json", s.url))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(cond.status(), 200);
    assert_ne!(cond.headers()["etag"].to_str().expect("etag"), etag);
    let c = verified(&key, &cond.text().await.expect("body"));
    assert_eq!(revision_of(&c), Some(2));
    assert!(c.emergency_kill_switch);
    // A stamped revision in the submitted document is overridden by the server's.
    let v = publish(&s, with_revision(&doc(false), 1).expect("stamp")).await;
    assert_eq!(v["revision"], 3);
}

async fn stream_sends_the_current_revision_then_pushes_each_new_one(kind: Kind) {
    let Some((s, key)) = server(kind, "config", |_, _| {}).await else {
        return;
    };
    publish(&s, doc(false)).await;
    let mut st = Stream::connect(&s, None).await;
    let e = st.event().await;
    assert_eq!((e.event.as_str(), e.id.as_deref()), ("config", Some("1")));
    assert!(!verified(&key, &e.data).emergency_kill_switch);
    publish(&s, doc(true)).await;
    let e = st.event().await;
    assert_eq!(e.id.as_deref(), Some("2"));
    let c = verified(&key, &e.data);
    assert!(c.emergency_kill_switch);
    assert_eq!(revision_of(&c), Some(2));
}

async fn a_dropped_stream_resumes_with_last_event_id_and_misses_nothing(kind: Kind) {
    let Some((s, key)) = server(kind, "config", |_, _| {}).await else {
        return;
    };
    publish(&s, doc(false)).await;
    let mut st = Stream::connect(&s, None).await;
    assert_eq!(st.event().await.id.as_deref(), Some("1"));
    drop(st);
    // Published while the client was away.
    publish(&s, doc(true)).await;
    publish(&s, doc(false)).await;
    let mut st = Stream::connect(&s, Some(1)).await;
    let e = st.event().await;
    assert_eq!(
        e.id.as_deref(),
        Some("3"),
        "the newest revision is sent at once"
    );
    assert_eq!(revision_of(&verified(&key, &e.data)), Some(3));
    // Up to date: nothing is re-sent.
    let mut current = Stream::connect(&s, Some(3)).await;
    current.quiet_for(Duration::from_millis(300)).await;
    publish(&s, doc(true)).await;
    assert_eq!(current.event().await.id.as_deref(), Some("4"));
    assert_eq!(st.event().await.id.as_deref(), Some("4"));
}

async fn rollback_republishes_an_older_document_as_a_new_revision(kind: Kind) {
    let Some((s, key)) = server(kind, "config", |_, _| {}).await else {
        return;
    };
    publish(&s, doc(false)).await;
    publish(&s, doc(true)).await;
    let v = s
        .admin(&format!("/admin/config/{APP}/rollback"), json!({"to": 1}))
        .await;
    assert_eq!(
        (v["revision"].as_u64(), v["rollbackOf"].as_u64()),
        (Some(3), Some(1))
    );
    let body = hosted(&s).await;
    let c = verified(&key, &body);
    assert_eq!(revision_of(&c), Some(3));
    assert!(!c.emergency_kill_switch, "revision 1's content");
    let h = s.read(&format!("/admin/config/{APP}/history")).await;
    let revs: Vec<u64> = h["revisions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["revision"].as_u64().expect("n"))
        .collect();
    assert_eq!(revs, vec![3, 2, 1], "the history is kept, newest first");
    let missing = s
        .post(
            &format!("/admin/config/{APP}/rollback"),
            Some(ADMIN),
            &json!({"to": 9}),
        )
        .await;
    assert_eq!(missing.status(), 404);
}

async fn publisher_signed_configs_are_verified_and_unsigned_ones_refused(kind: Kind) {
    let publisher = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let pub_pem = publisher.public_key().to_pem();
    let Some(s) = TestServer::with(kind, "config", Utc::now(), move |c| {
        let p = c.root.parent().expect("dir").join("publisher.pub");
        std::fs::write(&p, pub_pem).expect("pub");
        c.config_public_keys = vec![p];
    })
    .await
    else {
        return;
    };
    // Unsigned: refused (the server verifies and cannot sign).
    let r = publish_raw(&s, doc(false)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "bad_signature", "{v}");
    // Signed by another key: refused.
    let stranger = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let bad = sign_config(&with_revision(&doc(false), 1).expect("s"), &[&stranger]).expect("sign");
    let r = publish_raw(&s, serde_json::to_vec(&bad).expect("j")).await;
    assert_eq!(r.status(), 400);
    // Signed without a revision in the payload: refused.
    let norev = sign_config(&doc(false), &[&publisher]).expect("sign");
    let r = publish_raw(&s, serde_json::to_vec(&norev).expect("j")).await;
    assert_eq!(r.status(), 400);
    // Properly signed: stored as is, at its own revision.
    let good =
        sign_config(&with_revision(&doc(false), 5).expect("s"), &[&publisher]).expect("sign");
    let v = publish(&s, serde_json::to_vec(&good).expect("j")).await;
    assert_eq!(v["revision"], 5);
    let body = hosted(&s).await;
    assert_eq!(revision_of(&verified(&publisher, &body)), Some(5));
    // A replay of an older (or the same) signed revision: 409, nothing changes.
    let old = sign_config(&with_revision(&doc(true), 4).expect("s"), &[&publisher]).expect("sign");
    let r = publish_raw(&s, serde_json::to_vec(&old).expect("j")).await;
    assert_eq!(r.status(), 409);
    let r = publish_raw(&s, serde_json::to_vec(&good).expect("j")).await;
    assert_eq!(r.status(), 409);
    // Without the server's key, rolling back a signed revision says what is needed.
    let r = s
        .post(
            &format!("/admin/config/{APP}/rollback"),
            Some(ADMIN),
            &json!({"to": 5}),
        )
        .await;
    assert_eq!(r.status(), 503);
}

async fn bad_requests_are_typed_errors(kind: Kind) {
    let Some((s, _)) = server(kind, "config", |_, _| {}).await else {
        return;
    };
    let r = publish_raw(&s, b"not json".to_vec()).await;
    assert_eq!(r.status(), 400);
    let r = publish_raw(&s, br#"{"flags": 3}"#.to_vec()).await;
    assert_eq!(r.status(), 400);
    let r = publish_raw(&s, br#"[1,2]"#.to_vec()).await;
    assert_eq!(r.status(), 400);
    // Tokens first.
    let r = s
        .http
        .post(format!("{}/admin/config/{APP}", s.url))
        .body(doc(false))
        .send()
        .await
        .expect("p");
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(format!("{}/admin/config/{APP}", s.url))
        .bearer_auth(READ)
        .body(doc(false))
        .send()
        .await
        .expect("p");
    assert_eq!(r.status(), 403);
    let r = s.get("/config/..%2Fx.json", None).await;
    assert_eq!(r.status(), 400);
    let r = s.get("/config/rail-gun.yaml", None).await;
    assert_eq!(r.status(), 404);
    // Nothing hosted yet (every publish above was refused): no stream, clients poll.
    let r = s.get(&format!("/config/{APP}/stream"), None).await;
    assert_eq!(r.status(), 404);
}

async fn streams_send_heartbeats_and_are_bounded(kind: Kind) {
    let Some((s, _)) = server(kind, "config", |c, _| {
        c.config_heartbeat = Duration::from_millis(100);
        c.config_max_subscribers = 2;
    })
    .await
    else {
        return;
    };
    publish(&s, doc(false)).await;
    let mut a = Stream::connect(&s, None).await;
    within("heartbeat", async {
        while a.item().await != Some(SseItem::Comment) {}
    })
    .await;
    let _b = Stream::connect(&s, None).await;
    let r = Stream::open(&s, None).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    drop(a);
    // The slot is given back when a stream ends.
    within("slot freed", async {
        loop {
            let r = Stream::open(&s, None).await;
            if r.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// `railgun config ARGS… --server URL --app APP` with the admin token (off the runtime's
/// worker, which it would block): success, stdout, stderr.
fn config_cli(s: &TestServer, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_railgun"));
    cmd.arg("config")
        .args(args)
        .args(["--server", &s.url, "--app", APP])
        .env("RAILGUN_ADMIN_TOKEN", ADMIN);
    let out = tokio::task::block_in_place(|| cmd.output()).expect("railgun config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

async fn the_cli_publishes_rolls_back_and_lists_revisions(kind: Kind) {
    let publisher = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let pub_pem = publisher.public_key().to_pem();
    let Some((s, server_key)) = server(kind, "config", move |c, dir| {
        let p = dir.join("publisher.pub");
        std::fs::write(&p, pub_pem).expect("pub");
        c.config_public_keys = vec![p];
    })
    .await
    else {
        return;
    };
    let dir = s.dir.path().to_path_buf();
    let file = dir.join("config.json");
    std::fs::write(&file, doc(false)).expect("doc");
    let key_file = dir.join("publisher.key");
    publisher.write_pem_file(&key_file).expect("key");
    let f = file.to_str().expect("utf8");
    let k = key_file.to_str().expect("utf8");
    let (ok, out, err) = config_cli(&s, &["publish", "--file", f]);
    assert!(ok, "{err}");
    assert!(
        out.contains("revision 1") && out.contains("signed"),
        "{out}"
    );
    std::fs::write(&file, doc(true)).expect("doc");
    let (ok, out, err) = config_cli(&s, &["publish", "--file", f, "--key", k]);
    assert!(ok, "{err}");
    assert!(out.contains("revision 2"), "{out}");
    let body = hosted(&s).await;
    let c = verified(&publisher, &body);
    assert!(
        c.emergency_kill_switch && revision_of(&c) == Some(2),
        "signed by the publisher's key"
    );
    let (ok, out, err) = config_cli(&s, &["rollback", "--to", "1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("revision 3") && out.contains("republishes revision 1"),
        "{out}"
    );
    let body = hosted(&s).await;
    assert!(!verified(&server_key, &body).emergency_kill_switch);
    let (ok, out, err) = config_cli(&s, &["rollback", "--to", "2", "--key", k]);
    assert!(ok, "{err}");
    assert!(out.contains("revision 4"), "{out}");
    let body = hosted(&s).await;
    assert!(verified(&publisher, &body).emergency_kill_switch);
    let (ok, out, err) = config_cli(&s, &["history"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].contains("rollback of 1"), "{out}");
    // An invalid document is refused before anything is signed or sent.
    std::fs::write(&file, br#"{"flags": 3}"#).expect("doc");
    let (ok, _, err) = config_cli(&s, &["publish", "--file", f, "--key", k]);
    assert!(!ok && err.contains("flags"), "{err}");
}

both_stores!(
    server_signs_each_revision_and_serves_it_with_a_strong_etag,
    stream_sends_the_current_revision_then_pushes_each_new_one,
    a_dropped_stream_resumes_with_last_event_id_and_misses_nothing,
    rollback_republishes_an_older_document_as_a_new_revision,
    publisher_signed_configs_are_verified_and_unsigned_ones_refused,
    bad_requests_are_typed_errors,
    streams_send_heartbeats_and_are_bounded,
    the_cli_publishes_rolls_back_and_lists_revisions,
);
