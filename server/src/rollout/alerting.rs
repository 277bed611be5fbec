//! The rollout alerts: when the engine raises and resolves Rollout Halted, High Error Rate
//! and Low Adoption (the specification's table; Analytics Backlog is the ingest queue's).
//!
//! Owns the alert keys of a rollout (`<kind>/<app>/<channel>/<version>`) and
//! [`Rollouts::sweep_alerts`], run by every engine pass after the rules:
//!
//! * **Rollout Halted** (critical) fires in the halt's own transaction ([`Rollouts`]'s
//!   halt), on every halt; it resolves in the resume's transaction, or when the rollout is
//!   no longer its channel's current one (superseded by a new start).
//! * **High Error Rate** (warning): the error rate above `maxErrorRate` (5 %) with at least
//!   `minInstalls` installs (the halt's guard) starts an excursion, kept in the alert
//!   states with its start; it fires once the excursion lasted 15 minutes on the injected
//!   clock, and a pass that sees the rate at or below the limit ends it (resolving the
//!   alert if it fired). A halted rollout keeps its excursion as it is (the halt is the
//!   louder alert); a resume judges it again.
//! * **Low Adoption** (info): fires when [`engine::low_adoption`] holds for an active
//!   rollout, resolves when it no longer does (installs caught up, complete, halted).
//!
//! A fired High Error Rate or Low Adoption is also a decision of the log (`high_error_rate`,
//! `low_adoption`), committed with its alert. It refuses to raise anything for a rollout
//! that is not its channel's current one.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::store::alerts::{AlertStateRow, AlertWrite};

/// Minutes the error rate must stay above its limit before High Error Rate fires.
pub const HIGH_ERROR_RATE_MINUTES: i64 = 15;

/// The alert key of a rollout's condition.
pub(super) fn alert_key(kind: AlertKind, r: &RolloutRow) -> String {
    format!("{}/{}/{}/{}", kind.as_str(), r.app, r.channel, r.version)
}

fn is_rollout_alert(kind: &str) -> bool {
    [
        AlertKind::RolloutHalted,
        AlertKind::HighErrorRate,
        AlertKind::LowAdoption,
    ]
    .iter()
    .any(|k| k.as_str() == kind)
}

/// A channel's current rollout with its policy, health and the channel's population (its
/// installs reporting in the last 7 days: Low Adoption's measure).
pub(super) struct Current {
    pub(super) rollout: RolloutRow,
    pub(super) policy: RolloutPolicy,
    pub(super) health: Health,
    pub(super) population: u64,
}

impl Rollouts {
    /// Every channel's current rollout, at the injected clock's now.
    pub(super) async fn current_rollouts(&self) -> Result<Vec<Current>, RolloutError> {
        let since = self.now() - Duration::days(engine::LOW_ADOPTION_POPULATION_DAYS);
        let mut out = Vec::new();
        for ch in self.inner.store.list_channels().await? {
            let Some(rollout) = self
                .inner
                .store
                .get_rollout(ch.app.clone(), ch.channel.clone(), ch.version.clone())
                .await?
            else {
                continue;
            };
            let policy = parse_policy(&rollout.policy);
            let health = self.health(&rollout, &policy).await?;
            let population = self
                .inner
                .store
                .channel_population(ch.app.clone(), ch.channel.clone(), to_ms(since))
                .await?;
            out.push(Current {
                rollout,
                policy,
                health,
                population,
            });
        }
        Ok(out)
    }

    /// The rows raising Rollout Halted for the halt decision `d` of `r`.
    pub(super) fn halt_alert(
        &self,
        r: &RolloutRow,
        h: &Health,
        policy: &RolloutPolicy,
        d: &Decision,
    ) -> AlertWrite {
        let alert = Alert {
            kind: AlertKind::RolloutHalted,
            title: format!(
                "{} {} ({}) halted at {} %",
                r.app, r.version, r.channel, r.percentage
            ),
            text: d.reason.clone(),
            fields: alert_fields(r, h, policy),
            event: Some(d.id.clone()),
        };
        self.inner
            .alerts
            .fire(&alert_key(AlertKind::RolloutHalted, r), &alert, d.at)
    }

    /// The rows resolving the condition `key`, if watched (empty otherwise).
    pub(super) async fn resolve_alert(&self, key: &str) -> Result<AlertWrite, RolloutError> {
        let states = self.inner.store.alert_states().await?;
        Ok(states
            .iter()
            .find(|s| s.key == key)
            .map(|s| self.inner.alerts.resolve(s))
            .unwrap_or_default())
    }

    /// Raises and resolves the rollout alerts at the injected clock's now (see the module
    /// docs); decisions taken (fired High Error Rate / Low Adoption) are pushed to `out`.
    pub(super) async fn sweep_alerts(&self, out: &mut Vec<Decision>) -> Result<(), RolloutError> {
        let now = self.now();
        let states: HashMap<String, AlertStateRow> = self
            .inner
            .store
            .alert_states()
            .await?
            .into_iter()
            .map(|s| (s.key.clone(), s))
            .collect();
        let mut current = HashSet::new();
        let mut loose = AlertWrite::default();
        for Current {
            rollout: mut r,
            policy,
            health: h,
            population,
        } in self.current_rollouts().await?
        {
            let halted_key = alert_key(AlertKind::RolloutHalted, &r);
            let her_key = alert_key(AlertKind::HighErrorRate, &r);
            let la_key = alert_key(AlertKind::LowAdoption, &r);
            current.extend([halted_key.clone(), her_key.clone(), la_key.clone()]);
            if r.status != "halted" {
                if let Some(s) = states.get(&halted_key) {
                    loose.extend(self.inner.alerts.resolve(s));
                }
            }

            // High Error Rate: 15 minutes above the limit, continuously.
            if r.status != "halted" {
                match (engine::high_error_rate(&h, &policy), states.get(&her_key)) {
                    (Some(_), None) => loose.extend(self.inner.alerts.watch(
                        &her_key,
                        AlertKind::HighErrorRate,
                        now,
                    )),
                    (Some(reason), Some(s))
                        if s.fired_ms.is_none()
                            && now - from_ms(s.since_ms)
                                >= Duration::minutes(HIGH_ERROR_RATE_MINUTES) =>
                    {
                        let reason = format!(
                            "{reason} for {} min (since {})",
                            (now - from_ms(s.since_ms)).num_minutes(),
                            from_ms(s.since_ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        );
                        r.high_error_alerted = true;
                        let d = self.decision(
                            &r,
                            "high_error_rate",
                            Actor::Engine,
                            r.percentage,
                            &h,
                            reason,
                        );
                        let alert = Alert {
                            kind: AlertKind::HighErrorRate,
                            title: format!(
                                "{} {} ({}): high error rate",
                                r.app, r.version, r.channel
                            ),
                            text: d.reason.clone(),
                            fields: alert_fields(&r, &h, &policy),
                            event: None,
                        };
                        let w = self
                            .inner
                            .alerts
                            .fire(&her_key, &alert, from_ms(s.since_ms));
                        self.note(&r, d.clone(), w).await?;
                        out.push(d);
                    }
                    (None, Some(s)) => loose.extend(self.inner.alerts.resolve(s)),
                    _ => {}
                }
            }

            // Low Adoption: judged while the rollout is active.
            let low = if r.status == "active" {
                engine::low_adoption(
                    h.installs,
                    population,
                    r.percentage,
                    now - from_ms(r.started_ms),
                )
            } else {
                None
            };
            match (low, states.get(&la_key)) {
                (Some(reason), s) if s.is_none_or(|s| s.fired_ms.is_none()) => {
                    r.low_adoption_alerted = true;
                    let d =
                        self.decision(&r, "low_adoption", Actor::Engine, r.percentage, &h, reason);
                    let alert = Alert {
                        kind: AlertKind::LowAdoption,
                        title: format!("{} {} ({}): low adoption", r.app, r.version, r.channel),
                        text: d.reason.clone(),
                        fields: alert_fields(&r, &h, &policy),
                        event: None,
                    };
                    let w = self.inner.alerts.fire(&la_key, &alert, now);
                    self.note(&r, d.clone(), w).await?;
                    out.push(d);
                }
                (None, Some(s)) if r.status != "halted" => {
                    loose.extend(self.inner.alerts.resolve(s))
                }
                _ => {}
            }
        }
        // Rollouts superseded by a new start: their conditions are over.
        for s in states.values() {
            if is_rollout_alert(&s.kind) && !current.contains(&s.key) {
                loose.extend(self.inner.alerts.resolve(s));
            }
        }
        if !loose.is_empty() {
            // Fenced like the decisions: only the leading engine moves alert states.
            self.inner
                .store
                .commit_change(RolloutChange {
                    alerts: loose.clone(),
                    fence: super::fence(),
                    ..RolloutChange::default()
                })
                .await?;
            self.inner.alerts.committed(&loose);
        }
        Ok(())
    }
}
