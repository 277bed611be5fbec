//! Scale-out, fan-out: two real `railgun serve` processes on one PostgreSQL database; a
//! config revision published through one reaches a stream open on the other at once
//! (PostgreSQL `LISTEN`/`NOTIFY`), not at the client's next poll; and the dashboard's live
//! feed open on a follower shows the halt the leader's engine decides, its alert, and
//! today's active users counted from events ingested by the leader.

use std::time::Duration;

use futures_util::StreamExt;
use railgun_core::flags::stream::{SseItem, SseParser};
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use serde_json::json;

use crate::scale_leader::Cluster;
use crate::support::{utf8, within, ADMIN, READ};

const APP: &str = "rail-gun";

/// `GET url`, an event stream: its body.
async fn open(
    http: &reqwest::Client,
    url: String,
) -> futures_util::stream::BoxStream<'static, reqwest::Result<impl AsRef<[u8]>>> {
    let r = within("stream", http.get(url).send())
        .await
        .expect("stream");
    assert_eq!(r.status(), 200);
    r.bytes_stream().boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_published_through_one_server_reaches_a_stream_on_another() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key_file = keys.path().join("config.key");
    PrivateKey::generate(KeyAlgorithm::Ed25519)
        .expect("key")
        .write_pem_file(&key_file)
        .expect("write key");
    let Some(c) = Cluster::local(2, &["--config-key", utf8(&key_file)]).await else {
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
    let mut body = open(&c.http, format!("{}/config/{APP}/stream", c.url(1))).await;
    let mut parser = SseParser::new(1 << 20);
    let mut ids = Vec::new();
    let mut published = false;
    within("revision 2 on the other server's stream", async {
        while !ids.contains(&"2".to_string()) {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            for item in parser.push(chunk.as_ref()).expect("event size") {
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
                .push(chunk.as_ref())
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

/// Reads `body` until an event satisfies `done` (at once when one of `seen` does); every
/// event read is kept in `seen` (name, JSON data).
async fn until_event<B: AsRef<[u8]>>(
    what: &str,
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<B>> + Unpin),
    parser: &mut SseParser,
    seen: &mut Vec<(String, serde_json::Value)>,
    done: impl Fn(&str, &serde_json::Value) -> bool,
) {
    if seen.iter().any(|(e, d)| done(e, d)) {
        return;
    }
    within(what, async {
        loop {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            for item in parser.push(chunk.as_ref()).expect("event size") {
                if let SseItem::Event(e) = item {
                    let data = serde_json::from_str(&e.data).expect("JSON data");
                    let hit = done(&e.event, &data);
                    seen.push((e.event.clone(), data));
                    if hit {
                        return;
                    }
                }
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_on_a_follower_shows_what_the_leader_decides_and_ingests() {
    let Some(c) = Cluster::local(2, &[]).await else {
        return;
    };
    let leader = c.leader(Duration::from_secs(30)).await;
    let follower = 1 - leader;
    // The page's stream, opened on the follower.
    let rq = c
        .http
        .post(format!("{}/dashboard/live/ticket", c.url(follower)))
        .bearer_auth(READ);
    let t: serde_json::Value = within("ticket", rq.send())
        .await
        .expect("ticket")
        .json()
        .await
        .expect("json");
    let ticket = t["ticket"].as_str().expect("ticket");
    let url = format!("{}/dashboard/live?ticket={ticket}", c.url(follower));
    let mut body = open(&c.http, url).await;
    let mut parser = SseParser::new(1 << 20);
    let mut seen = Vec::new();

    // Registered and reported through the leader: its engine halts the rollout and fires
    // the alert; both reach the follower's stream.
    c.start_release(leader, "stable", "1.1.0").await;
    c.report_errors(leader, "stable", "1.1.0", 12).await;
    until_event(
        "the halt on the follower's stream",
        &mut body,
        &mut parser,
        &mut seen,
        |e, d| e == "decision" && d["action"] == "halt",
    )
    .await;
    until_event(
        "the alert on the follower's stream",
        &mut body,
        &mut parser,
        &mut seen,
        |e, d| e == "alert" && d["kind"] == "rollout_halted",
    )
    .await;
    let halt = seen
        .iter()
        .find(|(e, d)| e == "decision" && d["action"] == "halt")
        .expect("halt");
    assert_eq!(
        (&halt.1["version"], &halt.1["actor"]),
        (&json!("1.1.0"), &json!("engine")),
        "{seen:?}"
    );
    let alert = seen.iter().find(|(e, _)| e == "alert").expect("alert");
    assert!(
        alert.1["title"]
            .as_str()
            .is_some_and(|t| t.contains("1.1.0")),
        "{seen:?}"
    );
    // Each frame once: the follower's own feed does not echo what it received.
    assert_eq!(
        seen.iter()
            .filter(|(e, d)| e == "decision" && d["action"] == "halt")
            .count(),
        1,
        "{seen:?}"
    );

    // Events of three users today, ingested by the leader: the follower recounts.
    let events: Vec<_> = (0..3)
        .map(|i| crate::dashboard::ev(&format!("user-{i}"), "app_open", chrono::Utc::now()))
        .collect();
    let batch = railgun_core::analytics::EventBatch {
        events,
        sent_at: Some(chrono::Utc::now()),
        sample_rate: 1.0,
        dropped: 0,
        queued: 0,
    };
    let rq = c
        .http
        .post(format!("{}/analytics/events", c.url(leader)))
        .json(&batch);
    let r = within("events", rq.send()).await.expect("events");
    assert_eq!(r.status(), 200);
    until_event(
        "today's active users on the follower's stream",
        &mut body,
        &mut parser,
        &mut seen,
        |e, d| e == "active-users" && d["users"].as_u64() >= Some(3),
    )
    .await;
}
