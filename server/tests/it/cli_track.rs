//! `railgun track` through the real binary against the real server: `--debug` prints each
//! event in the specification's form (`[Analytics] screen_view { screen_name: 'home' }`) on
//! stderr, and the events arrive.

use std::process::Output;

use crate::support::{within, TestServer};

async fn track(server: &TestServer, state: &std::path::Path, args: &[&str]) -> Output {
    let out = within(
        "railgun track",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_railgun"))
            .args([
                "track",
                "--url",
                &server.url(),
                "--app",
                "rail-gun",
                "--state",
            ])
            .arg(state)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run railgun track");
    assert!(
        out.status.success(),
        "railgun track {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_debug_prints_the_specifications_line_and_the_events_arrive() {
    let server = TestServer::start(chrono::Utc::now()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let out = track(
        &server,
        dir.path(),
        &[
            "--name",
            "screen_view",
            "--props",
            r#"{"screen_name":"home"}"#,
            "--debug",
            "--json",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == "[Analytics] screen_view { screen_name: 'home' }"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (report["queued"].as_u64(), report["sent"].as_u64()),
        (Some(1), Some(1))
    );

    // Without properties: the name alone; with --session the session events too.
    let out = track(
        &server,
        dir.path(),
        &["--name", "message_sent", "--session", "--debug"],
    )
    .await;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("[Analytics]"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "[Analytics] session_start",
            "[Analytics] message_sent",
            "[Analytics] session_end"
        ]
    );

    // Without --debug nothing of the event is printed.
    let out = track(&server, dir.path(), &["--name", "message_sent"]).await;
    assert!(!String::from_utf8_lossy(&out.stderr).contains("[Analytics]"));
}
