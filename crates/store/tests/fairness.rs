//! Projects served in turn, on both backends (docs/RULES.md, "Projects served in turn";
//! `catalog_domain::turns`): a project's backlog holds another project's new job for one job, not
//! for the whole backlog; projects take turns, and so do a project's catalogs; the per-project cap
//! keeps a project to its number of running catalogs while another project is served; the turns
//! are the database's, so two runners (two stores on PostgreSQL, as two processes) share them.
//! Claims are driven one by one (`Runner::claim`, `Runner::process_one`), never raced.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use catalog_domain::Dialect;
use catalog_store::{JobId, ProjectId, Runner, RunnerConfig, Store, StoreConfig};
use std::collections::BTreeMap;
use std::time::Duration;

conformance!(
    a_new_project_is_served_after_one_job_of_anothers_backlog,
    projects_take_turns,
    a_projects_catalogs_take_turns,
    the_cap_keeps_a_project_to_its_running_catalogs_while_another_is_served,
    no_cap_lets_a_project_take_every_catalog_it_has,
    two_runners_share_the_turns,
    the_claims_second_try_serves_in_turn_too,
    a_catalog_keeps_its_order_between_turns,
);

/// Which project and catalog each job belongs to, as the test enqueued them.
#[derive(Default)]
struct Jobs(BTreeMap<JobId, (String, String)>);

impl Jobs {
    /// A small delete job in `catalog` of `project` (named `key`), created if need be.
    async fn enqueue(&mut self, store: &Store, project: (ProjectId, &str), catalog: &str) -> JobId {
        let (p, key) = project;
        let _ = store.create_catalog(p, catalog, None).await;
        let job = store.bulk_delete_items(p, catalog, Dialect::Native, ids(0..3), &opts()).await.unwrap();
        let id = job.job.unwrap().id;
        self.0.insert(id, (key.to_owned(), catalog.to_owned()));
        id
    }

    fn project_of(&self, id: JobId) -> &str {
        &self.0[&id].0
    }

    fn catalog_of(&self, id: JobId) -> &str {
        &self.0[&id].1
    }
}

/// A runner with the given cap (0: none) that claims every job on its own: the order of claims is
/// what these tests read (small jobs applied together are `autobatch.rs`'s business).
fn capped(store: &Store, owner: &str, cap: u32) -> Runner {
    Runner::new(
        store.clone(),
        RunnerConfig {
            owner: owner.to_owned(),
            chunk_size: 100,
            poll_interval: Duration::from_millis(50),
            max_running_catalogs_per_project: cap,
            max_batch_jobs: 1,
            ..RunnerConfig::default()
        },
    )
}

/// Processes jobs one at a time until none is due; their ids in the order they were claimed.
async fn serve_all(runner: &Runner) -> Vec<JobId> {
    let mut order = Vec::new();
    while let Some(id) = runner.process_one().await.unwrap() {
        order.push(id);
    }
    order
}

/// How many jobs of `project` run under a live lease.
async fn running_of(db: &TestDb, project: ProjectId) -> i64 {
    db.scalar(&format!(
        "SELECT COUNT(*) FROM jobs WHERE project_id = {} AND status = 'running' AND lease_owner IS NOT NULL",
        project.0
    ))
    .await
}

async fn a_new_project_is_served_after_one_job_of_anothers_backlog(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (project(s, "a").await, project(s, "b").await);
    let mut jobs = Jobs::default();
    // Project a: four jobs in each of three catalogs, all due before project b's one job.
    for _ in 0..4 {
        for catalog in ["a1", "a2", "a3"] {
            jobs.enqueue(s, (a, "a"), catalog).await;
        }
    }
    let small = jobs.enqueue(s, (b, "b"), "b1").await;
    let order = serve_all(&capped(s, "one", 0)).await;
    assert_eq!(order.len(), 13);
    assert_eq!(order.iter().position(|&id| id == small), Some(1), "b waits for one of a's jobs, not 12: {order:?}");
}

async fn projects_take_turns(db: &TestDb) {
    let s = &db.store;
    let mut jobs = Jobs::default();
    // Each project's three jobs are enqueued together, p1's first.
    for key in ["p1", "p2", "p3"] {
        let p = project(s, key).await;
        for _ in 0..3 {
            jobs.enqueue(s, (p, key), "c").await;
        }
    }
    let order = serve_all(&capped(s, "one", 0)).await;
    let projects: Vec<&str> = order.iter().map(|&id| jobs.project_of(id)).collect();
    assert_eq!(projects, ["p1", "p2", "p3", "p1", "p2", "p3", "p1", "p2", "p3"]);
}

async fn a_projects_catalogs_take_turns(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "p").await;
    let mut jobs = Jobs::default();
    for (catalog, n) in [("x", 3), ("y", 2), ("z", 1)] {
        for _ in 0..n {
            jobs.enqueue(s, (p, "p"), catalog).await;
        }
    }
    let order = serve_all(&capped(s, "one", 0)).await;
    let catalogs: Vec<&str> = order.iter().map(|&id| jobs.catalog_of(id)).collect();
    assert_eq!(catalogs, ["x", "y", "z", "x", "y", "x"]);
}

async fn the_cap_keeps_a_project_to_its_running_catalogs_while_another_is_served(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (project(s, "a").await, project(s, "b").await);
    let mut jobs = Jobs::default();
    let a_jobs = [
        jobs.enqueue(s, (a, "a"), "a1").await,
        jobs.enqueue(s, (a, "a"), "a2").await,
        jobs.enqueue(s, (a, "a"), "a3").await,
        jobs.enqueue(s, (a, "a"), "a4").await,
    ];
    let r = capped(s, "one", 2);
    // Held leases: a runs two catalogs, its cap; its two other catalogs wait though they are free.
    let first = r.claim().await.unwrap().unwrap();
    let second = r.claim().await.unwrap().unwrap();
    assert_eq!([first.job_id(), second.job_id()], [a_jobs[0], a_jobs[1]]);
    assert!(r.claim().await.unwrap().is_none(), "a is at its cap");
    assert_eq!(running_of(db, a).await, 2);
    // Project b's job is served meanwhile.
    let small = jobs.enqueue(s, (b, "b"), "b1").await;
    let third = r.claim().await.unwrap().unwrap();
    assert_eq!(third.job_id(), small);
    assert!(r.claim().await.unwrap().is_none());
    // One of a's jobs ends: a may run another catalog.
    let mut first = first;
    while first.step().await.unwrap() == catalog_store::Step::Continue {}
    let fourth = r.claim().await.unwrap().unwrap();
    assert_eq!(fourth.job_id(), a_jobs[2]);
    assert_eq!(running_of(db, a).await, 2);
    assert!(r.claim().await.unwrap().is_none());
    // A released job is not running: it does not count toward the cap, and a's one catalog never
    // served goes next.
    second.release().await.unwrap();
    assert_eq!(running_of(db, a).await, 1);
    let fifth = r.claim().await.unwrap().unwrap();
    assert_eq!(fifth.job_id(), a_jobs[3]);
    assert!(r.claim().await.unwrap().is_none(), "a is at its cap again");
    for lease in [third, fourth, fifth] {
        lease.release().await.unwrap();
    }
}

async fn no_cap_lets_a_project_take_every_catalog_it_has(db: &TestDb) {
    let s = &db.store;
    let a = project(s, "a").await;
    let mut jobs = Jobs::default();
    for catalog in ["a1", "a2", "a3", "a4", "a5", "a6"] {
        jobs.enqueue(s, (a, "a"), catalog).await;
    }
    let r = capped(s, "one", 0);
    let mut held = Vec::new();
    while let Some(lease) = r.claim().await.unwrap() {
        held.push(lease);
    }
    assert_eq!((held.len(), running_of(db, a).await), (6, 6));
    for lease in held {
        lease.release().await.unwrap();
    }
}

async fn two_runners_share_the_turns(db: &TestDb) {
    // On PostgreSQL the second runner has a store of its own, as a second process would; one
    // process owns an SQLite file, so there the two runners share the store.
    let second_store = if db.is_pg() {
        let config = StoreConfig { max_connections: 4, ..StoreConfig::default() };
        Some(Store::connect(&db.url, config).await.unwrap())
    } else {
        None
    };
    let s = &db.store;
    let (a, b, c) = (project(s, "a").await, project(s, "b").await, project(s, "c").await);
    let mut jobs = Jobs::default();
    for _ in 0..2 {
        for catalog in ["a1", "a2"] {
            jobs.enqueue(s, (a, "a"), catalog).await;
        }
    }
    for _ in 0..2 {
        jobs.enqueue(s, (b, "b"), "b1").await;
    }
    jobs.enqueue(s, (c, "c"), "c1").await;
    let one = capped(s, "one", 1);
    let two = capped(second_store.as_ref().unwrap_or(s), "two", 1);
    // Held leases, alternately by each runner: each claim sees the turns the other recorded,
    // and the cap counts the other's running catalogs.
    let mut held = Vec::new();
    for runner in [&one, &two, &one] {
        held.push(runner.claim().await.unwrap().unwrap());
    }
    let projects: Vec<&str> = held.iter().map(|l| jobs.project_of(l.job_id())).collect();
    assert_eq!(projects, ["a", "b", "c"]);
    assert!(two.claim().await.unwrap().is_none(), "every project is at its cap of one");
    assert!(one.claim().await.unwrap().is_none());
    // Their jobs end; the rest is served in turn by both runners: a, b, a, a.
    for mut lease in held {
        while lease.step().await.unwrap() == catalog_store::Step::Continue {}
    }
    let mut rest = Vec::new();
    for runner in [&two, &one, &two, &one] {
        rest.push(runner.process_one().await.unwrap().unwrap());
    }
    assert!(one.process_one().await.unwrap().is_none());
    let projects: Vec<&str> = rest.iter().map(|&id| jobs.project_of(id)).collect();
    let catalogs: Vec<&str> = rest.iter().map(|&id| jobs.catalog_of(id)).collect();
    assert_eq!(projects, ["a", "b", "a", "a"]);
    assert_eq!(catalogs, ["a2", "b1", "a1", "a2"], "a served a1 first, so a2 is next in its turn");
    if let Some(store) = second_store {
        store.close().await;
    }
}

async fn the_claims_second_try_serves_in_turn_too(db: &TestDb) {
    // The first try enumerates the catalogs with work from queue_inputs; with its rows gone it
    // finds nothing, and the second try walks the jobs themselves, in the same turn order.
    let s = &db.store;
    let mut jobs = Jobs::default();
    for key in ["p1", "p2"] {
        let p = project(s, key).await;
        for catalog in ["x", "y"] {
            jobs.enqueue(s, (p, key), catalog).await;
            jobs.enqueue(s, (p, key), catalog).await;
        }
    }
    db.exec("DELETE FROM queue_inputs").await;
    let r = capped(s, "one", 0);
    let mut order = Vec::new();
    while let Some(id) = r.process_one().await.unwrap() {
        order.push(id);
        db.exec("DELETE FROM queue_inputs").await;
    }
    let served: Vec<String> =
        order.iter().map(|&id| format!("{}{}", jobs.project_of(id), jobs.catalog_of(id))).collect();
    assert_eq!(served, ["p1x", "p2x", "p1y", "p2y", "p1x", "p2x", "p1y", "p2y"]);
}

async fn a_catalog_keeps_its_order_between_turns(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (project(s, "a").await, project(s, "b").await);
    let mut jobs = Jobs::default();
    let mut a_jobs = Vec::new();
    for _ in 0..4 {
        a_jobs.push(jobs.enqueue(s, (a, "a"), "shared-name").await);
        jobs.enqueue(s, (b, "b"), "shared-name").await;
    }
    let order = serve_all(&capped(s, "one", 0)).await;
    let a_order: Vec<JobId> = order.iter().copied().filter(|id| jobs.project_of(*id) == "a").collect();
    assert_eq!(a_order, a_jobs, "a catalog's jobs in the order they became due");
    let projects: Vec<&str> = order.iter().map(|&id| jobs.project_of(id)).collect();
    assert_eq!(projects, ["a", "b", "a", "b", "a", "b", "a", "b"]);
}
