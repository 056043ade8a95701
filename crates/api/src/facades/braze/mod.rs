//! Braze's catalog API (contracts/braze.md, docs/compat/braze.md): catalogs, their fields and selections,
//! the asynchronous bulk item endpoints, the synchronous single-item endpoints and the item list.
//!
//! Every answer, errors included, carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (UTC epoch seconds); a 429 adds `Retry-After`. Every error, an unknown
//! route or method under `/catalogs` included, uses Braze's envelope,
//! `{"errors":[{"id","message","parameters","parameter_values"}],"message":"Invalid Request"}`,
//! listing every distinct problem found and, for item problems, the ids of the items concerned.
//!
//! The quotas are Braze's groups: the asynchronous item endpoints (`braze-async`), the
//! synchronous item endpoints and the item list (`braze-sync-items`), catalog management
//! (`braze-sync`) and the field and selection endpoints (`braze-fields`).
//!
//! | file | what |
//! |---|---|
//! | `routes.rs` | the router, unknown paths and methods |
//! | `auth.rs` | key, quota, permission, rate-limit headers |
//! | `items.rs` | the item endpoints and the item checks |
//! | `catalogs.rs` | catalogs, their declared fields and their selections |
//! | `error.rs` | the envelope and every Braze error id and message |

mod auth;
mod catalogs;
mod error;
mod items;
mod routes;

pub use routes::routes;
