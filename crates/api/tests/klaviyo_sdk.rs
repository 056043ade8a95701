//! Klaviyo's official Python SDK (`klaviyo-api` from PyPI) against the real `catalogd` binary:
//! the acceptance test of the Klaviyo dialect (contracts/klaviyo.md).
//!
//! The test starts `catalogd serve` on a free port over a temporary SQLite file, then over a fresh
//! PostgreSQL database (`CATALOGD_TEST_PG`), makes a project and a key with `catalogd admin`, installs the SDK into a virtualenv cached under Cargo's target
//! directory, and runs `tests/klaviyo_sdk/sdk_check.py`, which must exit 0. Under `CI=true` every
//! step must work; elsewhere the test is skipped, with a message, when Python, venv or PyPI is
//! unavailable.

mod support;

use catalog_api::testing::Backend;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{admin_on, describe, on_fresh_database, run, run_client, unavailable};
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/klaviyo_sdk/sdk_check.py");
/// The SDK release the check is written against; `KLAVIYO_SDK_SPEC` overrides it (e.g. to try a
/// newer one: `KLAVIYO_SDK_SPEC=klaviyo-api`).
const DEFAULT_SDK_SPEC: &str = "klaviyo-api==25.0.0";

/// The virtualenv's python with the SDK installed, creating or repairing the cached venv.
fn sdk_python() -> Result<PathBuf, String> {
    let spec = std::env::var("KLAVIYO_SDK_SPEC").unwrap_or_else(|_| DEFAULT_SDK_SPEC.to_owned());
    let slug: String = spec.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("klaviyo-sdk-venv-{slug}"));
    let python = venv.join("bin").join("python");
    let has_sdk = |python: &Path| {
        run(Command::new(python).args(["-c", "import klaviyo_api, openapi_client"])).is_ok_and(|o| o.status.success())
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
        &spec,
    ]))
    .map_err(|e| format!("cannot run pip: {e}"))?;
    if !installed.status.success() || !has_sdk(&python) {
        return Err(format!("pip install {spec} failed: {}", describe(&installed)));
    }
    Ok(python)
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

/// The SQLite and PostgreSQL tests share the cached virtualenv, which one install at a time fills.
static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sdk_python_once() -> Result<PathBuf, String> {
    let _installing = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    sdk_python()
}

/// The SDK's check on a fresh database of `backend`.
fn check_on(backend: Backend) {
    match sdk_python_once() {
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
