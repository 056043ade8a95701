//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask ci` — everything CI checks: formatting, clippy, the architecture checks,
//!   generated files up to date, and every test.
//! - `cargo xtask check-deps` — the architecture invariant on catalog-domain's dependencies.
//! - `cargo xtask codegen [--check]` — rewrites (or checks) the generated `docs/openapi.json`.
//! - `cargo xtask bench store [--items N --batch N --section NAME]` — the store benchmark (see
//!   docs/PERFORMANCE.md).
//! - `cargo xtask bench http [...]` — the HTTP benchmark against the release binary.

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

const USAGE: &str = "usage: cargo xtask <ci | check-deps | codegen [--check] | bench store [--items N --batch N --section NAME] | bench http [--jobs N --seconds S --connections C]>";

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
    run("cargo", &["test", "--workspace"])?;
    Ok(())
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
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
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
