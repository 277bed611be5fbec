//! The demo's last phase: the server's own counts and the [`DemoReport`].
//!
//! Owns asking the server what it counted (DAU and sessions per simulated day through the
//! read API, the engine's decisions and final status through [`Control`]) and putting it
//! beside what the simulation and the verification counted. It refuses to compute on the
//! client side a number the server answers: the analytics days are the server's.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::publish::Live;
use super::report::{self, AnalyticsDay, AnalyticsSummary, DemoReport, HealthSummary, Limits};
use super::setup::Setup;
use super::simulate::Simulation;
use super::verify::Verified;
use super::{DemoError, DemoOptions, APP, CHANNEL};

/// Assembles the report of a finished simulation.
pub(super) async fn report(
    dir: &Path,
    opts: &DemoOptions,
    setup: &Setup,
    live: &Live,
    sim: Simulation,
    verified: Verified,
    began: Instant,
) -> Result<DemoReport, DemoError> {
    let control = &live.control;
    let url = &control.url;
    let mut analytics = AnalyticsSummary {
        sample_rate: opts.sample_rate,
        sampled_installs: sim.sampled.len() as u64,
        events_sent: sim.events_sent,
        days: Vec::new(),
    };
    for d in &sim.days {
        analytics
            .days
            .push(analytics_day(&control.http, url, &control.read_token, &d.to_string()).await?);
    }
    let health: BTreeMap<String, HealthSummary> = sim
        .seen
        .tallies()
        .map(|(v, t)| (v.to_string(), HealthSummary::of(t)))
        .collect();
    let decisions = control.decisions().await?;
    // Every alert the engine raised is in the outbox: wait (bounded) until it was posted.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        live.server.state.alerts.idle(),
    )
    .await;
    let alerts = live.alerts.received();
    let fin = control.view().await?;
    Ok(DemoReport {
        scenario: if opts.bad_release { "bad" } else { "healthy" },
        app: APP.into(),
        channel: CHANNEL.into(),
        version: setup.new.version.to_string(),
        fallback_version: setup.old.version.to_string(),
        final_status: fin.status,
        final_percentage: fin.percentage,
        limits: Limits::of(&setup.policy),
        installs: report::Installs {
            total: opts.installs as u64,
            joined_late: (opts.installs - sim.early) as u64,
            late_in_first_stage: verified.late_in_first_stage,
            late_in_first_stage_on_fallback: verified.late_in_first_stage_on_fallback,
            by_version: verified.by_version,
        },
        rounds: sim.rounds,
        health,
        analytics,
        decisions,
        alerts,
        verification: verified.verification,
        downloads: sim.downloads,
        launch_failures: sim.failure_count,
        failures: sim.failures,
        url: url.clone(),
        dashboard_url: format!("{url}/dashboard#token={}", control.read_token),
        work_dir: dir.display().to_string(),
        seed: opts.seed,
        wall_seconds: began.elapsed().as_secs_f64(),
        mean_step_ms: report::StepTimes::mean(&sim.step_time, sim.launches),
        installs_detail: verified.detail,
    })
}

/// DAU and sessions of one day, as the server's read API answers them.
async fn analytics_day(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    date: &str,
) -> Result<AnalyticsDay, DemoError> {
    let get = |path: String| async move {
        let r = http
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(DemoError::Server {
                what: format!("GET {path}"),
                status: status.as_u16(),
                body: v.to_string(),
            });
        }
        Ok::<_, DemoError>(v)
    };
    let dau = get(format!("/analytics/dau?date={date}")).await?;
    let sessions = get(format!("/analytics/sessions?date={date}")).await?;
    Ok(AnalyticsDay {
        date: date.to_string(),
        dau: dau["users"].as_u64().unwrap_or(0),
        dau_estimate: dau["estimate"].as_f64().unwrap_or(0.0),
        sessions: sessions["count"].as_u64().unwrap_or(0),
        sessions_estimate: sessions["estimate"].as_f64().unwrap_or(0.0),
    })
}
