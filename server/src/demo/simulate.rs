//! The demo's third phase: rounds of launches while the simulated days pass.
//!
//! Owns the rounds: every joined install launches once per round (tokio tasks, at most
//! `concurrency` at once); then the clock moves a day (12 h for the bad release) and the
//! server's engine evaluates. 90 % of the installs exist from the start, the rest join in the
//! second round (fresh installs that get whatever the channel serves then). The rounds end
//! when the rollout completes with every install on the release, or one round after a halt
//! or any other terminal status, or after the policy's stages plus three. It refuses to
//! decide anything about the rollout itself: it only counts what the installs did.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use railgun_core::clock::{Clock, ManualClock};
use railgun_core::Version;
use tokio::sync::Semaphore;

use super::control::Tally;
use super::fleet::{Fleet, LaunchOutcome};
use super::publish::Live;
use super::report::{DownloadTotals, Downloads, Failure, RoundSummary};
use super::setup::Setup;
use super::{DemoError, DemoOptions, Progress};

/// Failures kept with their text (the rest are only counted).
const FAILURES_KEPT: usize = 20;

/// Whether an install ever saw an error or a crash on a version.
#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    errors: bool,
    crashes: bool,
}

/// Per version and install: what it saw there.
#[derive(Debug, Default)]
pub(super) struct Seen(HashMap<Version, HashMap<usize, Marks>>);

impl Seen {
    fn mark(&mut self, version: &Version, install: usize, errors: bool, crashes: bool) {
        let m = self
            .0
            .entry(version.clone())
            .or_default()
            .entry(install)
            .or_default();
        m.errors |= errors;
        m.crashes |= crashes;
    }

    /// The versions seen, each with its distinct installs counted.
    pub(super) fn tallies(&self) -> impl Iterator<Item = (&Version, Tally)> {
        self.0.iter().map(|(v, m)| {
            (
                v,
                Tally {
                    installs: m.len() as u64,
                    with_errors: m.values().filter(|m| m.errors).count() as u64,
                    with_crashes: m.values().filter(|m| m.crashes).count() as u64,
                },
            )
        })
    }
}

/// What the rounds produced.
#[derive(Debug, Default)]
pub(super) struct Simulation {
    /// Installs present from the first round (the rest joined in the second).
    pub(super) early: usize,
    /// Errors and crashes per version and install.
    pub(super) seen: Seen,
    /// One summary per round.
    pub(super) rounds: Vec<RoundSummary>,
    /// The first failed launches, with their error.
    pub(super) failures: Vec<Failure>,
    /// Every failed launch.
    pub(super) failure_count: u64,
    /// Installs that the analytics sampling kept.
    pub(super) sampled: BTreeSet<usize>,
    /// Analytics events the installs sent.
    pub(super) events_sent: u64,
    /// The simulated days on which installs launched.
    pub(super) days: BTreeSet<NaiveDate>,
    /// Time spent in each launch step, summed over the launches.
    pub(super) step_time: [std::time::Duration; 6],
    /// Launches run.
    pub(super) launches: u32,
    /// What the fleet's updates downloaded, against what full downloads would have cost.
    pub(super) downloads: Downloads,
    /// The same per install.
    pub(super) install_bytes: HashMap<usize, DownloadTotals>,
}

impl Simulation {
    /// Runs the rounds against the live server.
    pub(super) async fn run(
        live: &Live,
        setup: &Setup,
        opts: &DemoOptions,
        clock: &ManualClock,
        progress: &Arc<dyn Progress>,
    ) -> Result<Self, DemoError> {
        let (old_v, new_v) = (&setup.old.version, &setup.new.version);
        let step = if opts.bad_release {
            Duration::hours(12)
        } else {
            Duration::hours(24)
        };
        let mut sim = Simulation {
            early: (opts.installs * 9 / 10).max(1),
            ..Simulation::default()
        };
        let max_rounds = setup.policy.stages.len() as u32 + 3;
        let mut last = false;
        for round in 0..max_rounds {
            let joined = if round == 0 { sim.early } else { opts.installs };
            let view = live.control.view().await?;
            progress.phase(
                &format!(
                    "round {} · {} % {} · {} launches",
                    round, view.percentage, view.status, joined
                ),
                joined as u64,
            );
            sim.days.insert(clock.now().date_naive());
            let outcomes = launch_all(
                &live.fleet,
                joined,
                round,
                opts.concurrency,
                progress.clone(),
            )
            .await?;
            let mut summary = RoundSummary {
                round,
                at: clock.now(),
                percentage: view.percentage,
                status: view.status.clone(),
                launches: joined as u64,
                ..RoundSummary::default()
            };
            sim.record(round, &outcomes, &mut summary);
            progress.done(&format!(
                "round {round}: {} → {}, {} → {}, {} failed",
                summary.updated_to_release,
                new_v,
                summary.updated_to_fallback,
                old_v,
                summary.failures
            ));
            if last {
                sim.rounds.push(summary);
                break;
            }
            clock.advance(step);
            live.control.evaluate().await?;
            let after = live.control.view().await?;
            summary.percentage_after = Some(after.percentage);
            summary.status_after = Some(after.status.clone());
            sim.rounds.push(summary);
            // One more round after a halt (installs see it, late joiners get the fallback);
            // after completion only if an install is not on the release yet.
            let lagging = outcomes.iter().any(|o| o.version.as_ref() != Some(new_v));
            match after.status.as_str() {
                "active" => {}
                "complete" if !lagging && joined == opts.installs => break,
                _ => last = true,
            }
        }
        Ok(sim)
    }

    /// Counts one round's launches into `summary` and the totals.
    fn record(&mut self, round: u32, outcomes: &[LaunchOutcome], summary: &mut RoundSummary) {
        for o in outcomes {
            match o.update {
                "rollout" => summary.updated_to_release += 1,
                "fallback" => summary.updated_to_fallback += 1,
                "rollback" => summary.rolled_back += 1,
                _ => {}
            }
            if let Some(f) = &o.failure {
                self.failure_count += 1;
                summary.failures += 1;
                if self.failures.len() < FAILURES_KEPT {
                    self.failures.push(Failure {
                        install: o.index,
                        round,
                        error: f.clone(),
                    });
                }
            }
            if let Some(v) = &o.version {
                *summary.running.entry(v.to_string()).or_default() += 1;
                self.seen.mark(v, o.index, o.errors > 0, o.crashes > 0);
                summary.health_reports += u64::from(o.health_sent);
            }
            if let Some(d) = &o.download {
                self.downloads.add(d);
                self.install_bytes.entry(o.index).or_default().add(d);
            }
            if o.sampled {
                self.sampled.insert(o.index);
            }
            self.events_sent += o.events_sent;
            self.launches += 1;
            for (sum, t) in self.step_time.iter_mut().zip(o.timings) {
                *sum += t;
            }
        }
    }
}

/// Launches installs `0..joined` once each, at most `concurrency` at a time, in index order.
async fn launch_all(
    fleet: &Arc<Fleet>,
    joined: usize,
    round: u32,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<Vec<LaunchOutcome>, DemoError> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..joined {
        let fleet = fleet.clone();
        let sem = sem.clone();
        let progress = progress.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let o = fleet.launch(i, round).await;
            progress.inc();
            o
        });
    }
    let mut out = Vec::with_capacity(joined);
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| DemoError::Task(e.to_string()))?);
    }
    out.sort_by_key(|o| o.index);
    Ok(out)
}
