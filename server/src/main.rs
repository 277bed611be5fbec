//! `railgun`: the update/analytics server and the publisher's command-line tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use railgun_server::cli;

/// railgun: signed releases, phased rollout, analytics and flags for desktop apps.
#[derive(Debug, Parser)]
#[command(name = "railgun", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a signing key pair (NAME.key with mode 0600, NAME.pub).
    Keygen(cli::keygen::Args),
    /// Sign and publish releases.
    #[command(subcommand)]
    Release(cli::release::Command),
    /// Check a channel for an update, as a client would.
    Check(cli::check::Args),
    /// Run the server.
    Serve(Box<cli::serve::Args>),
    /// Check, download, verify and apply an update into an install root.
    Update(cli::update::Args),
    /// Switch an install root back to its previous version.
    Rollback(cli::update::RollbackArgs),
    /// Record analytics events as an app would (durably queued, then uploaded).
    Track(cli::track::TrackArgs),
    /// Upload the analytics events queued in a state folder.
    Flush(cli::track::FlushArgs),
    /// Publish, roll back and list the remote config revisions a server hosts.
    #[command(subcommand)]
    Config(cli::config::Command),
    /// Evaluate the remote config's flags, announcements and maintenance, as a client would.
    Flags(cli::flags::Args),
    /// Verify a Sigstore bundle for an artifact (offline).
    Verify(cli::verify::Args),
    /// Send realistic analytics batches to a server and report throughput and latency.
    Loadgen(cli::loadgen::Args),
    /// Run a whole staged rollout with simulated installs against an in-process server.
    Demo(cli::demo::Args),
    /// Export events, daily aggregates, rollouts and health reports as Parquet or NDJSON.
    Export(cli::export::Args),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    if !matches!(args.command, Command::Demo(_)) {
        cli::init_logging(); // the demo sets its own, quieter default
    }
    let result = match args.command {
        Command::Keygen(a) => cli::keygen::run(a),
        Command::Release(c) => cli::release::run(c),
        Command::Check(a) => cli::block_on(cli::check::run(a)),
        Command::Serve(a) => cli::block_on(cli::serve::run(*a)),
        Command::Update(a) => cli::block_on(cli::update::run(a)),
        Command::Rollback(a) => cli::update::run_rollback(a),
        Command::Track(a) => cli::track::run_track(a),
        Command::Flush(a) => cli::track::run_flush(a),
        Command::Config(c) => cli::block_on(cli::config::run(c)),
        Command::Flags(a) => cli::block_on(cli::flags::run(a)),
        Command::Verify(a) => cli::verify::run(a),
        Command::Loadgen(a) => cli::block_on(cli::loadgen::run(a)),
        Command::Demo(a) => cli::block_on(cli::demo::run(a)),
        Command::Export(a) => cli::block_on(cli::export::run(a)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", railgun_core::error::chain(&*e));
            ExitCode::FAILURE
        }
    }
}
