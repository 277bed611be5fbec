//! No test passes by skipping in CI: this binary, re-run as a child on one PostgreSQL variant
//! without `RAILGUN_TEST_DATABASE_URL` and on one browser test without Chromium, reports a
//! failure under `RAILGUN_REQUIRE_ALL=1` (what `.ci/run` sets) and a SKIP line otherwise
//! (a developer's partial run).

use std::process::{Command, Output};

/// Runs test `name` of this binary alone, with `RAILGUN_REQUIRE_ALL` set to `require_all`
/// (or unset), after `prepare` adjusted the child's environment.
fn run(name: &str, require_all: Option<&str>, prepare: impl Fn(&mut Command)) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env_remove("RAILGUN_REQUIRE_ALL");
    if let Some(v) = require_all {
        cmd.env("RAILGUN_REQUIRE_ALL", v);
    }
    prepare(&mut cmd);
    cmd.output().expect("run the test binary")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The child ran exactly the one test (a renamed test must not make this pass vacuously).
fn ran_one(out: &Output, outcome: &str) -> bool {
    text(out).contains(&format!(
        "test result: {outcome}. {}",
        if outcome == "ok" {
            "1 passed"
        } else {
            "0 passed; 1 failed"
        }
    ))
}

/// Test `name` without what `remove` takes away: fails saying `strict` under
/// `RAILGUN_REQUIRE_ALL=1`, passes saying `relaxed` without it.
fn fails_only_when_required(
    name: &str,
    remove: impl Fn(&mut Command),
    strict: &str,
    relaxed: &str,
) {
    let out = run(name, Some("1"), &remove);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(ran_one(&out, "FAILED"), "{}", text(&out));
    assert!(text(&out).contains(strict), "{}", text(&out));

    let out = run(name, None, &remove);
    assert!(out.status.success(), "{}", text(&out));
    assert!(ran_one(&out, "ok"), "{}", text(&out));
    assert!(text(&out).contains(relaxed), "{}", text(&out));
}

#[test]
fn a_postgresql_variant_without_its_database_fails_under_require_all_and_skips_otherwise() {
    fails_only_when_required(
        "analytics_suite::postgres::duplicate_batches_are_counted_once",
        |c| {
            c.env_remove("RAILGUN_TEST_DATABASE_URL");
        },
        "RAILGUN_REQUIRE_ALL=1",
        "SKIP: PostgreSQL",
    );
}

#[test]
fn a_browser_test_without_chromium_fails_under_require_all_and_skips_otherwise() {
    let empty = tempfile::tempdir().expect("tmp");
    fails_only_when_required(
        "dashboard::page_says_when_the_server_cannot_be_reached",
        |c| {
            c.env_remove("RAILGUN_CHROMIUM").env("PATH", empty.path());
        },
        "no Chromium binary",
        "SKIP: ",
    );
}
