//! Job events: reading the outbox the triggers of migration 0013 (SQLite) and 0014 (PostgreSQL) fill, and the per-process signal
//! that tells streams and the webhook sender that new events are readable. Semantics:
//! docs/EVENTS.md.
//!
//! An event's id is its place in the project's stream, given at insert. On SQLite ids commit in
//! order (one writer). On PostgreSQL a transaction may commit after another whose ids are higher,
//! so readers read only up to a horizon below which every event has committed or rolled back
//! (`catalogd_event_horizon()`, migration 0017): an event never becomes readable below an id a
//! reader has already passed.

use crate::db::{count, with_db, Db, RowExt};
use crate::error::StoreError;
use crate::model::{CatalogId, Job, JobId, ProjectId};
use crate::store::{Inner, Store};
use catalog_domain::events::EventType;
use catalog_domain::{JobKind, JobStatus};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// How often a process looks for new events when it has a stream or a webhook sender open: the
/// longest an event waits after its commit before a stream or a sender sees it.
pub const EVENT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Most events one read answers.
pub const MAX_EVENTS_PER_READ: u32 = 500;

/// One event of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its place in the project's stream: increases with every event of the project.
    pub id: i64,
    /// What happened.
    pub event_type: EventType,
    /// When it happened (epoch ms): the job's `updated_at` written by the change.
    pub created_at: i64,
    /// The job as the change left it: status, counts and times as they were then; what never
    /// changes (kind, catalog, description, reference, creation), and the runner's bookkeeping
    /// (lease, attempt), as they are now.
    pub job: Job,
}

/// Which events a reader wants; empty lists and `None` match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this job's.
    pub job: Option<JobId>,
    /// Only these types.
    pub types: Vec<EventType>,
    /// Only jobs of the catalog of this name.
    pub catalog: Option<String>,
    /// Only events that left their job in one of these statuses.
    pub statuses: Vec<JobStatus>,
}

/// The columns [`event_from_row`] reads, of `job_events e JOIN jobs j`.
pub(crate) const EVENT_COLUMNS: &str = "e.id AS event_id, e.type, e.status, e.total_count, e.completed_count, e.failed_count, \
     e.updated_at, e.started_at, e.finished_at, e.expires_at, j.id, j.project_id, j.catalog_id, j.catalog_name, j.kind, \
     j.cancel_requested, j.description, j.reference_id, j.idempotency_key, j.attempt, j.lease_owner, \
     j.lease_expires_at, j.created_at, j.start_at, j.failure_reason";

/// Reads an event selected with [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &impl RowExt) -> Result<Event, StoreError> {
    let corrupt = |e: catalog_domain::job::UnknownWord| StoreError::Corrupt(e.to_string());
    let completed_count = count(row.int("completed_count")?);
    let failed_count = count(row.int("failed_count")?);
    let updated_at = row.int("updated_at")?;
    Ok(Event {
        id: row.int("event_id")?,
        event_type: row.text("type")?.parse().map_err(corrupt)?,
        created_at: updated_at,
        job: Job {
            id: JobId(row.int("id")?),
            project_id: ProjectId(row.int("project_id")?),
            catalog_id: row.opt_int("catalog_id")?.map(CatalogId),
            catalog_name: row.opt_text("catalog_name")?,
            kind: row.text("kind")?.parse::<JobKind>().map_err(corrupt)?,
            status: row.text("status")?.parse::<JobStatus>().map_err(corrupt)?,
            total_count: count(row.int("total_count")?),
            completed_count,
            failed_count,
            cursor: completed_count + failed_count,
            cancel_requested: row.int("cancel_requested")? != 0,
            description: row.opt_text("description")?,
            reference_id: row.opt_text("reference_id")?,
            idempotency_key: row.opt_text("idempotency_key")?,
            attempt: u32::try_from(row.int("attempt")?).unwrap_or(u32::MAX),
            lease_owner: row.opt_text("lease_owner")?,
            lease_expires_at: row.opt_int("lease_expires_at")?,
            created_at: row.int("created_at")?,
            updated_at,
            start_at: row.opt_int("start_at")?,
            started_at: row.opt_int("started_at")?,
            finished_at: row.opt_int("finished_at")?,
            expires_at: row.opt_int("expires_at")?,
            failure_reason: row.opt_text("failure_reason")?,
        },
    })
}

/// A value bound into the dynamically built read.
enum Arg {
    Int(i64),
    Text(String),
}

/// The per-process signal of new events: the highest readable id, polled by one task while
/// anyone listens.
#[derive(Debug, Default)]
pub(crate) struct EventSignal {
    sender: std::sync::OnceLock<watch::Sender<i64>>,
}

impl Store {
    /// The project's events after `after`, oldest first, at most `limit` (1 to
    /// [`MAX_EVENTS_PER_READ`]) of them, that match `filter`: those up to the horizon read first
    /// ([`Store::readable_event_horizon`]).
    pub async fn events_after(
        &self,
        project: ProjectId,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let horizon = self.readable_event_horizon().await?;
        self.events_up_to(project, after, horizon, filter, limit).await
    }

    /// As [`Store::events_after`], for a caller that has read the horizon itself: the events after
    /// `after` and at most `horizon`, which must come from [`Store::readable_event_horizon`] or
    /// [`Store::latest_event_id`] in an earlier statement (on PostgreSQL, an event above it may
    /// still be written below an id a reader has passed).
    pub async fn events_up_to(
        &self,
        project: ProjectId,
        after: i64,
        horizon: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut args = vec![Arg::Int(project.0), Arg::Int(after), Arg::Int(horizon)];
        let mut clauses = vec!["e.project_id = $1".to_owned(), "e.id > $2".to_owned(), "e.id <= $3".to_owned()];
        let mut arg = |value: Arg| {
            args.push(value);
            format!("${}", args.len())
        };
        if let Some(job) = filter.job {
            clauses.push(format!("e.job_id = {}", arg(Arg::Int(job.0))));
        }
        if !filter.types.is_empty() {
            let list: Vec<String> = filter.types.iter().map(|t| arg(Arg::Text(t.as_str().to_owned()))).collect();
            clauses.push(format!("e.type IN ({})", list.join(", ")));
        }
        if let Some(catalog) = &filter.catalog {
            clauses.push(format!("j.catalog_name = {}", arg(Arg::Text(catalog.clone()))));
        }
        if !filter.statuses.is_empty() {
            let list: Vec<String> = filter.statuses.iter().map(|s| arg(Arg::Text(s.as_str().to_owned()))).collect();
            clauses.push(format!("e.status IN ({})", list.join(", ")));
        }
        let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE {} ORDER BY e.id LIMIT {limit}",
            clauses.join(" AND ")
        );
        with_db!(self.db(), pool => {
            let mut q = sqlx::query(&sql);
            for arg in &args {
                q = match arg {
                    Arg::Int(v) => q.bind(*v),
                    Arg::Text(v) => q.bind(v.as_str()),
                };
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// The highest event id given so far (0 when there is none), once every event up to it is
    /// readable: every event committed before the call has an id at most this. On PostgreSQL this
    /// waits for the transactions still writing events at or below it to end (see the module).
    pub async fn latest_event_id(&self) -> Result<i64, StoreError> {
        match self.db() {
            Db::Pg(pool) => sqlx::query("SELECT catalogd_latest_event_id() AS last").fetch_one(pool).await?.int("last"),
            Db::Sqlite(_) => self.readable_event_horizon().await,
        }
    }

    /// The highest event id up to which every event is readable now, without waiting: any later
    /// read sees every event at or below it that ever commits. On PostgreSQL a transaction still
    /// writing events holds it below its own, and a later answer may be lower than an earlier one
    /// (a writer that read the sequence before it and took its lock after), never wrong: readers
    /// keep the highest they have passed.
    pub async fn readable_event_horizon(&self) -> Result<i64, StoreError> {
        match self.db() {
            Db::Pg(pool) => sqlx::query("SELECT catalogd_event_horizon() AS last").fetch_one(pool).await?.int("last"),
            Db::Sqlite(pool) => {
                sqlx::query("SELECT COALESCE(MAX(id), 0) AS last FROM job_events").fetch_one(pool).await?.int("last")
            }
        }
    }

    /// A receiver of the highest readable event id of this database, updated every
    /// [`EVENT_POLL_INTERVAL`] by one task per store (started by the first call, ended with the
    /// store). Readers wait for a change, then read their own events.
    pub fn subscribe_events(&self) -> watch::Receiver<i64> {
        let signal = &self.inner.events;
        let mut started = false;
        let sender = signal.sender.get_or_init(|| {
            started = true;
            watch::channel(0).0
        });
        let receiver = sender.subscribe();
        if started {
            let inner = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                crate::supervise::supervise("event signal", EVENT_POLL_INTERVAL, None, || {
                    let inner = inner.clone();
                    async move {
                        poll_events(inner).await;
                        Ok(())
                    }
                })
                .await;
            });
        }
        receiver
    }
}

/// The task behind [`Store::subscribe_events`] (supervised: restarted if it panics): holds the
/// store only while it reads, so the store's end (its last clone dropped) ends it.
async fn poll_events(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let store = Store { inner };
        match store.readable_event_horizon().await {
            Ok(latest) => {
                if let Some(sender) = store.inner.events.sender.get() {
                    sender.send_if_modified(|current| {
                        let newer = latest > *current;
                        if newer {
                            *current = latest;
                        }
                        newer
                    });
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the latest event id"),
        }
        drop(store);
        tokio::time::sleep(EVENT_POLL_INTERVAL).await;
    }
}

impl Store {
    /// Resolves once the process shuts down ([`Store::end_waits`]): open event streams end then,
    /// so that they do not hold the shutdown (a client resumes with `Last-Event-ID`).
    pub async fn shutting_down(&self) {
        loop {
            let notified = self.inner.job_finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.waits_ended.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}
