//! The binary as a newcomer meets it: `--version`, completions, `admin` in the wrong directory,
//! and the configuration file's place between flags, environment and defaults.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{create_project_and_key, free_port, launch, temp_dir, BIN};

fn catalogd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.current_dir(dir).args(args).stdin(Stdio::null());
    for name in ["CATALOGD_CONFIG", "CATALOGD_DATABASE_URL", "CATALOGD_LISTEN"] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_help_and_completions() {
    let dir = temp_dir("first_use_version");
    let version = catalogd(&dir, &["--version"], &[]);
    assert_eq!(text(&version.stdout), format!("catalogd {}\n", env!("CARGO_PKG_VERSION")));
    let help = text(&catalogd(&dir, &["--help"], &[]).stdout);
    assert!(help.starts_with("catalogd keeps product catalogs"), "{help}");
    for shell in ["bash", "zsh", "fish"] {
        let script = catalogd(&dir, &["completions", shell], &[]);
        assert!(script.status.success() && text(&script.stdout).contains("catalogd"), "{shell}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Only `project create` starts a database; any other admin command in a directory without one
/// names the file it looked for and creates nothing.
#[test]
fn admin_elsewhere_refuses_to_create_a_database() {
    let dir = temp_dir("first_use_admin");
    let listed = catalogd(&dir, &["admin", "key", "list", "--project", "acme"], &[]);
    assert_eq!(listed.status.code(), Some(1));
    let expected = format!("no database at {}", dir.join("catalogd.db").display());
    assert!(text(&listed.stderr).contains(&expected), "{}", text(&listed.stderr));
    assert!(!dir.join("catalogd.db").exists());

    let created = catalogd(&dir, &["admin", "project", "create", "acme"], &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stderr).contains("creating a new database at"), "{}", text(&created.stderr));
    assert!(catalogd(&dir, &["admin", "key", "list", "--project", "acme"], &[]).status.success());
    let _ = std::fs::remove_dir_all(dir);
}

/// A setting comes from its flag, else its environment variable, else the file, else the default;
/// the file's `database_url` serves `admin` too. An unknown key is refused, naming it.
#[test]
fn flags_over_environment_over_file_over_defaults() {
    let dir = temp_dir("first_use_config");
    create_project_and_key(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::rename(dir.join("catalogd.db"), data.join("catalogd.db")).unwrap();
    let (from_file, from_env, from_flag) = (free_port(), free_port(), free_port());
    let config = dir.join("catalogd.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{from_file}\"\ndatabase_url = \"sqlite://data/catalogd.db\"\n\
             rate_limits = [\"native-write=off\", \"native-read=off\"]\nrunner_workers = 1\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let keys = catalogd(&dir, &["--config", config, "admin", "key", "list", "--project", "acme"], &[]);
    assert!(keys.status.success(), "the file's database_url serves admin: {}", text(&keys.stderr));
    let keys = catalogd(&dir, &["admin", "key", "list", "--project", "acme"], &[("CATALOGD_CONFIG", config)]);
    assert!(keys.status.success(), "CATALOGD_CONFIG names the file: {}", text(&keys.stderr));

    let serve = |env: Option<u16>, flag: Option<u16>| {
        let mut command = Command::new(BIN);
        command.args(["serve", "--config", config]).env_remove("CATALOGD_LISTEN").env_remove("CATALOGD_DATABASE_URL");
        if let Some(port) = env {
            command.env("CATALOGD_LISTEN", format!("127.0.0.1:{port}"));
        }
        if let Some(port) = flag {
            command.args(["--listen", &format!("127.0.0.1:{port}")]);
        }
        command
    };
    // `launch` waits for /healthz on the port given: the server listens where the rule says.
    drop(launch(serve(None, None), &dir, from_file));
    drop(launch(serve(Some(from_env), None), &dir, from_env));
    drop(launch(serve(Some(from_env), Some(from_flag)), &dir, from_flag));

    std::fs::write(dir.join("typo.toml"), "listne = \"127.0.0.1:1\"\n").unwrap();
    let typo = catalogd(&dir, &["--config", "typo.toml", "serve"], &[]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(text(&typo.stderr).contains("unknown key `listne`"), "{}", text(&typo.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

/// docs/config.example.toml, every setting in it uncommented, is read and its values accepted:
/// `serve` gets past the parsing and fails only at the database it is pointed at.
#[test]
fn the_configuration_example_is_accepted_whole() {
    let dir = temp_dir("first_use_example");
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.example.toml")).unwrap();
    let every_setting: String = example
        .lines()
        .map(|line| line.strip_prefix("# ").filter(|rest| rest.contains(" = ")).unwrap_or(line))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(every_setting.contains("\nmax_connections = 4096"), "{every_setting}");
    std::fs::write(dir.join("all.toml"), every_setting).unwrap();
    let missing = dir.join("no-such-dir").join("catalogd.db");
    let url = format!("sqlite://{}", missing.display());
    let serve = catalogd(&dir, &["--config", "all.toml", "serve", "--database-url", &url], &[]);
    assert_eq!(serve.status.code(), Some(1), "not a usage error (2): {}", text(&serve.stderr));
    assert!(text(&serve.stderr).contains("cannot open"), "{}", text(&serve.stderr));
    let _ = std::fs::remove_dir_all(dir);
}
