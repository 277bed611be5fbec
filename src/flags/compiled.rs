//! The remote config compiled when it arrives, so that evaluating a flag for a user costs
//! the rest of one hash and a few comparisons.
//!
//! Owns everything about a flag that does not depend on who asks, computed once per accepted
//! document: the bucketing seeds `flag:{key}` and `variant:{key}` hashed into SHA-256
//! midstates ([`Seed`]: a user then costs one call of the compression function on one or two
//! stack blocks, padding included), the version bounds parsed, the rollout threshold, the
//! variant weights checked, the message of a broken flag formatted, and an index by key.
//! [`CompiledConfig::evaluate`] then answers for any user without allocating, formatting or
//! parsing, with exactly the answers of [`super::eval`]'s rules (the shared vectors pin them).
//!
//! It refuses nothing the document parser accepted: a flag with an unparseable version bound
//! or weights summing to 0 compiles to a flag that evaluates to `ERROR`, as the rules say.

use std::collections::HashMap;

use sha2::block_api::compress256;

use crate::identity::{threshold, BucketSeed, BUCKETS};

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

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A bucketing seed absorbed up to its last partial block, with [`BucketSeed`]'s answers.
///
/// The bucket of `id` is `SHA-256(seed ‖ 0x00 ‖ id)`'s first 8 bytes modulo 10 000; this
/// keeps the state after the complete blocks of `seed ‖ 0x00` and the bytes left over, so
/// that an id that fits with them and the padding in two blocks (any id up to 119 bytes minus
/// the leftover) costs one copy into a stack buffer and one call of the compression function.
/// Longer ids go through [`BucketSeed`].
#[derive(Clone)]
struct Seed {
    state: [u32; 8],
    tail: [u8; 64],
    tail_len: usize,
    /// The length of `seed ‖ 0x00`, in bytes.
    len: u64,
    long: BucketSeed,
}

impl Seed {
    fn new(seed: &str) -> Self {
        let mut prefix = Vec::with_capacity(seed.len() + 1);
        prefix.extend_from_slice(seed.as_bytes());
        prefix.push(0);
        let (blocks, rest) = prefix.as_chunks::<64>();
        let mut state = SHA256_IV;
        compress256(&mut state, blocks);
        let mut tail = [0u8; 64];
        tail[..rest.len()].copy_from_slice(rest);
        Self {
            state,
            tail,
            tail_len: rest.len(),
            len: prefix.len() as u64,
            long: BucketSeed::new(seed),
        }
    }

    fn bucket(&self, user: &str) -> u16 {
        let id = user.as_bytes();
        let end = self.tail_len + id.len();
        // The message, then 0x80, then the bit length in the last 8 bytes of a block.
        let blocks = if end + 9 <= 64 {
            1
        } else if end + 9 <= 128 {
            2
        } else {
            return self.long.bucket(user);
        };
        let mut buf = [[0u8; 64]; 2];
        let flat = buf.as_flattened_mut();
        flat[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        flat[self.tail_len..end].copy_from_slice(id);
        flat[end] = 0x80;
        let bits = (self.len + id.len() as u64) * 8;
        flat[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
        let mut state = self.state;
        compress256(&mut state, &buf[..blocks]);
        let first = (u64::from(state[0]) << 32) | u64::from(state[1]);
        // The modulo keeps the value below 10 000, which always fits a u16.
        (first % BUCKETS) as u16
    }
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// A flag's variants, checked once: `Err` holds the message when the weights sum to 0.
#[derive(Debug)]
struct Variants {
    list: Result<Vec<Variant>, String>,
    seed: Seed,
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
    /// `Some` when the rollout is below 100 %: the seed of `flag:{key}` and the bucket
    /// threshold of the percentage.
    rollout: Option<(Seed, u16)>,
    variants: Option<Variants>,
}

impl CompiledFlag {
    /// Compiles one flag.
    pub fn new(flag: &Flag) -> Self {
        let key = flag.key.as_str();
        let rollout = (flag.rollout_percentage < 100.0).then(|| {
            (
                Seed::new(&format!("flag:{key}")),
                threshold(flag.rollout_percentage),
            )
        });
        let variants = (!flag.variants.is_empty()).then(|| Variants {
            list: match choose_variant(&flag.variants, 0) {
                Some(_) => Ok(flag.variants.clone()),
                None => Err(format!("flag {key:?}: variant weights sum to 0")),
            },
            seed: Seed::new(&format!("variant:{key}")),
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
        if let Some((seed, threshold)) = &self.rollout {
            // `identity::in_percentage`, with the threshold computed once.
            if seed.bucket(&ctx.user_id) >= *threshold {
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

/// Up to this many flags, looking a key up compares it with each flag's key: fewer
/// instructions than hashing it once.
const SCAN_UP_TO: usize = 8;

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
        if self.flags.len() <= SCAN_UP_TO {
            // The first with the key, as in the index.
            return self.flags.iter().find(|f| *f.key == *key);
        }
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
    fn seed_buckets_as_identity_bucket_for_every_seed_and_id_length() {
        // Every leftover length of `seed ‖ 0x00` (0..64, and past one block), every id
        // length across the one-block, two-block and long paths.
        for seed_len in 0..150 {
            let seed: String = (0..seed_len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let fast = Seed::new(&seed);
            for id_len in 0..200 {
                let id: String = (0..id_len)
                    .map(|i| char::from(b'0' + (i % 10) as u8))
                    .collect();
                assert_eq!(
                    fast.bucket(&id),
                    crate::identity::bucket(&seed, &id),
                    "seed of {seed_len} bytes, id of {id_len}"
                );
            }
        }
        let multibyte = Seed::new("flag:ünïcödé");
        assert_eq!(
            multibyte.bucket("用户-1"),
            crate::identity::bucket("flag:ünïcödé", "用户-1")
        );
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
    fn keys_are_found_by_scan_and_by_index() {
        for n in [1, SCAN_UP_TO, SCAN_UP_TO + 1, 40] {
            let flags: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"key":"f{i}","enabled":true}}"#))
                .collect();
            let doc = format!(r#"{{"flags":[{}]}}"#, flags.join(","));
            let c = CompiledConfig::new(&RemoteConfig::parse(doc.as_bytes()).expect("parse"));
            for i in 0..n {
                assert_eq!(
                    c.evaluate(&format!("f{i}"), &ctx("u")).reason,
                    Reason::Static
                );
            }
            assert_eq!(c.evaluate("f", &ctx("u")).reason, Reason::FlagNotFound);
        }
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
