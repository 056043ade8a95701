//! A batch's writes: the inputs of several consecutive jobs of one catalog (the leading job's
//! last chunk and the jobs that joined it, see `runner/batch.rs`) applied as one chunk.
//!
//! The inputs are numbered across the batch, job after job (a job's inputs keep their own
//! numbers, shifted by the inputs of the jobs before it), so that for a repeated id the inputs
//! apply in job order and then in request order — exactly as if the jobs had run one after
//! another — and so that each failure goes back to its own job with its own number.

use super::{apply_in_order, refused, refused_lookups, write, write_isolating, Chunk, ChunkData, Isolation, Payload};
use super::{Rows, Unit};
use crate::bulk::FLAG_CREATE_MISSING;
use crate::catalogs::parse_fields;
use crate::error::StoreError;
use crate::runner::sql::Statements;
use catalog_domain::apply::{fold_runs, input_pointer, InputError, InputFailure};
use catalog_domain::autobatch::Family;
use catalog_domain::JobKind;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::ops::Range;

/// One job of a batch and its part of the batch's inputs.
#[derive(Debug)]
pub(in crate::runner) struct Member<'p> {
    pub kind: JobKind,
    /// The job's creation flags (`bulk::FLAG_CREATE_MISSING`).
    pub flags: i64,
    pub payload: &'p Payload,
    /// The job's inputs in the batch: a range of its payload (all of it, but for the leader).
    pub inputs: Range<usize>,
}

/// What a batch did to one of its jobs.
#[derive(Debug, Default)]
pub(in crate::runner) struct MemberApplied {
    /// Inputs applied.
    pub completed: u64,
    /// Inputs that failed on their own, numbered as in the job.
    pub failed: Vec<InputError>,
}

/// How an item input of a batch changes its item.
#[derive(Debug, Clone, Copy)]
enum ItemOp<'p> {
    /// Replaces the item's fields whole (`item_bulk_upsert`).
    Upsert(&'p Map<String, Value>),
    /// Merges top-level fields into the item; creates it when missing if the flag says so
    /// (`item_bulk_patch`).
    Patch(&'p Map<String, Value>, bool),
}

/// Where each job's inputs start in the batch's numbering.
struct Numbering(Vec<u64>);

impl Numbering {
    fn of(members: &[Member<'_>]) -> Numbering {
        let mut next = 0u64;
        Numbering(
            members
                .iter()
                .map(|m| {
                    let base = next;
                    next = next.saturating_add(m.payload.len() as u64);
                    base
                })
                .collect(),
        )
    }

    fn base(&self, member: usize) -> u64 {
        self.0.get(member).copied().unwrap_or_default()
    }

    /// The member an input of the batch belongs to, and its own number there.
    fn origin(&self, input: u64) -> (usize, u64) {
        let member = self.0.partition_point(|&base| base <= input).saturating_sub(1);
        (member, input - self.base(member))
    }
}

/// Applies the inputs of `members` (all of one [`Family`]) in the open transaction `data`, and
/// answers what happened to each member's inputs, in member order.
pub(in crate::runner) async fn apply_batch<D: ChunkData>(
    data: &mut D,
    sql: &Statements,
    chunk: &Chunk<'_>,
    members: &[Member<'_>],
    isolation: Isolation,
) -> Result<Vec<MemberApplied>, StoreError> {
    let numbering = Numbering::of(members);
    let mut unreadable = Vec::new();
    let (rows, mut failed) = match Family::of(chunk.kind) {
        Some(Family::DeleteItems) => (Rows::DeleteItems(delete_units(members, &numbering)?), Vec::new()),
        Some(Family::WriteItems) => {
            let mut inputs = item_inputs(members, &numbering)?;
            // Only a patch reads what is stored; upserts replace it.
            let any_patch = inputs.iter().any(|(_, _, op)| matches!(op, ItemOp::Patch(..)));
            let mut stored = HashMap::new();
            if any_patch {
                let mut ids: Vec<(u64, String)> =
                    inputs.iter().map(|(id, index, _)| (*index, (*id).to_owned())).collect();
                if isolation == Isolation::On {
                    unreadable = refused_lookups(data, sql, chunk, ids.clone()).await?;
                    inputs.retain(|(_, index, _)| !refused(&unreadable, *index));
                    ids.retain(|(index, _)| !refused(&unreadable, *index));
                }
                let mut distinct: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
                distinct.dedup();
                for (id, fields) in data.read_items(sql, chunk.catalog_id, distinct).await? {
                    stored.insert(id, parse_fields(&fields)?);
                }
            }
            let (units, failed) = apply_in_order(JobKind::ItemBulkPatch, inputs, stored, |current, op| match op {
                ItemOp::Upsert(fields) => Ok(fields.clone()),
                ItemOp::Patch(patch, create_missing) => {
                    crate::facade_support::merge_patch(current, patch, create_missing)
                }
            });
            (Rows::StoreItems(units), failed)
        }
        None => return Err(StoreError::Corrupt(format!("a batch led by a {} job", chunk.kind))),
    };
    failed.extend(unreadable);
    match isolation {
        Isolation::Off => write(data, sql, chunk, &rows, 0..rows.len()).await?,
        Isolation::On => {
            for (unit, reason) in write_isolating(data, sql, chunk, &rows).await? {
                if let Some((id, inputs)) = rows.unit(unit) {
                    let failure = InputFailure::Refused(reason);
                    failed.extend(inputs.iter().map(|&index| failure.record(chunk.kind, index, id)));
                }
            }
        }
    }
    Ok(per_member(members, &numbering, failed))
}

/// Gives each failure back to its job, numbered and pointed as in that job, and counts what each
/// job applied.
fn per_member(members: &[Member<'_>], numbering: &Numbering, failed: Vec<InputError>) -> Vec<MemberApplied> {
    let mut applied: Vec<MemberApplied> = members.iter().map(|_| MemberApplied::default()).collect();
    for mut error in failed {
        let (member, index) = numbering.origin(error.index);
        let Some(out) = applied.get_mut(member) else { continue };
        error.index = index;
        error.pointer = members.get(member).and_then(|m| input_pointer(m.kind, index));
        out.failed.push(error);
    }
    for (out, member) in applied.iter_mut().zip(members) {
        out.failed.sort_by_key(|e| e.index);
        out.completed = (member.inputs.len() as u64).saturating_sub(out.failed.len() as u64);
    }
    applied
}

/// The ids of the members' deletes, one unit per distinct id standing for its inputs.
fn delete_units(members: &[Member<'_>], numbering: &Numbering) -> Result<Vec<Unit<()>>, StoreError> {
    let mut inputs: Vec<(&str, u64)> = Vec::new();
    for (m, member) in members.iter().enumerate() {
        let Payload::Ids(ids) = member.payload else {
            return Err(StoreError::Corrupt(format!("a {} job without ids in a batch of deletes", member.kind)));
        };
        let base = numbering.base(m);
        let part = ids.get(member.inputs.clone()).unwrap_or_default();
        inputs.extend(part.iter().zip(member.inputs.clone()).map(|(id, at)| (id.as_str(), base + at as u64)));
    }
    inputs.sort_unstable();
    let units = fold_runs(inputs, |_, seen: Option<Vec<u64>>, input| {
        let mut numbers = seen.unwrap_or_default();
        numbers.push(input);
        numbers
    });
    Ok(units.into_iter().map(|(id, inputs)| Unit { id: id.to_owned(), inputs, row: () }).collect())
}

/// The members' item inputs, by id and then in batch order.
fn item_inputs<'p>(
    members: &[Member<'p>],
    numbering: &Numbering,
) -> Result<Vec<(&'p str, u64, ItemOp<'p>)>, StoreError> {
    let mut inputs = Vec::new();
    for (m, member) in members.iter().enumerate() {
        let Payload::Items(items) = member.payload else {
            return Err(StoreError::Corrupt(format!("a {} job without items in a batch of item writes", member.kind)));
        };
        let base = numbering.base(m);
        let create_missing = member.flags & FLAG_CREATE_MISSING != 0;
        for (index, id, fields) in items.get(member.inputs.clone()).unwrap_or_default() {
            let op = match member.kind {
                JobKind::ItemBulkPatch => ItemOp::Patch(fields, create_missing),
                _ => ItemOp::Upsert(fields),
            };
            inputs.push((id.as_str(), base + index, op));
        }
    }
    inputs.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_of_the_batch_goes_back_to_its_job_and_number() {
        let (three, none) = (Payload::Ids(vec!["a".into(), "b".into(), "c".into()]), Payload::Ids(Vec::new()));
        let member = |payload| Member { kind: JobKind::ItemBulkDelete, flags: 0, payload, inputs: 0..0 };
        let members = [member(&three), member(&none), member(&three)];
        let numbering = Numbering::of(&members);
        assert_eq!(numbering.origin(0), (0, 0));
        assert_eq!(numbering.origin(2), (0, 2));
        assert_eq!(numbering.origin(3), (2, 0), "a job of no inputs owns no number");
        assert_eq!(numbering.origin(5), (2, 2));
    }

    #[test]
    fn a_repeated_id_applies_in_job_order_then_request_order() {
        let fields = |v: i64| serde_json::json!({ "v": v }).as_object().cloned().unwrap_or_default();
        // Payloads are in id order; the index is the input's place in its request.
        let first = Payload::Items(vec![(1, "a".into(), fields(1)), (0, "b".into(), fields(2))]);
        let second = Payload::Items(vec![(0, "a".into(), fields(3)), (1, "a".into(), fields(4))]);
        let members = [
            Member { kind: JobKind::ItemBulkUpsert, flags: 0, payload: &first, inputs: 0..2 },
            Member { kind: JobKind::ItemBulkPatch, flags: 0, payload: &second, inputs: 0..2 },
        ];
        let numbering = Numbering::of(&members);
        let order: Vec<(&str, u64)> =
            item_inputs(&members, &numbering).unwrap_or_default().iter().map(|(id, n, _)| (*id, *n)).collect();
        assert_eq!(order, [("a", 1), ("a", 2), ("a", 3), ("b", 0)]);
    }
}
