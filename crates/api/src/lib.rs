//! catalog-api: the only crate that knows HTTP.
//!
//! It will own the axum router of the native API (`/v1/...`) and of the vendor facades (Braze,
//! Bloomreach, Klaviyo, OpenReplay), authentication by API key and scope, rate limits, body limits,
//! the error envelope, the OpenAPI document, and the `catalogd` binary (`serve` and `admin`).
//! Routes stay thin: extract, authorize, call catalog-store's service layer, render.
