//! Webhooks and their deliveries: what the API's webhook routes call, and the storage half of the
//! sender (catalog-api's `webhook_sender`, which owns the HTTP half). Semantics: docs/EVENTS.md.
//!
//! Deliveries come from the outbox: [`Store::fan_out_deliveries`] turns every readable event a
//! webhook subscribes to into one delivery row (once: a webhook's `cursor` and the unique
//! (webhook, event) pair), so a delivery exists before anything is sent, and a process killed at
//! any point loses none. A sender leases a due delivery while it sends it
//! ([`Store::claim_due_deliveries`]) and records the outcome ([`Store::record_delivery`]).

use crate::db::{count, with_db, Db, RowExt};
use crate::error::StoreError;
use crate::events::Event;
use crate::model::{Page, ProjectId};
use crate::store::Store;
use crate::util::{clamp_limit, decode_int_cursor, encode_int_cursor, hex, random_bytes};
use catalog_domain::events::{DeliveryStatus, EventType};

const DELIVERIES_CURSOR: char = 'd';

/// A webhook of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// Its project.
    pub project_id: ProjectId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<EventType>,
    /// Free text.
    pub description: Option<String>,
    /// The signing secret (shown to the caller only at creation and rotation).
    pub secret: String,
    /// Creation time (epoch ms).
    pub created_at: i64,
}

/// One event's delivery to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The webhook.
    pub webhook_id: i64,
    /// The event delivered.
    pub event_id: i64,
    /// The event's type.
    pub event_type: EventType,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u64,
    /// The HTTP status of the latest answer (none: no answer, e.g. a refused connection).
    pub response_code: Option<u16>,
    /// Why the latest attempt failed, when it did.
    pub last_error: Option<String>,
    /// When the latest attempt ended (epoch ms).
    pub last_attempt_at: Option<i64>,
    /// When the next attempt is due (pending deliveries only; epoch ms).
    pub next_attempt_at: Option<i64>,
    /// When the delivery was made from its event (epoch ms).
    pub created_at: i64,
}

/// A delivery a sender has leased: what it needs to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    /// The delivery.
    pub id: i64,
    /// The webhook.
    pub webhook_id: i64,
    /// Where to send it.
    pub url: String,
    /// The webhook's signing secret.
    pub secret: String,
    /// Attempts made before this one.
    pub attempts: u64,
    /// When the delivery was made (epoch ms): the retry schedule counts from it.
    pub created_at: i64,
    /// The event to send.
    pub event: Event,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Succeeded {
        /// Its status.
        response_code: u16,
    },
    /// No answer, or a non-2xx one.
    Failed {
        /// The status of the answer, if any.
        response_code: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again; `None`: give up (the delivery fails).
        next_attempt_at: Option<i64>,
    },
}

fn event_types(text: &str) -> Result<Vec<EventType>, StoreError> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<EventType>().map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

fn webhook_from_row(row: &impl RowExt) -> Result<Webhook, StoreError> {
    Ok(Webhook {
        id: row.int("id")?,
        project_id: ProjectId(row.int("project_id")?),
        url: row.text("url")?,
        events: event_types(&row.text("events")?)?,
        description: row.opt_text("description")?,
        secret: row.text("secret")?,
        created_at: row.int("created_at")?,
    })
}

fn delivery_from_row(row: &impl RowExt) -> Result<Delivery, StoreError> {
    let corrupt = |e: catalog_domain::job::UnknownWord| StoreError::Corrupt(e.to_string());
    Ok(Delivery {
        id: row.int("id")?,
        webhook_id: row.int("webhook_id")?,
        event_id: row.int("event_id")?,
        event_type: row.text("type")?.parse().map_err(corrupt)?,
        status: row.text("status")?.parse().map_err(corrupt)?,
        attempts: count(row.int("attempts")?),
        response_code: row.opt_int("response_code")?.and_then(|c| u16::try_from(c).ok()),
        last_error: row.opt_text("last_error")?,
        last_attempt_at: row.opt_int("last_attempt_at")?,
        next_attempt_at: row.opt_int("next_attempt_at")?,
        created_at: row.int("created_at")?,
    })
}

/// A new signing secret: `whsec_` and 32 random bytes in hex.
fn new_secret() -> Result<String, StoreError> {
    Ok(format!("whsec_{}", hex(&random_bytes(32)?)))
}

const WEBHOOK_COLUMNS: &str = "id, project_id, url, events, description, secret, created_at";
const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.event_id, e.type, d.status, d.attempts, d.response_code, \
     d.last_error, d.last_attempt_at, d.next_attempt_at, d.created_at";

impl Store {
    /// Creates a webhook of `project` receiving `events` at `url` (checked by the caller), with a
    /// new secret. It receives the events that become readable after its creation.
    pub async fn create_webhook(
        &self,
        project: ProjectId,
        url: &str,
        events: &[EventType],
        description: Option<&str>,
        now: i64,
    ) -> Result<Webhook, StoreError> {
        let secret = new_secret()?;
        let mut types: Vec<EventType> = events.to_vec();
        types.sort();
        types.dedup();
        let words: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let cursor = self.latest_event_id().await?;
        let sql = format!(
            "INSERT INTO webhooks (project_id, url, events, description, secret, created_at, cursor)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {WEBHOOK_COLUMNS}"
        );
        with_db!(self.db(), pool => {
            let row = sqlx::query(&sql)
                .bind(project.0)
                .bind(url)
                .bind(words.join(","))
                .bind(description)
                .bind(&secret)
                .bind(now)
                .bind(cursor)
                .fetch_one(pool)
                .await?;
            webhook_from_row(&row)
        })
    }

    /// The project's webhooks, oldest first.
    pub async fn list_webhooks(&self, project: ProjectId) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE project_id = $1 ORDER BY id");
        with_db!(self.db(), pool => {
            let rows = sqlx::query(&sql).bind(project.0).fetch_all(pool).await?;
            rows.iter().map(webhook_from_row).collect()
        })
    }

    /// The webhook `id` of `project`.
    pub async fn get_webhook(&self, project: ProjectId, id: i64) -> Result<Webhook, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND project_id = $2");
        with_db!(self.db(), pool => {
            let row = sqlx::query(&sql).bind(id).bind(project.0).fetch_optional(pool).await?;
            row.as_ref().map(webhook_from_row).transpose()?.ok_or(StoreError::WebhookNotFound(id))
        })
    }

    /// Deletes the webhook `id` of `project` with its deliveries; nothing more is sent to it.
    pub async fn delete_webhook(&self, project: ProjectId, id: i64) -> Result<(), StoreError> {
        let deleted = with_db!(self.db(), pool => {
            sqlx::query("DELETE FROM webhooks WHERE id = $1 AND project_id = $2")
                .bind(id)
                .bind(project.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(StoreError::WebhookNotFound(id));
        }
        Ok(())
    }

    /// Gives the webhook a new secret: every later attempt is signed with it.
    pub async fn rotate_webhook_secret(&self, project: ProjectId, id: i64) -> Result<Webhook, StoreError> {
        let secret = new_secret()?;
        let sql =
            format!("UPDATE webhooks SET secret = $1 WHERE id = $2 AND project_id = $3 RETURNING {WEBHOOK_COLUMNS}");
        with_db!(self.db(), pool => {
            let row = sqlx::query(&sql).bind(&secret).bind(id).bind(project.0).fetch_optional(pool).await?;
            row.as_ref().map(webhook_from_row).transpose()?.ok_or(StoreError::WebhookNotFound(id))
        })
    }

    /// The webhook's deliveries, newest first, one page.
    pub async fn list_deliveries(
        &self,
        project: ProjectId,
        webhook: i64,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Delivery>, StoreError> {
        self.get_webhook(project, webhook).await?;
        let before = cursor.map(|c| decode_int_cursor(DELIVERIES_CURSOR, c)).transpose()?.unwrap_or(i64::MAX);
        let limit = clamp_limit(limit);
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN job_events e ON e.id = d.event_id
             WHERE d.webhook_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3"
        );
        let mut rows = with_db!(self.db(), pool => {
            let rows = sqlx::query(&sql).bind(webhook).bind(before).bind(i64::from(limit) + 1).fetch_all(pool).await?;
            rows.iter().map(delivery_from_row).collect::<Result<Vec<_>, _>>()?
        });
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(encode_int_cursor(DELIVERIES_CURSOR, last.id)),
            _ => None,
        };
        Ok(Page { rows, next_cursor })
    }

    /// Makes the delivery due again now (whatever its status), to be sent once more; the retry
    /// schedule still counts from its creation.
    pub async fn redeliver(&self, project: ProjectId, webhook: i64, delivery: i64, now: i64) -> Result<(), StoreError> {
        self.get_webhook(project, webhook).await?;
        let changed = with_db!(self.db(), pool => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, lease_expires_at = NULL
                 WHERE id = $1 AND webhook_id = $2",
            )
            .bind(delivery)
            .bind(webhook)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::DeliveryNotFound(delivery));
        }
        Ok(())
    }

    /// Makes a delivery of every webhook for each readable event up to `latest` (an id from
    /// [`Store::readable_event_horizon`] or [`Store::latest_event_id`]) that it subscribes to and
    /// has not had yet. Idempotent, and safe to run in several processes at once. Returns the
    /// deliveries made.
    pub async fn fan_out_deliveries(&self, latest: i64, now: i64) -> Result<u64, StoreError> {
        let insert =
            "INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, next_attempt_at, created_at)
             SELECT w.id, e.id, 'pending', 0, $2, $2
             FROM webhooks w JOIN job_events e ON e.project_id = w.project_id AND e.id > w.cursor AND e.id <= $1
             WHERE w.cursor < $1 AND (',' || w.events || ',') LIKE ('%,' || e.type || ',%')
             ON CONFLICT (webhook_id, event_id) DO NOTHING";
        let advance = "UPDATE webhooks SET cursor = $1 WHERE cursor < $1";
        let made = match self.db() {
            Db::Pg(pool) => {
                let mut tx = pool.begin().await?;
                let made = sqlx::query(insert).bind(latest).bind(now).execute(&mut *tx).await?.rows_affected();
                sqlx::query(advance).bind(latest).execute(&mut *tx).await?;
                tx.commit().await?;
                made
            }
            Db::Sqlite(pool) => {
                use crate::db::Flavor as _;
                let mut tx = pool.begin_write(&self.write_turns().background()).await?;
                let made = sqlx::query(insert).bind(latest).bind(now).execute(&mut *tx).await?.rows_affected();
                sqlx::query(advance).bind(latest).execute(&mut *tx).await?;
                tx.commit().await?;
                made
            }
        };
        Ok(made)
    }

    /// Whether any delivery is due at `now` (a read: the sender leases only when there is work).
    pub async fn deliveries_due(&self, now: i64) -> Result<bool, StoreError> {
        with_db!(self.db(), pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM webhook_deliveries
                                            WHERE status = 'pending' AND next_attempt_at <= $1 LIMIT 1) due",
            )
            .bind(now)
            .fetch_one(pool)
            .await?;
            Ok(row.int("n")? > 0)
        })
    }

    /// Leases up to `limit` due deliveries for `lease_ms` (a sender must record each before the
    /// lease ends, or it is sent again): the oldest due of each webhook that has none in flight,
    /// so a slow receiver holds at most one of them and never the others'.
    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let claim = "UPDATE webhook_deliveries SET lease_expires_at = $1 + $2
             WHERE id IN (
                 SELECT MIN(d.id) FROM webhook_deliveries d
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $1
                   AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= $1)
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries b
                                   WHERE b.webhook_id = d.webhook_id AND b.status = 'pending' AND b.lease_expires_at > $1)
                 GROUP BY d.webhook_id ORDER BY MIN(d.id) LIMIT $3)
               AND status = 'pending' AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
             RETURNING id";
        let ids: Vec<i64> = with_db!(self.db(), pool => {
            let rows = sqlx::query(claim).bind(now).bind(lease_ms).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.iter().map(|row| row.int("id")).collect::<Result<Vec<_>, _>>()?
        });
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT d.id AS delivery_id, d.webhook_id, d.attempts, d.created_at AS delivery_created_at, w.url, w.secret,
                    {} FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             JOIN job_events e ON e.id = d.event_id JOIN jobs j ON j.id = e.job_id
             WHERE d.id IN ({list}) ORDER BY d.id",
            crate::events::EVENT_COLUMNS
        );
        with_db!(self.db(), pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(DueDelivery {
                        id: row.int("delivery_id")?,
                        webhook_id: row.int("webhook_id")?,
                        url: row.text("url")?,
                        secret: row.text("secret")?,
                        attempts: count(row.int("attempts")?),
                        created_at: row.int("delivery_created_at")?,
                        event: crate::events::event_from_row(row)?,
                    })
                })
                .collect()
        })
    }

    /// Records the outcome of an attempt at a leased delivery, ending the lease.
    pub async fn record_delivery(&self, id: i64, outcome: &AttemptOutcome, now: i64) -> Result<(), StoreError> {
        let (status, code, error, next) = match outcome {
            AttemptOutcome::Succeeded { response_code } => {
                (DeliveryStatus::Succeeded, Some(i64::from(*response_code)), None, None)
            }
            AttemptOutcome::Failed { response_code, error, next_attempt_at } => (
                if next_attempt_at.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed },
                response_code.map(i64::from),
                Some(error.as_str()),
                *next_attempt_at,
            ),
        };
        with_db!(self.db(), pool => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, response_code = $3, last_error = $4,
                     last_attempt_at = $5, next_attempt_at = $6, lease_expires_at = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(code)
            .bind(error)
            .bind(now)
            .bind(next)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// SQLite, at a sender's start: the leases a killed predecessor held end now (one process owns
    /// the file, so no other sender holds them). PostgreSQL leaves them to run out.
    pub async fn take_back_delivery_leases(&self) -> Result<u64, StoreError> {
        match self.db() {
            Db::Sqlite(pool) => Ok(sqlx::query(
                "UPDATE webhook_deliveries SET lease_expires_at = NULL WHERE lease_expires_at IS NOT NULL",
            )
            .execute(pool)
            .await?
            .rows_affected()),
            Db::Pg(_) => Ok(0),
        }
    }

    /// The number of deliveries of the project's webhooks still pending (for tests and metrics).
    pub async fn pending_deliveries(&self, project: ProjectId) -> Result<u64, StoreError> {
        with_db!(self.db(), pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE w.project_id = $1 AND d.status = 'pending'",
            )
            .bind(project.0)
            .fetch_one(pool)
            .await?;
            Ok(count(row.int("n")?))
        })
    }
}
