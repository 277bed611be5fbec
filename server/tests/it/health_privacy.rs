//! Lifetime of rollout-health data over real HTTP on loopback, written once and run against
//! both stores: SQLite always (a real file), PostgreSQL when `RAILGUN_TEST_DATABASE_URL` is
//! set (each test gets its own database; `scripts/start-postgres.sh` prints the variable).
//!
//! The retention job runs with a manual clock (`purge_once`), never on a timer: reports past
//! the raw-event window go, recent ones stay, the per-install rows of the rollout the engine
//! still decides on stay, so its numbers do not move. User deletion erases the health rows of
//! the user's install, and only those; the machine route erases an install by its id.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::db::{database, Kind};
use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::event::{AnalyticsEvent, EventBatch, EventCategory};
use railgun_core::clock::{Clock, ManualClock, SharedClock};
use railgun_core::health::{report_machine_id, HealthReport};
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use railgun_core::update::manifest::RolloutPolicy;
use railgun_core::update::{Arch, Format, Platform};
use railgun_server::analytics::{retention, RetentionConfig};
use railgun_server::release::{build_manifest, sign_manifest, ArtifactFile, ManifestSpec};
use railgun_server::serve::{App, RunningServer, ServerConfig};
use railgun_server::store::{self, SharedStore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const READ: &str = "read-token-hp";
const ADMIN: &str = "admin-token-hp";
const APP: &str = "notes";
const CHANNEL: &str = "stable";

fn t0() -> DateTime<Utc> {
    "2026-06-01T09:00:00Z".parse().expect("t")
}

struct H {
    server: Option<RunningServer>,
    url: String,
    http: reqwest::Client,
    clock: ManualClock,
    shared: SharedClock,
    /// A second handle on the server's database (what the retention job runs on).
    store: SharedStore,
    database: String,
    release_key: PrivateKey,
    dir: tempfile::TempDir,
}

impl H {
    async fn start(kind: Kind) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tmp");
        let database = database(kind, &dir.path().join("db/railgun.db"), "health").await?;
        let release_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let rollout_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let rk = dir.path().join("rollout.key");
        rollout_key.write_pem_file(&rk).expect("write key");
        let pk = dir.path().join("release.pub");
        std::fs::write(&pk, release_key.public_key().to_pem()).expect("pub");
        let clock = ManualClock::new(t0());
        let shared: SharedClock = Arc::new(clock.clone());
        let root = dir.path().join("updates");
        std::fs::create_dir_all(&root).expect("root");
        let config = ServerConfig {
            root,
            database: database.clone(),
            read_token: Some(READ.into()),
            admin_token: Some(ADMIN.into()),
            run_retention: false,
            clock: shared.clone(),
            rollout_key: Some(rk),
            release_public_keys: vec![pk],
            rollout_interval: std::time::Duration::from_secs(3600),
            ..ServerConfig::default()
        };
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = App::open(&config)
            .await
            .expect("app")
            .spawn(addr)
            .await
            .expect("start");
        let store = store::open(&database).await.expect("second handle");
        Some(Self {
            url: server.url(),
            server: Some(server),
            http: reqwest::Client::new(),
            clock,
            shared,
            store,
            database,
            release_key,
            dir,
        })
    }

    async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.expect("stop");
        }
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Registers, uploads and starts `version` at `pct` %.
    async fn publish(&self, version: &str, pct: f64) {
        let work = self.dir.path().join(format!("build-{version}"));
        std::fs::create_dir_all(&work).expect("mkdir");
        let name = format!("{APP}-{version}-linux-x64.tar.gz");
        let bytes: Vec<u8> = format!("payload {version} ")
            .bytes()
            .cycle()
            .take(4_000)
            .collect();
        std::fs::write(work.join(&name), &bytes).expect("write");
        let policy = RolloutPolicy {
            stages: vec![10.0, 25.0, 50.0, 100.0],
            stage_hours: 24.0,
            max_error_rate: 0.5,
            max_crash_rate: 0.5,
            // Never enough installs: the engine waits, the numbers are only read.
            min_installs: 100_000,
        };
        let manifest = build_manifest(&ManifestSpec {
            app: APP.into(),
            version: version.parse().expect("v"),
            channel: CHANNEL.into(),
            notes: format!("release {version}"),
            artifacts: vec![ArtifactFile {
                path: work.join(&name),
                platform: Platform::Linux,
                arch: Arch::X64,
                format: Format::TarGz,
            }],
            base_url: None,
            rollout: Some(policy),
            released_at: t0(),
            sigstore_bundles: None,
        })
        .expect("manifest");
        let env = sign_manifest(&manifest, &[&self.release_key]).expect("sign");
        self.admin(
            "/admin/releases",
            json!({"manifest": env, "start": true, "percentage": pct}),
        )
        .await;
        let r = self
            .http
            .put(format!(
                "{}/admin/releases/{APP}/{version}/artifacts/{name}",
                self.url
            ))
            .bearer_auth(ADMIN)
            .body(bytes)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 200);
    }

    async fn report(&self, machine_id: &str, version: &str, errors: u32, crashes: u32) {
        let now = self.clock.now();
        let body = HealthReport {
            id: Uuid::new_v4(),
            machine_id: machine_id.into(),
            app: APP.into(),
            version: version.into(),
            channel: CHANNEL.into(),
            platform: "linux".into(),
            arch: "x64".into(),
            period_start: now - Duration::hours(1),
            period_end: now,
            sessions: 1,
            errors,
            crashes,
            boot_reverts: 0,
        };
        let r = self
            .http
            .post(format!("{}/analytics/health", self.url))
            .json(&body)
            .send()
            .await
            .expect("health");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["accepted"], true, "{v}");
    }

    async fn status(&self, version: &str) -> Value {
        let r = self
            .http
            .get(format!(
                "{}/analytics/rollout-status?version={version}&app={APP}&channel={CHANNEL}",
                self.url
            ))
            .bearer_auth(READ)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut rq = self.http.delete(format!("{}{path}", self.url));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send().await.expect("delete")
    }

    async fn rows(&self, machine_id: &str) -> u64 {
        self.store
            .machine_rows(machine_id.into())
            .await
            .expect("rows")
    }

    async fn purge(&self) -> store::PurgeCounts {
        retention::purge_once(&self.store, &self.shared, &RetentionConfig::default())
            .await
            .expect("purge")
    }
}

impl Drop for H {
    /// A PostgreSQL test drops its own database (forcing out the store's connections).
    fn drop(&mut self) {
        if !self.database.starts_with("postgres") {
            return;
        }
        let (Ok(base), Some((_, name))) = (
            std::env::var("RAILGUN_TEST_DATABASE_URL"),
            self.database.rsplit_once('/'),
        ) else {
            return;
        };
        let name = name.to_string();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                if let Ok((c, conn)) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A hashed install id, as the client sends it (`machineId` and, by default, `userId`).
fn machine(i: usize) -> String {
    hex::encode(Sha256::digest(format!("install-{i}")))
}

/// The numbers the engine decides on, from `rollout-status`.
fn numbers(st: &Value) -> Value {
    json!({
        "installs": st["totalInstalls"],
        "errors": st["installsWithErrors"],
        "crashes": st["installsWithCrashes"],
        "errorRate": st["errorRate"],
        "crashRate": st["crashRate"],
        "errorRateBounds": st["errorRateBounds"],
        "crashRateBounds": st["crashRateBounds"],
        "healthScore": st["healthScore"],
    })
}

fn event(user: &str, at: DateTime<Utc>) -> AnalyticsEvent {
    AnalyticsEvent {
        id: Uuid::now_v7(),
        name: "screen_view".into(),
        category: EventCategory::for_name("screen_view"),
        user_id: user.into(),
        session_id: format!("s-{user}"),
        timestamp: at,
        app_version: "1.0.0".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        channel: CHANNEL.into(),
        properties: None,
        duration: None,
        sequence: 1,
    }
}

// ---------------------------------------------------------------------------------------

async fn retention_removes_old_health_data_but_not_an_active_rollouts(kind: Kind) {
    let Some(mut h) = H::start(kind).await else {
        return;
    };
    h.publish("1.0.0", 10.0).await;
    // Day 0: 12 installs on the rolling release (3 with errors, 1 crash), 8 on an old
    // release that has no rollout.
    for i in 0..12 {
        h.report(&machine(i), "1.0.0", u32::from(i < 3), u32::from(i == 0))
            .await;
    }
    for i in 100..108 {
        h.report(&machine(i), "0.9.0", 1, 0).await;
    }
    // Day 10: install 0 reports again (its row's last_seen moves; the day-0 report stays old).
    h.clock.advance(Duration::days(10));
    h.report(&machine(0), "1.0.0", 0, 0).await;
    let before = numbers(&h.status("1.0.0").await);
    assert_eq!(before["installs"], 12, "{before}");
    assert_eq!(before["errors"], 3, "{before}");

    // Day 89 (day-0 reports are 89 days old): nothing goes.
    h.clock.advance(Duration::days(79));
    let p = h.purge().await;
    assert_eq!((p.health_reports, p.health_installs), (0, 0), "{p:?}");
    // A recent report on the old release: it stays.
    h.report(&machine(107), "0.9.0", 0, 0).await;

    // Day 91: the day-0 reports are past the 90-day window.
    h.clock.advance(Duration::days(2));
    let p = h.purge().await;
    assert_eq!(p.health_reports, 12 + 8, "{p:?}");
    // The 0.9.0 rows of installs that stopped reporting go; install 107 reported on day 89.
    assert_eq!(p.health_installs, 7, "{p:?}");
    assert_eq!(h.rows(&machine(100)).await, 0);
    assert_eq!(
        h.rows(&machine(107)).await,
        2,
        "recent report and its install row"
    );
    // The rollout of 1.0.0 is active: its per-install rows stay, its reports do not.
    assert_eq!(
        h.rows(&machine(5)).await,
        1,
        "install row kept, report gone"
    );
    assert_eq!(
        h.rows(&machine(0)).await,
        2,
        "day-10 report and install row"
    );
    let after = numbers(&h.status("1.0.0").await);
    assert_eq!(after, before, "retention moved an active rollout's numbers");
    // The engine decides on the same numbers: it waits (installs < minInstalls) or logs a
    // decision carrying exactly them.
    let d = h.admin("/admin/rollouts/evaluate", json!({})).await;
    for x in d["decisions"].as_array().expect("decisions") {
        assert_eq!(x["installs"], before["installs"], "{x}");
        assert_eq!(x["errorRate"], before["errorRate"], "{x}");
    }

    // Halted (not rolled back) it can be resumed: still kept. Day 121: install 0's day-10
    // report goes; install 107's day-89 report and row stay.
    h.admin(&format!("/admin/rollouts/{APP}/{CHANNEL}/halt"), json!({}))
        .await;
    h.clock.advance(Duration::days(30));
    let p = h.purge().await;
    assert_eq!((p.health_reports, p.health_installs), (1, 0), "{p:?}");
    assert_eq!(p.decisions, 0, "{p:?}");
    assert_eq!(h.rows(&machine(107)).await, 2);
    assert_eq!(numbers(&h.status("1.0.0").await), before);

    // Day 487: the decision log (start on day 0, halt on day 91) is past a year and goes;
    // the halted rollout's numbers stay.
    h.clock.advance(Duration::days(366));
    let p = h.purge().await;
    assert!(p.decisions >= 2, "start and halt: {p:?}");
    assert_eq!((p.health_reports, p.health_installs), (1, 1), "{p:?}");
    assert_eq!(h.rows(&machine(107)).await, 0);
    assert_eq!(numbers(&h.status("1.0.0").await), before);
    let st = h.status("1.0.0").await;
    assert_eq!(st["decisions"], json!([]), "{st}");

    // Superseded by the next release, the old rollout decides nothing more: its rows go.
    h.publish("1.1.0", 10.0).await;
    let p = h.purge().await;
    assert_eq!(p.health_installs, 12, "{p:?}");
    assert_eq!(numbers(&h.status("1.0.0").await)["installs"], 0);
    h.stop().await;
}

async fn deleting_a_user_removes_their_health_rows_and_only_theirs(kind: Kind) {
    let Some(mut h) = H::start(kind).await else {
        return;
    };
    h.publish("1.0.0", 10.0).await;
    // Installs 1 and 2 use the default identity: userId == machineId (hashed install id).
    // Install 3's app gives both analytics and health the id "custom-user-3".
    let custom = "custom-user-3";
    let custom_machine = report_machine_id(custom);
    let users = [machine(1), machine(2), custom.to_string()];
    let machines = [machine(1), machine(2), custom_machine.clone()];
    for (u, m) in users.iter().zip(&machines) {
        h.report(m, "1.0.0", 1, 0).await;
        h.report(m, "1.0.0", 0, 0).await;
        h.report(m, "0.9.0", 0, 1).await;
        let b = EventBatch {
            events: vec![event(u, t0())],
            sent_at: t0(),
            sample_rate: 1.0,
            dropped: 0,
        };
        let r = h
            .http
            .post(format!("{}/analytics/events", h.url))
            .json(&b)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    for m in &machines {
        assert_eq!(h.rows(m).await, 5, "3 reports + 2 install rows");
    }

    let path = format!("/analytics/users/{}", machine(1));
    assert_eq!(h.delete(&path, None).await.status(), 401);
    assert_eq!(h.delete(&path, Some(READ)).await.status(), 403);
    assert_eq!(h.delete(&path, Some("wrong")).await.status(), 403);
    assert_eq!(
        h.rows(&machine(1)).await,
        5,
        "refused requests delete nothing"
    );
    let r = h.delete(&path, Some(ADMIN)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["healthReports"], 3, "{v}");
    assert_eq!(v["healthInstalls"], 2, "{v}");
    assert!(v["analytics"].as_u64().expect("n") >= 1, "{v}");
    assert_eq!(
        v["deleted"].as_u64(),
        Some(v["analytics"].as_u64().expect("n") + 5),
        "{v}"
    );
    assert_eq!(h.rows(&machine(1)).await, 0);
    assert_eq!(h.store.user_rows(machine(1)).await.expect("n"), 0);
    assert_eq!(h.rows(&machine(2)).await, 5, "another install is untouched");
    assert_eq!(h.rows(&custom_machine).await, 5);
    let st = h.status("1.0.0").await;
    assert_eq!(st["totalInstalls"], 2, "{st}");

    // A second deletion finds nothing.
    let v: Value = h
        .delete(&path, Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["deleted"], 0, "{v}");

    // A custom (non-hex) user id reaches the machine id its health reports used.
    let v: Value = h
        .delete(&format!("/analytics/users/{custom}"), Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (v["healthReports"].clone(), v["healthInstalls"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(h.rows(&custom_machine).await, 0);
    assert_eq!(h.rows(&machine(2)).await, 5);

    // The machine route: admin only, a hashed id only.
    let path = format!("/analytics/machines/{}", machine(2));
    assert_eq!(h.delete(&path, None).await.status(), 401);
    assert_eq!(h.delete(&path, Some(READ)).await.status(), 403);
    for bad in [
        "not-hex".to_string(),
        machine(2).to_uppercase(),
        format!("{}0", machine(2)),
        "%27%3B%20DROP%20TABLE%20health_reports%3B--".to_string(),
    ] {
        let r = h
            .delete(&format!("/analytics/machines/{bad}"), Some(ADMIN))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(h.rows(&machine(2)).await, 5);
    let v: Value = h
        .delete(&path, Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v,
        json!({"deleted": 5, "healthReports": 3, "healthInstalls": 2})
    );
    assert_eq!(h.rows(&machine(2)).await, 0);
    // Its analytics events are a user's data, not touched by the machine route.
    assert!(h.store.user_rows(machine(2)).await.expect("n") > 0);
    assert_eq!(h.status("1.0.0").await["totalInstalls"], 0);
    h.stop().await;
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Postgres).await })*
        }
    };
}

suite!(
    retention_removes_old_health_data_but_not_an_active_rollouts,
    deleting_a_user_removes_their_health_rows_and_only_theirs,
);
