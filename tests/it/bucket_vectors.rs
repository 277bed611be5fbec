//! The shared bucketing vectors (`tests/vectors/bucket.json`), generated once by an
//! independent implementation; every binding checks the same file.

use std::collections::HashMap;

use railgun_core::identity::{bucket, threshold, BucketSeed};
use serde_json::Value;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/bucket.json"
    ))
    .expect("vectors file");
    serde_json::from_str(&text).expect("vectors json")
}

#[test]
fn bucket_matches_every_shared_vector() {
    let doc = vectors();
    let cases = doc["vectors"].as_array().expect("vectors");
    assert!(cases.len() >= 30, "at least 30 vectors");
    let mut saw_zero = false;
    let mut saw_max = false;
    for c in cases {
        let seed = c["seed"].as_str().expect("seed");
        let id = c["id"].as_str().expect("id");
        let expected = c["bucket"].as_u64().expect("bucket");
        assert_eq!(
            u64::from(bucket(seed, id)),
            expected,
            "seed {seed:?} id {id:?}"
        );
        saw_zero |= expected == 0;
        saw_max |= expected == 9999;
    }
    assert!(saw_zero && saw_max, "vectors cover both boundaries");
}

#[test]
fn a_seed_hashed_once_serves_every_id() {
    // One BucketSeed per seed, reused for every id in file order: the cloned midstate must
    // never carry one id into the next.
    let mut seeds: HashMap<String, BucketSeed> = HashMap::new();
    for c in vectors()["vectors"].as_array().expect("vectors") {
        let seed = c["seed"].as_str().expect("seed");
        let id = c["id"].as_str().expect("id");
        let state = seeds
            .entry(seed.to_string())
            .or_insert_with(|| BucketSeed::new(seed));
        assert_eq!(
            u64::from(state.bucket(id)),
            c["bucket"].as_u64().expect("bucket"),
            "seed {seed:?} id {id:?}"
        );
    }
    assert!(seeds.len() >= 2, "the vectors use several seeds");
}

#[test]
fn thresholds_match_the_shared_rule() {
    for t in vectors()["thresholds"].as_array().expect("thresholds") {
        let p = t["percentage"].as_f64().expect("p");
        assert_eq!(
            u64::from(threshold(p)),
            t["threshold"].as_u64().expect("t"),
            "percentage {p}"
        );
    }
}
