//! `railgun demo --installs 200 --json`, run as the built binary: the healthy path ends at
//! 100 % and complete, the bad release is halted by the engine; in both every install runs
//! the release or its fallback with files whose SHA-256 match the published artifact, and
//! the installs that moved from 0.1.0 to 0.2.0 did so through its delta patch: the bytes the
//! fleet saved are the sum of what each install's Updater reported.

use std::process::Command;

use serde_json::Value;

fn demo(extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args(["demo", "--installs", "200", "--json", "--seed", "7"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run railgun demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "railgun demo {extra:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout.chars().take(4000).collect::<String>()
    );
    serde_json::from_str(&stdout).expect("one JSON document on stdout")
}

/// Every install runs 0.2.0 or 0.1.0 and its files hash-match the artifact.
fn assert_every_install_verified(r: &Value, allowed: &[&str]) {
    let total = r["installs"]["total"].as_u64().expect("total");
    assert_eq!(total, 200);
    let detail = r["installsDetail"].as_array().expect("installsDetail");
    assert_eq!(detail.len() as u64, total);
    for d in detail {
        let v = d["version"].as_str().expect("version");
        assert!(allowed.contains(&v), "install runs {v}: {d}");
        assert_eq!(d["filesVerified"], Value::Bool(true), "{d}");
    }
    let v = &r["verification"];
    assert_eq!(v["verified"].as_u64(), Some(total), "{v}");
    assert_eq!(v["allVerified"], Value::Bool(true));
    assert_eq!(r["launchFailures"].as_u64(), Some(0), "{}", r["failures"]);
    let by_version: u64 = r["installs"]["byVersion"]
        .as_object()
        .expect("byVersion")
        .iter()
        .filter(|(k, _)| allowed.contains(&k.as_str()))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(by_version, total);
}

/// Every launch's health reports reached the server (none left pending at shutdown).
fn assert_health_delivered(r: &Value) {
    for round in r["rounds"].as_array().expect("rounds") {
        assert_eq!(round["healthReports"], round["launches"], "{round}");
    }
}

/// The fleet's download figures are the sums of the installs' (each from its Updater's
/// `downloadedBytes`/`fullBytes`), no update fell back, and (`moved`: installs went from
/// 0.1.0 to 0.2.0) the delta patches saved bytes.
fn assert_bytes_saved(r: &Value, moved: bool) {
    let d = &r["downloads"];
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    let detail = r["installsDetail"].as_array().expect("installsDetail");
    for k in ["updates", "deltaUpdates", "downloadedBytes", "fullBytes"] {
        let sum: u64 = detail.iter().map(|i| n(i, k)).sum();
        assert_eq!(
            sum,
            n(d, k),
            "{k}: installs sum to {sum}, the fleet says {d}"
        );
    }
    assert_eq!(
        n(d, "savedBytes"),
        n(d, "fullBytes").saturating_sub(n(d, "downloadedBytes")),
        "{d}"
    );
    if moved {
        assert!(n(d, "deltaUpdates") > 0, "{d}");
        assert!(n(d, "downloadedBytes") < n(d, "fullBytes"), "{d}");
        assert!(n(d, "savedBytes") > 0, "{d}");
    }
    // Every install that took a patch downloaded less than the full artifacts.
    for i in detail.iter().filter(|i| n(i, "deltaUpdates") > 0) {
        assert!(n(i, "downloadedBytes") < n(i, "fullBytes"), "{i}");
    }
    assert_eq!(d["fallbacks"], serde_json::json!({}), "{d}");
}

fn actions(r: &Value) -> Vec<String> {
    r["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| d["action"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn healthy_release_rolls_out_stage_by_stage_to_100_percent() {
    let r = demo(&[]);
    assert_eq!(r["scenario"], "healthy");
    assert_eq!(r["finalStatus"], "complete", "{}", r["decisions"]);
    assert_eq!(r["finalPercentage"].as_f64(), Some(100.0));
    // 10 → 25 → 50 → 100, each step a decision with its numbers.
    let advances: Vec<(f64, f64)> = r["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["action"] == "advance")
        .map(|d| {
            assert!(d["installs"].as_u64().unwrap_or(0) > 0, "{d}");
            assert!(d["errorUpper"].as_f64().is_some(), "{d}");
            (
                d["fromPercentage"].as_f64().expect("from"),
                d["toPercentage"].as_f64().expect("to"),
            )
        })
        .collect();
    assert_eq!(advances, vec![(10.0, 25.0), (25.0, 50.0), (50.0, 100.0)]);
    assert!(actions(&r).contains(&"complete".to_string()));
    assert!(!actions(&r).contains(&"halt".to_string()));
    assert_every_install_verified(&r, &["0.2.0"]);
    assert_health_delivered(&r);
    assert_bytes_saved(&r, true);
    assert_eq!(r["installs"]["byVersion"]["0.2.0"].as_u64(), Some(200));
    assert_eq!(
        r["installs"]["lateInFirstStageOnFallback"].as_u64(),
        Some(0)
    );
    // Analytics reached the server: sampled users counted per day.
    let days = r["analytics"]["days"].as_array().expect("days");
    assert!(
        days.iter().any(|d| d["dau"].as_u64().unwrap_or(0) > 0),
        "{days:?}"
    );
}

#[test]
fn bad_release_is_halted_and_the_fallback_is_served() {
    let r = demo(&["--bad-release"]);
    assert_eq!(r["scenario"], "bad");
    assert_eq!(r["finalStatus"], "halted", "{}", r["decisions"]);
    assert!(r["finalPercentage"].as_f64().unwrap_or(100.0) < 100.0);
    let halt = r["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .find(|d| d["action"] == "halt")
        .unwrap_or_else(|| panic!("no halt decision: {}", r["decisions"]));
    let limits = &r["limits"];
    let over_errors = halt["errorLower"].as_f64().unwrap_or(0.0)
        > limits["maxErrorRate"].as_f64().expect("limit");
    let over_crashes = halt["crashLower"].as_f64().unwrap_or(0.0)
        > limits["maxCrashRate"].as_f64().expect("limit");
    assert!(
        over_errors || over_crashes,
        "halt without a bound over a limit: {halt}"
    );
    assert!(!actions(&r)
        .iter()
        .any(|a| a == "advance" || a == "complete"));
    // The demo's in-process receiver got the server's alerts: Rollout Halted (critical), and
    // High Error Rate (warning) whenever the engine decided the numbers warranted it.
    let alerts = r["alerts"].as_array().expect("alerts");
    let sent = |kind: &str, severity: &str| {
        alerts
            .iter()
            .any(|a| a["kind"] == kind && a["severity"] == severity && a["status"] == "firing")
    };
    assert!(sent("rollout_halted", "critical"), "{alerts:?}");
    if actions(&r).iter().any(|a| a == "high_error_rate") {
        assert!(sent("high_error_rate", "warning"), "{alerts:?}");
    }
    assert_every_install_verified(&r, &["0.2.0", "0.1.0"]);
    assert_health_delivered(&r);
    assert_bytes_saved(&r, false);
    // Most of the fleet stays on the fallback; installs that joined after the halt and
    // fall inside the 10 % cohort got 0.1.0, not the halted release.
    let installs = &r["installs"];
    assert_eq!(
        installs["lateInFirstStageOnFallback"], installs["lateInFirstStage"],
        "{installs}"
    );
    let on_fallback = r["installs"]["byVersion"]["0.1.0"].as_u64().unwrap_or(0);
    assert!(on_fallback >= 150, "{}", r["installs"]);
    let last = r["rounds"]
        .as_array()
        .expect("rounds")
        .last()
        .cloned()
        .expect("a round");
    assert_eq!(last["status"], "halted");
    assert_eq!(last["updatedToRelease"].as_u64(), Some(0), "{last}");
}

#[test]
fn refuses_an_empty_fleet_and_a_bad_sample_rate() {
    for args in [
        vec!["demo", "--installs", "0"],
        vec!["demo", "--installs", "5", "--sample-rate", "1.5"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_railgun"))
            .args(&args)
            .output()
            .expect("run railgun demo");
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("outside"), "{args:?}: {err}");
    }
}
