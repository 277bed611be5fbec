//! A test that re-runs its own test binary as a child process (to kill it mid-write, or to
//! watch it exit): the child's command and its standard output as lines on a channel.
//!
//! One file for both crates' suites: the core crate's `tests/it` declares it as a module and
//! the server's `server/tests/it/main.rs` includes it by `#[path]` (two test binaries of two
//! crates, with no crate between them that both could depend on for test code).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::mpsc::Receiver;

/// The libtest name of test `name` in the module at `module_path` (pass `module_path!()`), for
/// tests that re-run this binary as a child with `--exact`: `module::name`, no crate prefix.
pub fn child_test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    }
}

/// This test binary, to run only test `name` of the module at `module_path` (pass
/// `module_path!()`), its output not captured (the caller sets its environment and pipes).
pub fn child_command(module_path: &str, name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the test binary"));
    c.args([
        "--exact",
        child_test_name(module_path, name).as_str(),
        "--nocapture",
        "--test-threads=1",
    ]);
    c
}

/// The child's standard output (piped; taken here) as lines on a channel, read by a thread:
/// the test receives with a deadline, so a child that hangs fails the test instead of hanging
/// it.
pub fn stdout_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
