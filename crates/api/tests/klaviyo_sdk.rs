//! Klaviyo's official Python SDK (`klaviyo-api` from PyPI) against the real `catalogd` binary:
//! the acceptance test of the Klaviyo dialect (contracts/klaviyo.md).
//!
//! The test starts `catalogd serve` on a free port over a temporary SQLite file, then over a fresh
//! PostgreSQL database (`CATALOGD_TEST_PG`), makes a project and a key with `catalogd admin`,
//! installs the SDK into a virtualenv cached under `~/.cache/catalogd/` (outside the clone), and
//! runs `tests/klaviyo_sdk/sdk_check.py`, which must exit 0. Under `CI=true` every
//! step must work; elsewhere the test is skipped, with a message, when Python, venv or PyPI is
//! unavailable.

mod support;

use catalog_api::testing::Backend;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{admin_on, on_fresh_database, python_with, run_client, unavailable};
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/klaviyo_sdk/sdk_check.py");
/// The SDK release the check is written against; `KLAVIYO_SDK_SPEC` overrides it (e.g. to try a
/// newer one: `KLAVIYO_SDK_SPEC=klaviyo-api`).
const DEFAULT_SDK_SPEC: &str = "klaviyo-api==25.0.0";

/// The cached virtualenv's python with the SDK installed.
fn sdk_python() -> Result<PathBuf, String> {
    let spec = std::env::var("KLAVIYO_SDK_SPEC").unwrap_or_else(|_| DEFAULT_SDK_SPEC.to_owned());
    python_with(&[&spec], "klaviyo_api, openapi_client")
}

/// Runs the SDK script against a server on `database_url`, in `dir`.
fn check_sdk(python: &Path, dir: &Path, database_url: &str) {
    admin_on(dir, database_url, &["project", "create", "klaviyo-sdk"]);
    // The SDK needs catalogs:read/write; jobs:read lets the script wait for its set-up jobs.
    let created = admin_on(
        dir,
        database_url,
        &["key", "create", "--project", "klaviyo-sdk", "--scopes", "catalogs:read,catalogs:write,jobs:read"],
    );
    let token = created.lines().last().map(str::trim).expect("the token on the last line").to_owned();
    let mut client = Command::new(python);
    client.arg(SCRIPT).env("CATALOGD_TOKEN", &token);
    run_client(dir, database_url, &[], "the SDK script", &mut client);
}

/// The SDK's check on a fresh database of `backend`.
fn check_on(backend: Backend) {
    match sdk_python() {
        Ok(python) => on_fresh_database(backend, "klaviyo_sdk", |dir, url| check_sdk(&python, dir, url)),
        Err(why) => unavailable("Klaviyo SDK", &why),
    }
}

#[test]
fn klaviyo_python_sdk_works_against_catalogd_on_sqlite() {
    check_on(Backend::Sqlite);
}

#[test]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
fn klaviyo_python_sdk_works_against_catalogd_on_postgres() {
    check_on(Backend::Postgres);
}
