//! `item_bulk_delete`: deletes items and their category memberships; deleting an item that is not
//! there counts as done (deletes are idempotent, Bloomreach's rule).
//!
//! The hot path: a chunk and its checkpoint are one round trip on either backend (a statement on
//! PostgreSQL, a script on SQLite). On SQLite a job's last chunk may also claim the next job; on
//! PostgreSQL the catalog's next batch of deletes may be written alongside it
//! (`runner/trailing.rs`).
//! Should the database refuse an id, the chunk is redone on the general path, id by id where
//! needed.

use super::{distinct_ids, Payload, Rows, Writes};
use crate::db::{sqlite_script, Db};
use crate::error::StoreError;
use crate::idlist::IdList;
use crate::runner::checkpoint::bind_checkpoint;
use crate::runner::claim::Claimed;
use crate::runner::lease::Lease;
use crate::runner::trailing::sorted_ids;
use catalog_domain::JobState;
use sqlx::Row;
use std::ops::Range;

/// One unit per distinct id of the chunk.
pub(super) fn plan(ids: &[String], inputs: Range<usize>) -> Writes {
    Writes { rows: Rows::DeleteItems(distinct_ids(ids, inputs)), failed: Vec::new() }
}

impl Lease {
    /// Deletes the items of `inputs` and writes the checkpoint, in one round trip. Answers the
    /// state written, or `None` when the checkpoint's guard matched nothing (nothing was written).
    pub(in crate::runner) async fn delete_chunk(
        &mut self,
        inputs: Range<usize>,
        now: i64,
    ) -> Result<Option<(JobState, usize)>, StoreError> {
        let runner = self.runner.clone();
        let Payload::Ids(ids) = &self.payload else {
            return Err(StoreError::Corrupt(format!("item delete job {} without ids", self.job_id.0)));
        };
        let last = inputs.end >= ids.len();
        let chunk = ids.get(inputs.clone()).unwrap_or_default().to_vec();
        let next = self.after_chunk(chunk.len() as u64, 0, last)?;
        let row = self.checkpoint_row(&next, inputs.end, now);
        let catalog = self.catalog_id.unwrap_or_default();
        // The checkpoint's parameters, then the chunk's.
        macro_rules! query {
            ($statement:expr) => {
                bind_checkpoint!(sqlx::query($statement), &row).bind(catalog).bind(IdList(chunk.clone()))
            };
        }
        let written = match runner.store.db() {
            Db::Pg(pool) if last && self.may_trail() => {
                // The job behind this one, and those that join it, are written meanwhile
                // (`runner/trailing.rs`).
                self.read_ahead_behind();
                let sorted = sorted_ids(&chunk);
                let written = async {
                    Ok::<_, StoreError>(
                        query!(&runner.sql.delete_and_checkpoint).bind("on").execute(pool).await?.rows_affected() > 0,
                    )
                };
                self.with_trailing(pool, &sorted, written, |written| matches!(written, Ok(true)), now).await?
            }
            Db::Pg(pool) => {
                // Only the last chunk's commit must be durable at once (see `Lease::step`).
                let query = query!(&runner.sql.delete_and_checkpoint).bind(if last { "on" } else { "off" });
                query.execute(pool).await?.rows_affected() > 0
            }
            Db::Sqlite(pool) if last && self.chain_next && self.chained.is_none() => {
                // This one also claims the next job: one turn at the write lock instead of two.
                let query = query!(&runner.sql.delete_checkpoint_and_claim)
                    .bind(&runner.config.owner)
                    .bind(runner.lease_ms())
                    .bind(runner.claimed_status.as_str());
                let rows = sqlite_script(pool, &runner.turns, query).await?;
                // The checkpoint answers its id when it was written; the claim, a claimed row.
                let (checkpoint, claimed): (Vec<_>, Vec<_>) = rows.iter().partition(|row| row.len() == 1);
                self.chained = claimed.first().map(|row| Claimed::from_row(*row, None)).transpose()?;
                !checkpoint.is_empty()
            }
            Db::Sqlite(pool) => {
                let pool = if last { pool } else { runner.store.relaxed_sqlite().unwrap_or(pool) };
                !sqlite_script(pool, &runner.turns, query!(&runner.sql.delete_and_checkpoint)).await?.is_empty()
            }
        };
        Ok(written.then_some((next, inputs.end)))
    }
}
