//! Scale-out, fan-out: two real `railgun serve` processes on one PostgreSQL database; a
//! config revision published through one reaches a stream open on the other at once
//! (PostgreSQL `LISTEN`/`NOTIFY`), not at the client's next poll.

use std::time::Duration;

use futures_util::StreamExt;
use railgun_core::flags::stream::{SseItem, SseParser};
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use serde_json::json;

use crate::scale_leader::Cluster;
use crate::support::{utf8, within, ADMIN};

const APP: &str = "rail-gun";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_published_through_one_server_reaches_a_stream_on_another() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key_file = keys.path().join("config.key");
    PrivateKey::generate(KeyAlgorithm::Ed25519)
        .expect("key")
        .write_pem_file(&key_file)
        .expect("write key");
    let Some(c) = Cluster::start(
        "scale",
        2,
        |s, i| s.dir.path().join(format!("updates-{i}")),
        &["--config-key", utf8(&key_file)],
    )
    .await
    else {
        return;
    };
    let publish = |rev: u32| {
        let rq = c
            .http
            .post(format!("{}/admin/config/{APP}", c.url(0)))
            .bearer_auth(ADMIN)
            .json(&json!({"version": "1.0.0", "flags": {"f": {"enabled": rev.is_multiple_of(2)}}}));
        async move {
            let r = within("publish", rq.send()).await.expect("publish");
            assert_eq!(r.status(), 201);
        }
    };
    publish(1).await;
    let r = within(
        "stream",
        c.http
            .get(format!("{}/config/{APP}/stream", c.url(1)))
            .send(),
    )
    .await
    .expect("stream");
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream().boxed();
    let mut parser = SseParser::new(1 << 20);
    let mut ids = Vec::new();
    let mut published = false;
    within("revision 2 on the other server's stream", async {
        while !ids.contains(&"2".to_string()) {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            for item in parser.push(&chunk).expect("event size") {
                if let SseItem::Event(e) = item {
                    ids.push(e.id.clone().unwrap_or_default());
                }
            }
            // The current revision came first: now publish the next through server 0.
            if !published && ids.contains(&"1".to_string()) {
                published = true;
                publish(2).await;
            }
        }
    })
    .await;
    assert_eq!(ids, ["1", "2"]);
    // Sent at once, not at a heartbeat or a poll: well inside the 15 s heartbeat.
    let started = std::time::Instant::now();
    publish(3).await;
    within("revision 3", async {
        loop {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            let got = parser
                .push(&chunk)
                .expect("event size")
                .into_iter()
                .any(|i| matches!(i, SseItem::Event(e) if e.id.as_deref() == Some("3")));
            if got {
                break;
            }
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
