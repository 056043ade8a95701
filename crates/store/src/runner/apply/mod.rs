//! Applying one chunk of a job: one file per job kind decides what the chunk writes (with
//! catalog-domain's rules of applying), and this module writes it, set-based, in the chunk's
//! transaction.
//!
//! A kind's `plan` turns the chunk's inputs into [`Writes`]: one unit per distinct id, each
//! standing for the inputs that named the id, plus the inputs that failed on their own (a patch
//! of a missing item, say). [`write`] applies the units in one statement per table. When the
//! database refuses a value ([`crate::error::DbErrorClass::Refused`]), the chunk is redone with
//! [`write_isolating`], which finds the refused units by halves under savepoints: each refused
//! unit's inputs fail with a per-item error, and every other input is applied.

pub(super) mod batch;
mod catalog_delete;
mod category_create;
mod category_delete;
mod category_update;
mod category_upsert;
mod data;
mod item_create;
pub(super) mod item_delete;
mod item_patch;
mod item_upsert;

pub(super) use data::ChunkData;

use super::lease::Lease;
use super::Step;
use crate::bulk::{CategoryRow, ItemRow};
use crate::db::{now_ms, with_db, Flavor};
use crate::error::{classify, DbErrorClass, StoreError};
use crate::hooks::Breakpoint;
use crate::runner::sql::Statements;
use catalog_domain::apply::{create_in_order, fold_runs};
use catalog_domain::apply::{CategoryOutcome, InputError, InputFailure};
use catalog_domain::{JobKind, JobState};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// A job's payload, parsed once per claim.
#[derive(Debug)]
pub(super) enum Payload {
    /// Catalog delete: nothing to read.
    None,
    /// Ids to delete, distinct and in id order.
    Ids(Vec<String>),
    /// Items to upsert, create or patch, in id order (stable: repeated ids keep request order).
    Items(Vec<ItemRow>),
    /// Categories to upsert, create or update, in id order (stable).
    Categories(Vec<CategoryRow>),
}

impl Payload {
    /// Reads the stored payload of a job of `kind`.
    pub(super) fn parse(kind: JobKind, payload: Option<&str>) -> Result<Payload, String> {
        let text = match (kind, payload) {
            (JobKind::CatalogDelete, _) => return Ok(Payload::None),
            (_, Some(text)) => text,
            (_, None) => return Err("the job has no payload".into()),
        };
        let bad = |e: serde_json::Error| format!("unreadable payload: {e}");
        Ok(match kind {
            JobKind::ItemBulkDelete | JobKind::CategoryBulkDelete => {
                Payload::Ids(serde_json::from_str(text).map_err(bad)?)
            }
            JobKind::ItemBulkUpsert | JobKind::ItemBulkCreate | JobKind::ItemBulkPatch => {
                Payload::Items(serde_json::from_str(text).map_err(bad)?)
            }
            JobKind::CategoryBulkUpsert | JobKind::CategoryBulkCreate | JobKind::CategoryBulkUpdate => {
                Payload::Categories(serde_json::from_str(text).map_err(bad)?)
            }
            JobKind::CatalogDelete => Payload::None,
        })
    }

    /// The job's inputs. A catalog delete counts as one.
    pub(super) fn len(&self) -> usize {
        match self {
            Payload::None => 1,
            Payload::Ids(v) => v.len(),
            Payload::Items(v) => v.len(),
            Payload::Categories(v) => v.len(),
        }
    }
}

/// The chunk to apply: which inputs, of what job, against which catalog.
#[derive(Debug)]
pub(super) struct Chunk<'l> {
    pub kind: JobKind,
    pub catalog_id: i64,
    /// The job's creation flags (`bulk::FLAG_CREATE_MISSING`).
    pub flags: i64,
    pub payload: &'l Payload,
    /// The inputs of the chunk (for a catalog delete: the rows deleted so far, and the chunk size).
    pub inputs: Range<usize>,
    /// The job's chunk size.
    pub size: usize,
    /// The node's clock, for the rows' `updated_at`.
    pub now: i64,
}

impl Chunk<'_> {
    /// The job's last chunk: its commit is durable, and it ends the job.
    pub(super) fn is_last(&self) -> bool {
        self.kind != JobKind::CatalogDelete && self.inputs.end >= self.payload.len()
    }
}

/// What applying a chunk did.
#[derive(Debug)]
pub(super) struct Applied {
    /// Inputs applied.
    pub completed: u64,
    /// Inputs that failed on their own, with their records.
    pub failed: Vec<InputError>,
    /// The job's cursor after the chunk.
    pub cursor: usize,
    /// The chunk ended the job's work.
    pub last: bool,
}

/// One distinct id a chunk writes, and the inputs (by index) it stands for.
#[derive(Debug)]
pub(super) struct Unit<R> {
    pub id: String,
    pub inputs: Vec<u64>,
    pub row: R,
}

/// What a chunk writes.
#[derive(Debug)]
pub(super) enum Rows {
    /// Items to delete (with their category memberships).
    DeleteItems(Vec<Unit<()>>),
    /// Items' fields to store whole.
    StoreItems(Vec<Unit<Map<String, Value>>>),
    /// Categories to store, and their member sets where replaced.
    StoreCategories(Vec<Unit<CategoryOutcome>>),
    /// Categories to delete (with their memberships).
    DeleteCategories(Vec<Unit<()>>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::DeleteItems(units) | Rows::DeleteCategories(units) => units.len(),
            Rows::StoreItems(units) => units.len(),
            Rows::StoreCategories(units) => units.len(),
        }
    }

    /// The id and inputs of unit `i`.
    fn unit(&self, i: usize) -> Option<(&str, &[u64])> {
        fn of<R>(units: &[Unit<R>], i: usize) -> Option<(&str, &[u64])> {
            units.get(i).map(|u| (u.id.as_str(), u.inputs.as_slice()))
        }
        match self {
            Rows::DeleteItems(units) | Rows::DeleteCategories(units) => of(units, i),
            Rows::StoreItems(units) => of(units, i),
            Rows::StoreCategories(units) => of(units, i),
        }
    }
}

/// A chunk's writes, and the inputs that failed before anything was written.
#[derive(Debug)]
pub(super) struct Writes {
    pub rows: Rows,
    pub failed: Vec<InputError>,
}

/// How a chunk is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isolation {
    /// All units in one statement per table: the usual way.
    Off,
    /// Units by halves under savepoints, so that a unit the database refuses fails alone.
    On,
}

/// The inputs of the chunk that starts at `cursor` in a payload of `len` inputs, `size` at most.
pub(super) fn chunk_inputs(cursor: usize, len: usize, size: usize) -> Range<usize> {
    let start = cursor.min(len);
    start..start.saturating_add(size).min(len)
}

impl Lease {
    /// Applies the next chunk and its checkpoint in one transaction, fenced by the attempt; the
    /// last chunk also ends the job. When the checkpoint cannot be written — the lease was taken
    /// over, a cancel is pending, or the catalog is gone — the chunk is rolled back and the job
    /// ends accordingly (or, for a lost lease, is left alone).
    ///
    /// A chunk the database refuses part of is redone input by input where needed: the refused
    /// inputs fail with a per-item error and the rest is applied. Any other error rolls the chunk
    /// back and is returned; the caller lets the job go with [`Lease::retry_later`].
    pub async fn step(&mut self) -> Result<Step, StoreError> {
        // A cancel asked while the job waited to be resumed ends it before another chunk: a job
        // whose chunks keep failing (storage trouble gives its attempts back) would otherwise
        // never reach the checkpoint that notices it.
        if self.broken.is_some() || self.state.cancel_requested {
            return self.interrupted().await;
        }
        let now = now_ms();
        let size = self.runner.chunk_size();
        let inputs = match self.kind {
            JobKind::CatalogDelete => self.cursor..self.cursor,
            _ => chunk_inputs(self.cursor, self.payload.len(), size),
        };
        let store = self.runner.store.clone();
        store.hook(Breakpoint::ChunkStarting { job: self.job_id, cursor: inputs.start as u64 }).await?;
        let followers = self.batch_followers(&inputs).await?;
        if !followers.is_empty() {
            store.hook(Breakpoint::BatchFormed { job: self.job_id, joined: followers.len() }).await?;
            self.read_ahead(&followers);
            let committed = match self.batch_chunk(inputs.clone(), &followers, now, Isolation::Off).await {
                Err(StoreError::Database(e)) if classify(&e) == DbErrorClass::Refused => {
                    tracing::info!(job = self.job_id.0, error = %e, "the database refused an input; applying the batch by parts");
                    self.batch_chunk(inputs, &followers, now, Isolation::On).await?
                }
                other => other?,
            };
            let Some(committed) = committed else {
                return self.interrupted().await;
            };
            let processed = &self.runner.store.inner.items_processed;
            processed.fetch_add(committed.followers_processed, std::sync::atomic::Ordering::Relaxed);
            return self.checkpointed(Some(committed.leader)).await;
        }
        let first_try = if self.kind == JobKind::ItemBulkDelete {
            self.delete_chunk(inputs.clone(), now).await
        } else {
            self.general_chunk(inputs.clone(), size, now, Isolation::Off).await
        };
        let committed = match first_try {
            Err(StoreError::Database(e)) if classify(&e) == DbErrorClass::Refused => {
                tracing::info!(job = self.job_id.0, error = %e, "the database refused an input; applying the chunk by parts");
                self.general_chunk(inputs, size, now, Isolation::On).await?
            }
            other => other?,
        };
        self.checkpointed(committed).await
    }

    /// Applies a chunk on the general path: its transaction, the kind's writes, the per-item
    /// errors and the checkpoint. Answers the state and cursor written, or `None` when the
    /// checkpoint's guard matched nothing (the chunk was rolled back).
    async fn general_chunk(
        &mut self,
        inputs: Range<usize>,
        size: usize,
        now: i64,
        isolation: Isolation,
    ) -> Result<Option<(JobState, usize)>, StoreError> {
        let runner = self.runner.clone();
        let store = &runner.store;
        let sql = &runner.sql;
        let chunk = Chunk {
            kind: self.kind,
            catalog_id: self.catalog_id.unwrap_or_default(),
            flags: self.flags,
            payload: &self.payload,
            inputs,
            size,
            now,
        };
        // Only the last chunk's commit must be durable at once: an earlier checkpoint lost in a
        // crash is lost together with its data change, and the job redoes that chunk when it is
        // claimed again (every chunk is idempotent). So earlier chunks skip the wait for the WAL
        // flush (an fsync per commit would otherwise be much of a chunk's time). A catalog delete
        // learns which chunk is its last only by doing it: all of its commits are durable.
        let durable = chunk.is_last() || chunk.kind == JobKind::CatalogDelete;
        with_db!(store.db(), pool => {
            let mut tx = if durable {
                pool.begin_write(&runner.turns).await?
            } else {
                pool.begin_relaxed(store.relaxed_sqlite(), &runner.turns).await?
            };
            let applied = apply_chunk(&mut tx, sql, &chunk, isolation).await?;
            store.hook(Breakpoint::ChunkWritten { job: self.job_id }).await?;
            tx.record_errors(sql, self.job_id.0, &applied.failed).await?;
            let next = self.after_chunk(applied.completed, applied.failed.len() as u64, applied.last)?;
            let row = self.checkpoint_row(&next, applied.cursor, now);
            let statement = if self.kind == JobKind::CatalogDelete { &sql.checkpoint_no_catalog } else { &sql.checkpoint };
            if tx.checkpoint(statement, &row).await? {
                tx.commit().await?;
                Ok(Some((next, applied.cursor)))
            } else {
                tx.rollback().await?;
                Ok(None)
            }
        })
    }
}

/// Applies `chunk` in the open transaction `data`.
pub(super) async fn apply_chunk<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    isolation: Isolation,
) -> Result<Applied, StoreError> {
    // The kinds that read rows before writing them: when isolating, the ids the database refuses
    // even to look up fail first, and the plan never sees them.
    let mut unreadable = Vec::new();
    let writes = match (chunk.kind, chunk.payload) {
        (JobKind::CatalogDelete, _) => return catalog_delete::apply(data, sql, chunk).await,
        (JobKind::ItemBulkDelete, Payload::Ids(ids)) => item_delete::plan(ids, chunk.inputs.clone()),
        (JobKind::CategoryBulkDelete, Payload::Ids(ids)) => category_delete::plan(ids, chunk.inputs.clone()),
        (JobKind::ItemBulkUpsert, Payload::Items(items)) => item_upsert::plan(slice(items, chunk)),
        (JobKind::ItemBulkPatch | JobKind::ItemBulkCreate, Payload::Items(items)) => {
            let (items, failed) = readable(data, sql, chunk, isolation, slice(items, chunk), |i| (i.0, &i.1)).await?;
            unreadable = failed;
            match chunk.kind {
                JobKind::ItemBulkCreate => item_create::plan(data, sql, chunk, &items).await?,
                _ => item_patch::plan(data, sql, chunk, &items).await?,
            }
        }
        (JobKind::CategoryBulkUpsert, Payload::Categories(c)) => category_upsert::plan(slice(c, chunk)),
        (JobKind::CategoryBulkUpdate | JobKind::CategoryBulkCreate, Payload::Categories(c)) => {
            let (categories, failed) =
                readable(data, sql, chunk, isolation, slice(c, chunk), |c| (c.index, &c.id)).await?;
            unreadable = failed;
            match chunk.kind {
                JobKind::CategoryBulkCreate => category_create::plan(data, sql, chunk, &categories).await?,
                _ => category_update::plan(data, sql, chunk, &categories).await?,
            }
        }
        (kind, _) => return Err(StoreError::Corrupt(format!("a {kind} job with a payload of another kind"))),
    };
    let mut failed = writes.failed;
    failed.extend(unreadable);
    match isolation {
        Isolation::Off => write(data, sql, chunk, &writes.rows, 0..writes.rows.len()).await?,
        Isolation::On => {
            for (unit, reason) in write_isolating(data, sql, chunk, &writes.rows).await? {
                if let Some((id, inputs)) = writes.rows.unit(unit) {
                    let failure = InputFailure::Refused(reason);
                    failed.extend(inputs.iter().map(|&index| failure.record(chunk.kind, index, id)));
                }
            }
        }
    }
    let inputs = u64::try_from(chunk.inputs.len()).unwrap_or(u64::MAX);
    failed.sort_by_key(|e| e.index);
    let completed = inputs.saturating_sub(failed.len() as u64);
    Ok(Applied { completed, failed, cursor: chunk.inputs.end, last: chunk.is_last() })
}

/// For the kinds that read before they write: the inputs whose rows can be looked up, and the
/// failure records of the others. Only when isolating are the ids looked up by halves first
/// ([`refused_lookups`]); otherwise every input is readable and nothing is copied.
async fn readable<'i, D: ChunkData, T: Clone>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    isolation: Isolation,
    inputs: &'i [T],
    key: impl Fn(&T) -> (u64, &String),
) -> Result<(Cow<'i, [T]>, Vec<InputError>), StoreError> {
    if isolation == Isolation::Off {
        return Ok((Cow::Borrowed(inputs), Vec::new()));
    }
    let ids = inputs.iter().map(&key).map(|(index, id)| (index, id.clone())).collect();
    let unreadable = refused_lookups(data, sql, chunk, ids).await?;
    let kept = inputs.iter().filter(|input| !refused(&unreadable, key(input).0)).cloned().collect();
    Ok((Cow::Owned(kept), unreadable))
}

/// For the create-only kinds: applies `create` (a rule of `catalog_domain::apply`) to the inputs
/// in request order per id, each told whether its id exists — in `existing` (read in the chunk's
/// transaction) or created by an earlier input of the job. Answers one unit per created id,
/// standing for the input that created it, and the records of the inputs that failed.
fn created_units<'i, I, T>(
    kind: JobKind,
    inputs: impl IntoIterator<Item = (&'i str, u64, I)>,
    existing: Vec<String>,
    create: impl FnMut(bool, I) -> Result<T, InputFailure>,
) -> (Vec<Unit<T>>, Vec<InputError>) {
    let existing: HashSet<String> = existing.into_iter().collect();
    let (created, failed) = create_in_order(inputs, |id: &&str| existing.contains(*id), create);
    let units = created.into_iter().map(|(id, (index, row))| Unit { id: id.to_owned(), inputs: vec![index], row });
    let failed = failed.into_iter().map(|(index, id, failure)| failure.record(kind, index, id)).collect();
    (units.collect(), failed)
}

/// For the kinds that read before they write: applies each input to what the earlier inputs of
/// its id made of the stored row (`stored`, by id), in request order, with `apply` (a rule of
/// `catalog_domain::apply`). Answers one unit per id that some input applied to, standing for
/// those inputs, and the records of the inputs that failed.
fn apply_in_order<'i, T, I>(
    kind: JobKind,
    inputs: impl IntoIterator<Item = (&'i str, u64, I)>,
    mut stored: HashMap<String, T>,
    mut apply: impl FnMut(Option<T>, I) -> Result<T, InputFailure>,
) -> (Vec<Unit<T>>, Vec<InputError>) {
    struct Folded<T> {
        current: Option<T>,
        applied: Vec<u64>,
        failed: Vec<InputError>,
    }
    let per_id =
        fold_runs(inputs.into_iter().map(|(id, index, input)| (id, (index, input))), |id, seen, (index, input)| {
            let mut folded =
                seen.unwrap_or_else(|| Folded { current: stored.remove(*id), applied: Vec::new(), failed: Vec::new() });
            // The rules fail an input only when its row is missing: a failure leaves `current` at
            // `None`, as it was.
            match apply(folded.current.take(), input) {
                Ok(next) => {
                    folded.current = Some(next);
                    folded.applied.push(index);
                }
                Err(failure) => folded.failed.push(failure.record(kind, index, id)),
            }
            folded
        });
    let mut units = Vec::with_capacity(per_id.len());
    let mut failed = Vec::new();
    for (id, folded) in per_id {
        failed.extend(folded.failed);
        if let (Some(row), false) = (folded.current, folded.applied.is_empty()) {
            units.push(Unit { id: id.to_owned(), inputs: folded.applied, row });
        }
    }
    (units, failed)
}

/// The chunk's part of a payload.
fn slice<'p, T>(all: &'p [T], chunk: &Chunk<'_>) -> &'p [T] {
    all.get(chunk.inputs.clone()).unwrap_or_default()
}

/// Writes units `range` of `rows`, one statement per table.
async fn write<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    rows: &Rows,
    range: Range<usize>,
) -> Result<(), sqlx::Error> {
    let catalog = chunk.catalog_id;
    match rows {
        Rows::DeleteItems(units) => {
            let ids = ids_of(units, range);
            if let Some((last, before)) = sql.delete_items_and_members.split_last() {
                for statement in before {
                    data.run_over_ids(statement, catalog, ids.clone()).await?;
                }
                data.run_over_ids(last, catalog, ids).await?;
            }
        }
        Rows::DeleteCategories(units) => {
            let ids = ids_of(units, range);
            data.run_over_ids(&sql.clear_members_of_categories, catalog, ids.clone()).await?;
            data.run_over_ids(&sql.delete_categories, catalog, ids).await?;
        }
        Rows::StoreItems(units) => {
            let units = units.get(range).unwrap_or_default();
            let rows: Vec<(&str, &Map<String, Value>)> = units.iter().map(|u| (u.id.as_str(), &u.row)).collect();
            data.run_over_rows(sql.upsert_items, catalog, to_json(&rows)?, Some(chunk.now)).await?;
        }
        Rows::StoreCategories(units) => {
            let units = units.get(range).unwrap_or_default();
            let rows: Vec<(&str, Option<&str>, Option<&str>)> = units
                .iter()
                .map(|u| (u.id.as_str(), u.row.fields.external_id.as_deref(), u.row.fields.name.as_deref()))
                .collect();
            data.run_over_rows(sql.upsert_categories, catalog, to_json(&rows)?, Some(chunk.now)).await?;
            let replaced: Vec<String> =
                units.iter().filter(|u| u.row.item_ids.is_some()).map(|u| u.id.clone()).collect();
            if !replaced.is_empty() {
                data.run_over_ids(&sql.clear_members_of_categories, catalog, replaced).await?;
            }
            let members: Vec<(&str, &str)> = units
                .iter()
                .flat_map(|u| u.row.item_ids.iter().flatten().map(|item| (u.id.as_str(), item.as_str())))
                .collect();
            if !members.is_empty() {
                data.run_over_rows(sql.insert_members, catalog, to_json(&members)?, None).await?;
            }
        }
    }
    Ok(())
}

/// Writes every unit of `rows`, finding the ones the database refuses by halves: each range is
/// written under a savepoint; a refused range is rolled back to it and split, until a refused
/// range is one unit. Returns each refused unit with what the database said. Other errors end
/// the chunk (its transaction is rolled back by the caller).
async fn write_isolating<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    rows: &Rows,
) -> Result<Vec<(usize, String)>, StoreError> {
    let mut refused = Vec::new();
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..rows.len());
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        data.savepoint(Savepoint::Begin).await?;
        match write(data, sql, chunk, rows, range.clone()).await {
            Ok(()) => data.savepoint(Savepoint::Release).await?,
            Err(e) if classify(&e) == DbErrorClass::Refused => {
                data.savepoint(Savepoint::RollBack).await?;
                if range.len() == 1 {
                    refused.push((range.start, refusal_reason(&e)));
                } else {
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(refused)
}

/// Looks up the rows of `ids` (input index, id) by halves under savepoints, as the chunk's plan
/// will, and answers the failure records of the inputs whose id the database refuses to look up.
async fn refused_lookups<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    ids: Vec<(u64, String)>,
) -> Result<Vec<InputError>, StoreError> {
    let mut refused = Vec::new();
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..ids.len());
    while let Some(range) = pending.pop() {
        let Some(part) = ids.get(range.clone()).filter(|part| !part.is_empty()) else {
            continue;
        };
        let lookup: Vec<String> = part.iter().map(|(_, id)| id.clone()).collect();
        data.savepoint(Savepoint::Begin).await?;
        // The same statement the kind's plan looks its ids up with.
        let looked_up = match chunk.kind {
            JobKind::CategoryBulkUpdate => data.read_categories(sql, chunk.catalog_id, lookup).await.map(|_| ()),
            JobKind::CategoryBulkCreate => {
                data.existing(&sql.existing_categories, chunk.catalog_id, lookup).await.map(|_| ())
            }
            JobKind::ItemBulkCreate => data.existing(&sql.existing_items, chunk.catalog_id, lookup).await.map(|_| ()),
            _ => data.read_items(sql, chunk.catalog_id, lookup).await.map(|_| ()),
        };
        match looked_up {
            Ok(()) => data.savepoint(Savepoint::Release).await?,
            Err(StoreError::Database(e)) if classify(&e) == DbErrorClass::Refused => {
                data.savepoint(Savepoint::RollBack).await?;
                match part {
                    [(index, id)] => {
                        refused.push(InputFailure::Refused(refusal_reason(&e)).record(chunk.kind, *index, id))
                    }
                    _ => {
                        let middle = range.start + range.len() / 2;
                        pending.push(middle..range.end);
                        pending.push(range.start..middle);
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

/// Whether input `index` is among the `failed`.
fn refused(failed: &[InputError], index: u64) -> bool {
    failed.iter().any(|e| e.index == index)
}

/// What the database said when it refused a value, without the driver's wrapping.
fn refusal_reason(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => e.message().to_owned(),
        other => other.to_string(),
    }
}

/// A savepoint step of [`write_isolating`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Savepoint {
    Begin,
    Release,
    RollBack,
}

impl Savepoint {
    pub(super) fn sql(self) -> &'static str {
        match self {
            Savepoint::Begin => "SAVEPOINT chunk_part",
            Savepoint::Release => "RELEASE SAVEPOINT chunk_part",
            Savepoint::RollBack => "ROLLBACK TO SAVEPOINT chunk_part",
        }
    }
}

fn ids_of<R>(units: &[Unit<R>], range: Range<usize>) -> Vec<String> {
    units.get(range).unwrap_or_default().iter().map(|u| u.id.clone()).collect()
}

fn to_json(value: &impl serde::Serialize) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// The units of a delete: one per distinct id, standing for its positions in the payload.
fn distinct_ids(ids: &[String], inputs: Range<usize>) -> Vec<Unit<()>> {
    let positions = inputs.clone().map(|i| i as u64);
    let chunk = ids.get(inputs).unwrap_or_default().iter().zip(positions);
    catalog_domain::apply::fold_runs(
        chunk.map(|(id, position)| (id.as_str(), position)),
        |_, seen: Option<Vec<u64>>, position| {
            let mut positions = seen.unwrap_or_default();
            positions.push(position);
            positions
        },
    )
    .into_iter()
    .map(|(id, inputs)| Unit { id: id.to_owned(), inputs, row: () })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog_domain::apply::{update_category, CategoryChange, CategoryFields};

    #[test]
    fn inputs_of_an_id_apply_in_request_order_and_a_missing_row_fails_alone() {
        let stored = HashMap::from([("a".to_owned(), CategoryFields { external_id: Some("x".into()), name: None })]);
        let rename = |name: &str| CategoryChange { name: Some(name.into()), ..CategoryChange::default() };
        let inputs = vec![("a", 0, rename("first")), ("a", 3, rename("second")), ("b", 1, rename("never"))];
        let (units, failed) = apply_in_order(JobKind::CategoryBulkUpdate, inputs, stored, |current, change| {
            update_category(current, change).map(|outcome| outcome.fields)
        });
        let applied: Vec<(&str, &[u64], Option<&str>)> =
            units.iter().map(|u| (u.id.as_str(), u.inputs.as_slice(), u.row.name.as_deref())).collect();
        assert_eq!(applied, [("a", &[0, 3][..], Some("second"))]);
        assert_eq!(units[0].row.external_id.as_deref(), Some("x"), "what no input named is kept");
        let failed: Vec<(u64, &str)> = failed.iter().map(|e| (e.index, e.item_id.as_str())).collect();
        assert_eq!(failed, [(1, "b")]);
    }
}
