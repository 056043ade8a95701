//! The load generator: keep-alive HTTP/1.1 over raw TCP (enough client for a benchmark of our own
//! server, and cheap, since it shares the machine's cores with the server), closed-loop loads that
//! count every answer by class, request bodies written by hand, and the queue gauge of `/metrics`.

use crate::BoxError;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Makes the n-th request of a load: method, path, body.
pub type RequestFn = Arc<dyn Fn(u64) -> (String, String, Option<Vec<u8>>) + Send + Sync>;

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    token: String,
}

impl Conn {
    /// Connects to `127.0.0.1:port`; every request carries `token` as its bearer key.
    pub async fn open(port: u16, token: &str) -> Result<Conn, BoxError> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::new(stream), token: token.to_owned() })
    }

    /// Sends one request and reads its answer: status and body.
    pub async fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), BoxError> {
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.token,
            body.len()
        );
        // One write, as HTTP clients send a small request (wrk, hyper): with TCP_NODELAY, a head
        // and a body written apart leave in two segments, and the server wakes and reads twice.
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        self.reader.get_mut().write_all(&request).await?;
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

    /// Sends a request that must be answered `want`; returns the answer's JSON.
    pub async fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        want: u16,
    ) -> Result<Value, BoxError> {
        let (status, payload) = self.send(method, path, body).await?;
        if status != want {
            let text = String::from_utf8_lossy(&payload);
            let text: String = text.chars().take(300).collect();
            return Err(format!("{method} {path} answered {status}, not {want}: {text}").into());
        }
        if payload.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&payload)?)
    }

    /// Opens a connection once the server answers `/healthz` (it may still be starting).
    pub async fn when_ready(port: u16, token: &str) -> Result<Conn, BoxError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut conn) = Conn::open(port, token).await {
                if matches!(conn.send("GET", "/healthz", None).await, Ok((200, _))) {
                    return Ok(conn);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("the server on port {port} did not answer /healthz within 60 s").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The values of the unlabelled `series` in one scrape of `/metrics`, in their order.
    pub async fn metrics(&mut self, series: &[&str]) -> Result<Vec<f64>, BoxError> {
        let (status, body) = self.send("GET", "/metrics", None).await?;
        if status != 200 {
            return Err(format!("/metrics answered {status}").into());
        }
        let text = String::from_utf8_lossy(&body);
        series
            .iter()
            .map(|name| {
                let line = text
                    .lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                    .ok_or_else(|| format!("no {name} in /metrics"))?;
                Ok(line.trim().parse::<f64>()?)
            })
            .collect()
    }

    /// `catalogd_queue_jobs` from `/metrics`: unfinished jobs of every project.
    pub async fn queue_jobs(&mut self) -> Result<u64, BoxError> {
        let values = self.metrics(&["catalogd_queue_jobs"]).await?;
        Ok(values.first().copied().unwrap_or_default() as u64)
    }

    /// Waits until no job is unfinished, polling the queue gauge (one scrape per `DRAIN_POLL`,
    /// rather than a request per job); returns the moment it saw the queue empty.
    pub async fn drained(&mut self) -> Result<Instant, BoxError> {
        loop {
            if self.queue_jobs().await? == 0 {
                return Ok(Instant::now());
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

/// How often [`Conn::drained`] scrapes `/metrics`: each scrape counts the stored jobs, so not
/// too often, and the drain times measured are tens of seconds or more.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// What a load got back, by class of answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Answers {
    /// Answers with the status the load wanted.
    pub wanted: u64,
    /// 429s (the queue bounds or a rate limit).
    pub too_many: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Any other status, and requests lost to a broken connection.
    pub other: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl Answers {
    /// Wanted answers per second.
    pub fn per_second(&self) -> f64 {
        self.wanted as f64 / self.elapsed.as_secs_f64()
    }

    /// Prints what was not wanted, if anything.
    pub fn report(&self, want: u16) {
        if self.too_many + self.server_errors + self.other > 0 {
            eprintln!(
                "  answers not {want}: {} × 429, {} × 5xx, {} other",
                self.too_many, self.server_errors, self.other
            );
        }
    }
}

/// Runs `connections` closed loops of `request` for `seconds`, the connections spread over
/// `ports` in turn (one server process per port); counts every answer by class.
pub async fn load(
    ports: &[u16],
    token: &str,
    connections: usize,
    seconds: u64,
    want: u16,
    request: RequestFn,
) -> Result<Answers, BoxError> {
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for index in 0..connections {
        let port = ports[index % ports.len()];
        let (counts, counter, request, token) = (counts.clone(), counter.clone(), request.clone(), token.to_owned());
        let mut conn = Conn::open(port, &token).await?;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (method, path, body) = request(counter.fetch_add(1, Ordering::Relaxed));
                let class = match conn.send(&method, &path, body.as_deref()).await {
                    Ok((status, _)) if status == want => 0,
                    Ok((429, _)) => 1,
                    Ok((500..=599, _)) => 2,
                    Ok(_) => 3,
                    Err(_) => {
                        // A broken connection: count the request, and go on with a new one.
                        counts[3].fetch_add(1, Ordering::Relaxed);
                        match Conn::open(port, &token).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => return,
                        }
                        continue;
                    }
                };
                counts[class].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await?;
    }
    let answers = Answers {
        wanted: counts[0].load(Ordering::Relaxed),
        too_many: counts[1].load(Ordering::Relaxed),
        server_errors: counts[2].load(Ordering::Relaxed),
        other: counts[3].load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    };
    answers.report(want);
    Ok(answers)
}

/// `{"ids":[...]}` for `ids`, written directly rather than through serde_json: the load
/// generator shares the machine's cores with the server, so its own cost should be small.
pub fn ids_body(ids: impl Iterator<Item = u64>, extra: &str) -> Vec<u8> {
    let mut body = String::with_capacity(20 * 64);
    body.push_str(r#"{"ids":["#);
    for (n, i) in ids.enumerate() {
        let separator = if n == 0 { "" } else { "," };
        let _ = write!(body, r#"{separator}"item-{i:08}""#);
    }
    body.push(']');
    body.push_str(extra);
    body.push('}');
    body.into_bytes()
}

/// `{"items":[...]}` upserting `ids`, each with one small field.
pub fn items_body(ids: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut body = String::with_capacity(40 * 10_000);
    body.push_str(r#"{"items":["#);
    for (n, i) in ids.enumerate() {
        let separator = if n == 0 { "" } else { "," };
        let _ = write!(body, r#"{separator}{{"id":"item-{i:08}","fields":{{"price":{i}}}}}"#);
    }
    body.push_str("]}");
    body.into_bytes()
}
