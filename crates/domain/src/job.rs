//! The job model: kinds, canonical statuses, the state machine, and each dialect's status words.
//!
//! The store persists a [`JobState`] and moves it only through [`JobState::apply`], so the rules of
//! the lifecycle (DESIGN §3) live here once: a job is created scheduled or queued, claimed into
//! running, advanced chunk by chunk, and ends completed, failed or cancelled. A cancel of a running
//! job is recorded as a request and takes effect at the next chunk boundary.

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// Default size of a chunk the runner applies in one transaction, on SQLite: its one write lock is
/// shared with the requests being accepted, which wait for a chunk to commit, so a chunk stays
/// short (a few milliseconds).
pub const DEFAULT_CHUNK_SIZE: usize = 1_000;

/// Default size of a chunk on PostgreSQL, where a chunk blocks no other writer: fewer, larger
/// transactions cost less per input, and a cancel still takes effect within one chunk (tens of
/// milliseconds).
pub const DEFAULT_CHUNK_SIZE_POSTGRES: usize = 10_000;

/// Default retention of a finished job before it is purged, in milliseconds (30 days).
pub const DEFAULT_RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1_000;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $( $(#[$doc:meta])* $variant:ident => $text:literal, )* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $( $(#[$doc])* $variant, )* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The snake_case word stored in the database and shown by the native API; `FromStr`
            /// reads it back.
            ///
            /// ```
            /// use catalog_domain::{JobKind, JobStatus};
            /// assert_eq!(JobKind::ItemBulkDelete.as_str(), "item_bulk_delete");
            /// assert_eq!("running".parse::<JobStatus>(), Ok(JobStatus::Running));
            /// assert!("done".parse::<JobStatus>().is_err());
            /// ```
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $( $text => Ok($name::$variant), )*
                    _ => Err(UnknownWord { kind: stringify!($name), word: s.to_owned() }),
                }
            }
        }
    };
}

/// A word that names no value of an enum (a bad `status=` or `kind=` filter, a corrupt row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{word}`")]
pub struct UnknownWord {
    /// The enum that was parsed.
    pub kind: &'static str,
    /// The word that did not match.
    pub word: String,
}

string_enum! {
    /// What a job does.
    JobKind {
        /// Delete items by id (a missing item counts as deleted).
        ItemBulkDelete => "item_bulk_delete",
        /// Create or fully replace items.
        ItemBulkUpsert => "item_bulk_upsert",
        /// Create items that do not exist yet; an input naming an item that exists (or that an
        /// earlier input of the job created) fails alone and leaves the item as it is.
        ItemBulkCreate => "item_bulk_create",
        /// Change some fields of existing items (or create them, when asked).
        ItemBulkPatch => "item_bulk_patch",
        /// Set categories' names and item sets (existing categories only are changed).
        CategoryBulkUpdate => "category_bulk_update",
        /// Create or replace categories.
        CategoryBulkUpsert => "category_bulk_upsert",
        /// Create categories that do not exist yet; like [`JobKind::ItemBulkCreate`], an existing
        /// one fails its input and is left as it is.
        CategoryBulkCreate => "category_bulk_create",
        /// Delete categories by id.
        CategoryBulkDelete => "category_bulk_delete",
        /// Delete a whole catalog with its items and categories.
        CatalogDelete => "catalog_delete",
    }
}

string_enum! {
    /// The canonical status of a job.
    JobStatus {
        /// Waiting for its `start_at`.
        Scheduled => "scheduled",
        /// Due, waiting for a runner.
        Queued => "queued",
        /// Claimed by a runner, being applied chunk by chunk.
        Running => "running",
        /// Every item was processed (some may have failed individually).
        Completed => "completed",
        /// The job as a whole could not run.
        Failed => "failed",
        /// Cancelled before it finished; its counts say what was done.
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// True for completed, failed and cancelled: no transition leaves these.
    ///
    /// ```
    /// use catalog_domain::JobStatus;
    /// assert!(JobStatus::Cancelled.is_terminal());
    /// assert!(!JobStatus::Running.is_terminal());
    /// ```
    pub const fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }

    /// The word Klaviyo's job resources use.
    ///
    /// ```
    /// use catalog_domain::JobStatus;
    /// assert_eq!(JobStatus::Running.klaviyo_word(), "processing");
    /// assert_eq!(JobStatus::Failed.klaviyo_word(), "complete");
    /// ```
    pub const fn klaviyo_word(self) -> &'static str {
        match self {
            JobStatus::Scheduled | JobStatus::Queued => "queued",
            JobStatus::Running => "processing",
            JobStatus::Completed | JobStatus::Failed => "complete",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The canonical statuses a Klaviyo `equals(status,"...")` filter selects; `None` for a word
    /// Klaviyo does not use.
    ///
    /// ```
    /// use catalog_domain::JobStatus;
    /// assert_eq!(JobStatus::from_klaviyo_word("queued"), Some(&[JobStatus::Scheduled, JobStatus::Queued][..]));
    /// assert_eq!(JobStatus::from_klaviyo_word("running"), None);
    /// ```
    pub fn from_klaviyo_word(word: &str) -> Option<&'static [JobStatus]> {
        match word {
            "queued" => Some(&[JobStatus::Scheduled, JobStatus::Queued]),
            "processing" => Some(&[JobStatus::Running]),
            "complete" => Some(&[JobStatus::Completed, JobStatus::Failed]),
            "cancelled" => Some(&[JobStatus::Cancelled]),
            _ => None,
        }
    }

    /// The word OpenReplay's jobs API uses.
    ///
    /// ```
    /// use catalog_domain::JobStatus;
    /// assert_eq!(JobStatus::Queued.openreplay_word(), "scheduled");
    /// assert_eq!(JobStatus::Completed.openreplay_word(), "completed");
    /// ```
    pub const fn openreplay_word(self) -> &'static str {
        match self {
            JobStatus::Scheduled | JobStatus::Queued => "scheduled",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// The part of a job the lifecycle rules govern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobState {
    /// Canonical status.
    pub status: JobStatus,
    /// Items (or categories) the job covers.
    pub total_count: u64,
    /// Items processed successfully so far.
    pub completed_count: u64,
    /// Items that failed individually so far.
    pub failed_count: u64,
    /// A cancel was asked while the job was running; honoured at the next chunk boundary.
    pub cancel_requested: bool,
}

/// Something that happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    /// Its `start_at` has come: a scheduled job becomes queued.
    BecameDue,
    /// A runner leased it.
    Claimed,
    /// A runner's lease on it expired or was released; it goes back to the queue to be resumed.
    Released,
    /// A chunk was applied: so many more items completed and failed.
    Checkpoint {
        /// Items of the chunk that succeeded.
        completed: u64,
        /// Items of the chunk that failed individually.
        failed: u64,
    },
    /// Every chunk was applied.
    Finished,
    /// The job as a whole could not run.
    Failed,
    /// A caller asked to cancel it.
    CancelRequested,
    /// A caller cancelled a job that had already failed, as OpenReplay's server lets one do: it is
    /// marked cancelled and keeps its counts. Only a failed job takes it; the other dialects
    /// refuse such a cancel ([`TransitionError::AlreadyFinished`] on [`JobEvent::CancelRequested`]).
    Withdrawn,
}

/// Why an event cannot apply to a job in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The job has finished; nothing changes it any more (cancelling it is a conflict).
    #[error("the job is already {0}")]
    AlreadyFinished(JobStatus),
    /// The event does not apply to this status (e.g. a checkpoint on a queued job).
    #[error("{event} does not apply to a {status} job")]
    NotApplicable {
        /// The job's status.
        status: JobStatus,
        /// A short name of the event.
        event: &'static str,
    },
    /// A checkpoint would count more items than the job has.
    #[error("a checkpoint would count {would_be} of {total} items")]
    CountsExceedTotal {
        /// completed + failed after the checkpoint.
        would_be: u64,
        /// The job's total.
        total: u64,
    },
    /// `Finished` came before every item was counted.
    #[error("the job finished with {counted} of {total} items counted")]
    FinishedEarly {
        /// completed + failed.
        counted: u64,
        /// The job's total.
        total: u64,
    },
}

impl JobEvent {
    const fn name(self) -> &'static str {
        match self {
            JobEvent::BecameDue => "became_due",
            JobEvent::Claimed => "claimed",
            JobEvent::Released => "released",
            JobEvent::Checkpoint { .. } => "checkpoint",
            JobEvent::Finished => "finished",
            JobEvent::Failed => "failed",
            JobEvent::CancelRequested => "cancel",
            JobEvent::Withdrawn => "withdrawn",
        }
    }
}

impl JobState {
    /// A new job of `total_count` items: scheduled when it starts in the future, else queued.
    ///
    /// ```
    /// use catalog_domain::{JobState, JobStatus};
    /// assert_eq!(JobState::new(10, true).status, JobStatus::Scheduled);
    /// assert_eq!(JobState::new(10, false).status, JobStatus::Queued);
    /// ```
    pub const fn new(total_count: u64, scheduled: bool) -> Self {
        JobState {
            status: if scheduled { JobStatus::Scheduled } else { JobStatus::Queued },
            total_count,
            completed_count: 0,
            failed_count: 0,
            cancel_requested: false,
        }
    }

    /// The state after a runner claims the job: a scheduled job becomes due first, and a running
    /// job whose lease ended is released first (and keeps its counts).
    ///
    /// ```
    /// use catalog_domain::{JobEvent, JobState, JobStatus};
    /// let running = JobState::new(10, true).claim().expect("a scheduled job becomes due, then runs");
    /// assert_eq!(running.status, JobStatus::Running);
    /// let halfway = running.apply(JobEvent::Checkpoint { completed: 5, failed: 0 }).expect("a chunk");
    /// // Its runner's lease ended: the next claim resumes it with its counts.
    /// assert_eq!(halfway.claim().map(|job| job.completed_count), Ok(5));
    /// ```
    pub fn claim(self) -> Result<JobState, TransitionError> {
        match self.status {
            JobStatus::Scheduled => self.apply(JobEvent::BecameDue)?.apply(JobEvent::Claimed),
            JobStatus::Running => self.apply(JobEvent::Released)?.apply(JobEvent::Claimed),
            _ => self.apply(JobEvent::Claimed),
        }
    }

    /// Items counted so far, completed or failed.
    ///
    /// ```
    /// use catalog_domain::JobState;
    /// let job = JobState { completed_count: 3, failed_count: 1, ..JobState::new(10, false) };
    /// assert_eq!(job.processed(), 4);
    /// ```
    pub const fn processed(&self) -> u64 {
        self.completed_count + self.failed_count
    }

    /// The state after `event`, or why it cannot happen. The state itself is never changed.
    ///
    /// ```
    /// use catalog_domain::{JobEvent, JobState, JobStatus, TransitionError};
    /// let job = JobState::new(2_000, false).apply(JobEvent::Claimed).expect("a queued job runs");
    /// let job = job.apply(JobEvent::Checkpoint { completed: 999, failed: 1 }).expect("first chunk");
    /// // A cancel of a running job is recorded, and honoured at the next chunk boundary.
    /// let job = job.apply(JobEvent::CancelRequested).expect("a running job takes a cancel");
    /// assert_eq!(job.status, JobStatus::Running);
    /// let job = job.apply(JobEvent::Checkpoint { completed: 500, failed: 0 }).expect("second chunk");
    /// assert_eq!((job.status, job.completed_count, job.failed_count), (JobStatus::Cancelled, 1_499, 1));
    /// // Nothing leaves a finished job; a checkpoint may not count more than the job has.
    /// assert_eq!(job.apply(JobEvent::CancelRequested), Err(TransitionError::AlreadyFinished(JobStatus::Cancelled)));
    /// // Save that a failed job may be withdrawn (OpenReplay's cancel): it ends cancelled, counts kept.
    /// let failed = JobState::new(5, false).apply(JobEvent::Failed).expect("a queued job may fail");
    /// let withdrawn = failed.apply(JobEvent::Withdrawn).expect("a failed job may be withdrawn");
    /// assert_eq!((withdrawn.status, withdrawn.failed_count), (JobStatus::Cancelled, 5));
    /// assert_eq!(job.apply(JobEvent::Withdrawn), Err(TransitionError::AlreadyFinished(JobStatus::Cancelled)));
    /// let running = JobState::new(5, false).apply(JobEvent::Claimed).expect("runs");
    /// assert_eq!(
    ///     running.apply(JobEvent::Checkpoint { completed: 6, failed: 0 }),
    ///     Err(TransitionError::CountsExceedTotal { would_be: 6, total: 5 })
    /// );
    /// ```
    pub fn apply(self, event: JobEvent) -> Result<JobState, TransitionError> {
        use JobStatus::*;
        if event == JobEvent::Withdrawn {
            return match self.status {
                Failed => Ok(JobState { status: Cancelled, ..self }),
                Completed | Cancelled => Err(TransitionError::AlreadyFinished(self.status)),
                status => Err(TransitionError::NotApplicable { status, event: event.name() }),
            };
        }
        if self.status.is_terminal() {
            return Err(TransitionError::AlreadyFinished(self.status));
        }
        let not_applicable = || TransitionError::NotApplicable { status: self.status, event: event.name() };
        let mut next = self;
        match (self.status, event) {
            (Scheduled, JobEvent::BecameDue) => next.status = Queued,
            (Queued, JobEvent::Claimed) => next.status = Running,
            (Running, JobEvent::Released) => next.status = Queued,
            (Running, JobEvent::Checkpoint { completed, failed }) => {
                let would_be = self.processed() + completed + failed;
                if would_be > self.total_count {
                    return Err(TransitionError::CountsExceedTotal { would_be, total: self.total_count });
                }
                next.completed_count += completed;
                next.failed_count += failed;
                if self.cancel_requested && would_be < self.total_count {
                    next.status = Cancelled;
                }
            }
            (Running, JobEvent::Finished) => {
                if self.processed() != self.total_count {
                    return Err(TransitionError::FinishedEarly { counted: self.processed(), total: self.total_count });
                }
                next.status = Completed;
            }
            (Queued | Running, JobEvent::Failed) => {
                // The job as a whole could not go on: what it did not apply is counted as failed,
                // so a failed job's counts add up like a completed one's.
                next.status = Failed;
                next.failed_count = self.total_count.saturating_sub(self.completed_count);
            }
            (Scheduled | Queued, JobEvent::CancelRequested) => next.status = Cancelled,
            (Running, JobEvent::CancelRequested) => next.cancel_requested = true,
            _ => return Err(not_applicable()),
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_job_is_withdrawn() {
        let failed = JobState::new(4, false).apply(JobEvent::Failed).expect("fails");
        assert_eq!(
            failed.apply(JobEvent::Withdrawn),
            Ok(JobState { status: JobStatus::Cancelled, failed_count: 4, ..JobState::new(4, false) })
        );
        let completed = running(1)
            .apply(JobEvent::Checkpoint { completed: 1, failed: 0 })
            .and_then(|job| job.apply(JobEvent::Finished))
            .expect("completes");
        assert_eq!(completed.apply(JobEvent::Withdrawn), Err(TransitionError::AlreadyFinished(JobStatus::Completed)));
        for unfinished in [JobState::new(1, true), JobState::new(1, false), running(1)] {
            assert_eq!(
                unfinished.apply(JobEvent::Withdrawn),
                Err(TransitionError::NotApplicable { status: unfinished.status, event: "withdrawn" })
            );
        }
    }

    #[test]
    fn words_round_trip() {
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(*kind));
        }
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
        }
        assert!("done".parse::<JobStatus>().is_err());
    }

    // Klaviyo: one test per row of contracts/klaviyo.md's status mapping.
    #[test]
    fn klaviyo_scheduled_and_queued_are_queued() {
        assert_eq!(JobStatus::Scheduled.klaviyo_word(), "queued");
        assert_eq!(JobStatus::Queued.klaviyo_word(), "queued");
    }
    #[test]
    fn klaviyo_running_is_processing() {
        assert_eq!(JobStatus::Running.klaviyo_word(), "processing");
    }
    #[test]
    fn klaviyo_completed_and_failed_are_complete() {
        assert_eq!(JobStatus::Completed.klaviyo_word(), "complete");
        assert_eq!(JobStatus::Failed.klaviyo_word(), "complete");
    }
    #[test]
    fn klaviyo_cancelled_is_cancelled() {
        assert_eq!(JobStatus::Cancelled.klaviyo_word(), "cancelled");
    }
    #[test]
    fn klaviyo_filter_words_select_what_renders_as_them() {
        for word in ["queued", "processing", "complete", "cancelled"] {
            let selected = JobStatus::from_klaviyo_word(word).unwrap_or_default();
            let expected: Vec<_> = JobStatus::ALL.iter().copied().filter(|s| s.klaviyo_word() == word).collect();
            assert_eq!(selected, expected.as_slice(), "{word}");
        }
        assert_eq!(JobStatus::from_klaviyo_word("running"), None);
    }

    // OpenReplay: one test per row of contracts/openreplay.md's status words.
    #[test]
    fn openreplay_scheduled_and_queued_are_scheduled() {
        assert_eq!(JobStatus::Scheduled.openreplay_word(), "scheduled");
        assert_eq!(JobStatus::Queued.openreplay_word(), "scheduled");
    }
    #[test]
    fn openreplay_other_statuses_keep_their_word() {
        assert_eq!(JobStatus::Running.openreplay_word(), "running");
        assert_eq!(JobStatus::Completed.openreplay_word(), "completed");
        assert_eq!(JobStatus::Failed.openreplay_word(), "failed");
        assert_eq!(JobStatus::Cancelled.openreplay_word(), "cancelled");
    }

    fn running(total: u64) -> JobState {
        JobState::new(total, false).apply(JobEvent::Claimed).expect("queued job can be claimed")
    }

    #[test]
    fn scheduled_job_becomes_queued_when_due() {
        let job = JobState::new(3, true);
        assert_eq!(job.status, JobStatus::Scheduled);
        assert_eq!(job.apply(JobEvent::BecameDue).map(|j| j.status), Ok(JobStatus::Queued));
        assert!(job.apply(JobEvent::Claimed).is_err(), "a scheduled job is not claimed before it is due");
    }

    #[test]
    fn cancel_before_running_is_immediate() {
        for scheduled in [true, false] {
            let job = JobState::new(3, scheduled).apply(JobEvent::CancelRequested);
            assert_eq!(job.map(|j| j.status), Ok(JobStatus::Cancelled));
        }
    }

    #[test]
    fn cancel_of_running_job_takes_effect_at_next_chunk() {
        let job = running(3000).apply(JobEvent::CancelRequested).expect("running job accepts cancel");
        assert_eq!(job.status, JobStatus::Running);
        assert!(job.cancel_requested);
        let job = job.apply(JobEvent::Checkpoint { completed: 1000, failed: 0 }).expect("checkpoint");
        assert_eq!(job.status, JobStatus::Cancelled);
        assert_eq!(job.completed_count, 1000);
    }

    #[test]
    fn cancel_requested_on_last_chunk_still_completes() {
        let job = running(10).apply(JobEvent::CancelRequested).expect("cancel");
        let job = job.apply(JobEvent::Checkpoint { completed: 9, failed: 1 }).expect("checkpoint");
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.apply(JobEvent::Finished).map(|j| j.status), Ok(JobStatus::Completed));
    }

    #[test]
    fn cancel_of_finished_job_is_a_conflict() {
        let done = running(1)
            .apply(JobEvent::Checkpoint { completed: 1, failed: 0 })
            .and_then(|j| j.apply(JobEvent::Finished))
            .expect("job finishes");
        assert_eq!(done.apply(JobEvent::CancelRequested), Err(TransitionError::AlreadyFinished(JobStatus::Completed)));
    }

    #[test]
    fn finished_requires_every_item_counted() {
        let job = running(5).apply(JobEvent::Checkpoint { completed: 3, failed: 1 }).expect("checkpoint");
        assert_eq!(job.apply(JobEvent::Finished), Err(TransitionError::FinishedEarly { counted: 4, total: 5 }));
    }

    #[test]
    fn checkpoint_cannot_overcount() {
        assert_eq!(
            running(5).apply(JobEvent::Checkpoint { completed: 5, failed: 1 }),
            Err(TransitionError::CountsExceedTotal { would_be: 6, total: 5 })
        );
    }

    #[test]
    fn released_job_goes_back_to_the_queue_with_its_counts() {
        let job = running(5).apply(JobEvent::Checkpoint { completed: 2, failed: 0 }).expect("checkpoint");
        let job = job.apply(JobEvent::Released).expect("release");
        assert_eq!((job.status, job.completed_count), (JobStatus::Queued, 2));
    }

    #[test]
    fn a_job_that_cannot_run_fails_and_counts_the_rest_as_failed() {
        let job = running(5).apply(JobEvent::Checkpoint { completed: 2, failed: 1 }).expect("checkpoint");
        let failed = job.apply(JobEvent::Failed).expect("fail");
        assert_eq!((failed.status, failed.completed_count, failed.failed_count), (JobStatus::Failed, 2, 3));
        let never_ran = JobState::new(4, false).apply(JobEvent::Failed).expect("fail");
        assert_eq!((never_ran.completed_count, never_ran.failed_count), (0, 4));
    }

    #[test]
    fn a_claim_leaves_every_unfinished_status_running() {
        for state in [JobState::new(3, true), JobState::new(3, false), running(3)] {
            assert_eq!(state.claim().map(|s| s.status), Ok(JobStatus::Running), "{:?}", state.status);
        }
        let resumed = running(3).apply(JobEvent::Checkpoint { completed: 1, failed: 1 }).and_then(JobState::claim);
        assert_eq!(resumed.map(|s| s.processed()), Ok(2), "a resumed job keeps its counts");
        assert!(running(1).apply(JobEvent::Failed).and_then(JobState::claim).is_err());
    }
}
