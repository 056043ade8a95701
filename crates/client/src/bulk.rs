//! Bulk changes of any size: validate with catalog-domain, chunk, submit concurrently with one
//! idempotency key per chunk, retry, and report.
//!
//! The input is pulled one element at a time, so millions of ids never sit in memory at once:
//! what is held is the chunks being built or in flight (at most `concurrency + 1` of them) and,
//! to find duplicates across the whole input, a 128-bit fingerprint and a position per valid id
//! (24 bytes, no allocation of its own) rather than the id itself. Two different ids share a
//! fingerprint with a probability of about n²/2¹²⁹ — for a billion ids, below 10⁻²⁰ — and that is
//! the only way a valid id could be wrongly reported as a duplicate.

use crate::client::{insert_job_fields, BulkRoute, Client, RetryNotice};
use crate::error::{Error, Result};
use crate::retry::new_idempotency_key;
use crate::types::{ItemInput, ItemResult, ItemResultError, Job};
use catalog_domain::{check_id, validate_catalog_name, Dialect, IdProblem};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::Map;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Most inputs the native API takes in one request.
pub const MAX_ITEMS_PER_REQUEST: usize = Dialect::Native.limits().max_items_per_request;

/// Largest request body the native API takes, in bytes.
pub const MAX_BODY_BYTES: usize = Dialect::Native.limits().max_body_bytes;

/// Chunks in flight at once by default: enough to hide a round trip, few enough that a
/// rate-limited server is not flooded with requests it will refuse.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// An input the caller could not decode (a malformed line of a file, say). It keeps its position,
/// so the indexes of the report still match the caller's input, and is reported, never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableInput {
    /// What was wrong with it.
    pub message: String,
    /// Its id, when the caller could tell.
    pub id: Option<String>,
}

/// Why an input was not sent, or was refused by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The id breaks the native id rule, or repeats an earlier input's id (catalog-domain's
    /// [`IdProblem::Duplicate`], whose `first_index` is the earlier input's index).
    InvalidId(IdProblem),
    /// The item alone would make a request body over the server's limit.
    ItemTooLarge {
        /// Its serialized size.
        bytes: usize,
        /// The most one item may take.
        max: usize,
    },
    /// The caller could not decode the input.
    Unreadable(String),
    /// The server refused the input although it passed the client's checks.
    Server(ItemResultError),
}

impl Problem {
    /// A stable snake_case reason: catalog-domain's id reasons (`invalid_character`,
    /// `duplicate_id`...), `item_too_large`, `unreadable`, or the server's reason.
    pub fn reason(&self) -> &str {
        match self {
            Problem::InvalidId(problem) => problem.reason(),
            Problem::ItemTooLarge { .. } => "item_too_large",
            Problem::Unreadable(_) => "unreadable",
            Problem::Server(error) => &error.reason,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // catalog-domain words this for one request; here the index is in the whole input.
            Problem::InvalidId(IdProblem::Duplicate { first_index }) => {
                write!(f, "the id appears earlier in the input, at index {first_index}")
            }
            Problem::InvalidId(problem) => write!(f, "{problem}"),
            Problem::ItemTooLarge { bytes, max } => {
                write!(f, "the item takes {bytes} bytes, more than the {max} one request may carry")
            }
            Problem::Unreadable(message) => f.write_str(message),
            Problem::Server(error) => write!(f, "refused by the server: {}", error.message),
        }
    }
}

/// One input that was not part of any job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its position in the input, from 0.
    pub index: u64,
    /// Its id, when it had one.
    pub id: Option<String>,
    /// Why.
    pub problem: Problem,
}

/// The native id rule plus uniqueness across everything checked so far.
///
/// See the module documentation for how duplicates are remembered.
#[derive(Debug)]
pub struct IdChecker {
    seen: HashMap<u128, u64>,
    hashers: [RandomState; 2],
}

impl Default for IdChecker {
    fn default() -> Self {
        IdChecker::new()
    }
}

impl IdChecker {
    /// A checker that has seen nothing.
    pub fn new() -> Self {
        // Two independently keyed SipHashes make the 128-bit fingerprint; random keys mean no
        // input can be crafted to collide.
        IdChecker { seen: HashMap::new(), hashers: [RandomState::new(), RandomState::new()] }
    }

    /// Checks the id of the input at `index`; a valid id is remembered, so a later equal one is
    /// reported as [`IdProblem::Duplicate`] pointing here.
    pub fn check(&mut self, index: u64, id: &str) -> Result<(), IdProblem> {
        check_id(Dialect::Native, id)?;
        let high = u128::from(self.hashers[0].hash_one(id));
        let low = u128::from(self.hashers[1].hash_one(id));
        match self.seen.entry(high << 64 | low) {
            Entry::Occupied(first) => {
                Err(IdProblem::Duplicate { first_index: usize::try_from(*first.get()).unwrap_or(usize::MAX) })
            }
            Entry::Vacant(slot) => {
                slot.insert(index);
                Ok(())
            }
        }
    }

    /// Distinct valid ids seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True before any valid id was seen.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Hears what a bulk run does, as it happens (for progress bars). Called from several tasks.
pub type Observer = Arc<dyn Fn(&BulkEvent<'_>) + Send + Sync>;

/// Something that happened during a bulk run.
#[derive(Debug)]
#[non_exhaustive]
pub enum BulkEvent<'a> {
    /// An input was not sent, or was refused by the server.
    Rejected(&'a Rejection),
    /// A chunk is complete and about to be submitted (in a dry run: would be).
    ChunkQueued {
        /// The chunk's number, from 0.
        chunk: usize,
        /// Inputs in it.
        items: usize,
    },
    /// A chunk's request failed and will be repeated, with the same idempotency key.
    ChunkRetrying {
        /// The chunk's number.
        chunk: usize,
        /// The retry and its cause.
        notice: &'a RetryNotice<'a>,
    },
    /// The server accepted a chunk.
    ChunkAccepted(&'a ChunkOutcome),
    /// A chunk could not be submitted; its inputs are in no job.
    ChunkFailed(&'a ChunkFailure),
}

/// How a bulk run goes.
#[derive(Clone)]
pub struct BulkOptions {
    /// Chunks in flight at once (at least 1).
    pub concurrency: usize,
    /// Inputs per request, 1 to [`MAX_ITEMS_PER_REQUEST`]; a chunk may hold fewer to stay under
    /// `max_body_bytes`.
    pub chunk_size: usize,
    /// Largest request body to send, at most [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Don't start the jobs before this time (RFC 3339).
    pub start_at: Option<String>,
    /// Free text stored with every job.
    pub description: Option<String>,
    /// The caller's reference stored with every job.
    pub reference_id: Option<String>,
    /// Validate and chunk, but send nothing: the report's `rejected`, `valid` and
    /// `planned_chunks` say what a real run would do.
    pub dry_run: bool,
    /// Hears events as they happen.
    pub observer: Option<Observer>,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            concurrency: DEFAULT_CONCURRENCY,
            chunk_size: MAX_ITEMS_PER_REQUEST,
            max_body_bytes: MAX_BODY_BYTES,
            start_at: None,
            description: None,
            reference_id: None,
            dry_run: false,
            observer: None,
        }
    }
}

impl fmt::Debug for BulkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkOptions")
            .field("concurrency", &self.concurrency)
            .field("chunk_size", &self.chunk_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("start_at", &self.start_at)
            .field("description", &self.description)
            .field("reference_id", &self.reference_id)
            .field("dry_run", &self.dry_run)
            .field("observer", &self.observer.as_ref().map(|_| "set"))
            .finish()
    }
}

impl BulkOptions {
    /// These options with an observer.
    pub fn with_observer(mut self, observer: impl Fn(&BulkEvent<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    fn emit(&self, event: &BulkEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }
}

/// A chunk the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkOutcome {
    /// The chunk's number, from 0, in input order.
    pub chunk: usize,
    /// Input index of its first input.
    pub first_index: u64,
    /// Input index of its last input.
    pub last_index: u64,
    /// Inputs sent.
    pub items: usize,
    /// Inputs the server accepted into the job.
    pub accepted: usize,
    /// The `Idempotency-Key` it was sent with (every try of the chunk used this one).
    pub idempotency_key: String,
    /// Tries it took.
    pub attempts: u32,
    /// True when the server answered a retry with the job an earlier try had created.
    pub replayed: bool,
    /// The job.
    pub job: Option<Job>,
}

/// A chunk that could not be submitted.
#[derive(Debug)]
pub struct ChunkFailure {
    /// The chunk's number, from 0.
    pub chunk: usize,
    /// Input index of its first input.
    pub first_index: u64,
    /// Input index of its last input.
    pub last_index: u64,
    /// Inputs in it.
    pub items: usize,
    /// The `Idempotency-Key` it was sent with: resend the same body with it to finish safely.
    pub idempotency_key: String,
    /// The last failure.
    pub error: Error,
}

/// What a bulk run did.
#[derive(Debug, Default)]
pub struct BulkReport {
    /// Inputs read.
    pub read: u64,
    /// Inputs that passed the client's checks.
    pub valid: u64,
    /// Inputs the server accepted into a job.
    pub accepted: u64,
    /// Inputs not sent, or refused by the server, in input order.
    pub rejected: Vec<Rejection>,
    /// Accepted chunks, in chunk order.
    pub chunks: Vec<ChunkOutcome>,
    /// Chunks that could not be submitted, in chunk order.
    pub failures: Vec<ChunkFailure>,
    /// Chunks built (sent, or in a dry run, that would have been sent).
    pub planned_chunks: usize,
    /// True when the run stopped early because a chunk got an answer every later chunk would get
    /// too (401, 403, 404: a bad token, a missing scope, no such catalog): the rest of the input
    /// was neither read nor sent.
    pub stopped_early: bool,
}

impl BulkReport {
    /// The jobs created, in chunk order.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.chunks.iter().filter_map(|chunk| chunk.job.as_ref())
    }

    /// True when every input is in a job: nothing rejected, no chunk failed, the whole input read.
    pub fn is_success(&self) -> bool {
        self.rejected.is_empty() && self.failures.is_empty() && !self.stopped_early
    }
}

/// An input of a bulk route.
trait Payload {
    fn id(&self) -> &str;
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl Payload for String {
    fn id(&self) -> &str {
        self
    }

    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

impl Payload for ItemInput {
    fn id(&self) -> &str {
        &self.id
    }

    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// The bytes around a chunk's inputs: `{"ids":[` ... `],"description":...}`.
struct Envelope {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl Envelope {
    fn new(route: BulkRoute, options: &BulkOptions) -> Result<Envelope> {
        let mut fields = Map::new();
        insert_job_fields(&mut fields, &options.start_at, &options.description, &options.reference_id);
        let mut suffix = b"]".to_vec();
        for (name, value) in &fields {
            suffix.push(b',');
            serde_json::to_writer(&mut suffix, name).map_err(|e| Error::InvalidInput(e.to_string()))?;
            suffix.push(b':');
            serde_json::to_writer(&mut suffix, value).map_err(|e| Error::InvalidInput(e.to_string()))?;
        }
        suffix.push(b'}');
        Ok(Envelope { prefix: format!("{{\"{}\":[", route.field()).into_bytes(), suffix })
    }

    fn overhead(&self) -> usize {
        self.prefix.len() + self.suffix.len()
    }

    fn wrap(&self, entries: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.overhead() + entries.len());
        body.extend_from_slice(&self.prefix);
        body.extend_from_slice(entries);
        body.extend_from_slice(&self.suffix);
        body
    }
}

/// The chunk being filled.
#[derive(Default)]
struct Pending {
    indexes: Vec<u64>,
    ids: Vec<String>,
    /// The inputs' JSON, comma-separated.
    entries: Vec<u8>,
}

impl Pending {
    fn len(&self) -> usize {
        self.indexes.len()
    }

    /// The entries' size once `entry` is added.
    fn size_with(&self, entry: &[u8]) -> usize {
        self.entries.len() + usize::from(!self.entries.is_empty()) + entry.len()
    }

    fn push(&mut self, index: u64, id: &str, entry: &[u8]) {
        if !self.entries.is_empty() {
            self.entries.push(b',');
        }
        self.entries.extend_from_slice(entry);
        self.indexes.push(index);
        self.ids.push(id.to_owned());
    }
}

/// What the driver keeps about a chunk in flight, to map the server's per-input results back to
/// input positions.
struct ChunkMeta {
    chunk: usize,
    key: String,
    indexes: Vec<u64>,
    ids: Vec<String>,
}

type ChunkResult = Result<(crate::types::BulkResponse, u32)>;

/// One bulk run.
struct Run<'a> {
    client: &'a Client,
    catalog: &'a str,
    route: BulkRoute,
    options: &'a BulkOptions,
    envelope: Envelope,
    chunk_size: usize,
    concurrency: usize,
    /// Most bytes the entries of one chunk may take.
    max_entries: usize,
    checker: IdChecker,
    pending: Pending,
    tasks: JoinSet<ChunkResult>,
    in_flight: HashMap<tokio::task::Id, ChunkMeta>,
    report: BulkReport,
}

impl<'a> Run<'a> {
    fn new(client: &'a Client, catalog: &'a str, route: BulkRoute, options: &'a BulkOptions) -> Result<Self> {
        validate_catalog_name(catalog).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let envelope = Envelope::new(route, options)?;
        let max_body = options.max_body_bytes.min(MAX_BODY_BYTES);
        let max_entries = max_body.checked_sub(envelope.overhead()).filter(|&room| room > 0).ok_or_else(|| {
            Error::InvalidInput(format!("max_body_bytes {max_body} leaves no room for inputs after the job fields"))
        })?;
        Ok(Run {
            client,
            catalog,
            route,
            options,
            envelope,
            chunk_size: options.chunk_size.clamp(1, MAX_ITEMS_PER_REQUEST),
            concurrency: options.concurrency.max(1),
            max_entries,
            checker: IdChecker::new(),
            pending: Pending::default(),
            tasks: JoinSet::new(),
            in_flight: HashMap::new(),
            report: BulkReport::default(),
        })
    }

    fn reject(&mut self, index: u64, id: Option<String>, problem: Problem) {
        let rejection = Rejection { index, id, problem };
        self.options.emit(&BulkEvent::Rejected(&rejection));
        self.report.rejected.push(rejection);
    }

    async fn add<T: Payload>(&mut self, index: u64, input: std::result::Result<T, UnreadableInput>) {
        self.report.read += 1;
        let input = match input {
            Ok(input) => input,
            Err(unreadable) => return self.reject(index, unreadable.id, Problem::Unreadable(unreadable.message)),
        };
        let mut entry = Vec::new();
        if let Err(error) = input.write_json(&mut entry) {
            return self.reject(index, Some(input.id().to_owned()), Problem::Unreadable(error.to_string()));
        }
        // Size before uniqueness, so an id is remembered only when its input will be sent.
        if entry.len() > self.max_entries {
            let problem = Problem::ItemTooLarge { bytes: entry.len(), max: self.max_entries };
            return self.reject(index, Some(input.id().to_owned()), problem);
        }
        if let Err(problem) = self.checker.check(index, input.id()) {
            return self.reject(index, Some(input.id().to_owned()), Problem::InvalidId(problem));
        }
        self.report.valid += 1;
        if self.pending.len() > 0 && self.pending.size_with(&entry) > self.max_entries {
            // The body limit closes this chunk before the count does.
            self.flush().await;
        }
        self.pending.push(index, input.id(), &entry);
        if self.pending.len() >= self.chunk_size {
            self.flush().await;
        }
    }

    /// Submits the pending chunk, first waiting for a free slot.
    async fn flush(&mut self) {
        if self.pending.len() == 0 {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let chunk = self.report.planned_chunks;
        self.report.planned_chunks += 1;
        self.options.emit(&BulkEvent::ChunkQueued { chunk, items: pending.len() });
        if self.options.dry_run {
            return;
        }
        while self.tasks.len() >= self.concurrency {
            self.join_one().await;
        }
        if self.report.stopped_early {
            return;
        }
        let body = self.envelope.wrap(&pending.entries);
        let meta = ChunkMeta { chunk, key: new_idempotency_key(), indexes: pending.indexes, ids: pending.ids };
        let (client, catalog, route, key) =
            (self.client.clone(), self.catalog.to_owned(), self.route, meta.key.clone());
        let observer = self.options.observer.clone();
        let handle = self.tasks.spawn(async move {
            let mut on_retry = |notice: &RetryNotice<'_>| {
                if let Some(observer) = &observer {
                    observer(&BulkEvent::ChunkRetrying { chunk, notice });
                }
            };
            client.submit_bulk_bytes(&catalog, route, body, Some(&key), &mut on_retry).await
        });
        self.in_flight.insert(handle.id(), meta);
    }

    /// Waits for one chunk in flight and records it.
    async fn join_one(&mut self) {
        let (id, result) = match self.tasks.join_next_with_id().await {
            None => return,
            Some(Ok((id, result))) => (id, result),
            Some(Err(join_error)) => {
                // Only a panic gets here (nothing aborts these tasks); the chunk's fate is unknown,
                // so it is reported as failed with its key, never silently dropped.
                let message = format!("the submitting task failed: {join_error}");
                (join_error.id(), Err(Error::InvalidInput(message)))
            }
        };
        if let Some(meta) = self.in_flight.remove(&id) {
            self.record(meta, result);
        }
    }

    /// Records chunks that already finished, without waiting.
    fn reap(&mut self) {
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            let (id, result) = match joined {
                Ok((id, result)) => (id, result),
                Err(join_error) => {
                    let message = format!("the submitting task failed: {join_error}");
                    (join_error.id(), Err(Error::InvalidInput(message)))
                }
            };
            if let Some(meta) = self.in_flight.remove(&id) {
                self.record(meta, result);
            }
        }
    }

    fn record(&mut self, meta: ChunkMeta, result: ChunkResult) {
        let first_index = meta.indexes.first().copied().unwrap_or_default();
        let last_index = meta.indexes.last().copied().unwrap_or_default();
        let items = meta.indexes.len();
        match result {
            Ok((response, attempts)) => {
                let mut accepted = 0;
                for result in &response.results {
                    match result {
                        ItemResult::Accepted { .. } => accepted += 1,
                        ItemResult::Rejected { index, error } => {
                            let position = usize::try_from(*index).unwrap_or(usize::MAX);
                            let input_index = meta.indexes.get(position).copied().unwrap_or(first_index);
                            let id = meta.ids.get(position).cloned();
                            self.reject(input_index, id, Problem::Server(error.clone()));
                        }
                    }
                }
                self.report.accepted += accepted as u64;
                let outcome = ChunkOutcome {
                    chunk: meta.chunk,
                    first_index,
                    last_index,
                    items,
                    accepted,
                    idempotency_key: meta.key,
                    attempts,
                    replayed: response.replayed,
                    job: response.job,
                };
                self.options.emit(&BulkEvent::ChunkAccepted(&outcome));
                self.report.chunks.push(outcome);
            }
            Err(error) => {
                if matches!(error.status(), Some(401 | 403 | 404)) {
                    self.report.stopped_early = true;
                }
                let failure = ChunkFailure {
                    chunk: meta.chunk,
                    first_index,
                    last_index,
                    items,
                    idempotency_key: meta.key,
                    error,
                };
                self.options.emit(&BulkEvent::ChunkFailed(&failure));
                self.report.failures.push(failure);
            }
        }
    }

    async fn finish(mut self) -> BulkReport {
        if !self.report.stopped_early {
            self.flush().await;
        }
        while !self.tasks.is_empty() {
            self.join_one().await;
        }
        self.report.rejected.sort_by_key(|r| r.index);
        self.report.chunks.sort_by_key(|c| c.chunk);
        self.report.failures.sort_by_key(|f| f.chunk);
        self.report
    }
}

/// Runs `inputs` through a bulk route.
async fn run<T, S>(
    client: &Client,
    catalog: &str,
    route: BulkRoute,
    inputs: S,
    options: &BulkOptions,
) -> Result<BulkReport>
where
    T: Payload,
    S: Stream<Item = std::result::Result<T, UnreadableInput>>,
{
    let mut run = Run::new(client, catalog, route, options)?;
    let mut inputs = std::pin::pin!(inputs);
    let mut index = 0u64;
    while let Some(input) = inputs.next().await {
        if run.report.stopped_early {
            break;
        }
        run.add(index, input).await;
        index += 1;
        // Now and then, record finished chunks so progress is heard while input is still read.
        if index.is_multiple_of(1_024) {
            run.reap();
        }
    }
    Ok(run.finish().await)
}

impl Client {
    /// Deletes any number of items by id: checks every id with the native rule and for
    /// duplicates across the whole input (bad ones are reported in
    /// [`BulkReport::rejected`] and not sent), chunks the rest to the server's limit, submits the
    /// chunks `options.concurrency` at a time, each with its own `Idempotency-Key` (so a retry
    /// never creates a second job), retries per the client's [`crate::RetryPolicy`], and returns
    /// what happened. Fails only when nothing could start (a bad catalog name or options);
    /// chunk failures are in the report.
    ///
    /// `ids` is pulled lazily on the calling task; a source that blocks should be a stream
    /// (see [`Client::bulk_delete_stream`]).
    pub async fn bulk_delete<I>(&self, catalog: &str, ids: I, options: &BulkOptions) -> Result<BulkReport>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let inputs = stream::iter(ids.into_iter().map(|id| Ok::<String, UnreadableInput>(id.into())));
        run(self, catalog, BulkRoute::Delete, inputs, options).await
    }

    /// [`Client::bulk_delete`] for a stream of ids, some of which the caller may have failed to read.
    pub async fn bulk_delete_stream<S>(&self, catalog: &str, ids: S, options: &BulkOptions) -> Result<BulkReport>
    where
        S: Stream<Item = std::result::Result<String, UnreadableInput>>,
    {
        run(self, catalog, BulkRoute::Delete, ids, options).await
    }

    /// Creates or replaces any number of items, as [`Client::bulk_delete`] deletes: validated,
    /// chunked by count and by body size, submitted concurrently with idempotency keys.
    pub async fn bulk_upsert<I>(&self, catalog: &str, items: I, options: &BulkOptions) -> Result<BulkReport>
    where
        I: IntoIterator<Item = ItemInput>,
    {
        let inputs = stream::iter(items.into_iter().map(Ok::<ItemInput, UnreadableInput>));
        run(self, catalog, BulkRoute::Upsert, inputs, options).await
    }

    /// [`Client::bulk_upsert`] for a stream of items.
    pub async fn bulk_upsert_stream<S>(&self, catalog: &str, items: S, options: &BulkOptions) -> Result<BulkReport>
    where
        S: Stream<Item = std::result::Result<ItemInput, UnreadableInput>>,
    {
        run(self, catalog, BulkRoute::Upsert, items, options).await
    }

    /// Changes some fields of any number of items, as [`Client::bulk_upsert`] does.
    pub async fn bulk_patch<I>(&self, catalog: &str, items: I, options: &BulkOptions) -> Result<BulkReport>
    where
        I: IntoIterator<Item = ItemInput>,
    {
        let inputs = stream::iter(items.into_iter().map(Ok::<ItemInput, UnreadableInput>));
        run(self, catalog, BulkRoute::Patch, inputs, options).await
    }

    /// [`Client::bulk_patch`] for a stream of items.
    pub async fn bulk_patch_stream<S>(&self, catalog: &str, items: S, options: &BulkOptions) -> Result<BulkReport>
    where
        S: Stream<Item = std::result::Result<ItemInput, UnreadableInput>>,
    {
        run(self, catalog, BulkRoute::Patch, items, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;
    use serde_json::{json, Value};
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn offline_client() -> Client {
        // Port 9 (discard) on loopback: nothing listens, and dry runs never connect anyway.
        Client::builder("http://127.0.0.1:9").token("t").build().expect("client")
    }

    fn dry() -> BulkOptions {
        BulkOptions { dry_run: true, ..BulkOptions::default() }
    }

    /// Collects the sizes of the chunks a run builds.
    fn chunk_sizes(options: BulkOptions) -> (BulkOptions, Arc<Mutex<Vec<usize>>>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let options = options.with_observer(move |event| {
            if let BulkEvent::ChunkQueued { items, .. } = event {
                seen.lock().expect("lock").push(*items);
            }
        });
        (options, sizes)
    }

    #[tokio::test]
    async fn chunks_to_the_server_limit() {
        let (options, sizes) = chunk_sizes(dry());
        let ids = (0..25_001).map(|n| format!("id-{n}"));
        let report = offline_client().bulk_delete("c", ids, &options).await.expect("runs");
        assert_eq!(report.read, 25_001);
        assert_eq!(report.valid, 25_001);
        assert_eq!(report.planned_chunks, 3);
        assert_eq!(*sizes.lock().expect("lock"), vec![10_000, 10_000, 5_001]);
        assert!(report.is_success() && report.chunks.is_empty(), "a dry run sends nothing");
    }

    #[tokio::test]
    async fn chunk_size_option_is_clamped() {
        let (options, sizes) = chunk_sizes(BulkOptions { chunk_size: 3, ..dry() });
        offline_client().bulk_delete("c", (0..10).map(|n| n.to_string()), &options).await.expect("runs");
        assert_eq!(*sizes.lock().expect("lock"), vec![3, 3, 3, 1]);
        let (options, sizes) = chunk_sizes(BulkOptions { chunk_size: 50_000, ..dry() });
        offline_client().bulk_delete("c", (0..10_001).map(|n| n.to_string()), &options).await.expect("runs");
        assert_eq!(*sizes.lock().expect("lock"), vec![10_000, 1]);
        let (options, sizes) = chunk_sizes(BulkOptions { chunk_size: 0, ..dry() });
        offline_client().bulk_delete("c", ["a", "b"], &options).await.expect("runs");
        assert_eq!(*sizes.lock().expect("lock"), vec![1, 1]);
    }

    #[tokio::test]
    async fn bad_ids_are_reported_with_reasons_and_not_chunked() {
        let long = "x".repeat(251);
        let ids = vec!["ok-1", "", "has space", long.as_str(), "ok-2", "ok-1", "sl/ash"];
        let report = offline_client().bulk_delete("c", ids, &dry()).await.expect("runs");
        assert_eq!(report.valid, 2);
        let got: Vec<(u64, &str)> = report.rejected.iter().map(|r| (r.index, r.problem.reason())).collect();
        assert_eq!(
            got,
            vec![
                (1, "empty_id"),
                (2, "invalid_character"),
                (3, "id_too_long"),
                (5, "duplicate_id"),
                (6, "invalid_character")
            ]
        );
        assert_eq!(report.rejected[3].problem, Problem::InvalidId(IdProblem::Duplicate { first_index: 0 }));
        assert_eq!(report.rejected[1].id.as_deref(), Some("has space"));
        assert!(!report.is_success());
    }

    #[tokio::test]
    async fn duplicates_are_found_across_chunks() {
        let ids = (0..20_000).map(|n| format!("id-{n}")).chain(["id-3".to_owned(), "id-19999".to_owned()]);
        let report = offline_client().bulk_delete("c", ids, &dry()).await.expect("runs");
        let dupes: Vec<_> = report.rejected.iter().map(|r| (r.index, r.problem.clone())).collect();
        assert_eq!(
            dupes,
            vec![
                (20_000, Problem::InvalidId(IdProblem::Duplicate { first_index: 3 })),
                (20_001, Problem::InvalidId(IdProblem::Duplicate { first_index: 19_999 })),
            ]
        );
    }

    #[tokio::test]
    async fn unreadable_inputs_keep_their_position() {
        let inputs = stream::iter(vec![
            Ok("a".to_owned()),
            Err(UnreadableInput { message: "not UTF-8".into(), id: None }),
            Ok("b".to_owned()),
        ]);
        let report = offline_client().bulk_delete_stream("c", inputs, &dry()).await.expect("runs");
        assert_eq!(report.read, 3);
        assert_eq!(report.valid, 2);
        assert_eq!(report.rejected[0].index, 1);
        assert_eq!(report.rejected[0].problem.reason(), "unreadable");
    }

    #[tokio::test]
    async fn upserts_are_chunked_by_body_size_too() {
        let fields = |n: usize| json!({"blob": "z".repeat(n)}).as_object().cloned().expect("object");
        let items = vec![
            ItemInput::new("a", fields(300)),
            ItemInput::new("b", fields(300)),
            ItemInput::new("too-big", fields(5_000)),
            ItemInput::new("c", fields(300)),
        ];
        let (options, sizes) = chunk_sizes(BulkOptions { max_body_bytes: 1_000, ..dry() });
        let report = offline_client().bulk_upsert("c", items, &options).await.expect("runs");
        // Two 300-byte items fit in 1,000 bytes with the envelope; a third does not.
        assert_eq!(*sizes.lock().expect("lock"), vec![2, 1]);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].problem.reason(), "item_too_large");
        assert_eq!(report.rejected[0].id.as_deref(), Some("too-big"));
    }

    #[tokio::test]
    async fn a_bad_catalog_name_fails_before_reading() {
        let error = offline_client().bulk_delete("no/slash", ["a"], &dry()).await.expect_err("refused");
        assert!(matches!(error, Error::InvalidInput(_)));
    }

    #[test]
    fn envelope_makes_valid_json_with_the_job_fields() {
        let options = BulkOptions {
            description: Some("say \"hi\"".into()),
            reference_id: Some("r".into()),
            ..BulkOptions::default()
        };
        let envelope = Envelope::new(BulkRoute::Delete, &options).expect("envelope");
        let mut pending = Pending::default();
        pending.push(0, "a", br#""a""#);
        pending.push(1, "b", br#""b""#);
        let body: Value = serde_json::from_slice(&envelope.wrap(&pending.entries)).expect("valid JSON");
        assert_eq!(body, json!({"ids": ["a", "b"], "description": "say \"hi\"", "reference_id": "r"}));
        assert_eq!(pending.size_with(br#""c""#), pending.entries.len() + 4);
    }

    #[test]
    fn checker_remembers_only_valid_ids() {
        let mut checker = IdChecker::new();
        assert_eq!(checker.check(0, "a b"), Err(IdProblem::InvalidCharacter { ch: ' ' }));
        assert_eq!(checker.check(1, "a"), Ok(()));
        assert_eq!(checker.check(2, "a"), Err(IdProblem::Duplicate { first_index: 1 }));
        assert_eq!(checker.check(3, "A"), Ok(()), "ids are case-sensitive");
        assert_eq!(checker.len(), 2);
    }

    // ---- against a scripted HTTP server ----

    /// One request the scripted server saw.
    #[derive(Debug, Clone)]
    struct Seen {
        key: Option<String>,
        body: Vec<u8>,
    }

    /// Serves `answer(n, request)` to the n-th request (from 0), one connection per request.
    async fn scripted_server(
        answer: impl Fn(usize, &Seen) -> (u16, String) + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 65_536];
                let (head_end, content_length) = loop {
                    let read = socket.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        break (None, 0);
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0);
                        break (Some(end + 4), length);
                    }
                };
                let Some(head_end) = head_end else { continue };
                while buffer.len() < head_end + content_length {
                    let read = socket.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                }
                let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                let key = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("idempotency-key").then(|| value.trim().to_owned())
                });
                let request = Seen { key, body: buffer[head_end..].to_vec() };
                let n = {
                    let mut log = log.lock().expect("lock");
                    log.push(request.clone());
                    log.len() - 1
                };
                let (status, body) = answer(n, &request);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.ok();
                socket.shutdown().await.ok();
            }
        });
        (format!("http://{address}"), seen)
    }

    fn job_json(id: i64, total: usize) -> Value {
        json!({
            "id": id, "kind": "item_bulk_delete", "status": "queued", "catalog": "c",
            "total_count": total, "completed_count": 0, "failed_count": 0,
            "description": null, "reference_id": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "start_at": null, "started_at": null, "finished_at": null, "expires_at": null
        })
    }

    fn accept(request: &Seen, job_id: i64) -> String {
        let body: Value = serde_json::from_slice(&request.body).expect("client sent JSON");
        let ids = body["ids"].as_array().cloned().unwrap_or_default();
        let results: Vec<Value> =
            ids.iter().enumerate().map(|(index, id)| json!({"index": index, "id": id, "status": "accepted"})).collect();
        json!({"job": job_json(job_id, ids.len()), "results": results}).to_string()
    }

    fn fast_retries(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) }
    }

    #[tokio::test]
    async fn rate_limited_chunks_are_retried_with_the_same_key_and_body() {
        // Every chunk's first two tries are refused with 429; the third is accepted.
        let tries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counts = Arc::clone(&tries);
        let (url, seen) = scripted_server(move |n, request| {
            let key = request.key.clone().unwrap_or_default();
            let mut counts = counts.lock().expect("lock");
            let count = counts.entry(key).or_default();
            *count += 1;
            if *count <= 2 {
                (429, r#"{"error":{"code":"rate_limited","message":"slow down","details":null}}"#.to_owned())
            } else {
                (202, accept(request, n as i64))
            }
        })
        .await;
        let client = Client::builder(url).token("t").retry_policy(fast_retries(5)).build().expect("client");
        let retries = Arc::new(Mutex::new(0u32));
        let heard = Arc::clone(&retries);
        let options =
            BulkOptions { chunk_size: 1_000, concurrency: 3, ..BulkOptions::default() }.with_observer(move |event| {
                if let BulkEvent::ChunkRetrying { .. } = event {
                    *heard.lock().expect("lock") += 1;
                }
            });
        let report = client.bulk_delete("c", (0..4_500).map(|n| format!("id-{n}")), &options).await.expect("runs");
        assert!(report.is_success(), "{report:?}");
        assert_eq!(report.accepted, 4_500);
        assert_eq!(report.chunks.len(), 5);
        assert!(report.chunks.iter().all(|c| c.attempts == 3 && c.job.is_some()));
        assert_eq!(*retries.lock().expect("lock"), 10);
        // Every try of a chunk carried its key and the same bytes; keys differ between chunks.
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 15);
        let mut bodies: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for request in seen.iter() {
            bodies
                .entry(request.key.clone().expect("every bulk request has a key"))
                .or_default()
                .push(request.body.clone());
        }
        assert_eq!(bodies.len(), 5);
        assert!(bodies.values().all(|b| b.len() == 3 && b.iter().all(|body| body == &b[0])));
        let chunk_ids: Vec<usize> = report.chunks.iter().map(|c| c.chunk).collect();
        assert_eq!(chunk_ids, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn retries_are_bounded_and_client_errors_are_not_retried() {
        let (url, seen) = scripted_server(|_, _| {
            (503, r#"{"error":{"code":"unavailable","message":"down","details":null}}"#.to_owned())
        })
        .await;
        let client = Client::builder(&url).token("t").retry_policy(fast_retries(3)).build().expect("client");
        let report = client.bulk_delete("c", ["a", "b"], &BulkOptions::default()).await.expect("runs");
        assert_eq!(seen.lock().expect("lock").len(), 3, "three tries, then give up");
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].error.code(), Some("unavailable"));
        assert_eq!(report.failures[0].items, 2);
        assert!(!report.is_success());

        let (url, seen) = scripted_server(|_, _| {
            (400, r#"{"error":{"code":"no_valid_items","message":"none","details":null}}"#.to_owned())
        })
        .await;
        let client = Client::builder(&url).token("t").retry_policy(fast_retries(3)).build().expect("client");
        let report = client.bulk_delete("c", ["a"], &BulkOptions::default()).await.expect("runs");
        assert_eq!(seen.lock().expect("lock").len(), 1);
        assert_eq!(report.failures[0].error.code(), Some("no_valid_items"));
    }

    #[tokio::test]
    async fn an_error_every_chunk_would_get_stops_the_run() {
        let (url, seen) = scripted_server(|_, _| {
            (404, r#"{"error":{"code":"catalog_not_found","message":"no","details":null}}"#.to_owned())
        })
        .await;
        let client = Client::builder(&url).token("t").build().expect("client");
        let options = BulkOptions { chunk_size: 10, concurrency: 1, ..BulkOptions::default() };
        let report = client.bulk_delete("c", (0..100_000).map(|n| n.to_string()), &options).await.expect("runs");
        assert!(report.stopped_early && !report.is_success());
        assert!(seen.lock().expect("lock").len() <= 2, "stopped after the first answer");
        assert!(report.read < 100_000);
    }

    #[tokio::test]
    async fn connection_failures_are_retried_then_reported() {
        // Bind then drop a listener: its port now refuses connections.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        };
        let client = Client::builder(format!("http://127.0.0.1:{port}"))
            .token("t")
            .retry_policy(fast_retries(3))
            .build()
            .expect("client");
        let retries = Arc::new(Mutex::new(0u32));
        let heard = Arc::clone(&retries);
        let options = BulkOptions::default().with_observer(move |event| {
            if let BulkEvent::ChunkRetrying { .. } = event {
                *heard.lock().expect("lock") += 1;
            }
        });
        let report = client.bulk_delete("c", ["a"], &options).await.expect("runs");
        assert_eq!(*retries.lock().expect("lock"), 2);
        assert!(matches!(report.failures[0].error, Error::Transport(_)));
    }

    #[tokio::test]
    async fn server_rejections_map_back_to_input_positions() {
        let (url, _seen) = scripted_server(|_, _| {
            let body = json!({"job": job_json(1, 1), "results": [
                {"index": 0, "id": "a", "status": "accepted"},
                {"index": 1, "status": "rejected",
                 "error": {"code": "invalid_item_id", "reason": "reserved", "message": "no"}}
            ]});
            (202, body.to_string())
        })
        .await;
        let client = Client::builder(&url).token("t").build().expect("client");
        // Index 1 ("bad id") is rejected locally, so the server's index 1 is input 2.
        let report = client.bulk_delete("c", ["a", "bad id", "b"], &BulkOptions::default()).await.expect("runs");
        let got: Vec<(u64, Option<&str>, &str)> =
            report.rejected.iter().map(|r| (r.index, r.id.as_deref(), r.problem.reason())).collect();
        assert_eq!(got, vec![(1, Some("bad id"), "invalid_character"), (2, Some("b"), "reserved")]);
        assert_eq!(report.accepted, 1);
    }

    #[tokio::test]
    async fn a_replayed_key_is_reported_as_such() {
        let (url, _seen) = scripted_server(|n, request| (200, accept(request, n as i64))).await;
        let client = Client::builder(&url).token("t").build().expect("client");
        let report = client.bulk_delete("c", ["a"], &BulkOptions::default()).await.expect("runs");
        assert!(report.chunks[0].replayed);
    }
}
