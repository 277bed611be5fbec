//! How a simulated install's health report reaches the server: the wire type of
//! [`railgun_core::health`] posted to `POST /analytics/health`, one report per launch for
//! the version that ran.

use chrono::{DateTime, Utc};
use railgun_core::health::{validate_report, HealthReport, HealthResponse};
use railgun_core::Version;
use uuid::Uuid;

use super::fleet::Fleet;
use super::DemoError;

/// The health path of the installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSink {
    /// Post the report (the real wire type over real HTTP).
    Post,
}

impl HealthSink {
    /// Sends one launch's report; `Ok(false)` when the server did not take it.
    #[allow(clippy::too_many_arguments)]
    pub async fn report(
        &self,
        fleet: &Fleet,
        machine_id: &str,
        version: &Version,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        errors: u32,
        crashes: u32,
    ) -> Result<bool, DemoError> {
        let report = HealthReport {
            id: Uuid::now_v7(),
            machine_id: machine_id.to_string(),
            app: fleet.app.clone(),
            version: version.to_string(),
            channel: fleet.channel.clone(),
            platform: "linux".into(),
            arch: "x64".into(),
            period_start: start,
            period_end: end,
            sessions: 1,
            errors,
            crashes,
            boot_reverts: 0,
        };
        validate_report(&report).map_err(|e| DemoError::Invalid(e.to_string()))?;
        let resp = fleet
            .http
            .post(format!("{}/analytics/health", fleet.url))
            .json(&report)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Ok(false);
        }
        let body: HealthResponse = resp.json().await?;
        Ok(body.accepted || body.duplicate)
    }
}
