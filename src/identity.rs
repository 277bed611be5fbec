//! Install identity and the one bucketing function.
//!
//! This module owns two things every other part relies on:
//!
//! * the **install id**: `hex(HMAC-SHA256(key = "railgun-install-id:" + app, msg = machine-uid))`,
//!   or, when the machine id cannot be read, a random 128-bit id kept in the client store.
//!   The raw machine id never leaves this module.
//! * [`bucket`]: `u64::from_be_bytes(SHA-256(seed ‖ 0x00 ‖ id)[0..8]) % 10_000`, the only way
//!   anything in railgun places a user into a percentage (rollouts, flags, variants, sampling).
//!
//! It refuses to invent any other bucketing scheme: `tests/vectors/bucket.json` pins the
//! function for every language binding.

use ring::hmac;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Number of buckets: a bucket is a value in `0..BUCKETS`, i.e. basis points.
pub const BUCKETS: u64 = 10_000;

/// Store key under which the random fallback install id is kept.
const FALLBACK_KEY_PREFIX: &str = "install_id_fallback:";

/// Places `id` into one of 10 000 buckets for `seed`.
///
/// ```
/// use railgun_core::identity::bucket;
/// let b = bucket("flag:new-composer", "user-1");
/// assert!(b < 10_000);
/// assert_eq!(b, bucket("flag:new-composer", "user-1"));
/// ```
pub fn bucket(seed: &str, id: &str) -> u16 {
    BucketSeed::new(seed).bucket(id)
}

/// [`bucket`] with the seed already hashed: the SHA-256 state after `seed ‖ 0x00`, cloned for
/// each id, so that bucketing many ids under one seed (a flag for every user) hashes the
/// seed once and allocates nothing.
///
/// ```
/// use railgun_core::identity::{bucket, BucketSeed};
/// let seed = BucketSeed::new("flag:voice_messages");
/// assert_eq!(seed.bucket("user-1"), bucket("flag:voice_messages", "user-1"));
/// ```
#[derive(Clone)]
pub struct BucketSeed(Sha256);

impl BucketSeed {
    /// Absorbs `seed ‖ 0x00`.
    pub fn new(seed: &str) -> Self {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update([0u8]);
        Self(h)
    }

    /// The bucket of `id`: `u64::from_be_bytes(SHA-256(seed ‖ 0x00 ‖ id)[0..8]) % 10 000`.
    pub fn bucket(&self, id: &str) -> u16 {
        let mut h = self.0.clone();
        h.update(id.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // The modulo keeps the value below 10 000, which always fits a u16.
        (u64::from_be_bytes(first) % BUCKETS) as u16
    }
}

impl std::fmt::Debug for BucketSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BucketSeed(..)")
    }
}

/// The bucket threshold for a percentage: `round(p × 100)`, clamped to `0..=10 000`.
/// Non-finite or negative percentages count as 0.
pub fn threshold(percentage: f64) -> u16 {
    if !percentage.is_finite() || percentage <= 0.0 {
        return 0;
    }
    let t = (percentage * 100.0).round();
    if t >= BUCKETS as f64 {
        BUCKETS as u16
    } else {
        t as u16
    }
}

/// Whether a bucket lies inside `percentage` (0–100, fractions allowed).
/// Raising the percentage never drops anyone who was inside.
pub fn in_percentage(bucket: u16, percentage: f64) -> bool {
    bucket < threshold(percentage)
}

/// The rollout seed of a release: `"{app}:{channel}:{version}"` (a new cohort each release).
pub fn rollout_seed(app: &str, channel: &str, version: &str) -> String {
    format!("{app}:{channel}:{version}")
}

/// Derives the install id from a machine id: `hex(HMAC-SHA256("railgun-install-id:" + app, machine_uid))`.
pub fn install_id_from_machine(app: &str, machine_uid: &str) -> String {
    let key = hmac::Key::new(
        hmac::HMAC_SHA256,
        format!("railgun-install-id:{app}").as_bytes(),
    );
    hex::encode(hmac::sign(&key, machine_uid.as_bytes()).as_ref())
}

/// Resolves this install's id for `app`: from the machine id when it can be read, else the
/// random fallback kept in `store` (created on first use, stable afterwards).
pub fn install_id(app: &str, store: &Store) -> Result<String, StoreError> {
    match machine_uid::get() {
        Ok(uid) if !uid.trim().is_empty() => Ok(install_id_from_machine(app, uid.trim())),
        _ => fallback_install_id(app, store),
    }
}

/// The random 128-bit install id kept in the store for `app`, created on first use.
pub fn fallback_install_id(app: &str, store: &Store) -> Result<String, StoreError> {
    let key = format!("{FALLBACK_KEY_PREFIX}{app}");
    let fresh = random_hex_128();
    store.get_or_insert_kv(&key, &fresh)
}

/// 128 random bits from the operating system, hex encoded.
pub fn random_hex_128() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    // SystemRandom only fails when the OS has no entropy source at all; fall back to a
    // time-and-address derived value rather than panicking in that broken environment.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let d = Sha256::digest(format!("{nanos}:{:p}", &bytes).as_bytes());
        bytes.copy_from_slice(&d[..16]);
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_in_range_and_stable() {
        for i in 0..1000 {
            let b = bucket("seed", &format!("id-{i}"));
            assert!(b < 10_000);
            assert_eq!(b, bucket("seed", &format!("id-{i}")));
        }
    }

    #[test]
    fn seed_and_id_are_separated() {
        // "ab" ‖ 0 ‖ "c" must differ from "a" ‖ 0 ‖ "bc".
        assert_ne!(bucket("ab", "c"), bucket("a", "bc"));
    }

    #[test]
    fn threshold_rounds_basis_points() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(0.005), 1);
        assert_eq!(threshold(0.004), 0);
        assert_eq!(threshold(10.0), 1000);
        assert_eq!(threshold(12.345), 1235);
        assert_eq!(threshold(100.0), 10_000);
        assert_eq!(threshold(250.0), 10_000);
        assert_eq!(threshold(f64::NAN), 0);
        assert_eq!(threshold(-5.0), 0);
        assert!(in_percentage(9999, 100.0));
        assert!(!in_percentage(0, 0.0));
        assert!(in_percentage(0, 0.01));
    }

    #[test]
    fn install_id_is_keyed_by_app() {
        let a = install_id_from_machine("app-a", "machine");
        let b = install_id_from_machine("app-b", "machine");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(!a.contains("machine"));
    }

    #[test]
    fn fallback_id_is_kept_in_the_store() {
        let store = Store::open_in_memory().expect("store");
        let first = fallback_install_id("app", &store).expect("id");
        let second = fallback_install_id("app", &store).expect("id");
        assert_eq!(first, second);
        assert_eq!(first.len(), 32);
        assert_ne!(first, fallback_install_id("other", &store).expect("id"));
    }
}
