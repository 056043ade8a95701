//! The operator console (`GET /`) end to end: the real `catalogd` binary, and the page driven in
//! headless Chromium (Debian's `chromium`) by `playwright-core` from npm.
//!
//! The test starts `catalogd serve` over a temporary SQLite file, then over a fresh PostgreSQL
//! database (`CATALOGD_TEST_PG`), makes a project and a key with `catalogd admin`, installs the
//! pinned `playwright-core` into a cache outside the clone (`~/.cache/catalogd/`), and runs
//! `tests/console/console_check.cjs`, which must exit 0: the page loads and asks for a key, lists
//! jobs, shows a bulk delete made after it loaded reach completed without a reload, filters,
//! shows a job's per-item errors, cancels a scheduled job, reaches a catalog's items by keyboard,
//! and, when the server has the webhooks API, adds a webhook and shows its deliveries.
//!
//! `CONSOLE_SCREENSHOTS=DIR` makes the script save its screenshots there (the ones in docs/ are
//! made so: `CONSOLE_SCREENSHOTS=$PWD/docs`). Under `CI=true` every step must work; elsewhere the
//! test is skipped, with a message, when node, npm, the registry or Chromium is missing.

mod support;

use catalog_api::testing::Backend;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{create_project_and_key_on, node_modules_with, on_fresh_database, run_client, unavailable};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/console_check.cjs");
/// The release the script is written against; it drives Debian 12's Chromium 156.
const PLAYWRIGHT_CORE_VERSION: &str = "1.65.1";
/// Where Debian's package puts the browser; `CHROMIUM` overrides it.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// The installed `playwright-core` package directory, installed into the cache when missing.
fn playwright_core() -> Result<PathBuf, String> {
    let manifest = format!(
        "{{\"name\": \"catalogd-console-check\", \"private\": true, \
         \"dependencies\": {{\"playwright-core\": \"{PLAYWRIGHT_CORE_VERSION}\"}}}}\n"
    );
    Ok(node_modules_with("playwright-core", manifest.as_bytes(), &[])?.join("playwright-core"))
}

/// Node, the package and the browser, or why they are missing.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
    if !chromium.exists() {
        return Err(format!("no browser at {} (apt-get install chromium)", chromium.display()));
    }
    Ok((playwright_core()?, chromium))
}

/// Whether this build serves the webhooks API (the console then shows deliveries).
fn has_webhooks() -> bool {
    catalog_api::native::openapi_json().contains("\"/v1/webhooks\"")
}

/// Whether this build serves the event stream (the console then follows it instead of polling).
fn has_events() -> bool {
    catalog_api::native::openapi_json().contains("\"/v1/events\"")
}

/// Runs the browser script against a server on `database_url`, in `dir`.
fn check_console(package: &Path, chromium: &Path, dir: &Path, database_url: &str) {
    let token = create_project_and_key_on(dir, database_url);
    // Small chunks: the bulk delete the script watches moves in several checkpoints.
    let mut flags = vec!["--chunk-size", "25"];
    if has_webhooks() {
        // The script's receiver listens on 127.0.0.1.
        flags.push("--webhook-allow-private");
    }
    let mut client = Command::new("node");
    client
        .arg(SCRIPT)
        .env("CATALOGD_TOKEN", &token)
        .env("PLAYWRIGHT_CORE", package)
        .env("CHROMIUM", chromium)
        .env("CONSOLE_WEBHOOKS", if has_webhooks() { "1" } else { "0" })
        .env("CONSOLE_EVENTS", if has_events() { "1" } else { "0" });
    run_client(dir, database_url, &flags, "the console script", &mut client);
}

/// The browser check on a fresh database of `backend`.
fn check_on(backend: Backend) {
    match tools() {
        Ok((package, chromium)) => {
            on_fresh_database(backend, "console", |dir, url| check_console(&package, &chromium, dir, url));
        }
        Err(why) => unavailable("console", &why),
    }
}

#[test]
fn the_console_works_in_chromium_on_sqlite() {
    check_on(Backend::Sqlite);
}

#[test]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
fn the_console_works_in_chromium_on_postgres() {
    check_on(Backend::Postgres);
}

/// The page and its assets as the router serves them, without a browser: types, the security
/// headers, and the error envelope for a method the console does not answer.
#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_policy() {
    use axum::http::{Method, StatusCode};
    use catalog_api::testing::{TestApp, TestRequest};
    let app = TestApp::new().await;
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<script src=\"/console/app.js\" defer></script>"),
        ("/console/app.js", "text/javascript; charset=utf-8", "/v1/events"),
        ("/console/app.css", "text/css; charset=utf-8", "prefers-color-scheme"),
    ] {
        let response = app.send(TestRequest::new(Method::GET, path)).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.header("content-type"), Some(content_type), "{path}");
        assert!(response.text.contains(needle), "{path}");
        let policy = response.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"), "{path}: {policy}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{path}");
    }
    // Nothing in the page is fetched from another origin.
    let page = app.send(TestRequest::new(Method::GET, "/")).await.text;
    assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
    let refused = app.send(TestRequest::new(Method::POST, "/")).await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.json()["error"]["code"], "method_not_allowed", "{}", refused.text);
    let missing = app.send(TestRequest::new(Method::GET, "/console/missing.js")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
