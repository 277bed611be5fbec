//! `railgun loadgen`: sends realistic analytics batches and reports throughput and latency.
//!
//! Owns the synthetic workload (per user: `session_start`, screens and feature events,
//! `session_end` with a duration; hashed-looking ids, no personal data) and the report:
//! events/s and request latency percentiles (p50/p90/p99/max). Bodies are built before the
//! clock starts, so the figure measures the server, not the generator. A 503 is retried
//! after its `Retry-After` and counted.
//!
//! With `--config-subscribers N` it measures the config stream instead: N Server-Sent Events
//! subscribers on `GET /config/{app}/stream` (raw HTTP/1.1 over loopback TCP, so the
//! generator stays light), then revisions published with the admin token
//! (`RAILGUN_ADMIN_TOKEN`) one after the other, each once every subscriber received the
//! previous one; it reports the delay from publish to receipt (p50/p99/max over every
//! subscriber and revision, and how many never arrived) and, with `--server-pid`, the
//! server's resident memory from `/proc` (`VmRSS` now, `VmHWM` peak).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use railgun_core::analytics::{
    names, AnalyticsEvent, EventBatch, EventCategory, IngestResponse, Properties, PropertyValue,
};
use uuid::Uuid;

use super::CliResult;

/// Arguments of `railgun loadgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Server base URL (e.g. http://127.0.0.1:3001). Repeat it to spread the ingest
    /// connections round-robin over several servers (the config stream uses the first).
    #[arg(long, required = true)]
    pub url: Vec<String>,
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
    /// Measure the config stream with this many SSE subscribers instead of ingest.
    #[arg(long)]
    pub config_subscribers: Option<usize>,
    /// The app whose config is published (`--config-subscribers`).
    #[arg(long, default_value = "loadgen")]
    pub config_app: String,
    /// Revisions published (`--config-subscribers`).
    #[arg(long, default_value_t = 5)]
    pub config_revisions: usize,
    /// The server's process id, to report its memory from /proc (`--config-subscribers`).
    #[arg(long)]
    pub server_pid: Option<u32>,
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
            queued: 0,
        })
        .collect()
}

fn hex_id(u: Uuid) -> String {
    hex::encode(u.as_bytes()) + &hex::encode(&u.as_bytes()[..16])
}

/// Runs `conn` on `concurrency` connections, connection `i` given `targets[i % n]`, and
/// sums their reports (latencies sorted, wall time from before the first connection).
async fn drive<F, Fut>(
    targets: &[String],
    concurrency: usize,
    conn: F,
) -> Result<Report, reqwest::Error>
where
    F: Fn(reqwest::Client, String) -> Fut,
    Fut: std::future::Future<Output = Report> + Send + 'static,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .filter_map(|i| targets.get(i % targets.len().max(1)))
        .map(|t| tokio::spawn(conn(client.clone(), t.clone())))
        .collect();
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

/// Sends `batches` with `concurrency` requests in flight; connection `i` posts to
/// `urls[i % urls.len()]` (several servers behind no balancer: the sender spreads them).
pub async fn send(
    urls: &[String],
    batches: &[EventBatch],
    concurrency: usize,
) -> Result<Report, reqwest::Error> {
    let endpoints: Vec<String> = urls
        .iter()
        .map(|u| format!("{}/analytics/events", u.trim_end_matches('/')))
        .collect();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        batches
            .iter()
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    drive(&endpoints, concurrency, |client, endpoint| {
        let (bodies, next) = (bodies.clone(), next.clone());
        async move {
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
        }
    })
    .await
}

/// Sends `requests` GETs of `path` (an update check: `/updates/APP/CHANNEL/channel.json`)
/// with `concurrency` in flight, connection `i` to `urls[i % urls.len()]`; each answer is
/// read whole. `accepted` counts the 200 answers, `errors` the others.
pub async fn fetch(
    urls: &[String],
    path: &str,
    requests: usize,
    concurrency: usize,
) -> Result<Report, reqwest::Error> {
    let targets: Vec<String> = urls
        .iter()
        .map(|u| format!("{}{path}", u.trim_end_matches('/')))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    drive(&targets, concurrency, |client, target| {
        let next = next.clone();
        async move {
            let mut r = Report::default();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let t = Instant::now();
                let ok = match client.get(&target).send().await {
                    Ok(resp) if resp.status().is_success() => resp.bytes().await.is_ok(),
                    _ => false,
                };
                if ok {
                    r.latencies.push(t.elapsed());
                    r.requests += 1;
                    r.accepted += 1;
                } else {
                    r.errors += 1;
                }
            }
            r
        }
    })
    .await
}

/// Runs the command.
pub async fn run(a: Args) -> CliResult {
    if let Some(n) = a.config_subscribers {
        return config_stream(&a, n).await;
    }
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

// ---- config stream ------------------------------------------------------------------------

/// How long every subscriber may take to connect, or to receive one revision.
const CONFIG_WAIT: Duration = Duration::from_secs(60);
/// Subscribers connecting at once.
const CONNECTS_IN_FLIGHT: usize = 256;

/// Counts the subscribers that reached a revision; wakes the publisher.
struct Progress {
    /// Per revision (index = revision), subscribers that received it.
    got: Vec<AtomicUsize>,
    changed: tokio::sync::Notify,
}

impl Progress {
    async fn wait(&self, revision: usize, want: usize) -> bool {
        let done = || self.got[revision].load(Ordering::Acquire) >= want;
        tokio::time::timeout(CONFIG_WAIT, async {
            loop {
                let notified = self.changed.notified();
                if done() {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

/// One subscriber: connects, sends the request, then records when each `id:` arrives.
async fn subscriber(
    addr: std::net::SocketAddr,
    request: Arc<Vec<u8>>,
    progress: Arc<Progress>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    gate: Arc<tokio::sync::Semaphore>,
) -> Result<Vec<(usize, Instant)>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Connects are paced: a permit is held until the request is sent.
    let permit = gate.acquire_owned().await;
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.write_all(&request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    drop(permit);
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut head_done = false;
    loop {
        let n = tokio::select! {
            r = tcp.read(&mut buf) => r.map_err(|e| format!("read: {e}"))?,
            _ = stop.wait_for(|s| *s) => return Ok(seen),
        };
        if n == 0 {
            return Ok(seen);
        }
        let at = Instant::now();
        for &b in &buf[..n] {
            if b != b'\n' {
                // Data lines carry the whole document: only the start of a line matters.
                if line.len() < 32 {
                    line.push(b);
                }
                continue;
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !head_done {
                if line.is_empty() {
                    head_done = true;
                } else if line.starts_with(b"HTTP/1.1 ") && !line.starts_with(b"HTTP/1.1 200") {
                    return Err(String::from_utf8_lossy(&line).into_owned());
                }
            } else if let Some(id) = line.strip_prefix(b"id: ") {
                if let Some(r) = std::str::from_utf8(id)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    seen.push((r, at));
                    if let Some(c) = progress.got.get(r) {
                        c.fetch_add(1, Ordering::AcqRel);
                        progress.changed.notify_waiters();
                    }
                }
            }
            line.clear();
        }
    }
}

/// `(VmRSS, VmHWM)` of `pid` in bytes.
fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

async fn publish_config(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    n: usize,
) -> Result<usize, String> {
    let doc = serde_json::json!({
        "version": format!("loadgen-{n}"),
        "flags": {"kill_switch_probe": {"enabled": n.is_multiple_of(2), "rolloutPercentage": 100}},
    });
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&doc)
        .send()
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.map_err(|e| format!("publish: {e}"))?;
    if !status.is_success() {
        return Err(format!("publish answered {status}: {body}"));
    }
    body["revision"]
        .as_u64()
        .map(|r| r as usize)
        .ok_or_else(|| format!("publish: no revision in {body}"))
}

async fn config_stream(a: &Args, subscribers: usize) -> CliResult {
    let token = std::env::var("RAILGUN_ADMIN_TOKEN")
        .map_err(|_| "set RAILGUN_ADMIN_TOKEN to publish config revisions")?;
    let url = a.url.first().ok_or("--url: none given")?;
    let base = url::Url::parse(url).map_err(|e| format!("--url: {e}"))?;
    let addr = base
        .socket_addrs(|| Some(80))
        .map_err(|e| format!("--url: {e}"))?
        .into_iter()
        .next()
        .ok_or("--url: no address")?;
    let app = &a.config_app;
    let publish_url = format!("{}/admin/config/{app}", url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    // A hosted revision first: without one the stream answers 404.
    let first = publish_config(&http, &publish_url, &token, 0).await?;
    let last = first + a.config_revisions;
    let progress = Arc::new(Progress {
        got: (0..=last).map(|_| AtomicUsize::new(0)).collect(),
        changed: tokio::sync::Notify::new(),
    });
    let request = Arc::new(
        format!(
            "GET /config/{app}/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            base.authority()
        )
        .into_bytes(),
    );
    println!(
        "loadgen: {subscribers} config subscribers on {}/config/{app}/stream, {} revisions",
        url.trim_end_matches('/'),
        a.config_revisions
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECTS_IN_FLIGHT));
    let connecting = Instant::now();
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (request, progress, stop, gate) = (
            request.clone(),
            progress.clone(),
            stop.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(subscriber(
            addr, request, progress, stop, gate,
        )));
    }
    let connected = progress.wait(first, subscribers).await;
    println!(
        "{} of {subscribers} subscribers had revision {first} after {:.1} s",
        progress.got[first].load(Ordering::Acquire),
        connecting.elapsed().as_secs_f64()
    );
    let mut published = Vec::new();
    if connected {
        for n in 1..=a.config_revisions {
            let at = Instant::now();
            let r = publish_config(&http, &publish_url, &token, n).await?;
            published.push((r, at));
            if !progress.wait(r.min(last), subscribers).await {
                println!("revision {r}: not every subscriber received it within {CONFIG_WAIT:?}");
            }
        }
    }
    let memory = a.server_pid.and_then(rss);
    stop_tx.send_replace(true);
    let mut delays = Vec::new();
    let mut failed = 0usize;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(seen)) => {
                for (r, at) in seen {
                    if let Some((_, p)) = published.iter().find(|(pr, _)| *pr == r) {
                        delays.push(at.saturating_duration_since(*p));
                    }
                }
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    delays.sort();
    let expected = subscribers * published.len();
    let pct = |p: f64| {
        if delays.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * delays.len() as f64).ceil() as usize).clamp(1, delays.len());
        delays[rank - 1].as_secs_f64() * 1000.0
    };
    println!(
        "config delivery: {} of {expected} receipts, {failed} subscribers failed{}",
        delays.len(),
        first_error
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!(
        "publish→receipt ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    // Rows of scripts/bench.sh's table (no peer measures the same push).
    println!(
        "bench-row: config push publish→receipt p99, {subscribers} SSE subscribers | ≤ 2 s | {:.0} ms (p50 {:.0} ms) | — | —",
        pct(0.99),
        pct(0.5)
    );
    if let Some((now, peak)) = memory {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "server memory: RSS {:.1} MiB, peak {:.1} MiB",
            mib(now),
            mib(peak)
        );
        println!(
            "bench-row: config push: server RSS, {subscribers} SSE subscribers | ≤ 512 MiB | {:.0} MiB | — | —",
            mib(now)
        );
    }
    Ok(if connected && failed == 0 && delays.len() == expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
