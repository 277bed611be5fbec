//! `railgun export`: writes events, daily aggregates, rollouts and health reports as
//! Hive-partitioned Parquet (or NDJSON) to a folder or an object store, incrementally
//! (`docs/export.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;

use super::CliResult;
use crate::export::{self, ExportOptions, Format};

/// Arguments of `railgun export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database: `sqlite:PATH` or `postgres://user@host/db` (default: SQLite in the data dir).
    #[arg(long, env = "RAILGUN_DATABASE_URL", conflicts_with = "data_dir")]
    pub database: Option<String>,
    /// Folder of the server's default SQLite database (`DATA_DIR/analytics.db`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Destination: a folder, file://…, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or
    /// az://CONTAINER/PREFIX (credentials from the environment).
    #[arg(long, value_name = "DEST")]
    pub out: String,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: Format,
    /// First day (UTC, YYYY-MM-DD) of a date-range export (no watermark is used).
    #[arg(long, value_name = "DATE")]
    pub from: Option<NaiveDate>,
    /// Last day (UTC, inclusive) of a date-range export.
    #[arg(long, value_name = "DATE")]
    pub to: Option<NaiveDate>,
    /// Tables to export, comma-separated (default: all): events, daily_active_users,
    /// sessions, feature_usage, rollouts, rollout_decisions, health_reports.
    #[arg(long, value_name = "LIST")]
    pub tables: Option<String>,
    /// Make retention keep what this destination has not received yet (as a scheduled
    /// export in `railgun serve` does).
    #[arg(long, conflicts_with = "release_retention")]
    pub hold_retention: bool,
    /// Stop making retention wait for this destination.
    #[arg(long)]
    pub release_retention: bool,
    /// Drop this destination's watermarks (the next export to it starts from the
    /// beginning) and exit.
    #[arg(long)]
    pub forget: bool,
    /// Rows per incremental chunk (memory and file size).
    #[arg(long, default_value_t = export::DEFAULT_CHUNK_ROWS, hide = true)]
    pub chunk_rows: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(a: Args) -> CliResult {
    let database = match (a.database, a.data_dir) {
        (Some(d), _) => d,
        (None, dir) => {
            let file = dir
                .unwrap_or_else(|| PathBuf::from("railgun-data"))
                .join("analytics.db");
            // Opening a missing file would create an empty store and export nothing.
            if !file.is_file() {
                return Err(format!(
                    "no database at {} (give --data-dir or --database)",
                    file.display()
                )
                .into());
            }
            format!("sqlite:{}", file.display())
        }
    };
    let tables = match &a.tables {
        Some(list) => export::parse_tables(list)?,
        None => Vec::new(),
    };
    if let (Some(from), Some(to)) = (a.from, a.to) {
        if from > to {
            return Err(export::ExportError::FromAfterTo { from, to }.into());
        }
    }
    let store = crate::store::open(&database).await?;
    if a.forget {
        let dest = export::dest::open(&a.out)?;
        let had = store.export_forget(dest.id.clone()).await?;
        println!(
            "{}",
            if had {
                format!("forgot the watermarks of {}", dest.id)
            } else {
                format!("{} had no watermarks", dest.id)
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let opts = ExportOptions {
        format: a.format,
        tables,
        from: a.from,
        to: a.to,
        chunk_rows: a.chunk_rows.max(1),
        hold_retention: match (a.hold_retention, a.release_retention) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        ..ExportOptions::new(a.out)
    };
    let report = export::run(&store, &opts).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for t in report
            .tables
            .iter()
            .filter(|t| t.files > 0 || t.removed > 0)
        {
            println!(
                "{:<20} {:>12} rows {:>6} files {:>14} bytes",
                t.table, t.rows, t.files, t.bytes
            );
        }
        println!("{}", report.summary);
    }
    Ok(ExitCode::SUCCESS)
}
