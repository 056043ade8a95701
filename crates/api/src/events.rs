//! `GET /v1/events` and `GET /v1/jobs/{id}/events`: the project's job events as Server-Sent
//! Events, read from the outbox (catalog-store's `events`), resumable with `Last-Event-ID` or
//! `?after=`. Semantics: docs/EVENTS.md.
//!
//! A stream reads its events from the database whenever the process's event signal says new ones
//! are readable ([`Store::subscribe_events`], polled every `EVENT_POLL_INTERVAL`), so it sees the
//! events of every process sharing a PostgreSQL database. It ends at shutdown, or for a job's
//! stream after the job's last event.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::native::{catalog_name_schema, path_param, query_param, GuardErrors, JobNotFound, QueryErrors};
use crate::state::AppState;
use crate::views::JobView;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use catalog_domain::catalog::validate_catalog_name;
use catalog_domain::events::EventType;
use catalog_domain::time::format_rfc3339;
use catalog_domain::{ErrorCode, JobStatus};
use catalog_store::{Event, EventFilter, JobId, ProjectId, Store, MAX_EVENTS_PER_READ};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::Required;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How often an idle stream sends the comment `: keep-alive`, so proxies keep it open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// The routes of this module, each with its operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events)).routes(routes!(stream_job_events))
}

/// What a job's data is in an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventData {
    /// The job as the change left it (as `GET /v1/jobs/{id}` renders a job).
    pub job: JobView,
}

/// A job event: an SSE message's `data`, and a webhook delivery's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Increases with every event of the project; the SSE `id`.
    pub id: i64,
    /// `job.created`, `job.started`, `job.progress`, `job.completed`, `job.failed` or
    /// `job.cancelled`; the SSE `event`.
    #[serde(rename = "type")]
    #[schema(example = "job.completed")]
    pub event_type: String,
    /// When it happened (RFC 3339).
    pub created_at: String,
    /// The job.
    pub data: EventData,
}

impl From<&Event> for EventView {
    fn from(event: &Event) -> Self {
        EventView {
            id: event.id,
            event_type: event.event_type.as_str().to_owned(),
            created_at: format_rfc3339(event.created_at),
            data: EventData { job: JobView::from(&event.job) },
        }
    }
}

/// The event as JSON text: an SSE `data` line and a webhook body are the same bytes.
pub fn event_json(event: &Event) -> String {
    serde_json::to_string(&EventView::from(event)).unwrap_or_else(|_| String::from("{}"))
}

/// The filters of `GET /v1/events` (documentation; the handler reads the query itself, since
/// `type` may repeat).
struct EventsQuery;

fn type_list_schema() -> utoipa::openapi::schema::Object {
    crate::native::word_list_schema(&EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>())
}

fn event_id_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
}

fn last_event_id_header() -> Parameter {
    ParameterBuilder::new()
        .name("Last-Event-ID")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some("Resume after this event id (sent by SSE clients when they reconnect)."))
        .schema(Some(event_id_schema()))
        .build()
}

impl IntoParams for EventsQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query_param("job", "Only this job's events.", event_id_schema().minimum(Some(1))),
            query_param("type", "Event types, comma-separated or repeated.", type_list_schema()),
            query_param("catalog", "Only events of jobs of this catalog.", catalog_name_schema()),
            query_param(
                "status",
                "Only events that left their job in one of these statuses (comma-separated).",
                crate::native::status_list_schema(),
            ),
            query_param("after", "Resume after this event id (as `Last-Event-ID`, which wins).", event_id_schema()),
            last_event_id_header(),
        ]
    }
}

/// `GET /v1/jobs/{id}/events` (documentation).
struct JobEventsQuery;

impl IntoParams for JobEventsQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let id =
            ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)));
        vec![
            path_param("id", "Job id.", id),
            query_param("after", "Resume after this event id (as `Last-Event-ID`, which wins).", event_id_schema()),
            last_event_id_header(),
        ]
    }
}

fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, message)
}

/// Parses the query pairs of an event stream: `job`, `type`, `catalog`, `status` (only when
/// `all_filters`), and `after`. Lists are comma-separated or repeated.
fn parse_query(pairs: &[(String, String)], all_filters: bool) -> Result<(EventFilter, Option<i64>), ApiError> {
    let mut filter = EventFilter::default();
    let mut after = None;
    for (key, value) in pairs {
        match (key.as_str(), all_filters) {
            ("after", _) => after = Some(parse_event_id("after", value)?),
            ("job", true) => {
                let id = value
                    .parse::<i64>()
                    .map_err(|_| invalid_query(format!("`job` must be a job id, not `{value}`")))?;
                filter.job = Some(JobId(id));
            }
            ("type", true) => filter.types.extend(crate::native::word_list::<EventType>(Some(value))?),
            ("status", true) => filter.statuses.extend(crate::native::word_list::<JobStatus>(Some(value))?),
            ("catalog", true) => {
                validate_catalog_name(value).map_err(|e| invalid_query(format!("`catalog`: {e}")))?;
                filter.catalog = Some(value.clone());
            }
            (other, _) => return Err(invalid_query(format!("unknown query parameter `{other}`"))),
        }
    }
    Ok((filter, after))
}

fn parse_event_id(field: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| invalid_query(format!("`{field}` must be an event id (an integer, 0 or more), not `{value}`")))
}

/// Where a stream starts: after `Last-Event-ID` when sent, else after `?after=`, else after the
/// events readable now (`GET /v1/events`) or from the first (a job's stream).
fn resume_point(headers: &HeaderMap, after: Option<i64>) -> Result<Option<i64>, ApiError> {
    match headers.get("last-event-id") {
        Some(value) => {
            let text = value.to_str().map_err(|_| invalid_query("`Last-Event-ID` must be an event id"))?;
            parse_event_id("Last-Event-ID", text).map(Some)
        }
        None => Ok(after),
    }
}

/// The project's job events, live: `id: <event id>`, `event: <type>`, `data: <event JSON>` per
/// message, and `: keep-alive` every 15 s. Starts after `Last-Event-ID` (or `after`), else with
/// the events that happen from now on.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery), responses(GuardErrors, (status = 200, description = "A stream of events: each `data` is an EventView", content_type = "text/event-stream", body = EventView), QueryErrors), security(("bearer" = [])))]
async fn stream_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (filter, after) = parse_query(&pairs, true)?;
    let signal = state.store.subscribe_events();
    let after = match resume_point(&headers, after)? {
        Some(after) => after,
        None => state.store.latest_event_id().await?,
    };
    Ok(sse(follow(state.store.clone(), caller.project_id, filter, after, signal, false)))
}

/// One job's events from its first (or after `Last-Event-ID`), live; the stream ends after the
/// job's last event (completed, failed or cancelled).
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "events", params(JobEventsQuery), responses(GuardErrors, (status = 200, description = "A stream of the job's events: each `data` is an EventView", content_type = "text/event-stream", body = EventView), QueryErrors, JobNotFound), security(("bearer" = [])))]
async fn stream_job_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (_, after) = parse_query(&pairs, false)?;
    // Scoping: another project's job is not found.
    state.store.get_job(caller.project_id, JobId(id)).await?;
    let signal = state.store.subscribe_events();
    let after = resume_point(&headers, after)?.unwrap_or(0);
    let filter = EventFilter { job: Some(JobId(id)), ..EventFilter::default() };
    Ok(sse(follow(state.store.clone(), caller.project_id, filter, after, signal, true)))
}

fn sse(events: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> Response {
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL).text("keep-alive")).into_response()
}

/// Counts the open streams (`catalogd_event_streams_open`) while it lives.
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        metrics::gauge!("catalogd_event_streams_open").increment(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("catalogd_event_streams_open").decrement(1.0);
    }
}

/// A stream's state between two messages.
struct Follow {
    store: Store,
    project: ProjectId,
    filter: EventFilter,
    after: i64,
    signal: watch::Receiver<i64>,
    pending: VecDeque<Event>,
    end_after_terminal: bool,
    ended: bool,
    _open: OpenStream,
}

fn follow(
    store: Store,
    project: ProjectId,
    filter: EventFilter,
    after: i64,
    signal: watch::Receiver<i64>,
    end_after_terminal: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let state = Follow {
        store,
        project,
        filter,
        after,
        signal,
        pending: VecDeque::new(),
        end_after_terminal,
        ended: false,
        _open: OpenStream::new(),
    };
    stream::unfold(state, |mut state| async move {
        let event = state.next().await?;
        Some((Ok(message(&event)), state))
    })
}

fn message(event: &Event) -> SseEvent {
    SseEvent::default().id(event.id.to_string()).event(event.event_type.as_str()).data(event_json(event))
}

impl Follow {
    /// The next event, waiting for it; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.after = event.id;
                if self.end_after_terminal && event.event_type.is_terminal() {
                    self.ended = true;
                }
                return Some(event);
            }
            if self.ended {
                return None;
            }
            // Marked seen before the read: a signal after it wakes the wait below.
            self.signal.borrow_and_update();
            // Every event up to this id is readable by the read that follows.
            let horizon = match self.store.readable_event_horizon().await {
                Ok(horizon) => horizon,
                Err(error) => {
                    tracing::warn!(%error, "event stream ended: cannot read events");
                    return None;
                }
            };
            match self.store.events_up_to(self.project, self.after, horizon, &self.filter, MAX_EVENTS_PER_READ).await {
                Ok(events) if !events.is_empty() => {
                    self.pending.extend(events);
                    continue;
                }
                // None matched up to the horizon: the next read starts there, so a filter that
                // rarely matches does not scan the same events again and again.
                Ok(_) => self.after = self.after.max(horizon),
                Err(error) => {
                    // The client resumes from the last id it got.
                    tracing::warn!(%error, "event stream ended: cannot read events");
                    return None;
                }
            }
            tokio::select! {
                changed = self.signal.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = self.store.shutting_down() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn types_repeat_or_come_comma_separated() {
        let query = pairs(&[("type", "job.created,job.failed"), ("type", "job.completed"), ("after", "7")]);
        let (filter, after) = parse_query(&query, true).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(filter.types, [EventType::Created, EventType::Failed, EventType::Completed]);
        assert_eq!(after, Some(7));
        assert!(parse_query(&pairs(&[("type", "completed")]), true).is_err());
        assert!(parse_query(&pairs(&[("job", "1")]), false).is_err(), "a job's stream takes no filter");
        assert!(parse_query(&pairs(&[("after", "-1")]), true).is_err());
    }
}
