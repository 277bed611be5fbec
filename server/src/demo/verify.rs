//! The demo's fourth phase: every install's files against the artifact it runs.
//!
//! Owns the verdict on the installs: each install's current version is read from its
//! [`InstallRoot`], and its folder must hold exactly the files of that version's artifact
//! as the server serves it (read back from the server's tree, not from the build), byte for
//! byte by SHA-256, nothing more and nothing less. It refuses to count an install on any
//! version other than the release or its fallback as verified.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use railgun_core::identity::{bucket, in_percentage, rollout_seed};
use railgun_core::update::InstallRoot;
use railgun_core::Version;
use sha2::{Digest, Sha256};

use super::publish::Live;
use super::report::{Failure, InstallDetail, Verification};
use super::setup::Setup;
use super::simulate::Simulation;
use super::{artifacts, fleet, DemoError, DemoOptions, Progress, APP, CHANNEL};

/// Failed installs kept with their reason (the rest are only counted).
const FAILED_KEPT: usize = 20;

/// What the verification found.
pub(super) struct Verified {
    /// The totals and the first failures.
    pub(super) verification: Verification,
    /// One line per install.
    pub(super) detail: Vec<InstallDetail>,
    /// Installs per version they run (`none` for an empty install).
    pub(super) by_version: BTreeMap<String, u64>,
    /// Late joiners inside the first stage's cohort.
    pub(super) late_in_first_stage: u64,
    /// Of those, the ones on the fallback (the release was halted before they came).
    pub(super) late_in_first_stage_on_fallback: u64,
}

impl Verified {
    /// Hashes every install's files and compares them with the served artifacts.
    pub(super) fn check(
        live: &Live,
        setup: &Setup,
        opts: &DemoOptions,
        sim: &Simulation,
        progress: &dyn Progress,
    ) -> Result<Self, DemoError> {
        let (old_v, new_v) = (&setup.old.version, &setup.new.version);
        progress.phase("verifying installs", opts.installs as u64);
        let mut verification = Verification::default();
        let mut detail = Vec::with_capacity(opts.installs);
        let mut by_version: BTreeMap<String, u64> = BTreeMap::new();
        let tree_releases = live.tree.join(APP).join("releases");
        let mut expected: HashMap<Version, BTreeMap<String, String>> = HashMap::new();
        for r in [&setup.old, &setup.new] {
            // Read back what the server serves, not what was built.
            let served = tree_releases
                .join(r.version.to_string())
                .join(&r.artifact_name);
            expected.insert(r.version.clone(), artifacts::archive_digests(&served)?);
        }
        for i in 0..opts.installs {
            let root = InstallRoot::new(fleet::install_dir(&live.fleet.dir, i).join("root"));
            let v = root.current_version();
            let (ok, reason) = match &v {
                None => (false, Some("nothing installed".to_string())),
                Some(v) => match expected.get(v) {
                    None => (
                        false,
                        Some(format!("runs {v}, neither {new_v} nor {old_v}")),
                    ),
                    Some(files) => match compare_files(&root.version_dir(v), files) {
                        Ok(()) => (true, None),
                        Err(r) => (false, Some(r)),
                    },
                },
            };
            let label = v
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".into());
            *by_version.entry(label.clone()).or_default() += 1;
            verification.installs += 1;
            if ok {
                verification.verified += 1;
                if v.as_ref() == Some(new_v) {
                    verification.on_release += 1;
                } else {
                    verification.on_fallback += 1;
                }
            } else if verification.failed.len() < FAILED_KEPT {
                verification.failed.push(Failure {
                    install: i,
                    round: sim.rounds.len() as u32,
                    error: reason.clone().unwrap_or_default(),
                });
            }
            detail.push(InstallDetail {
                install: i,
                install_id: fleet::install_id(opts.seed, i)[..16].to_string(),
                version: label,
                files_verified: ok,
                reason,
                bytes: sim.install_bytes.get(&i).copied().unwrap_or_default(),
            });
            progress.inc();
        }
        verification.all_verified = verification.verified == verification.installs;
        // Late joiners inside the first stage's cohort: on the release when healthy, on the
        // fallback when the release was halted before they came.
        let cohort_seed = rollout_seed(APP, CHANNEL, &new_v.to_string());
        let late_cohort: Vec<&InstallDetail> = detail[sim.early..]
            .iter()
            .filter(|d| {
                in_percentage(
                    bucket(&cohort_seed, &fleet::install_id(opts.seed, d.install)),
                    setup.policy.stages[0],
                )
            })
            .collect();
        let late_in_first_stage = late_cohort.len() as u64;
        let late_in_first_stage_on_fallback = late_cohort
            .iter()
            .filter(|d| d.version == old_v.to_string())
            .count() as u64;
        progress.done(&format!(
            "{} of {} installs hash-match their artifact",
            verification.verified, verification.installs
        ));
        Ok(Self {
            verification,
            detail,
            by_version,
            late_in_first_stage,
            late_in_first_stage_on_fallback,
        })
    }
}

/// Compares the files under `dir` with `expected` (relative path → SHA-256), both ways.
fn compare_files(dir: &Path, expected: &BTreeMap<String, String>) -> Result<(), String> {
    for (rel, sha) in expected {
        let p = dir.join(rel);
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let got = hex::encode(Sha256::digest(&bytes));
        if &got != sha {
            return Err(format!("{rel}: sha256 {got}, artifact has {sha}"));
        }
    }
    let mut count = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                count += 1;
            }
        }
    }
    if count != expected.len() {
        return Err(format!(
            "{count} files installed, the artifact has {}",
            expected.len()
        ));
    }
    Ok(())
}
