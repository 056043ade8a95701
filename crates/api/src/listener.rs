//! The accept loop: HTTP/1 connections served by hyper under the axum router, each with a
//! deadline at every stage and all of them under a cap.
//!
//! `axum::serve` keeps a connection for as long as its client likes, so idle sockets, heads sent a
//! byte at a time and bodies shorter than their `Content-Length` pile up until the process runs
//! out of file descriptors and answers nobody. Here a connection is always in one of two phases:
//!
//! - **waiting** for a request head: it must be complete within the header timeout, counted from
//!   the accept for the first request and from the first byte for the next ones; before that first
//!   byte a kept-alive connection may stay idle for the keep-alive timeout (counted from the last
//!   byte the server wrote, so a slow reader of a long answer is not cut while it reads). Past the
//!   deadline the connection is dropped: nothing is in flight.
//! - **busy** from a complete head until its answer's body is handed to hyper: no connection
//!   deadline (a `?wait=` long poll may take a minute), but the request body must arrive whole
//!   within the body timeout, counted from the end of the head. Past it the body reader fails, the
//!   handler answers its error, and hyper closes the connection since the body was not read.
//!
//! hyper's own `header_read_timeout` is not used: it runs from the moment a connection turns idle,
//! so it cannot tell a kept-alive idle connection from a slow head.
//!
//! At most `max_connections` are open at once. A connection accepted at the cap makes the one that
//! has waited longest for a request close (as nginx reuses kept-alive connections when it runs out),
//! so sockets held idle cannot lock others out; if every connection is busy, it waits for one to
//! finish, and further clients wait in the kernel's listen backlog. Reaching the cap, and a failing
//! `accept` (EMFILE), are logged at most once per [`LOG_EVERY`] with the number of occurrences in
//! between, so an attack cannot flood the log.
//!
//! Shutdown: the loop stops accepting; a connection never answered is dropped at once, the others
//! finish the request in flight (if any) and close once its answer is written; the returned future
//! resolves when the last one has.

use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// The bounds every connection is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a whole request head (see the module documentation for when it starts).
    pub header_timeout: Duration,
    /// Time to send a whole request body, from the end of its head.
    pub body_timeout: Duration,
    /// Time a kept-alive connection may stay idle between an answer and the next request.
    pub keep_alive_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// Shortest interval between two log lines about the same accept problem.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How long the loop pauses after an `accept` that failed for want of resources (EMFILE, ENFILE,
/// ENOBUFS): retrying at once would spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections the kernel completes and queues for the accept loop (`listen(2)`'s backlog): where
/// clients wait while the loop is at the cap. The standard library's (and so tokio's) 128 is small
/// for a server that may shed thousands of idle sockets at once; the kernel may lower it further
/// (Linux: `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1_024;

/// A listener on `address` with a backlog of [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restarted
/// server can bind while its predecessor's connections linger in `TIME_WAIT`), as
/// `TcpListener::bind` sets it.
pub fn bind(address: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` resolves, then until every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let registry = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
    let mut at_cap = Throttled::default();
    let mut accept_failed = Throttled::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            // The client gave up before we accepted: nothing to report.
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                if let Some(suppressed) = accept_failed.due(Instant::now()) {
                    tracing::error!(%error, times_since_last_report = suppressed, "cannot accept connections");
                }
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    () = &mut shutdown => break,
                }
                continue;
            }
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: the connection that has waited longest for a request makes room, as
                // nginx reuses kept-alive connections; if every one is busy, the new one waits.
                let shed = registry.shed_longest_waiting();
                if let Some(suppressed) = at_cap.due(Instant::now()) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        times_since_last_report = suppressed,
                        closed_an_idle_connection = shed,
                        "connection cap reached: the connection idle the longest is closed to make room, or \
                         new connections wait for one to close"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break, // never: the semaphore is not closed
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let phase = Arc::new(PhaseCell::new(Instant::now()));
        let registration = registry.add(Arc::clone(&phase));
        let (router, stopping) = (router.clone(), stopping.clone());
        tokio::spawn(async move {
            connection(stream, phase, router, limits, stopping).await;
            drop(registration);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(stopping);
    // Every connection task holds a receiver; this resolves when the last one has finished.
    stop.closed().await;
}

/// The open connections' phases, for choosing one to close at the cap.
#[derive(Debug, Default)]
struct Registry {
    live: Mutex<HashMap<u64, Arc<PhaseCell>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn add(self: &Arc<Self>, phase: Arc<PhaseCell>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.live.lock().unwrap_or_else(PoisonError::into_inner).insert(id, phase);
        Registration { registry: Arc::clone(self), id }
    }

    /// Tells the connection waiting longest for a request (idle, or sending a head) to close;
    /// false when every connection is busy.
    fn shed_longest_waiting(&self) -> bool {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let longest = live
            .values()
            .filter_map(|phase| phase.waiting_since().map(|since| (since, phase)))
            .min_by_key(|(since, _)| *since);
        match longest {
            Some((_, phase)) => {
                phase.shed();
                true
            }
            None => false,
        }
    }
}

/// A connection's entry in the [`Registry`], removed when dropped.
struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.live.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One connection, from accept to close.
async fn connection(
    stream: TcpStream,
    phase: Arc<PhaseCell>,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched { inner: stream, phase: Arc::clone(&phase) });
    let service = {
        let phase = Arc::clone(&phase);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = BusyGuard::new(&phase);
            let deadline = Instant::now() + limits.body_timeout;
            let request = request.map(|body| Body::new(DeadlineBody::new(body, deadline, limits.body_timeout)));
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| BusyBody { inner: body, _busy: busy }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stop_requested = *stopping.borrow();
    let mut closing = false;
    loop {
        // Registered before the phase is read, so a change made in between still wakes us.
        let changed = phase.changed.notified();
        if !closing && (stop_requested || phase.is_shed()) {
            // hyper closes it once the answer in flight, if any, is written and flushed.
            closing = true;
            conn.as_mut().graceful_shutdown();
        }
        let deadline = phase.deadline(&limits, closing);
        let expiry = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            finished = conn.as_mut() => {
                if let Err(error) = finished {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = changed => {}
            () = expiry => {
                // The phase may have moved since the deadline was computed (a request began).
                if phase.deadline(&limits, closing).is_some_and(|deadline| deadline <= Instant::now()) {
                    tracing::debug!(phase = ?phase.get(), "connection closed: past its deadline");
                    return;
                }
            }
            Ok(()) = stopping.changed(), if !stop_requested => stop_requested = true,
        }
    }
}

/// Where a connection is; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head.
    Waiting {
        /// No request has been served on this connection yet.
        first: bool,
        /// The accept, or the last time the server wrote to the connection.
        since: Instant,
        /// When the first byte of the head arrived, if it has.
        first_byte: Option<Instant>,
    },
    /// A request has been handed to the router and its answer's body is not yet done.
    Busy,
}

/// A connection's [`Phase`], shared by its task, its I/O and its requests.
#[derive(Debug)]
struct PhaseCell {
    phase: Mutex<Phase>,
    /// Chosen to make room at the cap: closes as soon as it is waiting.
    shed: AtomicBool,
    /// Woken when the phase changes in a way that moves the deadline.
    changed: Notify,
}

impl PhaseCell {
    fn new(accepted: Instant) -> Self {
        PhaseCell {
            phase: Mutex::new(Phase::Waiting { first: true, since: accepted, first_byte: None }),
            shed: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn get(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut Phase) -> bool) {
        let moved = change(&mut self.phase.lock().unwrap_or_else(PoisonError::into_inner));
        if moved {
            self.changed.notify_one();
        }
    }

    /// The connection's deadline in its current phase; none while busy. Once it is `closing`
    /// (shutdown, or shed at the cap), a connection that was never answered closes at once; one
    /// that was is closed by hyper when its last answer is flushed, within its usual deadline.
    fn deadline(&self, limits: &ConnectionLimits, closing: bool) -> Option<Instant> {
        match self.get() {
            Phase::Busy => None,
            Phase::Waiting { first: true, since, .. } if closing => Some(since),
            Phase::Waiting { first: true, since, .. } => Some(since + limits.header_timeout),
            Phase::Waiting { first: false, first_byte: Some(at), .. } => Some(at + limits.header_timeout),
            Phase::Waiting { first: false, since, first_byte: None } => Some(since + limits.keep_alive_timeout),
        }
    }

    /// Chosen to make room at the cap.
    fn is_shed(&self) -> bool {
        self.shed.load(Ordering::Relaxed)
    }

    /// Since when the connection has waited for a request, unless it is busy or already shed.
    fn waiting_since(&self) -> Option<Instant> {
        match self.get() {
            Phase::Waiting { since, .. } if !self.is_shed() => Some(since),
            _ => None,
        }
    }

    fn shed(&self) {
        self.shed.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }

    fn begin_request(&self) {
        self.update(|phase| {
            *phase = Phase::Busy;
            true
        });
    }

    fn end_request(&self, now: Instant) {
        self.update(|phase| {
            *phase = Phase::Waiting { first: false, since: now, first_byte: None };
            true
        });
    }

    fn read_some(&self, now: Instant) {
        self.update(|phase| match phase {
            Phase::Waiting { first_byte: first_byte @ None, .. } => {
                *first_byte = Some(now);
                true
            }
            _ => false,
        });
    }

    fn wrote_some(&self, now: Instant) {
        // Only an idle connection's deadline counts from the last write; the notification is not
        // needed since the deadline only moves later.
        self.update(|phase| {
            if let Phase::Waiting { first: false, since, first_byte: None } = phase {
                *since = now;
            }
            false
        });
    }
}

/// Held by a request's answer until hyper has taken its whole body; then the connection waits
/// for the next request.
#[derive(Debug)]
struct BusyGuard(Arc<PhaseCell>);

impl BusyGuard {
    fn new(phase: &Arc<PhaseCell>) -> Self {
        phase.begin_request();
        BusyGuard(Arc::clone(phase))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.end_request(Instant::now());
    }
}

/// The connection's socket, telling its [`PhaseCell`] when bytes come and go.
struct Watched {
    inner: TcpStream,
    phase: Arc<PhaseCell>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.phase.read_some(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.phase.wrote_some(Instant::now());
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.phase.wrote_some(Instant::now());
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An answer's body, holding the connection busy until hyper drops it.
struct BusyBody {
    inner: Body,
    _busy: BusyGuard,
}

impl http_body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive whole within {} s", .0.as_secs())]
pub struct BodyTimeout(Duration);

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, deadline: Instant, timeout: Duration) -> Self {
        DeadlineBody { inner, deadline: Box::pin(tokio::time::sleep_until(deadline)), timeout }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(timeout_s = self.timeout.as_secs(), "request body timed out");
            return Poll::Ready(Some(Err(BodyTimeout(self.timeout).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Says when a recurring problem is due for a log line: the first time, then at most once per
/// [`LOG_EVERY`], with how many times it happened in between.
#[derive(Debug, Default)]
struct Throttled {
    last: Option<Instant>,
    since_last: u64,
}

impl Throttled {
    /// `Some(times since the last line)` when a line is due at `now`.
    fn due(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.since_last += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.since_last))
            }
        }
    }
}

/// Raises the soft open-file limit to the hard one, so the connection cap and the database pool
/// have room, and returns the soft limit now in force (`None` where there is no such limit or it
/// cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            match before {
                Some((soft, hard)) if soft < now => {
                    tracing::info!(from = soft, to = now, hard, "raised the soft open-file limit");
                }
                _ => tracing::debug!(limit = now, "open-file limit"),
            }
            Some(now)
        }
        Err(error) => {
            tracing::warn!(%error, ?before, "cannot raise the soft open-file limit");
            before.map(|(soft, _)| soft)
        }
    }
}

/// File descriptors kept for everything but client connections: the listener, the runtime, the
/// log, the database pool (a SQLite connection holds three files) and a margin.
pub const RESERVED_FILES: u64 = 128;

/// The connection cap that fits `open_file_limit`: `wanted`, or fewer when the limit cannot hold
/// that many connections besides [`RESERVED_FILES`].
pub fn cap_for_file_limit(wanted: u64, open_file_limit: Option<u64>) -> u64 {
    match open_file_limit {
        Some(limit) => wanted.min(limit.saturating_sub(RESERVED_FILES)).max(1),
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 10,
        }
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let accepted = Instant::now();
        let at = |secs| accepted + Duration::from_secs(secs);
        let cell = PhaseCell::new(accepted);
        let limits = limits();
        assert_eq!(cell.deadline(&limits, true), Some(accepted), "never answered: closed at once when closing");
        assert_eq!(
            cell.deadline(&limits, false),
            Some(accepted + limits.header_timeout),
            "first head: from the accept"
        );
        cell.read_some(at(5));
        assert_eq!(cell.deadline(&limits, false), Some(accepted + limits.header_timeout), "still from the accept");

        cell.begin_request();
        assert_eq!(cell.deadline(&limits, false), None, "no deadline while busy");
        assert_eq!(cell.deadline(&limits, true), None, "a busy connection finishes its request when closing");
        cell.read_some(at(50));
        cell.wrote_some(at(60));
        assert_eq!(cell.deadline(&limits, false), None, "reads and writes of a busy connection move nothing");
        cell.end_request(at(100));
        assert_eq!(cell.deadline(&limits, false), Some(at(100) + limits.keep_alive_timeout), "idle: keep-alive");
        assert_eq!(cell.deadline(&limits, true), Some(at(100) + limits.keep_alive_timeout), "hyper closes it");

        cell.wrote_some(at(103));
        assert_eq!(cell.deadline(&limits, false), Some(at(103) + limits.keep_alive_timeout), "from the last write");

        cell.read_some(at(105));
        cell.read_some(at(106));
        cell.wrote_some(at(107));
        assert_eq!(
            cell.deadline(&limits, false),
            Some(at(105) + limits.header_timeout),
            "next head: from its first byte"
        );
    }

    #[test]
    fn at_the_cap_the_connection_waiting_longest_is_shed() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let registry = Arc::new(Registry::default());
        let cells: Vec<_> = (0..3).map(|n| Arc::new(PhaseCell::new(at(n)))).collect();
        cells[0].begin_request();
        let registrations: Vec<_> = cells.iter().map(|cell| registry.add(Arc::clone(cell))).collect();

        assert!(registry.shed_longest_waiting());
        assert_eq!(cells.iter().map(|c| c.is_shed()).collect::<Vec<_>>(), [false, true, false], "the oldest idle");
        assert!(registry.shed_longest_waiting(), "then the next one, not the one already shed");
        assert_eq!(cells.iter().map(|c| c.is_shed()).collect::<Vec<_>>(), [false, true, true]);
        assert!(!registry.shed_longest_waiting(), "a busy connection is never shed");

        drop(registrations);
        assert!(registry.live.lock().unwrap_or_else(PoisonError::into_inner).is_empty(), "closed ones leave");
    }

    #[test]
    fn throttled_reports_once_per_interval_with_the_count() {
        let start = Instant::now();
        let mut throttled = Throttled::default();
        assert_eq!(throttled.due(start), Some(0));
        assert_eq!(throttled.due(start), None);
        assert_eq!(throttled.due(start + LOG_EVERY / 2), None);
        assert_eq!(throttled.due(start + LOG_EVERY), Some(2));
        assert_eq!(throttled.due(start + LOG_EVERY), None);
    }

    #[test]
    fn the_cap_leaves_room_for_other_files() {
        assert_eq!(cap_for_file_limit(4_096, Some(1_048_576)), 4_096);
        assert_eq!(cap_for_file_limit(4_096, Some(1_024)), 1_024 - RESERVED_FILES);
        assert_eq!(cap_for_file_limit(4_096, Some(10)), 1);
        assert_eq!(cap_for_file_limit(4_096, None), 4_096);
    }
}
