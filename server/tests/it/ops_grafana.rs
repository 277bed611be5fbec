//! `deploy/grafana/railgun.json` against the real server: after a real demo run
//! (`railgun_server::demo::run`, its server still running), every metric name each panel
//! query reads is one `/metrics` exports, and every label a query selects, groups by or
//! shows in its legend is a label of one of the metrics it reads. Also: the board has the
//! panels the specification's "Monitoring" asks for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use railgun_server::demo::{self, DemoOptions, NoProgress};
use serde_json::Value;

use crate::ops_prometheus::{metric_names, parse_exposition};

fn board() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/railgun.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("railgun.json")).expect("json")
}

/// Label names a PromQL query uses: in selectors (`{a="x", b=~"y"}`), in `by`/`without`/
/// `on`/`ignoring` clauses, and in the legend (`{{a}}`).
fn labels_used(expr: &str, legend: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let selector = regex::Regex::new(r"\{([^{}]*)\}").expect("re");
    let pair = regex::Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)"#).expect("re");
    for c in selector.captures_iter(expr) {
        for p in pair.captures_iter(&c[1]) {
            out.insert(p[1].to_string());
        }
    }
    let clause = regex::Regex::new(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)").expect("re");
    for c in clause.captures_iter(expr) {
        for l in c[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
            out.insert(l.to_string());
        }
    }
    let legend_re = regex::Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").expect("re");
    for c in legend_re.captures_iter(legend) {
        out.insert(c[1].to_string());
    }
    out.remove("le");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_reads_metrics_and_labels_the_server_exports_after_a_demo_run() {
    let opts = DemoOptions {
        installs: 60,
        ..DemoOptions::default()
    };
    // A whole demo (a simulated week of launches) on a shared machine: its own deadline.
    let demo = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        demo::run(&opts, Arc::new(NoProgress)),
    )
    .await
    .expect("the demo ran within 5 minutes")
    .expect("demo");
    let text = reqwest::get(format!("{}/metrics", demo.report.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    demo.server.stop().await.expect("stop");
    let exported: BTreeMap<String, BTreeSet<String>> = parse_exposition(&text);

    let board = board();
    let panels = board["panels"].as_array().expect("panels");
    let mut checked = 0;
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr");
            let legend = t["legendFormat"].as_str().unwrap_or_default();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: {expr} reads no railgun metric");
            let mut have = BTreeSet::new();
            for n in &names {
                let labels = exported.get(n).unwrap_or_else(|| {
                    panic!("{title}: {expr} reads {n}, which the server does not export after a demo run")
                });
                have.extend(labels.iter().cloned());
            }
            for l in labels_used(expr, legend) {
                assert!(
                    have.contains(&l),
                    "{title}: {expr} uses the label {l}, which none of {names:?} carries ({have:?})"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} queries");
    // Template variables read a real metric and label.
    for v in board["templating"]["list"].as_array().expect("vars") {
        if let Some(q) = v["definition"].as_str() {
            let names = metric_names(q);
            for n in &names {
                assert!(exported.contains_key(n), "variable {}: {n}", v["name"]);
            }
            let label = v["name"].as_str().expect("name");
            assert!(
                names.iter().any(|n| exported[n].contains(label)),
                "variable {label}"
            );
        }
    }
    // What the specification's monitoring section asks the board to show.
    let titles: Vec<String> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    for want in [
        "dau / wau / mau",
        "sessions",
        "feature usage",
        "rollout percentage",
        "installs",
        "error rate",
        "crash rate",
        "crash-free users",
        "adoption",
        "firing alerts",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "a panel about {want}: {titles:?}"
        );
    }
}
