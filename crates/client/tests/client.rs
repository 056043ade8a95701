//! The library client against a real catalogd (see `common`): error codes, idempotency, the
//! long poll.

mod common;

use catalog_client::{CategoryInput, Client, Error, ItemInput, JobOptions, JobStatus};
use common::Server;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_servers_code() {
    let server = Server::start("errors", &[]);
    let client = server.client();
    client.create_catalog("dup", Some("first")).await.expect("created");
    let error = client.create_catalog("dup", None).await.expect_err("exists");
    assert_eq!(error.code(), Some("catalog_already_exists"));
    assert_eq!(error.status(), Some(409));
    let error = client.get_catalog("missing").await.expect_err("missing");
    assert_eq!(error.code(), Some("catalog_not_found"));
    let error = client.get_job(123_456).await.expect_err("missing");
    assert_eq!(error.code(), Some("job_not_found"));
    let error = client.get_item("dup", "nope").await.expect_err("missing");
    assert_eq!(error.code(), Some("item_not_found"));
    // A bad name never leaves the client.
    assert!(matches!(client.create_catalog("bad name", None).await, Err(Error::InvalidInput(_))));

    let anonymous = Client::builder(&server.url).build().expect("client");
    let error = anonymous.list_catalogs().await.expect_err("no token");
    assert_eq!((error.status(), error.code()), (Some(401), Some("unauthenticated")));

    // A request with no valid id is refused whole.
    let error = client
        .submit_bulk_delete("dup", &["bad id".to_owned()], &JobOptions::default())
        .await
        .expect_err("no valid id");
    assert_eq!(error.code(), Some("no_valid_items"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_the_first_job() {
    let server = Server::start("idempotency", &[]);
    let client = server.client();
    client.create_catalog("c", None).await.expect("catalog");
    let options = JobOptions { idempotency_key: Some(catalog_client::new_idempotency_key()), ..JobOptions::default() };
    let ids = vec!["a".to_owned(), "b".to_owned()];
    let first = client.submit_bulk_delete("c", &ids, &options).await.expect("first");
    assert!(!first.replayed);
    let again = client.submit_bulk_delete("c", &ids, &options).await.expect("replay");
    assert!(again.replayed);
    assert_eq!(first.job.as_ref().map(|j| j.id), again.job.as_ref().map(|j| j.id));
    let other = vec!["c".to_owned()];
    let error = client.submit_bulk_delete("c", &other, &options).await.expect_err("reused");
    assert_eq!(error.code(), Some("idempotency_key_reused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn category_routes_and_catalog_listing() {
    let server = Server::start("categories", &[]);
    let client = server.client();
    for name in ["a", "b", "c"] {
        client.create_catalog(name, None).await.expect("catalog");
    }
    let names: Vec<String> = client.list_catalogs().await.expect("list").into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["a", "b", "c"]);

    let options = JobOptions::default();
    let items = [ItemInput::new("i1", Default::default()), ItemInput::new("i2", Default::default())];
    let job = client.submit_bulk_upsert("a", &items, &options).await.expect("upsert").job.expect("job");
    client.wait(job.id).await.expect("items");
    let boots = CategoryInput {
        id: "boots".into(),
        name: Some("Boots".into()),
        item_ids: Some(vec!["i1".into()]),
        ..Default::default()
    };
    let job = client.submit_category_upsert("a", &[boots], &options).await.expect("upsert").job.expect("job");
    assert_eq!(client.wait(job.id).await.expect("done").status, JobStatus::Completed);
    let more =
        CategoryInput { id: "boots".into(), item_ids: Some(vec!["i1".into(), "i2".into()]), ..Default::default() };
    let job = client.submit_category_update("a", &[more], &options).await.expect("update").job.expect("job");
    client.wait(job.id).await.expect("done");
    let page = client.list_categories("a", None, None).await.expect("categories");
    assert_eq!((page.data[0].name.as_deref(), page.data[0].item_ids.len()), (Some("Boots"), 2));
    let job =
        client.submit_category_delete("a", &["boots".to_owned()], &options).await.expect("delete").job.expect("job");
    client.wait(job.id).await.expect("done");
    assert!(client.list_categories("a", None, None).await.expect("categories").data.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_follows_a_scheduled_job_with_the_long_poll() {
    let server = Server::start("wait", &[]);
    let client = server.client();
    client.create_catalog("c", None).await.expect("catalog");
    // Scheduled three seconds ahead: the wait has to span time without busy polling.
    let start_at = rfc3339_in(Duration::from_secs(3));
    let options = JobOptions { start_at: Some(start_at), ..JobOptions::default() };
    let response = client.submit_bulk_delete("c", &["x".to_owned()], &options).await.expect("scheduled");
    let job = response.job.expect("job");
    assert_eq!(job.status, JobStatus::Scheduled);
    let asked = Instant::now();
    let mut updates = 0;
    let done =
        client.wait_with(job.id, catalog_client::WaitOptions::default(), |_| updates += 1).await.expect("finishes");
    assert_eq!(done.status, JobStatus::Completed);
    assert!(asked.elapsed() >= Duration::from_secs(1));
    assert!(updates <= 5, "the long poll should hold, not spin: {updates} polls");
    let cancelled = client.cancel_job(job.id).await.expect_err("already done");
    assert_eq!(cancelled.code(), Some("job_not_cancellable"));
}

/// An RFC 3339 time `ahead` from now.
fn rfc3339_in(ahead: Duration) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let ms = (now + ahead).as_millis() as i64;
    catalog_domain::time::format_rfc3339(ms)
}
