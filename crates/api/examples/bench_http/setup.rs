//! What every section starts from: a fresh database on the chosen backend, projects and keys made
//! by `catalogd admin`, `catalogd serve` processes on free ports; and the lines a table is
//! signed with (machine, date, commit).

use crate::client::Conn;
use crate::BoxError;
use catalog_store::with_database;
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Which database a section runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file in the section's temporary directory.
    Sqlite,
    /// A database created for the section on the server `--pg` names, dropped after.
    Postgres,
}

impl Backend {
    /// The name tables show.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// The PERFORMANCE.md marker a section's table goes under: the section's own name on SQLite
    /// (as before PostgreSQL was measured), with `-postgres` on PostgreSQL.
    pub fn marker(self, section: &str) -> String {
        match self {
            Backend::Sqlite => section.to_owned(),
            Backend::Postgres => format!("{section}-postgres"),
        }
    }
}

/// A section's own database and directory, removed by [`Database::remove`].
pub struct Database {
    /// What `catalogd` is given as `--database-url`.
    pub url: String,
    /// The section's temporary directory (SQLite file, server logs).
    pub dir: PathBuf,
    /// The server URL to drop the database through, and its name (PostgreSQL).
    postgres: Option<(String, String)>,
}

impl Database {
    /// A fresh database: a new directory, and on PostgreSQL `CREATE DATABASE` through `pg_url`.
    pub async fn create(backend: Backend, pg_url: &str) -> Result<Database, BoxError> {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{}_{}", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(format!("catalogd_bench_http_{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.join("catalogd.db").display());
                Ok(Database { url, dir, postgres: None })
            }
            Backend::Postgres => {
                let name = format!("bench_http_{tag}");
                let mut admin = sqlx::PgConnection::connect(pg_url).await.map_err(|e| {
                    format!("PostgreSQL at {pg_url} is unreachable: {e} (set --pg or CATALOGD_BENCH_PG)")
                })?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
                admin.close().await?;
                Ok(Database { url: with_database(pg_url, &name), dir, postgres: Some((pg_url.to_owned(), name)) })
            }
        }
    }

    /// Drops the PostgreSQL database and removes the directory. Left alone when a section failed,
    /// so its server logs can be read.
    pub async fn remove(self) {
        if let Some((admin_url, name)) = &self.postgres {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Runs `catalogd admin ARGS` on this database; returns what it printed.
    pub fn admin(&self, bin: &Path, args: &[&str]) -> Result<String, BoxError> {
        let output = Command::new(bin)
            .arg("admin")
            .args(args)
            .arg("--database-url")
            .arg(&self.url)
            .current_dir(&self.dir)
            .output()?;
        if !output.status.success() {
            return Err(format!("admin {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Creates a project and a key with every scope; returns the key's token.
    pub fn project(&self, bin: &Path, key: &str) -> Result<String, BoxError> {
        self.admin(bin, &["project", "create", key])?;
        let created = self.admin(bin, &["key", "create", "--project", key])?;
        Ok(created.lines().last().unwrap_or_default().trim().to_owned())
    }
}

/// A running `catalogd serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens, on 127.0.0.1.
    pub port: u16,
}

impl Server {
    /// Starts `catalogd serve` on `database` with the rate limits off (the quotas are tested on
    /// their own; here they would only turn the load into 429s) and `args`, logging to a file in
    /// the database's directory; returns once it answers `/healthz`.
    pub async fn start(bin: &Path, database: &Database, args: &[String]) -> Result<Server, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(database.dir.join(format!("server-{port}.log")))?;
        let child = Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", &database.url])
            .args(["--rate-limit", "native-write=off", "--rate-limit", "native-read=off"])
            .args(args)
            .current_dir(&database.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let server = Server { child, port };
        Conn::when_ready(port, "").await?;
        Ok(server)
    }

    /// The process id, for `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU model and core count.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// Today, UTC.
pub fn date() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    catalog_domain::time::format_rfc3339(i64::try_from(now).unwrap_or(0))[..10].to_owned()
}

/// The checkout's commit, `+` when it has uncommitted changes other than to PERFORMANCE.md (which
/// the benchmarks themselves rewrite): what the figures were measured on.
pub fn commit() -> String {
    let git = |args: &[&str]| Command::new("git").args(args).output().ok().filter(|o| o.status.success());
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown commit".to_owned();
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/PERFORMANCE.md"])
        .is_some_and(|o| !o.stdout.is_empty());
    format!("{}{}", String::from_utf8_lossy(&head.stdout).trim(), if dirty { "+" } else { "" })
}

/// Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`, or
/// appends the section when the markers are not there yet.
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<(), BoxError> {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let replaced = match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) if s < e => format!("{}{start}\n{body}{}", &text[..s], &text[e..]),
        _ => format!("{text}\n{start}\n{body}{end}\n"),
    };
    std::fs::write(path, replaced)?;
    Ok(())
}
