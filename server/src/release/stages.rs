//! The rollout stages of each channel: server configuration, the same for the rollout engine
//! (`railgun serve --channel-stages`) and for a static tree (`railgun release publish`).
//!
//! Owns [`ChannelStages`]. By default `beta` and `canary` get 100 % at once (the
//! specification's "100 % immediate") and every other channel, `stable` included, follows the
//! stages of its release manifest (`rollout.stages`, 10 → 25 → 50 → 100 when absent). A
//! configured channel uses the configured stages whatever its manifests say; the rest of a
//! manifest's policy (limits, stage hours, minimum installs) still applies.
//!
//! It refuses stages that are empty, more than 20, not strictly increasing within (0, 100] or
//! not ending at 100 (the rules of a manifest's `rollout.stages`), and channel names that are
//! not channel names.

use std::collections::BTreeMap;
use std::str::FromStr;

use railgun_core::update::{check_stages, is_valid_channel};

/// The stages of each configured channel (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStages(BTreeMap<String, Vec<f64>>);

impl Default for ChannelStages {
    /// `beta=100`, `canary=100`.
    fn default() -> Self {
        Self(BTreeMap::from([
            ("beta".to_string(), vec![100.0]),
            ("canary".to_string(), vec![100.0]),
        ]))
    }
}

/// Why a `--channel-stages` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel stages {value:?}: {reason} (write CHANNEL=P1,P2,…,100, e.g. stable=10,25,50,100)")]
pub struct StagesError {
    /// The value as given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// One `CHANNEL=P1,P2,…` setting.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStagesArg {
    /// The channel.
    pub channel: String,
    /// Its stages.
    pub stages: Vec<f64>,
}

impl FromStr for ChannelStagesArg {
    type Err = StagesError;

    fn from_str(s: &str) -> Result<Self, StagesError> {
        let err = |reason: &str| StagesError {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (channel, list) = s.split_once('=').ok_or_else(|| err("no '='"))?;
        let channel = channel.trim();
        if !is_valid_channel(channel) {
            return Err(err(
                "not a channel name (stable, beta, canary or 1-32 of [a-z0-9-])",
            ));
        }
        let stages = list
            .split(',')
            .map(|p| p.trim().trim_end_matches('%').trim().parse::<f64>())
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|_| err("a stage is not a number"))?;
        check_stages(&stages).map_err(err)?;
        Ok(Self {
            channel: channel.to_string(),
            stages,
        })
    }
}

impl ChannelStages {
    /// The defaults with `args` applied in order (a later setting of a channel wins).
    pub fn with(args: impl IntoIterator<Item = ChannelStagesArg>) -> Self {
        let mut s = Self::default();
        for a in args {
            s.0.insert(a.channel, a.stages);
        }
        s
    }

    /// The stages a release on `channel` rolls out by: the configured ones, else
    /// `manifest_stages` (its manifest's `rollout.stages`).
    pub fn for_channel(&self, channel: &str, manifest_stages: &[f64]) -> Vec<f64> {
        self.0
            .get(channel)
            .cloned()
            .unwrap_or_else(|| manifest_stages.to_vec())
    }

    /// Every configured channel and its stages.
    pub fn configured(&self) -> impl Iterator<Item = (&str, &[f64])> {
        self.0.iter().map(|(c, s)| (c.as_str(), s.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: [f64; 4] = [10.0, 25.0, 50.0, 100.0];

    #[test]
    fn beta_and_canary_are_immediate_and_stable_follows_its_manifest() {
        let s = ChannelStages::default();
        assert_eq!(s.for_channel("beta", &MANIFEST), [100.0]);
        assert_eq!(s.for_channel("canary", &MANIFEST), [100.0]);
        assert_eq!(s.for_channel("stable", &MANIFEST), MANIFEST);
        assert_eq!(s.for_channel("nightly", &[50.0, 100.0]), [50.0, 100.0]);
    }

    #[test]
    fn settings_override_one_channel_each() {
        let s = ChannelStages::with([
            "canary=50,100".parse().expect("canary"),
            "stable=5, 20%, 100".parse().expect("stable"),
        ]);
        assert_eq!(s.for_channel("canary", &MANIFEST), [50.0, 100.0]);
        assert_eq!(s.for_channel("stable", &MANIFEST), [5.0, 20.0, 100.0]);
        assert_eq!(s.for_channel("beta", &MANIFEST), [100.0]);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        for (bad, why) in [
            ("stable", "no '='"),
            ("Stable!=100", "not a channel name"),
            ("stable=ten,100", "not a number"),
            ("stable=", "not a number"),
            ("stable=50,25,100", "increase strictly"),
            ("stable=10,50", "last stage must be 100"),
            ("stable=0,100", "increase strictly"),
            ("stable=10,100,150", "increase strictly"),
        ] {
            let e = bad.parse::<ChannelStagesArg>().expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
