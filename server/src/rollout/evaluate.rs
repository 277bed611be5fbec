//! One run of the engine ([`Rollouts::evaluate`]): the rules of [`super::engine`] applied to
//! every channel's current active rollout at the injected clock's now, the decisions they
//! take recorded and alerted, and channel states re-signed before they expire.
//!
//! It refuses nothing by itself; a channel that fails (a server sharing the database won
//! the sequence, a file system error) is logged and the others are still evaluated.

use super::*;
use crate::store::alerts::AlertWrite;

impl Rollouts {
    // ---- the engine -----------------------------------------------------------------

    /// One engine run, at the injected clock's now: re-signs channel states past half their
    /// validity (and rewrites a `channel.json` that differs from the database), then applies
    /// the rules to every channel's active rollout. Returns the decisions taken.
    ///
    /// Only the server holding the engine's lease runs it ([`crate::leader`]; a server of
    /// its own SQLite file always does): the lease is taken or renewed first, and every
    /// change of the run is fenced by it. Another server leading is a
    /// [`RolloutError::Conflict`].
    pub async fn evaluate(&self) -> Result<Vec<Decision>, RolloutError> {
        let Some(fence) = self.inner.leader.try_lead().await? else {
            return Err(RolloutError::Conflict(
                "another railgun server sharing this database runs the rollout engine (it holds \
                 the lease); this one takes over when that lease expires"
                    .into(),
            ));
        };
        ENGINE_FENCE
            .scope(Some(fence), self.evaluate_leading())
            .await
    }

    async fn evaluate_leading(&self) -> Result<Vec<Decision>, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let mut out = Vec::new();
        let channels = self.inner.store.list_channels().await?;
        for ch in channels {
            // One channel failing (a concurrent server won the sequence, a file system
            // error) does not keep the others from being evaluated.
            if let Err(e) = self.evaluate_channel(&ch, &mut out).await {
                tracing::warn!(app = %ch.app, channel = %ch.channel, error = %e, "rollout evaluation failed");
            }
        }
        if let Err(e) = self.sweep_alerts(&mut out).await {
            tracing::warn!(error = %e, "rollout alerts not evaluated");
        }
        if let Err(e) = self.refresh_gauges().await {
            tracing::warn!(error = %e, "fleet gauges not refreshed");
        }
        Ok(out)
    }

    pub(super) async fn evaluate_channel(
        &self,
        ch: &ChannelRow,
        out: &mut Vec<Decision>,
    ) -> Result<(), RolloutError> {
        let Some(r) = self
            .inner
            .store
            .get_rollout(ch.app.clone(), ch.channel.clone(), ch.version.clone())
            .await?
        else {
            return Ok(());
        };
        if r.status == "active" {
            if let Some(d) = self.judge(r).await? {
                out.push(d);
            }
        }
        // Reloaded: a decision above may have signed a fresh state.
        if let Some(ch) = self
            .inner
            .store
            .get_channel(ch.app.clone(), ch.channel.clone())
            .await?
        {
            self.refresh(&ch).await?;
        }
        Ok(())
    }

    /// Re-signs a state past half its validity; rewrites `channel.json` when it differs.
    pub(super) async fn refresh(&self, ch: &ChannelRow) -> Result<(), RolloutError> {
        let now = self.now();
        let half = from_ms(ch.issued_ms) + self.inner.expiry / 2;
        if now >= half && self.inner.signer.is_ok() {
            if let Some(r) = self
                .inner
                .store
                .get_rollout(ch.app.clone(), ch.channel.clone(), ch.version.clone())
                .await?
            {
                tracing::info!(app = %ch.app, channel = %ch.channel, "re-signing channel state before expiry");
                self.commit(&r, None).await?;
                return Ok(());
            }
        }
        let served = self.served_channel(&ch.app, &ch.channel).await?;
        if served.as_deref() != Some(ch.envelope.as_bytes()) {
            self.write_channel(&ch.app, &ch.channel, ch.envelope.clone().into_bytes())
                .await?;
        }
        Ok(())
    }

    pub(super) async fn judge(&self, mut r: RolloutRow) -> Result<Option<Decision>, RolloutError> {
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let now = self.now();
        let verdict = engine::judge(engine::RuleInput {
            policy: &policy,
            percentage: r.percentage,
            health: &h,
            in_stage: now - from_ms(r.stage_started_ms),
        });
        let from = r.percentage;
        let decision = match verdict {
            engine::Verdict::Halt { reason } => {
                return Ok(Some(self.halt_locked(r, Actor::Engine, reason).await?));
            }
            engine::Verdict::Advance { to, reason } => {
                r.percentage = to;
                r.stage_started_ms = to_ms(now);
                r.high_error_alerted = false;
                r.updated_ms = to_ms(now);
                let d = self.decision(&r, "advance", Actor::Engine, from, &h, reason);
                self.commit(&r, Some(d.clone())).await?;
                d
            }
            engine::Verdict::Complete { reason } => {
                r.status = "complete".into();
                r.updated_ms = to_ms(now);
                let d = self.decision(&r, "complete", Actor::Engine, from, &h, reason);
                self.commit(&r, Some(d.clone())).await?;
                d
            }
            engine::Verdict::Wait => return Ok(None),
        };
        Ok(Some(decision))
    }

    /// Records a decision, rollout flags and the alert the decision raises, without
    /// signing a new state.
    pub(super) async fn note(
        &self,
        r: &RolloutRow,
        d: Decision,
        alerts: AlertWrite,
    ) -> Result<(), RolloutError> {
        self.inner
            .store
            .commit_change(RolloutChange {
                rollout: Some(r.clone()),
                channel: None,
                decision: Some(d.clone()),
                alerts: alerts.clone(),
                fence: super::fence(),
            })
            .await?;
        self.inner.alerts.committed(&alerts);
        let _ = self.inner.decisions.send(d);
        Ok(())
    }
}
