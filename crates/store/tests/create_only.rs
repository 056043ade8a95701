//! Create-only jobs (`item_bulk_create`, `category_bulk_create`), on both backends: an input whose
//! id exists in the catalog when the job applies it — stored before, or created by an earlier
//! input of the same job — fails alone with `already_exists` and leaves the stored row exactly as
//! it was; every other input is created as an upsert would create it. Creates keep their catalog's
//! order and are never applied in a batch (the test hooks record every batch formed).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use catalog_domain::{Dialect, JobKind, JobStatus, RawId};
use catalog_store::hooks::{Breakpoint, HookFuture, Hooks, Injected};
use catalog_store::{CategoryInput, ItemInput, JobId, ProjectId, Store, StoreConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

conformance!(
    a_create_of_an_existing_item_fails_alone_and_leaves_the_item_as_it_was,
    a_mixed_chunk_creates_the_new_ids_and_fails_the_existing_ones,
    repeated_ids_in_one_create_job_create_once_and_fail_after_whatever_the_chunks,
    a_category_create_fails_for_an_existing_category_and_creates_the_others,
    a_create_between_an_upsert_and_a_delete_keeps_its_place_and_is_never_batched,
);

fn item(id: &str, fields: Value) -> ItemInput {
    ItemInput { id: RawId::String(id.to_owned()), fields: common::fields(fields) }
}

fn category(id: &str, name: &str, items: &[&str]) -> CategoryInput {
    CategoryInput {
        id: RawId::String(id.to_owned()),
        external_id: None,
        name: Some(name.to_owned()),
        item_ids: Some(items.iter().map(|&i| i.to_owned()).collect()),
    }
}

/// Bloomreach's id rule takes a repeated id (the native one and Klaviyo's refuse it at the edge),
/// so the store's rule for repeated ids is reachable.
const REPEATS: Dialect = Dialect::Bloomreach;

async fn create_items(s: &Store, p: ProjectId, catalog: &str, items: Vec<ItemInput>) -> JobId {
    s.bulk_create_items(p, catalog, REPEATS, items, &opts()).await.unwrap().job.unwrap().id
}

async fn upsert_items(s: &Store, p: ProjectId, catalog: &str, items: Vec<ItemInput>) -> JobId {
    s.bulk_upsert_items(p, catalog, Dialect::Native, items, &opts()).await.unwrap().job.unwrap().id
}

/// (index, id, code, pointer) of each per-item error of a job.
async fn errors_of(s: &Store, p: ProjectId, id: JobId) -> Vec<(u64, String, String, Option<String>)> {
    let rows = s.list_job_errors(p, id, None, 1000).await.unwrap().rows;
    rows.into_iter().map(|e| (e.index, e.item_id.unwrap_or_default(), e.code, e.pointer)).collect()
}

/// A job's status and counts.
async fn counts(s: &Store, p: ProjectId, id: JobId) -> (JobStatus, u64, u64, u64) {
    let job = job(s, p, id).await;
    (job.status, job.total_count, job.completed_count, job.failed_count)
}

fn already_exists(index: u64, id: &str, list: &str) -> (u64, String, String, Option<String>) {
    (index, id.to_owned(), "already_exists".to_owned(), Some(format!("/{list}/{index}")))
}

async fn a_create_of_an_existing_item_fails_alone_and_leaves_the_item_as_it_was(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "exists").await;
    s.create_catalog(p, "c", None).await.unwrap();
    upsert_items(s, p, "c", vec![item("a", json!({"v": 1}))]).await;
    runner(s, "r", 1000).run_until_idle().await.unwrap();
    let before = s.get_item(p, "c", "a").await.unwrap();

    let created = create_items(s, p, "c", vec![item("a", json!({"v": 2})), item("n", json!({"v": 3}))]).await;
    assert_eq!(job(s, p, created).await.kind, JobKind::ItemBulkCreate);
    runner(s, "r", 1000).run_until_idle().await.unwrap();

    assert_eq!(counts(s, p, created).await, (JobStatus::Completed, 2, 1, 1));
    assert_eq!(errors_of(s, p, created).await, [already_exists(0, "a", "items")]);
    let after = s.get_item(p, "c", "a").await.unwrap();
    assert_eq!(after, before, "the existing item is not written at all (fields and times)");
    let n = s.get_item(p, "c", "n").await.unwrap();
    assert_eq!(Value::Object(n.fields), json!({"v": 3}));
    assert_eq!(n.created_at, n.updated_at);
}

async fn a_mixed_chunk_creates_the_new_ids_and_fails_the_existing_ones(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "mixed").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 10).await; // item-00000..item-00009, fields {"n": i}
                               // Sent in reverse order: the errors keep the request's indexes, whatever the stored order.
    let inputs: Vec<ItemInput> = (5..25).rev().map(|i| item(&format!("item-{i:05}"), json!({"created": i}))).collect();
    let created = create_items(s, p, "c", inputs).await;
    // Chunks of 7 over the id-ordered payload: the first holds 5 existing ids and 2 new ones.
    runner(s, "r", 7).run_until_idle().await.unwrap();

    assert_eq!(counts(s, p, created).await, (JobStatus::Completed, 20, 15, 5));
    let expected: Vec<_> =
        (5..10).rev().map(|i| already_exists(24 - i as u64, &format!("item-{i:05}"), "items")).collect();
    assert_eq!(errors_of(s, p, created).await, expected);
    let items = items_of(s, p, "c").await;
    assert_eq!(items.len(), 25);
    for i in 0..25 {
        let expected = if i < 10 { json!({"n": i}) } else { json!({"created": i}) };
        assert_eq!(items.get(&format!("item-{i:05}")), Some(&expected), "item {i}");
    }
}

async fn repeated_ids_in_one_create_job_create_once_and_fail_after_whatever_the_chunks(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "repeated").await;
    let inputs = || {
        vec![
            item("x", json!({"v": 1})),
            item("y", json!({"v": 1})),
            item("x", json!({"v": 2})),
            item("x", json!({"v": 3})),
            item("z", json!({"v": 1})),
        ]
    };
    // One chunk, and chunks of two (x's inputs then fall in two chunks: the second finds x stored).
    for (catalog, chunk_size) in [("one", 1000), ("many", 2)] {
        s.create_catalog(p, catalog, None).await.unwrap();
        let created = create_items(s, p, catalog, inputs()).await;
        runner(s, "r", chunk_size).run_until_idle().await.unwrap();
        assert_eq!(counts(s, p, created).await, (JobStatus::Completed, 5, 3, 2), "{catalog}");
        assert_eq!(
            errors_of(s, p, created).await,
            [already_exists(2, "x", "items"), already_exists(3, "x", "items")],
            "{catalog}"
        );
        let items = items_of(s, p, catalog).await;
        assert_eq!(items.get("x"), Some(&json!({"v": 1})), "the first input of an id creates it: {catalog}");
        assert_eq!(items.len(), 3, "{catalog}");
    }
}

async fn a_category_create_fails_for_an_existing_category_and_creates_the_others(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "categories").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let native = Dialect::Native;
    s.bulk_upsert_categories(p, "c", native, vec![category("k", "Kept", &["a"])], &opts()).await.unwrap();
    runner(s, "r", 1000).run_until_idle().await.unwrap();
    let before = s.get_categories(p, "c", &["k".to_owned()]).await.unwrap();

    let inputs =
        vec![category("k", "Replaced?", &["b"]), category("l", "New", &["c", "d"]), category("l", "Again", &[])];
    let created = s.bulk_create_categories(p, "c", REPEATS, inputs, &opts()).await.unwrap().job.unwrap().id;
    assert_eq!(job(s, p, created).await.kind, JobKind::CategoryBulkCreate);
    runner(s, "r", 1000).run_until_idle().await.unwrap();

    assert_eq!(counts(s, p, created).await, (JobStatus::Completed, 3, 1, 2));
    assert_eq!(
        errors_of(s, p, created).await,
        [already_exists(0, "k", "categories"), already_exists(2, "l", "categories")]
    );
    let after = s.get_categories(p, "c", &["k".to_owned(), "l".to_owned()]).await.unwrap();
    assert_eq!(after[0], before[0], "the existing category keeps its name, items and times");
    assert_eq!((after[1].name.as_deref(), after[1].item_ids.clone()), (Some("New"), vec!["c".into(), "d".into()]));
}

/// Records every batch formed (its leader and how many joined); every other breakpoint goes on.
#[derive(Debug, Default, Clone)]
struct BatchLog(Arc<Mutex<Vec<(JobId, usize)>>>);

impl Hooks for BatchLog {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        if let Breakpoint::BatchFormed { job, joined } = point {
            self.0.lock().unwrap().push((job, joined));
        }
        Box::pin(async { Injected::Continue })
    }
}

async fn a_create_between_an_upsert_and_a_delete_keeps_its_place_and_is_never_batched(db: &TestDb) {
    let log = BatchLog::default();
    let s = &Store::connect_with_hooks(&db.url, StoreConfig::default(), Arc::new(log.clone())).await.unwrap();
    let p = project(s, "order").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let upsert = upsert_items(s, p, "c", vec![item("a", json!({"v": 1}))]).await;
    let upsert_too = upsert_items(s, p, "c", vec![item("b", json!({"v": 1}))]).await;
    let create = create_items(s, p, "c", vec![item("a", json!({"v": 2})), item("c", json!({"v": 2}))]).await;
    let create_too = create_items(s, p, "c", vec![item("d", json!({"v": 2}))]).await;
    let ids = |names: &[&str]| names.iter().map(|n| RawId::String((*n).to_owned())).collect::<Vec<_>>();
    let delete = s.bulk_delete_items(p, "c", Dialect::Native, ids(&["c"]), &opts()).await.unwrap().job.unwrap().id;
    let delete_too = s.bulk_delete_items(p, "c", Dialect::Native, ids(&["d"]), &opts()).await.unwrap().job.unwrap().id;

    // One claim at a time: the upserts go together, each create alone, then the deletes together.
    let r = runner(s, "r", 1000);
    assert_eq!(r.process_one().await.unwrap(), Some(upsert));
    assert_eq!(job(s, p, upsert_too).await.status, JobStatus::Completed);
    assert_eq!(job(s, p, create).await.status, JobStatus::Queued, "a create does not join a batch of upserts");
    assert_eq!(r.process_one().await.unwrap(), Some(create));
    assert_eq!(job(s, p, create_too).await.status, JobStatus::Queued, "a create leads no batch");
    assert_eq!(r.process_one().await.unwrap(), Some(create_too));
    assert_eq!(r.process_one().await.unwrap(), Some(delete));
    assert_eq!(job(s, p, delete_too).await.status, JobStatus::Completed);
    assert_eq!(r.process_one().await.unwrap(), None);
    assert_eq!(*log.0.lock().unwrap(), [(upsert, 1), (delete, 1)]);

    // The create saw the upsert before it (a exists) and the delete after it removed what it made.
    assert_eq!(counts(s, p, create).await, (JobStatus::Completed, 2, 1, 1));
    assert_eq!(errors_of(s, p, create).await, [already_exists(0, "a", "items")]);
    let items = items_of(s, p, "c").await;
    assert_eq!(items.into_iter().collect::<Vec<_>>(), [("a".into(), json!({"v": 1})), ("b".into(), json!({"v": 1}))]);
    s.close().await;
}
