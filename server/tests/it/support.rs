//! The one harness of the server suites.
//!
//! - [`TestServer`]: the real application (`App::open` + `App::spawn`) on `127.0.0.1:0`, over
//!   SQLite in a temp dir or a fresh PostgreSQL database ([`crate::db`]), a manual clock,
//!   the tokens [`READ`] and [`ADMIN`], and real keys (a release key whose public half the
//!   server trusts, a rollout key that signs channel states); helpers for the calls the
//!   suites make (`read`, `admin`, `send_events`, `flush`, `release`/`publish`, `report`).
//! - [`ChildServer`]: `railgun serve` as a child process, its URL read from what it prints
//!   (within [`DEADLINE`]), its log kept, stopped by a signal (`terminate`, `wait_exit`) or
//!   killed on drop; [`railgun`] and [`railgun_ok`] run the binary for one command.
//! - [`ScriptedServer`]: a hand-written router on loopback, for stand-ins of other parties
//!   (webhooks, a server that answers 503 or hangs).
//! - [`within`]: every wait of a test has a deadline; a regression fails instead of hanging.
//! - [`skip`]: a test that cannot run says SKIP, or fails under `RAILGUN_REQUIRE_ALL=1`
//!   (set by CI), so no test passes by skipping there.

use std::future::Future;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use railgun_core::analytics::EventBatch;
use railgun_core::clock::{ManualClock, SharedClock};
use railgun_core::health::HealthReport;
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use railgun_core::update::{Arch, Format, Platform, RolloutPolicy};
use railgun_server::analytics::AppState;
use railgun_server::release::{build_manifest, sign_manifest, ArtifactFile, ManifestSpec};
use railgun_server::rollout::Rollouts;
use railgun_server::serve::{App, RunningServer, ServerConfig};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::{json, Value};

use crate::db::{self, Kind};

/// The read token of every [`TestServer`].
pub const READ: &str = "test-read-token";
/// The admin token of every [`TestServer`].
pub const ADMIN: &str = "test-admin-token";
/// How long any single wait of a test may take before the test fails.
pub const DEADLINE: StdDuration = StdDuration::from_secs(60);

/// Whether every dependency of the tests must be present (`RAILGUN_REQUIRE_ALL=1`, set by
/// `.ci/run`): then a missing one fails the test instead of skipping it.
pub fn require_all() -> bool {
    std::env::var("RAILGUN_REQUIRE_ALL").as_deref() == Ok("1")
}

/// A test cannot run because `why` (a missing dependency, with how to get it): under
/// `RAILGUN_REQUIRE_ALL=1` the test fails; otherwise a `SKIP:` line goes past the test
/// harness's capture (so a skip is never silent) and the caller returns.
#[track_caller]
pub fn skip(why: &str) {
    if require_all() {
        panic!("RAILGUN_REQUIRE_ALL=1: this test needs what is missing: {why}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {why}");
}

/// Whether `python3` imports `module` (a package scripts/test.sh installs with pip).
pub fn python_has(module: &str) -> bool {
    std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Awaits `fut`, failing the test (naming `what`) if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still waiting after {DEADLINE:?}"),
    }
}

/// The real application on loopback (see the module documentation).
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A client for the suite's own requests.
    pub http: reqwest::Client,
    /// The configuration it runs with (`restart` reuses it).
    pub config: ServerConfig,
    /// The server's clock.
    pub clock: ManualClock,
    /// Signs releases; the server trusts its public key.
    pub release_key: PrivateKey,
    /// Signs channel states (the server's rollout key).
    pub rollout_key: PrivateKey,
    /// The temp dir: `updates/` (the tree), the SQLite database, key files, builds.
    pub dir: tempfile::TempDir,
    server: Option<RunningServer>,
}

impl TestServer {
    /// SQLite, the clock at `now`, the rollout engine on a one-hour tick (tests run it with
    /// `POST /admin/rollouts/evaluate`), no retention job.
    pub async fn start(now: DateTime<Utc>) -> Self {
        Self::with(Kind::Sqlite, "", now, |_| {})
            .await
            .expect("SQLite always runs")
    }

    /// The real application serving the update tree at `root` (its database in a temp dir).
    pub async fn tree(root: &Path) -> Self {
        let root = root.to_path_buf();
        Self::with(Kind::Sqlite, "", Utc::now(), move |c| {
            c.root = root;
            c.clock = railgun_core::clock::system();
        })
        .await
        .expect("SQLite always runs")
    }

    /// On `kind` (`None` when PostgreSQL is not configured: the suite `suite` says SKIP),
    /// with `tweak` applied to the configuration last.
    pub async fn with(
        kind: Kind,
        suite: &str,
        now: DateTime<Utc>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = db::database(kind, &dir.path().join("db/railgun.db"), suite).await?;
        let release_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let rollout_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let rollout_file = dir.path().join("rollout.key");
        rollout_key
            .write_pem_file(&rollout_file)
            .expect("write key");
        let release_pub = dir.path().join("release.pub");
        std::fs::write(&release_pub, release_key.public_key().to_pem()).expect("pub");
        let clock = ManualClock::new(now);
        let mut config = ServerConfig {
            root: dir.path().join("updates"),
            database,
            read_token: Some(READ.into()),
            admin_token: Some(ADMIN.into()),
            run_retention: false,
            clock: Arc::new(clock.clone()) as SharedClock,
            rollout_key: Some(rollout_file),
            release_public_keys: vec![release_pub],
            rollout_interval: StdDuration::from_secs(3600),
            ..ServerConfig::default()
        };
        tweak(&mut config);
        std::fs::create_dir_all(&config.root).expect("root");
        let mut server = Self {
            url: String::new(),
            http: reqwest::Client::new(),
            config,
            clock,
            release_key,
            rollout_key,
            dir,
            server: None,
        };
        server.restart().await;
        Some(server)
    }

    /// `http://127.0.0.1:PORT` (the same as the field `url`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The configured database URL (`sqlite:…` or `postgres://…`).
    pub fn database(&self) -> &str {
        &self.config.database
    }

    /// The running server (panics after [`TestServer::stop`]).
    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    /// The analytics state of the running server.
    pub fn state(&self) -> &AppState {
        &self.running().state
    }

    /// The rollout service of the running server.
    pub fn rollouts(&self) -> &Rollouts {
        &self.running().rollouts
    }

    /// Stops the server (in-flight requests answered, the ingest queue committed).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            within("server stop", s.stop()).await.expect("stop");
        }
    }

    /// Starts the server (again) over the same configuration and database.
    pub async fn restart(&mut self) {
        self.stop().await;
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = App::open(&self.config)
            .await
            .expect("app")
            .spawn(addr)
            .await
            .expect("spawn");
        self.url = server.url();
        self.server = Some(server);
    }

    /// `GET path` with `token`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut rq = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        within(path, rq.send()).await.expect("get")
    }

    /// `GET path` with the read token: must answer 200; its JSON.
    pub async fn read(&self, path: &str) -> Value {
        let r = self.get(path, Some(READ)).await;
        let status = r.status();
        let text = within(path, r.text()).await.expect("body");
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).expect("json")
    }

    /// `POST path` with `token` and the JSON `body`.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut rq = self.http.post(format!("{}{path}", self.url)).json(body);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        within(path, rq.send()).await.expect("post")
    }

    /// `POST path` with the admin token: must answer 2xx; its JSON.
    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let r = self.post(path, Some(ADMIN), &body).await;
        let status = r.status();
        let v: Value = within(path, r.json()).await.expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// `POST /analytics/events`: must answer 200; the `IngestResponse` as JSON.
    pub async fn send_events(&self, batch: &EventBatch) -> Value {
        let body = serde_json::to_value(batch).expect("batch");
        let r = self.post("/analytics/events", None, &body).await;
        let status = r.status();
        let text = within("ingest answer", r.text()).await.expect("body");
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("json")
    }

    /// Waits until every event queued so far is committed.
    pub async fn flush(&self) {
        within("ingest flush", self.state().queue.flush())
            .await
            .expect("flush");
    }

    /// `DELETE path` with `token`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut rq = self.http.delete(format!("{}{path}", self.url));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        within(path, rq.send()).await.expect("delete")
    }

    /// `POST /analytics/health`: must answer 200; its JSON (`{accepted, duplicate}`).
    pub async fn report(&self, report: &HealthReport) -> Value {
        let body = serde_json::to_value(report).expect("report");
        let r = self.post("/analytics/health", None, &body).await;
        let status = r.status();
        let v: Value = within("health answer", r.json()).await.expect("json");
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Sends `reports` (`POST /analytics/health`), 32 at a time; each must answer 200.
    pub async fn report_all(&self, reports: Vec<HealthReport>) {
        let mut set = tokio::task::JoinSet::new();
        for body in reports {
            let rq = self
                .http
                .post(format!("{}/analytics/health", self.url))
                .json(&body);
            set.spawn(async move {
                let r = within("health report", rq.send()).await.expect("health");
                assert_eq!(r.status(), 200);
            });
            if set.len() >= 32 {
                within("health reports", set.join_next())
                    .await
                    .expect("task")
                    .expect("join");
            }
        }
        while let Some(r) = within("health reports", set.join_next()).await {
            r.expect("join");
        }
    }

    /// `GET /analytics/rollout-status` of `app`/`channel`/`version` with the read token.
    pub async fn status(&self, app: &str, channel: &str, version: &str) -> Value {
        self.read(&format!(
            "/analytics/rollout-status?version={version}&app={app}&channel={channel}"
        ))
        .await
    }

    /// `POST /admin/rollouts/evaluate`: the decisions of this run.
    pub async fn evaluate(&self) -> Vec<Value> {
        let v = self.admin("/admin/rollouts/evaluate", json!({})).await;
        v["decisions"].as_array().expect("decisions").clone()
    }

    /// Builds and signs (with the release key) a release of `version` with one artifact
    /// (`{app}-{version}-linux-x64.tar.gz`, `size` bytes of text).
    pub fn release(&self, r: &ReleaseSpec<'_>) -> SignedRelease {
        self.release_signed_by(r, &self.release_key)
    }

    /// [`TestServer::release`] signed by `key` instead.
    pub fn release_signed_by(&self, r: &ReleaseSpec<'_>, key: &PrivateKey) -> SignedRelease {
        signed_release(self.dir.path(), r, key)
    }

    /// `PUT /admin/releases/{app}/{version}/artifacts/{file}` with the admin token.
    pub async fn upload(
        &self,
        app: &str,
        version: &str,
        file: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let rq = self
            .http
            .put(format!(
                "{}/admin/releases/{app}/{version}/artifacts/{file}",
                self.url
            ))
            .bearer_auth(ADMIN)
            .body(bytes);
        within("artifact upload", rq.send()).await.expect("put")
    }

    /// Registers `release` (`POST /admin/releases` with `{"manifest": …}` plus the fields of
    /// `extra`, e.g. `{"start": true, "percentage": 10}`), then uploads its artifact; the
    /// upload's answer.
    pub async fn publish(&self, release: &SignedRelease, extra: Value) -> Value {
        let mut body = json!({"manifest": release.envelope});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let reg = self.admin("/admin/releases", body).await;
        assert_eq!(reg["missingArtifacts"], json!([release.file]), "{reg}");
        let r = self
            .upload(
                &release.app,
                &release.version,
                &release.file,
                release.bytes.clone(),
            )
            .await;
        let status = r.status();
        let v: Value = within("upload answer", r.json()).await.expect("json");
        assert_eq!(status, 200, "{v}");
        v
    }
}

impl Drop for TestServer {
    /// A PostgreSQL test drops its own database (forcing out the store's connections).
    fn drop(&mut self) {
        if self.config.database.starts_with("postgres") {
            db::drop_database(&self.config.database);
        }
    }
}

/// Builds and signs with `key` a release of `r.version` with one artifact
/// (`{app}-{version}-linux-x64.tar.gz`, `r.size` bytes of text) in a new folder under `parent`.
pub fn signed_release(parent: &Path, r: &ReleaseSpec<'_>, key: &PrivateKey) -> SignedRelease {
    let bytes: Vec<u8> = format!("payload of {} ", r.version)
        .bytes()
        .cycle()
        .take(r.size)
        .collect();
    signed_release_with(parent, r, key, bytes)
}

/// [`signed_release`] with the artifact's bytes given (`r.size` is not used).
pub fn signed_release_with(
    parent: &Path,
    r: &ReleaseSpec<'_>,
    key: &PrivateKey,
    bytes: Vec<u8>,
) -> SignedRelease {
    let work = parent.join(format!("build-{}-{}", r.version, uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).expect("mkdir");
    let file = format!("{}-{}-linux-x64.tar.gz", r.app, r.version);
    std::fs::write(work.join(&file), &bytes).expect("write");
    let manifest = build_manifest(&ManifestSpec {
        app: r.app.into(),
        version: r.version.parse().expect("version"),
        channel: r.channel.into(),
        notes: format!("release {}", r.version),
        artifacts: vec![ArtifactFile {
            path: work.join(&file),
            platform: Platform::Linux,
            arch: Arch::X64,
            format: Format::TarGz,
        }],
        base_url: r.base_url.map(str::to_string),
        rollout: r.policy.clone(),
        released_at: r.released_at,
        sigstore_bundles: None,
    })
    .expect("manifest");
    let envelope = sign_manifest(&manifest, &[key]).expect("sign");
    SignedRelease {
        app: r.app.into(),
        version: r.version.into(),
        envelope: serde_json::to_value(&envelope).expect("json"),
        file,
        bytes,
        build: work,
    }
}

/// A health report of one install (`machine_id`) over the hour before `now`, on linux/x64.
pub fn health_report(
    app: &str,
    channel: &str,
    version: &str,
    machine_id: String,
    (errors, crashes): (u32, u32),
    now: DateTime<Utc>,
) -> HealthReport {
    HealthReport {
        id: uuid::Uuid::new_v4(),
        machine_id,
        app: app.into(),
        version: version.into(),
        channel: channel.into(),
        platform: "linux".into(),
        arch: "x64".into(),
        period_start: now - chrono::Duration::hours(1),
        period_end: now,
        sessions: 1,
        errors,
        crashes,
        boot_reverts: 0,
        session_ends: None,
    }
}

/// What [`TestServer::release`] builds.
#[derive(Debug, Clone)]
pub struct ReleaseSpec<'a> {
    /// App name.
    pub app: &'a str,
    /// Channel.
    pub channel: &'a str,
    /// Version.
    pub version: &'a str,
    /// The manifest's rollout policy.
    pub policy: Option<RolloutPolicy>,
    /// `releasedAt`.
    pub released_at: DateTime<Utc>,
    /// Artifact size in bytes.
    pub size: usize,
    /// Where the artifact is hosted when not beside the manifest (nothing to upload then).
    pub base_url: Option<&'a str>,
}

/// A signed release and its one artifact.
#[derive(Debug, Clone)]
pub struct SignedRelease {
    /// App name.
    pub app: String,
    /// Version.
    pub version: String,
    /// The signed manifest (DSSE envelope) as JSON.
    pub envelope: Value,
    /// The artifact's file name.
    pub file: String,
    /// The artifact's bytes.
    pub bytes: Vec<u8>,
    /// The folder that holds the artifact.
    pub build: PathBuf,
}

/// `railgun serve` as a child process: its log kept, stopped by a signal or killed (and
/// reaped) on drop, every wait with a deadline.
pub struct ChildServer {
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
    /// The bound address (from the same line).
    pub addr: SocketAddr,
    /// Every line the server printed before its URL (e.g. the `--dev` notice).
    pub preamble: Vec<String>,
    child: Option<Child>,
    pid: Pid,
    log: Arc<(Mutex<String>, Condvar)>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

impl ChildServer {
    /// Runs `railgun serve --addr 127.0.0.1:0` plus `args`, with no token, database, key
    /// or log filter from the test's environment but `env`, and waits up to [`DEADLINE`]
    /// for its `listening on http://…` line.
    pub fn spawn(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_railgun"));
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("RAILGUN_DATABASE_URL")
            .env_remove("RAILGUN_READ_TOKEN")
            .env_remove("RAILGUN_ADMIN_TOKEN")
            .env_remove("RAILGUN_ROLLOUT_KEY_FILE")
            .env_remove("RAILGUN_ALERT_WEBHOOK")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn railgun serve");
        let pid = Pid::from_child(&child);
        let log = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.0.lock().expect("log").push_str(&line);
                sink.1.notify_all();
                line.clear();
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        // Read on a thread so the deadline holds even if the child never prints.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let mut preamble = Vec::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.contains("listening on http://") {
                    let _ = tx.send(Ok((line, preamble)));
                    // Keep draining so the child never blocks on a full pipe.
                    for _ in lines.by_ref() {}
                    return;
                }
                preamble.push(line);
            }
            let _ = tx.send(Err(preamble));
        });
        let mut server = Self {
            url: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            preamble: Vec::new(),
            child: Some(child),
            pid,
            log,
            log_reader: Some(log_reader),
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(Ok((line, preamble))) => {
                server.url = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .expect("url in the listening line")
                    .to_string();
                server.addr = server
                    .url
                    .trim_start_matches("http://")
                    .parse()
                    .expect("listening address");
                server.preamble = preamble;
            }
            Ok(Err(preamble)) => panic!(
                "railgun serve exited before listening: {preamble:?}, log: {}",
                server.log()
            ),
            Err(_) => panic!(
                "railgun serve printed no URL within {DEADLINE:?}: {}",
                server.log()
            ),
        }
        server
    }

    /// [`ChildServer::spawn`] serving `root` with its data in `data_dir`.
    pub fn serve(
        root: &Path,
        data_dir: &Path,
        extra: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> Self {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--root".as_ref(),
            root.as_os_str(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
        ];
        args.extend_from_slice(extra);
        Self::spawn(&args, env)
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: Signal) {
        kill_process(self.pid, sig).expect("signal the child");
    }

    /// Waits for the child to exit, `within` at most; `None` (the child then killed) when
    /// it did not.
    pub fn wait_exit(&mut self, within: StdDuration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            (child, status)
        });
        let exited = rx.recv_timeout(within).is_ok();
        if !exited {
            let _ = kill_process(self.pid, Signal::KILL);
        }
        let (_, status) = waiter.join().expect("waiter");
        if let Some(r) = self.log_reader.take() {
            let _ = r.join();
        }
        exited.then(|| status.expect("wait"))
    }

    /// SIGTERM, then the exit (30 s at most past `grace`); panics when it does not exit.
    pub fn terminate(&mut self, grace: StdDuration) -> ExitStatus {
        self.signal(Signal::TERM);
        self.wait_exit(grace + StdDuration::from_secs(30))
            .unwrap_or_else(|| panic!("railgun serve ignored SIGTERM: {}", self.log()))
    }

    /// Everything the child logged so far (complete once it exited).
    pub fn log(&self) -> String {
        self.log.0.lock().expect("log").clone()
    }

    /// Waits (`within` at most) until the log holds `needle`; `false` when it did not.
    pub fn wait_log(&self, needle: &str, within: StdDuration) -> bool {
        let (log, grew) = &*self.log;
        let guard = log.lock().expect("log");
        let (guard, _) = grew
            .wait_timeout_while(guard, within, |l| !l.contains(needle))
            .expect("log");
        guard.contains(needle)
    }

    /// The log lines at ERROR level.
    pub fn error_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("ERROR"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A hand-written router served on loopback: a stand-in for another party.
pub struct ScriptedServer {
    /// The bound address.
    pub addr: SocketAddr,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ScriptedServer {
    /// Serves `router` on `127.0.0.1:0`.
    pub async fn spawn(router: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        Self {
            addr,
            handle,
            shutdown: Some(tx),
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (requests in flight finish) within [`DEADLINE`].
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match within("scripted server stop", &mut self.handle).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Runs the `railgun` binary with `args` and waits for it.
pub fn railgun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args(args)
        .output()
        .expect("run railgun")
}

/// [`railgun`], which must succeed: its standard output.
pub fn railgun_ok(args: &[&str]) -> String {
    String::from_utf8_lossy(&succeeded(args, railgun(args))).into_owned()
}

/// The standard output of `railgun ARGS`, which must have succeeded (else its standard
/// error fails the test).
fn succeeded(args: &[impl AsRef<str>], out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "railgun {:?} failed: {}",
        args.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`railgun`] from async code: on a blocking thread, within [`DEADLINE`].
pub async fn railgun_async(args: &[impl AsRef<str>]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let what = format!("railgun {args:?}");
    within(
        &what,
        tokio::task::spawn_blocking(move || {
            railgun(&args.iter().map(String::as_str).collect::<Vec<_>>())
        }),
    )
    .await
    .expect("join")
}

/// [`railgun_ok`] from async code (a client command run with `--json`): its output as JSON.
pub async fn railgun_json(args: &[impl AsRef<str>]) -> Value {
    let out = succeeded(args, railgun_async(args).await);
    serde_json::from_slice(&out).expect("railgun's JSON output")
}

/// A path's text (test paths are UTF-8).
pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

/// moto's S3-compatible server on a free loopback port, one bucket created (stopped on
/// drop): what `s3://` URLs of the object-store code run against.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
}

impl Moto {
    /// Starts moto with `bucket` created; `None` (SKIP, a failure under
    /// `RAILGUN_REQUIRE_ALL=1`) when `moto[server]` or boto3 is not installed.
    pub fn start(bucket: &str) -> Option<Self> {
        if !python_has("moto.server") || !python_has("boto3") {
            skip("moto's S3 server (pip install 'moto[server]', scripts/test.sh installs it)");
            return None;
        }
        const MOTO: &str = r#"
import sys, boto3
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
host, port = s.get_host_and_port()
boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
             aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket=sys.argv[1])
print(f"PORT {port}", flush=True)
sys.stdin.read()
"#;
        let mut child = Command::new("python3")
            .args(["-c", MOTO, bucket])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = tx.send(line);
        });
        let mut me = Self {
            endpoint: String::new(),
            child,
        };
        let line = rx.recv_timeout(DEADLINE).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("moto did not start: {line:?}"));
        me.endpoint = format!("http://127.0.0.1:{port}");
        Some(me)
    }

    /// The environment `object_store` reads for this server (`AmazonS3Builder::from_env`).
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", &self.endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
