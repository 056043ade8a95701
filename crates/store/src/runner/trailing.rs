//! Trailing batches (PostgreSQL): the batch of item deletes read ahead behind a batch of item
//! deletes (`runner/batch.rs`) is written while that batch's statement runs, in a transaction of
//! its own on another connection, and committed after it.
//!
//! Why: a batch's statement keeps one of PostgreSQL's processes busy (one core), and the runner
//! waits for it; on two cores the other one was left idle while a backlog of small deletes drained
//! (docs/PERFORMANCE.md, "Small requests").
//!
//! What keeps the order rule (at most one job of a catalog applied at a time, each in its order):
//! - the trailing batch's commit waits for the batch before it: it commits only after that batch's
//!   statement has committed with its leader checkpointed (which proves the lease held), and rolls
//!   back otherwise, so its jobs never finish before the ones ahead of them, and a crash leaves a
//!   prefix of the catalog's order applied;
//! - from its first statement on, it holds its jobs' rows. The first of them is the first job of
//!   the catalog once the batch before commits, the only one a claim may take there
//!   (`catalog_domain::order::next_of_catalog`), and a claim skips a locked job: no runner starts a
//!   job of the catalog until the trailing batch has committed or rolled back;
//! - its ids share none with the batch before it (checked before it starts), so the two
//!   transactions never wait for each other's rows, and the deletes commute: deleting an item that
//!   is not there counts as done, so each job's counts are those of the order.
//!
//! What keeps projects served in turn: a batch trails only when no other catalog has a job that may
//! start now (the claim's own candidates, with its cap), that is when the turn would come back to
//! its catalog anyway. Otherwise the worker claims again, in turn.
//!
//! Its jobs finish (their rows, their events, the queue's counts) in a second statement sent once
//! the batch before has committed: event ids then follow the catalog's order, and the triggers'
//! writes of the queue's counts never wait on the batch before. A job cancelled since the read, or
//! a catalog deleted, leaves the whole trailing batch out (nothing is written); a cancel after its
//! first statement waits for its commit and finds the job finished, as with any batch.

use super::apply::{ChunkData, Payload};
use super::batch::{applied_a_batch, deletes_done, Follower, NextBatch, ReadAhead};
use super::lease::Lease;
use super::Runner;
use crate::db::{now_ms, Flavor, WriteTx};
use crate::error::StoreError;
use crate::hooks::Breakpoint;
use sqlx::{PgPool, Postgres, Row};
use std::future::Future;

/// A trailing batch whose first statement has run: its items are deleted and its jobs locked, in
/// its open transaction.
pub(super) struct Trailing {
    tx: WriteTx<Postgres>,
    /// What was read ahead: the jobs of the batch, put back for the next lease if the batch is
    /// left out.
    next: NextBatch,
    /// The jobs' ends, as the finish statement reads them.
    ends: String,
    /// Inputs the jobs processed together.
    processed: u64,
}

impl Lease {
    /// Whether the batch behind this lease's last chunk of item deletes may trail it: on
    /// PostgreSQL, in a catalog, with batches on (`RunnerConfig::batch_inputs` and
    /// `max_batch_jobs`: a runner told to apply every job on its own applies one at a time).
    pub(super) fn may_trail(&self) -> bool {
        self.trailing_statement().is_some()
    }

    /// This lease's catalog and the trailing batch's first statement, when a batch may trail it
    /// (see [`Lease::may_trail`]).
    fn trailing_statement(&self) -> Option<(i64, &str)> {
        let statement = self.runner.trailing_deletes()?;
        Some((self.catalog_id?, statement))
    }

    /// Runs `ahead`, the statement of this lease's last chunk of item deletes (alone, or with a
    /// batch) whose sorted ids are `ids`, together with the trailing batch behind it; the trailing
    /// batch commits if `committed` says `ahead` committed, and rolls back otherwise. Answers
    /// what `ahead` did.
    pub(super) async fn with_trailing<T>(
        &self,
        pool: &PgPool,
        ids: &[&str],
        ahead: impl Future<Output = T>,
        committed: impl FnOnce(&T) -> bool,
        now: i64,
    ) -> T {
        let (outcome, trailing) = tokio::join!(ahead, self.start_trailing(pool, ids));
        let trailing = match trailing {
            Ok(Some(trailing)) => trailing,
            Ok(None) => return outcome,
            Err(e) => {
                tracing::debug!(job = self.job_id.0, error = %e, "the trailing batch was left out");
                return outcome;
            }
        };
        if !committed(&outcome) {
            self.abandon_trailing(trailing).await;
            return outcome;
        }
        // Its jobs start and end after the ones ahead of it.
        if let Err(e) = self.finish_trailing(trailing, now_ms().max(now)).await {
            tracing::warn!(job = self.job_id.0, error = %e, "the trailing batch did not commit");
        }
        outcome
    }

    /// Starts the trailing batch behind this lease's batch of item deletes, whose sorted ids are
    /// `ahead`: takes what was read ahead for the catalog, and when it is a whole batch of item
    /// deletes sharing no id with `ahead`, opens its transaction and runs its first statement.
    /// `None` when there is no such batch, its jobs are no longer as read, or another catalog's
    /// turn comes first (what was read ahead is then kept for the next lease); an error leaves the
    /// catalog's next batch to the next lease.
    async fn start_trailing(&self, pool: &PgPool, ahead: &[&str]) -> Result<Option<Trailing>, StoreError> {
        let Some((catalog, statement)) = self.trailing_statement() else { return Ok(None) };
        let Some(read) = self.runner.take_read_ahead(catalog) else { return Ok(None) };
        let Some(next) = read.finished().await else { return Ok(None) };
        let Some(ids) = next.trailing_ids().filter(|ids| disjoint(ahead, ids)) else {
            self.runner.keep_read_ahead(catalog, ReadAhead::ready(next));
            return Ok(None);
        };
        let jobs: Vec<&Follower> = next.jobs().collect();
        let Some((first, behind)) = jobs.split_first() else { return Ok(None) };
        let (first, joined) = (first.job_id, behind.len());
        let (ends, processed) = deletes_done(jobs.iter().copied())?;
        let mut tx = pool.begin_write(&self.runner.turns).await?;
        // Bound as the ids' own text: a native array, without copying them.
        let go: bool = sqlx::query(statement)
            .bind(catalog)
            .bind(ids.as_slice())
            .bind(&ends)
            .fetch_one(&mut *tx)
            .await?
            .try_get("go")?;
        if !go {
            tx.rollback().await?;
            self.runner.keep_read_ahead(catalog, ReadAhead::ready(next));
            return Ok(None);
        }
        self.runner.store.hook(Breakpoint::TrailingBatchWritten { job: first, joined }).await?;
        Ok(Some(Trailing { tx, next, ends, processed }))
    }

    /// Finishes and commits `trailing` once the batch ahead of it committed, at `now`. On an error
    /// nothing of it is written (its jobs wait for the next lease).
    async fn finish_trailing(&self, mut trailing: Trailing, now: i64) -> Result<(), StoreError> {
        let expires_at = now.saturating_add(self.runner.store.config().retention_ms);
        let jobs = trailing.next.jobs().count() as u64;
        let finished = trailing.tx.finish_jobs(&self.runner.sql.batch.finish, trailing.ends, now, expires_at).await?;
        if finished != jobs {
            // Their rows were locked by the first statement: a bug.
            trailing.tx.rollback().await?;
            return Err(StoreError::Corrupt(format!("a trailing batch finished {finished} of its {jobs} jobs")));
        }
        trailing.tx.commit().await?;
        let mut jobs = trailing.next.jobs();
        if let Some(first) = jobs.next() {
            let joined: Vec<&Follower> = jobs.collect();
            applied_a_batch(first.job_id, first.payload.len(), joined.into_iter());
        }
        let processed = &self.runner.store.inner.items_processed;
        processed.fetch_add(trailing.processed, std::sync::atomic::Ordering::Relaxed);
        // The batch after it is read while the next claim is made.
        if let Some(last) = trailing.next.jobs().last() {
            self.read_ahead_after(last);
        }
        Ok(())
    }

    /// Leaves `trailing` out: the batch ahead of it did not commit, so nothing of it may. What was
    /// read ahead is kept for the next lease.
    async fn abandon_trailing(&self, trailing: Trailing) {
        if let Err(e) = trailing.tx.rollback().await {
            tracing::debug!(job = self.job_id.0, error = %e, "rolling a trailing batch back failed");
        }
        if let Some(catalog) = self.catalog_id {
            self.runner.keep_read_ahead(catalog, ReadAhead::ready(trailing.next));
        }
    }
}

impl Runner {
    /// The trailing batch's first statement, when batches may trail: on PostgreSQL, with batches
    /// on (`RunnerConfig::batch_inputs` and `max_batch_jobs`).
    pub(super) fn trailing_deletes(&self) -> Option<&str> {
        let statement = self.sql.batch.trailing_deletes.as_deref()?;
        (self.config.batch_inputs > 0 && self.config.max_batch_jobs > 1).then_some(statement)
    }
}

impl NextBatch {
    /// The sorted ids of a batch read ahead ([`sorted_ids`]), when it can trail: its leader's
    /// payload was read, it is a whole job, and every job of it deletes items.
    fn trailing_ids(&self) -> Option<Vec<&str>> {
        self.first.as_ref()?;
        let mut ids = Vec::new();
        for job in self.jobs() {
            let (catalog_domain::JobKind::ItemBulkDelete, Payload::Ids(list)) = (job.kind, &job.payload) else {
                return None;
            };
            ids.extend(list);
        }
        Some(sorted_ids(ids))
    }
}

/// The `ids` in key order, each once: the form two batches are compared in ([`disjoint`]), and
/// the order a delete walks the items' index in (neighbouring ids share its pages).
pub(super) fn sorted_ids<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    let mut sorted: Vec<&str> = ids.into_iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// Whether the sorted lists `a` and `b` share no id.
fn disjoint(a: &[&str], b: &[&str]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::disjoint;

    #[test]
    fn disjoint_lists_share_no_id() {
        let cases: &[(&[&str], &[&str], bool)] = &[
            (&[], &[], true),
            (&["a"], &[], true),
            (&["a", "c", "e"], &["b", "d", "f"], true),
            (&["a", "c", "e"], &["b", "e"], false),
            (&["a"], &["a"], false),
            (&["x", "y"], &["a", "b", "y"], false),
            (&["a", "b"], &["c", "d"], true),
        ];
        for (a, other, expected) in cases {
            assert_eq!(disjoint(a, other), *expected, "{a:?} and {other:?}");
        }
    }
}
