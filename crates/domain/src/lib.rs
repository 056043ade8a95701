#![doc = include_str!("../README.md")]
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
pub mod events;
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
    body_too_large, check_id, validate_ids, BatchProblem, Dialect, DialectLimits, IdProblem, IdVerdict, RawId,
};
pub use job::{JobEvent, JobKind, JobState, JobStatus, TransitionError};
pub use klaviyo::{CompoundId, CompoundIdError};
pub use storable::{Unstorable, MAX_ID_BYTES, MAX_ITEM_BYTES};
