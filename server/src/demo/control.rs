//! The demo's side of the rollout: an admin client of the server's rollout engine.
//!
//! Registers each release (`POST /admin/releases` with the signed manifest envelope, then
//! `PUT …/artifacts/{file}` with the tar.gz and each delta patch), starts the rollouts
//! (`POST /admin/rollouts/{app}/{channel}/start`), asks the engine to evaluate after each
//! simulated day (`POST /admin/rollouts/evaluate`) and reads the status and the decision log
//! (`GET /analytics/rollout-status`). It decides nothing itself: every halt, advance and
//! completion comes from the server's engine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::artifacts::BuiltRelease;
use super::DemoError;

/// One entry of the decision log (the server's `Decision`, camelCase; rates in percent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Decision {
    /// When.
    pub at: Option<DateTime<Utc>>,
    /// Version.
    pub version: String,
    /// start | advance | halt | resume | set_percentage | rollback | complete | …
    pub action: String,
    /// engine | admin.
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

/// Drives the server's engine over HTTP.
#[derive(Debug)]
pub struct Control {
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

impl Control {
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
        for (name, file) in r.uploads() {
            let bytes = tokio::fs::read(&file)
                .await
                .map_err(|source| DemoError::Io {
                    path: file.display().to_string(),
                    source,
                })?;
            let path = format!(
                "{}/admin/releases/{}/{}/artifacts/{}",
                self.url, self.app, r.version, name
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
        }
        Ok(())
    }

    async fn start_rollouts(&self) -> Result<(), DemoError> {
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

    /// Publishes the previous release at 100 % and starts the new one's first stage.
    pub async fn start(&self) -> Result<(), DemoError> {
        self.start_rollouts().await
    }

    /// Runs the engine once (`POST /admin/rollouts/evaluate`).
    pub async fn evaluate(&self) -> Result<(), DemoError> {
        self.send(
            reqwest::Method::POST,
            "/admin/rollouts/evaluate",
            Some(json!({})),
        )
        .await
        .map(|_| ())
    }

    /// The rollout now.
    pub async fn view(&self) -> Result<RolloutView, DemoError> {
        let v = self.status().await?;
        Ok(RolloutView {
            percentage: v["rolloutPercentage"].as_f64().unwrap_or(0.0),
            status: v["status"].as_str().unwrap_or("unknown").to_string(),
        })
    }

    /// The decision log of the release under rollout, oldest first.
    pub async fn decisions(&self) -> Result<Vec<Decision>, DemoError> {
        let v = self.status().await?;
        let mut d: Vec<Decision> = serde_json::from_value(v["decisions"].clone())
            .map_err(|e| DemoError::Invalid(format!("decision log: {e}")))?;
        d.sort_by_key(|d| d.at);
        Ok(d)
    }
}
