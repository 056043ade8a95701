//! The typed client: one method per native route, each with the retry policy.

use crate::error::{Error, Result};
use crate::retry::{random_u64, RetryPolicy};
use crate::types::{
    BulkResponse, Catalog, Category, CategoryInput, Item, ItemInput, Job, JobError, JobFilter, JobOptions, Page,
};
use catalog_domain::validate_catalog_name;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest the server holds a `GET /v1/jobs/{id}?wait=` (`MAX_WAIT_SECS` on the server).
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Extra time a long poll's HTTP timeout allows beyond the hold, for the answer to travel.
const LONG_POLL_GRACE: Duration = Duration::from_secs(30);

/// A client of one catalogd server, for one API key. Cheap to clone: clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: Option<HeaderValue>,
    retry: RetryPolicy,
    timeout: Duration,
    /// Whether a connection that cannot be opened is retried before the server has answered once
    /// ([`ClientBuilder::retry_before_first_answer`]).
    retry_unreached: bool,
    /// Set at the first answer from the server.
    answered: AtomicBool,
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    retry_unreached: bool,
}

impl ClientBuilder {
    /// The bearer token (an API key from `catalogd admin key create`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How failed requests are repeated (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Time limit of one request, answer included (default 60 s). Long polls get their hold
    /// time on top.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether a connection that cannot be opened is retried before the server has answered this
    /// client once (default: yes, as any connection failure). A command line sets `false`: until
    /// the first answer, a refused connection means a wrong URL or a server that is down, which
    /// the user should hear at once rather than after a minute of backoff; after it, a refused
    /// connection is a restart, and it is retried.
    pub fn retry_before_first_answer(mut self, retry: bool) -> Self {
        self.retry_unreached = retry;
        self
    }

    /// Time limit to open a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `User-Agent` header (default `catalog-client/VERSION`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The client; fails on a base URL that is not `http(s)://...` or a token that is not a valid
    /// header value.
    pub fn build(self) -> Result<Client> {
        let base = Url::parse(&self.base_url)
            .map_err(|e| Error::InvalidInput(format!("server URL `{}`: {e}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::InvalidInput(format!("server URL `{}` must be http:// or https://", self.base_url)));
        }
        let auth = match self.token {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| Error::InvalidInput("the token has characters a header cannot carry".into()))?;
                // Keeps the token out of reqwest's debug output.
                value.set_sensitive(true);
                Some(value)
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                retry: self.retry,
                timeout: self.timeout,
                retry_unreached: self.retry_unreached,
                answered: AtomicBool::new(false),
            }),
        })
    }
}

/// A retry about to happen, for progress displays.
#[derive(Debug)]
pub struct RetryNotice<'a> {
    /// Retry number, from 1.
    pub retry: u32,
    /// How long the client waits before it.
    pub delay: Duration,
    /// The failure that caused it.
    pub error: &'a Error,
}

/// One request as the retry loop repeats it. The body is serialized once, so every attempt sends
/// the same bytes (the server compares a replayed idempotency key's body with the first one).
pub(crate) struct Call<'a> {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&'a str>,
    /// Whether sending it twice is harmless (GETs, and POSTs carrying an idempotency key).
    idempotent: bool,
    timeout: Duration,
}

/// A successful answer.
pub(crate) struct Answer {
    status: u16,
    body: Vec<u8>,
    /// Tries it took, the successful one included.
    pub(crate) attempts: u32,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode { status: self.status, message: e.to_string() })
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: EnvelopeError,
}

#[derive(Deserialize)]
struct EnvelopeError {
    code: String,
    message: String,
    #[serde(default)]
    details: Option<Value>,
}

#[derive(Deserialize)]
struct JobEnvelope {
    job: Job,
}

/// Which bulk route a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BulkRoute {
    Delete,
    Upsert,
    Patch,
    CategoryUpdate,
    CategoryUpsert,
    CategoryDelete,
}

impl BulkRoute {
    /// The last two path segments: the collection and the action.
    fn segments(self) -> [&'static str; 2] {
        match self {
            BulkRoute::Delete => ["items", "bulk-delete"],
            BulkRoute::Upsert => ["items", "bulk-upsert"],
            BulkRoute::Patch => ["items", "bulk-patch"],
            BulkRoute::CategoryUpdate => ["categories", "bulk-update"],
            BulkRoute::CategoryUpsert => ["categories", "bulk-upsert"],
            BulkRoute::CategoryDelete => ["categories", "bulk-delete"],
        }
    }

    /// The body's key for the inputs.
    pub(crate) fn field(self) -> &'static str {
        match self {
            BulkRoute::Delete | BulkRoute::CategoryDelete => "ids",
            BulkRoute::Upsert | BulkRoute::Patch => "items",
            BulkRoute::CategoryUpdate | BulkRoute::CategoryUpsert => "categories",
        }
    }
}

/// How to wait for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up after this long (`None`: wait as long as it takes).
    pub timeout: Option<Duration>,
    /// Longest one long poll holds (at most [`MAX_WAIT`]); shorter means more frequent progress
    /// updates.
    pub poll: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions { timeout: None, poll: MAX_WAIT }
    }
}

impl Client {
    /// A builder for a client of the server at `base_url` (e.g. `http://127.0.0.1:8080`; a path
    /// prefix is kept).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry_unreached: true,
            user_agent: concat!("catalog-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// A client with the default settings.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Result<Client> {
        Client::builder(base_url).token(token).build()
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    // -----------------------------------------------------------------------------------------
    // Plumbing

    /// The URL of `segments` under the base; each segment is percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidInput("the server URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    pub(crate) fn get(&self, url: Url) -> Call<'static> {
        Call {
            method: Method::GET,
            url,
            body: None,
            idempotency_key: None,
            idempotent: true,
            timeout: self.inner.timeout,
        }
    }

    pub(crate) fn post(&self, url: Url, body: &Value) -> Result<Call<'static>> {
        let body = serde_json::to_vec(body).map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok(Call {
            method: Method::POST,
            url,
            body: Some(body),
            idempotency_key: None,
            idempotent: false,
            timeout: self.inner.timeout,
        })
    }

    /// Sends `call`, repeating it per the retry policy; `on_retry` hears of each retry.
    pub(crate) async fn execute(
        &self,
        call: &Call<'_>,
        on_retry: &mut (dyn FnMut(&RetryNotice<'_>) + Send),
    ) -> Result<Answer> {
        let mut failures = 0u32;
        loop {
            let error = match self.send_once(call).await {
                Ok((status, body)) => return Ok(Answer { status, body, attempts: failures + 1 }),
                Err(error) => error,
            };
            failures += 1;
            let never_reached =
                !self.inner.retry_unreached && error.is_connect() && !self.inner.answered.load(Ordering::Relaxed);
            let retryable = !never_reached
                && if call.idempotent { error.is_retryable_idempotent() } else { error.is_retryable_unsent() };
            if !retryable || !self.inner.retry.allows_retry(failures) {
                return Err(error);
            }
            let delay = self.inner.retry.delay(failures, error.retry_after(), random_u64());
            on_retry(&RetryNotice { retry: failures, delay, error: &error });
            tokio::time::sleep(delay).await;
        }
    }

    /// Opens an event stream at `url`, after `last_event_id`: the response, its body unread. No
    /// timeout: a stream lasts (the reader bounds how long it may stay silent).
    pub(crate) async fn open_stream(&self, url: Url, last_event_id: Option<i64>) -> Result<reqwest::Response> {
        let mut request = self.inner.http.get(url).header("accept", "text/event-stream");
        if let Some(auth) = &self.inner.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.map_err(Error::Transport)?;
        self.inner.answered.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(Error::Transport)?.to_vec();
        Err(api_error(status, retry_after, &body))
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<(u16, Vec<u8>)> {
        let mut request = self.inner.http.request(call.method.clone(), call.url.clone()).timeout(call.timeout);
        if let Some(auth) = &self.inner.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(key) = call.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        let response = request.send().await.map_err(Error::Transport)?;
        self.inner.answered.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(Error::Transport)?.to_vec();
        if (200..300).contains(&status) {
            Ok((status, body))
        } else {
            Err(api_error(status, retry_after, &body))
        }
    }

    pub(crate) async fn call_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        self.execute(&call, &mut |_| {}).await?.json()
    }

    // -----------------------------------------------------------------------------------------
    // Health

    /// `GET /healthz`: Ok when the server is up.
    pub async fn health(&self) -> Result<()> {
        let url = self.url(&["healthz"])?;
        self.execute(&self.get(url), &mut |_| {}).await.map(|_| ())
    }

    // -----------------------------------------------------------------------------------------
    // Catalogs

    /// `POST /v1/catalogs`: creates a catalog. The name is checked with the domain rule first.
    pub async fn create_catalog(&self, name: &str, description: Option<&str>) -> Result<Catalog> {
        validate_catalog_name(name).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut body = json!({"name": name});
        if let Some(description) = description {
            body["description"] = Value::String(description.to_owned());
        }
        self.call_json(self.post(self.url(&["v1", "catalogs"])?, &body)?).await
    }

    /// `GET /v1/catalogs`: every catalog of the project, following the pages.
    pub async fn list_catalogs(&self) -> Result<Vec<Catalog>> {
        let mut catalogs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(&["v1", "catalogs"])?;
            page_query(&mut url, Some(1_000), cursor.as_deref());
            let page: Page<Catalog> = self.call_json(self.get(url)).await?;
            catalogs.extend(page.data);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(catalogs),
            }
        }
    }

    /// `GET /v1/catalogs/{catalog}`, with its item count.
    pub async fn get_catalog(&self, catalog: &str) -> Result<Catalog> {
        self.call_json(self.get(self.url(&["v1", "catalogs", catalog])?)).await
    }

    /// `DELETE /v1/catalogs/{catalog}`: starts the job that deletes it with its items.
    pub async fn delete_catalog(&self, catalog: &str) -> Result<Job> {
        let url = self.url(&["v1", "catalogs", catalog])?;
        let call = Call { method: Method::DELETE, ..self.get(url) };
        // Not idempotent as far as the client knows: a second delete could start a second job.
        let call = Call { idempotent: false, ..call };
        let envelope: JobEnvelope = self.call_json(call).await?;
        Ok(envelope.job)
    }

    // -----------------------------------------------------------------------------------------
    // Items and categories

    /// `GET /v1/catalogs/{catalog}/items`: one page of items, in id order.
    pub async fn list_items(&self, catalog: &str, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Item>> {
        let mut url = self.url(&["v1", "catalogs", catalog, "items"])?;
        page_query(&mut url, limit, cursor);
        self.call_json(self.get(url)).await
    }

    /// `GET /v1/catalogs/{catalog}/items/{id}`.
    pub async fn get_item(&self, catalog: &str, id: &str) -> Result<Item> {
        self.call_json(self.get(self.url(&["v1", "catalogs", catalog, "items", id])?)).await
    }

    /// `GET /v1/catalogs/{catalog}/categories`: one page of categories.
    pub async fn list_categories(
        &self,
        catalog: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Category>> {
        let mut url = self.url(&["v1", "catalogs", catalog, "categories"])?;
        page_query(&mut url, limit, cursor);
        self.call_json(self.get(url)).await
    }

    /// `POST /v1/catalogs/{catalog}/items/bulk-delete`: one request, as given (at most 10,000
    /// ids). See [`Client::bulk_delete`] for any number of ids with validation and retries.
    pub async fn submit_bulk_delete(
        &self,
        catalog: &str,
        ids: &[String],
        options: &JobOptions,
    ) -> Result<BulkResponse> {
        self.submit_bulk(catalog, BulkRoute::Delete, serde_json::to_value(ids), options).await
    }

    /// `POST /v1/catalogs/{catalog}/items/bulk-upsert`: one request, as given (at most 10,000
    /// items). See [`Client::bulk_upsert`].
    pub async fn submit_bulk_upsert(
        &self,
        catalog: &str,
        items: &[ItemInput],
        options: &JobOptions,
    ) -> Result<BulkResponse> {
        self.submit_bulk(catalog, BulkRoute::Upsert, serde_json::to_value(items), options).await
    }

    /// `POST /v1/catalogs/{catalog}/items/bulk-patch`: one request, as given (at most 10,000
    /// items). See [`Client::bulk_patch`].
    pub async fn submit_bulk_patch(
        &self,
        catalog: &str,
        items: &[ItemInput],
        options: &JobOptions,
    ) -> Result<BulkResponse> {
        self.submit_bulk(catalog, BulkRoute::Patch, serde_json::to_value(items), options).await
    }

    /// `POST /v1/catalogs/{catalog}/categories/bulk-update`: changes existing categories (at most
    /// 10,000); a missing category is a per-item failure of the job.
    pub async fn submit_category_update(
        &self,
        catalog: &str,
        categories: &[CategoryInput],
        options: &JobOptions,
    ) -> Result<BulkResponse> {
        self.submit_bulk(catalog, BulkRoute::CategoryUpdate, serde_json::to_value(categories), options).await
    }

    /// `POST /v1/catalogs/{catalog}/categories/bulk-upsert`: creates or replaces categories.
    pub async fn submit_category_upsert(
        &self,
        catalog: &str,
        categories: &[CategoryInput],
        options: &JobOptions,
    ) -> Result<BulkResponse> {
        self.submit_bulk(catalog, BulkRoute::CategoryUpsert, serde_json::to_value(categories), options).await
    }

    /// `POST /v1/catalogs/{catalog}/categories/bulk-delete`: deletes categories by id.
    pub async fn submit_category_delete(
        &self,
        catalog: &str,
        ids: &[String],
        options: &JobOptions,
    ) -> Result<BulkResponse> {
        self.submit_bulk(catalog, BulkRoute::CategoryDelete, serde_json::to_value(ids), options).await
    }

    async fn submit_bulk(
        &self,
        catalog: &str,
        route: BulkRoute,
        inputs: serde_json::Result<Value>,
        options: &JobOptions,
    ) -> Result<BulkResponse> {
        let inputs = inputs.map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut body = Map::new();
        body.insert(route.field().to_owned(), inputs);
        insert_job_fields(&mut body, &options.start_at, &options.description, &options.reference_id);
        if options.atomic {
            body.insert("atomic".to_owned(), Value::Bool(true));
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let (response, _attempts) =
            self.submit_bulk_bytes(catalog, route, bytes, options.idempotency_key.as_deref(), &mut |_| {}).await?;
        Ok(response)
    }

    /// Posts an already serialized bulk body; with a key, every failure worth retrying is
    /// retried (the key makes a repeat harmless), without one only those that changed nothing.
    pub(crate) async fn submit_bulk_bytes(
        &self,
        catalog: &str,
        route: BulkRoute,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
        on_retry: &mut (dyn FnMut(&RetryNotice<'_>) + Send),
    ) -> Result<(BulkResponse, u32)> {
        let [collection, action] = route.segments();
        let url = self.url(&["v1", "catalogs", catalog, collection, action])?;
        let call = Call {
            method: Method::POST,
            url,
            body: Some(body),
            idempotency_key,
            idempotent: idempotency_key.is_some(),
            timeout: self.inner.timeout,
        };
        let answer = self.execute(&call, on_retry).await?;
        let mut response: BulkResponse = answer.json()?;
        response.replayed = answer.status == 200;
        Ok((response, answer.attempts))
    }

    // -----------------------------------------------------------------------------------------
    // Jobs

    /// `GET /v1/jobs`: one page of jobs matching `filter`, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Job>> {
        let mut url = self.url(&["v1", "jobs"])?;
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !filter.statuses.is_empty() {
            pairs.push(("status", filter.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")));
        }
        if !filter.kinds.is_empty() {
            pairs.push(("kind", filter.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")));
        }
        for (name, value) in [
            ("catalog", &filter.catalog),
            ("created_after", &filter.created_after),
            ("created_before", &filter.created_before),
        ] {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        if !pairs.is_empty() {
            // Opened only when needed: an opened, empty query would leave a bare `?`.
            url.query_pairs_mut().extend_pairs(pairs);
        }
        page_query(&mut url, limit, cursor);
        self.call_json(self.get(url)).await
    }

    /// Every job matching `filter`, following the cursor to the last page.
    pub async fn list_all_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_jobs(filter, Some(1_000), cursor.as_deref()).await?;
            jobs.extend(page.data);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(jobs),
            }
        }
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn get_job(&self, id: i64) -> Result<Job> {
        self.call_json(self.get(self.url(&["v1", "jobs", &id.to_string()])?)).await
    }

    /// `GET /v1/jobs/{id}?wait=SECONDS`: the server holds the request until the job is finished or
    /// `hold` (at most [`MAX_WAIT`], rounded up to whole seconds) has passed.
    pub async fn get_job_held(&self, id: i64, hold: Duration) -> Result<Job> {
        let secs = hold.min(MAX_WAIT).as_secs_f64().ceil().max(1.0) as u64;
        let mut url = self.url(&["v1", "jobs", &id.to_string()])?;
        url.query_pairs_mut().append_pair("wait", &secs.to_string());
        let call = Call { timeout: Duration::from_secs(secs) + LONG_POLL_GRACE, ..self.get(url) };
        self.call_json(call).await
    }

    /// Waits for the job to finish, with the server's long poll, and returns it.
    pub async fn wait(&self, id: i64) -> Result<Job> {
        self.wait_with(id, WaitOptions::default(), |_| {}).await
    }

    /// Waits for the job to finish; `on_update` sees the job after every poll (for progress).
    /// Fails with [`Error::WaitTimeout`] when `options.timeout` passes first.
    pub async fn wait_with(&self, id: i64, options: WaitOptions, mut on_update: impl FnMut(&Job)) -> Result<Job> {
        let started = Instant::now();
        let poll = options.poll.clamp(Duration::from_secs(1), MAX_WAIT);
        loop {
            let hold = match options.timeout {
                None => poll,
                Some(timeout) => poll.min(timeout.saturating_sub(started.elapsed())),
            };
            let asked = Instant::now();
            let job = if hold.is_zero() { self.get_job(id).await? } else { self.get_job_held(id, hold).await? };
            on_update(&job);
            if job.is_terminal() {
                return Ok(job);
            }
            if options.timeout.is_some_and(|timeout| started.elapsed() >= timeout) {
                return Err(Error::WaitTimeout { job_id: id, status: job.status });
            }
            // A server that answers before the hold is over (one that ignores `wait`, or wakes on
            // progress) must not turn this loop into a busy poll.
            let floor = Duration::from_millis(250);
            if asked.elapsed() < floor {
                tokio::time::sleep(floor - asked.elapsed()).await;
            }
        }
    }

    /// `GET /v1/jobs/{id}/errors`: one page of the job's per-input failures.
    pub async fn job_errors(&self, id: i64, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<JobError>> {
        let mut url = self.url(&["v1", "jobs", &id.to_string(), "errors"])?;
        page_query(&mut url, limit, cursor);
        self.call_json(self.get(url)).await
    }

    /// `POST /v1/jobs/{id}/cancel`: cancels the job (a running one stops at its next chunk).
    pub async fn cancel_job(&self, id: i64) -> Result<Job> {
        let url = self.url(&["v1", "jobs", &id.to_string(), "cancel"])?;
        self.call_json(self.post(url, &json!({}))?).await
    }
}

pub(crate) fn page_query(url: &mut Url, limit: Option<u32>, cursor: Option<&str>) {
    if limit.is_none() && cursor.is_none() {
        return;
    }
    let mut query = url.query_pairs_mut();
    if let Some(limit) = limit {
        query.append_pair("limit", &limit.to_string());
    }
    if let Some(cursor) = cursor {
        query.append_pair("cursor", cursor);
    }
}

/// Adds the optional job fields to a bulk body.
pub(crate) fn insert_job_fields(
    body: &mut Map<String, Value>,
    start_at: &Option<String>,
    description: &Option<String>,
    reference_id: &Option<String>,
) {
    for (name, value) in [("start_at", start_at), ("description", description), ("reference_id", reference_id)] {
        if let Some(value) = value {
            body.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
}

/// The integer `Retry-After` seconds of a response.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The error of a non-2xx answer: the server's envelope when there is one.
fn api_error(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Error {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => Error::Api {
            status,
            code: envelope.error.code,
            message: envelope.error.message,
            details: envelope.error.details,
            retry_after,
        },
        Err(_) => {
            // Not ours (a proxy's page, an empty body): keep a bounded excerpt for the message.
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.chars().take(200).collect();
            let message = if excerpt.trim().is_empty() { format!("HTTP {status}") } else { excerpt };
            Error::Api { status, code: format!("http_{status}"), message, details: None, retry_after }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::builder(base).token("t").build().expect("client builds")
    }

    #[test]
    fn urls_encode_segments_and_keep_a_base_path() {
        let c = client("http://127.0.0.1:8080");
        assert_eq!(
            c.url(&["v1", "catalogs", "a b/c"]).expect("url").as_str(),
            "http://127.0.0.1:8080/v1/catalogs/a%20b%2Fc"
        );
        let c = client("http://example.test/prefix/");
        assert_eq!(c.url(&["v1", "jobs"]).expect("url").as_str(), "http://example.test/prefix/v1/jobs");
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for base in ["", "not a url", "ftp://x", "mailto:a@b"] {
            assert!(matches!(Client::builder(base).build(), Err(Error::InvalidInput(_))), "{base}");
        }
    }

    #[test]
    fn error_envelope_is_read() {
        let body = br#"{"error":{"code":"catalog_not_found","message":"no catalog `x`","details":null}}"#;
        let error = api_error(404, None, body);
        assert_eq!(error.code(), Some("catalog_not_found"));
        assert_eq!(error.status(), Some(404));
        assert!(!error.is_retryable_idempotent());
    }

    #[test]
    fn rate_limit_is_retryable_with_its_retry_after() {
        let body = br#"{"error":{"code":"rate_limited","message":"slow down"}}"#;
        let error = api_error(429, Some(Duration::from_secs(3)), body);
        assert!(error.is_retryable_idempotent() && error.is_retryable_unsent());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        let unavailable = api_error(503, Some(Duration::from_secs(1)), b"");
        assert!(unavailable.is_retryable_idempotent());
        // A 503 may come after the work was done: only an idempotent request repeats it.
        assert!(!unavailable.is_retryable_unsent());
        assert_eq!(unavailable.code(), Some("http_503"));
    }

    #[test]
    fn retry_after_takes_integer_seconds_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn page_query_is_added_only_when_asked() {
        let mut url = Url::parse("http://h/v1/jobs").expect("url");
        page_query(&mut url, None, None);
        assert_eq!(url.as_str(), "http://h/v1/jobs");
        page_query(&mut url, Some(10), Some("abc=="));
        assert_eq!(url.as_str(), "http://h/v1/jobs?limit=10&cursor=abc%3D%3D");
    }
}
