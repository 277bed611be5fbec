//! Server metrics in the Prometheus text format (`GET /metrics`).
//!
//! Owns the counters (requests by route and status, events ingested, duplicates, rejected,
//! property values scrubbed), the ingest queue depth gauge, latency histograms per route,
//! the fleet gauges the rollout engine renders on its schedule ([`Metrics::set_fleet`]),
//! and [`track`], the layer that counts every request of the application. Labels are route
//! templates and status codes only: never a raw path, user ids, event properties or
//! addresses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The label of a request: the template of the route that matched (`/analytics/users/{user_id}`),
/// `/updates/{*path}` for the update tree, `/{*path}` for everything else (the tree at the
/// root, unknown paths): never the path itself.
pub fn route_label(matched: Option<&str>, path: &str) -> String {
    match matched {
        Some(m) => m.replace("{*__private__axum_nest_tail_param}", "{*path}"),
        None if path == "/updates" || path.starts_with("/updates/") => "/updates/{*path}".into(),
        None => "/{*path}".into(),
    }
}

/// The layer counting every request (`railgun_http_requests_total`,
/// `railgun_http_request_duration_seconds`) by route template and status; each request runs
/// in a `request` span naming its method and route, so what a handler logs (an
/// [`crate::api::ApiError`]'s cause) says where it happened.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let path = match req.extensions().get::<OriginalUri>() {
        Some(OriginalUri(uri)) => uri.path(),
        None => req.uri().path(),
    };
    let route = route_label(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
        path,
    );
    let span = tracing::info_span!("request", method = %req.method(), route = %route);
    let started = Instant::now();
    let res = next.run(req).instrument(span).await;
    metrics.record_request(&route, res.status().as_u16(), started.elapsed());
    res
}

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// All server metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    commit: Mutex<Histogram>,
    /// Events stored.
    pub ingested: AtomicU64,
    /// Events acknowledged as duplicates.
    pub duplicates: AtomicU64,
    /// Events rejected by validation.
    pub rejected: AtomicU64,
    /// Property values removed because they looked like an email or IP address.
    pub scrubbed: AtomicU64,
    /// Requests refused because the queue was full.
    pub overloaded: AtomicU64,
    /// Events queued, not yet committed.
    pub queue_depth: AtomicU64,
    /// Rows removed by the retention job.
    pub purged: AtomicU64,
    /// Events clients reported dropping before upload (their queue was full).
    pub client_dropped: AtomicU64,
    /// Alerts the webhook acknowledged.
    pub alerts_delivered: AtomicU64,
    /// Alerts given up after their retries.
    pub alerts_failed: AtomicU64,
    /// Alerts that could not be written to the outbox.
    pub alerts_dropped: AtomicU64,
    /// The fleet gauges (rollouts, firing alerts, active users), rendered by the rollout
    /// engine on its schedule (`crate::rollout`'s gauges), never computed per scrape.
    fleet: Mutex<String>,
    /// Whether this server leads (runs the rollout engine and sends the alerts).
    leader: std::sync::OnceLock<tokio::sync::watch::Receiver<Option<i64>>>,
}

impl Metrics {
    /// Counts one request on `route` answered with `status` after `elapsed`.
    pub fn record_request(&self, route: &str, status: u16, elapsed: Duration) {
        {
            let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            *r.entry((route.to_string(), status)).or_default() += 1;
        }
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        l.entry(route.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Records one store commit of the ingest writer.
    pub fn record_commit(&self, elapsed: Duration) {
        self.commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(elapsed.as_secs_f64());
    }

    /// Shows `railgun_rollout_engine_leader` from this server's leadership
    /// ([`crate::leader::Leadership::watch`]).
    pub fn follow_leader(&self, leading: tokio::sync::watch::Receiver<Option<i64>>) {
        let _ = self.leader.set(leading);
    }

    /// Replaces the fleet gauges (Prometheus text, `# HELP`/`# TYPE` included).
    pub fn set_fleet(&self, text: String) {
        *self.fleet.lock().unwrap_or_else(|p| p.into_inner()) = text;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(s, "{name} {}", v.load(Ordering::Relaxed));
        };
        counter(
            &mut s,
            "railgun_events_ingested_total",
            "Events stored.",
            &self.ingested,
        );
        counter(
            &mut s,
            "railgun_events_duplicate_total",
            "Events acknowledged as duplicates.",
            &self.duplicates,
        );
        counter(
            &mut s,
            "railgun_events_rejected_total",
            "Events refused by validation.",
            &self.rejected,
        );
        counter(
            &mut s,
            "railgun_properties_scrubbed_total",
            "Property values removed (email or IP address).",
            &self.scrubbed,
        );
        counter(
            &mut s,
            "railgun_ingest_overloaded_total",
            "Uploads refused with 503 because the queue was full.",
            &self.overloaded,
        );
        counter(
            &mut s,
            "railgun_retention_purged_rows_total",
            "Rows removed by the retention job.",
            &self.purged,
        );
        counter(
            &mut s,
            "railgun_client_dropped_events_total",
            "Events clients reported dropping before upload.",
            &self.client_dropped,
        );
        counter(
            &mut s,
            "railgun_alerts_delivered_total",
            "Alerts the webhook acknowledged.",
            &self.alerts_delivered,
        );
        counter(
            &mut s,
            "railgun_alerts_failed_total",
            "Alerts given up after their retries.",
            &self.alerts_failed,
        );
        counter(
            &mut s,
            "railgun_alerts_dropped_total",
            "Alerts that could not be written to the outbox.",
            &self.alerts_dropped,
        );
        let _ = writeln!(
            s,
            "# HELP railgun_ingest_queue_depth Events waiting for the writer.\n# TYPE railgun_ingest_queue_depth gauge\nrailgun_ingest_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# HELP railgun_http_requests_total HTTP requests by route and status.\n# TYPE railgun_http_requests_total counter");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "railgun_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        let _ = writeln!(s, "# HELP railgun_http_request_duration_seconds HTTP request latency by route.\n# TYPE railgun_http_request_duration_seconds histogram");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            write_hist(
                &mut s,
                "railgun_http_request_duration_seconds",
                &format!("route=\"{}\",", escape(route)),
                h,
            );
        }
        let _ = writeln!(s, "# HELP railgun_store_commit_duration_seconds Ingest writer commit latency.\n# TYPE railgun_store_commit_duration_seconds histogram");
        let c = self
            .commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        write_hist(&mut s, "railgun_store_commit_duration_seconds", "", &c);
        if let Some(l) = self.leader.get() {
            let _ = writeln!(s, "# HELP railgun_rollout_engine_leader 1 when this server leads: it runs the rollout engine and sends the alerts.\n# TYPE railgun_rollout_engine_leader gauge");
            let _ = writeln!(
                s,
                "railgun_rollout_engine_leader {}",
                u8::from(l.borrow().is_some())
            );
        }
        s.push_str(&self.fleet.lock().unwrap_or_else(|p| p.into_inner()));
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_hist(s: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (i, b) in BUCKETS.iter().enumerate() {
        let n = h.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(s, "{name}_bucket{{{labels}le=\"{b}\"}} {n}");
    }
    let _ = writeln!(s, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
    let l = labels.trim_end_matches(',');
    let braces = if l.is_empty() {
        String::new()
    } else {
        format!("{{{l}}}")
    };
    let _ = writeln!(s, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(s, "{name}_count{braces} {}", h.count);
}

#[cfg(test)]
mod tests {

    #[test]
    fn route_labels_are_templates_never_paths() {
        let l = route_label(Some("/analytics/users/{user_id}"), "/analytics/users/bob");
        assert_eq!(l, "/analytics/users/{user_id}");
        let nested = route_label(
            Some("/updates/{*__private__axum_nest_tail_param}"),
            "/updates/a/b",
        );
        assert_eq!(nested, "/updates/{*path}");
        assert_eq!(route_label(None, "/updates/app/x.json"), "/updates/{*path}");
        assert_eq!(route_label(None, "/bob/secret"), "/{*path}");
    }
    use super::*;

    /// The request histogram renders its buckets by route. (The Grafana board's metric and
    /// label names are checked against a real server after a real demo run, where the fleet
    /// gauges exist: `server/tests/it/ops_grafana.rs`.)
    #[test]
    fn request_durations_render_by_route_and_bucket() {
        let m = Metrics::default();
        m.record_request("/analytics/events", 200, Duration::from_millis(3));
        m.record_commit(Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("railgun_http_request_duration_seconds_bucket{route=\"/analytics/events\",le=\"0.005\"} 1"));
    }
}
