//! `cargo xtask bench http`: the HTTP figures of docs/PERFORMANCE.md, against the real release
//! `catalogd` binary on SQLite, each next to a reference measured in the same run:
//!
//! - latency to accept one 10,000-id bulk delete (p50/p99), next to `/healthz` latency;
//! - accepted 50-id bulk deletes per second from 64 keep-alive connections, next to `/healthz`
//!   requests per second from the same load generator;
//! - job listing latency with 1,000,000 jobs stored, on page 1 and on page 10,000 (keyset), and
//!   the latency of a `/metrics` scrape, which counts them by status;
//! - the server's peak RSS while it accepts a 10 MB body, next to its RSS before.
//!
//! Usage: `bench_http --bin target/release/catalogd [--jobs N] [--seconds S] [--connections C]
//! [--serve-arg FLAG ...] [--write docs/PERFORMANCE.md [--section NAME]]`.

use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Makes the n-th request of a load: method, path, body.
type RequestFn = Arc<dyn Fn(u64) -> (String, String, Option<Vec<u8>>) + Send + Sync>;

struct Options {
    bin: PathBuf,
    /// Extra flags for `catalogd serve` (repeatable `--serve-arg`).
    serve_args: Vec<String>,
    jobs: u64,
    seconds: u64,
    connections: usize,
    write: Option<PathBuf>,
    /// The marker name of the PERFORMANCE.md section to write (`http` unless told).
    section: String,
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        bin: PathBuf::from("target/release/catalogd"),
        serve_args: Vec::new(),
        jobs: 1_000_000,
        seconds: 10,
        connections: 64,
        write: None,
        section: "http".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bin" => options.bin = PathBuf::from(value),
            "--serve-arg" => options.serve_args.push(value),
            "--jobs" => options.jobs = value.parse()?,
            "--seconds" => options.seconds = value.parse()?,
            "--connections" => options.connections = value.parse()?,
            "--write" => options.write = Some(PathBuf::from(value)),
            "--section" => options.section = value,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(options)
}

/// One keep-alive HTTP/1.1 connection; enough client for a benchmark of our own server.
struct Conn {
    reader: BufReader<TcpStream>,
    token: String,
}

impl Conn {
    async fn open(port: u16, token: &str) -> Result<Conn, BoxError> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::new(stream), token: token.to_owned() })
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), BoxError> {
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.token,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut payload = vec![0u8; length];
        self.reader.read_exact(&mut payload).await?;
        Ok((status, payload))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

fn admin(bin: &Path, dir: &Path, args: &[&str]) -> Result<String, BoxError> {
    let output = Command::new(bin)
        .arg("admin")
        .args(args)
        .arg("--database-url")
        .arg("sqlite://catalogd.db")
        .current_dir(dir)
        .output()?;
    if !output.status.success() {
        return Err(format!("admin {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Inserts `n` finished jobs for project 1 in one statement, as if a busy project had run them.
async fn seed_jobs(dir: &Path, n: u64) -> Result<(), BoxError> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("catalogd.db").display()))?;
    let mut conn = options.connect().await?;
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)
         INSERT INTO jobs (project_id, catalog_name, kind, status, total_count, completed_count, created_at, updated_at,
                           finished_at, expires_at)
         SELECT 1, 'archive', 'item_bulk_delete', 'completed', 50, 50, 1700000000000 + i, 1700000000000 + i,
                1700000000000 + i, 4102444800000 FROM seq",
    )
    .bind(i64::try_from(n)?)
    .execute(&mut conn)
    .await?;
    Ok(())
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `connections` loops of `request` for `seconds`; returns answers with `want` status per second.
async fn load(
    port: u16,
    token: &str,
    connections: usize,
    seconds: u64,
    want: u16,
    request: RequestFn,
) -> Result<f64, BoxError> {
    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (ok, other, counter, request) = (ok.clone(), other.clone(), counter.clone(), request.clone());
        let mut conn = Conn::open(port, token).await?;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (method, path, body) = request(counter.fetch_add(1, Ordering::Relaxed));
                match conn.send(&method, &path, body.as_deref()).await {
                    Ok((status, _)) if status == want => ok.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if other.load(Ordering::Relaxed) > 0 {
        eprintln!("  ({} answers were not {want})", other.load(Ordering::Relaxed));
    }
    Ok(ok.load(Ordering::Relaxed) as f64 / elapsed)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let bin = std::fs::canonicalize(&options.bin)?;
    let dir = std::env::temp_dir().join(format!("catalogd_bench_http_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    admin(&bin, &dir, &["project", "create", "acme"])?;
    let token = admin(&bin, &dir, &["key", "create", "--project", "acme"])?
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("seeding {} finished jobs…", options.jobs);
    seed_jobs(&dir, options.jobs).await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(&bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", "sqlite://catalogd.db"])
        .args(["--rate-limit", "native-write=off", "--rate-limit", "native-read=off"])
        .args(&options.serve_args)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let _server = Server(child);
    let mut conn = loop {
        if let Ok(mut conn) = Conn::open(port, &token).await {
            if conn.send("GET", "/healthz", None).await.is_ok() {
                break conn;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, _) = conn.send("POST", "/v1/catalogs", Some(br#"{"name":"shoes"}"#)).await?;
    if status != 201 {
        return Err(format!("create catalog: {status}").into());
    }

    // Listing with 1,000,000 jobs stored: page 1 (repeated), then walk to page 10,000.
    eprintln!("job listing…");
    let mut first_pages = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        conn.send("GET", "/v1/jobs?limit=100", None).await?;
        first_pages.push(started.elapsed());
    }
    let mut deep_pages = Vec::new();
    let mut cursor: Option<String> = None;
    let pages = (options.jobs / 100).min(10_000);
    for page in 1..=pages {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=100&cursor={c}"),
            None => "/v1/jobs?limit=100".to_owned(),
        };
        let started = Instant::now();
        let (_, body) = conn.send("GET", &path, None).await?;
        if page + 200 > pages {
            deep_pages.push(started.elapsed());
        }
        cursor = serde_json::from_slice::<Value>(&body)?["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    first_pages.sort();
    deep_pages.sort();

    // A Prometheus scrape counts every stored job by status.
    let mut scrapes = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = conn.send("GET", "/metrics", None).await?;
        scrapes.push(started.elapsed());
        if status != 200 {
            return Err(format!("/metrics answered {status}").into());
        }
    }
    scrapes.sort();

    // Accepting one 10,000-id request, next to /healthz on the same connection.
    eprintln!("10,000-id requests…");
    let mut accept = Vec::new();
    for round in 0..50 {
        let ids: Vec<String> = (0..10_000).map(|i| format!("r{round}-{i}")).collect();
        let body = serde_json::to_vec(&json!({"ids": ids}))?;
        let started = Instant::now();
        let (status, _) = conn.send("POST", "/v1/catalogs/shoes/items/bulk-delete", Some(&body)).await?;
        accept.push(started.elapsed());
        if status != 202 {
            return Err(format!("bulk delete answered {status}").into());
        }
    }
    let mut health = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        conn.send("GET", "/healthz", None).await?;
        health.push(started.elapsed());
    }
    accept.sort();
    health.sort();

    // Throughput: 50-id bulk deletes from many connections, then /healthz the same way.
    eprintln!("throughput ({} connections, {} s each)…", options.connections, options.seconds);
    let deletes = load(
        port,
        &token,
        options.connections,
        options.seconds,
        202,
        Arc::new(|n| {
            // Written directly rather than through serde_json: the load generator shares the
            // machine's two cores with the server, so its own cost should be small.
            let mut body = String::with_capacity(16 * 50 + 16);
            body.push_str(r#"{"ids":["#);
            for i in 0..50 {
                let separator = if i == 0 { "" } else { "," };
                let _ = write!(body, r#"{separator}"t{n}-{i}""#);
            }
            body.push_str("]}");
            ("POST".to_owned(), "/v1/catalogs/shoes/items/bulk-delete".to_owned(), Some(body.into_bytes()))
        }),
    )
    .await?;
    let healthz = load(
        port,
        &token,
        options.connections,
        options.seconds,
        200,
        Arc::new(|_| ("GET".to_owned(), "/healthz".to_owned(), None)),
    )
    .await?;

    // Memory: peak RSS while a 10 MB body is accepted.
    eprintln!("10 MB body…");
    let rss_before = rss_kib(pid, "VmRSS:");
    let hwm_before = rss_kib(pid, "VmHWM:");
    let filler = "x".repeat(1_000);
    let items: Vec<Value> =
        (0..10_000).map(|i| json!({"id": format!("big-{i}"), "fields": {"blob": filler}})).collect();
    let body = serde_json::to_vec(&json!({"items": items}))?;
    let (status, _) = conn.send("POST", "/v1/catalogs/shoes/items/bulk-upsert", Some(&body)).await?;
    let hwm_after = rss_kib(pid, "VmHWM:");

    let date =
        String::from_utf8_lossy(&Command::new("date").arg("-u").arg("+%Y-%m-%d").output()?.stdout).trim().to_owned();
    let flags = if options.serve_args.is_empty() {
        String::new()
    } else {
        format!(", server flags `{}`", options.serve_args.join(" "))
    };
    let table = format!(
        "Measured {date} on {machine}, SQLite backend, release build, by `cargo xtask bench http` \
         ({jobs} stored jobs, {conns} connections, {secs} s per load{flags}).\n\n\
         | figure | catalogd | reference (same run) | goal |\n|---|---|---|---|\n\
         | accept one 10,000-id bulk delete, p50 / p99 | {a50} / {a99} | `/healthz` p50 / p99: {h50} / {h99} | p99 ≤ 20 ms |\n\
         | accepted 50-id bulk deletes per second | {deletes:.0}/s | `/healthz`: {healthz:.0}/s | 20,000/s |\n\
         | job listing page 1, p50 / p99 | {l50} / {l99} | — | p99 ≤ 5 ms |\n\
         | job listing page {pages}, p50 / p99 | {d50} / {d99} | page 1 (above) | p99 ≤ 5 ms, flat |\n\
         | `/metrics` scrape, p50 / p99 | {m50} / {m99} | `/healthz` (first row) | none set |\n\
         | peak RSS accepting a {mb:.1} MB body (status {status}) | {hwm_after} KiB | before: RSS {rss_before} KiB, peak {hwm_before} KiB | ≤ 100 MB |\n",
        machine = machine(),
        jobs = options.jobs,
        conns = options.connections,
        secs = options.seconds,
        a50 = ms(percentile(&accept, 0.5)),
        a99 = ms(percentile(&accept, 0.99)),
        h50 = ms(percentile(&health, 0.5)),
        h99 = ms(percentile(&health, 0.99)),
        l50 = ms(percentile(&first_pages, 0.5)),
        l99 = ms(percentile(&first_pages, 0.99)),
        d50 = ms(percentile(&deep_pages, 0.5)),
        d99 = ms(percentile(&deep_pages, 0.99)),
        m50 = ms(percentile(&scrapes, 0.5)),
        m99 = ms(percentile(&scrapes, 0.99)),
        mb = body.len() as f64 / 1_000_000.0,
    );
    println!("{table}");
    if let Some(path) = options.write {
        write_section(&path, &options.section, &table)?;
        eprintln!("wrote {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`, or
/// appends the section when the markers are not there yet.
fn write_section(path: &Path, name: &str, body: &str) -> Result<(), BoxError> {
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
