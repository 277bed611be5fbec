//! The remote config compiled when it arrives, so that evaluating a flag for a user costs
//! the rest of one hash and a few comparisons.
//!
//! Owns everything about a flag that does not depend on who asks, computed once per accepted
//! document: the bucketing seeds `flag:{key}` and `variant:{key}` hashed into SHA-256
//! midstates ([`BucketSeed`]), the version bounds parsed, the rollout threshold, the variant
//! weights checked, the message of a broken flag formatted, and an index by key.
//! [`CompiledConfig::evaluate`] then answers for any user without allocating, formatting or
//! parsing, with exactly the answers of [`super::eval`]'s rules (the shared vectors pin them).
//!
//! It refuses nothing the document parser accepted: a flag with an unparseable version bound
//! or weights summing to 0 compiles to a flag that evaluates to `ERROR`, as the rules say.

use std::collections::HashMap;

use crate::identity::{in_percentage, BucketSeed};

use super::eval::{choose_variant, EvalContext, EvaluationDetails, Reason, VersionRange};
use super::schema::{Flag, RemoteConfig, Variant};

/// A hash map keyed by flag key with a fast keyed hasher (flag keys are short strings).
type KeyMap<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// One flag's answer for one user, borrowing its strings from the compiled config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation<'a> {
    /// Whether the flag is on.
    pub value: bool,
    /// The A/B variant, when the flag has variants and is on.
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason,
    /// What went wrong, with reason `ERROR`.
    pub error_message: Option<&'a str>,
}

impl<'a> Evaluation<'a> {
    const fn off(reason: Reason) -> Self {
        Self {
            value: false,
            variant: None,
            reason,
            error_message: None,
        }
    }

    const fn on(reason: Reason, variant: Option<&'a str>) -> Self {
        Self {
            value: true,
            variant,
            reason,
            error_message: None,
        }
    }

    const fn error(message: &'a str) -> Self {
        Self {
            value: false,
            variant: None,
            reason: Reason::Error,
            error_message: Some(message),
        }
    }

    /// The owned form (allocates the variant and message, if any).
    pub fn to_details(&self) -> EvaluationDetails {
        EvaluationDetails {
            value: self.value,
            variant: self.variant.map(str::to_string),
            reason: self.reason,
            error_message: self.error_message.map(str::to_string),
        }
    }
}

/// A flag's variants, checked once: `Err` holds the message when the weights sum to 0.
#[derive(Debug)]
struct Variants {
    list: Result<Vec<Variant>, String>,
    seed: BucketSeed,
}

/// One flag with everything that does not depend on the user computed.
#[derive(Debug)]
pub struct CompiledFlag {
    key: Box<str>,
    enabled: bool,
    /// The parsed `[minVersion, maxVersion]`, or the message naming the broken bound.
    versions: Result<VersionRange, String>,
    platforms: Option<Vec<String>>,
    channels: Option<Vec<String>>,
    /// `Some` when the rollout is below 100 %: the seed of `flag:{key}` and the percentage.
    rollout: Option<(BucketSeed, f64)>,
    variants: Option<Variants>,
}

impl CompiledFlag {
    /// Compiles one flag.
    pub fn new(flag: &Flag) -> Self {
        let key = flag.key.as_str();
        let rollout = (flag.rollout_percentage < 100.0).then(|| {
            (
                BucketSeed::new(&format!("flag:{key}")),
                flag.rollout_percentage,
            )
        });
        let variants = (!flag.variants.is_empty()).then(|| Variants {
            list: match choose_variant(&flag.variants, 0) {
                Some(_) => Ok(flag.variants.clone()),
                None => Err(format!("flag {key:?}: variant weights sum to 0")),
            },
            seed: BucketSeed::new(&format!("variant:{key}")),
        });
        Self {
            key: key.into(),
            enabled: flag.enabled,
            versions: VersionRange::parse(flag.min_version.as_deref(), flag.max_version.as_deref())
                .map_err(|e| format!("flag {key:?}: {e}")),
            platforms: flag.platforms.clone(),
            channels: flag.channels.clone(),
            rollout,
            variants,
        }
    }

    /// The flag's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Evaluates the flag for `ctx`, in the order [`super::eval`] documents (no override, no
    /// exposure). Allocates nothing.
    pub fn evaluate(&self, ctx: &EvalContext, kill_switch: bool) -> Evaluation<'_> {
        if kill_switch {
            return Evaluation::off(Reason::KillSwitch);
        }
        if !self.enabled {
            return Evaluation::off(Reason::Disabled);
        }
        match &self.versions {
            Err(message) => return Evaluation::error(message),
            Ok(range) if !range.contains(&ctx.app_version) => {
                return Evaluation::off(Reason::VersionMismatch)
            }
            Ok(_) => {}
        }
        if !listed(self.platforms.as_deref(), &ctx.platform)
            || !listed(self.channels.as_deref(), &ctx.channel)
        {
            return Evaluation::off(Reason::Disabled);
        }
        if let Some((seed, percentage)) = &self.rollout {
            if !in_percentage(seed.bucket(&ctx.user_id), *percentage) {
                return Evaluation::off(Reason::Split);
            }
        }
        if let Some(v) = &self.variants {
            return match &v.list {
                Err(message) => Evaluation::error(message),
                Ok(list) => match choose_variant(list, v.seed.bucket(&ctx.user_id)) {
                    Some(chosen) => Evaluation::on(Reason::Split, Some(&chosen.name)),
                    // Checked when compiled: the weights do not sum to 0.
                    None => Evaluation::off(Reason::Error),
                },
            };
        }
        Evaluation::on(
            if self.rollout.is_some() {
                Reason::Split
            } else {
                Reason::Static
            },
            None,
        )
    }
}

/// Whether `value` is in the filter (case-insensitively); no filter lets everyone in.
fn listed(filter: Option<&[String]>, value: &str) -> bool {
    filter.is_none_or(|list| list.iter().any(|x| x.eq_ignore_ascii_case(value)))
}

/// A whole config document compiled: every flag, the kill switch and an index by key.
///
/// ```
/// use railgun_core::flags::{CompiledConfig, EvalContext, Reason, RemoteConfig};
/// let doc = br#"{"flags":{"voice_messages":{"enabled":true,"rolloutPercentage":50,"minVersion":"0.2.0"}}}"#;
/// let config = CompiledConfig::new(&RemoteConfig::parse(doc)?);
/// let ctx = EvalContext {
///     user_id: "user-1".into(),
///     app_version: "0.1.0".parse()?,
///     platform: "linux".into(),
///     channel: "stable".into(),
/// };
/// assert_eq!(config.evaluate("voice_messages", &ctx).reason, Reason::VersionMismatch);
/// assert_eq!(config.evaluate("nope", &ctx).reason, Reason::FlagNotFound);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CompiledConfig {
    kill_switch: bool,
    flags: Vec<CompiledFlag>,
    index: KeyMap<usize>,
}

impl CompiledConfig {
    /// Compiles every flag of `config`.
    pub fn new(config: &RemoteConfig) -> Self {
        let flags: Vec<CompiledFlag> = config.flags.iter().map(CompiledFlag::new).collect();
        let mut index = KeyMap::with_capacity_and_hasher(flags.len(), Default::default());
        for (i, f) in flags.iter().enumerate() {
            // The schema refuses duplicate keys; were one to slip through, the first wins.
            index.entry(f.key.clone()).or_insert(i);
        }
        Self {
            kill_switch: config.emergency_kill_switch,
            flags,
            index,
        }
    }

    /// Whether the emergency kill switch is on.
    pub fn kill_switch(&self) -> bool {
        self.kill_switch
    }

    /// The flag with this key.
    pub fn flag(&self, key: &str) -> Option<&CompiledFlag> {
        self.index.get(key).map(|&i| &self.flags[i])
    }

    /// Every flag, in document order.
    pub fn flags(&self) -> &[CompiledFlag] {
        &self.flags
    }

    /// Evaluates flag `key` for `ctx` (`FLAG_NOT_FOUND` for an unknown key). Allocates nothing.
    pub fn evaluate(&self, key: &str, ctx: &EvalContext) -> Evaluation<'_> {
        match self.flag(key) {
            Some(f) => f.evaluate(ctx, self.kill_switch),
            None => Evaluation::off(Reason::FlagNotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(user: &str) -> EvalContext {
        EvalContext {
            user_id: user.into(),
            app_version: "1.4.0".parse().expect("v"),
            platform: "linux".into(),
            channel: "stable".into(),
        }
    }

    #[test]
    fn broken_flags_compile_to_their_error() {
        let c = CompiledConfig::new(
            &RemoteConfig::parse(
                br#"{"flags":[
                  {"key":"bad-min","enabled":true,"minVersion":"soon"},
                  {"key":"zero","enabled":true,"variants":[{"name":"a","weight":0}]}]}"#,
            )
            .expect("parse"),
        );
        let e = c.evaluate("bad-min", &ctx("u"));
        assert_eq!(e.reason, Reason::Error);
        assert_eq!(
            e.error_message,
            Some(r#"flag "bad-min": minVersion "soon" is not a version"#)
        );
        let e = c.evaluate("zero", &ctx("u"));
        assert_eq!(
            e.error_message,
            Some(r#"flag "zero": variant weights sum to 0"#)
        );
    }

    #[test]
    fn kill_switch_wins_over_every_flag() {
        let c = CompiledConfig::new(
            &RemoteConfig::parse(
                br#"{"emergencyKillSwitch":true,"flags":[{"key":"a","enabled":true}]}"#,
            )
            .expect("parse"),
        );
        assert!(c.kill_switch());
        assert_eq!(c.evaluate("a", &ctx("u")).reason, Reason::KillSwitch);
    }
}
