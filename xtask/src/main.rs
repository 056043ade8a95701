//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask ci` — everything CI checks: formatting, clippy, the architecture checks,
//!   generated files up to date, the libraries' docs, no-std build and packages, and every test.
//! - `cargo xtask check-deps` — the architecture invariant on catalog-domain's dependencies.
//! - `cargo xtask codegen [--check]` — rewrites (or checks) the generated `docs/openapi.json`.
//! - `cargo xtask schemathesis` — validates `docs/openapi.json` and runs schemathesis against a live
//!   debug `catalogd` on a temporary SQLite database (both tools pinned, from PyPI, in a venv cached
//!   outside the clone).
//! - `cargo xtask bench store [--items N --batch N --raw-batch N --backend B --section NAME]` — the
//!   store benchmark (see docs/PERFORMANCE.md).
//! - `cargo xtask bench http [--backend sqlite|postgres|both] [--section http|sustained|fairness|shared]
//!   [...]` — the HTTP benchmarks against the release binary, one fresh database per section (see
//!   docs/PERFORMANCE.md and `crates/api/examples/bench_http/main.rs`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Crates that do I/O; `catalog-domain` must reach none of them, directly or transitively.
const IO_CRATES: &[&str] = &["tokio", "sqlx", "sqlx-core", "axum", "hyper", "reqwest", "mio", "async-std"];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("check-deps") => check_domain_dependencies(),
        Some("codegen") => codegen(args.get(1).map(String::as_str) == Some("--check")),
        Some("bench") => bench(&args[1..]),
        Some("schemathesis") => schemathesis(),
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <ci | check-deps | codegen [--check] | schemathesis | bench store [--items N --batch N --raw-batch N --backend B --section NAME] | bench http [--backend sqlite|postgres|both --section http|sustained|fairness|shared --seconds S --connections C --items N --backlog N --catalogs K --jobs N --serve-arg FLAG]>";

/// Where the generated OpenAPI document is committed.
const OPENAPI_PATH: &str = "docs/openapi.json";

/// Generates the OpenAPI document from the code (`catalogd openapi`) and writes it, or, with
/// `check`, fails when the committed copy differs.
fn codegen(check: bool) -> Result {
    let output = Command::new("cargo")
        .args(["run", "--quiet", "--package", "catalog-api", "--bin", "catalogd", "--", "openapi"])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("cannot run catalogd openapi: {e}"))?;
    if !output.status.success() {
        return Err(format!("catalogd openapi failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let path = workspace_root().join(OPENAPI_PATH);
    if check {
        let committed = std::fs::read(&path).unwrap_or_default();
        if committed != output.stdout {
            return Err(format!("{OPENAPI_PATH} is stale: run `cargo xtask codegen` and commit the result"));
        }
        eprintln!("codegen: {OPENAPI_PATH} is up to date");
        Ok(())
    } else {
        std::fs::write(&path, &output.stdout).map_err(|e| format!("cannot write {OPENAPI_PATH}: {e}"))?;
        eprintln!("codegen: wrote {OPENAPI_PATH}");
        Ok(())
    }
}

fn ci() -> Result {
    run("cargo", &["fmt", "--all", "--check"])?;
    check_domain_dependencies()?;
    codegen(true)?;
    run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    libraries()?;
    workspace_tests()?;
    schemathesis()?;
    Ok(())
}

/// What other programs need of the libraries (catalog-domain, catalog-client): documentation
/// without a warning (a broken intra-doc link is one; the store's and the server's too, whose
/// rustdoc is how a newcomer reads them), catalog-domain without std (built as a
/// no-std crate, and its tests run on the no-std code paths), and both packaged as a registry
/// would take them, each package built alone from its files.
fn libraries() -> Result {
    let documented = [
        "doc",
        "--no-deps",
        "--package",
        "catalog-domain",
        "--package",
        "catalog-client",
        "--package",
        "catalog-store",
        "--package",
        "catalog-api",
    ];
    run_with_env("cargo", &documented, &[("RUSTDOCFLAGS", "-D warnings")])?;
    run("cargo", &["build", "--package", "catalog-domain", "--no-default-features"])?;
    run("cargo", &["test", "--package", "catalog-domain", "--no-default-features", "--lib"])?;
    // Together: catalog-client's package resolves catalog-domain from the one made beside it.
    // `--allow-dirty`, so a developer's uncommitted work is checked too (CI's clone is clean).
    run("cargo", &["package", "--package", "catalog-domain", "--package", "catalog-client", "--allow-dirty"])
}

/// `cargo test --workspace`, the PostgreSQL halves (`#[ignore]`d) included when `CI` is set or the
/// server at `CATALOGD_TEST_PG` answers; otherwise they are listed as ignored in the summary.
fn workspace_tests() -> Result {
    let test_pg = std::env::var("CATALOGD_TEST_PG").unwrap_or_else(|_| DEFAULT_TEST_PG.to_owned());
    if std::env::var_os("CI").is_some() || postgres_answers(&test_pg) {
        run("cargo", &["test", "--workspace", "--", "--include-ignored"])
    } else {
        eprintln!("ci: PostgreSQL at {test_pg} does not answer: its tests are left out (listed as ignored)");
        run("cargo", &["test", "--workspace"])
    }
}

/// True when something accepts a TCP connection at the host and port of `url` (default port 5432).
fn postgres_answers(url: &str) -> bool {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let address = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    address.to_socket_addrs().ok().and_then(|mut addresses| addresses.next()).is_some_and(|address| {
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)).is_ok()
    })
}

/// The Python tools CI uses, pinned: the venv holding them is keyed by this list.
const PYTHON_TOOLS: &[&str] = &["schemathesis==4.32.5", "openapi-spec-validator==0.9.0"];
/// Seed of the schemathesis run, so a failure found once is found again.
const SCHEMATHESIS_SEED: &str = "1";
/// Seconds schemathesis may spend generating requests, on each backend.
const SCHEMATHESIS_SECONDS: &str = "60";

/// A venv with [`PYTHON_TOOLS`], created once under `~/.cache/catalogd/` (outside any clone, so a
/// fresh CI clone reuses it); its directory name carries a hash of the pins.
fn python_tools() -> Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
    let pins = PYTHON_TOOLS.join(" ");
    let key = pins.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let venv = cache.join("catalogd").join(format!("venv-{key:016x}"));
    let ready = venv.join("ready");
    if !ready.exists() {
        eprintln!("schemathesis: installing {pins} into {}", venv.display());
        let _ = std::fs::remove_dir_all(&venv);
        let venv_arg = venv.display().to_string();
        run("python3", &["-m", "venv", &venv_arg])?;
        let pip = venv.join("bin").join("pip").display().to_string();
        let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
        args.extend(PYTHON_TOOLS);
        run(&pip, &args)?;
        std::fs::write(&ready, &pins).map_err(|e| format!("cannot write {}: {e}", ready.display()))?;
    }
    Ok(venv.join("bin"))
}

/// Validates the committed OpenAPI document, then runs schemathesis (every check, fixed seed,
/// bounded time) against a debug `catalogd` on each backend: a temporary SQLite database, then a
/// fresh PostgreSQL database on the test server (`CATALOGD_TEST_PG`). Fails on any failure; never
/// skips.
fn schemathesis() -> Result {
    let bin = python_tools()?;
    let root = workspace_root();
    run(&bin.join("openapi-spec-validator").display().to_string(), &[&root.join(OPENAPI_PATH).display().to_string()])?;
    run("cargo", &["build", "--quiet", "--package", "catalog-api", "--bin", "catalogd"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let catalogd = target.join("debug").join("catalogd");

    let dir = std::env::temp_dir().join(format!("catalogd-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let sqlite = format!("sqlite://{}", dir.join("catalogd.db").display());
    schemathesis_on(&bin, &catalogd, &dir, &sqlite)?;

    let test_pg = std::env::var("CATALOGD_TEST_PG").unwrap_or_else(|_| DEFAULT_TEST_PG.to_owned());
    let (server_url, _) = test_pg.rsplit_once('/').ok_or_else(|| format!("cannot read {test_pg} as a database URL"))?;
    let postgres = format!("{server_url}/{SCHEMATHESIS_PG_DATABASE}");
    let fresh = [
        format!("DROP DATABASE IF EXISTS {SCHEMATHESIS_PG_DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {SCHEMATHESIS_PG_DATABASE}"),
    ];
    run("psql", &["--quiet", &test_pg, "-c", &fresh[0], "-c", &fresh[1]])?;
    schemathesis_on(&bin, &catalogd, &dir, &postgres)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The PostgreSQL the tests use when `CATALOGD_TEST_PG` is not set (README, Tests).
const DEFAULT_TEST_PG: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The database `cargo xtask schemathesis` creates afresh on the test server.
const SCHEMATHESIS_PG_DATABASE: &str = "catalogd_schemathesis";

/// One schemathesis run against `catalogd serve` on `database`, with a project and key made by
/// `catalogd admin`.
fn schemathesis_on(bin: &Path, catalogd: &Path, dir: &Path, database: &str) -> Result {
    eprintln!("schemathesis: on {database}");
    let admin = |args: &[&str]| -> Result<String> {
        let output = Command::new(catalogd)
            .arg("admin")
            .args(args)
            .env("CATALOGD_DATABASE_URL", database)
            .output()
            .map_err(|e| format!("cannot run catalogd admin: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "catalogd admin {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    admin(&["project", "create", "schemathesis"])?;
    let created = admin(&["key", "create", "--project", "schemathesis"])?;
    let token = created.lines().last().map(str::trim).ok_or("catalogd admin key create printed no token")?.to_owned();

    // A port the kernel just handed out, free again once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .port();
    let address = format!("127.0.0.1:{port}");
    let server_log = dir.join(format!("server-{port}.log"));
    let log = std::fs::File::create(&server_log).map_err(|e| format!("cannot create the server log: {e}"))?;
    let mut server = Command::new(catalogd)
        .args(["serve", "--listen", &address, "--database-url", database])
        // The quotas are the rate limiter's business, tested on their own; here they would only
        // turn the generated requests into 429s.
        .args(["--rate-limit", "native-read=off", "--rate-limit", "native-write=off"])
        .stdout(log.try_clone().map_err(|e| format!("cannot share the server log: {e}"))?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start catalogd: {e}"))?;
    let authorization = format!("Authorization: Bearer {token}");
    let schema_url = format!("http://{address}/openapi.json");
    let config = workspace_root().join("xtask").join("schemathesis.toml").display().to_string();
    let args = [
        "--config-file",
        config.as_str(),
        "run",
        schema_url.as_str(),
        "--header",
        authorization.as_str(),
        "--checks",
        "all",
        "--seed",
        SCHEMATHESIS_SEED,
        // Every phase; xtask/schemathesis.toml leaves the bulk routes out of the coverage one.
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-time",
        SCHEMATHESIS_SECONDS,
        // Above the longest `?wait=` long poll (60 s): a poll on a job scheduled for later holds
        // its whole wait, and that is the contract, not a hang.
        "--request-timeout",
        "65",
        // One worker: with several, the stateful phase interleaves differently from run to run.
        "--workers",
        "1",
        "--wait-for-schema",
        "30",
    ];
    eprintln!("$ schemathesis {}", args.join(" ").replace(&token, "<token>"));
    let outcome = Command::new(bin.join("schemathesis"))
        .args(args)
        // xtask/schemathesis_hooks.py: the one rule JSON Schema cannot state.
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", workspace_root().join("xtask"))
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot start schemathesis: {e}"))
        .and_then(|status| if status.success() { Ok(()) } else { Err(format!("schemathesis failed ({status})")) });
    let _ = server.kill();
    let _ = server.wait();
    if outcome.is_err() {
        eprintln!("schemathesis: the server's log is {}", server_log.display());
    }
    outcome
}

fn bench(args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("store") => {
            let mut cargo_args =
                vec!["run", "--release", "--package", "catalog-store", "--example", "bench_store", "--"];
            cargo_args.extend(args[1..].iter().map(String::as_str));
            run("cargo", &cargo_args)
        }
        Some("http") => {
            run("cargo", &["build", "--release", "--package", "catalog-api", "--bin", "catalogd"])?;
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
            let binary = target.join("release").join("catalogd").display().to_string();
            let mut cargo_args = vec!["run", "--release", "--package", "catalog-api", "--example", "bench_http", "--"];
            cargo_args.extend(["--bin", binary.as_str(), "--write", "docs/PERFORMANCE.md"]);
            cargo_args.extend(args[1..].iter().map(String::as_str));
            run("cargo", &cargo_args)
        }
        _ => Err(USAGE.to_owned()),
    }
}

/// Runs a command from the workspace root, failing with its exit status.
fn run(program: &str, args: &[&str]) -> Result {
    run_with_env(program, args, &[])
}

/// [`run`] with these environment variables set.
fn run_with_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result {
    let shown: Vec<String> = env.iter().map(|(name, value)| format!("{name}={value:?} ")).collect();
    eprintln!("$ {}{program} {}", shown.concat(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// The checkout `cargo xtask` was run in. `cargo run` passes the manifest directory at run
/// time; the one compiled in is only a fallback, because a target directory shared by several
/// clones (as `.ci/run` sets up) reuses one xtask binary, which would otherwise work on whichever
/// clone built it.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let manifest_dir = manifest_dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Architecture Invariant: catalog-domain depends on no I/O crate, not even transitively.
/// Read from `cargo metadata`'s resolved graph, normal dependencies only (dev-dependencies such as
/// proptest are the tests' business).
fn check_domain_dependencies() -> Result {
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata printed bad JSON: {e}"))?;
    let reached = normal_dependency_closure(&metadata, "catalog-domain")?;
    let offending: Vec<&str> = reached.iter().map(String::as_str).filter(|name| IO_CRATES.contains(name)).collect();
    if offending.is_empty() {
        eprintln!("check-deps: catalog-domain reaches no I/O crate ({} crates checked)", reached.len());
        Ok(())
    } else {
        Err(format!("Architecture Invariant broken: catalog-domain depends on {}", offending.join(", ")))
    }
}

/// Names of every package reachable from `root` through normal (non-dev, non-build) dependencies.
fn normal_dependency_closure(metadata: &serde_json::Value, root: &str) -> Result<BTreeSet<String>> {
    let packages = metadata["packages"].as_array().ok_or("cargo metadata: no packages")?;
    let names: HashMap<&str, &str> =
        packages.iter().filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?))).collect();
    let nodes = metadata["resolve"]["nodes"].as_array().ok_or("cargo metadata: no resolve graph")?;
    let edges: HashMap<&str, Vec<&str>> = nodes
        .iter()
        .filter_map(|node| {
            let deps = node["deps"]
                .as_array()?
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
                })
                .filter_map(|dep| dep["pkg"].as_str())
                .collect();
            Some((node["id"].as_str()?, deps))
        })
        .collect();
    let root_id = names
        .iter()
        .find_map(|(id, name)| (*name == root).then_some(*id))
        .ok_or_else(|| format!("no package named {root}"))?;
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    let mut reached = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in edges.get(id).into_iter().flatten() {
            if let Some(name) = names.get(dep) {
                reached.insert((*name).to_owned());
            }
            stack.push(dep);
        }
    }
    Ok(reached)
}
