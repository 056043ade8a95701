//! The operator console: a page at `GET /` and its two assets under `/console/`, compiled into
//! the binary (plain HTML, CSS and JavaScript; no build step, nothing fetched from elsewhere).
//!
//! The page is a client of the native API like any other: the operator types a key into it, and
//! it calls `/v1` with that key. So the server needs no session, no cookie and no route of its own
//! beyond these three; the page routes by the URL's hash. See docs/CONSOLE.md.
//!
//! These routes are not in the OpenAPI document: they serve a page, not the API.

use crate::state::AppState;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Everything the page may load or call: itself, and the API of the server that served it. No
/// inline script or style, no frame around it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /` and the console's assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/console/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/console/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
}

/// One asset with its type and the headers that keep the page to itself. `no-cache` makes the
/// browser revalidate, so a new binary's console is seen at the next load.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::APP_JS;
    use catalog_domain::JobKind;

    #[test]
    fn the_kind_filter_offers_every_job_kind_in_order() {
        let start = APP_JS.find("const KINDS = [").map(|at| at + "const KINDS = [".len());
        let list = start.and_then(|start| APP_JS[start..].find("];").map(|end| &APP_JS[start..start + end]));
        let listed: Vec<&str> =
            list.unwrap_or_default().split(',').map(|word| word.trim().trim_matches('\'')).collect();
        let kinds: Vec<&str> = JobKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(listed, kinds);
    }
}
