//! Flag evaluation: pure, synchronous, deterministic.
//!
//! Owns the decision "is this flag on for this user, on this app version, platform and
//! channel, and which variant do they get", with an OpenFeature-style [`Reason`]. The order
//! of the checks is:
//!
//! 1. a local override (development) wins: `STATIC`;
//! 2. unknown key: off, `FLAG_NOT_FOUND`;
//! 3. kill switch: off, `KILL_SWITCH`;
//! 4. `enabled: false`: off, `DISABLED`;
//! 5. an unparseable `minVersion`/`maxVersion`, or variants whose weights sum to 0: off, `ERROR`;
//! 6. app version outside `[minVersion, maxVersion]`: off, `VERSION_MISMATCH`
//!    (semver order: `1.2.0-beta.1 < 1.2.0`);
//! 7. platform or channel not listed: off, `DISABLED`;
//! 8. rollout: `bucket("flag:{key}", userId)` outside `rolloutPercentage`: off, `SPLIT`;
//! 9. variants: on, the variant picked by weight with `bucket("variant:{key}", userId)`, `SPLIT`;
//! 10. on: `SPLIT` when the rollout is below 100 %, else `STATIC`.
//!
//! It does no I/O and reads no clock. The rules run on a config compiled once when it
//! arrives ([`super::compiled`]: seeds hashed, versions parsed), so that evaluating for a new
//! user allocates nothing; the client also precomputes every flag for its own user once per
//! config, so that `get` is a lookup.

use std::collections::{BTreeMap, HashMap};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::identity::BUCKETS;

use super::compiled::{CompiledConfig, CompiledFlag};
use super::schema::{parse_version_bound, Flag, Variant};

/// Why a flag evaluated the way it did (OpenFeature's reason names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has the same value for everyone (or a local override set it).
    Static,
    /// The value came from the user's bucket (rollout percentage or variants).
    Split,
    /// The flag is disabled, or not for this platform or channel.
    Disabled,
    /// The emergency kill switch is on.
    KillSwitch,
    /// The app version is outside `[minVersion, maxVersion]`.
    VersionMismatch,
    /// No flag with this key in the config.
    FlagNotFound,
    /// The flag could not be evaluated (a broken version bound or weights).
    Error,
}

impl Reason {
    /// The wire name (`STATIC`, `SPLIT`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::KillSwitch => "KILL_SWITCH",
            Reason::VersionMismatch => "VERSION_MISMATCH",
            Reason::FlagNotFound => "FLAG_NOT_FOUND",
            Reason::Error => "ERROR",
        }
    }
}

/// The result of evaluating one flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationDetails {
    /// Whether the flag is on.
    pub value: bool,
    /// The A/B variant, when the flag has variants and is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Why.
    pub reason: Reason,
    /// What went wrong, with reason `ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl EvaluationDetails {
    fn off(reason: Reason) -> Self {
        Self {
            value: false,
            variant: None,
            reason,
            error_message: None,
        }
    }

    fn on(reason: Reason, variant: Option<String>) -> Self {
        Self {
            value: true,
            variant,
            reason,
            error_message: None,
        }
    }

    /// The details of a key the config does not have.
    pub fn not_found() -> Self {
        Self::off(Reason::FlagNotFound)
    }
}

/// Who is asking: the user and the app they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalContext {
    /// The id users are bucketed by (the install id, usually).
    pub user_id: String,
    /// The running app's version.
    pub app_version: Version,
    /// The running platform (`darwin`, `win32`, `linux`).
    pub platform: String,
    /// The app's update channel (`stable`, `beta`, …).
    pub channel: String,
}

/// A local override of one flag (development).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Override {
    /// Forced on or off.
    Bool(bool),
    /// Forced on, with this variant.
    Variant(String),
}

impl Override {
    fn details(&self) -> EvaluationDetails {
        match self {
            Override::Bool(v) => EvaluationDetails {
                value: *v,
                variant: None,
                reason: Reason::Static,
                error_message: None,
            },
            Override::Variant(name) => EvaluationDetails::on(Reason::Static, Some(name.clone())),
        }
    }
}

/// Parses `RAILGUN_FLAG_OVERRIDES`-style JSON: `{"key": true | false | "variant"}`.
pub fn parse_overrides(json: &str) -> Result<BTreeMap<String, Override>, String> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        format!("field {path}: {}", e.into_inner())
    })
}

/// A parsed `[minVersion, maxVersion]` (each bound optional and inclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionRange {
    min: Option<Version>,
    max: Option<Version>,
}

impl VersionRange {
    /// Parses the bounds leniently (`1.2`, `v1.2.3-beta.1`); an empty bound is no bound, an
    /// unparseable one is an error naming it.
    pub fn parse(min: Option<&str>, max: Option<&str>) -> Result<Self, String> {
        let bound = |name: &str, s: Option<&str>| -> Result<Option<Version>, String> {
            match s.map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => parse_version_bound(s)
                    .map(Some)
                    .ok_or_else(|| format!("{name} {s:?} is not a version")),
            }
        };
        Ok(Self {
            min: bound("minVersion", min)?,
            max: bound("maxVersion", max)?,
        })
    }

    /// Whether `version` lies inside (semver order: `1.2.0-beta.1 < 1.2.0`).
    pub fn contains(&self, version: &Version) -> bool {
        self.min.as_ref().is_none_or(|m| version >= m)
            && self.max.as_ref().is_none_or(|m| version <= m)
    }
}

/// Whether `version` lies inside `[min, max]` (each bound optional and inclusive);
/// an unparseable bound is an error naming it.
pub fn version_in_range(
    version: &Version,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<bool, String> {
    Ok(VersionRange::parse(min, max)?.contains(version))
}

/// Picks a variant by weight for a bucket in `0..10 000`; `None` when the weights sum to 0.
///
/// Variant `i` owns the buckets from `10 000 × (w₀ + … + wᵢ₋₁) / Σw` up to (excluding)
/// `10 000 × (w₀ + … + wᵢ) / Σw`.
pub fn choose_variant(variants: &[Variant], bucket: u16) -> Option<&Variant> {
    let total: f64 = variants.iter().map(|v| v.weight.max(0.0)).sum();
    if !total.is_finite() || total <= 0.0 {
        return None;
    }
    let point = f64::from(bucket) / BUCKETS as f64 * total;
    let mut acc = 0.0;
    let mut last = None;
    for v in variants {
        let w = v.weight.max(0.0);
        if w <= 0.0 {
            continue;
        }
        acc += w;
        last = Some(v);
        if point < acc {
            return Some(v);
        }
    }
    // Rounding at the very top: the last variant with weight.
    last
}

/// Evaluates one flag for `ctx` (no override, no exposure).
///
/// Compiles the flag first: for one-off answers. Evaluating often (many users, every
/// config) goes through [`CompiledConfig`], which compiles once.
pub fn evaluate(flag: &Flag, ctx: &EvalContext, kill_switch: bool) -> EvaluationDetails {
    CompiledFlag::new(flag)
        .evaluate(ctx, kill_switch)
        .to_details()
}

/// Evaluates every flag of `config` (and every override) for `ctx`.
pub fn evaluate_all(
    config: Option<&CompiledConfig>,
    ctx: &EvalContext,
    overrides: &BTreeMap<String, Override>,
) -> HashMap<String, EvaluationDetails> {
    let mut out = HashMap::new();
    if let Some(c) = config {
        for f in c.flags() {
            out.insert(
                f.key().to_string(),
                f.evaluate(ctx, c.kill_switch()).to_details(),
            );
        }
    }
    for (k, o) in overrides {
        out.insert(k.clone(), o.details());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(v: &str) -> EvalContext {
        EvalContext {
            user_id: "user-1".into(),
            app_version: v.parse().expect("v"),
            platform: "linux".into(),
            channel: "stable".into(),
        }
    }

    fn flag(json: &str) -> Flag {
        serde_json::from_str(json).expect("flag")
    }

    #[test]
    fn prerelease_is_below_its_release() {
        let v: Version = "1.2.0-beta.1".parse().expect("v");
        assert_eq!(version_in_range(&v, Some("1.2.0"), None), Ok(false));
        assert_eq!(version_in_range(&v, Some("1.2.0-beta.1"), None), Ok(true));
        assert_eq!(version_in_range(&v, Some("1.2.0-alpha"), None), Ok(true));
        assert_eq!(version_in_range(&v, None, Some("1.1.9")), Ok(false));
        assert!(version_in_range(&v, Some("soon"), None).is_err());
    }

    #[test]
    fn variant_boundaries_follow_weights() {
        let vs = vec![
            Variant {
                name: "a".into(),
                weight: 1.0,
            },
            Variant {
                name: "zero".into(),
                weight: 0.0,
            },
            Variant {
                name: "b".into(),
                weight: 3.0,
            },
        ];
        assert_eq!(choose_variant(&vs, 0).map(|v| v.name.as_str()), Some("a"));
        assert_eq!(
            choose_variant(&vs, 2499).map(|v| v.name.as_str()),
            Some("a")
        );
        assert_eq!(
            choose_variant(&vs, 2500).map(|v| v.name.as_str()),
            Some("b")
        );
        assert_eq!(
            choose_variant(&vs, 9999).map(|v| v.name.as_str()),
            Some("b")
        );
        assert!(choose_variant(&vs[1..2], 5).is_none());
    }

    #[test]
    fn platform_and_channel_filters() {
        let f = flag(r#"{"key":"k","enabled":true,"platforms":["darwin"]}"#);
        assert_eq!(evaluate(&f, &ctx("1.0.0"), false).reason, Reason::Disabled);
        let f = flag(r#"{"key":"k","enabled":true,"platforms":["Linux"],"channels":["beta"]}"#);
        assert_eq!(evaluate(&f, &ctx("1.0.0"), false).reason, Reason::Disabled);
        let f = flag(r#"{"key":"k","enabled":true,"platforms":["linux"],"channels":["stable"]}"#);
        assert_eq!(evaluate(&f, &ctx("1.0.0"), false).reason, Reason::Static);
    }

    #[test]
    fn overrides_parse_and_win() {
        let o = parse_overrides(r#"{"a": true, "b": false, "c": "blue"}"#).expect("o");
        let table = evaluate_all(None, &ctx("1.0.0"), &o);
        assert!(table["a"].value);
        assert!(!table["b"].value);
        assert_eq!(table["c"].variant.as_deref(), Some("blue"));
        let e = parse_overrides(r#"{"a": 1}"#).expect_err("number");
        assert!(e.contains('a'), "{e}");
    }
}
