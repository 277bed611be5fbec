//! `deploy/prometheus/alerts.yml`: valid (`promtool check rules`), its own unit tests pass
//! (`promtool test rules alerts.test.yml`: each of the four alerts fires when the
//! specification's table says and not before), and every metric it reads is one the real
//! server exports after an engine run. promtool comes from Debian's `prometheus` package
//! (`scripts/test.sh` installs it); under `RAILGUN_REQUIRE_ALL=1` a missing promtool fails.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::support::{health_report, skip, ReleaseSpec, TestServer, ADMIN};

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// `promtool ARGS` in `deploy/prometheus`; `None` (after `skip`) when promtool is missing.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            skip(&format!(
                "promtool ({e}): apt-get install prometheus (scripts/test.sh does)"
            ));
            None
        }
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts.test.yml"][..],
    ] {
        let Some(out) = promtool(args) else { return };
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_rules_define_the_four_alerts_of_the_specification_with_their_severities() {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).expect("alerts.yml");
    for (name, severity) in [
        ("RolloutHalted", "critical"),
        ("HighErrorRate", "warning"),
        ("LowAdoption", "info"),
        ("AnalyticsBacklog", "warning"),
    ] {
        let at = text
            .find(&format!("- alert: {name}\n"))
            .unwrap_or_else(|| panic!("{name} missing"));
        let rest = &text[at..];
        let end = rest[1..].find("- alert:").map_or(rest.len(), |i| i + 1);
        assert!(
            rest[..end].contains(&format!("severity: {severity}")),
            "{name} is {severity}"
        );
    }
    assert!(
        text.contains("for: 15m"),
        "High Error Rate waits 15 minutes"
    );
}

/// The metric names a PromQL text reads: identifiers starting with `railgun_`.
pub fn metric_names(promql: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\brailgun_[A-Za-z0-9_]+").expect("regex");
    re.find_iter(promql)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The metric families the real server exports after a release rolled out, health
/// reports came in and the engine ran (the gauges are computed by the engine, not per
/// scrape), with the label names each one carries.
pub async fn exported_metrics() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let t0: DateTime<Utc> = "2026-11-01T09:00:00Z".parse().expect("t");
    let mut s = TestServer::start(t0).await;
    let release = s.release(&ReleaseSpec {
        app: "demo",
        channel: "stable",
        version: "1.1.0",
        policy: None,
        released_at: t0,
        size: 5,
        base_url: Some("https://cdn.example.com/demo"),
    });
    let r = s
        .post(
            "/admin/releases",
            Some(ADMIN),
            &json!({"manifest": release.envelope, "start": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let reports = (0..10)
        .map(|i| {
            health_report(
                "demo",
                "stable",
                "1.1.0",
                format!("{i:064x}"),
                (u32::from(i < 2), 0),
                t0,
            )
        })
        .collect();
    s.report_all(reports).await;
    s.evaluate().await;
    let text = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    s.stop().await;
    parse_exposition(&text)
}

/// Family name → label names, from a Prometheus text exposition (histogram series are
/// listed under their `_bucket`, `_sum` and `_count` names too).
pub fn parse_exposition(text: &str) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let labels = out.entry(name.to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let inner = &line[name_end + 1..line.rfind('}').unwrap_or(line.len())];
            for pair in inner.split("\",") {
                if let Some((k, _)) = pair.split_once('=') {
                    labels.insert(k.trim().to_string());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_read_is_exported_by_the_server_after_an_engine_run() {
    let exported = exported_metrics().await;
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).expect("alerts.yml");
    let used = metric_names(&rules);
    assert!(used.len() >= 8, "{used:?}");
    for name in &used {
        assert!(
            exported.contains_key(name),
            "alerts.yml reads {name}, which /metrics does not export: {:?}",
            exported.keys().collect::<Vec<_>>()
        );
    }
    // The rules match on these labels.
    for name in ["railgun_rollout_status", "railgun_rollout_installs"] {
        for l in ["app", "channel", "version"] {
            assert!(exported[name].contains(l), "{name} has {l}");
        }
    }
    assert!(exported["railgun_rollout_status"].contains("status"));
}
