//! The `bulk-delete` example (examples/bulk-delete.rs) against a real catalogd (see `common`), on
//! SQLite and on PostgreSQL: everything but its `main`, with its output and exit status.

#[allow(dead_code)]
#[path = "../examples/bulk-delete.rs"]
mod bulk_delete;
mod common;

use bulk_delete::{program, FAILED, SUCCEEDED, USAGE_ERROR};
use catalog_client::{BulkOptions, ItemInput};
use common::{Backend, Server};

/// Runs the example with `args` (the server's URL and token come from the environment it is
/// given): (exit status, standard output, standard error).
async fn bulk_delete(server: &Server, args: &[&str]) -> (u8, String, String) {
    let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
    let env = |name: &str| match name {
        "CATALOGD_URL" => Some(server.url.clone()),
        "CATALOGD_TOKEN" => Some(server.token.clone()),
        _ => None,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = program(&args, &env, &mut out, &mut err).await;
    (status, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

/// A catalog `shoes` of items `sku-0` .. `sku-{n-1}`.
async fn seed(server: &Server, n: usize) {
    let client = server.client();
    client.create_catalog("shoes", None).await.expect("catalog");
    let items = (0..n).map(|i| ItemInput::new(format!("sku-{i}"), serde_json::Map::new()));
    let report = client.bulk_upsert("shoes", items, &BulkOptions::default()).await.expect("seeding runs");
    for job in report.jobs() {
        assert!(client.wait(job.id).await.expect("wait").succeeded(), "seeding failed");
    }
}

fn ids_file(server: &Server, lines: &[String]) -> String {
    let path = server.dir.0.join("ids.txt");
    std::fs::write(&path, lines.join("\n")).expect("ids file");
    path.display().to_string()
}

/// 100 ids in three jobs of at most 40: every job's outcome is printed, the items are gone, and
/// the exit status is 0.
async fn deletes_every_id_and_prints_each_jobs_outcome(backend: Backend) {
    let Some(server) = Server::start_on(backend, "example-delete", &[]) else { return };
    seed(&server, 120).await;
    let lines: Vec<String> = (0..100).map(|i| format!("sku-{i}")).collect();
    let file = ids_file(&server, &lines);
    let (status, out, err) = bulk_delete(&server, &["--catalog", "shoes", "--chunk-size", "40", &file]).await;
    assert_eq!(status, SUCCEEDED, "stdout: {out}\nstderr: {err}\nserver: {}", server.log());
    let outcomes: Vec<&str> = out.lines().filter(|line| line.starts_with("job ")).collect();
    assert_eq!(outcomes.len(), 3, "{out}");
    for (outcome, total) in outcomes.iter().zip([40, 40, 20]) {
        assert!(outcome.ends_with(&format!(": completed, {total} of {total} deleted, 0 failed")), "{outcome}");
    }
    assert!(out.ends_with("100 of 100 ids sent in 3 jobs; 0 rejected, 0 in requests that failed\n"), "{out}");
    let catalog = server.client().get_catalog("shoes").await.expect("catalog");
    assert_eq!(catalog.item_count, Some(20));
}

/// A bad id and a repeat are listed by line and not sent; the rest is deleted; the exit status
/// is 1.
async fn lists_refused_lines_and_exits_1(backend: Backend) {
    let Some(server) = Server::start_on(backend, "example-refused", &[]) else { return };
    seed(&server, 3).await;
    let lines = ["sku-0", "sku 1", "sku-2", "sku-0"].map(str::to_owned);
    let file = ids_file(&server, &lines);
    let (status, out, err) = bulk_delete(&server, &["--catalog", "shoes", &file]).await;
    assert_eq!(status, FAILED, "stdout: {out}\nstderr: {err}");
    let listed: Vec<&str> = out.lines().filter(|line| line.starts_with("line ")).collect();
    assert_eq!(
        listed,
        [
            "line 2: \"sku 1\": not sent: the item id contains ' '; only letters, digits, `-` and `_` are allowed (invalid_character)",
            "line 4: \"sku-0\": not sent: the id appears earlier in the input, at index 0 (duplicate_id)",
        ]
    );
    assert!(out.lines().any(|line| line.ends_with(": completed, 2 of 2 deleted, 0 failed")), "{out}");
    let client = server.client();
    assert!(client.get_item("shoes", "sku-0").await.is_err(), "sku-0 is deleted");
    assert!(client.get_item("shoes", "sku-1").await.is_ok(), "sku-1 was never named validly");
}

/// A catalog that does not exist: the server's refusal is printed, nothing is deleted, exit 1.
async fn reports_the_servers_refusal(backend: Backend) {
    let Some(server) = Server::start_on(backend, "example-missing", &[]) else { return };
    let file = ids_file(&server, &["sku-0".to_owned()]);
    let (status, out, err) = bulk_delete(&server, &["--catalog", "nowhere", &file]).await;
    assert_eq!(status, FAILED, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("lines 1-1: request failed") && out.contains("catalog_not_found"), "{out}");
    assert!(out.ends_with("0 of 1 ids sent in 0 jobs; 0 rejected, 1 in requests that failed\n"), "{out}");
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_backends!(
    deletes_every_id_and_prints_each_jobs_outcome,
    lists_refused_lines_and_exits_1,
    reports_the_servers_refusal
);

#[tokio::test]
async fn usage_errors_exit_2_before_any_request() {
    let env = |name: &str| (name == "CATALOGD_TOKEN").then(|| "cat_unused".to_owned());
    let cases: [&[&str]; 4] = [
        &[],
        &["--catalog", "shoes"],
        &["--catalog", "shoes", "--chunk-size", "many", "ids.txt"],
        &["--catalog", "shoes", "a", "b"],
    ];
    for args in cases {
        let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(program(&args, &env, &mut out, &mut err).await, USAGE_ERROR, "{args:?}");
        assert!(String::from_utf8_lossy(&err).contains("usage: bulk-delete"), "{args:?}");
    }
    let args = ["--catalog", "shoes", "/nonexistent/ids.txt"].map(str::to_owned);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(program(&args, &env, &mut out, &mut err).await, USAGE_ERROR);
    assert!(String::from_utf8_lossy(&err).contains("cannot read /nonexistent/ids.txt"));
}
