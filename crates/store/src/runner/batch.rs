//! Batches: when a job's last chunk is applied, the due jobs right behind it in its catalog's
//! order may join that chunk ([`catalog_domain::autobatch`] says which), so that many small jobs
//! cost one transaction instead of one claim and one transaction each.
//!
//! The leading job is claimed as usual and holds its catalog, so no other runner starts a job of
//! the catalog meanwhile: the jobs that join are never claimed. They go from waiting to finished
//! in the batch's transaction, which also writes their data, their per-item errors and the
//! leader's checkpoint (fenced by the leader's attempt, as every chunk). So:
//! - a crash or a lost lease before the commit leaves every job of the batch as it was;
//! - a job cancelled before the batch's transaction locks it leaves the batch; a cancel after
//!   that waits for the commit (PostgreSQL's row lock, SQLite's write lock) and finds the job
//!   finished;
//! - at most one job of a catalog is ever started and unfinished, as the order rule wants.
//!
//! On PostgreSQL a batch of item deletes is one autocommit statement instead
//! (`Lease::delete_batch`), which keeps those rules: it locks every job of the batch before
//! writing, and writes nothing unless all of them are as read.
//!
//! While a batch is written, the batch that will follow it is read ahead ([`Lease::read_ahead`]):
//! the due jobs behind the batch's last job, their payloads, and which of them will join the first
//! one. The next claim of that first job then starts writing at once. What was read ahead is used
//! only by a lease of that very job, starting it, or on PostgreSQL by a trailing batch written
//! alongside this one (`runner/trailing.rs`); a job of it cancelled since is left out by the
//! batch's lock, as it is from a batch read the moment before; and a job that becomes due since
//! sorts after every job read (it was created, or became due, after the read), so the jobs read
//! are still consecutive.

use super::apply::batch::{apply_batch, Member, MemberApplied};
use super::apply::{chunk_inputs, Chunk, ChunkData, Isolation, Payload};
use super::checkpoint::bind_checkpoint;
use super::lease::Lease;
use super::trailing::sorted_ids;
use super::Runner;
use crate::db::{to_i64, with_db, Db, Flavor, RowExt};
use crate::error::StoreError;
use crate::hooks::Breakpoint;
use crate::idlist::IntList;
use crate::jobs::joined_payload;
use crate::model::JobId;
use catalog_domain::autobatch::{autobatch, BatchLimits, Family, Leader, Waiting};
use catalog_domain::{JobEvent, JobKind, JobState, JobStatus};
use sqlx::{PgPool, Row};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;

/// The most bytes of stored payload the jobs joining a batch may hold together: a bound on the
/// memory a batch of large items takes.
pub const MAX_BATCH_PAYLOAD_BYTES: u64 = 32 * 1024 * 1024;

/// How many catalogs' next batches a runner keeps read ahead at once (each holds at most
/// [`MAX_BATCH_PAYLOAD_BYTES`] of payloads): one per catalog it is writing a batch of, so a few;
/// beyond this the oldest is dropped.
const READ_AHEAD_CATALOGS: usize = 4;

/// A job that joins a batch, as read before the batch's transaction.
#[derive(Debug)]
pub(super) struct Follower {
    pub job_id: JobId,
    /// When it became due (`catalog_domain::order::due_at`): its place in its catalog's order,
    /// with its id.
    due: i64,
    pub kind: JobKind,
    /// Scheduled or queued, as read.
    status: JobStatus,
    flags: i64,
    /// All of its inputs (as many as its `total_count`: a job whose payload says otherwise does
    /// not join).
    pub payload: Payload,
}

/// A catalog's next batch, being read while the batch before it is written (see
/// [`Lease::read_ahead`]); dropping it stops the read.
#[derive(Debug)]
pub(super) struct ReadAhead {
    read: tokio::task::JoinHandle<Result<Option<NextBatch>, StoreError>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.read.abort();
    }
}

impl ReadAhead {
    /// A read that is already done: what a trailing batch left out puts back for the next lease
    /// (`runner/trailing.rs`).
    pub(super) fn ready(next: NextBatch) -> ReadAhead {
        ReadAhead { read: tokio::spawn(async move { Ok(Some(next)) }) }
    }

    /// What was read, once the read is done; `None` when it found nothing or failed.
    pub(super) async fn finished(mut self) -> Option<NextBatch> {
        match (&mut self.read).await {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "reading the next batch ahead failed");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading the next batch ahead stopped");
                None
            }
        }
    }
}

/// A batch read ahead: the job that will lead it, its chunk, and the jobs that will join it.
#[derive(Debug)]
pub(super) struct NextBatch {
    leader_id: JobId,
    leader: Leader,
    /// The leading job with its payload, when its first chunk is all of it: what a trailing batch
    /// (`runner/trailing.rs`) applies as one of its jobs.
    pub first: Option<Follower>,
    followers: Vec<Follower>,
}

impl NextBatch {
    /// The jobs of the batch in order, when the leader's payload was read: the leader, then the
    /// jobs that join it.
    pub(super) fn jobs(&self) -> impl Iterator<Item = &Follower> + Clone {
        let followers: &[Follower] = if self.first.is_some() { &self.followers } else { &[] };
        self.first.iter().chain(followers)
    }
}

/// The read-ahead batches of a runner with their catalogs, oldest first ([`READ_AHEAD_CATALOGS`]
/// at most).
pub(super) type ReadAheads = std::sync::Arc<std::sync::Mutex<VecDeque<(i64, ReadAhead)>>>;

/// What a batch's transaction committed.
#[derive(Debug)]
pub(super) struct BatchCommitted {
    /// The leader's state and cursor after the chunk.
    pub leader: (JobState, usize),
    /// Inputs the other jobs processed (applied or failed).
    pub followers_processed: u64,
}

impl Lease {
    /// The due jobs that join this lease's chunk `inputs` (its last), in order, with their
    /// payloads; none when the chunk is not the job's last, its kind is never batched, or nothing
    /// fits. Taken from what was read ahead for this job (see [`Lease::read_ahead`]) when there is
    /// such a read, else read now.
    pub(super) async fn batch_followers(&self, inputs: &Range<usize>) -> Result<Vec<Follower>, StoreError> {
        let Some(catalog) = self.catalog_id else { return Ok(Vec::new()) };
        let read_ahead = self.runner.take_read_ahead(catalog);
        let limits = self.runner.batch_limits();
        let leader = leader_of(self.kind, inputs, self.payload.len());
        let most = most_rows(leader.inputs, limits);
        if Family::of(self.kind).is_none() || !leader.finishes_job || most == 0 || self.broken.is_some() {
            return Ok(Vec::new());
        }
        if let Some(next) = read_ahead.map(ReadAhead::finished) {
            if let Some(next) = next.await {
                if next.leader_id == self.job_id && next.leader == leader && inputs.start == 0 {
                    let store = &self.runner.store;
                    store.hook(Breakpoint::ReadAheadTaken { job: self.job_id, joined: next.followers.len() }).await?;
                    return Ok(next.followers);
                }
            }
        }
        // Nothing read ahead, another job's, or a read that failed: read now.
        let candidates = self.runner.waiting(self.project_id, catalog, most, None).await?;
        self.runner.joining(leader, limits, &candidates).await
    }

    /// Starts reading the batch that will follow this one (whose jobs behind the leader are
    /// `followers`), while this one is written: the due jobs after the last of `followers`, and
    /// which of them will join the first. Kept by the runner for the next lease of that first job
    /// ([`Lease::batch_followers`]), so that it starts writing at once: under a sustained load of
    /// small requests the runner, which used to read between two batches, fell seconds behind
    /// (docs/PERFORMANCE.md, "Sustained load").
    pub(super) fn read_ahead(&self, followers: &[Follower]) {
        if let Some(last) = followers.last() {
            self.read_ahead_after(last);
        }
    }

    /// Starts reading the batch that will follow the job `last` of this lease's catalog (see
    /// [`Lease::read_ahead`]).
    pub(super) fn read_ahead_after(&self, last: &Follower) {
        self.read_ahead_from(Some((last.due, last.job_id)), last.payload.len());
    }

    /// Starts reading the batch that will follow this lease's job, which runs alone: the due jobs
    /// of its catalog not yet started (see [`Lease::read_ahead`]).
    pub(super) fn read_ahead_behind(&self) {
        self.read_ahead_from(None, self.payload.len());
    }

    /// Starts [`Runner::next_batch`] for this lease's catalog, behind a job of `size` inputs, and
    /// keeps it for the catalog.
    fn read_ahead_from(&self, after: Option<(i64, JobId)>, size: usize) {
        let Some(catalog) = self.catalog_id else { return };
        let (runner, project) = (self.runner.clone(), self.project_id);
        let read = tokio::spawn(async move { runner.next_batch(project, catalog, after, size as u64).await });
        self.runner.keep_read_ahead(catalog, ReadAhead { read });
    }

    /// Applies chunk `inputs` (this job's last) together with `followers`, in one transaction:
    /// the data, each job's per-item errors, this job's checkpoint (fenced) and the followers'
    /// ends. Answers `None` when this job's checkpoint matched nothing (everything was rolled
    /// back; the caller finds out why).
    pub(super) async fn batch_chunk(
        &self,
        inputs: Range<usize>,
        followers: &[Follower],
        now: i64,
        isolation: Isolation,
    ) -> Result<Option<BatchCommitted>, StoreError> {
        if isolation == Isolation::Off && Family::of(self.kind) == Some(Family::DeleteItems) {
            if let (Db::Pg(pool), Some(statement)) = (self.runner.store.db(), &self.runner.sql.batch.delete_batch) {
                match self.delete_batch(pool, statement, inputs.clone(), followers, now).await? {
                    OneStatement::Done(committed) => return Ok(committed),
                    OneStatement::FollowerLeft => {}
                }
            }
        }
        let runner = self.runner.clone();
        let store = &runner.store;
        let sql = &runner.sql;
        let retention = store.config().retention_ms;
        let expires_at = now.saturating_add(retention);
        let chunk = Chunk {
            kind: self.kind,
            catalog_id: self.catalog_id.unwrap_or_default(),
            flags: self.flags,
            payload: &self.payload,
            inputs: inputs.clone(),
            size: runner.chunk_size(),
            now,
        };
        let ids: Vec<i64> = followers.iter().map(|f| f.job_id.0).collect();
        with_db!(store.db(), pool => {
            let mut tx = pool.begin_write(&runner.turns).await?;
            let live = tx.job_ids(&sql.batch.lock_waiting, ids).await?;
            // A job cancelled since it was read is no longer in the catalog's order: the batch
            // goes on without it.
            let joined: Vec<&Follower> = followers.iter().filter(|f| live.contains(&f.job_id.0)).collect();
            let mut members = vec![Member { kind: self.kind, flags: self.flags, payload: &self.payload, inputs: inputs.clone() }];
            members.extend(joined.iter().map(|f| Member { kind: f.kind, flags: f.flags, payload: &f.payload, inputs: 0..f.payload.len() }));
            let mut applied = apply_batch(&mut tx, sql, &chunk, &members, isolation).await?.into_iter();
            store.hook(Breakpoint::ChunkWritten { job: self.job_id }).await?;
            let leader_applied = applied.next().unwrap_or_default();
            tx.record_errors(sql, self.job_id.0, &leader_applied.failed).await?;
            let next = self.after_chunk(leader_applied.completed, leader_applied.failed.len() as u64, true)?;
            let row = self.checkpoint_row(&next, inputs.end, now);
            if !tx.checkpoint(&sql.checkpoint, &row).await? {
                tx.rollback().await?;
                return Ok(None);
            }
            let applied: Vec<MemberApplied> = applied.collect();
            for (follower, done) in joined.iter().zip(&applied) {
                tx.record_errors(sql, follower.job_id.0, &done.failed).await?;
            }
            let (rows, followers_processed) = ends_of(joined.iter().copied().zip(&applied))?;
            let finished = tx.finish_jobs(&sql.batch.finish, rows, now, expires_at).await?;
            if finished != joined.len() as u64 {
                // The rows were locked (or the write lock held) since they were read: a bug.
                tx.rollback().await?;
                return Err(StoreError::Corrupt(format!(
                    "a batch finished {finished} of its {} other jobs",
                    joined.len()
                )));
            }
            store.hook(Breakpoint::BatchWritten { job: self.job_id }).await?;
            tx.commit().await?;
            applied_a_batch(self.job_id, inputs.len(), joined.iter().copied());
            Ok(Some(BatchCommitted { leader: (next, inputs.end), followers_processed }))
        })
    }

    /// A batch of item deletes on PostgreSQL in one statement (`postgres::delete_batch`): every
    /// input is done (deleting an item that is not there counts as done), so each job's end is
    /// known before the statement.
    async fn delete_batch(
        &self,
        pool: &PgPool,
        statement: &str,
        inputs: Range<usize>,
        followers: &[Follower],
        now: i64,
    ) -> Result<OneStatement, StoreError> {
        let members = std::iter::once((&self.payload, inputs.clone()))
            .chain(followers.iter().map(|f| (&f.payload, 0..f.payload.len())));
        let mut ids = Vec::new();
        for (payload, range) in members {
            let Payload::Ids(list) = payload else {
                return Err(StoreError::Corrupt(format!(
                    "a job without ids in job {}'s batch of deletes",
                    self.job_id.0
                )));
            };
            ids.extend(list.get(range).unwrap_or_default());
        }
        let ids = sorted_ids(ids);
        let next = self.after_chunk(inputs.len() as u64, 0, true)?;
        let row = self.checkpoint_row(&next, inputs.end, now);
        let (ends, followers_processed) = deletes_done(followers.iter())?;
        let expires_at = now.saturating_add(self.runner.store.config().retention_ms);
        // Planned at each run, with its values (not prepared): a plan kept from the first runs on a
        // young database, when `jobs` held a few hundred rows, reached the jobs of a batch by a
        // sequential scan and by `jobs_by_project` once it held 100,000 (163 ms and 406 ms of a
        // 601 ms statement, seen with auto_explain; docs/PERFORMANCE.md, "Sustained load").
        let written = bind_checkpoint!(sqlx::query(statement).persistent(false), &row)
            .bind(self.catalog_id.unwrap_or_default())
            .bind(ids.as_slice())
            .bind(ends)
            .bind(expires_at)
            .fetch_one(pool);
        let written = async { self.delete_batch_outcome(written.await, inputs, followers, next, followers_processed) };
        self.with_trailing(pool, &ids, written, |outcome| matches!(outcome, Ok(OneStatement::Done(Some(_)))), now).await
    }

    /// What [`Lease::delete_batch`]'s statement did, from its answer `outcome`.
    fn delete_batch_outcome(
        &self,
        outcome: Result<sqlx::postgres::PgRow, sqlx::Error>,
        inputs: Range<usize>,
        followers: &[Follower],
        next: JobState,
        followers_processed: u64,
    ) -> Result<OneStatement, StoreError> {
        let outcome = outcome?;
        if !outcome.try_get::<bool, _>("leader")? {
            return Ok(OneStatement::Done(None));
        }
        if !outcome.try_get::<bool, _>("go")? {
            return Ok(OneStatement::FollowerLeft);
        }
        let (finished, checkpointed) =
            (outcome.try_get::<i64, _>("finished")?, outcome.try_get::<i64, _>("checkpointed")?);
        if checkpointed != 1 || finished != to_i64(followers.len() as u64) {
            // Every row was locked before anything was written: a bug.
            return Err(StoreError::Corrupt(format!(
                "job {}'s batch of deletes checkpointed {checkpointed} leader and finished {finished} of its {} other jobs",
                self.job_id.0,
                followers.len()
            )));
        }
        applied_a_batch(self.job_id, inputs.len(), followers.iter());
        Ok(OneStatement::Done(Some(BatchCommitted { leader: (next, inputs.end), followers_processed })))
    }
}

/// What [`Lease::delete_batch`]'s statement did.
enum OneStatement {
    /// What [`Lease::batch_chunk`] answers: the batch committed, or (`None`) the leader's
    /// checkpoint matched nothing and nothing was written.
    Done(Option<BatchCommitted>),
    /// A job that joined was cancelled since it was read: nothing was written, and the batch is
    /// applied in a transaction, without it.
    FollowerLeft,
}

/// The followers' ends, each as the batch `done` it, in the JSON the finish statements read
/// (`[id, status, completed, failed]` per job), and the inputs they processed together.
pub(super) fn ends_of<'f, 'd>(
    done: impl Iterator<Item = (&'f Follower, &'d MemberApplied)>,
) -> Result<(String, u64), StoreError> {
    let mut ends = Vec::new();
    let mut processed = 0;
    for (follower, applied) in done {
        let end = follower.end(applied)?;
        processed += end.processed();
        ends.push((follower.job_id.0, end.status.as_str(), to_i64(end.completed_count), to_i64(end.failed_count)));
    }
    let ends = serde_json::to_string(&ends).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((ends, processed))
}

/// The ends of `jobs` of item deletes, every input done (deleting an item that is not there counts
/// as done), as [`ends_of`] answers them.
pub(super) fn deletes_done<'a>(jobs: impl Iterator<Item = &'a Follower> + Clone) -> Result<(String, u64), StoreError> {
    let done: Vec<MemberApplied> =
        jobs.clone().map(|f| MemberApplied { completed: f.payload.len() as u64, failed: Vec::new() }).collect();
    ends_of(jobs.zip(&done))
}

/// Logs and measures a committed batch: the leader's chunk of `leader_inputs` and the jobs that
/// `joined` it.
pub(super) fn applied_a_batch<'a>(
    leader: JobId,
    leader_inputs: usize,
    joined: impl ExactSizeIterator<Item = &'a Follower>,
) {
    let jobs = 1 + joined.len();
    let inputs = leader_inputs + joined.map(|f| f.payload.len()).sum::<usize>();
    tracing::debug!(job = leader.0, joined = jobs - 1, "applied a batch");
    metrics::histogram!("catalogd_runner_batch_jobs").record(jobs as f64);
    metrics::histogram!("catalogd_runner_batch_inputs").record(inputs as f64);
}

/// A job of `kind` and `len` inputs leading a batch with its chunk `inputs`.
fn leader_of(kind: JobKind, inputs: &Range<usize>, len: usize) -> Leader {
    Leader { kind, inputs: inputs.len() as u64, finishes_job: inputs.end >= len }
}

/// How many waiting jobs to read for a batch whose leading chunk has `leader_inputs` inputs: as
/// many as could join, but no more than twice what would fill the room with jobs of that size. Reading every job that
/// could join (up to 999 of one input each) cost a batch of 50-id jobs a few milliseconds for rows
/// it never took; a batch of smaller jobs is only cut shorter, and the next claim goes on from
/// there.
fn most_rows(leader_inputs: u64, limits: BatchLimits) -> u64 {
    let room = limits.max_inputs.saturating_sub(leader_inputs);
    let likely = room.saturating_mul(2) / leader_inputs.max(1) + 16;
    (limits.max_jobs.saturating_sub(1) as u64).min(room).min(likely)
}

impl Runner {
    /// The bounds of this runner's batches.
    fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_inputs: self.config.batch_inputs as u64,
            max_jobs: self.config.max_batch_jobs,
            max_payload_bytes: MAX_BATCH_PAYLOAD_BYTES,
        }
    }

    /// Up to `most` due jobs of `catalog` not yet started, in its order; only those after the job
    /// `after` (when it became due, its id) when given.
    async fn waiting(
        &self,
        project: i64,
        catalog: i64,
        most: u64,
        after: Option<(i64, JobId)>,
    ) -> Result<Vec<Candidate>, StoreError> {
        let sql = &self.sql.batch;
        with_db!(self.store.db(), pool => {
            let query = match after {
                None => sqlx::query(&sql.waiting),
                Some(_) => sqlx::query(&sql.waiting_after),
            };
            let mut query = query.bind(project).bind(catalog).bind(to_i64(most));
            if let Some((due, id)) = after {
                query = query.bind(due).bind(id.0);
            }
            candidates_of(&query.fetch_all(pool).await?)
        })
    }

    /// The `candidates` that join a batch led by `leader` ([`autobatch`]), with their payloads,
    /// up to the first whose payload cannot be read or does not hold its inputs (that one fails
    /// on its own when claimed).
    async fn joining(
        &self,
        leader: Leader,
        limits: BatchLimits,
        candidates: &[Candidate],
    ) -> Result<Vec<Follower>, StoreError> {
        let joining = &candidates[..joining_count(leader, limits, candidates)];
        let mut payloads = self.payloads(joining.iter()).await?;
        Ok(followers_of(joining, &mut payloads))
    }

    /// The stored payloads of the `jobs`, by job id.
    async fn payloads(&self, jobs: impl Iterator<Item = &Candidate>) -> Result<HashMap<i64, String>, StoreError> {
        let ids: Vec<i64> = jobs.map(|c| c.job_id.0).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(with_db!(self.store.db(), pool => {
            let rows = sqlx::query(self.sql.batch.payloads).bind(IntList(ids)).fetch_all(pool).await?;
            payloads_of(&rows)?
        }))
    }

    /// The batch that will follow the one being written in `catalog` of `project`, whose last job
    /// is `after` (when it became due, its id; `None`: the job running, so any job not yet started
    /// is after it) and of `size` inputs: the first due job after it,
    /// as a fresh lease will lead it (its first chunk), and the jobs that will join it. The rows
    /// read are as many as a leader of `size` inputs would read, plus that first job.
    async fn next_batch(
        &self,
        project: i64,
        catalog: i64,
        after: Option<(i64, JobId)>,
        size: u64,
    ) -> Result<Option<NextBatch>, StoreError> {
        let limits = self.batch_limits();
        let candidates = self.waiting(project, catalog, most_rows(size, limits) + 1, after).await?;
        let Some((first, behind)) = candidates.split_first() else { return Ok(None) };
        let inputs = usize::try_from(first.waiting.inputs).unwrap_or(usize::MAX);
        let leader = leader_of(first.waiting.kind, &chunk_inputs(0, inputs, self.chunk_size()), inputs);
        let behind =
            &behind[..behind.len().min(usize::try_from(most_rows(leader.inputs, limits)).unwrap_or(usize::MAX))];
        let joining = if Family::of(leader.kind).is_some() && leader.finishes_job {
            joining_count(leader, limits, behind)
        } else {
            0
        };
        // The leader's payload too when it could trail the batch being written
        // (`runner/trailing.rs`): a whole job of item deletes, where batches may trail.
        let with_first =
            leader.finishes_job && leader.kind == JobKind::ItemBulkDelete && self.trailing_deletes().is_some();
        let read = with_first.then_some(first).into_iter().chain(&behind[..joining]);
        let mut payloads = self.payloads(read).await?;
        let first_job = if with_first { followers_of(std::slice::from_ref(first), &mut payloads).pop() } else { None };
        let followers = followers_of(&behind[..joining], &mut payloads);
        self.store.hook(Breakpoint::ReadAhead { job: first.job_id, joined: followers.len() }).await?;
        Ok(Some(NextBatch { leader_id: first.job_id, leader, first: first_job, followers }))
    }

    /// Keeps `read` as `catalog`'s next batch, in place of any other; drops the oldest beyond
    /// [`READ_AHEAD_CATALOGS`].
    pub(super) fn keep_read_ahead(&self, catalog: i64, read: ReadAhead) {
        let Ok(mut kept) = self.read_ahead.lock() else { return };
        kept.retain(|(kept_for, _)| *kept_for != catalog);
        kept.push_back((catalog, read));
        while kept.len() > READ_AHEAD_CATALOGS {
            kept.pop_front();
        }
    }

    /// Takes `catalog`'s next batch, if one was read ahead.
    pub(super) fn take_read_ahead(&self, catalog: i64) -> Option<ReadAhead> {
        let mut kept = self.read_ahead.lock().ok()?;
        let at = kept.iter().position(|(kept_for, _)| *kept_for == catalog)?;
        kept.remove(at).map(|(_, read)| read)
    }
}

/// The `candidates` as jobs joining a batch, with their payloads taken from `payloads`, up to the
/// first whose payload cannot be read or does not hold its inputs (that one fails on its own when
/// claimed).
fn followers_of(candidates: &[Candidate], payloads: &mut HashMap<i64, String>) -> Vec<Follower> {
    let mut followers = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let payload = payloads.remove(&candidate.job_id.0);
        let Ok(payload) = Payload::parse(candidate.waiting.kind, payload.as_deref()) else { break };
        if payload.len() as u64 != candidate.waiting.inputs {
            break;
        }
        followers.push(Follower {
            job_id: candidate.job_id,
            due: candidate.due,
            kind: candidate.waiting.kind,
            status: candidate.status,
            flags: candidate.flags,
            payload,
        });
    }
    followers
}

/// How many of the `candidates` join a batch led by `leader` ([`autobatch`]).
fn joining_count(leader: Leader, limits: BatchLimits, candidates: &[Candidate]) -> usize {
    let waiting: Vec<Waiting> = candidates.iter().map(|c| c.waiting).collect();
    autobatch(leader, &waiting, limits).min(candidates.len())
}

/// A due job behind the leader, as the batch's first query reads it.
#[derive(Debug)]
struct Candidate {
    job_id: JobId,
    due: i64,
    status: JobStatus,
    flags: i64,
    waiting: Waiting,
}

/// The candidates of [`BatchStatements::waiting`](crate::runner::sql::BatchStatements)'s rows, up
/// to the first of a kind or status this version does not know (that one fails when claimed).
fn candidates_of(rows: &[impl RowExt]) -> Result<Vec<Candidate>, StoreError> {
    let mut candidates = Vec::with_capacity(rows.len());
    for row in rows {
        let (Ok(kind), Ok(status)) = (row.text("kind")?.parse::<JobKind>(), row.text("status")?.parse::<JobStatus>())
        else {
            break;
        };
        let waiting = Waiting {
            kind,
            inputs: u64::try_from(row.int("total_count")?).unwrap_or_default(),
            payload_bytes: u64::try_from(row.int("payload_bytes")?).unwrap_or_default(),
        };
        candidates.push(Candidate {
            job_id: JobId(row.int("id")?),
            due: row.int("due")?,
            status,
            flags: row.int("flags")?,
            waiting,
        });
    }
    Ok(candidates)
}

/// The payloads in `rows` (job id, part, payload; in job and part order), by job id.
fn payloads_of<R: RowExt>(rows: &[R]) -> Result<HashMap<i64, String>, StoreError> {
    let mut payloads = HashMap::new();
    for parts in rows.chunk_by(|a, b| a.int("job_id").ok() == b.int("job_id").ok()) {
        if let (Some(first), Some(payload)) = (parts.first(), joined_payload(parts)?) {
            payloads.insert(first.int("job_id")?, payload);
        }
    }
    Ok(payloads)
}

impl Follower {
    /// The job's state at the end of the batch: claimed, checkpointed with what `done` says, and
    /// finished, by the state machine's rules.
    fn end(&self, done: &MemberApplied) -> Result<JobState, StoreError> {
        let waiting = JobState {
            status: self.status,
            total_count: self.payload.len() as u64,
            completed_count: 0,
            failed_count: 0,
            cancel_requested: false,
        };
        waiting
            .claim()
            .and_then(|s| s.apply(JobEvent::Checkpoint { completed: done.completed, failed: done.failed.len() as u64 }))
            .and_then(|s| s.apply(JobEvent::Finished))
            .map_err(|e| super::checkpoint::corrupt(self.job_id.0, e))
    }
}
