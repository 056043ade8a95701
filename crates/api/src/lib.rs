//! catalog-api: the only crate that knows HTTP.
//!
//! It owns the axum router of the native API (`/v1/...`) and of the vendor facades, API key
//! authentication and scopes, rate limits, body limits, the error envelope, metrics, the OpenAPI
//! document, the operator console at `GET /`, and the `catalogd` binary (`serve` and `admin`).
//! Routes stay thin: extract, authorize, call catalog-store's service layer, render.

pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod facades;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod native;
pub mod serve;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod views;
pub mod webhook_sender;
pub mod webhooks;

pub use app::router;
pub use state::AppState;
