//! `railgun demo`: a whole staged rollout on one machine (see [`crate::demo`]), with
//! progress bars on a terminal, then the summary table (or one JSON document with `--json`)
//! and the dashboard URL; `--keep` leaves the server running until Ctrl-C.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};

use super::CliResult;
use crate::demo::{self, DemoOptions, NoProgress, Progress};

/// Arguments of `railgun demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Simulated installs.
    #[arg(long, default_value_t = 2000)]
    pub installs: usize,
    /// Make 0.2.0 crash often: the rollout engine halts it and the fallback is served.
    #[arg(long)]
    pub bad_release: bool,
    /// Leave the server running (and the temporary folder) until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Seed of the simulation (install ids, sessions, errors, crashes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Launches running at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Analytics sampling rate (0–1).
    #[arg(long, default_value_t = 0.2)]
    pub sample_rate: f64,
    /// Work in this folder (kept) instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Let every simulated client load the whole system trust store (slow; see below).
    #[arg(long)]
    pub system_roots: bool,
}

/// System CA bundles, one of which gives the demo its single root.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The simulated installs talk plain HTTP to loopback, but each client component of each
/// simulated launch (update check, download, analytics uploader, health sender) builds its
/// own HTTP client, and each build parses the whole system trust store: ~60 % of the demo's
/// CPU time at 10 000 launches. A real app pays this once per component per process. So,
/// unless `--system-roots`, the demo points `SSL_CERT_FILE` at one root copied from the
/// system bundle and `SSL_CERT_DIR` at an empty folder, for this process only. Nothing the
/// demo does uses TLS. Returns the folder to delete afterwards.
fn use_single_root() -> Option<PathBuf> {
    let bundle = CA_BUNDLES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())?;
    let start = bundle.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = start + bundle[start..].find(end_marker)? + end_marker.len();
    let dir = std::env::temp_dir().join(format!("railgun-demo-roots-{}", std::process::id()));
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).ok()?;
    let file = dir.join("root.pem");
    std::fs::write(&file, format!("{}\n", &bundle[start..end])).ok()?;
    // Set before any HTTP client exists, while no other thread reads the environment.
    std::env::set_var("SSL_CERT_FILE", &file);
    std::env::set_var("SSL_CERT_DIR", &certs);
    Some(dir)
}

/// Progress bars on stderr.
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn phase(&self, label: &str, total: u64) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:48} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }
    fn inc(&self) {
        if let Some(b) = &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
            b.inc(1);
        }
    }
    fn done(&self, summary: &str) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish_with_message(summary.to_string());
        }
    }
}

/// Logs warnings only (`RUST_LOG` still wins): the bars and the table are the output.
fn init_quiet_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(text.as_bytes())
}

/// Runs the demo.
pub async fn run(args: Args) -> CliResult {
    init_quiet_logging();
    let roots = if args.system_roots {
        None
    } else {
        use_single_root()
    };
    let opts = DemoOptions {
        installs: args.installs,
        bad_release: args.bad_release,
        seed: args.seed,
        concurrency: args.concurrency,
        sample_rate: args.sample_rate,
        work_dir: args.dir.clone(),
    };
    let progress: Arc<dyn Progress> = if std::io::stderr().is_terminal() && !args.json {
        Arc::new(Bars {
            bar: Mutex::new(None),
        })
    } else {
        Arc::new(NoProgress)
    };
    let result = demo::run(&opts, progress).await;
    if let Some(dir) = roots {
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut d = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d.report)?);
    } else {
        print!("{}", d.report.table());
    }
    if args.keep {
        d.work.keep();
        let tokens = d.work.path().join("tokens.env");
        write_private(
            &tokens,
            &format!(
                "RAILGUN_URL={}\nRAILGUN_READ_TOKEN={}\nRAILGUN_ADMIN_TOKEN={}\n",
                d.report.url, d.read_token, d.admin_token
            ),
        )?;
        eprintln!(
            "server running at {} (tokens in {}, data in {}); Ctrl-C stops it",
            d.report.url,
            tokens.display(),
            d.report.work_dir
        );
        tokio::signal::ctrl_c().await?;
    }
    d.server.stop().await?;
    let ok = d.report.verification.all_verified && d.report.launch_failures == 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
