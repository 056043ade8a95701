//! Autobatching: which of a catalog's due jobs are applied together (Meilisearch's
//! `autobatcher` is the model).
//!
//! A million 50-id deletes cost far more one job at a time than a few 10,000-id ones: each job
//! pays a claim, a transaction and a checkpoint. So when a job's last chunk is applied, the jobs
//! waiting right behind it in its catalog's order ([`crate::order`]) may join that chunk, as long
//! as applying them together gives exactly what applying them one after another would:
//!
//! - item deletes join item deletes ([`Family::DeleteItems`]);
//! - item upserts and item patches join each other ([`Family::WriteItems`]): their inputs are
//!   applied in job order, then request order, so the later input for an id wins;
//! - anything else (a category job, a catalog delete, an item or category create) joins nothing
//!   and stops the batch: the jobs behind it wait for it, as the order rule says. A create is left
//!   out although it writes items like an upsert: whether each of its inputs fails depends on
//!   what exists when it is applied, which a batch's one set-based plan of upserts and patches
//!   does not decide, and a create is rare enough (a first sync) not to be worth a plan of its own.
//!
//! A batch is measured in inputs, not jobs: a job joins only whole and only while the batch stays
//! within [`BatchLimits`]. A job that does not fit ends the batch; it leads a batch of
//! its own later. So a batch is always a prefix of the catalog's order, and [`autobatch`] is a
//! pure function of that order, tested by the table below.

use crate::job::JobKind;

/// Default [`BatchLimits::max_inputs`]: as many inputs as the 10,000-id transactions a raw delete
/// loop would use, so that small jobs cost about what large ones do.
pub const DEFAULT_BATCH_INPUTS: u64 = 10_000;

/// Kinds of jobs that can be applied together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `item_bulk_delete`.
    DeleteItems,
    /// `item_bulk_upsert` and `item_bulk_patch`.
    WriteItems,
}

impl Family {
    /// The family of `kind`, or `None` for a kind that is never batched.
    ///
    /// ```
    /// use catalog_domain::autobatch::Family;
    /// use catalog_domain::JobKind;
    /// assert_eq!(Family::of(JobKind::ItemBulkPatch), Some(Family::WriteItems));
    /// assert_eq!(Family::of(JobKind::ItemBulkUpsert), Some(Family::WriteItems));
    /// assert_eq!(Family::of(JobKind::CatalogDelete), None);
    /// assert_eq!(Family::of(JobKind::ItemBulkCreate), None);
    /// ```
    pub const fn of(kind: JobKind) -> Option<Family> {
        match kind {
            JobKind::ItemBulkDelete => Some(Family::DeleteItems),
            JobKind::ItemBulkUpsert | JobKind::ItemBulkPatch => Some(Family::WriteItems),
            JobKind::ItemBulkCreate
            | JobKind::CategoryBulkCreate
            | JobKind::CategoryBulkUpsert
            | JobKind::CategoryBulkUpdate
            | JobKind::CategoryBulkDelete
            | JobKind::CatalogDelete => None,
        }
    }
}

/// How large a batch may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Inputs in the batch, the leading job's chunk included; a chunk larger than this takes
    /// nobody (0 turns batching off).
    pub max_inputs: u64,
    /// Jobs in the batch, the leading job included.
    pub max_jobs: usize,
    /// Bytes of stored payload of the jobs that join (a bound on the batch's memory).
    pub max_payload_bytes: u64,
}

/// The chunk a batch starts from: the leading job's next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    /// The leading job's kind.
    pub kind: JobKind,
    /// Inputs of the chunk.
    pub inputs: u64,
    /// The chunk is the job's last: only then may the jobs behind it join.
    pub finishes_job: bool,
}

/// A due job waiting behind the leader in its catalog's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// Its kind.
    pub kind: JobKind,
    /// Its inputs (all of them: a job joins whole).
    pub inputs: u64,
    /// Bytes of its stored payload.
    pub payload_bytes: u64,
}

/// How many of `waiting` (the catalog's due jobs behind the leader, in order) are applied
/// together with `leader`'s chunk: the longest prefix of jobs of the leader's family that keeps
/// the batch within `limits`.
///
/// ```
/// use catalog_domain::autobatch::{autobatch, BatchLimits, Leader, Waiting};
/// use catalog_domain::JobKind::{ItemBulkDelete, CategoryBulkDelete};
/// let limits = BatchLimits { max_inputs: 1_000, max_jobs: 100, max_payload_bytes: 1 << 20 };
/// let leader = Leader { kind: ItemBulkDelete, inputs: 50, finishes_job: true };
/// let delete = Waiting { kind: ItemBulkDelete, inputs: 50, payload_bytes: 500 };
/// let category = Waiting { kind: CategoryBulkDelete, inputs: 1, payload_bytes: 10 };
/// assert_eq!(autobatch(leader, &[delete, delete, category, delete], limits), 2);
/// ```
pub fn autobatch(leader: Leader, waiting: &[Waiting], limits: BatchLimits) -> usize {
    let Some(family) = Family::of(leader.kind) else {
        return 0;
    };
    if !leader.finishes_job {
        return 0;
    }
    let mut inputs = leader.inputs;
    let mut bytes = 0u64;
    let mut joined = 0;
    for job in waiting {
        if Family::of(job.kind) != Some(family) {
            break;
        }
        let (with_inputs, with_bytes) = (inputs.saturating_add(job.inputs), bytes.saturating_add(job.payload_bytes));
        if with_inputs > limits.max_inputs || with_bytes > limits.max_payload_bytes || joined + 2 > limits.max_jobs {
            break;
        }
        (inputs, bytes, joined) = (with_inputs, with_bytes, joined + 1);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobKind::*;

    const LIMITS: BatchLimits = BatchLimits { max_inputs: 1_000, max_jobs: 10, max_payload_bytes: 100_000 };

    fn job(kind: JobKind, inputs: u64) -> Waiting {
        Waiting { kind, inputs, payload_bytes: inputs * 10 }
    }

    fn last_chunk(kind: JobKind, inputs: u64) -> Leader {
        Leader { kind, inputs, finishes_job: true }
    }

    #[test]
    fn the_batching_table() {
        // (case, leader, waiting behind it in order, how many join)
        let table: Vec<(&str, Leader, Vec<Waiting>, usize)> = vec![
            ("nothing waits", last_chunk(ItemBulkDelete, 50), vec![], 0),
            (
                "deletes join deletes",
                last_chunk(ItemBulkDelete, 50),
                vec![job(ItemBulkDelete, 50), job(ItemBulkDelete, 50)],
                2,
            ),
            (
                "upserts and patches join each other, in order",
                last_chunk(ItemBulkUpsert, 10),
                vec![job(ItemBulkPatch, 10), job(ItemBulkUpsert, 10), job(ItemBulkPatch, 10)],
                3,
            ),
            ("a patch leads upserts", last_chunk(ItemBulkPatch, 10), vec![job(ItemBulkUpsert, 10)], 1),
            (
                "an upsert does not join deletes, and stops the batch",
                last_chunk(ItemBulkDelete, 50),
                vec![job(ItemBulkDelete, 50), job(ItemBulkUpsert, 50), job(ItemBulkDelete, 50)],
                1,
            ),
            (
                "a delete does not join writes",
                last_chunk(ItemBulkUpsert, 50),
                vec![job(ItemBulkDelete, 50), job(ItemBulkUpsert, 50)],
                0,
            ),
            (
                "a category job stops the batch",
                last_chunk(ItemBulkUpsert, 5),
                vec![job(ItemBulkPatch, 5), job(CategoryBulkUpsert, 5), job(ItemBulkPatch, 5)],
                1,
            ),
            ("a catalog delete stops the batch", last_chunk(ItemBulkDelete, 5), vec![job(CatalogDelete, 1)], 0),
            ("category jobs are never batched", last_chunk(CategoryBulkDelete, 5), vec![job(CategoryBulkDelete, 5)], 0),
            ("a catalog delete leads nothing", last_chunk(CatalogDelete, 1), vec![job(CatalogDelete, 1)], 0),
            ("an item create leads nothing", last_chunk(ItemBulkCreate, 5), vec![job(ItemBulkCreate, 5)], 0),
            ("an item create takes no upserts", last_chunk(ItemBulkCreate, 5), vec![job(ItemBulkUpsert, 5)], 0),
            (
                "an item create does not join writes, and stops the batch",
                last_chunk(ItemBulkUpsert, 5),
                vec![job(ItemBulkPatch, 5), job(ItemBulkCreate, 5), job(ItemBulkUpsert, 5)],
                1,
            ),
            (
                "an item create does not join deletes, and stops the batch",
                last_chunk(ItemBulkDelete, 5),
                vec![job(ItemBulkCreate, 5), job(ItemBulkDelete, 5)],
                0,
            ),
            ("a category create leads nothing", last_chunk(CategoryBulkCreate, 5), vec![job(CategoryBulkCreate, 5)], 0),
            (
                "a category create stops the batch",
                last_chunk(ItemBulkDelete, 5),
                vec![job(ItemBulkDelete, 5), job(CategoryBulkCreate, 5), job(ItemBulkDelete, 5)],
                1,
            ),
            (
                "a chunk that does not finish its job takes nobody",
                Leader { kind: ItemBulkDelete, inputs: 1_000, finishes_job: false },
                vec![job(ItemBulkDelete, 1)],
                0,
            ),
            (
                "inputs, not jobs: up to the chunk size exactly",
                last_chunk(ItemBulkDelete, 400),
                vec![job(ItemBulkDelete, 300), job(ItemBulkDelete, 300), job(ItemBulkDelete, 1)],
                2,
            ),
            (
                "a job joins whole or not at all, and the one behind it waits",
                last_chunk(ItemBulkDelete, 400),
                vec![job(ItemBulkDelete, 700), job(ItemBulkDelete, 1)],
                0,
            ),
            ("a full last chunk takes nobody", last_chunk(ItemBulkDelete, 1_000), vec![job(ItemBulkDelete, 1)], 0),
            (
                "at most max_jobs jobs, the leader included",
                last_chunk(ItemBulkDelete, 1),
                (0..20).map(|_| job(ItemBulkDelete, 1)).collect(),
                9,
            ),
            (
                "the payload bytes bound the batch",
                last_chunk(ItemBulkUpsert, 1),
                vec![
                    Waiting { kind: ItemBulkUpsert, inputs: 1, payload_bytes: 60_000 },
                    Waiting { kind: ItemBulkUpsert, inputs: 1, payload_bytes: 60_000 },
                ],
                1,
            ),
            ("a job of no inputs joins", last_chunk(ItemBulkDelete, 1_000), vec![job(ItemBulkDelete, 0)], 1),
            (
                "a leading chunk larger than the batch takes nobody",
                last_chunk(ItemBulkDelete, 1_500),
                vec![job(ItemBulkDelete, 0)],
                0,
            ),
        ];
        for (case, leader, waiting, expected) in table {
            assert_eq!(autobatch(leader, &waiting, LIMITS), expected, "{case}");
        }
    }

    #[test]
    fn every_kind_has_its_family() {
        for &kind in JobKind::ALL {
            let family = Family::of(kind);
            // Creates write items too, but are never batched (module docs).
            let batched = matches!(kind, ItemBulkDelete | ItemBulkUpsert | ItemBulkPatch);
            assert_eq!(family.is_some(), batched, "{kind}");
        }
    }
}
