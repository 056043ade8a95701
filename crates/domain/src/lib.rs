//! catalog-domain: catalogd's rules, with no I/O.
//!
//! Everything the service decides about its input lives here once, as data and pure functions:
//! item id rules of every dialect and their limits, what every backend can store (`storable`),
//! Klaviyo's compound ids, the catalog name rule,
//! the job lifecycle and each dialect's status words, the order in which a catalog's jobs take
//! effect (`order`), which project and catalog a worker serves next (`turns`), which of a catalog's
//! due jobs are applied together (`autobatch`), the rules of applying a job's inputs (`apply`), and
//! the table of error codes. The store, the
//! HTTP layer and the client all call into this crate, so a rule changes in one place.
//!
//! This crate depends on no I/O crate (no tokio, sqlx, axum, hyper, reqwest); `cargo xtask ci`
//! checks that.

// Unit tests run with std's prelude; the library itself never sees it.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod apply;
pub mod autobatch;
pub mod braze_fields;
pub mod catalog;
pub mod chunk;
pub mod error;
pub mod ids;
pub mod job;
pub mod klaviyo;
pub mod order;
pub mod rate;
pub mod storable;
pub mod time;
pub mod turns;

pub use catalog::{validate_catalog_name, CatalogNameError, MAX_CATALOG_NAME_LEN};
pub use chunk::{chunk_count, chunk_ranges, chunks};
pub use error::ErrorCode;
pub use ids::{
    body_too_large, braze_errors, check_id, validate_ids, BatchProblem, BrazeError, Dialect, DialectLimits, IdProblem,
    IdVerdict, RawId,
};
pub use job::{JobEvent, JobKind, JobState, JobStatus, TransitionError};
pub use klaviyo::{CompoundId, CompoundIdError};
pub use storable::{Unstorable, MAX_ID_BYTES, MAX_ITEM_BYTES};
