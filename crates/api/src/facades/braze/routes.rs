//! Braze's routes, each with and without the trailing slash its clients send (Segment's batched
//! destination calls `/catalogs/{catalog_name}/items/`), and Braze's envelope for every path or
//! method under `/catalogs` that is not served.

use super::auth::RateHeaders;
use super::error::Failure;
use super::items::{Create, Delete, Edit, Replace};
use super::{catalogs, items};
use crate::limits::Policy;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{any, delete, get, post, MethodRouter};
use axum::Router;

/// Braze's routes.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    let served: [(&str, MethodRouter<AppState>); 8] = [
        ("/catalogs", get(catalogs::list_catalogs).post(catalogs::create_catalog)),
        ("/catalogs/{catalog_name}", delete(catalogs::delete_catalog)),
        (
            "/catalogs/{catalog_name}/items",
            get(items::list_items)
                .delete(items::bulk::<Delete>)
                .post(items::bulk::<Create>)
                .patch(items::bulk::<Edit>)
                .put(items::bulk::<Replace>),
        ),
        (
            "/catalogs/{catalog_name}/items/{item_id}",
            get(items::get_item)
                .post(items::single::<Create>)
                .put(items::single::<Replace>)
                .patch(items::single::<Edit>)
                .delete(items::single::<Delete>),
        ),
        ("/catalogs/{catalog_name}/fields", post(catalogs::create_fields)),
        ("/catalogs/{catalog_name}/fields/{field_name}", delete(catalogs::delete_field)),
        ("/catalogs/{catalog_name}/selections", post(catalogs::create_selection)),
        ("/catalogs/{catalog_name}/selections/{selection_name}", delete(catalogs::delete_selection)),
    ];
    for (path, methods) in served {
        router = router.route(path, methods.clone()).route(&format!("{path}/"), methods);
    }
    router
        // Deeper paths under a catalog that no route serves (a catch-all beside `{catalog_name}`
        // itself would conflict with the routes above).
        .route("/catalogs/{catalog_name}/{*rest}", any(route_not_found))
        .method_not_allowed_fallback(method_not_allowed)
}

/// A path under `/catalogs` that is not served: 404 in Braze's envelope, with the rate-limit
/// headers every Braze answer carries (nothing is spent: the request is not authenticated).
async fn route_not_found(State(state): State<AppState>) -> Response {
    unauthenticated_answer(&state, Failure::route_not_found())
}

/// A method the route does not serve: 405 in Braze's envelope.
async fn method_not_allowed(State(state): State<AppState>) -> Response {
    unauthenticated_answer(&state, Failure::method_not_allowed())
}

fn unauthenticated_answer(state: &AppState, failure: Failure) -> Response {
    let mut response = failure.into_response();
    if let Some(rate) = RateHeaders::untouched(state, Policy::BrazeSync) {
        rate.apply(&mut response);
    }
    response
}
