//! Bloomreach Engagement's Python SDK (`exponea-python-sdk` from PyPI, unchanged) against the real
//! `catalogd` binary on SQLite and on a fresh PostgreSQL database: every catalog call it has
//! (`create_catalog`, `get_catalog_name`, `get_catalog_items`, `create_catalog_item`,
//! `update_catalog_item`, `delete_catalog_item`, `delete_catalog_items`, `update_catalog_name`,
//! `delete_catalog`), run by `tests/bloomreach_sdk/sdk_check.py`, which must exit 0.
//!
//! The SDK is installed into a virtualenv cached under `~/.cache/catalogd/` (outside the clone),
//! pinned. Under `CI=true` every step must work; elsewhere the test is skipped, with a message,
//! when Python, venv or PyPI is unavailable.

mod support;

use catalog_api::testing::Backend;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{admin_on, cache_root, describe, on_fresh_database, run, run_client, unavailable};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bloomreach_sdk/sdk_check.py");
/// The SDK release the check is written against (its latest on PyPI).
const SDK_SPEC: &str = "exponea-python-sdk==0.2.0";
/// The SDK imports `requests` without declaring it, so the test pins one.
const REQUESTS_SPEC: &str = "requests==2.32.3";

/// The virtualenv's python with the SDK installed, creating or repairing the cached venv.
fn sdk_python() -> Result<PathBuf, String> {
    let slug: String = SDK_SPEC.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let venv = cache_root().join(format!("venv-{slug}-requests"));
    let python = venv.join("bin").join("python");
    let has_sdk = |python: &Path| {
        run(Command::new(python).args(["-c", "import exponea_python_sdk"])).is_ok_and(|o| o.status.success())
    };
    if python.exists() && has_sdk(&python) {
        return Ok(python);
    }
    let created = run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !created.status.success() {
        return Err(format!("python3 -m venv failed: {}", describe(&created)));
    }
    let installed = run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--timeout",
        "60",
        SDK_SPEC,
        REQUESTS_SPEC,
    ]))
    .map_err(|e| format!("cannot run pip: {e}"))?;
    if !installed.status.success() || !has_sdk(&python) {
        return Err(format!("pip install {SDK_SPEC} {REQUESTS_SPEC} failed: {}", describe(&installed)));
    }
    Ok(python)
}

/// Runs the SDK script against a server on `database_url`, in `dir`.
fn check_sdk(python: &Path, dir: &Path, database_url: &str) {
    admin_on(dir, database_url, &["project", "create", "bloomreach-sdk"]);
    let created = admin_on(
        dir,
        database_url,
        &["key", "create", "--project", "bloomreach-sdk", "--scopes", "catalogs:read,catalogs:write"],
    );
    let token = created.lines().last().map(str::trim).expect("the token on the last line").to_owned();
    // "created key <id> for project ...": Bloomreach's Basic auth pairs the key id with the secret.
    let key_id = created
        .lines()
        .find_map(|line| line.strip_prefix("created key ").and_then(|rest| rest.split_whitespace().next()))
        .expect("the key id")
        .to_owned();
    let mut client = Command::new(python);
    client
        .arg(SCRIPT)
        .env("CATALOGD_PROJECT", "bloomreach-sdk")
        .env("CATALOGD_KEY_ID", &key_id)
        .env("CATALOGD_TOKEN", &token);
    run_client(dir, database_url, &[], "the SDK script", &mut client);
}

/// The SQLite and PostgreSQL tests share the cached virtualenv, which one install at a time fills.
static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sdk_python_once() -> Result<PathBuf, String> {
    let _installing = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    sdk_python()
}

/// The SDK's check on a fresh database of `backend`.
fn check_on(backend: Backend) {
    match sdk_python_once() {
        Ok(python) => on_fresh_database(backend, "bloomreach_sdk", |dir, url| check_sdk(&python, dir, url)),
        Err(why) => unavailable("Exponea SDK", &why),
    }
}

#[test]
fn exponea_python_sdk_works_against_catalogd_on_sqlite() {
    check_on(Backend::Sqlite);
}

#[test]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
fn exponea_python_sdk_works_against_catalogd_on_postgres() {
    check_on(Backend::Postgres);
}
