//! Which project, and which of its catalogs, a worker serves next (docs/RULES.md, "Projects served
//! in turn").
//!
//! The order rule ([`crate::order`]) says which job of each catalog may start. When several
//! catalogs have a job that may start, the oldest due one used to go first, so one project's
//! backlog over several catalogs held every other project's new job until the whole backlog was
//! applied. Instead, workers take projects **in turn**, and within a project its catalogs in turn:
//!
//! - every claim is a **turn**, numbered by one counter that only grows (on PostgreSQL shared by
//!   every process); the claim records it as the turn its project and its catalog were last
//!   served at;
//! - the next job is the startable one whose project was served longest ago, then whose catalog
//!   was served longest ago; never served counts as longest ago; ties go to the oldest due job
//!   ([`crate::order::PendingJob::order_key`]), as before. Within a catalog nothing changes: its
//!   one startable job is the one the order rule names.
//!
//! "Least recently served first" is round robin without a pointer to keep: a project served now
//! goes behind every project with work, and one that had no work keeps its old turn, so when new
//! work arrives it goes first. A project with work is therefore passed over at most once by each
//! other project (see [`next_in_turn`]).
//!
//! **The cap.** A project already running `cap` catalogs (jobs under a live lease, which a worker is
//! applying) gets no further claim until one of them ends, whatever its turn: a project with work
//! in many catalogs cannot take every worker, so another project's job finds one free.

use crate::order::PendingJob;
use alloc::collections::BTreeMap;

/// A job the order rule lets start ([`crate::order::startable`]), with the turns the choice between
/// projects and catalogs needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The job's id.
    pub id: i64,
    /// The project the job belongs to.
    pub project: i64,
    /// The job's catalog.
    pub catalog: i64,
    /// When it became due ([`crate::order::due_at`]).
    pub due_at: i64,
    /// The turn its project was last served at; 0 if never.
    pub project_turn: u64,
    /// The turn its catalog was last served at; 0 if never.
    pub catalog_turn: u64,
}

impl Candidate {
    /// A startable job of `project` and the turns its project and catalog were last served at.
    ///
    /// ```
    /// use catalog_domain::order::PendingJob;
    /// use catalog_domain::turns::Candidate;
    /// use catalog_domain::JobStatus;
    /// let job = PendingJob { id: 7, catalog: 3, status: JobStatus::Queued, due_at: 500, started: false, lease_expires_at: None };
    /// let candidate = Candidate::new(&job, 1, 4, 2);
    /// assert_eq!((candidate.project, candidate.catalog, candidate.project_turn), (1, 3, 4));
    /// ```
    pub const fn new(job: &PendingJob, project: i64, project_turn: u64, catalog_turn: u64) -> Candidate {
        Candidate { id: job.id, project, catalog: job.catalog, due_at: job.due_at, project_turn, catalog_turn }
    }

    /// The candidate's place in the turn order: least recently served project, then catalog, then
    /// oldest due, then lowest id. The claim's SQL orders by the same four values.
    ///
    /// ```
    /// use catalog_domain::turns::Candidate;
    /// let served_long_ago = Candidate { id: 9, project: 2, catalog: 20, due_at: 900, project_turn: 1, catalog_turn: 1 };
    /// let older_but_just_served = Candidate { id: 1, project: 1, catalog: 10, due_at: 100, project_turn: 5, catalog_turn: 5 };
    /// assert!(served_long_ago.turn_key() < older_but_just_served.turn_key());
    /// ```
    pub const fn turn_key(&self) -> (u64, u64, i64, i64) {
        (self.project_turn, self.catalog_turn, self.due_at, self.id)
    }
}

/// Whether a project running `running` catalogs may start one more under `cap` (`None`: no cap).
///
/// ```
/// use catalog_domain::turns::may_run_another;
/// assert!(may_run_another(1, Some(2)));
/// assert!(!may_run_another(2, Some(2)));
/// assert!(may_run_another(100, None));
/// ```
pub const fn may_run_another(running: u64, cap: Option<u64>) -> bool {
    match cap {
        Some(cap) => running < cap,
        None => true,
    }
}

/// The candidate to claim next: among those whose project may run another catalog under `cap`
/// (`running(project)` says how many it runs now), the least in [`Candidate::turn_key`] order.
///
/// ```
/// use catalog_domain::turns::{next_in_turn, Candidate};
///
/// let job = |id, project, catalog, due_at, project_turn, catalog_turn| Candidate {
///     id, project, catalog, due_at, project_turn, catalog_turn,
/// };
/// // Project 1 was just served (turn 9) and has an older job; project 2 was served at turn 4.
/// let candidates = [job(1, 1, 10, 100, 9, 9), job(2, 2, 20, 500, 4, 4)];
/// assert_eq!(next_in_turn(&candidates, |_| 0, None).map(|c| c.id), Some(2));
/// // Project 2 already runs its one allowed catalog: project 1 is served.
/// assert_eq!(next_in_turn(&candidates, |p| if p == 2 { 1 } else { 0 }, Some(1)).map(|c| c.id), Some(1));
/// ```
pub fn next_in_turn(candidates: &[Candidate], running: impl Fn(i64) -> u64, cap: Option<u64>) -> Option<&Candidate> {
    candidates.iter().filter(|c| may_run_another(running(c.project), cap)).min_by_key(|c| c.turn_key())
}

/// The turns projects and catalogs were last served at, as the claim records them: a model of
/// the store's tables for tests and simulations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Turns {
    last: u64,
    projects: BTreeMap<i64, u64>,
    catalogs: BTreeMap<i64, u64>,
}

impl Turns {
    /// No project or catalog served yet.
    ///
    /// ```
    /// use catalog_domain::turns::Turns;
    /// assert_eq!(Turns::new().of_project(1), 0);
    /// ```
    pub fn new() -> Turns {
        Turns::default()
    }

    /// The turn `project` was last served at; 0 if never.
    ///
    /// ```
    /// use catalog_domain::turns::Turns;
    /// let mut turns = Turns::new();
    /// turns.serve(1, 10);
    /// assert_eq!((turns.of_project(1), turns.of_project(2)), (1, 0));
    /// ```
    pub fn of_project(&self, project: i64) -> u64 {
        self.projects.get(&project).copied().unwrap_or(0)
    }

    /// The turn `catalog` was last served at; 0 if never.
    ///
    /// ```
    /// use catalog_domain::turns::Turns;
    /// let mut turns = Turns::new();
    /// turns.serve(1, 10);
    /// assert_eq!((turns.of_catalog(10), turns.of_catalog(11)), (1, 0));
    /// ```
    pub fn of_catalog(&self, catalog: i64) -> u64 {
        self.catalogs.get(&catalog).copied().unwrap_or(0)
    }

    /// `job` of `project` as a candidate, with the turns recorded so far.
    ///
    /// ```
    /// use catalog_domain::order::PendingJob;
    /// use catalog_domain::turns::Turns;
    /// use catalog_domain::JobStatus;
    /// let mut turns = Turns::new();
    /// turns.serve(1, 10);
    /// let job = PendingJob { id: 7, catalog: 10, status: JobStatus::Queued, due_at: 0, started: false, lease_expires_at: None };
    /// assert_eq!(turns.candidate(&job, 1).turn_key(), (1, 1, 0, 7));
    /// ```
    pub fn candidate(&self, job: &PendingJob, project: i64) -> Candidate {
        Candidate::new(job, project, self.of_project(project), self.of_catalog(job.catalog))
    }

    /// Records a claim of a job of `project` in `catalog`: the next turn is theirs.
    ///
    /// ```
    /// use catalog_domain::turns::Turns;
    /// let mut turns = Turns::new();
    /// assert_eq!(turns.serve(1, 10), 1);
    /// assert_eq!(turns.serve(2, 20), 2);
    /// assert_eq!(turns.of_project(2), 2);
    /// ```
    pub fn serve(&mut self, project: i64, catalog: i64) -> u64 {
        self.last += 1;
        self.projects.insert(project, self.last);
        self.catalogs.insert(catalog, self.last);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobStatus;
    use crate::order::startable;

    /// A queued job: `(id, project, catalog, due_at)`.
    fn queued((id, project, catalog, due_at): (i64, i64, i64, i64)) -> (i64, PendingJob) {
        (project, PendingJob { id, catalog, status: JobStatus::Queued, due_at, started: false, lease_expires_at: None })
    }

    /// One worker claims and finishes jobs one after another; the ids in the order it claims them.
    fn served_order(jobs: &[(i64, i64, i64, i64)]) -> Vec<i64> {
        let mut pending: Vec<(i64, PendingJob)> = jobs.iter().copied().map(queued).collect();
        let mut turns = Turns::new();
        let mut order = Vec::new();
        loop {
            let only_jobs: Vec<PendingJob> = pending.iter().map(|(_, job)| *job).collect();
            let candidates: Vec<Candidate> = startable(&only_jobs, 1_000)
                .into_iter()
                .filter_map(|job| pending.iter().find(|(_, j)| j.id == job.id))
                .map(|(project, job)| turns.candidate(job, *project))
                .collect();
            let Some(next) = next_in_turn(&candidates, |_| 0, None) else {
                return order;
            };
            turns.serve(next.project, next.catalog);
            order.push(next.id);
            pending.retain(|(_, job)| job.id != next.id);
        }
    }

    #[test]
    fn a_new_project_is_served_after_one_job_of_a_backlog() {
        // Project 1: three catalogs, three jobs each, all due before project 2's job 10.
        let mut jobs: Vec<(i64, i64, i64, i64)> = (1..=9).map(|id| (id, 1, 100 + (id - 1) % 3, id)).collect();
        jobs.push((10, 2, 200, 50));
        let order = served_order(&jobs);
        assert_eq!(order[0], 1, "the oldest job first when nobody was served yet");
        assert_eq!(order[1], 10, "then project 2, not after project 1's whole backlog");
    }

    #[test]
    fn projects_take_turns() {
        // Projects 1, 2, 3 with three jobs each in one catalog each, project 1's all due first.
        let jobs = [
            (1, 1, 10, 1),
            (2, 1, 10, 2),
            (3, 1, 10, 3),
            (4, 2, 20, 4),
            (5, 2, 20, 5),
            (6, 2, 20, 6),
            (7, 3, 30, 7),
            (8, 3, 30, 8),
            (9, 3, 30, 9),
        ];
        assert_eq!(served_order(&jobs), [1, 4, 7, 2, 5, 8, 3, 6, 9]);
    }

    #[test]
    fn a_projects_catalogs_take_turns() {
        // One project, catalogs 10 and 20: catalog 10's jobs are all due first.
        let jobs = [(1, 1, 10, 1), (2, 1, 10, 2), (3, 1, 10, 3), (4, 1, 20, 4), (5, 1, 20, 5)];
        assert_eq!(served_order(&jobs), [1, 4, 2, 5, 3]);
    }

    #[test]
    fn catalogs_alternate_within_projects_that_alternate() {
        let jobs = [(1, 1, 10, 1), (2, 1, 10, 2), (3, 1, 11, 3), (4, 1, 11, 4), (5, 2, 20, 5), (6, 2, 20, 6)];
        assert_eq!(served_order(&jobs), [1, 5, 3, 6, 2, 4]);
    }

    #[test]
    fn within_a_catalog_the_order_rule_is_unchanged() {
        // Job 3 is due before job 2 in the same catalog; the turns never reorder a catalog.
        let jobs = [(1, 1, 10, 1), (2, 1, 10, 9), (3, 1, 10, 5), (4, 2, 20, 2)];
        assert_eq!(served_order(&jobs), [1, 4, 3, 2]);
    }

    #[test]
    fn a_project_that_had_no_work_keeps_its_old_turn_and_goes_first() {
        let mut turns = Turns::new();
        turns.serve(2, 20); // turn 1: project 2, long ago
        turns.serve(1, 10); // turns 2 and 3: project 1 since
        turns.serve(1, 11);
        let job = |id, catalog, due_at| PendingJob {
            id,
            catalog,
            status: JobStatus::Queued,
            due_at,
            started: false,
            lease_expires_at: None,
        };
        let candidates = [turns.candidate(&job(7, 10, 1), 1), turns.candidate(&job(8, 20, 99), 2)];
        assert_eq!(next_in_turn(&candidates, |_| 0, None).map(|c| c.id), Some(8));
    }

    #[test]
    fn ties_between_never_served_projects_go_to_the_oldest_due() {
        let c = |id, project, due_at| Candidate {
            id,
            project,
            catalog: project * 10,
            due_at,
            project_turn: 0,
            catalog_turn: 0,
        };
        assert_eq!(next_in_turn(&[c(5, 1, 30), c(6, 2, 20), c(4, 3, 20)], |_| 0, None).map(|c| c.id), Some(4));
    }

    #[test]
    fn the_cap_passes_over_a_project_running_enough_catalogs() {
        let c =
            |id, project, turn| Candidate { id, project, catalog: id, due_at: id, project_turn: turn, catalog_turn: 0 };
        let candidates = [c(1, 1, 1), c(2, 1, 1), c(3, 2, 5)];
        let running = |project| if project == 1 { 2 } else { 0 };
        assert_eq!(next_in_turn(&candidates, running, Some(2)).map(|c| c.id), Some(3));
        assert_eq!(next_in_turn(&candidates, running, Some(3)).map(|c| c.id), Some(1));
        assert_eq!(next_in_turn(&candidates, running, None).map(|c| c.id), Some(1));
        assert_eq!(next_in_turn(&candidates[..2], running, Some(2)), None, "nothing else to serve: it waits");
    }

    #[test]
    fn serving_numbers_turns_from_one() {
        let mut turns = Turns::new();
        assert_eq!((turns.of_project(1), turns.of_catalog(10)), (0, 0));
        assert_eq!(turns.serve(1, 10), 1);
        assert_eq!(turns.serve(2, 20), 2);
        assert_eq!((turns.of_project(1), turns.of_catalog(10), turns.of_project(2)), (1, 1, 2));
    }
}
