//! The scheduler's suite, on both backends: jobs of a catalog take effect one at a time and in the
//! order they became due (on four workers, and on two runners sharing one database); leases
//! outlive slow chunks, are fenced when lost, and are taken back after a crash; a refused input
//! fails alone, a transient failure is retried, and a job out of attempts ends with its counts
//! adding up; background tasks that panic are restarted. Races and crashes are made deterministic
//! with the store's test hooks (`catalog_store::hooks`) and backdated leases, never by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use catalog_domain::{Dialect, ErrorCode, IdProblem, JobStatus, RawId};
use catalog_store::hooks::{Breakpoint, HookFuture, Hooks, Injected};
use catalog_store::{
    CategoryInput, ItemInput, JobId, JobOptions, ProjectId, Runner, RunnerConfig, Step, Store, StoreConfig,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

conformance!(
    a_replayed_sequence_ends_as_the_requests_said_on_four_workers,
    a_replayed_sequence_ends_as_the_requests_said_on_two_runners,
    a_job_never_starts_behind_an_unfinished_earlier_one,
    a_scheduled_job_takes_its_place_at_its_start_time,
    every_catalog_with_work_is_found_across_projects,
    a_heartbeat_keeps_a_slow_chunk_from_being_taken_over,
    a_held_heartbeat_lets_another_runner_take_over_and_fences_the_first,
    a_graceful_release_gives_its_attempt_back_and_a_lost_lease_does_not,
    a_restarted_process_takes_back_its_predecessors_leases_on_sqlite_only,
    a_catalog_delete_runs_in_chunks_with_a_cursor,
    a_refused_input_fails_alone_and_the_rest_is_applied,
    a_transient_failure_is_retried_after_a_backoff_and_applied_once,
    a_job_out_of_attempts_fails_with_its_counts_adding_up,
    a_job_whose_catalog_is_deleted_mid_run_counts_the_rest_as_failed,
    a_panicking_worker_lets_its_job_go_and_goes_on,
    a_panicking_purge_is_restarted,
    a_panicking_job_writer_is_restarted,
    the_purge_deletes_in_bounded_batches,
);

// ---------------------------------------------------------------------------------------------
// Test hooks
// ---------------------------------------------------------------------------------------------

/// Which breakpoints a rule applies to.
type Matcher = Box<dyn Fn(&Breakpoint) -> bool + Send + Sync>;

/// What a matching breakpoint does.
enum Behaviour {
    /// Answer this, this many more times.
    Inject(Injected, usize),
    /// Wait for the test to open the gate.
    Gate(Arc<Gate>),
}

/// A gate a breakpoint waits at until the test lets it through (with an outcome).
#[derive(Default)]
struct Gate {
    passes: Mutex<Vec<Injected>>,
    opened: Notify,
}

impl Gate {
    fn open(&self, outcome: Injected) {
        self.passes.lock().unwrap().push(outcome);
        self.opened.notify_waiters();
    }

    async fn pass(&self) -> Injected {
        loop {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if let Some(outcome) = self.passes.lock().unwrap().pop() {
                return outcome;
            }
            opened.await;
        }
    }
}

#[derive(Default)]
struct HookState {
    rules: Mutex<Vec<(Matcher, Behaviour)>>,
    /// Every breakpoint reached, in order.
    seen: BreakpointLog,
}

/// The tests' breakpoint handler: rules say which breakpoints fail, panic or wait; every
/// breakpoint reached is recorded. A heartbeat no rule matches never beats (tests that care open
/// a gate for it); any other breakpoint goes on.
#[derive(Clone)]
struct TestHooks(Arc<HookState>);

impl std::fmt::Debug for TestHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestHooks")
    }
}

impl TestHooks {
    fn new() -> TestHooks {
        TestHooks(Arc::new(HookState::default()))
    }

    fn inject(&self, matcher: impl Fn(&Breakpoint) -> bool + Send + Sync + 'static, outcome: Injected, times: usize) {
        self.0.rules.lock().unwrap().push((Box::new(matcher), Behaviour::Inject(outcome, times)));
    }

    fn gate(&self, matcher: impl Fn(&Breakpoint) -> bool + Send + Sync + 'static) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        self.0.rules.lock().unwrap().push((Box::new(matcher), Behaviour::Gate(gate.clone())));
        gate
    }

    /// Waits until `n` breakpoints matching `matcher` have been reached.
    async fn reached(&self, n: usize, matcher: impl Fn(&Breakpoint) -> bool) {
        self.0.seen.reached(n, matcher).await;
    }

    fn count(&self, matcher: impl Fn(&Breakpoint) -> bool) -> usize {
        self.0.seen.count(matcher)
    }
}

impl Hooks for TestHooks {
    fn reached(&self, point: Breakpoint) -> HookFuture {
        let state = self.0.clone();
        Box::pin(async move {
            let behaviour = {
                let mut rules = state.rules.lock().unwrap();
                let mut found = None;
                for (matcher, behaviour) in rules.iter_mut() {
                    if !matcher(&point) {
                        continue;
                    }
                    match behaviour {
                        Behaviour::Inject(_, 0) => continue,
                        Behaviour::Inject(outcome, times) => {
                            *times -= 1;
                            found = Some(Err(outcome.clone()));
                        }
                        Behaviour::Gate(gate) => found = Some(Ok(gate.clone())),
                    }
                    break;
                }
                found
            };
            state.seen.record(point);
            match behaviour {
                Some(Err(outcome)) => outcome,
                Some(Ok(gate)) => gate.pass().await,
                None if matches!(point, Breakpoint::Heartbeat { .. }) => std::future::pending().await,
                None => Injected::Continue,
            }
        })
    }
}

fn is_chunk_start(p: &Breakpoint) -> bool {
    matches!(p, Breakpoint::ChunkStarting { .. })
}

fn is_heartbeat(p: &Breakpoint) -> bool {
    matches!(p, Breakpoint::Heartbeat { .. })
}

/// A second store on `db`'s database with `hooks` installed.
async fn hooked_store(db: &TestDb, hooks: &TestHooks) -> Store {
    let config =
        StoreConfig { max_connections: 4, wait_poll_interval: Duration::from_millis(20), ..StoreConfig::default() };
    Store::connect_with_hooks(&db.url, config, Arc::new(hooks.clone())).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn item(id: &str, fields: Value) -> ItemInput {
    ItemInput { id: RawId::String(id.to_owned()), fields: common::fields(fields) }
}

fn name(i: usize) -> String {
    format!("item-{i:05}")
}

fn config(owner: &str, chunk_size: usize, workers: usize) -> RunnerConfig {
    RunnerConfig {
        owner: owner.to_owned(),
        chunk_size,
        batch_inputs: chunk_size,
        workers,
        poll_interval: Duration::from_millis(20),
        retry_backoff: Duration::ZERO,
        ..RunnerConfig::default()
    }
}

async fn job_row(db: &TestDb, id: JobId, column: &str) -> i64 {
    db.scalar(&format!("SELECT {column} FROM jobs WHERE id = {}", id.0)).await
}

async fn text_of(db: &TestDb, sql: &str) -> Option<String> {
    use sqlx::Row;
    match &db.raw {
        Raw::Sqlite(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().get::<Option<String>, _>(0),
        Raw::Pg(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().get::<Option<String>, _>(0),
    }
}

/// Every category of `catalog`, id → (external id, name, items).
async fn categories_of(store: &Store, p: ProjectId, catalog: &str) -> BTreeMap<String, ModelCategory> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store.list_categories(p, catalog, cursor.as_deref(), 1000).await.unwrap();
        for c in page.rows {
            out.insert(c.id, (c.external_id, c.name, c.item_ids.into_iter().collect()));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Order: a replayed sequence against a model
// ---------------------------------------------------------------------------------------------

type ModelCategory = (Option<String>, Option<String>, BTreeSet<String>);

/// What a catalog should hold: the requests applied one after another.
#[derive(Default, Debug, PartialEq)]
struct Model {
    items: BTreeMap<String, Value>,
    categories: BTreeMap<String, ModelCategory>,
}

/// One request of a replayed sequence.
#[derive(Clone, Debug)]
enum Request {
    Upsert(Vec<(String, Value)>),
    Delete(Vec<String>),
    Patch(Vec<(String, Value)>),
    UpsertCategories(Vec<(String, String, Vec<String>)>),
    RenameCategories(Vec<(String, String)>),
    DeleteCatalog,
}

impl Model {
    fn apply(&mut self, request: &Request) {
        match request {
            Request::Upsert(items) => {
                for (id, fields) in items {
                    self.items.insert(id.clone(), fields.clone());
                }
            }
            Request::Delete(ids) => {
                for id in ids {
                    self.items.remove(id);
                    for (_, _, members) in self.categories.values_mut() {
                        members.remove(id);
                    }
                }
            }
            Request::Patch(items) => {
                for (id, patch) in items {
                    if let (Some(Value::Object(current)), Value::Object(patch)) = (self.items.get_mut(id), patch) {
                        for (k, v) in patch {
                            current.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            Request::UpsertCategories(categories) => {
                for (id, name, members) in categories {
                    self.categories.insert(id.clone(), (None, Some(name.clone()), members.iter().cloned().collect()));
                }
            }
            Request::RenameCategories(renames) => {
                for (id, name) in renames {
                    if let Some(category) = self.categories.get_mut(id) {
                        category.1 = Some(name.clone());
                    }
                }
            }
            Request::DeleteCatalog => *self = Model::default(),
        }
    }
}

/// The issue's sequence and more, for round `round` of a catalog of `n` items: upsert all, delete
/// all, upsert half, delete a quarter, patch another quarter, categories, deletes that touch
/// their members, renames (one of a missing category); with a catalog delete in the middle when
/// `delete_catalog`.
fn sequence(round: usize, n: usize, delete_catalog: bool) -> Vec<Request> {
    let ids = |range: std::ops::Range<usize>| range.map(name).collect::<Vec<_>>();
    let with = |range: std::ops::Range<usize>, v: Value| range.map(|i| (name(i), json!({ "v": v, "i": i }))).collect();
    let mut requests = vec![
        Request::Upsert(with(0..n, json!(format!("first-{round}")))),
        Request::Delete(ids(0..n)),
        Request::Upsert(with(0..n / 2, json!(format!("second-{round}")))),
        Request::Delete(ids(0..n / 4)),
        Request::Patch(ids(n / 4..n / 2).into_iter().map(|id| (id, json!({ "patched": round }))).collect()),
    ];
    if delete_catalog {
        requests.push(Request::DeleteCatalog);
        requests.push(Request::Upsert(with(n / 8..n / 3, json!("after the catalog delete"))));
    }
    requests.extend([
        Request::UpsertCategories(vec![
            ("k1".into(), "one".into(), ids(n / 4..n / 4 + 10)),
            ("k2".into(), "two".into(), ids(n / 3..n / 3 + 5)),
        ]),
        Request::Delete(ids(n / 4..n / 4 + 5)),
        Request::RenameCategories(vec![("k1".into(), format!("renamed-{round}")), ("missing".into(), "x".into())]),
        Request::Upsert(with(n / 4..n / 4 + 3, json!("last"))),
        Request::Patch(ids(n / 3..n / 3 + 2).into_iter().map(|id| (id, json!({ "v": "patched last" }))).collect()),
    ]);
    requests
}

/// Sends `request` for `catalog` as soon as called (the previous one was accepted); returns its
/// job.
async fn send(store: &Store, p: ProjectId, catalog: &str, request: &Request) -> JobId {
    let o = JobOptions::default();
    let item_inputs =
        |items: &Vec<(String, Value)>| items.iter().map(|(id, fields)| item(id, fields.clone())).collect::<Vec<_>>();
    let outcome = match request {
        Request::Upsert(items) => store.bulk_upsert_items(p, catalog, Dialect::Native, item_inputs(items), &o).await,
        Request::Patch(items) => {
            store.bulk_patch_items(p, catalog, Dialect::Native, item_inputs(items), false, &o).await
        }
        Request::Delete(ids) => {
            let raw = ids.iter().map(|id| RawId::String(id.clone())).collect();
            store.bulk_delete_items(p, catalog, Dialect::Native, raw, &o).await
        }
        Request::UpsertCategories(categories) => {
            let inputs = categories
                .iter()
                .map(|(id, name, members)| CategoryInput {
                    id: RawId::String(id.clone()),
                    external_id: None,
                    name: Some(name.clone()),
                    item_ids: Some(members.clone()),
                })
                .collect();
            store.bulk_upsert_categories(p, catalog, Dialect::Native, inputs, &o).await
        }
        Request::RenameCategories(renames) => {
            let inputs = renames
                .iter()
                .map(|(id, name)| CategoryInput {
                    id: RawId::String(id.clone()),
                    external_id: None,
                    name: Some(name.clone()),
                    item_ids: None,
                })
                .collect();
            store.bulk_update_categories(p, catalog, Dialect::Native, inputs, &o).await
        }
        Request::DeleteCatalog => {
            let job = store.delete_catalog(p, catalog).await.unwrap();
            store.create_catalog(p, catalog, None).await.unwrap();
            return job.id;
        }
    };
    outcome.unwrap().job.unwrap().id
}

/// Replays `rounds` rounds of two catalogs' sequences (one with a catalog delete) through
/// `store`, each request sent as soon as the previous was accepted, while runners with `hooks`
/// apply them; then checks every item and category against the model, and, from the chunks the
/// runners started (`hooks`), that a catalog's jobs ran one at a time in the order they were
/// accepted. Returns the wrong ids per round (asserted to be none).
async fn replay(store: &Store, hooks: &TestHooks, p: ProjectId, rounds: usize, n: usize) -> Vec<usize> {
    let mut wrong_per_round = Vec::new();
    for round in 0..rounds {
        let catalogs = [format!("a{round}"), format!("b{round}")];
        for catalog in &catalogs {
            store.create_catalog(p, catalog, None).await.unwrap();
        }
        let sequences = [sequence(round, n, false), sequence(round, n, true)];
        let mut models = [Model::default(), Model::default()];
        let mut jobs = Vec::new();
        for step in 0..sequences[1].len() {
            for (c, catalog) in catalogs.iter().enumerate() {
                if let Some(request) = sequences[c].get(step) {
                    models[c].apply(request);
                    jobs.push(send(store, p, catalog, request).await);
                }
            }
        }
        for id in &jobs {
            finished(store, p, *id).await;
        }
        let mut wrong = 0;
        for (c, catalog) in catalogs.iter().enumerate() {
            let items = items_of(store, p, catalog).await;
            let ids: BTreeSet<&String> = items.keys().chain(models[c].items.keys()).collect();
            wrong += ids.into_iter().filter(|id| items.get(*id) != models[c].items.get(*id)).count();
            assert_eq!(categories_of(store, p, catalog).await, models[c].categories, "categories of {catalog}");
        }
        wrong_per_round.push(wrong);
    }
    eprintln!("wrong ids per round: {wrong_per_round:?}");
    assert!(wrong_per_round.iter().all(|&w| w == 0), "wrong ids per round: {wrong_per_round:?}");
    assert_one_at_a_time(store, hooks, p).await;
    wrong_per_round
}

/// One at a time, in order: in the order the runners started chunks, the jobs of each catalog
/// come in runs — all the chunks of one job, then all of the next — by increasing id (here, the
/// order they were accepted in). Two jobs of a catalog running at once would interleave their
/// chunks; a job started out of order would come after a later one.
async fn assert_one_at_a_time(store: &Store, hooks: &TestHooks, p: ProjectId) {
    let started: Vec<JobId> = hooks
        .0
        .seen
        .seen()
        .iter()
        .filter_map(|point| match point {
            Breakpoint::ChunkStarting { job, .. } => Some(*job),
            _ => None,
        })
        .collect();
    let mut catalog_of: BTreeMap<JobId, i64> = BTreeMap::new();
    let mut runs: BTreeMap<i64, Vec<JobId>> = BTreeMap::new();
    for job in started {
        let catalog = match catalog_of.get(&job) {
            Some(catalog) => *catalog,
            None => {
                let catalog = store.get_job(p, job).await.unwrap().catalog_id.map_or(0, |c| c.0);
                catalog_of.insert(job, catalog);
                catalog
            }
        };
        let run = runs.entry(catalog).or_default();
        if run.last() != Some(&job) {
            run.push(job);
        }
    }
    assert!(!runs.is_empty());
    for (catalog, run) in runs {
        assert!(
            run.windows(2).all(|w| w[0].0 < w[1].0),
            "catalog {catalog}'s jobs interleaved or ran out of order: {run:?}"
        );
    }
}

/// Rounds of the replayed sequence: `CATALOGD_ORDER_ROUNDS`, default 3.
fn rounds() -> usize {
    std::env::var("CATALOGD_ORDER_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3)
}

async fn a_replayed_sequence_ends_as_the_requests_said_on_four_workers(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "order4").await;
    let hooks = TestHooks::new();
    let hs = hooked_store(db, &hooks).await;
    let running = start(Runner::new(hs.clone(), config("four", 50, 4)));
    replay(&hs, &hooks, p, rounds(), 2_000).await;
    stop(running).await;
    hs.close().await;
}

async fn a_replayed_sequence_ends_as_the_requests_said_on_two_runners(db: &TestDb) {
    let p = project(&db.store, "order2").await;
    let hooks = TestHooks::new();
    let first = hooked_store(db, &hooks).await;
    // On PostgreSQL the second runner has a store of its own, as a second process would. One
    // process owns an SQLite file: there the two runners share the store, and an owner (a runner
    // starting takes back the leases of other owners).
    let (second, owners) =
        if db.is_pg() { (hooked_store(db, &hooks).await, ["one", "two"]) } else { (first.clone(), ["pair", "pair"]) };
    let first_runner = start(Runner::new(first.clone(), config(owners[0], 50, 2)));
    let second_runner = start(Runner::new(second.clone(), config(owners[1], 50, 2)));
    replay(&first, &hooks, p, rounds(), 2_000).await;
    stop(first_runner).await;
    stop(second_runner).await;
    first.close().await;
    if db.is_pg() {
        second.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Order: claims, one by one
// ---------------------------------------------------------------------------------------------

async fn a_job_never_starts_behind_an_unfinished_earlier_one(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "claims").await;
    for c in ["a", "b"] {
        s.create_catalog(p, c, None).await.unwrap();
        seed(s, p, c, 10).await;
    }
    let o = opts();
    let j1 = s.bulk_delete_items(p, "a", Dialect::Native, ids(0..6), &o).await.unwrap().job.unwrap().id;
    let j2 = s
        .bulk_upsert_items(p, "a", Dialect::Native, vec![item("item-00000", json!({"back": true}))], &o)
        .await
        .unwrap()
        .job
        .unwrap()
        .id;
    let j3 = s.bulk_delete_items(p, "b", Dialect::Native, ids(0..5), &o).await.unwrap().job.unwrap().id;
    // One job per claim: on PostgreSQL a job's last chunk of deletes would otherwise be followed by
    // the next due delete, applied meanwhile (runner/trailing.rs).
    let r = unbatched_runner(s, "r", 2);
    let mut l1 = r.claim().await.unwrap().unwrap();
    assert_eq!(l1.job_id(), j1);
    let l3 = r.claim().await.unwrap().unwrap();
    assert_eq!(l3.job_id(), j3, "catalog a is busy: b's job goes next");
    assert!(r.claim().await.unwrap().is_none(), "both catalogs busy");
    // j1's runner dies after a chunk: j1 is resumed first, never overtaken by j2.
    assert_eq!(l1.step().await.unwrap(), Step::Continue);
    drop(l1);
    assert!(r.claim().await.unwrap().is_none(), "a live lease holds its catalog");
    db.exec(&format!("UPDATE jobs SET lease_expires_at = 0 WHERE id = {}", j1.0)).await;
    let l1 = r.claim().await.unwrap().unwrap();
    assert_eq!((l1.job_id(), l1.attempt()), (j1, 2));
    // Released at shutdown, it is still resumed before j2.
    l1.release().await.unwrap();
    assert_eq!(job(s, p, j1).await.status, JobStatus::Queued);
    let mut l1 = r.claim().await.unwrap().unwrap();
    assert_eq!(l1.job_id(), j1);
    // A job committed late with an earlier due time waits for the job holding its catalog.
    let j4 = s.bulk_delete_items(p, "a", Dialect::Native, ids(9..10), &o).await.unwrap().job.unwrap().id;
    db.exec(&format!("UPDATE jobs SET created_at = 1 WHERE id = {}", j4.0)).await;
    assert!(r.claim().await.unwrap().is_none());
    while l1.step().await.unwrap() == Step::Continue {}
    // Then the earliest due job of a goes: j4, due "at 1", before j2.
    let mut l4 = r.claim().await.unwrap().unwrap();
    assert_eq!(l4.job_id(), j4);
    while l4.step().await.unwrap() == Step::Continue {}
    let mut l2 = r.claim().await.unwrap().unwrap();
    assert_eq!(l2.job_id(), j2);
    while l2.step().await.unwrap() == Step::Continue {}
    // j2 re-added item 0 after j1 deleted it: the final state follows the order of the requests.
    assert_eq!(s.get_item(p, "a", "item-00000").await.unwrap().fields, common::fields(json!({"back": true})));
    assert_eq!(s.get_item(p, "a", "item-00001").await.unwrap_err().code(), ErrorCode::ItemNotFound);
    drop(l3);
}

async fn a_scheduled_job_takes_its_place_at_its_start_time(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "sched-order").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 10).await;
    let later = JobOptions { start_at: Some(catalog_store::now_ms() + 3_600_000), ..opts() };
    let scheduled = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..5), &later).await.unwrap().job.unwrap().id;
    let queued = s
        .bulk_upsert_items(p, "c", Dialect::Native, vec![item("item-00001", json!({"v": "upserted"}))], &opts())
        .await
        .unwrap()
        .job
        .unwrap()
        .id;
    let r = runner(s, "r", 100);
    // A scheduled job whose time has not come holds nothing back.
    let mut lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.job_id(), queued);
    while lease.step().await.unwrap() == Step::Continue {}
    assert!(r.claim().await.unwrap().is_none());
    // Two more: a queued upsert, and the scheduled delete's start moved to just before it was
    // accepted: the delete became due first, so it goes first and the upsert's item survives.
    let queued = s
        .bulk_upsert_items(p, "c", Dialect::Native, vec![item("item-00002", json!({"v": "after"}))], &opts())
        .await
        .unwrap()
        .job
        .unwrap()
        .id;
    let accepted = job_row(db, queued, "created_at").await;
    db.exec(&format!("UPDATE jobs SET start_at = {} WHERE id = {}", accepted - 1, scheduled.0)).await;
    let mut first = r.claim().await.unwrap().unwrap();
    assert_eq!(first.job_id(), scheduled);
    while first.step().await.unwrap() == Step::Continue {}
    let mut second = r.claim().await.unwrap().unwrap();
    assert_eq!(second.job_id(), queued);
    while second.step().await.unwrap() == Step::Continue {}
    assert_eq!(s.get_item(p, "c", "item-00002").await.unwrap().fields, common::fields(json!({"v": "after"})));
    assert_eq!(s.get_item(p, "c", "item-00001").await.unwrap_err().code(), ErrorCode::ItemNotFound);
}

async fn every_catalog_with_work_is_found_across_projects(db: &TestDb) {
    let s = &db.store;
    // Three projects of two catalogs of three jobs each.
    let mut firsts = BTreeSet::new();
    for key in ["p1", "p2", "p3"] {
        let p = project(s, key).await;
        for catalog in ["one", "two"] {
            s.create_catalog(p, catalog, None).await.unwrap();
            for n in 0..3 {
                let job =
                    s.bulk_delete_items(p, catalog, Dialect::Native, ids(0..5), &opts()).await.unwrap().job.unwrap();
                if n == 0 {
                    firsts.insert(job.id);
                }
            }
        }
    }
    // Held leases keep their catalogs busy: each claim finds the first job of another catalog,
    // whichever project it is in, until none is left.
    let r = runner(s, "r", 100);
    let mut held = Vec::new();
    while let Some(lease) = r.claim().await.unwrap() {
        held.push(lease);
    }
    let claimed: BTreeSet<JobId> = held.iter().map(|lease| lease.job_id()).collect();
    assert_eq!((held.len(), claimed), (6, firsts));
}

// ---------------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------------

async fn a_heartbeat_keeps_a_slow_chunk_from_being_taken_over(db: &TestDb) {
    let hooks = TestHooks::new();
    let chunks = hooks.gate(is_chunk_start);
    let beats = hooks.gate(is_heartbeat);
    let hs = hooked_store(db, &hooks).await;
    let p = project(&db.store, "beat").await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    seed(&db.store, p, "c", 30).await;
    let id = hs.bulk_delete_items(p, "c", Dialect::Native, ids(0..30), &opts()).await.unwrap().job.unwrap().id;
    let running = start(Runner::new(hs.clone(), config("slow", 10, 1)));
    // The worker is in its first chunk, and stays there; its heartbeat waits for its period.
    hooks.reached(1, is_chunk_start).await;
    hooks.reached(1, is_heartbeat).await;
    // The chunk has outlasted the lease...
    db.exec(&format!("UPDATE jobs SET lease_expires_at = 0 WHERE id = {}", id.0)).await;
    // ...but a third of the lease on, the heartbeat renews it (the next beat's wait means it did).
    beats.open(Injected::Continue);
    hooks.reached(2, is_heartbeat).await;
    assert!(job_row(db, id, "lease_expires_at").await > catalog_store::now_ms());
    assert!(runner(&db.store, "other", 10).claim().await.unwrap().is_none(), "a renewed lease is not taken over");
    for _ in 0..3 {
        chunks.open(Injected::Continue);
    }
    let j = finished(&hs, p, id).await;
    assert_eq!((j.status, j.completed_count, j.attempt), (JobStatus::Completed, 30, 1));
    stop(running).await;
    hs.close().await;
}

async fn a_held_heartbeat_lets_another_runner_take_over_and_fences_the_first(db: &TestDb) {
    let hooks = TestHooks::new();
    let chunks = hooks.gate(is_chunk_start);
    let _held = hooks.gate(is_heartbeat);
    let hs = hooked_store(db, &hooks).await;
    let p = project(&db.store, "held").await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    seed(&db.store, p, "c", 30).await;
    let id = hs.bulk_delete_items(p, "c", Dialect::Native, ids(0..30), &opts()).await.unwrap().job.unwrap().id;
    let running = start(Runner::new(hs.clone(), config("stalled", 10, 1)));
    hooks.reached(1, is_chunk_start).await;
    // The first runner's node stalls: no beat, and its lease runs out.
    db.exec(&format!("UPDATE jobs SET lease_expires_at = 0 WHERE id = {}", id.0)).await;
    let mut lease = runner(&db.store, "other", 10).claim().await.unwrap().unwrap();
    assert_eq!((lease.job_id(), lease.attempt()), (id, 2));
    while lease.step().await.unwrap() == Step::Continue {}
    // The stalled runner wakes up and applies its chunk: it is fenced out, nothing is counted twice.
    chunks.open(Injected::Continue);
    // Stopping waits for the chunk in flight.
    stop(running).await;
    let j = job(&db.store, p, id).await;
    assert_eq!(
        (j.status, j.completed_count, j.failed_count, j.cursor, j.attempt),
        (JobStatus::Completed, 30, 0, 30, 2)
    );
    assert_eq!(item_count(db).await, 0);
    hs.close().await;
}

async fn a_graceful_release_gives_its_attempt_back_and_a_lost_lease_does_not(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "attempts").await;
    s.create_catalog(p, "c", None).await.unwrap();
    s.create_catalog(p, "d", None).await.unwrap();
    seed(s, p, "c", 20).await;
    let r = Runner::new(s.clone(), RunnerConfig { max_attempts: 2, ..config("r", 5, 1) });
    let released = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..20), &opts()).await.unwrap().job.unwrap().id;
    for _ in 0..3 {
        let mut lease = r.claim().await.unwrap().unwrap();
        assert_eq!(lease.step().await.unwrap(), Step::Continue);
        lease.release().await.unwrap();
    }
    let mut lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.attempt(), 4);
    assert_eq!(lease.step().await.unwrap(), Step::Finished(JobStatus::Completed));
    let j = job(s, p, released).await;
    assert_eq!((j.status, j.completed_count), (JobStatus::Completed, 20), "three releases used up no attempt");
    // Lost leases count: the third claim of a job twice abandoned finds it out of attempts.
    let lost = s.bulk_delete_items(p, "d", Dialect::Native, ids(0..20), &opts()).await.unwrap().job.unwrap().id;
    for _ in 0..2 {
        let mut lease = r.claim().await.unwrap().unwrap();
        assert_eq!(lease.step().await.unwrap(), Step::Continue);
        drop(lease);
        backdate_leases(db).await;
    }
    let mut lease = r.claim().await.unwrap().unwrap();
    assert_eq!(lease.step().await.unwrap(), Step::Finished(JobStatus::Failed));
    let j = job(s, p, lost).await;
    assert_eq!((j.completed_count, j.failed_count, j.total_count), (10, 10, 20), "the rest is counted as failed");
    assert!(j.failure_reason.unwrap().contains("gave up after 2 attempts"));
}

async fn a_restarted_process_takes_back_its_predecessors_leases_on_sqlite_only(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "restart").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 30).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..30), &opts()).await.unwrap().job.unwrap().id;
    let mut lease = runner(s, "killed", 10).claim().await.unwrap().unwrap();
    assert_eq!(lease.step().await.unwrap(), Step::Continue);
    drop(lease); // kill -9: the lease stays for its whole 30 s.
    let next = Runner::new(s.clone(), config("next", 10, 1));
    if db.is_pg() {
        // Other processes may be alive: their leases are left to expire.
        assert_eq!(next.take_back_leases().await.unwrap(), 0);
        assert!(next.claim().await.unwrap().is_none());
    } else {
        // One process owns the file: the next one resumes the job at once, from its checkpoint.
        let running = start(next);
        let j = finished(s, p, id).await;
        assert_eq!((j.status, j.completed_count, j.attempt), (JobStatus::Completed, 30, 2));
        stop(running).await;
        assert_eq!(item_count(db).await, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog deletes
// ---------------------------------------------------------------------------------------------

async fn a_catalog_delete_runs_in_chunks_with_a_cursor(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "catalog-chunks").await;
    let catalog = s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 250).await;
    let members = |range: std::ops::Range<usize>| Some(range.map(name).collect::<Vec<_>>());
    let categories = vec![
        CategoryInput { id: RawId::String("k1".into()), external_id: None, name: None, item_ids: members(0..20) },
        CategoryInput { id: RawId::String("k2".into()), external_id: None, name: None, item_ids: members(20..30) },
    ];
    s.bulk_upsert_categories(p, "c", Dialect::Native, categories, &opts()).await.unwrap();
    runner(s, "seed", 100).run_until_idle().await.unwrap();
    // 30 memberships, 2 categories and 250 items: 282 rows, four chunks of 100.
    let id = s.delete_catalog(p, "c").await.unwrap().id;
    let first = runner(s, "first", 100);
    let mut lease = first.claim().await.unwrap().unwrap();
    assert_eq!(lease.step().await.unwrap(), Step::Continue);
    assert_eq!(job(s, p, id).await.cursor, 100);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM category_items").await, 0);
    assert_eq!(item_count(db).await, 250 - 68);
    // Its runner dies: another resumes at the cursor.
    drop(lease);
    backdate_leases(db).await;
    let mut lease = runner(s, "second", 100).claim().await.unwrap().unwrap();
    let mut steps = Vec::new();
    loop {
        let step = lease.step().await.unwrap();
        steps.push((step, job(s, p, id).await.cursor));
        if step != Step::Continue {
            break;
        }
    }
    assert_eq!(steps, [(Step::Continue, 200), (Step::Finished(JobStatus::Completed), 282)]);
    let j = job(s, p, id).await;
    assert_eq!((j.completed_count, j.failed_count, j.total_count), (1, 0, 1));
    assert_eq!(item_count(db).await, 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM categories").await, 0);
    assert_eq!(db.scalar(&format!("SELECT COUNT(*) FROM catalogs WHERE id = {}", catalog.id.0)).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

/// Makes the database refuse to store an item whose id starts with `poison`, and to delete the
/// item `keep-me`, as it refuses a value it cannot hold.
async fn refuse_poison(db: &TestDb) {
    if db.is_pg() {
        raw_script(
            &db.raw,
            r#"CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                   IF TG_OP = 'DELETE' THEN
                       IF OLD.item_id = 'keep-me' THEN RAISE EXCEPTION 'keep-me stays' USING ERRCODE = 'check_violation'; END IF;
                       RETURN OLD;
                   END IF;
                   IF NEW.item_id LIKE 'poison%' THEN RAISE EXCEPTION 'poison is refused' USING ERRCODE = 'check_violation'; END IF;
                   RETURN NEW;
               END $$;
               CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION refuse_poison();"#,
        )
        .await;
    } else {
        raw_script(
            &db.raw,
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON items WHEN NEW.item_id LIKE 'poison%'
                 BEGIN SELECT RAISE(ABORT, 'poison is refused'); END;
             CREATE TRIGGER refuse_poison_update BEFORE UPDATE ON items WHEN NEW.item_id LIKE 'poison%'
                 BEGIN SELECT RAISE(ABORT, 'poison is refused'); END;
             CREATE TRIGGER keep_me BEFORE DELETE ON items WHEN OLD.item_id = 'keep-me'
                 BEGIN SELECT RAISE(ABORT, 'keep-me stays'); END;",
        )
        .await;
    }
}

/// Writes a NUL (as its JSON escape) where `<NUL>` stands in job `id`'s stored payload: an input
/// the edge would refuse, for the runner's last line of defence.
async fn smuggle_nul(db: &TestDb, id: catalog_store::JobId) {
    let sql = format!("UPDATE job_payloads SET payload = REPLACE(payload, '<NUL>', '\\u0000') WHERE job_id = {}", id.0);
    assert_eq!(db.exec(&sql).await, 1, "the job's payload is one row");
}

async fn a_refused_input_fails_alone_and_the_rest_is_applied(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "refused").await;
    s.create_catalog(p, "c", None).await.unwrap();
    refuse_poison(db).await;
    // 300 items in chunks of 100, two of them refused (last in id order: one chunk isolates both).
    let mut items: Vec<ItemInput> = (0..298).map(|i| item(&name(i), json!({ "n": i }))).collect();
    items.insert(40, item("poison-1", json!({})));
    items.insert(250, item("poison-2", json!({})));
    let id = s.bulk_upsert_items(p, "c", Dialect::Native, items, &opts()).await.unwrap().job.unwrap().id;
    runner(s, "r", 100).run_until_idle().await.unwrap();
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.failed_count), (JobStatus::Completed, 298, 2));
    let errors = s.list_job_errors(p, id, None, 10).await.unwrap().rows;
    let refused: Vec<(u64, Option<&str>, &str, Option<&str>)> =
        errors.iter().map(|e| (e.index, e.item_id.as_deref(), e.code.as_str(), e.pointer.as_deref())).collect();
    assert_eq!(
        refused,
        [
            (40, Some("poison-1"), "item_refused", Some("/items/40")),
            (250, Some("poison-2"), "item_refused", Some("/items/250"))
        ]
    );
    assert!(errors[0].detail.contains("poison is refused"), "{}", errors[0].detail);
    assert_eq!(item_count(db).await, 298);
    // A delete the database refuses for one id deletes the others.
    s.bulk_upsert_items(p, "c", Dialect::Native, vec![item("keep-me", json!({}))], &opts()).await.unwrap();
    let mut doomed = ids(0..9);
    doomed.push(RawId::String("keep-me".into()));
    let id = s.bulk_delete_items(p, "c", Dialect::Native, doomed, &opts()).await.unwrap().job.unwrap().id;
    runner(s, "r", 100).run_until_idle().await.unwrap();
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.failed_count), (JobStatus::Completed, 9, 1));
    let errors = s.list_job_errors(p, id, None, 10).await.unwrap().rows;
    assert_eq!((errors[0].item_id.as_deref(), errors[0].pointer.as_deref()), (Some("keep-me"), None));
    assert!(s.get_item(p, "c", "keep-me").await.is_ok());
    assert_eq!(item_count(db).await, 290);
    // A NUL character: every dialect refuses it at the edge (catalog-domain's `storable`)...
    let refused = vec![item("nul-0", json!({ "t": "ok" })), item("nul-1", json!({ "t": "a\u{0}b" }))];
    let out = s.bulk_upsert_items(p, "c", Dialect::Native, refused, &opts()).await.unwrap();
    assert!(matches!(out.results[1], Err(IdProblem::Unstorable(_))), "{:?}", out.results);
    // ...so the runner meets one only in a payload written some other way (smuggled in below):
    // PostgreSQL cannot store it in text and refuses that item alone; SQLite stores it.
    let nul =
        vec![item("nul-0", json!({ "t": "ok" })), item("nul-1", json!({ "t": "a<NUL>b" })), item("nul-2", json!({}))];
    let id = s.bulk_upsert_items(p, "c", Dialect::Native, nul, &opts()).await.unwrap().job.unwrap().id;
    smuggle_nul(db, id).await;
    runner(s, "r", 100).run_until_idle().await.unwrap();
    let j = job(s, p, id).await;
    let expected_failed = u64::from(db.is_pg());
    assert_eq!(
        (j.status, j.completed_count, j.failed_count),
        (JobStatus::Completed, 3 - expected_failed, expected_failed)
    );
    assert!(s.get_item(p, "c", "nul-0").await.is_ok() && s.get_item(p, "c", "nul-2").await.is_ok());
    // Jobs that read before they write: an id PostgreSQL refuses even to look up fails alone too
    // (SQLite looks it up and finds nothing). Bloomreach's ids may hold any character but `/`.
    let patch =
        vec![item("nul-0", json!({ "p": 1 })), item("a<NUL>b", json!({ "p": 1 })), item("nul-2", json!({ "p": 1 }))];
    let id = s.bulk_patch_items(p, "c", Dialect::Bloomreach, patch, false, &opts()).await.unwrap().job.unwrap().id;
    smuggle_nul(db, id).await;
    runner(s, "r", 100).run_until_idle().await.unwrap();
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.failed_count), (JobStatus::Completed, 2, 1));
    let error = s.list_job_errors(p, id, None, 10).await.unwrap().rows.remove(0);
    assert_eq!(error.code, if db.is_pg() { "item_refused" } else { "item_not_found" });
    assert_eq!(error.item_id.as_deref(), Some("a\\u0000b"), "a NUL is recorded as its escape");
    assert_eq!(s.get_item(p, "c", "nul-2").await.unwrap().fields, common::fields(json!({ "p": 1 })));
    let category = |id: &str| CategoryInput {
        id: RawId::String(id.to_owned()),
        external_id: None,
        name: Some("renamed".to_owned()),
        item_ids: None,
    };
    s.bulk_upsert_categories(p, "c", Dialect::Native, vec![category("k-ok")], &opts()).await.unwrap();
    let update = vec![category("k<NUL>x"), category("k-ok")];
    let id = s.bulk_update_categories(p, "c", Dialect::Bloomreach, update, &opts()).await.unwrap().job.unwrap().id;
    smuggle_nul(db, id).await;
    runner(s, "r", 100).run_until_idle().await.unwrap();
    let j = job(s, p, id).await;
    assert_eq!((j.status, j.completed_count, j.failed_count), (JobStatus::Completed, 1, 1));
}

async fn a_transient_failure_is_retried_after_a_backoff_and_applied_once(db: &TestDb) {
    let hooks = TestHooks::new();
    // The second chunk's transaction fails once after writing its data, before its checkpoint.
    hooks.inject(|p| matches!(p, Breakpoint::ChunkWritten { .. }), Injected::Continue, 1);
    hooks.inject(|p| matches!(p, Breakpoint::ChunkWritten { .. }), Injected::TransientError, 1);
    let hs = hooked_store(db, &hooks).await;
    let p = project(&db.store, "transient").await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    seed(&db.store, p, "c", 300).await;
    let patch: Vec<ItemInput> = (0..300).map(|i| item(&name(i), json!({ "patched": i }))).collect();
    let id = hs.bulk_patch_items(p, "c", Dialect::Native, patch, false, &opts()).await.unwrap().job.unwrap().id;
    let running = start(Runner::new(hs.clone(), config("r", 100, 1)));
    let j = finished(&hs, p, id).await;
    stop(running).await;
    assert_eq!((j.status, j.completed_count, j.failed_count, j.attempt), (JobStatus::Completed, 300, 0, 2));
    let last_error = text_of(db, &format!("SELECT last_error FROM jobs WHERE id = {}", id.0)).await;
    assert!(last_error.unwrap().contains("injected"), "the failure is kept on the job");
    let item = hs.get_item(p, "c", &name(150)).await.unwrap();
    assert_eq!(item.fields, common::fields(json!({ "n": 150, "patched": 150 })));
    hs.close().await;
}

async fn a_job_out_of_attempts_fails_with_its_counts_adding_up(db: &TestDb) {
    let hooks = TestHooks::new();
    hooks.inject(
        |p| matches!(p, Breakpoint::ChunkStarting { cursor, .. } if *cursor >= 100),
        Injected::Failure,
        usize::MAX,
    );
    let hs = hooked_store(db, &hooks).await;
    let p = project(&db.store, "out-of-attempts").await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    seed(&db.store, p, "c", 300).await;
    let id = hs.bulk_delete_items(p, "c", Dialect::Native, ids(0..300), &opts()).await.unwrap().job.unwrap().id;
    let running = start(Runner::new(hs.clone(), RunnerConfig { max_attempts: 3, ..config("r", 100, 1) }));
    let j = finished(&hs, p, id).await;
    stop(running).await;
    assert_eq!((j.status, j.completed_count, j.failed_count, j.total_count), (JobStatus::Failed, 100, 200, 300));
    let reason = j.failure_reason.unwrap();
    assert!(reason.contains("gave up after 3 attempts") && reason.contains("injected"), "{reason}");
    assert_eq!(hooks.count(|p| matches!(p, Breakpoint::ChunkStarting { cursor: 100, .. })), 3);
    assert_eq!(item_count(db).await, 200);
    hs.close().await;
}

async fn a_job_whose_catalog_is_deleted_mid_run_counts_the_rest_as_failed(db: &TestDb) {
    let s = &db.store;
    let p = project(s, "gone-mid-run").await;
    s.create_catalog(p, "c", None).await.unwrap();
    seed(s, p, "c", 300).await;
    let id = s.bulk_delete_items(p, "c", Dialect::Native, ids(0..300), &opts()).await.unwrap().job.unwrap().id;
    let mut lease = runner(s, "r", 100).claim().await.unwrap().unwrap();
    assert_eq!(lease.step().await.unwrap(), Step::Continue);
    let delete = s.delete_catalog(p, "c").await.unwrap().id;
    assert_eq!(lease.step().await.unwrap(), Step::Finished(JobStatus::Failed));
    let j = job(s, p, id).await;
    assert_eq!((j.completed_count, j.failed_count, j.total_count), (100, 200, 300));
    assert!(j.failure_reason.unwrap().contains("catalog was deleted"));
    runner(s, "r", 100).run_until_idle().await.unwrap();
    assert_eq!(job(s, p, delete).await.status, JobStatus::Completed);
    assert_eq!(item_count(db).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Supervision
// ---------------------------------------------------------------------------------------------

async fn a_panicking_worker_lets_its_job_go_and_goes_on(db: &TestDb) {
    let hooks = TestHooks::new();
    hooks.inject(is_chunk_start, Injected::Panic, 1);
    let hs = hooked_store(db, &hooks).await;
    let p = project(&db.store, "panic").await;
    db.store.create_catalog(p, "c", None).await.unwrap();
    seed(&db.store, p, "c", 20).await;
    let first = hs.bulk_delete_items(p, "c", Dialect::Native, ids(0..10), &opts()).await.unwrap().job.unwrap().id;
    let running = start(Runner::new(hs.clone(), config("r", 100, 1)));
    let j = finished(&hs, p, first).await;
    assert_eq!((j.status, j.completed_count, j.attempt), (JobStatus::Completed, 10, 2));
    let last_error = text_of(db, &format!("SELECT last_error FROM jobs WHERE id = {}", first.0)).await;
    assert!(last_error.unwrap().contains("panicked"));
    // The same worker goes on with the next job.
    let second = hs.bulk_delete_items(p, "c", Dialect::Native, ids(10..20), &opts()).await.unwrap().job.unwrap().id;
    assert_eq!(finished(&hs, p, second).await.status, JobStatus::Completed);
    stop(running).await;
    hs.close().await;
}

async fn a_panicking_purge_is_restarted(db: &TestDb) {
    let hooks = TestHooks::new();
    let purges = hooks.gate(|p| matches!(p, Breakpoint::PurgeBatch));
    let hs = hooked_store(db, &hooks).await;
    let p = project(&hs, "purge-panic").await;
    hs.create_catalog(p, "c", None).await.unwrap();
    let id = hs.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await.unwrap().job.unwrap().id;
    let running = start(Runner::new(
        hs.clone(),
        RunnerConfig { purge_interval: Duration::from_millis(10), ..config("r", 10, 1) },
    ));
    finished(&hs, p, id).await;
    db.exec(&format!("UPDATE jobs SET expires_at = 1 WHERE id = {}", id.0)).await;
    hooks.reached(1, |p| matches!(p, Breakpoint::PurgeBatch)).await;
    purges.open(Injected::Panic);
    // Restarted, the purge comes back, and this time deletes the job.
    hooks.reached(2, |p| matches!(p, Breakpoint::PurgeBatch)).await;
    purges.open(Injected::Continue);
    hooks.reached(3, |p| matches!(p, Breakpoint::PurgeBatch)).await;
    assert_eq!(hs.get_job(p, id).await.unwrap_err().code(), ErrorCode::JobNotFound);
    purges.open(Injected::Continue);
    stop(running).await;
    hs.close().await;
}

async fn a_panicking_job_writer_is_restarted(db: &TestDb) {
    let hooks = TestHooks::new();
    hooks.inject(|p| matches!(p, Breakpoint::EnqueueBatch), Injected::Panic, 1);
    let hs = hooked_store(db, &hooks).await;
    let p = project(&hs, "writer-panic").await;
    hs.create_catalog(p, "c", None).await.unwrap();
    let lost = hs.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await;
    assert!(lost.is_err(), "the request in the panicking batch hears an error");
    let created = hs.bulk_delete_items(p, "c", Dialect::Native, ids(0..1), &opts()).await.unwrap().job.unwrap();
    assert_eq!(hs.get_job(p, created.id).await.unwrap().status, JobStatus::Queued);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM jobs").await, 1, "the failed request created nothing");
    hs.close().await;
}

async fn the_purge_deletes_in_bounded_batches(db: &TestDb) {
    let hooks = TestHooks::new();
    let hs = hooked_store(db, &hooks).await;
    let p = project(&hs, "purge-batches").await;
    let series = if db.is_pg() {
        "SELECT g FROM generate_series(1, 2500) AS g"
    } else {
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 2500) SELECT g FROM s"
    };
    db.exec(&format!(
        "INSERT INTO jobs (project_id, kind, status, total_count, created_at, updated_at, finished_at, expires_at)
         SELECT {}, 'item_bulk_delete', 'completed', 1, 0, 0, 0, 1 FROM ({series}) AS series",
        p.0
    ))
    .await;
    db.exec("INSERT INTO job_errors (job_id, item_index, code, title, detail) SELECT id, 0, 'x', 'x', 'x' FROM jobs")
        .await;
    db.exec("INSERT INTO job_payloads (job_id, payload) SELECT id, '[]' FROM jobs").await;
    assert_eq!(hs.purge_expired(catalog_store::now_ms()).await.unwrap(), 2_500);
    assert_eq!(hooks.count(|p| matches!(p, Breakpoint::PurgeBatch)), 3, "1,000 + 1,000 + 500");
    for table in ["jobs", "job_errors", "job_payloads"] {
        assert_eq!(db.scalar(&format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    hs.close().await;
}
