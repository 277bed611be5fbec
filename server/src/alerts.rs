//! Alerts: Slack-compatible webhooks for the rollout engine and the analytics backend.
//!
//! Owns [`Alert`], [`AlertKind`], [`Severity`] and [`Alerter`]. Sending never blocks the
//! caller: alerts are queued and delivered in the background, retried until the receiver
//! acknowledges them. (Interface fixed by the lead; the delivery side is being built.)

use std::sync::Arc;

/// How urgent an alert is (the seed's alert table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone must act now (a rollout was halted).
    Critical,
    /// Worth a look soon (high error rate, analytics backlog).
    Warning,
    /// For the record (low adoption).
    Info,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The rollout engine halted a rollout (critical).
    RolloutHalted,
    /// A rollout's error rate is high but not (yet) conclusive (warning).
    HighErrorRate,
    /// Fewer than 10 % of the expected installs after 48 h (info).
    LowAdoption,
    /// The analytics ingest queue holds more than 10 000 events (warning).
    AnalyticsBacklog,
}

impl AlertKind {
    /// The severity the seed's alert table gives this kind.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::RolloutHalted => Severity::Critical,
            AlertKind::HighErrorRate | AlertKind::AnalyticsBacklog => Severity::Warning,
            AlertKind::LowAdoption => Severity::Info,
        }
    }
}

/// One alert. Carries numbers and names of releases, never user ids or event properties.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// One line, e.g. `"railgun 0.2.0 (stable) halted at 10 %"`.
    pub title: String,
    /// The details a person needs (rates, bounds, limits, installs).
    pub text: String,
    /// Key/value pairs shown as fields (Slack attachment fields).
    pub fields: Vec<(String, String)>,
}

/// Delivers alerts; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Alerter {
    inner: Arc<()>,
}

impl Alerter {
    /// An alerter that only logs (no webhook configured).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// An alerter posting Slack-compatible JSON to `webhook` (`RAILGUN_ALERT_WEBHOOK`);
    /// `None` only logs. Must be called inside a tokio runtime when `webhook` is set.
    pub fn new(webhook: Option<String>) -> Self {
        let _ = webhook;
        Self::default()
    }

    /// Queues `alert` for delivery and returns at once.
    pub fn send(&self, alert: Alert) {
        let _ = &self.inner;
        tracing::warn!(kind = ?alert.kind, title = %alert.title, "alert");
    }
}
