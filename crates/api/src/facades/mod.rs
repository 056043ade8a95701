//! The vendor dialects: thin translations over the same service layer as the native API.
//!
//! Each module parses its dialect (paths, auth header, bodies), calls catalog-store, and renders
//! the answer in its dialect (status codes, envelopes, time formats). No business rule lives
//! here: validation comes from catalog-domain, jobs from catalog-store.

/// Declares, for each variant of `$action` (a facade's enum of what an endpoint does), an empty
/// type implementing `$trait` with that variant as its `ACTION`, so that one generic handler
/// serves the route of each (Braze's `bulk::<Delete>`). Only types: the wording stays the facade's.
macro_rules! action_types {
    ($trait:ident: $action:ident { $($name:ident),* }) => {
        #[doc = concat!("[`", stringify!($action), "`] as a type, so that one generic handler serves each route.")]
        pub(super) trait $trait {
            /// The action.
            const ACTION: $action;
        }
        $(
            #[doc = concat!("[`", stringify!($action), "::", stringify!($name), "`] as a type.")]
            pub(super) enum $name {}
            impl $trait for $name {
                const ACTION: $action = $action::$name;
            }
        )*
    };
}
pub(crate) use action_types;

pub mod bloomreach;
pub mod braze;
pub mod klaviyo;
pub mod openreplay;

use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::Router;
use serde::de::value::Error as NoError;
use serde::de::{DeserializeOwned, IntoDeserializer};
use std::convert::Infallible;

/// Every facade's routes, merged.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(braze::routes())
        .merge(klaviyo::routes())
        .merge(bloomreach::routes())
        .merge(openreplay::routes())
}

/// A request to a facade's route as its handler takes it: the state, the path parameters (`None`
/// when they do not parse; each facade answers that in its own words), and the request, whose body
/// is read only once the facade's guard has passed. One extractor, so that a handler's signature is
/// one line and its guard gets everything it checks.
pub(crate) struct Call<P> {
    pub(crate) state: AppState,
    pub(crate) path: Option<P>,
    pub(crate) request: Request,
}

impl<P: DeserializeOwned + Send> FromRequest<AppState> for Call<P> {
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Infallible> {
        let (mut parts, body) = request.into_parts();
        let path = match Path::<P>::from_request_parts(&mut parts, state).await {
            Ok(Path(path)) => Some(path),
            // A route without parameters: `Call<()>`.
            Err(PathRejection::MissingPathParams(_)) => {
                P::deserialize(IntoDeserializer::<NoError>::into_deserializer(())).ok()
            }
            Err(_) => None,
        };
        Ok(Call { state: state.clone(), path, request: Request::from_parts(parts, body) })
    }
}
