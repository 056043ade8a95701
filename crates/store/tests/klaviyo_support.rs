//! The service calls added for the Klaviyo facade (`list_jobs_window`, `job_input_ids`,
//! `job_details`, `get_categories`, `get_items`), on SQLite and on PostgreSQL (`CATALOGD_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`; those halves are ignored unless `--include-ignored`).

use catalog_domain::{Dialect, JobKind, JobStatus, RawId};
use catalog_store::{CategoryInput, JobOptions, JobSelection, ProjectId, Runner, RunnerConfig, Store, StoreConfig};
use sqlx::Connection;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    format!("{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A store on a fresh SQLite file, and the file (removed by [`drop_sqlite`]).
async fn sqlite() -> (Store, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("catalogd_klaviyo_support_{}.db", unique()));
    let store = Store::connect(&format!("sqlite://{}", path.display()), StoreConfig::default()).await;
    (store.expect("sqlite store"), path)
}

async fn drop_sqlite(store: Store, path: std::path::PathBuf) {
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A store on a fresh PostgreSQL database, with what it takes to drop that database.
async fn postgres() -> Option<(Store, String, String)> {
    let admin_url =
        std::env::var("CATALOGD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin_url} is unreachable ({e}): start it or set CATALOGD_TEST_PG, or run without --include-ignored")
    });
    let name = format!("catalogd_kv_{}", unique());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
    let base = admin_url.split('?').next().unwrap_or_default();
    let url = format!("{}/{name}", base.rsplit_once('/').map_or(base, |(head, _)| head));
    Some((Store::connect(&url, StoreConfig::default()).await.expect("postgres store"), admin_url, name))
}

async fn drop_postgres(store: Store, admin_url: String, name: String) {
    store.close().await;
    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
    }
}

async fn setup(store: &Store) -> ProjectId {
    let project = store.create_project("acme", "Acme").await.expect("project").id;
    store.create_catalog(project, "default", None).await.expect("catalog");
    store.create_catalog(project, "other", None).await.expect("catalog");
    project
}

async fn delete_job(store: &Store, project: ProjectId, catalog: &str, ids: &[&str]) -> i64 {
    let ids = ids.iter().map(|id| RawId::from(*id)).collect();
    let outcome = store.bulk_delete_items(project, catalog, Dialect::Klaviyo, ids, &JobOptions::default()).await;
    outcome.expect("job").job.expect("a job").id.0
}

async fn windows_page_both_ways(store: &Store) {
    let project = setup(store).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(delete_job(store, project, "default", &[&format!("i{i}")]).await);
    }
    delete_job(store, project, "other", &["x"]).await;
    let selection =
        JobSelection { kinds: vec![JobKind::ItemBulkDelete], statuses: vec![], catalog: Some("default".to_owned()) };
    let first = store.list_jobs_window(project, &selection, None, 10).await.expect("first page");
    let newest: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(first.rows.iter().map(|j| j.id.0).collect::<Vec<_>>(), newest[..10]);
    assert!(first.prev_cursor.is_none());
    let second = store.list_jobs_window(project, &selection, first.next_cursor.as_deref(), 10).await.expect("page 2");
    assert_eq!(second.rows.iter().map(|j| j.id.0).collect::<Vec<_>>(), newest[10..20]);
    let third = store.list_jobs_window(project, &selection, second.next_cursor.as_deref(), 10).await.expect("page 3");
    assert_eq!(third.rows.iter().map(|j| j.id.0).collect::<Vec<_>>(), newest[20..]);
    assert!(third.next_cursor.is_none());
    let back = store.list_jobs_window(project, &selection, third.prev_cursor.as_deref(), 10).await.expect("back");
    assert_eq!(back.rows, second.rows);
    let last = store.list_jobs_window(project, &selection, first.last_cursor.as_deref(), 10).await.expect("last");
    assert_eq!(last.rows.iter().map(|j| j.id.0).collect::<Vec<_>>(), newest[15..]);
    assert!(last.next_cursor.is_none() && last.prev_cursor.is_some());

    store.cancel_job(project, catalog_store::JobId(ids[3])).await.expect("cancel");
    let cancelled = JobSelection { statuses: vec![JobStatus::Cancelled], ..selection.clone() };
    let page = store.list_jobs_window(project, &cancelled, None, 10).await.expect("filtered");
    assert_eq!(page.rows.iter().map(|j| j.id.0).collect::<Vec<_>>(), [ids[3]]);
    assert!(page.next_cursor.is_none() && page.prev_cursor.is_none());
    let nothing = JobSelection { kinds: vec![JobKind::CategoryBulkUpdate], ..selection };
    let empty = store.list_jobs_window(project, &nothing, None, 10).await.expect("empty");
    assert!(empty.rows.is_empty() && empty.last_cursor.is_none());
    assert!(store.list_jobs_window(project, &JobSelection::default(), Some("zz"), 10).await.is_err());
}

async fn inputs_and_categories(store: &Store) {
    let project = setup(store).await;
    let delete = delete_job(store, project, "default", &["b", "a"]).await;
    let mut inputs = store.job_input_ids(project, catalog_store::JobId(delete)).await.expect("inputs").expect("kept");
    inputs.sort();
    assert_eq!(inputs, ["a", "b"]);
    let category = |id: &str, name: &str| CategoryInput {
        id: RawId::from(id),
        external_id: None,
        name: Some(name.to_owned()),
        item_ids: Some(vec!["a".to_owned()]),
    };
    let upsert = vec![category("SHOES", "Shoes"), category("APPAREL", "Apparel")];
    let outcome =
        store.bulk_upsert_categories(project, "default", Dialect::Klaviyo, upsert, &JobOptions::default()).await;
    let job = outcome.expect("job").job.expect("a job").id;
    assert_eq!(store.job_input_ids(project, job).await.expect("inputs"), Some(vec!["SHOES".into(), "APPAREL".into()]));
    Runner::new(store.clone(), RunnerConfig::default()).run_until_idle().await.expect("runner");
    let wanted = ["APPAREL".to_owned(), "NONE".to_owned(), "SHOES".to_owned()];
    let found = store.get_categories(project, "default", &wanted).await.expect("categories");
    assert_eq!(found.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["APPAREL", "SHOES"]);
    assert_eq!(found[0].name.as_deref(), Some("Apparel"));
    assert_eq!(found[0].item_ids, ["a"]);
    let other = store.create_project("other", "Other").await.expect("project").id;
    assert!(store.job_input_ids(other, job).await.is_err(), "another project's job is not found");
}

async fn details_of_a_page_of_jobs(store: &Store) {
    let project = setup(store).await;
    let item = |id: &str, title: &str| catalog_store::ItemInput {
        id: RawId::from(id),
        fields: serde_json::json!({"title": title}).as_object().cloned().unwrap_or_default(),
    };
    let options = JobOptions::default();
    let upsert =
        store.bulk_upsert_items(project, "default", Dialect::Klaviyo, vec![item("b", "B"), item("a", "A")], &options);
    let upsert = upsert.await.expect("job").job.expect("a job").id;
    let patch =
        store.bulk_patch_items(project, "default", Dialect::Klaviyo, vec![item("zz", "missing")], false, &options);
    let patch = patch.await.expect("job").job.expect("a job").id;
    let delete = catalog_store::JobId(delete_job(store, project, "default", &["q"]).await);
    Runner::new(store.clone(), RunnerConfig::default()).run_until_idle().await.expect("runner");
    let details = store.job_details(project, &[upsert, patch, delete]).await.expect("details");
    assert_eq!(details[&upsert].inputs, Some(vec!["b".to_owned(), "a".to_owned()]), "request order");
    assert!(details[&upsert].errors.is_empty());
    assert_eq!(details[&patch].inputs, Some(vec!["zz".to_owned()]));
    assert_eq!(details[&patch].errors.iter().map(|e| e.index).collect::<Vec<_>>(), [0]);
    assert_eq!(details[&delete].inputs, Some(vec!["q".to_owned()]));
    let other = store.create_project("other", "Other").await.expect("project").id;
    assert!(store.job_details(other, &[upsert, patch]).await.expect("details").is_empty(), "scoped by project");
    let wanted = ["a".to_owned(), "none".to_owned(), "b".to_owned()];
    let items = store.get_items(project, "default", &wanted).await.expect("items");
    assert_eq!(items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a", "b"], "in the order asked");
    assert_eq!(items[0].fields.get("title"), Some(&serde_json::json!("A")));
}

#[tokio::test]
async fn sqlite_details_of_a_page_of_jobs() {
    let (store, path) = sqlite().await;
    details_of_a_page_of_jobs(&store).await;
    drop_sqlite(store, path).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
async fn postgres_details_of_a_page_of_jobs() {
    if let Some((store, admin_url, name)) = postgres().await {
        details_of_a_page_of_jobs(&store).await;
        drop_postgres(store, admin_url, name).await;
    }
}

#[tokio::test]
async fn sqlite_windows_page_both_ways() {
    let (store, path) = sqlite().await;
    windows_page_both_ways(&store).await;
    drop_sqlite(store, path).await;
}

#[tokio::test]
async fn sqlite_inputs_and_categories() {
    let (store, path) = sqlite().await;
    inputs_and_categories(&store).await;
    drop_sqlite(store, path).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
async fn postgres_windows_page_both_ways() {
    if let Some((store, admin_url, name)) = postgres().await {
        windows_page_both_ways(&store).await;
        drop_postgres(store, admin_url, name).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (CATALOGD_TEST_PG): run with --include-ignored, as `cargo xtask ci` does"]
async fn postgres_inputs_and_categories() {
    if let Some((store, admin_url, name)) = postgres().await {
        inputs_and_categories(&store).await;
        drop_postgres(store, admin_url, name).await;
    }
}
