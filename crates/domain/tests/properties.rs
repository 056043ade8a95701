//! Property tests of the id rules, chunking, the job state machine, the order of a catalog's
//! jobs, the turns projects and catalogs are served in, and Klaviyo's compound ids.

use catalog_domain::chunk::{chunk_ranges, effective_size};
use catalog_domain::ids::{is_safe_char, IdCharset};
use catalog_domain::order::{startable, PendingJob};
use catalog_domain::turns::{next_in_turn, Candidate, Turns};
use catalog_domain::{
    check_id, chunk_count, chunks, validate_ids, CompoundId, Dialect, IdProblem, JobEvent, JobState, JobStatus, RawId,
};
use proptest::prelude::*;
use std::collections::HashMap;

fn dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(Dialect::ALL.to_vec())
}

/// An id every rule of `dialect` accepts.
fn valid_id(dialect: Dialect) -> BoxedStrategy<String> {
    match dialect.charset() {
        IdCharset::Safe => "[A-Za-z0-9_-]{1,250}".boxed(),
        // At most 250 characters of up to 4 bytes: within the 1,024-byte storage cap.
        IdCharset::NoSlash => "[^/\u{0}]{1,250}".boxed(),
        IdCharset::Any => "(?s)[^\u{0}]{1,250}".boxed(),
    }
}

fn dialect_and_id() -> impl Strategy<Value = (Dialect, String)> {
    dialect().prop_flat_map(|d| (Just(d), valid_id(d)))
}

fn event() -> impl Strategy<Value = JobEvent> {
    prop_oneof![
        Just(JobEvent::BecameDue),
        Just(JobEvent::Claimed),
        Just(JobEvent::Released),
        (0u64..20, 0u64..20).prop_map(|(completed, failed)| JobEvent::Checkpoint { completed, failed }),
        Just(JobEvent::Finished),
        Just(JobEvent::Failed),
        Just(JobEvent::CancelRequested),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_dialect_accepts_a_generated_valid_id((dialect, id) in dialect_and_id()) {
        prop_assert_eq!(check_id(dialect, &id), Ok(()));
        let verdicts = validate_ids(dialect, vec![RawId::String(id.clone())]);
        prop_assert_eq!(verdicts, Ok(vec![Ok(id)]));
    }

    #[test]
    fn native_and_braze_refuse_any_character_outside_the_charset(
        before in "[A-Za-z0-9_-]{0,124}",
        bad in any::<char>().prop_filter("outside the charset", |c| !is_safe_char(*c)),
        after in "[A-Za-z0-9_-]{0,124}",
    ) {
        let id = format!("{before}{bad}{after}");
        for dialect in [Dialect::Native, Dialect::Braze] {
            prop_assert_eq!(check_id(dialect, &id), Err(IdProblem::InvalidCharacter { ch: bad }));
        }
    }

    #[test]
    fn native_and_braze_refuse_ids_over_250_chars(id in "[A-Za-z0-9_-]{251,400}") {
        for dialect in [Dialect::Native, Dialect::Braze] {
            prop_assert_eq!(
                check_id(dialect, &id),
                Err(IdProblem::TooLong { max: 250, len: id.chars().count() })
            );
        }
    }

    #[test]
    fn bloomreach_refuses_exactly_the_ids_with_a_slash(id in "(?s).{1,50}") {
        let expected = if id.contains('\0') {
            Err(IdProblem::InvalidCharacter { ch: '\0' })
        } else if id.contains('/') {
            Err(IdProblem::ContainsSlash)
        } else {
            Ok(())
        };
        prop_assert_eq!(check_id(Dialect::Bloomreach, &id), expected);
    }

    #[test]
    fn every_dialect_refuses_a_nul_anywhere_in_an_id(
        dialect in dialect(),
        before in "[A-Za-z0-9_-]{0,100}",
        after in "[A-Za-z0-9_-]{0,100}",
    ) {
        let id = format!("{before}\0{after}");
        prop_assert_eq!(check_id(dialect, &id), Err(IdProblem::InvalidCharacter { ch: '\0' }));
    }

    #[test]
    fn free_text_ids_are_capped_by_their_utf8_bytes(id in "[^/\u{0}]{200,700}") {
        for dialect in [Dialect::Bloomreach, Dialect::Klaviyo] {
            let expected = if id.len() > catalog_domain::MAX_ID_BYTES {
                Err(IdProblem::TooManyBytes { max: catalog_domain::MAX_ID_BYTES, len: id.len() })
            } else {
                Ok(())
            };
            prop_assert_eq!(check_id(dialect, &id), expected);
        }
    }

    #[test]
    fn duplicate_detection_agrees_with_a_hash_set(
        dialect in dialect(),
        ids in prop::collection::vec("[ab]{1,2}", 1..50),
    ) {
        let verdicts = validate_ids(dialect, ids.iter().cloned().map(RawId::String).collect())
            .expect("within every dialect's item limit");
        prop_assert_eq!(verdicts.len(), ids.len());
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (index, (id, verdict)) in ids.iter().zip(&verdicts).enumerate() {
            match first_seen.get(id.as_str()) {
                Some(&first_index) if dialect.requires_unique_ids() => {
                    prop_assert_eq!(verdict, &Err(IdProblem::Duplicate { first_index }));
                }
                _ => prop_assert_eq!(verdict, &Ok(id.clone())),
            }
            first_seen.entry(id.as_str()).or_insert(index);
        }
    }

    #[test]
    fn verdicts_keep_request_order_and_length(
        dialect in dialect(),
        raws in prop::collection::vec(
            prop_oneof![
                Just(RawId::Missing),
                Just(RawId::NotAString),
                "[a-c/ ]{0,3}".prop_map(RawId::String),
            ],
            1..50,
        ),
    ) {
        let verdicts = validate_ids(dialect, raws.clone()).expect("within limits");
        prop_assert_eq!(verdicts.len(), raws.len());
        for (raw, verdict) in raws.iter().zip(&verdicts) {
            match (raw, verdict) {
                (RawId::Missing, v) => prop_assert_eq!(v, &Err(IdProblem::Missing)),
                (RawId::NotAString, v) => prop_assert_eq!(v, &Err(IdProblem::NotAString)),
                (RawId::String(id), Ok(ok)) => prop_assert_eq!(id, ok),
                (RawId::String(_), Err(problem)) => {
                    prop_assert!(!matches!(problem, IdProblem::Missing | IdProblem::NotAString));
                }
            }
        }
    }

    #[test]
    fn chunking_keeps_order_and_covers_every_item_once(
        items in prop::collection::vec(any::<u32>(), 0..500),
        size in 0usize..60,
    ) {
        let parts: Vec<&[u32]> = chunks(&items, size).collect();
        prop_assert_eq!(parts.len(), chunk_count(items.len(), size));
        prop_assert!(parts.iter().all(|c| !c.is_empty() && c.len() <= effective_size(size)));
        let flat: Vec<u32> = parts.concat();
        prop_assert_eq!(&flat, &items);
        let by_range: Vec<&[u32]> = chunk_ranges(items.len(), size).map(|r| &items[r]).collect();
        prop_assert_eq!(by_range, parts);
    }

    #[test]
    fn no_event_sequence_leaves_a_terminal_status(
        total in 0u64..40,
        scheduled in any::<bool>(),
        events in prop::collection::vec(event(), 0..60),
    ) {
        let mut job = JobState::new(total, scheduled);
        for event in events {
            let before = job;
            match job.apply(event) {
                Ok(next) => {
                    prop_assert!(!before.status.is_terminal(), "{before:?} moved on {event:?}");
                    job = next;
                }
                Err(_) => prop_assert_eq!(job, before),
            }
            if before.status.is_terminal() {
                prop_assert_eq!(job, before);
            }
        }
    }

    #[test]
    fn counts_never_exceed_total(
        total in 0u64..40,
        scheduled in any::<bool>(),
        events in prop::collection::vec(event(), 0..60),
    ) {
        let mut job = JobState::new(total, scheduled);
        for event in events {
            if let Ok(next) = job.apply(event) {
                job = next;
            }
            prop_assert!(job.completed_count + job.failed_count <= job.total_count, "{job:?}");
            if matches!(job.status, JobStatus::Completed | JobStatus::Failed) {
                prop_assert_eq!(job.processed(), job.total_count, "a finished job's counts add up: {:?}", job);
            }
        }
    }

    #[test]
    fn klaviyo_compound_id_render_parse_round_trips(external_id in "(?s).{1,100}") {
        let id = CompoundId::custom_default(external_id);
        prop_assert_eq!(CompoundId::parse(&id.render()), Ok(id));
    }

    #[test]
    fn klaviyo_compound_id_parse_render_round_trips(external_id in "(?s).{1,100}") {
        let text = format!("$custom:::$default:::{external_id}");
        let parsed = CompoundId::parse(&text).expect("supported compound id");
        prop_assert_eq!(parsed.render(), text);
    }

    #[test]
    fn at_most_one_job_per_catalog_starts_and_never_behind_an_earlier_one(
        jobs in pending_jobs(),
        now in 0i64..120,
    ) {
        let chosen = startable(&jobs, now);
        let mut seen = std::collections::HashSet::new();
        for job in &chosen {
            prop_assert!(seen.insert(job.catalog), "two jobs of catalog {} start", job.catalog);
            let siblings: Vec<&PendingJob> =
                jobs.iter().filter(|j| j.catalog == job.catalog && !j.status.is_terminal()).collect();
            let holders: Vec<&&PendingJob> =
                siblings.iter().filter(|j| j.started || j.status == JobStatus::Running).collect();
            if holders.is_empty() {
                prop_assert!(is_due(job, now), "{job:?} is not due at {now}");
                for other in &siblings {
                    prop_assert!(
                        !is_due(other, now) || other.order_key() >= job.order_key(),
                        "{job:?} starts before the earlier due {other:?}"
                    );
                }
            } else {
                let first = holders.iter().map(|j| j.order_key()).min();
                prop_assert_eq!(Some(job.order_key()), first, "only the job holding the catalog may go on");
                prop_assert!(job.status != JobStatus::Running || job.lease_expires_at.is_none_or(|end| end <= now));
            }
        }
        prop_assert!(chosen.windows(2).all(|w| w[0].order_key() <= w[1].order_key()), "oldest due first");
    }

    #[test]
    fn a_catalog_with_due_work_and_nobody_on_it_gets_a_job(jobs in pending_jobs(), now in 0i64..120) {
        let chosen = startable(&jobs, now);
        for catalog in 0..4 {
            let siblings: Vec<&PendingJob> =
                jobs.iter().filter(|j| j.catalog == catalog && !j.status.is_terminal()).collect();
            let free = siblings.iter().all(|j| !j.started && j.status != JobStatus::Running);
            if free && siblings.iter().any(|j| is_due(j, now)) {
                prop_assert!(chosen.iter().any(|j| j.catalog == catalog), "catalog {catalog} starves");
            }
        }
    }

    #[test]
    fn catalogs_do_not_see_each_other(jobs in pending_jobs(), now in 0i64..120) {
        let all = startable(&jobs, now);
        for catalog in 0..4 {
            let alone: Vec<PendingJob> = jobs.iter().copied().filter(|j| j.catalog == catalog).collect();
            let by_itself: Vec<i64> = startable(&alone, now).iter().map(|j| j.id).collect();
            let among_others: Vec<i64> = all.iter().filter(|j| j.catalog == catalog).map(|j| j.id).collect();
            prop_assert_eq!(by_itself, among_others);
        }
    }

    /// Runners start, crash, release and finish jobs in any order the rule allows, while new
    /// jobs arrive; every catalog's jobs still finish one at a time, in the order they became due.
    #[test]
    fn any_run_the_rule_allows_applies_each_catalog_in_order(
        arrivals in prop::collection::vec((0i64..3, prop::option::of(1i64..30)), 1..25),
        choices in prop::collection::vec(0usize..1000, 200),
    ) {
        let mut now = 0i64;
        let mut jobs: Vec<PendingJob> = Vec::new();
        let mut arrivals = arrivals.into_iter().peekable();
        let mut finished: Vec<PendingJob> = Vec::new();
        let mut next_id = 1;
        for choice in choices {
            // A job arrives now and then: queued at once, or scheduled for later.
            if choice % 3 == 0 {
                if let Some((catalog, later)) = arrivals.next() {
                    let status = if later.is_some() { JobStatus::Scheduled } else { JobStatus::Queued };
                    let due_at = catalog_domain::order::due_at(now, later.map(|d| now + d));
                    jobs.push(PendingJob { id: next_id, catalog, status, due_at, started: false, lease_expires_at: None });
                    next_id += 1;
                }
            }
            now += 1;
            let running: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].status == JobStatus::Running).collect();
            match choice % 4 {
                // A runner claims the first startable job it can get.
                0 | 1 => {
                    let ids: Vec<i64> = startable(&jobs, now).iter().map(|j| j.id).collect();
                    if let Some(id) = ids.get(choice % ids.len().max(1)) {
                        let job = jobs.iter_mut().find(|j| j.id == *id).expect("chosen from the list");
                        *job = PendingJob { status: JobStatus::Running, started: true, lease_expires_at: Some(now + 5), ..*job };
                    }
                }
                // A running job finishes.
                2 => if let Some(&i) = running.get(choice % running.len().max(1)) {
                    finished.push(jobs.remove(i));
                },
                // A running job is released at shutdown, or its runner dies (its lease runs out).
                _ => if let Some(&i) = running.get(choice % running.len().max(1)) {
                    if choice % 8 == 3 {
                        jobs[i].status = JobStatus::Queued;
                        jobs[i].lease_expires_at = None;
                    } else {
                        jobs[i].lease_expires_at = Some(now - 1);
                    }
                },
            }
            for catalog in 0..3 {
                let holding = jobs.iter().filter(|j| j.catalog == catalog && j.started).count();
                prop_assert!(holding <= 1, "two started jobs of catalog {catalog}: {jobs:?}");
            }
        }
        for catalog in 0..3 {
            let keys: Vec<(i64, i64)> = finished.iter().filter(|j| j.catalog == catalog).map(|j| j.order_key()).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            prop_assert_eq!(keys, sorted, "catalog {} finished out of order", catalog);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Jobs of three projects (three catalogs each) arrive while up to three workers claim by the
    /// order rule and the turns, under a cap of two running catalogs per project, and finish or
    /// lose their leases: no project runs more than the cap, each catalog still finishes in order,
    /// and a project that may be served is passed over at most once by each other project.
    #[test]
    fn projects_take_turns_under_the_cap_and_catalogs_keep_their_order(
        arrivals in prop::collection::vec((0i64..3, 0i64..3), 1..40),
        choices in prop::collection::vec(0usize..1000, 300),
    ) {
        const CAP: u64 = 2;
        const WORKERS: usize = 3;
        let mut now = 0i64;
        let mut jobs: Vec<(i64, PendingJob)> = Vec::new();
        let mut arrivals = arrivals.into_iter();
        let mut finished: Vec<PendingJob> = Vec::new();
        let mut turns = Turns::new();
        let mut passed_over: HashMap<i64, usize> = HashMap::new();
        let mut next_id = 1;
        for choice in choices {
            if choice % 2 == 0 {
                if let Some((project, catalog)) = arrivals.next() {
                    let job = PendingJob {
                        id: next_id, catalog: project * 10 + catalog, status: JobStatus::Queued, due_at: now,
                        started: false, lease_expires_at: None,
                    };
                    jobs.push((project, job));
                    next_id += 1;
                }
            }
            now += 1;
            let live = |jobs: &[(i64, PendingJob)], project: i64| {
                jobs.iter().filter(|(p, j)| *p == project && j.status == JobStatus::Running
                    && j.lease_expires_at.is_some_and(|end| end > now)).count() as u64
            };
            let running: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].1.status == JobStatus::Running).collect();
            match choice % 4 {
                0 | 1 if running.len() < WORKERS => {
                    let plain: Vec<PendingJob> = jobs.iter().map(|(_, j)| *j).collect();
                    let candidates: Vec<Candidate> = startable(&plain, now)
                        .into_iter()
                        .filter_map(|job| jobs.iter().find(|(_, j)| j.id == job.id))
                        .map(|(project, job)| turns.candidate(job, *project))
                        .collect();
                    let counts: HashMap<i64, u64> = (0..3).map(|p| (p, live(&jobs, p))).collect();
                    let running_of = |p: i64| counts.get(&p).copied().unwrap_or(0);
                    if let Some(next) = next_in_turn(&candidates, running_of, Some(CAP)).copied() {
                        let eligible: std::collections::BTreeSet<i64> =
                            candidates.iter().filter(|c| running_of(c.project) < CAP).map(|c| c.project).collect();
                        for waiting in eligible {
                            let count = passed_over.entry(waiting).or_insert(0);
                            *count = if waiting == next.project { 0 } else { *count + 1 };
                        }
                        let waiting_projects: std::collections::HashSet<i64> =
                            candidates.iter().map(|c| c.project).collect();
                        for (project, count) in passed_over.iter_mut() {
                            if !waiting_projects.contains(project) {
                                *count = 0;
                            }
                        }
                        for (project, count) in &passed_over {
                            prop_assert!(*count <= 2, "project {} passed over {} times in a row", project, count);
                        }
                        turns.serve(next.project, next.catalog);
                        let (_, job) = jobs.iter_mut().find(|(_, j)| j.id == next.id).expect("a candidate");
                        *job = PendingJob { status: JobStatus::Running, started: true, lease_expires_at: Some(now + 5), ..*job };
                    }
                }
                2 | 3 if !running.is_empty() => {
                    let i = running[choice % running.len()];
                    if choice % 8 < 6 {
                        finished.push(jobs.remove(i).1);
                    } else {
                        jobs[i].1.lease_expires_at = Some(now - 1);
                    }
                }
                _ => {}
            }
            for project in 0..3 {
                prop_assert!(live(&jobs, project) <= CAP, "project {} runs more than {} catalogs", project, CAP);
            }
        }
        for catalog in [0, 1, 2, 10, 11, 12, 20, 21, 22] {
            let keys: Vec<(i64, i64)> = finished.iter().filter(|j| j.catalog == catalog).map(|j| j.order_key()).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            prop_assert_eq!(keys, sorted, "catalog {} finished out of order", catalog);
        }
    }
}

/// Due at `now` as the order rule means it.
fn is_due(job: &PendingJob, now: i64) -> bool {
    match job.status {
        JobStatus::Scheduled => job.due_at <= now,
        status => !status.is_terminal(),
    }
}

/// Jobs of four catalogs in every status, with at most one started job per catalog (as the store
/// keeps it).
fn pending_jobs() -> impl Strategy<Value = Vec<PendingJob>> {
    let status = prop::sample::select(vec![
        JobStatus::Scheduled,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ]);
    prop::collection::vec((0i64..4, status, 0i64..100, any::<bool>(), prop::option::of(0i64..120)), 0..24).prop_map(
        |rows| {
            let mut holding = std::collections::HashSet::new();
            rows.into_iter()
                .enumerate()
                .map(|(i, (catalog, mut status, due_at, released, lease))| {
                    let mut started = status == JobStatus::Running || (status == JobStatus::Queued && released);
                    if started && !holding.insert(catalog) {
                        // One started job per catalog: a second one stays queued.
                        status = JobStatus::Queued;
                        started = false;
                    }
                    let lease_expires_at = if status == JobStatus::Running { lease } else { None };
                    PendingJob { id: i as i64 + 1, catalog, status, due_at, started, lease_expires_at }
                })
                .collect()
        },
    )
}
