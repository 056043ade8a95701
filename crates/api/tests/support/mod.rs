//! Shared by the suites that drive the real `catalogd` binary: a temporary working directory,
//! `catalogd admin`, and a `catalogd serve` child that is killed when dropped.

#![allow(dead_code)] // each suite uses its own subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_catalogd");

/// A `catalogd serve` child, killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, empty working directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("catalogd_bin_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The embedded default database of these tests, relative to the test's directory.
pub const SQLITE: &str = "sqlite://catalogd.db";

/// Runs `catalogd admin ARGS` on `dir/catalogd.db` and returns its stdout.
pub fn admin(dir: &Path, args: &[&str]) -> String {
    admin_on(dir, SQLITE, args)
}

/// Runs `catalogd admin ARGS` on `database_url` and returns its stdout.
pub fn admin_on(dir: &Path, database_url: &str, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .current_dir(dir)
        .arg("admin")
        .args(["--database-url", database_url])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run catalogd admin");
    assert!(output.status.success(), "catalogd admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Creates project `acme` and an all-scopes key; returns the token (the last line of stdout).
pub fn create_project_and_key(dir: &Path) -> String {
    create_project_and_key_on(dir, SQLITE)
}

/// [`create_project_and_key`] on `database_url`.
pub fn create_project_and_key_on(dir: &Path, database_url: &str) -> String {
    admin_on(dir, database_url, &["project", "create", "acme", "--name", "Acme"]);
    let scopes = "catalogs:read,catalogs:write,jobs:read,jobs:write";
    let output = admin_on(dir, database_url, &["key", "create", "--project", "acme", "--scopes", scopes]);
    let token = output.lines().last().unwrap_or_default().trim().to_owned();
    assert!(token.starts_with("cat_"), "the token is alone on the last line: {output}");
    token
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// Starts `catalogd serve` in `dir` on `port` with `extra` flags and waits for `/healthz`. Its
/// stderr goes to `dir/server-PORT.log`.
pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Server {
    start_on(dir, SQLITE, port, extra)
}

/// [`start`] on `database_url`; the log is `dir/server-PORT.log`.
pub fn start_on(dir: &Path, database_url: &str, port: u16, extra: &[&str]) -> Server {
    let mut command = Command::new(BIN);
    command.args(serve_args(database_url, port)).args(extra);
    launch(command, dir, port)
}

/// The arguments of `catalogd serve` on `database_url`, listening on `port`.
pub fn serve_args(database_url: &str, port: u16) -> Vec<String> {
    ["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", database_url].map(str::to_owned).to_vec()
}

/// Runs `command` (a `catalogd serve` listening on `port`, perhaps through a wrapper) in `dir`,
/// its log in `dir/server-PORT.log`, and waits for `/healthz`.
pub fn launch(mut command: Command, dir: &Path, port: u16) -> Server {
    let log = std::fs::File::create(dir.join(format!("server-{port}.log"))).expect("server log");
    let child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start catalogd serve");
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if healthy(port) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("catalogd did not answer /healthz on port {port}");
}

/// True under CI (`CI=true` or `CI=1`), where a test that needs a real client must run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs `command` to its end with no input, capturing its output.
pub fn run(command: &mut Command) -> std::io::Result<Output> {
    command.stdin(Stdio::null()).output()
}

/// A finished command's status and output, for a failure message.
pub fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Where the real clients the tests install are cached, outside any clone: `~/.cache/catalogd`
/// (or `$XDG_CACHE_HOME/catalogd`), else the target directory.
pub fn cache_root() -> PathBuf {
    match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(cache), _) => PathBuf::from(cache).join("catalogd"),
        (None, Some(home)) => PathBuf::from(home).join(".cache").join("catalogd"),
        (None, None) => Path::new(env!("CARGO_TARGET_TMPDIR")).join("catalogd-cache"),
    }
}

/// Skips a real client's test outside CI, saying why; fails it under CI, where it must run.
pub fn unavailable(client: &str, why: &str) {
    assert!(!in_ci(), "CI=true: the {client} test must run, but {why}");
    println!("skipping the {client} test: {why}");
}

/// Runs `check` with a fresh working directory and a fresh database of `backend`: the SQLite
/// file [`SQLITE`] in that directory, or a scratch database on the PostgreSQL server (the test
/// fails when it does not answer). Both are removed afterwards.
pub fn on_fresh_database(backend: catalog_api::testing::Backend, name: &str, check: impl FnOnce(&Path, &str)) {
    use catalog_api::testing::{Backend, ScratchDatabase};
    match backend {
        Backend::Sqlite => {
            let dir = temp_dir(&format!("{name}_sqlite"));
            check(&dir, SQLITE);
            let _ = std::fs::remove_dir_all(&dir);
        }
        Backend::Postgres => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(Backend::Postgres.require());
            let database = runtime.block_on(ScratchDatabase::new(Backend::Postgres));
            let dir = temp_dir(&format!("{name}_postgres"));
            check(&dir, database.url());
            let _ = std::fs::remove_dir_all(&dir);
            drop(database);
        }
    }
}

/// Serves `database_url` from `dir` (with `flags`), runs `client` against it with `CATALOGD_URL`
/// set to the server, and fails with the client's output and the server's log unless the client
/// exits 0. `what` names the client in the failure.
pub fn run_client(dir: &Path, database_url: &str, flags: &[&str], what: &str, client: &mut Command) {
    let server = start_on(dir, database_url, free_port(), flags);
    let output = run(client.env("CATALOGD_URL", format!("http://127.0.0.1:{}", server.port)))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let port = server.port;
    drop(server);
    let server_log = std::fs::read_to_string(dir.join(format!("server-{port}.log"))).unwrap_or_default();
    println!("{}", describe(&output));
    assert!(
        output.status.success(),
        "{what} failed on {database_url}: {}\n--- server log\n{server_log}",
        describe(&output)
    );
}

/// The python of a virtualenv cached under [`cache_root`] with `specs` installed from PyPI,
/// created or repaired when `import` (a Python import statement's module list) fails in it. One
/// install at a time: the SQLite and PostgreSQL tests of a suite share the virtualenv.
pub fn python_with(specs: &[&str], import: &str) -> Result<PathBuf, String> {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let slug: String = specs.join("+").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let venv = cache_root().join(format!("venv-{slug}"));
    let python = venv.join("bin").join("python");
    let has_modules = |python: &Path| {
        run(Command::new(python).args(["-c", &format!("import {import}")])).is_ok_and(|o| o.status.success())
    };
    if python.exists() && has_modules(&python) {
        return Ok(python);
    }
    let created = run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !created.status.success() {
        return Err(format!("python3 -m venv failed: {}", describe(&created)));
    }
    let pip = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--timeout", "60"];
    let installed = run(Command::new(&python).args(pip).args(specs)).map_err(|e| format!("cannot run pip: {e}"))?;
    if !installed.status.success() || !has_modules(&python) {
        return Err(format!("pip install {} failed: {}", specs.join(" "), describe(&installed)));
    }
    Ok(python)
}

/// The `node_modules` of a node project whose package.json is `manifest`, installed with npm (and
/// `npm_flags`) under [`cache_root`] as `<name>-<hash of the manifest>/`, so that a new pin or
/// override makes a new directory; reused once an install has completed. One install at a time:
/// the SQLite and PostgreSQL tests of a suite share the project.
pub fn node_modules_with(name: &str, manifest: &[u8], npm_flags: &[&str]) -> Result<PathBuf, String> {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let node = run(Command::new("node").arg("--version")).map_err(|e| format!("cannot run node: {e}"))?;
    if !node.status.success() {
        return Err(format!("node --version failed: {}", describe(&node)));
    }
    // FNV-1a: stable across Rust releases, unlike the standard library's hasher.
    let hash =
        manifest.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    let dir = cache_root().join(format!("{name}-{hash:016x}"));
    let done = dir.join(".catalogd-installed");
    if done.exists() {
        return Ok(dir.join("node_modules"));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join("package.json"), manifest).map_err(|e| format!("cannot write package.json: {e}"))?;
    let installed = run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .args(npm_flags)
        .current_dir(&dir))
    .map_err(|e| format!("cannot run npm: {e}"))?;
    if !installed.status.success() {
        return Err(format!("npm install of {name} failed: {}", describe(&installed)));
    }
    std::fs::write(&done, b"").map_err(|e| format!("cannot mark {}: {e}", dir.display()))?;
    Ok(dir.join("node_modules"))
}
