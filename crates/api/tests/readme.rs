//! The README's shell blocks, run in order in one bash session against the built binaries, from
//! an empty directory to a deleted item, so the README cannot drift from what the binaries do.
//!
//! What differs from a reader's run, and why:
//! - lines starting with `cargo ` (install, tests) are left out: the binaries under test stand in
//!   for `cargo install` and come first on `PATH`;
//! - the port: the blocks' `:8080` becomes a free port (`CATALOGD_LISTEN` and the URLs), since
//!   other tests and servers may hold 8080;
//! - `HOME` is the temporary directory, and no `CATALOGD_*` variable of the caller leaks in.
//!
//! `catalogctl` is taken from next to `catalogd` in the target directory (`cargo test --workspace`
//! builds both), else `CATALOGCTL_BIN`; when neither exists it is built into a target directory of
//! its own, as crates/client/tests/common builds `catalogd`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, temp_dir, BIN};

/// Failure guard for the whole script.
const GUARD: Duration = Duration::from_secs(180);

/// The fenced `sh` blocks of `markdown`, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```sh" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The script: every block but its `cargo` lines, on `port`; a server left running by a failing
/// script is stopped on exit.
fn script(blocks: &[String], port: u16) -> String {
    let mut script = String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for block in blocks {
        for line in block.lines().filter(|line| !line.trim_start().starts_with("cargo ")) {
            script.push_str(&line.replace(":8080", &format!(":{port}")));
            script.push('\n');
        }
    }
    // The README ends by stopping the server; its exit is waited for here, so that the trap (for
    // a script that fails half-way) finds nothing left to stop.
    script.push_str("wait\n");
    script
}

fn catalogctl() -> PathBuf {
    if let Some(path) = std::env::var_os("CATALOGCTL_BIN") {
        return PathBuf::from(path);
    }
    let beside = Path::new(BIN).with_file_name("catalogctl");
    if beside.exists() {
        return beside;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let own_target = workspace.join("target").join("readme-test");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "-p", "catalog-client", "--bin", "catalogctl", "--target-dir"])
        .arg(&own_target)
        .status()
        .unwrap();
    assert!(built.success(), "building catalogctl failed");
    own_target.join("debug").join("catalogctl")
}

#[test]
fn the_readme_quick_start_runs_to_a_deleted_item() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let blocks = shell_blocks(&readme);
    assert!(blocks.len() >= 3, "install, quick start and CLI quick start: {blocks:?}");
    let port = free_port();
    let script = script(&blocks, port);

    let dir = temp_dir("readme");
    let catalogctl = catalogctl();
    let path = std::env::join_paths(
        [Path::new(BIN).parent().unwrap().to_owned(), catalogctl.parent().unwrap().to_owned()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .env("PATH", path)
        .env("HOME", &dir)
        .env("CATALOGD_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CATALOGD_") && name != "CATALOGD_LISTEN" {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().unwrap();
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let mut output = String::new();
    stdout.read_to_string(&mut output).unwrap();
    let deadline = Instant::now() + GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the README script did not finish; stdout so far:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let errors = errors.join().unwrap();
    let report = format!("--- script\n{script}\n--- stdout\n{output}\n--- stderr\n{errors}");
    assert!(status.success(), "the README script failed ({status})\n{report}");

    // The delete's job id came from its answer, and the long poll saw that job complete.
    let job = output
        .split(r#"{"job":{"id":"#)
        .skip(1)
        .find_map(|rest| rest.split_once(r#","kind":"item_bulk_delete""#))
        .and_then(|(id, _)| id.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no bulk-delete answer\n{report}"));
    let watched = format!(r#"{{"id":{job},"kind":"item_bulk_delete","status":"completed""#);
    assert!(output.contains(&watched), "{watched}\n{report}");
    assert!(output.contains(r#""code":"item_not_found""#), "{report}");
    assert!(output.contains("no items"), "{report}");
    assert!(errors.contains("method=POST route=/v1/catalogs/{catalog}/items/bulk-delete status=202"), "{report}");
    assert!(errors.contains("catalogd stopped"), "the server was stopped as the README says\n{report}");
    let _ = std::fs::remove_dir_all(dir);
}
