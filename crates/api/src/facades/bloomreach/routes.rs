//! Bloomreach's routes under `/data/v2/projects/{project_id}/catalogs`, each with and without a
//! trailing slash, and Bloomreach's envelope for every path or method under `/data` that is not
//! served.

use super::error::Failure;
use super::items::{Delete, Replace, Update};
use super::{catalogs, items};
use crate::state::AppState;
use axum::routing::{any, get, post, put, MethodRouter};
use axum::Router;

/// Bloomreach's routes.
pub fn routes() -> Router<AppState> {
    const BASE: &str = "/data/v2/projects/{project_id}/catalogs";
    let served: [(String, MethodRouter<AppState>); 7] = [
        (BASE.to_owned(), post(catalogs::create_catalog).get(catalogs::list_catalogs)),
        (
            format!("{BASE}/{{catalog_id}}"),
            get(catalogs::get_catalog).put(catalogs::update_catalog).delete(catalogs::delete_catalog),
        ),
        (
            format!("{BASE}/{{catalog_id}}/items"),
            put(items::update::<false>).get(items::list_items).delete(items::delete_all_items),
        ),
        (format!("{BASE}/{{catalog_id}}/items/partial-update"), post(items::update::<true>)),
        (format!("{BASE}/{{catalog_id}}/items/bulk-delete"), post(items::bulk_delete).delete(items::bulk_delete)),
        (
            format!("{BASE}/{{catalog_id}}/items/{{item_id}}"),
            put(items::single_item::<Replace>).delete(items::single_item::<Delete>),
        ),
        (format!("{BASE}/{{catalog_id}}/items/{{item_id}}/partial-update"), post(items::single_item::<Update>)),
    ];
    let mut router = Router::new();
    for (path, methods) in served {
        router = router.route(&path, methods.clone()).route(&format!("{path}/"), methods);
    }
    router.route("/data/{*rest}", any(not_found)).method_not_allowed_fallback(method_not_allowed)
}

/// A path under `/data` that is not served: Bloomreach's 404.
async fn not_found() -> Failure {
    Failure::not_found()
}

/// A method the route does not serve: 405 in the `_global` envelope.
async fn method_not_allowed() -> Failure {
    Failure::method_not_allowed()
}
