//! Changes of a rollout: the state machine's transitions (start, halt, resume, percentage,
//! rollback) and how each one is made durable: a new channel state signed with the rollout
//! key (`sequence` + 1), committed with the rollout row and its [`Decision`] in one
//! transaction (compare-and-set on the sequence), then written to `channel.json`
//! atomically.
//!
//! A start rolls out by its channel's stages ([`ChannelStages`], server configuration):
//! `beta` and `canary` at 100 % at once, `stable` 10 → 25 → 50 → 100 unless configured
//! otherwise.
//!
//! It refuses changes to a rollout that is not its channel's current one, transitions the
//! state machine does not have (resume of an active rollout, a second rollback), a rollback
//! without a fallback release, and any change when no rollout key is configured.

use super::*;
use crate::store::alerts::AlertWrite;

impl Rollouts {
    // ---- changes --------------------------------------------------------------------

    pub(super) fn decision(
        &self,
        r: &RolloutRow,
        action: &str,
        actor: Actor,
        from: f64,
        h: &Health,
        reason: String,
    ) -> Decision {
        Decision {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.now(),
            app: r.app.clone(),
            channel: r.channel.clone(),
            version: r.version.clone(),
            action: action.into(),
            actor: actor.as_str().into(),
            from_percentage: from,
            to_percentage: r.percentage,
            installs: h.installs,
            error_rate: h.error_rate,
            error_lower: h.error.lower,
            error_upper: h.error.upper,
            crash_rate: h.crash_rate,
            crash_lower: h.crash.lower,
            crash_upper: h.crash.upper,
            reason,
        }
    }

    pub(super) async fn pointer(
        &self,
        app: &str,
        version: &str,
    ) -> Result<ReleasePointer, RolloutError> {
        let rel = self
            .inner
            .store
            .get_release(app.into(), version.into())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("release {app} {version}")))?;
        Ok(ReleasePointer {
            version: parse_version(version)?,
            manifest: format!("../releases/{version}/manifest.json"),
            manifest_sha256: rel.manifest_sha256,
        })
    }

    /// The channel state a rollout row stands for.
    pub(super) async fn channel_state(
        &self,
        r: &RolloutRow,
        sequence: u64,
        now: DateTime<Utc>,
    ) -> Result<ChannelState, RolloutError> {
        let fallback = match &r.fallback_version {
            Some(v) => Some(self.pointer(&r.app, v).await?),
            None => None,
        };
        let (release, rollout, fallback, rollback_from) = if r.rolled_back {
            let release = fallback.ok_or_else(|| {
                RolloutError::Conflict("a rolled-back rollout needs a fallback".into())
            })?;
            let state = RolloutState {
                percentage: 100.0,
                status: Phase::Complete,
            };
            (release, state, None, vec![parse_version(&r.version)?])
        } else {
            let status: Phase = r.status.parse().map_err(RolloutError::Conflict)?;
            let state = RolloutState {
                percentage: r.percentage,
                status,
            };
            (
                self.pointer(&r.app, &r.version).await?,
                state,
                fallback,
                vec![],
            )
        };
        Ok(ChannelState {
            schema: SCHEMA_VERSION,
            app: r.app.clone(),
            channel: r.channel.clone(),
            sequence,
            issued_at: now,
            expires_at: now + self.inner.expiry,
            release,
            rollout,
            fallback,
            rollback_from,
        })
    }

    /// The channel state's bytes as the update tree serves them, if any.
    pub(super) async fn served_channel(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Option<Vec<u8>>, RolloutError> {
        Ok(self.tree().read(&[app, channel, "channel.json"]).await?)
    }

    /// The sequence of the `channel.json` on disk when it is signed by the rollout key (a
    /// state published before the database knew the channel, e.g. by `railgun release
    /// publish`), so the next one is higher than any a client saw; 0 otherwise.
    pub(super) async fn disk_sequence(&self, app: &str, channel: &str) -> u64 {
        let Ok(key) = self.signer() else {
            return 0;
        };
        let Ok(Some(bytes)) = self.served_channel(app, channel).await else {
            return 0;
        };
        verify_channel(&bytes, key.public_key())
            .map(|s| s.sequence)
            .unwrap_or(0)
    }

    /// Signs a new channel state for `r` and commits it with `r` and `decision`; writes
    /// `channel.json`. `r` becomes the channel's current rollout.
    pub(super) async fn commit(
        &self,
        r: &RolloutRow,
        decision: Option<Decision>,
    ) -> Result<ChannelState, RolloutError> {
        self.commit_with(r, decision, AlertWrite::default()).await
    }

    /// [`Rollouts::commit`] with the alerts the decision raises or resolves, in its
    /// transaction.
    pub(super) async fn commit_with(
        &self,
        r: &RolloutRow,
        decision: Option<Decision>,
        alerts: AlertWrite,
    ) -> Result<ChannelState, RolloutError> {
        let key = self.signer()?;
        let now = self.now();
        let prev = self
            .inner
            .store
            .get_channel(r.app.clone(), r.channel.clone())
            .await?;
        let prev_seq = prev.as_ref().map(|c| c.sequence);
        let disk = self.disk_sequence(&r.app, &r.channel).await;
        let sequence = (prev_seq.unwrap_or(0).max(0) as u64)
            .max(disk)
            .saturating_add(1);
        let state = self.channel_state(r, sequence, now).await?;
        let envelope = sign_channel_state(&state, &[key])?.to_json_bytes();
        let text = String::from_utf8(envelope.clone())
            .map_err(|e| RolloutError::Conflict(format!("channel state is not UTF-8: {e}")))?;
        let row = ChannelRow {
            app: r.app.clone(),
            channel: r.channel.clone(),
            version: r.version.clone(),
            sequence: sequence as i64,
            issued_ms: to_ms(state.issued_at),
            expires_ms: to_ms(state.expires_at),
            envelope: text,
        };
        let decision_copy = decision.clone();
        let ok = self
            .inner
            .store
            .commit_change(RolloutChange {
                rollout: Some(r.clone()),
                channel: Some((row, prev_seq)),
                decision,
                alerts: alerts.clone(),
                fence: super::fence(),
            })
            .await?;
        if !ok {
            return Err(RolloutError::Conflict(format!(
                "channel {}/{} changed concurrently; retry",
                r.app, r.channel
            )));
        }
        self.inner.alerts.committed(&alerts);
        self.write_channel(&r.app, &r.channel, envelope).await?;
        if let Some(d) = decision_copy {
            let _ = self.inner.decisions.send(d);
        }
        Ok(state)
    }

    pub(super) async fn write_channel(
        &self,
        app: &str,
        channel: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RolloutError> {
        self.tree()
            .write(&[app, channel, "channel.json"], bytes)
            .await?;
        Ok(())
    }

    /// The current rollout of a channel.
    pub(super) async fn current(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<RolloutRow, RolloutError> {
        check_names(app, channel)?;
        let ch = self
            .inner
            .store
            .get_channel(app.into(), channel.into())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("rollout on {app}/{channel}")))?;
        self.inner
            .store
            .get_rollout(app.into(), channel.into(), ch.version.clone())
            .await?
            .ok_or_else(|| {
                RolloutError::NotFound(format!("rollout of {app} {} on {channel}", ch.version))
            })
    }

    /// Starts rolling out a registered release on a channel (admin or a deferred start).
    pub async fn start(
        &self,
        app: &str,
        channel: &str,
        version: &str,
        percentage: Option<f64>,
        fallback: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        self.start_locked(app, channel, version, percentage, fallback)
            .await?;
        self.status(app, channel, version).await
    }

    pub(crate) async fn start_locked(
        &self,
        app: &str,
        channel: &str,
        version: &str,
        percentage: Option<f64>,
        fallback: Option<String>,
    ) -> Result<(), RolloutError> {
        check_names(app, channel)?;
        self.signer()?;
        parse_version(version)?;
        let rel = self.startable_release(app, channel, version).await?;
        // The channel's stages (server configuration) replace the manifest's; the rest of
        // its policy stands.
        let mut policy = registry::policy_of(&rel)?;
        policy.stages = self.inner.stages.for_channel(channel, &policy.stages);
        let pct = percentage.unwrap_or(policy.stages[0]);
        check_percentage(pct)?;
        // An admin's explicit 100 % is done at once; a channel whose first stage is 100 %
        // (beta, canary) is served to everyone at once and still watched by the halt rules
        // for its stage, then completes like any last stage.
        let complete = percentage.is_some_and(|p| p >= 100.0);
        let fallback = self.fallback_for(app, channel, version, fallback).await?;
        let now = to_ms(self.now());
        let r = RolloutRow {
            app: app.into(),
            channel: channel.into(),
            version: version.into(),
            percentage: pct,
            status: if complete { "complete" } else { "active" }.into(),
            fallback_version: fallback,
            rolled_back: false,
            policy: serde_json::to_string(&policy)
                .map_err(|e| RolloutError::BadRequest(e.to_string()))?,
            started_ms: now,
            stage_started_ms: now,
            updated_ms: now,
            high_error_alerted: false,
            low_adoption_alerted: false,
        };
        let h = self.health(&r, &policy).await?;
        let d = self.decision(
            &r,
            "start",
            Actor::Admin,
            0.0,
            &h,
            format!("started at {pct} %"),
        );
        self.commit(&r, Some(d)).await?;
        self.clear_pending_start(app, version).await
    }

    /// The registered release `app` `version`, if it may start on `channel`: signed for
    /// that channel, every artifact uploaded, never rolled out there before.
    async fn startable_release(
        &self,
        app: &str,
        channel: &str,
        version: &str,
    ) -> Result<crate::store::rollout::ReleaseRow, RolloutError> {
        let rel = self
            .inner
            .store
            .get_release(app.into(), version.into())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("release {app} {version}")))?;
        if rel.channel != channel {
            return Err(RolloutError::BadRequest(format!(
                "release {app} {version} was signed for channel {}, not {channel}",
                rel.channel
            )));
        }
        let missing = registry::missing_artifacts(self.tree(), &rel).await?;
        if !missing.is_empty() {
            return Err(RolloutError::Conflict(format!(
                "artifacts missing for {app} {version}: {}",
                missing.join(", ")
            )));
        }
        if self
            .inner
            .store
            .get_rollout(app.into(), channel.into(), version.into())
            .await?
            .is_some()
        {
            return Err(RolloutError::Conflict(format!(
                "{app} {version} was already rolled out on {channel}"
            )));
        }
        Ok(rel)
    }

    /// The fallback of a rollout of `version`: the one `named`, else the channel's last
    /// good release when it is lower; a named one must be lower than `version`,
    /// registered, and signed for `channel`.
    async fn fallback_for(
        &self,
        app: &str,
        channel: &str,
        version: &str,
        named: Option<String>,
    ) -> Result<Option<String>, RolloutError> {
        let v = parse_version(version)?;
        let fallback = match named {
            Some(f) => Some(f),
            None => match self.current(app, channel).await {
                Ok(cur) => {
                    // The last release known good: a complete one, else the fallback of
                    // the active, halted or rolled-back one.
                    let served = if cur.status == "complete" && !cur.rolled_back {
                        Some(cur.version.clone())
                    } else {
                        cur.fallback_version.clone()
                    };
                    served.filter(|s| parse_version(s).is_ok_and(|sv| sv < v))
                }
                Err(RolloutError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
        };
        if let Some(f) = &fallback {
            let fv = parse_version(f)?;
            if fv >= v {
                return Err(RolloutError::BadRequest(format!(
                    "fallback {f} must be lower than the release {version}"
                )));
            }
            let frel = self
                .inner
                .store
                .get_release(app.into(), f.clone())
                .await?
                .ok_or_else(|| RolloutError::NotFound(format!("fallback release {app} {f}")))?;
            if frel.channel != channel {
                return Err(RolloutError::BadRequest(format!(
                    "fallback {f} was signed for channel {}, not {channel}",
                    frel.channel
                )));
            }
        }
        Ok(fallback)
    }

    /// A release registered with a deferred start has started: clear the mark.
    async fn clear_pending_start(&self, app: &str, version: &str) -> Result<(), RolloutError> {
        if let Some(rel) = self
            .inner
            .store
            .get_release(app.into(), version.into())
            .await?
            .filter(|r| r.pending_start)
        {
            self.inner
                .store
                .put_release(crate::store::rollout::ReleaseRow {
                    pending_start: false,
                    ..rel
                })
                .await?;
        }
        Ok(())
    }

    /// Halts the channel's current rollout: installs get the fallback.
    pub async fn halt(
        &self,
        app: &str,
        channel: &str,
        reason: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let r = self.current(app, channel).await?;
        // Active or complete (a problem found after the last stage): both can be halted.
        if r.status == "halted" {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} is already halted",
                r.version
            )));
        }
        self.halt_locked(
            r,
            Actor::Admin,
            reason.unwrap_or_else(|| "halted by an admin".into()),
        )
        .await?;
        self.status(app, channel, &self.current(app, channel).await?.version)
            .await
    }

    pub(super) async fn halt_locked(
        &self,
        mut r: RolloutRow,
        actor: Actor,
        reason: String,
    ) -> Result<Decision, RolloutError> {
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        r.status = "halted".into();
        r.updated_ms = to_ms(self.now());
        let d = self.decision(&r, "halt", actor, r.percentage, &h, reason);
        let alert = self.halt_alert(&r, &h, &policy, &d);
        self.commit_with(&r, Some(d.clone()), alert).await?;
        Ok(d)
    }

    /// Resumes a halted rollout; the stage timer restarts.
    pub async fn resume(
        &self,
        app: &str,
        channel: &str,
        reason: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let mut r = self.current(app, channel).await?;
        if r.status != "halted" || r.rolled_back {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} is {}{}, not halted",
                r.version,
                r.status,
                if r.rolled_back {
                    " and rolled back"
                } else {
                    ""
                }
            )));
        }
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let now = to_ms(self.now());
        r.status = "active".into();
        r.stage_started_ms = now;
        r.updated_ms = now;
        r.high_error_alerted = false;
        let d = self.decision(
            &r,
            "resume",
            Actor::Admin,
            r.percentage,
            &h,
            reason.unwrap_or_else(|| "resumed by an admin".into()),
        );
        let resolved = self
            .resolve_alert(&alerting::alert_key(AlertKind::RolloutHalted, &r))
            .await?;
        self.commit_with(&r, Some(d), resolved).await?;
        self.status(app, channel, &r.version).await
    }

    /// Sets the percentage of the channel's current rollout (the stage timer restarts).
    pub async fn set_percentage(
        &self,
        app: &str,
        channel: &str,
        percentage: f64,
    ) -> Result<RolloutStatus, RolloutError> {
        check_percentage(percentage)?;
        let _g = self.inner.lock.lock().await;
        let mut r = self.current(app, channel).await?;
        if r.rolled_back {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} was rolled back",
                r.version
            )));
        }
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let from = r.percentage;
        let now = to_ms(self.now());
        r.percentage = percentage;
        r.stage_started_ms = now;
        r.updated_ms = now;
        r.high_error_alerted = false;
        if r.status == "complete" && percentage < 100.0 {
            r.status = "active".into();
        }
        let d = self.decision(
            &r,
            "set_percentage",
            Actor::Admin,
            from,
            &h,
            format!("set from {from} % to {percentage} % by an admin"),
        );
        self.commit(&r, Some(d)).await?;
        self.status(app, channel, &r.version).await
    }

    /// Rolls the channel back to the fallback: the channel's release becomes the fallback
    /// and the signed state lists the bad version in `rollbackFrom`, so installs running it
    /// move down (the only way a client accepts a lower version).
    pub async fn rollback(
        &self,
        app: &str,
        channel: &str,
        reason: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let mut r = self.current(app, channel).await?;
        if r.rolled_back {
            return Err(RolloutError::Conflict(format!(
                "{} was already rolled back",
                r.version
            )));
        }
        let Some(fallback) = r.fallback_version.clone() else {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} has no fallback release to roll back to",
                r.version
            )));
        };
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let from = r.percentage;
        r.status = "halted".into();
        r.rolled_back = true;
        r.updated_ms = to_ms(self.now());
        let d = self.decision(
            &r,
            "rollback",
            Actor::Admin,
            from,
            &h,
            reason.unwrap_or_else(|| format!("rolled back to {fallback} by an admin")),
        );
        self.commit(&r, Some(d)).await?;
        self.status(app, channel, &r.version).await
    }
}
