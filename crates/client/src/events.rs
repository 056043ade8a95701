//! Job events and webhooks: following the server's event streams (`GET /v1/events`,
//! `GET /v1/jobs/{id}/events`, Server-Sent Events) and managing webhooks.
//!
//! An [`EventStream`] reads messages as they come, and when the connection drops it reconnects
//! with `Last-Event-ID` (per the client's retry policy), so no event is lost or repeated across
//! the break.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::types::Job;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// A stream that has sent nothing (not even its keep-alive, every 15 s) for this long is taken as
/// broken and opened again.
pub const STREAM_IDLE_LIMIT: Duration = Duration::from_secs(45);

/// One job event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increases with every event of the project.
    pub id: i64,
    /// `job.created`, `job.started`, `job.progress`, `job.completed`, `job.failed` or
    /// `job.cancelled`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (RFC 3339).
    pub created_at: String,
    /// The job as the change left it.
    pub data: EventData,
}

/// An event's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    /// The job.
    pub job: Job,
}

impl Event {
    /// True for a job's last event (completed, failed or cancelled).
    pub fn is_terminal(&self) -> bool {
        matches!(self.event_type.as_str(), "job.completed" | "job.failed" | "job.cancelled")
    }
}

/// Which events `GET /v1/events` sends; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this job's.
    pub job: Option<i64>,
    /// Only these types (e.g. `job.completed`).
    pub types: Vec<String>,
    /// Only jobs of this catalog.
    pub catalog: Option<String>,
    /// Only events that left their job in one of these statuses.
    pub statuses: Vec<String>,
}

/// A webhook (as listed: without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The signing secret: only in the answer to its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One event's delivery to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The event.
    pub event_id: i64,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u64,
    /// The latest answer's HTTP status.
    pub response_code: Option<u16>,
    /// Why the latest attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// RFC 3339.
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Deserialize)]
struct WebhookList {
    webhooks: Vec<Webhook>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPage {
    /// The rows.
    pub deliveries: Vec<Delivery>,
    /// The next page's cursor; none on the last page.
    pub next_cursor: Option<String>,
}

/// A live stream of events; see [`Client::events`] and [`Client::job_events`].
#[derive(Debug)]
pub struct EventStream {
    client: Client,
    url: Url,
    last_id: Option<i64>,
    response: Option<reqwest::Response>,
    buffer: String,
    /// A job's stream ends after the job's last event.
    ends_with_job: bool,
    ended: bool,
}

impl EventStream {
    /// The next event, waiting for it; `None` once a job's stream is over. A dropped connection
    /// is opened again after the last event received.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        let mut failures = 0u32;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let broken = match self.response.as_mut() {
                None => None,
                Some(response) => match tokio::time::timeout(STREAM_IDLE_LIMIT, response.chunk()).await {
                    Ok(Ok(Some(bytes))) => {
                        self.buffer.push_str(&String::from_utf8_lossy(&bytes));
                        failures = 0;
                        continue;
                    }
                    Ok(Ok(None)) => Some(Error::InvalidInput("the server ended the stream".into())),
                    Ok(Err(error)) => Some(Error::Transport(error)),
                    Err(_) => Some(Error::InvalidInput("the stream went silent".into())),
                },
            };
            self.response = None;
            self.buffer.clear();
            if let Some(error) = broken {
                failures += 1;
                if !self.client.retry_policy().allows_retry(failures) {
                    return Some(Err(error));
                }
                tokio::time::sleep(self.client.retry_policy().delay(failures, None, u64::from(failures))).await;
            }
            match self.client.open_stream(self.url.clone(), self.last_id).await {
                Ok(response) => self.response = Some(response),
                Err(error) => {
                    failures += 1;
                    let retryable = error.is_retryable_idempotent();
                    if !retryable || !self.client.retry_policy().allows_retry(failures) {
                        return Some(Err(error));
                    }
                    let delay = self.client.retry_policy().delay(failures, error.retry_after(), u64::from(failures));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Takes one complete message out of the buffer; comments and other fields are skipped.
    fn parse_one(&mut self) -> Option<Result<Event>> {
        loop {
            let buffer = self.buffer.replace("\r\n", "\n");
            self.buffer = buffer;
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let data: Vec<&str> =
                block.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim_start).collect();
            if data.is_empty() {
                continue;
            }
            let event = serde_json::from_str::<Event>(&data.join("\n"))
                .map_err(|e| Error::InvalidInput(format!("an event the client cannot read: {e}")));
            if let Ok(event) = &event {
                self.last_id = Some(event.id);
                if self.ends_with_job && event.is_terminal() {
                    self.ended = true;
                }
            }
            return Some(event);
        }
    }
}

impl Client {
    /// `GET /v1/events`: the project's events from now on (or after `after`), as they happen.
    pub async fn events(&self, filter: &EventFilter, after: Option<i64>) -> Result<EventStream> {
        let mut url = self.url(&["v1", "events"])?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(job) = filter.job {
                query.append_pair("job", &job.to_string());
            }
            if !filter.types.is_empty() {
                query.append_pair("type", &filter.types.join(","));
            }
            if let Some(catalog) = &filter.catalog {
                query.append_pair("catalog", catalog);
            }
            if !filter.statuses.is_empty() {
                query.append_pair("status", &filter.statuses.join(","));
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.stream(url, after, false).await
    }

    /// `GET /v1/jobs/{id}/events`: the job's events from its first (or after `after`); the
    /// stream ends after its last.
    pub async fn job_events(&self, id: i64, after: Option<i64>) -> Result<EventStream> {
        let url = self.url(&["v1", "jobs", &id.to_string(), "events"])?;
        self.stream(url, after, true).await
    }

    async fn stream(&self, url: Url, after: Option<i64>, ends_with_job: bool) -> Result<EventStream> {
        let response = self.open_stream(url.clone(), after).await?;
        Ok(EventStream {
            client: self.clone(),
            url,
            last_id: after,
            response: Some(response),
            buffer: String::new(),
            ends_with_job,
            ended: false,
        })
    }

    /// `POST /v1/webhooks`: a webhook receiving `events` at `url`; the answer carries its secret.
    pub async fn create_webhook(&self, url: &str, events: &[String], description: Option<&str>) -> Result<Webhook> {
        let body = json!({"url": url, "events": events, "description": description});
        self.call_json(self.post(self.url(&["v1", "webhooks"])?, &body)?).await
    }

    /// `GET /v1/webhooks`.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let list: WebhookList = self.call_json(self.get(self.url(&["v1", "webhooks"])?)).await?;
        Ok(list.webhooks)
    }

    /// `GET /v1/webhooks/{id}/deliveries`: one page, newest first.
    pub async fn webhook_deliveries(&self, id: i64, limit: Option<u32>, cursor: Option<&str>) -> Result<DeliveryPage> {
        let mut url = self.url(&["v1", "webhooks", &id.to_string(), "deliveries"])?;
        crate::client::page_query(&mut url, limit, cursor);
        self.call_json(self.get(url)).await
    }
}
