//! The store's conformance suite: every test runs against SQLite (a temporary file) and against
//! PostgreSQL (each test in a fresh database of its own, see `common`). Nothing here sleeps to let
//! time pass (leases and start times are backdated in SQL) and nothing asserts on speed. The
//! scheduler's rules (order, leases, failures, supervision) have their own suite, `scheduler.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use catalog_domain::rate::Quota;
use catalog_domain::{Dialect, ErrorCode, IdProblem, JobKind, JobStatus, RawId};
use catalog_store::{
    CategoryInput, ItemInput, JobFilter, JobId, JobOptions, JobPaging, Runner, RunnerConfig, Scope, Step, Store,
    StoreConfig, StoreError,
};
use serde_json::{json, Map, Value};
use std::time::Duration;

mod common;
use common::*;

conformance!(
    migrations_apply_once_and_rerun_cleanly,
    projects_and_api_keys,
    catalogs_create_list_get_delete,
    bulk_delete_runs_to_completion,
    validation_partial_atomic_and_batch_limits,
    upsert_replaces_and_patch_merges,
    category_jobs,
    scheduled_job_waits_for_start_at,
    checkpoint_per_chunk,
    cancel_queued_and_scheduled_is_immediate,
    cancel_running_takes_effect_at_chunk_boundary,
    cancel_finished_job_is_a_conflict,
    job_fails_when_its_catalog_is_gone,
    expired_jobs_are_purged,
    idempotency_keys,
    crash_recovery_resumes_from_checkpoint,
    fencing_stops_a_runner_that_lost_its_lease,
    release_returns_job_to_queue,
    run_loop_wakes_on_enqueue_and_stops_on_shutdown,
    tenancy_isolates_projects,
    jobs_keyset_and_page_pagination_with_filters,
    items_keyset_pagination,
    job_errors_are_paged,
    rate_quotas,
    jobs_in_progress_are_counted,
    two_runners_share_200_jobs,
    repeated_ids_apply_in_request_order,
    migration_2_moves_pending_payloads,
    a_lost_checkpoint_is_redone_not_skipped,
    concurrent_enqueues_are_committed_together_and_each_once,
    a_revoked_key_creates_nothing,
    a_catalog_deleted_elsewhere_is_checked_again,
    job_ids_are_never_reused,
    claims_take_the_oldest_due_job_of_any_status,
    the_store_closes_after_enqueues,
    a_batch_of_many_groups_gives_each_job_its_own_row,
    a_large_payload_is_stored_in_parts_and_read_whole,
    a_last_chunk_can_claim_the_next_job,
    job_metrics_count_jobs_and_the_items_applied_here,
);

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

async fn migrations_apply_once_and_rerun_cleanly(db: &TestDb) {
    let latest = db.store.latest_schema_version();
    assert_eq!(db.store.schema_version().await.unwrap(), latest);
    // A second node (or a restart) on the same database applies nothing and keeps the data.
    let p = project(&db.store, "mig").await;
    let again = Store::connect(&db.url, StoreConfig::default()).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), latest);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM schema_migrations").await, latest);
    assert_eq!(again.get_project_by_key("mig").await.unwrap().id, p);
    for table in [
        "projects",
        "api_keys",
        "catalogs",
        "items",
        "categories",
        "category_items",
        "jobs",
        "job_errors",
        "job_payloads",
        "job_payload_parts",
        "rate_limits",
        "queue_inputs",
        "catalog_fields",
        "catalog_titles",
        "catalog_selections",
        "job_events",
        "webhooks",
        "webhook_deliveries",
    ] {
        assert_eq!(db.scalar(&format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table} LIMIT 0) t")).await, 0, "{table}");
    }
    if db.is_pg() {
        // Migrations 0016 and 0019: payloads are compressed with lz4 (the test server's build has
        // it). The column's setting alone is not enough: until 0019 it was stored EXTERNAL, which
        // PostgreSQL never compresses, so a stored payload is what is checked.
        let lz4 = "SELECT COUNT(*) FROM pg_attribute
                   WHERE attrelid = 'job_payloads'::regclass AND attname = 'payload' AND attcompression = 'l'";
        assert_eq!(db.scalar(lz4).await, 1, "job_payloads.payload is compressed with lz4");
        again.create_catalog(p, "c", None).await.unwrap();
        let job = again.bulk_delete_items(p, "c", Dialect::Native, ids(0..1_000), &opts()).await.unwrap().job.unwrap();
        let stored = format!(
            "SELECT COUNT(*) FROM job_payloads WHERE job_id = {} AND pg_column_compression(payload) = 'lz4'
               AND pg_column_size(payload) * 2 < octet_length(payload)",
            job.id.0
        );
        assert_eq!(db.scalar(&stored).await, 1, "a 1,000-id payload is stored compressed");
    }
    again.close().await;
}

async fn projects_and_api_keys(db: &TestDb) {
    let s = &db.store;
    let p = s.create_project("acme", "Acme").await.unwrap();
    assert!(matches!(s.create_project("acme", "Again").await, Err(StoreError::ProjectAlreadyExists(_))));
    assert_eq!(s.create_project("acme", "x").await.unwrap_err().code(), ErrorCode::ProjectAlreadyExists);
    assert!(matches!(s.create_project("bad key", "x").await, Err(StoreError::InvalidProjectKey(_))));
    assert_eq!(s.get_project_by_key("acme").await.unwrap(), p);
    assert_eq!(s.get_project_by_key("nope").await.unwrap_err().code(), ErrorCode::ProjectNotFound);
    assert_eq!(s.list_projects().await.unwrap(), vec![p.clone()]);

    let created = s.create_api_key(p.id, Some("ci"), &[Scope::JobsRead, Scope::CatalogsWrite]).await.unwrap();
    assert!(created.token.starts_with(&created.key.prefix));
    let principal = s.authenticate(&created.token).await.unwrap().expect("token authenticates");
    assert_eq!(principal.project_id, p.id);
    assert_eq!(principal.project_key, "acme");
    assert!(principal.has_scope(Scope::JobsRead) && principal.has_scope(Scope::CatalogsWrite));
    assert!(!principal.has_scope(Scope::JobsWrite));
    assert_eq!(s.authenticate("cat_wrong").await.unwrap(), None);
    // Only the hash is stored.
    let stored_plain =
        db.scalar(&format!("SELECT COUNT(*) FROM api_keys WHERE token_hash = '{}'", created.token)).await;
    assert_eq!(stored_plain, 0);

    let keys = s.list_api_keys(p.id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].scopes, vec![Scope::CatalogsWrite, Scope::JobsRead]);
    s.revoke_api_key(p.id, created.key.id).await.unwrap();
    assert_eq!(s.authenticate(&created.token).await.unwrap(), None);
    assert!(s.list_api_keys(p.id).await.unwrap()[0].revoked_at.is_some());
}

async fn catalogs_create_list_get_delete(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "cats").await;
    let c = s.create_catalog(p, "shoes", Some("all shoes")).await.unwrap();
    assert_eq!(c.name, "shoes");
    assert_eq!(s.create_catalog(p, "shoes", None).await.unwrap_err().code(), ErrorCode::CatalogAlreadyExists);
    assert_eq!(s.create_catalog(p, "bad name", None).await.unwrap_err().code(), ErrorCode::InvalidCatalogName);
    for name in ["a", "b", "c"] {
        s.create_catalog(p, name, None).await.unwrap();
    }
    let first = s.list_catalogs(p, None, 2).await.unwrap();
    assert_eq!(first.rows.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let second = s.list_catalogs(p, first.next_cursor.as_deref(), 2).await.unwrap();
    assert_eq!(second.rows.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["c", "shoes"]);
    assert_eq!(second.next_cursor, None);

    seed(s, p, "shoes", 30).await;
    let got = s.get_catalog(p, "shoes").await.unwrap();
    assert_eq!((got.item_count, got.description.as_deref()), (Some(30), Some("all shoes")));

    let job = s.delete_catalog(p, "shoes").await.unwrap();
    assert_eq!((job.kind, job.status, job.total_count), (JobKind::CatalogDelete, JobStatus::Queued, 1));
    // Gone at once, and the name is free again; the deletion cannot be called off.
    assert_eq!(s.get_catalog(p, "shoes").await.unwrap_err().code(), ErrorCode::CatalogNotFound);
    assert_eq!(s.cancel_job(p, job.id).await.unwrap_err().code(), ErrorCode::JobNotCancellable);
    assert_eq!(s.delete_catalog(p, "shoes").await.unwrap_err().code(), ErrorCode::CatalogNotFound);
    runner(s, "r", 1000).run_until_idle().await.unwrap();
    let done = s.get_job(p, job.id).await.unwrap();
    assert_eq!((done.status, done.completed_count), (JobStatus::Completed, 1));
    assert_eq!(item_count(db).await, 0);
    let again = s.create_catalog(p, "shoes", None).await.unwrap();
    assert_eq!(s.get_catalog(p, "shoes").await.unwrap().item_count, Some(0));
    assert_ne!(again.id, c.id);
}

async fn bulk_delete_runs_to_completion(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "del").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 2_500).await;
    // 2,500 existing ids and 500 that never existed: missing ones count as completed.
    let before = catalog_store::now_ms();
    let out = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3_000), &opts()).await.unwrap();
    assert!(!out.replayed);
    assert_eq!(out.results.len(), 3_000);
    assert!(out.results.iter().all(Result::is_ok));
    let created = out.job.unwrap();
    assert_eq!(
        (created.kind, created.status, created.total_count),
        (JobKind::ItemBulkDelete, JobStatus::Queued, 3_000)
    );
    assert_eq!((created.completed_count, created.failed_count, created.attempt), (0, 0, 0));
    assert_eq!(created.catalog_name.as_deref(), Some("c"));
    assert!(created.created_at >= before);

    let r = runner(s, "r", 1000);
    assert_eq!(r.process_one().await.unwrap(), Some(created.id));
    let done = job(s, p, created.id).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!((done.completed_count, done.failed_count, done.cursor), (3_000, 0, 3_000));
    assert_eq!(done.attempt, 1);
    assert_eq!((done.lease_owner.as_deref(), done.lease_expires_at), (None, None));
    let (started, finished) = (done.started_at.unwrap(), done.finished_at.unwrap());
    assert!(started >= done.created_at && finished >= started);
    assert_eq!(done.expires_at, Some(finished + s.config().retention_ms));
    assert_eq!(item_count(db).await, 0);
    // Nothing more is due.
    assert_eq!(r.process_one().await.unwrap(), None);
    assert_eq!(s.list_job_errors(p, created.id, None, 100).await.unwrap().rows, vec![]);
    // The inputs are kept with the job until it expires (facades show them as relationships).
    let kept = format!("SELECT COUNT(*) FROM job_payloads WHERE job_id = {}", created.id.0);
    assert_eq!(db.scalar(&kept).await, 1);
}

async fn validation_partial_atomic_and_batch_limits(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "val").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let raw = vec![
        RawId::String("ok-1".into()),
        RawId::String("bad id".into()),
        RawId::NotAString,
        RawId::Missing,
        RawId::String("ok-1".into()),
        RawId::String("ok-2".into()),
    ];
    let out = s.bulk_delete_items(p, "c", Dialect::Native, raw.clone(), &opts()).await.unwrap();
    assert_eq!(out.results[0], Ok("ok-1".to_owned()));
    assert!(matches!(out.results[1], Err(IdProblem::InvalidCharacter { ch: ' ' })));
    assert_eq!(out.results[2], Err(IdProblem::NotAString));
    assert_eq!(out.results[3], Err(IdProblem::Missing));
    assert_eq!(out.results[4], Err(IdProblem::Duplicate { first_index: 0 }));
    assert_eq!(out.results[5], Ok("ok-2".to_owned()));
    assert_eq!(out.job.as_ref().unwrap().total_count, 2);

    let jobs_before = db.scalar("SELECT COUNT(*) FROM jobs").await;
    let atomic = JobOptions { atomic: true, ..opts() };
    let err = s.bulk_delete_items(p, "c", Dialect::Native, raw, &atomic).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidItemId);
    assert!(matches!(&err, StoreError::InvalidItems { results } if results.len() == 6));
    let err = s.bulk_delete_items(p, "c", Dialect::Native, vec![RawId::Missing], &opts()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoValidItems);
    let err = s.bulk_delete_items(p, "c", Dialect::Braze, ids(0..51), &opts()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooManyItems);
    let err = s.bulk_delete_items(p, "c", Dialect::Native, vec![], &opts()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoValidItems);
    let err = s.bulk_delete_items(p, "missing", Dialect::Native, ids(0..1), &opts()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CatalogNotFound);
    // A rejected request creates nothing.
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, jobs_before);
    // Bloomreach allows duplicates and any character but `/`.
    let out = s
        .bulk_delete_items(p, "c", Dialect::Bloomreach, vec!["a b".into(), "a b".into(), "x/y".into()], &opts())
        .await
        .unwrap();
    assert_eq!(out.results[..2], [Ok("a b".to_owned()), Ok("a b".to_owned())]);
    assert_eq!(out.results[2], Err(IdProblem::ContainsSlash));
}

async fn upsert_replaces_and_patch_merges(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "ups").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let r = runner(s, "r", 2);
    let up = |id: &str, v: Value| ItemInput { id: RawId::String(id.into()), fields: fields(v) };
    s.bulk_upsert_items(
        p,
        "c",
        Dialect::Native,
        vec![up("a", json!({"x": 1, "y": {"z": 1}})), up("b", json!({"x": 2}))],
        &opts(),
    )
    .await
    .unwrap();
    r.run_until_idle().await.unwrap();
    let a = s.get_item(p, "c", "a").await.unwrap();
    assert_eq!(Value::Object(a.fields.clone()), json!({"x": 1, "y": {"z": 1}}));
    assert_eq!(s.get_item(p, "c", "zz").await.unwrap_err().code(), ErrorCode::ItemNotFound);

    // Upsert replaces every field.
    s.bulk_upsert_items(p, "c", Dialect::Native, vec![up("a", json!({"w": true}))], &opts()).await.unwrap();
    r.run_until_idle().await.unwrap();
    let a2 = s.get_item(p, "c", "a").await.unwrap();
    assert_eq!(Value::Object(a2.fields), json!({"w": true}));
    assert_eq!(a2.created_at, a.created_at);

    // Patch merges top-level fields; a missing item fails alone (with an error row).
    let out = s
        .bulk_patch_items(
            p,
            "c",
            Dialect::Native,
            vec![up("b", json!({"y": 3})), up("ghost", json!({"y": 4})), up("a", json!({"w": false}))],
            false,
            &opts(),
        )
        .await
        .unwrap();
    let id = out.job.unwrap().id;
    r.run_until_idle().await.unwrap();
    let done = job(s, p, id).await;
    assert_eq!((done.status, done.completed_count, done.failed_count), (JobStatus::Completed, 2, 1));
    assert_eq!(Value::Object(s.get_item(p, "c", "b").await.unwrap().fields), json!({"x": 2, "y": 3}));
    assert_eq!(Value::Object(s.get_item(p, "c", "a").await.unwrap().fields), json!({"w": false}));
    let errors = s.list_job_errors(p, id, None, 10).await.unwrap().rows;
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].index, errors[0].item_id.as_deref()), (1, Some("ghost")));
    assert_eq!(errors[0].code, "item_not_found");
    assert_eq!(errors[0].pointer.as_deref(), Some("/items/1"));
    assert_eq!(s.get_item(p, "c", "ghost").await.unwrap_err().code(), ErrorCode::ItemNotFound);

    // With create_missing, the patch creates it.
    let out =
        s.bulk_patch_items(p, "c", Dialect::Native, vec![up("ghost", json!({"y": 4}))], true, &opts()).await.unwrap();
    r.run_until_idle().await.unwrap();
    assert_eq!(job(s, p, out.job.unwrap().id).await.completed_count, 1);
    assert_eq!(Value::Object(s.get_item(p, "c", "ghost").await.unwrap().fields), json!({"y": 4}));
}

async fn category_jobs(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "catg").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 5).await;
    let r = runner(s, "r", 1000);
    let cat = |id: &str, ext: Option<&str>, name: Option<&str>, items: Option<&[&str]>| CategoryInput {
        id: RawId::String(id.into()),
        external_id: ext.map(str::to_owned),
        name: name.map(str::to_owned),
        item_ids: items.map(|i| i.iter().map(|s| (*s).to_owned()).collect()),
    };
    let out = s
        .bulk_upsert_categories(
            p,
            "c",
            Dialect::Native,
            vec![
                cat("shoes", Some("ext-1"), Some("Shoes"), Some(&["item-00001", "item-00000"])),
                cat("hats", None, Some("Hats"), None),
                cat("bad", None, None, Some(&["not ok"])),
            ],
            &opts(),
        )
        .await
        .unwrap();
    assert!(out.results[2].is_err(), "a bad item id refuses its category");
    r.run_until_idle().await.unwrap();
    let cats = s.list_categories(p, "c", None, 10).await.unwrap().rows;
    assert_eq!(cats.len(), 2);
    assert_eq!((cats[0].id.as_str(), cats[0].name.as_deref(), cats[0].item_ids.len()), ("hats", Some("Hats"), 0));
    assert_eq!(cats[1].item_ids, vec!["item-00000".to_owned(), "item-00001".to_owned()]);
    assert_eq!(cats[1].external_id.as_deref(), Some("ext-1"));

    // Update changes what is given, keeps the rest; a missing category is a per-item failure.
    let out = s
        .bulk_update_categories(
            p,
            "c",
            Dialect::Native,
            vec![cat("shoes", None, Some("Sneakers"), Some(&["item-00004"])), cat("nope", None, Some("x"), None)],
            &opts(),
        )
        .await
        .unwrap();
    let id = out.job.unwrap().id;
    r.run_until_idle().await.unwrap();
    let done = job(s, p, id).await;
    assert_eq!((done.status, done.completed_count, done.failed_count), (JobStatus::Completed, 1, 1));
    let errors = s.list_job_errors(p, id, None, 10).await.unwrap().rows;
    assert_eq!((errors[0].index, errors[0].item_id.as_deref()), (1, Some("nope")));
    let cats = s.list_categories(p, "c", None, 10).await.unwrap().rows;
    assert_eq!(cats.len(), 2, "update creates nothing");
    let shoes = cats.iter().find(|c| c.id == "shoes").unwrap();
    assert_eq!((shoes.name.as_deref(), shoes.external_id.as_deref()), (Some("Sneakers"), Some("ext-1")));
    assert_eq!(shoes.item_ids, vec!["item-00004".to_owned()]);

    // Deleting an item removes it from its categories.
    s.bulk_delete_items(p, "c", Dialect::Native, vec!["item-00004".into()], &opts()).await.unwrap();
    r.run_until_idle().await.unwrap();
    let cats = s.list_categories(p, "c", None, 10).await.unwrap().rows;
    assert!(cats.iter().all(|c| c.item_ids.is_empty()));

    // Delete: a missing category counts as done.
    let out =
        s.bulk_delete_categories(p, "c", Dialect::Native, vec!["hats".into(), "ghost".into()], &opts()).await.unwrap();
    let id = out.job.unwrap().id;
    r.run_until_idle().await.unwrap();
    let done = job(s, p, id).await;
    assert_eq!((done.completed_count, done.failed_count, done.kind), (2, 0, JobKind::CategoryBulkDelete));
    let cats = s.list_categories(p, "c", None, 10).await.unwrap().rows;
    assert_eq!(cats.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["shoes"]);
}

async fn scheduled_job_waits_for_start_at(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "sch").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 3).await;
    let later = catalog_store::now_ms() + 3_600_000;
    let o = JobOptions {
        start_at: Some(later),
        description: Some("nightly".into()),
        reference_id: Some("ref-1".into()),
        ..opts()
    };
    let created = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &o).await.unwrap().job.unwrap();
    assert_eq!(created.status, JobStatus::Scheduled);
    assert_eq!(
        (created.start_at, created.description.as_deref(), created.reference_id.as_deref()),
        (Some(later), Some("nightly"), Some("ref-1"))
    );
    let r = runner(s, "r", 1000);
    assert_eq!(r.process_one().await.unwrap(), None, "not due yet");
    assert_eq!(item_count(db).await, 3);
    // Its time comes (backdated rather than waited for).
    db.exec("UPDATE jobs SET start_at = 1").await;
    assert_eq!(r.process_one().await.unwrap(), Some(created.id));
    assert_eq!(job(s, p, created.id).await.status, JobStatus::Completed);
    assert_eq!(item_count(db).await, 0);
    // A start_at in the past is simply queued.
    seed(s, p, "c", 1).await;
    let past = JobOptions { start_at: Some(1), ..opts() };
    let j = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &past).await.unwrap().job.unwrap();
    assert_eq!(j.status, JobStatus::Queued);
}

async fn checkpoint_per_chunk(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "chk").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 35).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..35), &opts()).await.unwrap().job.unwrap().id;
    let r = runner(s, "r", 10);
    let mut lease = r.claim().await.unwrap().unwrap();
    assert_eq!((lease.job_id(), lease.attempt()), (id, 1));
    let claimed = job(s, p, id).await;
    assert_eq!((claimed.status, claimed.lease_owner.as_deref()), (JobStatus::Running, Some("r")));
    assert!(claimed.lease_expires_at.unwrap() > claimed.started_at.unwrap());
    for done in [10, 20, 30] {
        assert_eq!(lease.step().await.unwrap(), Step::Continue);
        let j = job(s, p, id).await;
        assert_eq!((j.status, j.cursor, j.completed_count), (JobStatus::Running, done, done));
        assert_eq!(item_count(db).await, 35 - done as i64);
    }
    assert_eq!(lease.step().await.unwrap(), Step::Finished(JobStatus::Completed));
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.cursor, j.completed_count), (JobStatus::Completed, 35, 35));
}

async fn cancel_queued_and_scheduled_is_immediate(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "cq").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 2).await;
    let queued = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await.unwrap().job.unwrap();
    let sched = JobOptions { start_at: Some(catalog_store::now_ms() + 3_600_000), ..opts() };
    let scheduled = s.bulk_delete_items(p, "c", Dialect::Native, ids(1..2), &sched).await.unwrap().job.unwrap();
    for id in [queued.id, scheduled.id] {
        let j = s.cancel_job(p, id).await.unwrap();
        assert_eq!((j.status, j.completed_count), (JobStatus::Cancelled, 0));
        assert!(j.finished_at.is_some() && j.expires_at.is_some());
    }
    db.exec("UPDATE jobs SET start_at = 1").await;
    assert_eq!(runner(s, "r", 10).process_one().await.unwrap(), None, "cancelled jobs never run");
    assert_eq!(item_count(db).await, 2);
}

async fn cancel_running_takes_effect_at_chunk_boundary(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "cr").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 35).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..35), &opts()).await.unwrap().job.unwrap().id;
    let r = runner(s, "r", 10);
    let mut lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.step().await.unwrap(), Step::Continue);
    let j = s.cancel_job(p, id).await.unwrap();
    assert_eq!((j.status, j.cancel_requested), (JobStatus::Running, true), "a running job finishes its chunk first");
    assert_eq!(lease.step().await.unwrap(), Step::Finished(JobStatus::Cancelled));
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.failed_count, j.total_count), (JobStatus::Cancelled, 10, 0, 35));
    assert!(j.completed_count + j.failed_count <= j.total_count);
    assert!(j.finished_at.is_some());
    assert_eq!(item_count(db).await, 25, "no chunk after the cancel");
    assert_eq!(s.cancel_job(p, id).await.unwrap_err().code(), ErrorCode::JobNotCancellable);
}

async fn cancel_finished_job_is_a_conflict(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "cf").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &opts()).await.unwrap().job.unwrap().id;
    runner(s, "r", 10).run_until_idle().await.unwrap();
    let err = s.cancel_job(p, id).await.unwrap_err();
    assert!(matches!(err, StoreError::JobNotCancellable { status: JobStatus::Completed, .. }));
    assert_eq!(err.code(), ErrorCode::JobNotCancellable);
    assert_eq!(job(s, p, id).await.status, JobStatus::Completed);
    assert_eq!(s.cancel_job(p, JobId(999_999)).await.unwrap_err().code(), ErrorCode::JobNotFound);
}

async fn job_fails_when_its_catalog_is_gone(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "gone").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 5).await;
    let bulk = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..5), &opts()).await.unwrap().job.unwrap();
    let delete = s.delete_catalog(p, "c").await.unwrap();
    runner(s, "r", 10).run_until_idle().await.unwrap();
    let failed = job(s, p, bulk.id).await;
    assert_eq!((failed.status, failed.completed_count), (JobStatus::Failed, 0));
    assert!(failed.failure_reason.unwrap().contains("catalog"));
    assert!(failed.finished_at.is_some() && failed.expires_at.is_some());
    assert_eq!(job(s, p, delete.id).await.status, JobStatus::Completed);
    assert_eq!(s.cancel_job(p, bulk.id).await.unwrap_err().code(), ErrorCode::JobNotCancellable);
}

async fn expired_jobs_are_purged(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "exp").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let up = ItemInput { id: "ghost".into(), fields: Map::new() };
    let done = s.bulk_patch_items(p, "c", Dialect::Native, vec![up], false, &opts()).await.unwrap().job.unwrap();
    let pending = s
        .bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &JobOptions { start_at: Some(i64::MAX / 2), ..opts() })
        .await
        .unwrap()
        .job
        .unwrap();
    runner(s, "r", 10).run_until_idle().await.unwrap();
    let finished = job(s, p, done.id).await;
    assert_eq!(finished.failed_count, 1);
    let expires = finished.expires_at.unwrap();
    assert_eq!(s.purge_expired(expires - 1).await.unwrap(), 0);
    assert_eq!(s.purge_expired(expires).await.unwrap(), 1);
    assert_eq!(s.get_job(p, done.id).await.unwrap_err().code(), ErrorCode::JobNotFound);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM job_errors").await, 0);
    let payload = format!("SELECT COUNT(*) FROM job_payloads WHERE job_id = {}", done.id.0);
    assert_eq!(db.scalar(&payload).await, 0, "the purge takes the inputs with the job");
    // Unfinished jobs never expire.
    assert_eq!(s.purge_expired(i64::MAX).await.unwrap(), 0);
    assert_eq!(job(s, p, pending.id).await.status, JobStatus::Scheduled);
}

async fn idempotency_keys(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "idem").await;
    let q = project(s, "idem2").await;
    s.create_catalog(p, "c", None).await.unwrap();
    s.create_catalog(q, "c", None).await.unwrap();
    let keyed = JobOptions { idempotency_key: Some("k-1".into()), ..opts() };
    let first = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &keyed).await.unwrap();
    assert!(!first.replayed);
    let again = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &keyed).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.job.as_ref().unwrap().id, first.job.as_ref().unwrap().id);
    assert_eq!(again.results, first.results);
    // Still the same job after it ran.
    runner(s, "r", 10).run_until_idle().await.unwrap();
    let third = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &keyed).await.unwrap();
    assert_eq!((third.replayed, third.job.unwrap().status), (true, JobStatus::Completed));
    // Same key, different request: a conflict, and nothing is created.
    let err = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..4), &keyed).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    let err = s
        .bulk_delete_items(
            p,
            "c",
            Dialect::Native,
            ids(0..3),
            &JobOptions { description: Some("x".into()), ..keyed.clone() },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    let err = s
        .bulk_upsert_items(p, "c", Dialect::Native, vec![ItemInput { id: "a".into(), fields: Map::new() }], &keyed)
        .await;
    assert_eq!(err.unwrap_err().code(), ErrorCode::IdempotencyKeyReused);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 1);
    // Keys are per project.
    let other = s.bulk_delete_items(q, "c", Dialect::Native, ids(0..3), &keyed).await.unwrap();
    assert!(!other.replayed);
    // Concurrent twins: exactly one job.
    let twin = JobOptions { idempotency_key: Some("k-2".into()), ..opts() };
    let (a, b) = tokio::join!(
        s.bulk_delete_items(p, "c", Dialect::Native, ids(0..5), &twin),
        s.bulk_delete_items(p, "c", Dialect::Native, ids(0..5), &twin)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.job.unwrap().id, b.job.unwrap().id);
    assert!(a.replayed != b.replayed);
}

async fn crash_recovery_resumes_from_checkpoint(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "crash").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 1_000).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1_000), &opts()).await.unwrap().job.unwrap().id;
    let a = runner(s, "a", 100);
    let mut lease = a.claim().await.unwrap().unwrap();
    for _ in 0..3 {
        assert_eq!(lease.step().await.unwrap(), Step::Continue);
    }
    drop(lease); // runner A dies: no release, its lease stays.
    let b = runner(s, "b", 100);
    assert!(b.claim().await.unwrap().is_none(), "a live lease is not taken over");
    backdate_leases(db).await;
    let mut lease = b.claim().await.unwrap().unwrap();
    assert_eq!((lease.job_id(), lease.attempt()), (id, 2));
    let resumed = job(s, p, id).await;
    assert_eq!((resumed.cursor, resumed.completed_count, resumed.lease_owner.as_deref()), (300, 300, Some("b")));
    let mut steps = 0;
    loop {
        steps += 1;
        match lease.step().await.unwrap() {
            Step::Continue => {}
            Step::Finished(status) => {
                assert_eq!(status, JobStatus::Completed);
                break;
            }
            Step::LeaseLost => panic!("lease lost"),
        }
    }
    assert_eq!(steps, 7, "resumed at the checkpoint: 7 chunks of 100 remain");
    let j = job(s, p, id).await;
    assert_eq!((j.completed_count, j.failed_count, j.cursor, j.total_count), (1_000, 0, 1_000, 1_000));
    assert_eq!(item_count(db).await, 0);
}

async fn fencing_stops_a_runner_that_lost_its_lease(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "fence").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 50).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..50), &opts()).await.unwrap().job.unwrap().id;
    let a = runner(s, "a", 10);
    let b = runner(s, "b", 10);
    let mut lease_a = a.claim().await.unwrap().unwrap();
    assert_eq!(lease_a.step().await.unwrap(), Step::Continue);
    backdate_leases(db).await; // A stalls past its lease...
    let mut lease_b = b.claim().await.unwrap().unwrap(); // ...and B takes the job over.
    assert_eq!(lease_b.attempt(), 2);
    // A wakes up and tries its next chunk: nothing is written.
    assert_eq!(lease_a.step().await.unwrap(), Step::LeaseLost);
    let j = job(s, p, id).await;
    assert_eq!((j.cursor, j.completed_count, j.lease_owner.as_deref()), (10, 10, Some("b")));
    assert_eq!(item_count(db).await, 40, "A's chunk was rolled back");
    // A cannot release B's job either.
    lease_a.release().await.unwrap();
    assert_eq!(job(s, p, id).await.status, JobStatus::Running);
    while lease_b.step().await.unwrap() == Step::Continue {}
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.cursor), (JobStatus::Completed, 50, 50));
    assert_eq!(item_count(db).await, 0);
}

async fn release_returns_job_to_queue(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "rel").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 30).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..30), &opts()).await.unwrap().job.unwrap().id;
    let r = runner(s, "r", 10);
    let mut lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.step().await.unwrap(), Step::Continue);
    lease.release().await.unwrap();
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.cursor, j.lease_owner, j.lease_expires_at), (JobStatus::Queued, 10, None, None));
    // Another runner resumes it at once, without waiting for any lease to expire.
    let mut lease = runner(s, "other", 10).claim().await.unwrap().unwrap();
    assert_eq!(lease.attempt(), 2);
    while lease.step().await.unwrap() == Step::Continue {}
    assert_eq!(job(s, p, id).await.completed_count, 30);
}

async fn run_loop_wakes_on_enqueue_and_stops_on_shutdown(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "loop").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 100).await;
    let config = RunnerConfig {
        owner: "loop".into(),
        chunk_size: 10,
        workers: 2,
        poll_interval: Duration::from_secs(3600),
        ..RunnerConfig::default()
    };
    let r = Runner::new(s.clone(), config);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn({
        let r = r.clone();
        async move {
            r.run(async {
                let _ = stop_rx.await;
            })
            .await
        }
    });
    // With an hour-long poll interval, only the in-process wake-up can start these jobs.
    let mut jobs = Vec::new();
    for start in (0..100).step_by(25) {
        jobs.push(
            s.bulk_delete_items(p, "c", Dialect::Native, ids(start..start + 25), &opts())
                .await
                .unwrap()
                .job
                .unwrap()
                .id,
        );
    }
    for id in &jobs {
        let j = s.wait_for_job(p, *id, Duration::from_secs(60)).await.unwrap();
        assert_eq!((j.status, j.completed_count), (JobStatus::Completed, 25));
    }
    stop_tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
    assert_eq!(item_count(db).await, 0);
    // After shutdown nothing holds a lease.
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs WHERE lease_owner IS NOT NULL").await, 0);
    // A wait that times out returns the job as it is.
    let later = JobOptions { start_at: Some(catalog_store::now_ms() + 3_600_000), ..opts() };
    let sched = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &later).await.unwrap().job.unwrap();
    let j = s.wait_for_job(p, sched.id, Duration::from_millis(20)).await.unwrap();
    assert_eq!(j.status, JobStatus::Scheduled);
}

async fn tenancy_isolates_projects(db: &TestDb) {
    let s = &db.store;
    let a = project(s, "tenant-a").await;
    let b = project(s, "tenant-b").await;
    s.create_catalog(a, "shared-name", None).await.unwrap();
    seed(s, a, "shared-name", 10).await;
    let job_a = s.bulk_delete_items(a, "shared-name", Dialect::Native, ids(0..5), &opts()).await.unwrap().job.unwrap();
    let key_a = s.create_api_key(a, None, &[Scope::JobsRead]).await.unwrap();

    // B sees none of A's data...
    assert_eq!(s.get_catalog(b, "shared-name").await.unwrap_err().code(), ErrorCode::CatalogNotFound);
    assert!(s.list_catalogs(b, None, 100).await.unwrap().rows.is_empty());
    assert_eq!(s.get_item(b, "shared-name", "item-00000").await.unwrap_err().code(), ErrorCode::CatalogNotFound);
    assert_eq!(s.list_items(b, "shared-name", None, 10).await.unwrap_err().code(), ErrorCode::CatalogNotFound);
    assert_eq!(s.list_categories(b, "shared-name", None, 10).await.unwrap_err().code(), ErrorCode::CatalogNotFound);
    assert_eq!(s.get_job(b, job_a.id).await.unwrap_err().code(), ErrorCode::JobNotFound);
    assert_eq!(s.list_job_errors(b, job_a.id, None, 10).await.unwrap_err().code(), ErrorCode::JobNotFound);
    assert_eq!(s.wait_for_job(b, job_a.id, Duration::ZERO).await.unwrap_err().code(), ErrorCode::JobNotFound);
    assert!(s
        .list_jobs(b, &JobFilter::default(), &JobPaging::Cursor { cursor: None, limit: 100 })
        .await
        .unwrap()
        .rows
        .is_empty());
    assert_eq!(s.count_jobs_in_progress(b).await.unwrap(), 0);
    assert!(s.list_api_keys(b).await.unwrap().is_empty());
    // ...and changes none of it.
    assert_eq!(s.cancel_job(b, job_a.id).await.unwrap_err().code(), ErrorCode::JobNotFound);
    assert_eq!(s.delete_catalog(b, "shared-name").await.unwrap_err().code(), ErrorCode::CatalogNotFound);
    assert_eq!(
        s.bulk_delete_items(b, "shared-name", Dialect::Native, ids(0..10), &opts()).await.unwrap_err().code(),
        ErrorCode::CatalogNotFound
    );
    assert!(matches!(s.revoke_api_key(b, key_a.key.id).await, Err(StoreError::ApiKeyNotFound)));
    assert!(s.authenticate(&key_a.token).await.unwrap().is_some());
    // B's own catalog of the same name is a different catalog.
    s.create_catalog(b, "shared-name", None).await.unwrap();
    assert_eq!(s.get_catalog(b, "shared-name").await.unwrap().item_count, Some(0));
    let job_b = s.bulk_delete_items(b, "shared-name", Dialect::Native, ids(0..10), &opts()).await.unwrap().job.unwrap();
    runner(s, "r", 100).run_until_idle().await.unwrap();
    assert_eq!(
        s.get_catalog(a, "shared-name").await.unwrap().item_count,
        Some(5),
        "only A's own job touched A's items"
    );
    assert_eq!(job(s, a, job_a.id).await.status, JobStatus::Completed);
    assert_eq!(job(s, b, job_b.id).await.completed_count, 10);
    let listed_a = s.list_jobs(a, &JobFilter::default(), &JobPaging::Page { page: 1, limit: 100 }).await.unwrap().rows;
    assert!(listed_a.iter().all(|j| j.project_id == a));
    assert!(!listed_a.iter().any(|j| j.id == job_b.id));
}

async fn jobs_keyset_and_page_pagination_with_filters(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "pages").await;
    s.create_catalog(p, "c", None).await.unwrap();
    s.create_catalog(p, "d", None).await.unwrap();
    let mut created = Vec::new();
    for i in 0..25 {
        let catalog = if i % 5 == 0 { "d" } else { "c" };
        created
            .push(s.bulk_delete_items(p, catalog, Dialect::Native, ids(i..i + 1), &opts()).await.unwrap().job.unwrap());
    }
    let upsert = s
        .bulk_upsert_items(p, "c", Dialect::Native, vec![ItemInput { id: "u".into(), fields: Map::new() }], &opts())
        .await
        .unwrap()
        .job
        .unwrap();
    s.cancel_job(p, created[0].id).await.unwrap();

    // Keyset: newest first, no overlap, no gap.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_jobs(p, &JobFilter::default(), &JobPaging::Cursor { cursor: cursor.clone(), limit: 10 })
            .await
            .unwrap();
        assert!(page.rows.len() <= 10);
        seen.extend(page.rows.iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<JobId> = created.iter().map(|j| j.id).chain([upsert.id]).collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);

    // Page numbers (OpenReplay): page 2 of 10 is the 11th..20th newest; past the end is empty.
    let page2 = s.list_jobs(p, &JobFilter::default(), &JobPaging::Page { page: 2, limit: 10 }).await.unwrap();
    assert_eq!(page2.rows.iter().map(|j| j.id).collect::<Vec<_>>(), expected[10..20]);
    assert!(s
        .list_jobs(p, &JobFilter::default(), &JobPaging::Page { page: 9, limit: 10 })
        .await
        .unwrap()
        .rows
        .is_empty());

    // Filters.
    let list = |f: JobFilter| async move {
        s.list_jobs(p, &f, &JobPaging::Cursor { cursor: None, limit: 100 }).await.unwrap().rows
    };
    assert_eq!(list(JobFilter { kinds: vec![JobKind::ItemBulkUpsert], ..Default::default() }).await.len(), 1);
    assert_eq!(list(JobFilter { catalog: Some("d".into()), ..Default::default() }).await.len(), 5);
    let cancelled = list(JobFilter { statuses: vec![JobStatus::Cancelled], ..Default::default() }).await;
    assert_eq!(cancelled.iter().map(|j| j.id).collect::<Vec<_>>(), vec![created[0].id]);
    let klaviyo_queued = JobStatus::from_klaviyo_word("queued").unwrap().to_vec();
    assert_eq!(list(JobFilter { statuses: klaviyo_queued, ..Default::default() }).await.len(), 25);
    let t = created[10].created_at;
    let after = list(JobFilter { created_after: Some(t + 1_000_000), ..Default::default() }).await;
    assert!(after.is_empty());
    let before = list(JobFilter { created_before: Some(created[0].created_at), ..Default::default() }).await;
    assert!(before.is_empty());
    let in_range = list(JobFilter {
        created_after: Some(created[0].created_at),
        created_before: Some(i64::MAX),
        ..Default::default()
    })
    .await;
    assert_eq!(in_range.len(), 26);
    let err =
        s.list_jobs(p, &JobFilter::default(), &JobPaging::Cursor { cursor: Some("garbage".into()), limit: 5 }).await;
    assert_eq!(err.unwrap_err().code(), ErrorCode::InvalidQuery);
}

async fn items_keyset_pagination(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "itp").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 25).await;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.list_items(p, "c", cursor.as_deref(), 10).await.unwrap();
        all.extend(page.rows.into_iter().map(|i| i.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("item-{i:05}")).collect();
    assert_eq!(all, expected);
    assert_eq!(s.list_items(p, "c", Some("j00"), 10).await.unwrap_err().code(), ErrorCode::InvalidQuery);
}

async fn job_errors_are_paged(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "errs").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let items: Vec<ItemInput> =
        (0..5).map(|i| ItemInput { id: RawId::String(format!("g{i}")), fields: Map::new() }).collect();
    let id = s.bulk_patch_items(p, "c", Dialect::Native, items, false, &opts()).await.unwrap().job.unwrap().id;
    runner(s, "r", 2).run_until_idle().await.unwrap();
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.failed_count), (JobStatus::Completed, 0, 5));
    let mut indexes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.list_job_errors(p, id, cursor.as_deref(), 2).await.unwrap();
        indexes.extend(page.rows.iter().map(|e| e.index));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(indexes, vec![0, 1, 2, 3, 4]);
}

async fn rate_quotas(db: &TestDb) {
    let s = &db.store;
    let bloomreach = Quota::new(5, 10_000);
    for _ in 0..5 {
        assert!(s.take_quota("p1:catalog", &[bloomreach], 0).await.unwrap().allowed);
    }
    let denied = s.take_quota("p1:catalog", &[bloomreach], 0).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_secs, 2);
    assert!(s.take_quota("p2:catalog", &[bloomreach], 0).await.unwrap().allowed, "keys are independent");
    assert!(s.take_quota("p1:catalog", &[bloomreach], 2_000).await.unwrap().allowed, "refills");

    // Several quotas: a request denied by one consumes none of the others.
    let burst = Quota::per_second(2);
    let steady = Quota::per_minute(3);
    assert!(s.take_quota("k", &[burst, steady], 0).await.unwrap().allowed);
    assert!(s.take_quota("k", &[burst, steady], 0).await.unwrap().allowed);
    assert!(!s.take_quota("k", &[burst, steady], 0).await.unwrap().allowed, "burst of 2");
    assert!(s.take_quota("k", &[burst, steady], 1_000).await.unwrap().allowed, "the third of the minute");
    let d = s.take_quota("k", &[burst, steady], 2_000).await.unwrap();
    assert!(!d.allowed, "steady quota exhausted");
    assert!(d.retry_after_secs > 1);
    assert!(s.take_quota("k", &[], 0).await.unwrap().allowed, "no quota, no limit");
}

async fn jobs_in_progress_are_counted(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "prog").await;
    s.create_catalog(p, "c", None).await.unwrap();
    for i in 0..3 {
        s.bulk_delete_items(p, "c", Dialect::Native, ids(i..i + 1), &opts()).await.unwrap();
    }
    let later = JobOptions { start_at: Some(catalog_store::now_ms() + 3_600_000), ..opts() };
    s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &later).await.unwrap();
    assert_eq!(s.count_jobs_in_progress(p).await.unwrap(), 4);
    runner(s, "r", 10).run_until_idle().await.unwrap();
    assert_eq!(s.count_jobs_in_progress(p).await.unwrap(), 1);
}

async fn two_runners_share_200_jobs(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "two").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 2_000).await;
    for j in 0..200 {
        s.bulk_delete_items(p, "c", Dialect::Native, ids(j * 10..j * 10 + 10), &opts()).await.unwrap();
    }
    let a = runner(s, "a", 4);
    let b = runner(s, "b", 4);
    let (na, nb) = tokio::join!(a.run_until_idle(), b.run_until_idle());
    let (na, nb) = (na.unwrap(), nb.unwrap());
    assert_eq!(na + nb, 200, "every job processed exactly once");
    if db.is_pg() {
        println!("runner a processed {na} jobs, runner b {nb}");
    }
    let jobs = s
        .list_jobs(
            p,
            &JobFilter { kinds: vec![JobKind::ItemBulkDelete], ..Default::default() },
            &JobPaging::Page { page: 1, limit: 1000 },
        )
        .await
        .unwrap()
        .rows;
    assert_eq!(jobs.len(), 200);
    for j in &jobs {
        // Exact counts with the cursor at the end: no chunk was applied (or counted) twice.
        assert_eq!(
            (j.status, j.completed_count, j.failed_count, j.cursor),
            (JobStatus::Completed, 10, 0, 10),
            "job {}",
            j.id
        );
        assert_eq!(j.attempt, 1, "no job was claimed twice");
    }
    assert_eq!(item_count(db).await, 0);
}

async fn repeated_ids_apply_in_request_order(db: &TestDb) {
    // Bloomreach allows an id twice in one request: the later one wins, and both count as done.
    let s = &db.store;
    let p = project(s, "rep").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let r = runner(s, "r", 1000);
    let up = |id: &str, v: Value| ItemInput { id: RawId::String(id.into()), fields: fields(v) };
    let items = vec![up("a", json!({"v": 1})), up("b", json!({"v": 0})), up("a", json!({"v": 2}))];
    let id = s.bulk_upsert_items(p, "c", Dialect::Bloomreach, items, &opts()).await.unwrap().job.unwrap().id;
    r.run_until_idle().await.unwrap();
    assert_eq!(job(s, p, id).await.completed_count, 3);
    assert_eq!(Value::Object(s.get_item(p, "c", "a").await.unwrap().fields), json!({"v": 2}));
    let patches = vec![up("a", json!({"x": 1})), up("a", json!({"y": 2}))];
    let id = s.bulk_patch_items(p, "c", Dialect::Bloomreach, patches, false, &opts()).await.unwrap().job.unwrap().id;
    r.run_until_idle().await.unwrap();
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.failed_count), (JobStatus::Completed, 2, 0));
    assert_eq!(Value::Object(s.get_item(p, "c", "a").await.unwrap().fields), json!({"v": 2, "x": 1, "y": 2}));
    let ids = vec!["b".into(), "b".into(), "zz".into()];
    let id = s.bulk_delete_items(p, "c", Dialect::Bloomreach, ids, &opts()).await.unwrap().job.unwrap().id;
    r.run_until_idle().await.unwrap();
    assert_eq!(job(s, p, id).await.completed_count, 3);
    assert_eq!(s.get_item(p, "c", "b").await.unwrap_err().code(), ErrorCode::ItemNotFound);
}

async fn migration_2_moves_pending_payloads(db: &TestDb) {
    // A database left at schema 1 with a pending job (payload inside the jobs row) is upgraded
    // at start-up, and the job then runs from its moved payload.
    let (url, raw, _cleanup) = empty_database(db).await;
    let v1 = if db.is_pg() {
        include_str!("../migrations/postgres/0001_init.sql")
    } else {
        include_str!("../migrations/sqlite/0001_init.sql")
    };
    raw_script(&raw, v1).await;
    raw_script(
        &raw,
        r#"CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
           INSERT INTO schema_migrations VALUES (1, 0);
           INSERT INTO projects (key, name, created_at) VALUES ('old', 'old', 0);
           INSERT INTO catalogs (project_id, name, created_at, updated_at) VALUES (1, 'c', 0, 0);
           INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
               VALUES (1, 'a', '{}', 0, 0), (1, 'b', '{}', 0, 0), (1, 'keep', '{}', 0, 0);
           INSERT INTO jobs (project_id, catalog_id, catalog_name, kind, status, total_count, payload, created_at, updated_at)
               VALUES (1, 1, 'c', 'item_bulk_delete', 'queued', 2, '["a","b"]', 0, 0);"#,
    )
    .await;
    let store = Store::connect(&url, StoreConfig::default()).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), store.latest_schema_version());
    let p = store.get_project_by_key("old").await.unwrap().id;
    let id = runner(&store, "r", 10).process_one().await.unwrap().unwrap();
    let j = store.get_job(p, id).await.unwrap();
    assert_eq!((j.status, j.completed_count), (JobStatus::Completed, 2));
    let left = store.list_items(p, "c", None, 10).await.unwrap().rows;
    assert_eq!(left.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["keep"]);
    store.close().await;
}

async fn a_lost_checkpoint_is_redone_not_skipped(db: &TestDb) {
    // Intermediate checkpoints commit without waiting for the disk, so a database crash may lose
    // the latest one together with its data change while the runner goes on. Simulate that: undo
    // the first chunk (items back, checkpoint back) behind the runner's back. The next checkpoint
    // is a compare-and-set on the cursor, so the runner notices, resyncs and redoes the chunk.
    let s = &db.store;
    let p = project(s, "lost").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 30).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..30), &opts()).await.unwrap().job.unwrap().id;
    let r = runner(s, "r", 10);
    let mut lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.step().await.unwrap(), Step::Continue);
    assert_eq!(item_count(db).await, 20);
    db.exec("UPDATE jobs SET cursor = 0, completed_count = 0 WHERE status = 'running'").await;
    db.exec(
        "INSERT INTO items (catalog_id, item_id, fields, created_at, updated_at)
         SELECT catalog_id, 'item-0000' || CAST(n AS TEXT), '{}', 0, 0
         FROM (SELECT id AS catalog_id FROM catalogs WHERE name = 'c') c,
              (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
               UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) d",
    )
    .await;
    assert_eq!(item_count(db).await, 30);
    let mut steps = 0;
    loop {
        steps += 1;
        match lease.step().await.unwrap() {
            Step::Continue => {}
            Step::Finished(status) => {
                assert_eq!(status, JobStatus::Completed);
                break;
            }
            Step::LeaseLost => panic!("the lease is still ours"),
        }
    }
    assert!(steps >= 3);
    let j = job(s, p, id).await;
    assert_eq!((j.completed_count, j.cursor, j.attempt), (30, 30, 1));
    assert_eq!(item_count(db).await, 0, "the undone chunk was applied again");
}

/// Many requests at once go through the group-commit writer: each gets its own job with its own
/// payload, twins sharing an idempotency key get one job between them, and every job runs.
async fn concurrent_enqueues_are_committed_together_and_each_once(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "group").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let requests = (0..200).map(|n| {
        let store = s.clone();
        // Requests 100..200 come in twins: n and n + 50 share a key and a body.
        let key = (n >= 100).then(|| format!("twin-{}", 100 + (n - 100) % 50));
        let body = if n >= 100 { 100 + (n - 100) % 50 } else { n };
        tokio::spawn(async move {
            let options = JobOptions { idempotency_key: key, ..JobOptions::default() };
            let ids = ids(body * 10..body * 10 + 10);
            store.bulk_delete_items(p, "c", Dialect::Native, ids, &options).await
        })
    });
    let mut jobs = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        jobs.push(request.await.unwrap().unwrap().job.unwrap().id);
    }
    let distinct: std::collections::BTreeSet<_> = jobs.iter().collect();
    assert_eq!(distinct.len(), 150, "100 plain requests and 50 pairs of twins");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 150);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM job_payloads").await, 150);
    runner(s, "r", 1000).run_until_idle().await.unwrap();
    for id in distinct {
        let job = job(s, p, *id).await;
        assert_eq!((job.status, job.completed_count), (JobStatus::Completed, 10));
    }
}

async fn a_revoked_key_creates_nothing(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "revoke").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let live = s.create_api_key(p, None, &[Scope::CatalogsWrite]).await.unwrap();
    let doomed = s.create_api_key(p, None, &[Scope::CatalogsWrite]).await.unwrap();
    let by = |key: &catalog_store::CreatedApiKey| JobOptions { requested_by: Some(key.key.id), ..opts() };
    let keyed = JobOptions { idempotency_key: Some("k".into()), ..by(&doomed) };
    s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &keyed).await.unwrap();

    // Revoked behind the cache's back, as another process would.
    assert!(s.authenticate_cached(&doomed.token).await.unwrap().is_some());
    db.exec(&format!("UPDATE api_keys SET revoked_at = 1 WHERE id = {}", doomed.key.id.0)).await;
    assert!(s.authenticate_cached(&doomed.token).await.unwrap().is_some(), "the cache cannot know yet");

    // Concurrent requests of both keys: those of the revoked key are refused, each alone.
    let requests = (0..40).map(|n| {
        let store = s.clone();
        let options = if n % 2 == 0 { by(&live) } else { by(&doomed) };
        tokio::spawn(async move { store.bulk_delete_items(p, "c", Dialect::Native, ids(n..n + 1), &options).await })
    });
    for (n, request) in requests.collect::<Vec<_>>().into_iter().enumerate() {
        match request.await.unwrap() {
            Ok(outcome) => assert!(n % 2 == 0 && outcome.job.is_some(), "request {n} was accepted"),
            Err(error) => {
                assert!(n % 2 == 1 && matches!(error, StoreError::ApiKeyRevoked), "request {n}: {error}");
                assert_eq!(error.code(), ErrorCode::Unauthenticated);
            }
        }
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 21);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM job_payloads").await, 21);
    // A large request (its payload is inserted another way on SQLite) is refused the same.
    let err = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..10_000), &by(&doomed)).await.unwrap_err();
    assert!(matches!(err, StoreError::ApiKeyRevoked), "{err}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 21);

    // A replay of the revoked key's earlier job is refused too, not shown.
    let err = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..3), &keyed).await.unwrap_err();
    assert!(matches!(err, StoreError::ApiKeyRevoked), "{err}");
    // The refusal dropped the key from the cache.
    assert_eq!(s.authenticate_cached(&doomed.token).await.unwrap(), None);
    assert!(!s.api_key_is_live(doomed.key.id).await.unwrap());
    // Revoked through this store, a key leaves the cache at once.
    assert!(s.authenticate_cached(&live.token).await.unwrap().is_some());
    s.revoke_api_key(p, live.key.id).await.unwrap();
    assert_eq!(s.authenticate_cached(&live.token).await.unwrap(), None);
}

async fn a_catalog_deleted_elsewhere_is_checked_again(db: &TestDb) {
    let s = &db.store;
    // A second store on the same database: another process, or another node.
    let elsewhere = Store::connect(&db.url, StoreConfig::default()).await.unwrap();
    let p = project(s, "cache").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let first = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await.unwrap().job.unwrap();

    // Deleted and created again elsewhere: the job goes to the new catalog.
    elsewhere.delete_catalog(p, "c").await.unwrap();
    let recreated = elsewhere.create_catalog(p, "c", None).await.unwrap();
    let second = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await.unwrap().job.unwrap();
    assert_eq!(second.catalog_id, Some(recreated.id));
    assert_ne!(second.catalog_id, first.catalog_id);

    // Deleted elsewhere for good: not found, and nothing is created, for a small request or a
    // large one (whose payload is inserted another way on SQLite).
    elsewhere.delete_catalog(p, "c").await.unwrap();
    let jobs = db.scalar("SELECT COUNT(*) FROM jobs").await;
    for count in [1, 10_000] {
        let err = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..count), &opts()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::CatalogNotFound);
        assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, jobs);
    }
}

/// Blocks job inserts from a connection of the test's own (SQLite's write lock, or the `jobs`
/// table on PostgreSQL) until [`Blocker::release`].
enum Blocker {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Blocker {
    async fn hold(db: &TestDb) -> Blocker {
        match &db.raw {
            Raw::Sqlite(pool) => {
                let mut connection = pool.acquire().await.unwrap();
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *connection).await.unwrap();
                Blocker::Sqlite(connection)
            }
            Raw::Pg(pool) => {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("LOCK TABLE jobs IN EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
                Blocker::Pg(tx)
            }
        }
    }

    async fn release(self) {
        match self {
            Blocker::Sqlite(mut connection) => {
                sqlx::query("COMMIT").execute(&mut *connection).await.unwrap();
            }
            Blocker::Pg(tx) => tx.commit().await.unwrap(),
        }
    }
}

/// A hundred requests queued behind a blocked insert are committed as one batch of several
/// 32-row groups (SQLite) or one statement (PostgreSQL); each job still gets its own row and
/// payload, and the refused ones (a revoked key, a taken idempotency key) in any group are told
/// apart from the created ones.
async fn a_batch_of_many_groups_gives_each_job_its_own_row(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "groups").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let live = s.create_api_key(p, None, &[Scope::CatalogsWrite]).await.unwrap().key.id;
    let doomed = s.create_api_key(p, None, &[Scope::CatalogsWrite]).await.unwrap().key.id;
    // Cached as live, then revoked behind the cache's back.
    s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &JobOptions { requested_by: Some(doomed), ..opts() })
        .await
        .unwrap();
    db.exec(&format!("UPDATE api_keys SET revoked_at = 1 WHERE id = {}", doomed.0)).await;
    let before = db.scalar("SELECT COUNT(*) FROM jobs").await;

    let blocker = Blocker::hold(db).await;
    let request = |n: usize| {
        let store = s.clone();
        let twin = n % 30 == 7;
        let options = JobOptions {
            reference_id: Some(if twin { "twin".to_owned() } else { n.to_string() }),
            idempotency_key: twin.then(|| "twin".to_owned()),
            requested_by: Some(if n % 9 == 4 { doomed } else { live }),
            ..opts()
        };
        let range = if twin { 5000..5003 } else { n * 3..n * 3 + 3 };
        tokio::spawn(async move { store.bulk_delete_items(p, "c", Dialect::Native, ids(range), &options).await })
    };
    // The first request holds the writer at the lock; the next hundred queue up behind it.
    let first = request(0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued: Vec<_> = (1..=100).map(request).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocker.release().await;

    assert!(first.await.unwrap().unwrap().job.is_some());
    let mut twin_jobs = std::collections::BTreeSet::new();
    let mut created = 1;
    for (n, request) in (1..=100).zip(queued) {
        match request.await.unwrap() {
            Err(error) => assert!(n % 9 == 4 && matches!(error, StoreError::ApiKeyRevoked), "request {n}: {error}"),
            Ok(outcome) => {
                assert_ne!(n % 9, 4, "request {n} of the revoked key was accepted");
                let answered = outcome.job.unwrap();
                let stored = job(s, p, answered.id).await;
                assert_eq!(stored, answered, "request {n}: the job answered is the job stored");
                if n % 30 == 7 {
                    twin_jobs.insert(answered.id);
                } else {
                    assert_eq!(stored.reference_id, Some(n.to_string()), "request {n} got another's row");
                    created += 1;
                }
            }
        }
    }
    assert_eq!(twin_jobs.len(), 1, "requests sharing an idempotency key share one job");
    created += 1;
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await - before, created);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM job_payloads").await - before, created);
    // Each payload is its own job's: every job deletes exactly its three ids.
    runner(s, "r", 1000).run_until_idle().await.unwrap();
    let items_deleted = db.scalar("SELECT CAST(COALESCE(SUM(completed_count), 0) AS BIGINT) FROM jobs").await;
    assert_eq!(items_deleted, 1 + 3 * created);
}

/// A payload of 64 KiB or more is committed alone, and on SQLite stored in parts of at most
/// 1 MiB (`job_payload_parts`); every reader gets it back whole, and the purge removes the parts.
async fn a_large_payload_is_stored_in_parts_and_read_whole(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "large").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let parts_of = |id: JobId| format!("SELECT COUNT(*) FROM job_payload_parts WHERE job_id = {}", id.0);
    let expect_parts = |parts: i64| {
        // PostgreSQL receives a payload whole; only SQLite cuts it.
        if db.is_pg() {
            assert_eq!(parts, 0);
        } else {
            assert!(parts >= 1, "the payload was stored whole");
        }
    };

    // About 3 MB of items, with two-byte characters that a cut must not split.
    let blob = "ü".repeat(750);
    let item = |i: usize| json!({ "blob": blob, "n": i });
    let items: Vec<ItemInput> =
        (0..2000).map(|i| ItemInput { id: RawId::String(format!("item-{i:05}")), fields: fields(item(i)) }).collect();
    // Twins behind a blocked insert both reach the writer: the second finds the key taken.
    let blocker = Blocker::hold(db).await;
    let twin = || {
        let (store, items) = (s.clone(), items.clone());
        let options = JobOptions { idempotency_key: Some("large".into()), ..opts() };
        tokio::spawn(async move { store.bulk_upsert_items(p, "c", Dialect::Native, items, &options).await })
    };
    let (first, second) = (twin(), twin());
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocker.release().await;
    let first = first.await.unwrap().unwrap().job.unwrap();
    let second = second.await.unwrap().unwrap().job.unwrap();
    assert_eq!(first.id, second.id, "twins share one job");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 1);
    expect_parts(db.scalar(&parts_of(first.id)).await);

    runner(s, "r", 500).run_until_idle().await.unwrap();
    let done = job(s, p, first.id).await;
    assert_eq!((done.status, done.completed_count, done.failed_count), (JobStatus::Completed, 2000, 0));
    for i in [0, 777, 1999] {
        let stored = s.get_item(p, "c", &format!("item-{i:05}")).await.unwrap();
        assert_eq!(Value::Object(stored.fields), item(i));
    }

    // About 2 MB of ids, read back whole by the Klaviyo facade's call.
    let long_ids: Vec<String> = (0..10_000).map(|i| format!("{}-{i:05}", "x".repeat(190))).collect();
    let raw = long_ids.iter().cloned().map(RawId::String).collect();
    let delete = s.bulk_delete_items(p, "c", Dialect::Native, raw, &opts()).await.unwrap().job.unwrap();
    expect_parts(db.scalar(&parts_of(delete.id)).await);
    assert_eq!(s.job_input_ids(p, delete.id).await.unwrap(), Some(long_ids));

    runner(s, "r", 5000).run_until_idle().await.unwrap();
    db.exec("UPDATE jobs SET expires_at = 1").await;
    assert_eq!(s.purge_expired(catalog_store::now_ms()).await.unwrap(), 2);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM job_payload_parts").await, 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM job_payloads").await, 0);
}

/// A job's last item-delete chunk can claim the next due job in its own transaction (SQLite; on
/// PostgreSQL the next lease comes from a plain claim): the next lease runs that job under a fresh
/// attempt, and one handed back at shutdown is queued again.
async fn a_last_chunk_can_claim_the_next_job(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "chain").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 30).await;
    let mut jobs = Vec::new();
    for start in [0, 10, 20] {
        let job = s.bulk_delete_items(p, "c", Dialect::Native, ids(start..start + 10), &opts()).await.unwrap();
        jobs.push(job.job.unwrap().id);
    }
    let r = unbatched_runner(s, "r", 1000); // one claim per job, to chain them
    let next_of = |lease: Option<catalog_store::Lease>| {
        let r = r.clone();
        async move {
            if db.is_pg() {
                assert!(lease.is_none(), "PostgreSQL does not chain claims");
                r.claim().await.unwrap()
            } else {
                lease
            }
        }
    };

    let mut first = r.claim().await.unwrap().unwrap();
    assert_eq!(first.job_id(), jobs[0]);
    first.chain_next_claim();
    assert_eq!(first.step().await.unwrap(), Step::Finished(JobStatus::Completed));
    let mut second = next_of(first.next_lease().await.unwrap()).await.unwrap();
    assert_eq!((second.job_id(), second.attempt()), (jobs[1], 1));
    assert_eq!(job(s, p, jobs[1]).await.status, JobStatus::Running);
    second.chain_next_claim();
    assert_eq!(second.step().await.unwrap(), Step::Finished(JobStatus::Completed));

    // Handed back, as at shutdown: queued again, and claimed afresh.
    let third = next_of(second.next_lease().await.unwrap()).await.unwrap();
    assert_eq!(third.job_id(), jobs[2]);
    third.release().await.unwrap();
    assert_eq!(job(s, p, jobs[2]).await.status, JobStatus::Queued);
    let mut third = r.claim().await.unwrap().unwrap();
    assert_eq!((third.job_id(), third.attempt()), (jobs[2], 2));
    third.chain_next_claim();
    assert_eq!(third.step().await.unwrap(), Step::Finished(JobStatus::Completed));
    assert!(third.next_lease().await.unwrap().is_none(), "nothing was due");

    for id in &jobs {
        let done = job(s, p, *id).await;
        assert_eq!((done.status, done.completed_count), (JobStatus::Completed, 10));
    }
    assert_eq!(item_count(db).await, 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs WHERE lease_owner IS NOT NULL").await, 0);
}

/// `/metrics`' job figures: jobs by status over the whole database, and the inputs this process's
/// runners applied, a counter that purges never lower.
async fn job_metrics_count_jobs_and_the_items_applied_here(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "metrics").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 20).await;
    let later = JobOptions { start_at: Some(catalog_store::now_ms() + 3_600_000), ..opts() };
    s.bulk_delete_items(p, "c", Dialect::Native, ids(0..5), &later).await.unwrap();
    for start in [0, 10] {
        s.bulk_delete_items(p, "c", Dialect::Native, ids(start..start + 10), &opts()).await.unwrap();
    }
    let count = |metrics: &catalog_store::JobMetrics, status: JobStatus| {
        metrics.by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n)
    };
    // The seeding upsert job has run here: 20 items, one completed job.
    let before = s.job_metrics().await.unwrap();
    assert_eq!((count(&before, JobStatus::Scheduled), count(&before, JobStatus::Queued)), (1, 2));
    assert_eq!((count(&before, JobStatus::Completed), before.items_processed), (1, 20));

    // Chunks of 4, so each job is applied over several checkpoints: each is counted once.
    runner(s, "r", 4).run_until_idle().await.unwrap();
    let after = s.job_metrics().await.unwrap();
    assert_eq!((count(&after, JobStatus::Completed), count(&after, JobStatus::Queued)), (3, 0));
    assert_eq!(after.items_processed, 40);

    // Another process on the same database counts the same jobs but applied nothing itself.
    let elsewhere = Store::connect(&db.url, StoreConfig::default()).await.unwrap();
    let there = elsewhere.job_metrics().await.unwrap();
    assert_eq!((there.by_status, there.items_processed), (after.by_status, 0));
    elsewhere.close().await;

    // Purging finished jobs lowers the gauge, never the counter.
    db.exec("UPDATE jobs SET expires_at = 1 WHERE status = 'completed'").await;
    s.purge_expired(catalog_store::now_ms()).await.unwrap();
    let purged = s.job_metrics().await.unwrap();
    assert_eq!((count(&purged, JobStatus::Completed), purged.items_processed), (0, 40));
}

async fn job_ids_are_never_reused(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "ids").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let newest = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await.unwrap().job.unwrap();
    // The newest job disappears, as a purge would remove it.
    db.exec(&format!("DELETE FROM job_payloads WHERE job_id = {}", newest.id.0)).await;
    db.exec(&format!("DELETE FROM jobs WHERE id = {}", newest.id.0)).await;
    let next = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await.unwrap().job.unwrap();
    assert!(next.id > newest.id, "{} after {}", next.id, newest.id);
    assert_eq!(job(s, p, next.id).await, next, "the job answered is the job stored");
    // The same for a large request, whose payload is inserted another way on SQLite.
    db.exec(&format!("DELETE FROM job_payloads WHERE job_id = {}", next.id.0)).await;
    db.exec(&format!("DELETE FROM jobs WHERE id = {}", next.id.0)).await;
    let large = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..10_000), &opts()).await.unwrap().job.unwrap();
    assert!(large.id > next.id, "{} after {}", large.id, next.id);
    assert_eq!(job(s, p, large.id).await, large);
}

async fn claims_take_the_oldest_due_job_of_any_status(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "order").await;
    s.create_catalog(p, "c", None).await.unwrap();
    let later = JobOptions { start_at: Some(catalog_store::now_ms() + 3_600_000), ..opts() };
    let delete = |options: JobOptions| {
        let s = s.clone();
        async move { s.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &options).await.unwrap().job.unwrap().id }
    };
    let abandoned = delete(opts()).await; // will be running under an expired lease
    let due_later = delete(later.clone()).await; // scheduled, becomes due
    let queued = delete(opts()).await;
    let not_due = delete(later).await; // scheduled, stays in the future
    let r = unbatched_runner(s, "r", 1000); // one claim per job: the claim's order is the point
    let lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.job_id(), abandoned);
    drop(lease); // its runner "dies" holding it
    db.exec(&format!("UPDATE jobs SET start_at = 1 WHERE id = {}", due_later.0)).await;
    backdate_leases(db).await;
    // Oldest first whatever the status: the expired lease, the due schedule, the queued job.
    for expected in [abandoned, due_later, queued] {
        assert_eq!(r.process_one().await.unwrap(), Some(expected));
    }
    assert_eq!(r.process_one().await.unwrap(), None);
    assert_eq!(job(s, p, not_due).await.status, JobStatus::Scheduled);
}

async fn the_store_closes_after_enqueues(db: &TestDb) {
    // The group-commit writer keeps a connection between batches; closing the pool waits for
    // every connection, so `close` must have the writer give it back (this test hung before).
    let store = Store::connect(&db.url, StoreConfig::default()).await.unwrap();
    let p = project(&store, "close").await;
    store.create_catalog(p, "c", None).await.unwrap();
    let requests: Vec<_> = (0..10)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.bulk_delete_items(p, "c", Dialect::Native, ids(n..n + 1), &opts()).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap().unwrap();
    }
    store.close().await;
    assert!(store.list_catalogs(p, None, 10).await.is_err(), "a closed store answers nothing");
}

/// On PostgreSQL, job changes reach the other processes as notifications (the runners' and long
/// polls' `LISTEN`): one per channel and transaction, whatever the number of jobs a statement
/// changes (migration 0011's statement-level triggers), with an empty payload. A listener gets the
/// notifications of committed transactions in commit order, so a marker notified after each step
/// closes that step's list: nothing here waits for time to pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
async fn postgres_notifies_each_change_once_per_transaction() {
    let Some(db) = pg_db().await else { return };
    let s = &db.store;
    let p = project(s, "notify").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 40).await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen_all(["catalogd_jobs", "catalogd_jobs_done", "test_step"]).await.unwrap();
    // The channels notified since the last step, up to this step's marker.
    let mut step = async || {
        db.exec("SELECT pg_notify('test_step', '')").await;
        let mut channels = Vec::new();
        loop {
            let note = listener.recv().await.unwrap();
            if note.channel() == "test_step" {
                return channels;
            }
            assert_eq!(note.payload(), "", "a notification only wakes: its payload is empty");
            channels.push(note.channel().to_owned());
        }
    };

    // One accepted job, one transaction: the runners are woken once.
    let first = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..10), &opts()).await.unwrap().job.unwrap().id;
    assert_eq!(step().await, ["catalogd_jobs"]);
    let mut jobs = vec![first];
    for range in [10..20, 20..30] {
        jobs.push(s.bulk_delete_items(p, "c", Dialect::Native, ids(range), &opts()).await.unwrap().job.unwrap().id);
    }
    let accepted = step().await;
    assert!(!accepted.is_empty() && accepted.iter().all(|c| c == "catalogd_jobs"), "{accepted:?}");

    // A claim starts a job: nobody is woken.
    let r = runner(s, "r", 1000);
    let lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.job_id(), first);
    assert_eq!(step().await, Vec::<String>::new());
    // A release puts it back in the queue: the runners are woken.
    lease.release().await.unwrap();
    assert_eq!(step().await, ["catalogd_jobs"]);

    // One claim applies the three jobs together and finishes them in one transaction (the
    // leader's checkpoint and the others' end, two statements): long polls are woken once.
    r.process_one().await.unwrap().unwrap();
    assert_eq!(step().await, ["catalogd_jobs_done"]);
    for id in jobs {
        assert_eq!(job(s, p, id).await.status, JobStatus::Completed);
    }
    assert_eq!(db.scalar("SELECT COALESCE(SUM(jobs), 0)::bigint FROM queue_inputs").await, 0);
    db.store.close().await;
}
