//! Scale-out, one rollout engine at a time: three real `railgun serve` processes on one
//! PostgreSQL database elect one leader through the database's lease (`--leader-lease`);
//! only it evaluates and sends alerts; a halt is decided, signed and alerted once; SIGKILL
//! the leader and another takes over within the lease, deciding nothing twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use railgun_core::update::RolloutPolicy;
use railgun_server::alerts::ALERT_ID_HEADER;
use rustix::process::Signal;
use serde_json::{json, Value};

use crate::db::Kind;
use crate::support::{
    health_report, utf8, within, ChildServer, ReleaseSpec, ScriptedServer, TestServer, ADMIN, READ,
};

/// The lease the cluster runs under (short: the takeover is timed against it).
pub const LEASE: Duration = Duration::from_secs(3);

/// One alert a receiver got: its `X-Railgun-Alert-Id` and JSON body.
type Hit = (String, Value);

/// An alert receiver on loopback (generic JSON webhook) keeping every post.
pub struct AlertSink {
    server: ScriptedServer,
    hits: Arc<Mutex<Vec<Hit>>>,
}

async fn keep(State(hits): State<Arc<Mutex<Vec<Hit>>>>, headers: HeaderMap, body: String) {
    let id = headers
        .get(ALERT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_str(&body).expect("alert body is JSON");
    hits.lock().expect("hits").push((id, body));
}

impl AlertSink {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/json", post(keep))
            .with_state(hits.clone());
        Self {
            server: ScriptedServer::spawn(router).await,
            hits,
        }
    }

    /// The webhook's URL.
    pub fn url(&self) -> String {
        format!("{}/json", self.server.url())
    }

    /// Every post so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }
}

/// Three `railgun serve` children on one fresh PostgreSQL database, sharing the release
/// and rollout keys, alerting one receiver; the engine every second.
pub struct Cluster {
    /// Keys, the release builder and the database (its store stopped).
    pub setup: TestServer,
    /// The servers (`None` once killed).
    pub servers: Vec<Option<ChildServer>>,
    /// The alert receiver.
    pub sink: AlertSink,
    /// A client.
    pub http: reqwest::Client,
}

impl Cluster {
    /// `None` (SKIP) without PostgreSQL. Each server gets `extra` flags and `root(i)` as its
    /// update tree.
    pub async fn start(
        suite: &str,
        n: usize,
        root: impl Fn(&TestServer, usize) -> std::path::PathBuf,
        extra: &[&str],
    ) -> Option<Self> {
        Self::start_with(suite, n, root, extra, &[]).await
    }

    /// [`Cluster::start`] of `n` servers with `extra` flags, each with a local update tree.
    pub async fn local(n: usize, extra: &[&str]) -> Option<Self> {
        Self::start(
            "scale",
            n,
            |s, i| s.dir.path().join(format!("updates-{i}")),
            extra,
        )
        .await
    }

    /// [`Cluster::start`], each server with `env` too.
    pub async fn start_with(
        suite: &str,
        n: usize,
        root: impl Fn(&TestServer, usize) -> std::path::PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Option<Self> {
        let mut setup = TestServer::with(Kind::Postgres, suite, Utc::now(), |c| {
            c.clock = railgun_core::clock::system();
        })
        .await?;
        setup.stop().await;
        let sink = AlertSink::start().await;
        let dir = setup.dir.path().to_path_buf();
        let lease = format!("{}", LEASE.as_secs_f64());
        let hook = sink.url();
        let release_pub = dir.join("release.pub");
        let rollout_key = dir.join("rollout.key");
        let mut servers = Vec::new();
        for i in 0..n {
            let root = root(&setup, i);
            std::fs::create_dir_all(&root).expect("root");
            let data = dir.join(format!("data-{i}"));
            let mut args = vec![
                "--database",
                setup.database(),
                "--release-public-key",
                utf8(&release_pub),
                "--rollout-interval-secs",
                "1",
                "--leader-lease",
                &lease,
                "--alert-json-webhook",
                &hook,
            ];
            args.extend_from_slice(extra);
            let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
            let mut vars = vec![
                ("RAILGUN_ROLLOUT_KEY_FILE", utf8(&rollout_key)),
                ("RAILGUN_ADMIN_TOKEN", ADMIN),
                ("RAILGUN_READ_TOKEN", READ),
            ];
            vars.extend_from_slice(env);
            servers.push(Some(ChildServer::serve(&root, &data, &args, &vars)));
        }
        Some(Self {
            setup,
            servers,
            sink,
            http: reqwest::Client::new(),
        })
    }

    /// Server `i`'s URL.
    pub fn url(&self, i: usize) -> String {
        self.servers[i].as_ref().expect("running").url.clone()
    }

    /// Whether server `i` says it leads (`railgun_rollout_engine_leader` of `/metrics`).
    pub async fn leads(&self, i: usize) -> bool {
        let rq = self
            .http
            .get(format!("{}/metrics", self.url(i)))
            .bearer_auth(READ);
        let m = within("metrics", rq.send())
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let line = m
            .lines()
            .find(|l| l.starts_with("railgun_rollout_engine_leader "))
            .unwrap_or_else(|| panic!("no leader gauge: {m}"));
        line.ends_with(" 1")
    }

    /// Waits (`within` at most) until exactly one running server leads; its index.
    pub async fn leader(&self, within_: Duration) -> usize {
        let started = Instant::now();
        loop {
            let mut leading = Vec::new();
            for (i, s) in self.servers.iter().enumerate() {
                if s.is_some() && self.leads(i).await {
                    leading.push(i);
                }
            }
            if let [one] = leading.as_slice() {
                return *one;
            }
            assert!(
                leading.len() <= 1,
                "several servers lead at once: {leading:?}"
            );
            if started.elapsed() >= within_ {
                let logs: Vec<String> = self.servers.iter().flatten().map(|s| s.log()).collect();
                let (db, conn) =
                    tokio_postgres::connect(self.setup.database(), tokio_postgres::NoTls)
                        .await
                        .expect("connect");
                tokio::spawn(conn);
                let rows = db
                    .query("SELECT holder || ' ' || token || ' ' || (expires - (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::int8) FROM leader_leases", &[])
                    .await
                    .expect("leases");
                let leases: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                panic!(
                    "no server leads after {:?}; leases (holder token ms-left) {leases:?}; their logs:\n{}",
                    started.elapsed(),
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An admin call on server `i`: its status and JSON.
    pub async fn admin(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        let rq = self
            .http
            .post(format!("{}{path}", self.url(i)))
            .bearer_auth(ADMIN)
            .json(&body);
        let r = within("admin call", rq.send()).await.expect("admin");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` on server `i` with `headers`: the status, `ETag` and body.
    pub async fn get(
        &self,
        i: usize,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, Vec<u8>) {
        let mut rq = self.http.get(format!("{}{path}", self.url(i)));
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        let r = within("get", rq.send()).await.expect("get");
        let status = r.status().as_u16();
        let tag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = within("body", r.bytes()).await.expect("body").to_vec();
        (status, tag, body)
    }

    /// `GET path` on server `i` with the read token, as JSON.
    pub async fn read(&self, i: usize, path: &str) -> Value {
        let rq = self
            .http
            .get(format!("{}{path}", self.url(i)))
            .bearer_auth(READ);
        let r = within("read", rq.send()).await.expect("read");
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.expect("json")
    }

    /// Health reports of `n` installs, each with an error, for `version` on `channel`,
    /// through server `i`.
    pub async fn report_errors(&self, i: usize, channel: &str, version: &str, n: usize) {
        for k in 0..n {
            let r = health_report(
                "demo",
                channel,
                version,
                format!("{:064x}", k + 1),
                (3, 0),
                Utc::now(),
            );
            let rq = self
                .http
                .post(format!("{}/analytics/health", self.url(i)))
                .json(&r);
            let res = within("health", rq.send()).await.expect("health");
            assert_eq!(res.status(), 200);
        }
    }

    /// The decision log of `version` on `channel` as server `i` reads it, oldest first.
    pub async fn decisions(&self, i: usize, channel: &str, version: &str) -> Vec<Value> {
        let s = self
            .read(
                i,
                &format!("/analytics/rollout-status?version={version}&app=demo&channel={channel}"),
            )
            .await;
        let mut d = s["decisions"].as_array().expect("decisions").clone();
        d.reverse();
        d
    }

    /// Waits until server `i` sees the rollout of `version` halted; the decisions then.
    pub async fn until_halted(&self, i: usize, channel: &str, version: &str) -> Vec<Value> {
        within("engine halt", async {
            loop {
                let d = self.decisions(i, channel, version).await;
                if d.iter().any(|d| d["action"] == "halt") {
                    return d;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
    }

    /// Waits until the receiver holds an alert of `kind` whose title names `version`; the
    /// distinct alert ids of that kind and version then.
    pub async fn until_alerted(&self, kind: &str, version: &str) -> Vec<String> {
        within("alert", async {
            loop {
                let mut ids: Vec<String> = self
                    .sink
                    .hits()
                    .into_iter()
                    .filter(|(_, b)| {
                        b["kind"] == kind
                            && b["title"].as_str().is_some_and(|t| t.contains(version))
                    })
                    .map(|(id, _)| id)
                    .collect();
                ids.sort();
                ids.dedup();
                if !ids.is_empty() {
                    return ids;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    /// Signs a release of `version` on `channel` (artifact on a CDN: nothing to upload) that
    /// halts from 5 installs, and registers and starts it through server `i`.
    pub async fn start_release(&self, i: usize, channel: &str, version: &str) {
        let release = self.setup.release(&ReleaseSpec {
            app: "demo",
            channel,
            version,
            policy: Some(RolloutPolicy {
                min_installs: 5,
                ..RolloutPolicy::default()
            }),
            released_at: Utc::now(),
            size: 5,
            base_url: Some("https://cdn.example.com/demo"),
        });
        let (status, v) = self
            .admin(
                i,
                "/admin/releases",
                json!({"manifest": release.envelope, "start": true}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
}

fn halts(d: &[Value]) -> usize {
    d.iter().filter(|d| d["action"] == "halt").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engine_among_three_servers_and_a_takeover_within_the_lease() {
    let Some(mut c) = Cluster::local(3, &[]).await else {
        return;
    };
    let leader = c.leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // A follower does not run the engine, even when asked.
    let (status, v) = c
        .admin(follower, "/admin/rollouts/evaluate", json!({}))
        .await;
    assert_eq!(status, 409, "{v}");

    // Published through a follower, reported through the other: the leader's engine halts
    // it, once, with one alert.
    c.start_release(follower, "stable", "1.1.0").await;
    c.report_errors(other, "stable", "1.1.0", 12).await;
    let d = c.until_halted(other, "stable", "1.1.0").await;
    assert_eq!(halts(&d), 1, "{d:?}");
    assert_eq!(d.last().expect("halt")["actor"], "engine");
    let halted = c.until_alerted("rollout_halted", "1.1.0").await;
    assert_eq!(halted.len(), 1, "one alert: {:?}", c.sink.hits());
    let log = c.servers[leader].as_ref().expect("leader").log();
    assert!(log.contains("this server leads"), "{log}");
    for i in [follower, other] {
        let l = c.servers[i].as_ref().expect("running").log();
        assert!(!l.contains("this server leads"), "server {i} led too: {l}");
    }

    // SIGKILL the leader: another takes over within the lease.
    let killed = Instant::now();
    let mut dead = c.servers[leader].take().expect("leader");
    dead.signal(Signal::KILL);
    dead.wait_exit(Duration::from_secs(30)).expect("killed");
    let next = c.leader(LEASE * 10).await;
    let took = killed.elapsed();
    println!("takeover after SIGKILL of the leader: {took:?} (lease {LEASE:?})");
    assert!(
        took <= LEASE + Duration::from_millis(1500),
        "takeover took {took:?}, the lease is {LEASE:?}"
    );
    assert_ne!(next, leader);

    // The new leader decides nothing twice: an engine run now takes no decision on the
    // halted rollout, and the log still holds one halt.
    let (status, v) = c.admin(next, "/admin/rollouts/evaluate", json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decisions"], json!([]), "{v}");
    let survivor = if next == follower { other } else { follower };
    assert_eq!(halts(&c.decisions(survivor, "stable", "1.1.0").await), 1);

    // And it decides what comes next, once: a second release halts under the new leader.
    c.start_release(survivor, "beta", "1.2.0").await;
    c.report_errors(survivor, "beta", "1.2.0", 12).await;
    let d = c.until_halted(next, "beta", "1.2.0").await;
    assert_eq!(halts(&d), 1, "{d:?}");
    let ids = c.until_alerted("rollout_halted", "1.2.0").await;
    assert_eq!(ids.len(), 1, "{:?}", c.sink.hits());
    // Both halts' alerts, delivered once each by id (a repeat of the same id is allowed
    // by the outbox's contract only after a kill mid-post, not here).
    let hits = c.sink.hits();
    for id in halted.iter().chain(&ids) {
        assert_eq!(
            hits.iter().filter(|(h, _)| h == id).count(),
            1,
            "alert {id} posted more than once: {hits:?}"
        );
    }
    let (status, _) = c
        .admin(survivor, "/admin/rollouts/evaluate", json!({}))
        .await;
    assert_eq!(status, 409, "the survivor still follows");
    for s in c.servers.iter_mut().flatten() {
        s.terminate(Duration::from_secs(20));
    }
}
