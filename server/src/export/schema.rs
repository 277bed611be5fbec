//! The exported tables: their columns, types and meaning (`docs/export.md` prints the same
//! list), and their Arrow schemas.
//!
//! Types are the ones BigQuery and Snowflake load from Parquet without a conversion: UTF-8
//! strings, 64-bit integers and floats, UTC timestamps in microseconds, dates. Event
//! properties stay one JSON string column (a warehouse parses it with `JSON_VALUE` /
//! `PARSE_JSON`), so a new property never changes the schema.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::store::export::{Daily, Stream};

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 string.
    Text,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Float,
    /// UTC timestamp, microseconds (the database keeps milliseconds).
    Timestamp,
    /// Calendar date (the database keeps days since 1970-01-01).
    Date,
}

impl Kind {
    /// The type name in `docs/export.md` (Parquet logical type).
    pub fn doc_name(self) -> &'static str {
        match self {
            Kind::Text => "STRING",
            Kind::Int => "INT64",
            Kind::Float => "DOUBLE",
            Kind::Timestamp => "TIMESTAMP(MICROS, UTC)",
            Kind::Date => "DATE",
        }
    }
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Storage type.
    pub kind: Kind,
    /// Whether it may be null.
    pub nullable: bool,
    /// What it means.
    pub doc: &'static str,
}

const fn col(name: &'static str, kind: Kind, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        nullable: false,
        doc,
    }
}

const fn opt(name: &'static str, kind: Kind, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        nullable: true,
        doc,
    }
}

/// How a table is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Append-only rows, written once each, by export key (one file per chunk and day).
    Incremental(Stream),
    /// A rollup: one file per day, rewritten whole when the day changes.
    Daily(Daily),
    /// Every row at once, one file rewritten on each change (no partition).
    Snapshot,
}

/// One exported table.
#[derive(Debug)]
pub struct Table {
    /// Folder and table name.
    pub name: &'static str,
    /// How it is exported.
    pub mode: Mode,
    /// The columns, in file order.
    pub columns: &'static [Column],
    /// The column whose UTC day is the `date=` partition (`None`: not partitioned).
    pub partition: Option<usize>,
    /// What one row is.
    pub doc: &'static str,
}

impl Table {
    /// The Arrow schema of its files.
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let t = match c.kind {
                    Kind::Text => DataType::Utf8,
                    Kind::Int => DataType::Int64,
                    Kind::Float => DataType::Float64,
                    Kind::Timestamp => {
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                    }
                    Kind::Date => DataType::Date32,
                };
                Field::new(c.name, t, c.nullable)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Whether its files live under `date=YYYY-MM-DD/` folders.
    pub fn partitioned(&self) -> bool {
        self.partition.is_some()
    }
}

/// Every exported table, in export order.
pub static TABLES: &[Table] = &[
    Table {
        name: "events",
        mode: Mode::Incremental(Stream::Events),
        partition: Some(5),
        doc: "one accepted analytics event (duplicates were dropped at ingest)",
        columns: &[
            col("event_id", Kind::Text, "event id (UUID); unique"),
            col("event_name", Kind::Text, "event name, `^[a-z][a-z0-9_]{0,63}$`"),
            col("category", Kind::Text, "session | navigation | feature | update | error | custom"),
            col("user_id", Kind::Text, "hashed install id (never a raw machine id)"),
            col("session_id", Kind::Text, "session id (UUID)"),
            col("event_timestamp", Kind::Timestamp, "when it happened, corrected for client clock skew; its UTC day is the `date` partition"),
            col("app_version", Kind::Text, "app version"),
            col("platform", Kind::Text, "darwin | win32 | linux"),
            col("arch", Kind::Text, "x64 | arm64 | ia32"),
            col("channel", Kind::Text, "release channel"),
            opt("properties", Kind::Text, "properties as a JSON object text (values string, number or boolean; e-mail and IP-like values removed at ingest); null when none"),
            opt("duration_ms", Kind::Float, "duration in milliseconds (`session_end`, timers); null when none"),
            col("sequence", Kind::Int, "position of the event in its session"),
            col("sample_rate", Kind::Float, "the client's sample rate (0, 1]; weight a row by 1 / sample_rate to estimate the whole population"),
            col("received_at", Kind::Timestamp, "when the server accepted it"),
        ],
    },
    Table {
        name: "daily_active_users",
        mode: Mode::Daily(Daily::ActiveUsers),
        partition: Some(0),
        doc: "one day: distinct active users (what `GET /analytics/dau` answers)",
        columns: &[
            col("day", Kind::Date, "the UTC day (also the `date` partition)"),
            col("active_users", Kind::Int, "distinct users with an event that day (raw)"),
            col("active_users_estimate", Kind::Float, "the same, each user weighted by 1 / sample_rate"),
        ],
    },
    Table {
        name: "sessions",
        mode: Mode::Daily(Daily::Sessions),
        partition: Some(0),
        doc: "one session that ended (`session_end` with a duration) on that day",
        columns: &[
            col("day", Kind::Date, "the UTC day the session ended (also the `date` partition)"),
            col("session_id", Kind::Text, "session id"),
            col("user_id", Kind::Text, "hashed install id"),
            col("duration_ms", Kind::Float, "session length in milliseconds (the longest `session_end` of it that day)"),
            col("sample_rate", Kind::Float, "the client's sample rate"),
        ],
    },
    Table {
        name: "feature_usage",
        mode: Mode::Daily(Daily::FeatureUsage),
        partition: Some(0),
        doc: "one event name used by one user on one day (what `GET /analytics/features` sums)",
        columns: &[
            col("day", Kind::Date, "the UTC day (also the `date` partition)"),
            col("event_name", Kind::Text, "event name"),
            col("user_id", Kind::Text, "hashed install id"),
            col("events", Kind::Int, "events of that name by that user that day"),
            col("sample_rate", Kind::Float, "the client's sample rate"),
        ],
    },
    Table {
        name: "rollouts",
        mode: Mode::Snapshot,
        partition: None,
        doc: "one rollout of a release on a channel, as it is at export time",
        columns: &[
            col("app", Kind::Text, "app"),
            col("channel", Kind::Text, "channel"),
            col("version", Kind::Text, "the release rolled out"),
            col("percentage", Kind::Float, "share of installs offered the release, 0-100"),
            col("status", Kind::Text, "active | halted | complete"),
            opt("fallback_version", Kind::Text, "release served outside the rollout (or to all when halted)"),
            col("rolled_back", Kind::Int, "1 when rolled back (the channel serves the fallback), else 0"),
            col("policy", Kind::Text, "the rollout policy as JSON text (stages, stageHours, maxErrorRate, maxCrashRate, minInstalls)"),
            col("started_at", Kind::Timestamp, "start of the rollout"),
            col("stage_started_at", Kind::Timestamp, "start of the current stage"),
            col("updated_at", Kind::Timestamp, "last change"),
        ],
    },
    Table {
        name: "rollout_decisions",
        mode: Mode::Incremental(Stream::Decisions),
        partition: Some(1),
        doc: "one decision of the rollout engine or an admin, with the numbers it was taken on",
        columns: &[
            col("decision_id", Kind::Text, "decision id (UUID); unique"),
            col("decided_at", Kind::Timestamp, "when (its UTC day is the `date` partition)"),
            col("app", Kind::Text, "app"),
            col("channel", Kind::Text, "channel"),
            col("version", Kind::Text, "release of the rollout"),
            col("action", Kind::Text, "start | advance | halt | resume | set_percentage | rollback | complete | low_adoption | high_error_rate"),
            col("actor", Kind::Text, "engine | admin"),
            col("from_percentage", Kind::Float, "percentage before"),
            col("to_percentage", Kind::Float, "percentage after"),
            col("installs", Kind::Int, "distinct installs reporting at the time"),
            col("error_rate", Kind::Float, "share of installs with errors (0-1)"),
            col("error_lower", Kind::Float, "Wilson 95 % lower bound of the error rate"),
            col("error_upper", Kind::Float, "Wilson 95 % upper bound of the error rate"),
            col("crash_rate", Kind::Float, "share of installs with crashes (0-1)"),
            col("crash_lower", Kind::Float, "Wilson 95 % lower bound of the crash rate"),
            col("crash_upper", Kind::Float, "Wilson 95 % upper bound of the crash rate"),
            col("reason", Kind::Text, "why, in words"),
        ],
    },
    Table {
        name: "health_reports",
        mode: Mode::Incremental(Stream::HealthReports),
        partition: Some(13),
        doc: "one health report of one install for one period (counts only)",
        columns: &[
            col("report_id", Kind::Text, "report id (UUID); unique"),
            col("machine_id", Kind::Text, "hashed install id"),
            col("app", Kind::Text, "app"),
            col("version", Kind::Text, "version that was running"),
            col("channel", Kind::Text, "channel"),
            col("platform", Kind::Text, "platform"),
            col("arch", Kind::Text, "arch"),
            col("period_start", Kind::Timestamp, "start of the period counted"),
            col("period_end", Kind::Timestamp, "end of the period counted"),
            col("sessions", Kind::Int, "sessions in the period"),
            col("errors", Kind::Int, "errors in the period"),
            col("crashes", Kind::Int, "crashes in the period (boot reverts included)"),
            col("boot_reverts", Kind::Int, "boot-guard reverts in the period"),
            col("received_at", Kind::Timestamp, "when the server accepted it (its UTC day is the `date` partition)"),
            opt("sessions_ended_ok", Kind::Int, "sessions of the period that ended `ok` (`sessionEnds`); null when the report had no `sessionEnds`"),
            opt("sessions_ended_errored", Kind::Int, "sessions that ended `errored`; null as above"),
            opt("sessions_ended_crashed", Kind::Int, "sessions that ended `crashed`; null as above"),
            opt("sessions_ended_abnormal", Kind::Int, "sessions that ended `abnormal` (never ended, no crash recorded); null as above"),
        ],
    },
];

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// The names of every table, comma-separated (error messages, `--help`).
pub fn names() -> String {
    TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::export::{daily_query, stream_width};

    #[test]
    fn docs_export_md_lists_every_table_and_column_with_its_type() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/export.md"))
                .expect("docs/export.md");
        for t in TABLES {
            let start = doc
                .find(&format!("### `{}`", t.name))
                .unwrap_or_else(|| panic!("docs/export.md has no section for {}", t.name));
            let section = &doc[start..];
            for c in t.columns {
                let ty = match c.kind {
                    Kind::Timestamp => "TIMESTAMP (µs, UTC)",
                    k => k.doc_name(),
                };
                assert!(
                    section.contains(&format!("| `{}` | {ty} |", c.name)),
                    "docs/export.md: {}.{} ({ty}) is missing",
                    t.name,
                    c.name
                );
            }
        }
    }

    #[test]
    fn every_table_has_the_width_its_store_query_selects() {
        for t in TABLES {
            let width = match t.mode {
                Mode::Incremental(s) => stream_width(s),
                Mode::Daily(d) => daily_query(d).2,
                Mode::Snapshot => t.columns.len(),
            };
            assert_eq!(width, t.columns.len(), "{}", t.name);
            if let Some(p) = t.partition {
                assert!(
                    matches!(t.columns[p].kind, Kind::Timestamp | Kind::Date),
                    "{}",
                    t.name
                );
            }
        }
    }
}
