//! The unit of rates in the rollout answers: percent.
//!
//! The engine computes, stores and exports rates as fractions (`0.008`), as a manifest's
//! `rollout.maxErrorRate` states them; every rate of `GET /analytics/rollout-status`,
//! `GET /analytics/rollouts`, the admin rollout answers and their decision logs is written in
//! percent, as the specification's example (`"errorRate": 0.8` is 0.8 %), so one answer has
//! one unit: the rates, their Wilson bounds and the limits alike.
//!
//! Owns the serde adapters [`serialize`] / [`deserialize`] (`#[serde(with =
//! "crate::percent")]` on a fraction field) and [`of`]. It refuses nothing: a fraction outside
//! `[0, 1]` is written as it is, times 100.

use serde::{Deserialize, Deserializer, Serializer};

/// `fraction` in percent, rounded to 6 decimals (`0.0194` → `1.94`, not `1.9400000000000002`).
pub fn of(fraction: f64) -> f64 {
    (fraction * 100.0 * 1e6).round() / 1e6
}

/// Writes a fraction field in percent.
pub fn serialize<S: Serializer>(fraction: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(of(*fraction))
}

/// Reads a percent field back into a fraction.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(f64::deserialize(d)? / 100.0)
}

/// The same for an optional fraction (`None` is `null`).
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes an optional fraction in percent.
    pub fn serialize<S: Serializer>(fraction: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match fraction {
            Some(f) => s.serialize_some(&super::of(*f)),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional percent back into a fraction.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(|p| p / 100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Rate(#[serde(with = "super")] f64);

    #[test]
    fn fractions_are_written_in_percent_and_read_back() {
        assert_eq!(of(0.0194), 1.94);
        assert_eq!(of(0.05), 5.0);
        assert_eq!(of(0.008), 0.8);
        assert_eq!(of(1.0), 100.0);
        assert_eq!(serde_json::to_string(&Rate(0.001)).expect("json"), "0.1");
        let back: Rate = serde_json::from_str("0.8").expect("json");
        assert!((back.0 - 0.008).abs() < 1e-12);
    }
}
