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
use support::{admin_on, on_fresh_database, python_with, run_client, unavailable};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bloomreach_sdk/sdk_check.py");
/// The SDK release the check is written against (its latest on PyPI).
const SDK_SPEC: &str = "exponea-python-sdk==0.2.0";
/// The SDK imports `requests` without declaring it, so the test pins one.
const REQUESTS_SPEC: &str = "requests==2.32.3";

/// The cached virtualenv's python with the SDK installed.
fn sdk_python() -> Result<PathBuf, String> {
    python_with(&[SDK_SPEC, REQUESTS_SPEC], "exponea_python_sdk")
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

/// The SDK's check on a fresh database of `backend`.
fn check_on(backend: Backend) {
    match sdk_python() {
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
