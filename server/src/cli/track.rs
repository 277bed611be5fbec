//! `railgun track` and `railgun flush`: drive the real analytics client from the command
//! line, to smoke-test a deployment or to script tests.
//!
//! `track` records events exactly as an app would (validated, consent and sampling applied,
//! queued durably first, then uploaded); `flush` uploads what a state folder holds. Both
//! print what they queued, sent and still hold. Neither invents events: automatic session
//! events are off unless `--session` is given.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use railgun_core::analytics::{
    Analytics, Consent, FlushReport, Properties, UploadConfig, Uploader,
};
use railgun_core::clock;
use railgun_core::store::Store;
use serde_json::json;

use super::client_args::ClientArgs;
use super::CliResult;

/// Arguments of `railgun track`.
#[derive(Debug, clap::Args)]
pub struct TrackArgs {
    /// Server, app, channel, output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Folder of the client state (railgun.db with the queue).
    #[arg(long)]
    pub state: PathBuf,
    /// Event name.
    #[arg(long)]
    pub name: String,
    /// Properties as a JSON object of strings, numbers and booleans.
    #[arg(long)]
    pub props: Option<String>,
    /// How many events to record.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Set (and store) the consent first; default: the stored one, else granted.
    #[arg(long)]
    pub consent: Option<Consent>,
    /// Sampling rate 0-1 (default 1).
    #[arg(long, default_value_t = 1.0)]
    pub sample_rate: f64,
    /// App version on the events.
    #[arg(long, default_value = "0.0.0")]
    pub app_version: String,
    /// User id (default: the install id).
    #[arg(long)]
    pub user_id: Option<String>,
    /// Also emit session_start / session_end.
    #[arg(long)]
    pub session: bool,
    /// Log each event on stderr as `[Analytics] screen_view { screen_name: 'home' }`.
    #[arg(long)]
    pub debug: bool,
}

/// Arguments of `railgun flush`.
#[derive(Debug, clap::Args)]
pub struct FlushArgs {
    /// Base URL of the analytics server.
    #[arg(long)]
    pub url: String,
    /// Folder of the client state.
    #[arg(long)]
    pub state: PathBuf,
    /// Seconds to spend uploading at most.
    #[arg(long, default_value_t = 30)]
    pub deadline: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn print(json_out: bool, queued: u64, r: &FlushReport) {
    if json_out {
        println!(
            "{}",
            json!({
                "queued": queued,
                "sent": r.sent,
                "duplicates": r.duplicates,
                "rejected": r.rejected,
                "expired": r.expired,
                "held": r.held,
                "erasuresPending": r.erasures_pending,
                "nextAttemptAt": r.next_attempt_at.map(|t| t.to_rfc3339()),
                "error": r.last_error,
            })
        );
    } else {
        print!("queued {queued}, sent {}, held {}", r.sent, r.held);
        if r.rejected > 0 {
            print!(", rejected {}", r.rejected);
        }
        if r.erasures_pending > 0 {
            print!(", erasure requests pending {}", r.erasures_pending);
        }
        if let Some(e) = &r.last_error {
            print!(" (last error: {e})");
        }
        println!();
    }
}

/// Runs `railgun track` (synchronous: the client has its own threads and runtime).
pub fn run_track(a: TrackArgs) -> CliResult {
    let props: Properties = match &a.props {
        Some(p) => serde_json::from_str(p).map_err(|e| {
            format!("--props must be a JSON object of strings, numbers and booleans: {e}")
        })?,
        None => Properties::new(),
    };
    let store = Arc::new(Store::open(a.state.join("railgun.db"))?);
    let mut b = Analytics::builder()
        .app(&a.client.app)
        .version(&a.app_version)
        .channel(&a.client.channel)
        .url(&a.client.url)
        .store(store)
        .sample_rate(a.sample_rate)
        .default_consent(Consent::Granted)
        .sessions(a.session)
        .debug(a.debug)
        .upload_interval(None)
        .heartbeat_interval(None);
    if let Some(u) = &a.user_id {
        b = b.install_id(u);
    }
    let client = b.build()?;
    if let Some(c) = a.consent {
        client.set_consent(c)?;
    }
    let before = client.stats()?.recorded;
    for _ in 0..a.count {
        client.track(&a.name, props.clone())?;
    }
    let queued = client.stats()?.recorded - before;
    let report = client.flush()?;
    let last = client.shutdown()?;
    let report = FlushReport {
        sent: report.sent + last.sent,
        rejected: report.rejected + last.rejected,
        held: last.held,
        erasures_pending: last.erasures_pending,
        next_attempt_at: last.next_attempt_at.or(report.next_attempt_at),
        last_error: last.last_error.or(report.last_error),
        ..report
    };
    print(a.client.json, queued, &report);
    Ok(ExitCode::SUCCESS)
}

/// Runs `railgun flush`.
pub fn run_flush(a: FlushArgs) -> CliResult {
    let db = a.state.join("railgun.db");
    if !db.is_file() {
        return Err(format!("no client state at {}", db.display()).into());
    }
    let store = Arc::new(Store::open(db)?);
    let mut uploader = Uploader::new(
        &store,
        UploadConfig {
            url: Some(a.url),
            ..UploadConfig::default()
        },
        clock::system(),
    )?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(a.deadline);
    let report = uploader.upload(Some(deadline))?;
    print(a.json, 0, &report);
    Ok(ExitCode::SUCCESS)
}
