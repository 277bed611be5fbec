//! `railgun loadgen`: sends realistic analytics batches and reports throughput and latency.
//!
//! Owns the synthetic workload (per user: `session_start`, screens and feature events,
//! `session_end` with a duration; hashed-looking ids, no personal data) and the report:
//! events/s and request latency percentiles (p50/p90/p99/max). Bodies are built before the
//! clock starts, so the figure measures the server, not the generator. A 503 is retried
//! after its `Retry-After` and counted.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use railgun_core::analytics::event::{
    names, AnalyticsEvent, EventBatch, EventCategory, IngestResponse, Properties, PropertyValue,
};
use uuid::Uuid;

use super::CliResult;

/// Arguments of `railgun loadgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Server base URL (e.g. http://127.0.0.1:3001).
    #[arg(long)]
    pub url: String,
    /// Simulated users.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Events per user.
    #[arg(long, default_value_t = 100)]
    pub events_per_user: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Events per batch.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Sample rate reported in each batch.
    #[arg(long, default_value_t = 1.0)]
    pub sample_rate: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests answered 200.
    pub requests: usize,
    /// Events accepted.
    pub accepted: u64,
    /// Events reported duplicate.
    pub duplicates: u64,
    /// Events rejected.
    pub rejected: u64,
    /// 503 answers (retried).
    pub overloaded: usize,
    /// Other failures (not retried).
    pub errors: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency of each 200 answer, sorted.
    pub latencies: Vec<Duration>,
}

impl Report {
    /// Events per second (accepted + duplicates).
    pub fn events_per_sec(&self) -> f64 {
        (self.accepted + self.duplicates) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile (nearest rank), `p` in (0, 1].
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((p * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

/// Builds the workload: `users × events_per_user` events in batches of `batch`.
pub fn generate(
    users: usize,
    events_per_user: usize,
    batch: usize,
    sample_rate: f64,
) -> Vec<EventBatch> {
    let now = Utc::now();
    let screens = ["chat", "settings", "contacts", "profile", "search"];
    let features = [
        names::MESSAGE_SENT,
        names::CONVERSATION_OPENED,
        names::SCREEN_VIEW,
        names::CONTACT_ADDED,
    ];
    let mut all = Vec::with_capacity(users * events_per_user);
    for u in 0..users {
        let user_id = hex_id(Uuid::new_v4());
        let session_id = Uuid::new_v4().to_string();
        let start =
            now - chrono::Duration::minutes(30) + chrono::Duration::milliseconds((u % 1000) as i64);
        for i in 0..events_per_user {
            let name = if i == 0 {
                names::SESSION_START
            } else if i + 1 == events_per_user {
                names::SESSION_END
            } else {
                features[i % features.len()]
            };
            let mut props = Properties::new();
            if name == names::SCREEN_VIEW {
                props.insert(
                    "screen_name".into(),
                    PropertyValue::from(screens[i % screens.len()]),
                );
            }
            if name == names::MESSAGE_SENT {
                props.insert("length_bucket".into(), PropertyValue::from((i % 4) as i64));
                props.insert("has_attachment".into(), PropertyValue::from(i % 7 == 0));
            }
            all.push(AnalyticsEvent {
                id: Uuid::now_v7(),
                name: name.to_string(),
                category: EventCategory::for_name(name),
                user_id: user_id.clone(),
                session_id: session_id.clone(),
                timestamp: start + chrono::Duration::seconds(i as i64),
                app_version: "1.4.2".into(),
                platform: ["linux", "darwin", "win32"][u % 3].into(),
                arch: "x64".into(),
                channel: "stable".into(),
                properties: (!props.is_empty()).then_some(props),
                duration: (name == names::SESSION_END).then_some(i as f64 * 1000.0),
                sequence: i as u64,
            });
        }
    }
    all.chunks(batch.max(1))
        .map(|c| EventBatch {
            events: c.to_vec(),
            sent_at: Some(now),
            sample_rate,
            dropped: 0,
        })
        .collect()
}

fn hex_id(u: Uuid) -> String {
    hex::encode(u.as_bytes()) + &hex::encode(&u.as_bytes()[..16])
}

/// Sends `batches` with `concurrency` requests in flight.
pub async fn send(
    url: &str,
    batches: &[EventBatch],
    concurrency: usize,
) -> Result<Report, reqwest::Error> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let endpoint = format!("{}/analytics/events", url.trim_end_matches('/'));
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        batches
            .iter()
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, endpoint, bodies, next) = (
            client.clone(),
            endpoint.clone(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut r = Report::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                loop {
                    let t = Instant::now();
                    let res = client
                        .post(&endpoint)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match res {
                        Ok(resp) if resp.status().is_success() => {
                            let ans: IngestResponse = match resp.json().await {
                                Ok(a) => a,
                                Err(_) => {
                                    r.errors += 1;
                                    break;
                                }
                            };
                            r.latencies.push(t.elapsed());
                            r.requests += 1;
                            r.accepted += ans.accepted;
                            r.duplicates += ans.duplicates;
                            r.rejected += ans.rejected.len() as u64;
                            break;
                        }
                        Ok(resp) if resp.status().as_u16() == 503 => {
                            r.overloaded += 1;
                            let wait = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(1);
                            tokio::time::sleep(Duration::from_millis(wait.min(5) * 100)).await;
                        }
                        _ => {
                            r.errors += 1;
                            break;
                        }
                    }
                }
            }
            r
        }));
    }
    let mut total = Report::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.requests += r.requests;
            total.accepted += r.accepted;
            total.duplicates += r.duplicates;
            total.rejected += r.rejected;
            total.overloaded += r.overloaded;
            total.errors += r.errors;
            total.latencies.extend(r.latencies);
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    Ok(total)
}

/// Runs the command.
pub async fn run(a: Args) -> CliResult {
    if !(a.sample_rate > 0.0 && a.sample_rate <= 1.0) {
        return Err("--sample-rate must be in (0, 1]".into());
    }
    let batches = generate(a.users, a.events_per_user, a.batch, a.sample_rate);
    println!(
        "loadgen: {} users × {} events = {} events in {} batches of ≤ {}, concurrency {}",
        a.users,
        a.events_per_user,
        a.users * a.events_per_user,
        batches.len(),
        a.batch,
        a.concurrency
    );
    let r = send(&a.url, &batches, a.concurrency).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "requests {} ok, {} overloaded (503, retried), {} errors",
        r.requests, r.overloaded, r.errors
    );
    println!(
        "events: {} accepted, {} duplicates, {} rejected in {:.2} s",
        r.accepted,
        r.duplicates,
        r.rejected,
        r.elapsed.as_secs_f64()
    );
    println!("throughput: {:.0} events/s", r.events_per_sec());
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(r.percentile(0.5)),
        ms(r.percentile(0.9)),
        ms(r.percentile(0.99)),
        ms(r.percentile(1.0))
    );
    Ok(if r.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
