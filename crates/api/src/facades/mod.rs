//! The vendor dialects: thin translations over the same service layer as the native API.
//!
//! Each module parses its dialect (paths, auth header, bodies), calls catalog-store, and renders
//! the answer in its dialect (status codes, envelopes, time formats). No business rule lives
//! here: validation comes from catalog-domain, jobs from catalog-store.

pub mod bloomreach;
pub mod braze;
pub mod klaviyo;
pub mod openreplay;

use crate::state::AppState;
use axum::Router;

/// Every facade's routes, merged.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(braze::routes())
        .merge(klaviyo::routes())
        .merge(bloomreach::routes())
        .merge(openreplay::routes())
}
