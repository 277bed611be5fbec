//! Who drives the rollout of the demo's release.
//!
//! * [`Control::Server`]: the server's rollout engine through its admin routes
//!   (`POST /admin/releases`, `PUT …/artifacts/{file}`, `POST /admin/rollouts/…/start`,
//!   `POST /admin/rollouts/evaluate`) and `GET /analytics/rollout-status` — the real thing.
//! * [`Control::Static`]: a stand-in for a server without those routes: the demo applies
//!   the same rules (Wilson bounds, stages, stage hours) to the health it saw and signs each
//!   new channel state into the static tree with [`crate::release::publish`]; its decisions
//!   carry the actor `demo`.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use railgun_core::clock::{Clock, ManualClock};
use railgun_core::trust::{PrivateKey, TrustedKeys};
use railgun_core::update::{RolloutPolicy, RolloutStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::artifacts::BuiltRelease;
use super::stats::wilson;
use super::DemoError;
use crate::release::{publish, PublishOptions};

/// One entry of the decision log (the server's `Decision`, camelCase).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Decision {
    /// When.
    pub at: Option<DateTime<Utc>>,
    /// Version.
    pub version: String,
    /// start | advance | halt | resume | set_percentage | rollback | complete | …
    pub action: String,
    /// engine | admin | demo.
    pub actor: String,
    /// Percentage before.
    pub from_percentage: Option<f64>,
    /// Percentage after.
    pub to_percentage: Option<f64>,
    /// Installs counted.
    pub installs: Option<u64>,
    /// Error rate.
    pub error_rate: Option<f64>,
    /// Its Wilson lower bound.
    pub error_lower: Option<f64>,
    /// Its Wilson upper bound.
    pub error_upper: Option<f64>,
    /// Crash rate.
    pub crash_rate: Option<f64>,
    /// Its Wilson lower bound.
    pub crash_lower: Option<f64>,
    /// Its Wilson upper bound.
    pub crash_upper: Option<f64>,
    /// Why.
    pub reason: Option<String>,
}

/// The rollout as the controller sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutView {
    /// Percentage.
    pub percentage: f64,
    /// active | halted | complete.
    pub status: String,
}

/// Health of one version as the demo counted it (distinct installs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Installs that reported on this version.
    pub installs: u64,
    /// Of those, installs with at least one error.
    pub with_errors: u64,
    /// Of those, installs with at least one crash.
    pub with_crashes: u64,
}

/// The rollout driver.
#[derive(Debug)]
pub enum Control {
    /// The server's engine.
    Server(ServerControl),
    /// The demo's stand-in.
    Static(Box<StaticControl>),
}

/// Drives the server's engine over HTTP.
#[derive(Debug)]
pub struct ServerControl {
    /// Base URL.
    pub url: String,
    /// Admin token.
    pub admin_token: String,
    /// Read token.
    pub read_token: String,
    /// Client.
    pub http: reqwest::Client,
    /// App.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// The version under rollout.
    pub version: String,
    /// The previous release (fallback).
    pub old: BuiltRelease,
    /// The release under rollout.
    pub new: BuiltRelease,
    /// First stage.
    pub first: f64,
}

/// Applies the engine's rules itself and publishes into the static tree.
#[derive(Debug)]
pub struct StaticControl {
    /// Tree root.
    pub root: PathBuf,
    /// The release key (verifies manifests).
    pub release_keys: TrustedKeys,
    /// The rollout key (signs channel states).
    pub rollout_key: Arc<PrivateKey>,
    /// The previous release (fallback).
    pub old: BuiltRelease,
    /// The release under rollout.
    pub new: BuiltRelease,
    /// Its policy.
    pub policy: RolloutPolicy,
    /// The clock.
    pub clock: ManualClock,
    stage: usize,
    stage_started: DateTime<Utc>,
    status: RolloutStatus,
    decisions: Vec<Decision>,
}

fn status_str(s: RolloutStatus) -> &'static str {
    match s {
        RolloutStatus::Active => "active",
        RolloutStatus::Halted => "halted",
        RolloutStatus::Complete => "complete",
    }
}

impl StaticControl {
    /// A controller; nothing is published until [`Control::start`].
    pub fn new(
        root: PathBuf,
        release_keys: TrustedKeys,
        rollout_key: Arc<PrivateKey>,
        old: BuiltRelease,
        new: BuiltRelease,
        policy: RolloutPolicy,
        clock: ManualClock,
    ) -> Self {
        let now = clock.now();
        Self {
            root,
            release_keys,
            rollout_key,
            old,
            new,
            policy,
            clock,
            stage: 0,
            stage_started: now,
            status: RolloutStatus::Active,
            decisions: Vec::new(),
        }
    }

    fn percentage(&self) -> f64 {
        self.policy.stages.get(self.stage).copied().unwrap_or(100.0)
    }

    fn publish(
        &self,
        release: &BuiltRelease,
        fallback: Option<&BuiltRelease>,
        pct: f64,
        status: RolloutStatus,
    ) -> Result<(), DemoError> {
        publish(&PublishOptions {
            root: self.root.clone(),
            manifest: release.manifest_path.clone(),
            artifacts_dir: None,
            release_keys: self.release_keys.clone(),
            rollout_key: &self.rollout_key,
            percentage: pct,
            status,
            fallback: fallback.map(|f| f.manifest_path.clone()),
            rollback_from: vec![],
            expires: chrono::Duration::days(7),
            now: self.clock.now(),
        })?;
        Ok(())
    }

    fn decide(&mut self, action: &str, from: f64, to: f64, t: Option<Tally>, reason: String) {
        let mut d = Decision {
            at: Some(self.clock.now()),
            version: self.new.version.to_string(),
            action: action.into(),
            actor: "demo".into(),
            from_percentage: Some(from),
            to_percentage: Some(to),
            reason: Some(reason),
            ..Decision::default()
        };
        if let Some(t) = t {
            let (el, eu) = wilson(t.with_errors, t.installs);
            let (cl, cu) = wilson(t.with_crashes, t.installs);
            let rate = |k: u64| {
                if t.installs == 0 {
                    0.0
                } else {
                    k as f64 / t.installs as f64
                }
            };
            d.installs = Some(t.installs);
            d.error_rate = Some(rate(t.with_errors));
            d.error_lower = Some(el);
            d.error_upper = Some(eu);
            d.crash_rate = Some(rate(t.with_crashes));
            d.crash_lower = Some(cl);
            d.crash_upper = Some(cu);
        }
        self.decisions.push(d);
    }

    fn start(&mut self) -> Result<(), DemoError> {
        self.publish(&self.old, None, 100.0, RolloutStatus::Complete)?;
        let pct = self.percentage();
        self.publish(&self.new, Some(&self.old), pct, RolloutStatus::Active)?;
        self.stage_started = self.clock.now();
        self.decide(
            "start",
            0.0,
            pct,
            None,
            format!("first stage, fallback {}", self.old.version),
        );
        Ok(())
    }

    /// The engine's rules: halt on a lower bound above a limit, advance after the stage's
    /// hours on upper bounds below both limits.
    fn evaluate(&mut self, t: Tally) -> Result<(), DemoError> {
        if self.status != RolloutStatus::Active {
            return Ok(());
        }
        let p = self.policy.clone();
        let from = self.percentage();
        if t.installs < p.min_installs {
            return Ok(());
        }
        let (el, eu) = wilson(t.with_errors, t.installs);
        let (cl, cu) = wilson(t.with_crashes, t.installs);
        if el > p.max_error_rate || cl > p.max_crash_rate {
            self.status = RolloutStatus::Halted;
            self.publish(&self.new, Some(&self.old), from, RolloutStatus::Halted)?;
            let why = if cl > p.max_crash_rate {
                format!("crash rate lower bound {cl:.3} > {}", p.max_crash_rate)
            } else {
                format!("error rate lower bound {el:.3} > {}", p.max_error_rate)
            };
            self.decide("halt", from, from, Some(t), why);
            return Ok(());
        }
        let hours = (self.clock.now() - self.stage_started).num_minutes() as f64 / 60.0;
        if hours >= p.stage_hours && eu < p.max_error_rate && cu < p.max_crash_rate {
            self.stage += 1;
            self.stage_started = self.clock.now();
            let to = self.percentage();
            let done = self.stage + 1 >= p.stages.len();
            if done {
                self.status = RolloutStatus::Complete;
            }
            self.publish(&self.new, Some(&self.old), to, self.status)?;
            let why =
                format!("healthy for {hours:.0} h: upper bounds {eu:.3} errors, {cu:.3} crashes");
            self.decide(
                if done { "complete" } else { "advance" },
                from,
                to,
                Some(t),
                why,
            );
        }
        Ok(())
    }
}

impl ServerControl {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(DemoError::Server {
                what: format!("{method} {path}"),
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn register(&self, r: &BuiltRelease) -> Result<(), DemoError> {
        let manifest: Value = serde_json::from_slice(&r.envelope.to_json_bytes())
            .map_err(|e| DemoError::Invalid(e.to_string()))?;
        self.send(
            reqwest::Method::POST,
            "/admin/releases",
            Some(json!({"manifest": manifest, "start": false})),
        )
        .await?;
        let bytes = tokio::fs::read(&r.artifact_path)
            .await
            .map_err(|source| DemoError::Io {
                path: r.artifact_path.display().to_string(),
                source,
            })?;
        let path = format!(
            "{}/admin/releases/{}/{}/artifacts/{}",
            self.url, self.app, r.version, r.artifact_name
        );
        let resp = self
            .http
            .put(&path)
            .bearer_auth(&self.admin_token)
            .body(bytes)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(DemoError::Server {
                what: format!("PUT {path}"),
                status: resp.status().as_u16(),
                body: resp
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect(),
            });
        }
        Ok(())
    }

    async fn start(&self) -> Result<(), DemoError> {
        let (old, new, first) = (&self.old, &self.new, self.first);
        let base = format!("/admin/rollouts/{}/{}", self.app, self.channel);
        self.register(old).await?;
        self.send(
            reqwest::Method::POST,
            &format!("{base}/start"),
            Some(json!({"version": old.version.to_string(), "percentage": 100.0})),
        )
        .await?;
        self.register(new).await?;
        self.send(
            reqwest::Method::POST,
            &format!("{base}/start"),
            Some(
                json!({"version": new.version.to_string(), "percentage": first,
                        "fallbackVersion": old.version.to_string()}),
            ),
        )
        .await?;
        Ok(())
    }

    async fn status(&self) -> Result<Value, DemoError> {
        let path = format!(
            "{}/analytics/rollout-status?version={}&app={}&channel={}",
            self.url, self.version, self.app, self.channel
        );
        let resp = self
            .http
            .get(&path)
            .bearer_auth(&self.read_token)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(DemoError::Server {
                what: format!("GET {path}"),
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&text).map_err(|e| DemoError::Invalid(format!("rollout status: {e}")))
    }
}

impl Control {
    /// `server` or `demo` (the stand-in).
    pub fn engine(&self) -> &'static str {
        match self {
            Control::Server(_) => "server",
            Control::Static(_) => "demo",
        }
    }

    /// Publishes the previous release at 100 % and starts the new one's first stage.
    pub async fn start(&mut self) -> Result<(), DemoError> {
        match self {
            Control::Static(s) => s.start(),
            Control::Server(s) => s.start().await,
        }
    }

    /// Runs the engine once (`tally` is the demo's own count, used by the stand-in only).
    pub async fn evaluate(&mut self, tally: Tally) -> Result<(), DemoError> {
        match self {
            Control::Static(s) => s.evaluate(tally),
            Control::Server(s) => s
                .send(
                    reqwest::Method::POST,
                    "/admin/rollouts/evaluate",
                    Some(json!({})),
                )
                .await
                .map(|_| ()),
        }
    }

    /// The rollout now.
    pub async fn view(&self) -> Result<RolloutView, DemoError> {
        match self {
            Control::Static(s) => Ok(RolloutView {
                percentage: s.percentage(),
                status: status_str(s.status).into(),
            }),
            Control::Server(s) => {
                let v = s.status().await?;
                Ok(RolloutView {
                    percentage: v["rolloutPercentage"].as_f64().unwrap_or(0.0),
                    status: v["status"].as_str().unwrap_or("unknown").to_string(),
                })
            }
        }
    }

    /// The decision log of the release under rollout, oldest first.
    pub async fn decisions(&self) -> Result<Vec<Decision>, DemoError> {
        match self {
            Control::Static(s) => Ok(s.decisions.clone()),
            Control::Server(s) => {
                let v = s.status().await?;
                let mut d: Vec<Decision> =
                    serde_json::from_value(v["decisions"].clone()).unwrap_or_default();
                d.sort_by_key(|d| d.at);
                Ok(d)
            }
        }
    }
}
