//! A real catalogd for the integration tests: the built `catalogd` binary, started as a
//! subprocess on a free loopback port with a SQLite file in a temporary directory (or, with
//! [`Server::start_on`], a fresh PostgreSQL database on the server at `CATALOGD_TEST_PG`), and a
//! project and key made with its admin CLI. Going through the binary keeps catalog-client free of any
//! dependency on the server crates, even for tests.
//!
//! The binary is `$CATALOGD_BIN`, else `catalogd` in `$CARGO_TARGET_DIR/debug` or the workspace's
//! `target/debug`. When it is missing it is built with `cargo build -p catalog-api --bin catalogd`
//! into a target directory of its own (this test run's cargo may still hold the main one's lock).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The catalogd binary, built if needed.
pub fn catalogd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CATALOGD_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from);
    let built = target.join("debug").join("catalogd");
    if built.exists() {
        return built;
    }
    let own_target = workspace().join("target").join("client-tests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "-p", "catalog-api", "--bin", "catalogd", "--target-dir"])
        .arg(&own_target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building catalogd failed");
    own_target.join("debug").join("catalogd")
}

/// The catalogctl binary of this package.
pub fn catalogctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_catalogctl"))
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "catalog-client-{label}-{}-{}",
            std::process::id(),
            catalog_client::new_idempotency_key()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Where a test server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database on the PostgreSQL server at `CATALOGD_TEST_PG` (default
/// `postgres://postgres@127.0.0.1:5432/test`), made and dropped with `psql`, dropped on drop.
pub struct PgDatabase {
    server_url: String,
    name: String,
}

impl PgDatabase {
    /// A new database, or `None` (with a message) when the server cannot be reached and `CI` is
    /// not set; with `CI` set that fails the test instead.
    pub fn create(label: &str) -> Option<PgDatabase> {
        let test_pg =
            std::env::var("CATALOGD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let unique =
            catalog_client::new_idempotency_key().to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let name = format!("catalog_client_{label}_{}_{unique}", std::process::id()).replace('-', "_");
        let output = psql(&test_pg, &format!("CREATE DATABASE {name}"));
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(std::env::var_os("CI").is_none(), "PostgreSQL at {test_pg} is needed with CI set: {stderr}");
            eprintln!("SKIPPED: PostgreSQL at {test_pg} is unreachable ({stderr}); set CATALOGD_TEST_PG");
            return None;
        }
        Some(PgDatabase { server_url: test_pg, name })
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        let server = self.server_url.rsplit_once('/').map_or(self.server_url.as_str(), |(server, _)| server);
        format!("{server}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(&self.server_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(url: &str, command: &str) -> Output {
    Command::new("psql").args(["--quiet", "--no-psqlrc", url, "-c", command]).output().expect("psql runs")
}

/// A running catalogd, killed on drop (before its database, if any, is dropped).
pub struct Server {
    pub url: String,
    pub token: String,
    child: Child,
    pub dir: TempDir,
    database: Option<PgDatabase>,
    /// How it was started, for [`Server::kill_and_restart`].
    command: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn free_port() -> u16 {
    // The port is free when the listener is dropped; a race with another process taking it in
    // between is possible but shows up as a clear start-up failure, not a wrong result.
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

fn admin(bin: &Path, database_url: &str, args: &[&str]) -> Output {
    let output = Command::new(bin)
        .arg("admin")
        .args(args)
        .args(["--database-url", database_url])
        .output()
        .expect("catalogd admin runs");
    assert!(output.status.success(), "catalogd admin {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Starts `catalogd ARGS`, its output appended to the directory's `server.log`.
fn spawn_serve(dir: &TempDir, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.0.join("server.log")).expect("log file");
    Command::new(catalogd_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("catalogd starts")
}

impl Server {
    /// Starts catalogd with extra `serve` arguments (e.g. rate limits) and waits for /healthz.
    pub fn start(label: &str, serve_args: &[&str]) -> Server {
        let dir = TempDir::new(label);
        let database_url = format!("sqlite://{}", dir.0.join("catalogd.db").display());
        Server::start_with(dir, database_url, None, serve_args)
    }

    /// Starts catalogd on `backend`; `None` when PostgreSQL is unreachable and `CI` is not set.
    pub fn start_on(backend: Backend, label: &str, serve_args: &[&str]) -> Option<Server> {
        match backend {
            Backend::Sqlite => Some(Server::start(label, serve_args)),
            Backend::Postgres => {
                let database = PgDatabase::create(label)?;
                let url = database.url();
                Some(Server::start_with(TempDir::new(label), url, Some(database), serve_args))
            }
        }
    }

    fn start_with(dir: TempDir, database_url: String, database: Option<PgDatabase>, serve_args: &[&str]) -> Server {
        let bin = catalogd_bin();
        admin(&bin, &database_url, &["project", "create", "test"]);
        let output = admin(
            &bin,
            &database_url,
            &["key", "create", "--project", "test", "--scopes", "catalogs:read,catalogs:write,jobs:read,jobs:write"],
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let token = stdout.lines().last().expect("the token is on the last line").trim().to_owned();
        let port = free_port();
        let mut command: Vec<String> =
            ["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", &database_url]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        command.extend(serve_args.iter().map(|s| (*s).to_owned()));
        let child = spawn_serve(&dir, &command);
        let server = Server { url: format!("http://127.0.0.1:{port}"), token, child, dir, database, command };
        server.wait_healthy();
        server
    }

    /// Kills the server with SIGKILL (no shutdown of any kind), then starts it again on the same
    /// port and database, and waits for /healthz.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        self.child = spawn_serve(&self.dir, &self.command);
        self.wait_healthy();
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = self.url.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
                use std::io::{Read, Write};
                let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer).ok();
                    if answer.starts_with("HTTP/1.1 200") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("catalogd did not become healthy; log: {}", self.log());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
    }

    /// A library client for this server.
    pub fn client(&self) -> catalog_client::Client {
        catalog_client::Client::new(&self.url, &self.token).expect("client")
    }

    /// `catalogctl ARGS` against this server, configured through the environment.
    pub fn catalogctl(&self, args: &[&str]) -> Output {
        Command::new(catalogctl_bin())
            .args(args)
            .env("CATALOGD_URL", &self.url)
            .env("CATALOGD_TOKEN", &self.token)
            // Keeps a developer's own config file out of the test.
            .env("HOME", &self.dir.0)
            .env_remove("CATALOGCTL_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .expect("catalogctl runs")
    }
}
