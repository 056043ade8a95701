//! Klaviyo's official Node SDK (`klaviyo-api` from npm, pinned) against the real `catalogd`
//! binary, on SQLite and on PostgreSQL: for every job type catalogd serves, create, list with a
//! filter following the cursor, and get with `include`, through an API-key session and an OAuth
//! session (`tests/klaviyo_node_sdk/sdk_check.js`, which must exit 0).
//!
//! The SDK is installed with npm into a directory cached outside the clone (`~/.cache/catalogd/`,
//! `support::node_modules_with`), keyed by its package.json. Under `CI=true` every step must work; elsewhere the test is
//! skipped, with a message, when Node.js, npm or the registry is unavailable.

mod support;

use catalog_api::testing::Backend;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{admin_on, node_modules_with, on_fresh_database, run_client, unavailable};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/klaviyo_node_sdk/sdk_check.js");
/// The SDK release the check is written against (its API revision is 2026-07-15, the revision of
/// the contract's OpenAPI slices).
const SDK_VERSION: &str = "23.0.0";

/// The `node_modules` holding the pinned SDK, installed into the cache when it is not there.
fn sdk_modules() -> Result<PathBuf, String> {
    let manifest = format!(
        "{{\"name\": \"catalogd-klaviyo-node-sdk-check\", \"private\": true, \
         \"dependencies\": {{\"klaviyo-api\": \"{SDK_VERSION}\"}}}}\n"
    );
    node_modules_with("klaviyo-node-sdk", manifest.as_bytes(), &["--ignore-scripts"])
}

/// Runs the SDK script against a server on `database_url`, in `dir`.
fn check_sdk(modules: &Path, dir: &Path, database_url: &str) {
    admin_on(dir, database_url, &["project", "create", "klaviyo-node-sdk"]);
    let created = admin_on(
        dir,
        database_url,
        &["key", "create", "--project", "klaviyo-node-sdk", "--scopes", "catalogs:read,catalogs:write"],
    );
    let token = created.lines().last().map(str::trim).expect("the token on the last line").to_owned();
    let mut client = Command::new("node");
    client.arg(SCRIPT).env("NODE_PATH", modules).env("CATALOGD_TOKEN", &token);
    run_client(dir, database_url, &[], "the Node SDK script", &mut client);
}

/// The SDK's check on a fresh database of `backend`.
fn check_on(backend: Backend) {
    match sdk_modules() {
        Ok(modules) => on_fresh_database(backend, "klaviyo_node_sdk", |dir, url| check_sdk(&modules, dir, url)),
        Err(why) => unavailable("Klaviyo Node SDK", &why),
    }
}

#[test]
fn klaviyo_node_sdk_works_against_catalogd_on_sqlite() {
    check_on(Backend::Sqlite);
}

#[test]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
fn klaviyo_node_sdk_works_against_catalogd_on_postgres() {
    check_on(Backend::Postgres);
}
