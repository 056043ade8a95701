//! Klaviyo's job listings and job reads take a fixed number of database statements, whatever the
//! jobs on the page hold (inputs, per-item errors, categories): the page's details are read
//! together (`Store::job_details`), not job by job. Statements are counted from sqlx's
//! own per-statement log events (target `sqlx::query`), seen by a subscriber this test binary
//! installs for the whole process; a lock keeps the two backends' tests from counting at the same
//! time.

use axum::http::{Method, StatusCode};
use catalog_api::testing::{TestApp, TestRequest, TestResponse};
use catalog_domain::{Dialect, RawId};
use catalog_store::{CategoryInput, JobOptions};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const REVISION: &str = "2026-07-15";
const ITEM_JOBS: &str = "/api/catalog-item-bulk-delete-jobs";
const CATEGORY_JOBS: &str = "/api/catalog-category-bulk-update-jobs";

/// Statements sqlx has run in this process (each logs one `sqlx::query` event), save the store's
/// background work on its own clock (SQLite's WAL checkpoints) and the rate limiter's (its state
/// and pruning), which would make the count vary with the time a test takes.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

struct CountStatements;

/// The SQL of a `sqlx::query` event: its `summary` (the first words) and, for a longer statement,
/// its `db.statement`.
#[derive(Default)]
struct StatementText(String);

impl tracing::field::Visit for StatementText {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if matches!(field.name(), "summary" | "db.statement") {
            self.0.push_str(value);
            self.0.push(' ');
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "summary" | "db.statement") {
            self.0.push_str(&format!("{value:?} "));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut text = StatementText::default();
            event.record(&mut text);
            let text = text.0.to_ascii_lowercase();
            if !["wal_checkpoint", "rate_limits", "pragma"].iter().any(|background| text.contains(background)) {
                STATEMENTS.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Installs the counting subscriber once, and serialises the tests that count.
async fn counting() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CountStatements))
            .expect("this test binary installs the only subscriber");
    });
    LOCK.get_or_init(|| tokio::sync::Mutex::new(())).lock().await
}

/// The response to `GET path` in Klaviyo's dialect, and the statements it took.
async fn counted_get(app: &TestApp, path: &str) -> (TestResponse, u64) {
    let request = TestRequest::new(Method::GET, path)
        .header("authorization", &format!("Klaviyo-API-Key {}", app.token))
        .header("revision", REVISION);
    let before = STATEMENTS.load(Ordering::SeqCst);
    let response = app.send(request).await;
    let statements = STATEMENTS.load(Ordering::SeqCst) - before;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    (response, statements)
}

/// `n` more item delete jobs (each of an id that does not exist: a per-item error when run) and
/// `n` category update jobs (each naming two items), through the store as the facade makes them.
async fn add_jobs(app: &TestApp, n: usize, first: usize) {
    for i in first..first + n {
        app.store
            .bulk_delete_items(
                app.project.id,
                "default",
                Dialect::Klaviyo,
                vec![RawId::String(format!("gone-{i}")), RawId::String("A".to_owned())],
                &JobOptions::default(),
            )
            .await
            .expect("delete job created");
        let category = CategoryInput {
            id: RawId::String(format!("C{i}")),
            external_id: None,
            name: Some(format!("Category {i}")),
            item_ids: Some(vec!["A".to_owned(), "B".to_owned()]),
        };
        app.store
            .bulk_update_categories(app.project.id, "default", Dialect::Klaviyo, vec![category], &JobOptions::default())
            .await
            .expect("category job created");
    }
}

fn page_len(page: &Value) -> usize {
    page["data"].as_array().map_or(0, Vec::len)
}

async fn a_page_of_jobs_takes_the_same_statements_for_one_job_as_for_a_hundred() {
    let _counting = counting().await;
    let app = TestApp::new().await;
    let created = app.post("/v1/catalogs", &serde_json::json!({"name": "default"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

    add_jobs(&app, 1, 0).await;
    app.run_jobs().await;
    let (items_page, items_one) = counted_get(&app, ITEM_JOBS).await;
    let (categories_page, categories_one) = counted_get(&app, CATEGORY_JOBS).await;
    assert_eq!((page_len(&items_page.json()), page_len(&categories_page.json())), (1, 1));
    let item_job = items_page.json()["data"][0]["id"].as_str().expect("id").to_owned();
    let category_job = categories_page.json()["data"][0]["id"].as_str().expect("id").to_owned();
    let (_, item_job_one) = counted_get(&app, &format!("{ITEM_JOBS}/{item_job}")).await;
    let (_, category_job_one) = counted_get(&app, &format!("{CATEGORY_JOBS}/{category_job}?include=categories")).await;

    // 99 more of each, run (so each has an error record) and not run (inputs only).
    add_jobs(&app, 60, 1).await;
    app.run_jobs().await;
    add_jobs(&app, 39, 61).await;
    let (items_page, items_hundred) = counted_get(&app, ITEM_JOBS).await;
    let (categories_page, categories_hundred) = counted_get(&app, CATEGORY_JOBS).await;
    assert_eq!((page_len(&items_page.json()), page_len(&categories_page.json())), (100, 100));
    assert!(items_one > 0 && categories_one > 0, "sqlx logs each statement");
    assert_eq!(items_hundred, items_one, "item delete jobs: a page of 100 against a page of 1");
    assert_eq!(categories_hundred, categories_one, "category update jobs: a page of 100 against a page of 1");
    let (_, item_job_again) = counted_get(&app, &format!("{ITEM_JOBS}/{item_job}")).await;
    let (_, category_job_again) =
        counted_get(&app, &format!("{CATEGORY_JOBS}/{category_job}?include=categories")).await;
    assert_eq!((item_job_again, category_job_again), (item_job_one, category_job_one));
}

catalog_api::on_both_backends!(a_page_of_jobs_takes_the_same_statements_for_one_job_as_for_a_hundred);
