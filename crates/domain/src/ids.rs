//! Item id rules of every dialect, with their limits as data.
//!
//! A facade turns each item of a request into a [`RawId`] (how it saw the id in its JSON) and calls
//! [`validate_ids`] once per request. The answer is either a [`BatchProblem`] (the whole request is
//! refused, no job is created) or one [`IdVerdict`] per item, in request order. Each facade then
//! decides what a bad id means in its dialect (DESIGN §3): native reports it per item (or rejects
//! the request when asked to), Braze answers 400 with every error id found, Bloomreach reports it
//! per item and Klaviyo answers a JSON:API 400 ([`IdProblem::klaviyo_detail`]). The facade only
//! renders, in its vendor's words (which it owns), from the problem and its [`IdProblem::reason`];
//! the rules are here.
//!
//! Decisions no contract documents:
//! - An empty batch is refused with [`BatchProblem::Empty`] in every dialect: it would create a job
//!   that does nothing.
//! - The item count is checked before the ids, so a request that is too large gets one answer
//!   however bad its ids are.
//! - Braze's body limit is 10 MB like native's: braze.md sets none, and 50 items of fields of at most
//!   5,000 characters each fit in it.
//! - Bloomreach allows duplicate ids: deleting an id twice is idempotent and each occurrence gets its
//!   own per-item result, so refusing one would only hide the other's result.
//! - Klaviyo's rule applies to the *external id* of a compound id (see [`crate::klaviyo`]): it is
//!   free text, so any non-empty string passes, up to the storage cap below. Duplicates
//!   are refused: a category update job naming one category twice would be ambiguous, and a job's
//!   `total_count` should count distinct items.
//! - Lengths are counted in characters (Unicode scalar values), not bytes, where a dialect caps
//!   them (native, Braze: 250). Every dialect also caps an id at
//!   [`crate::storable::MAX_ID_BYTES`] bytes of UTF-8, the length every backend can index
//!   ([`IdProblem::TooManyBytes`]), and refuses a NUL character in it
//!   ([`IdProblem::InvalidCharacter`]), which PostgreSQL cannot store (see [`crate::storable`]).
//! - An input whose id is valid may still be refused for what else it carries
//!   ([`IdProblem::Unstorable`]): the store asks [`crate::storable`] about its fields.
//! - Each id gets one problem, the first found in this order: missing, not a string, empty, too
//!   long (characters, then bytes), bad character (or `/`, or NUL), duplicate. A duplicate is only reported for an id that is
//!   otherwise valid, pointing at the first valid occurrence.

use crate::storable::{Unstorable, MAX_ID_BYTES};
use crate::ErrorCode;
use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
// The duplicate check's map: hashed where std has one, ordered (alloc's) elsewhere; both have the
// same entry API, and the verdicts do not depend on which.
#[cfg(not(feature = "std"))]
use alloc::collections::btree_map::{BTreeMap as FirstSeen, Entry};
#[cfg(feature = "std")]
use std::collections::hash_map::{Entry, HashMap as FirstSeen};

/// Longest item id in the dialects that cap it (native, Braze).
pub const MAX_ID_LEN: usize = 250;

const MB: usize = 1024 * 1024;

/// A dialect of the API: the native one or a vendor's facade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// catalogd's own API.
    Native,
    /// Braze catalogs, asynchronous item endpoints.
    Braze,
    /// Bloomreach Engagement catalogs, bulk endpoints.
    Bloomreach,
    /// Klaviyo catalog bulk jobs (JSON:API).
    Klaviyo,
}

/// The size limits of one request in a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialectLimits {
    /// Most items (or categories) one request may carry.
    pub max_items_per_request: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest id, in characters; `None` when the dialect sets no cap.
    pub max_id_len: Option<usize>,
    /// Longest id, in bytes of UTF-8: what every backend can index ([`MAX_ID_BYTES`]).
    pub max_id_bytes: usize,
}

/// Which characters an id may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdCharset {
    /// ASCII letters, digits, `-` and `_` (see [`is_safe_char`]).
    Safe,
    /// Anything but `/` (and NUL, which no dialect allows).
    NoSlash,
    /// Anything (but NUL, which no dialect allows).
    Any,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: &'static [Dialect] = &[Dialect::Native, Dialect::Braze, Dialect::Bloomreach, Dialect::Klaviyo];

    /// The per-request limits of this dialect (DESIGN §3).
    ///
    /// ```
    /// use catalog_domain::Dialect;
    /// let braze = Dialect::Braze.limits();
    /// assert_eq!((braze.max_items_per_request, braze.max_id_len), (50, Some(250)));
    /// // Bloomreach sets no character cap: only the 1,024-byte storage cap applies.
    /// assert_eq!(Dialect::Bloomreach.limits().max_id_len, None);
    /// assert_eq!(Dialect::Bloomreach.limits().max_id_bytes, 1_024);
    /// ```
    pub const fn limits(self) -> DialectLimits {
        match self {
            Dialect::Native => DialectLimits {
                max_items_per_request: 10_000,
                max_body_bytes: 10 * MB,
                max_id_len: Some(MAX_ID_LEN),
                max_id_bytes: MAX_ID_BYTES,
            },
            Dialect::Braze => DialectLimits {
                max_items_per_request: 50,
                max_body_bytes: 10 * MB,
                max_id_len: Some(MAX_ID_LEN),
                max_id_bytes: MAX_ID_BYTES,
            },
            Dialect::Bloomreach => DialectLimits {
                max_items_per_request: 10_000,
                max_body_bytes: 10 * MB,
                max_id_len: None,
                max_id_bytes: MAX_ID_BYTES,
            },
            Dialect::Klaviyo => DialectLimits {
                max_items_per_request: 100,
                max_body_bytes: 5 * MB,
                max_id_len: None,
                max_id_bytes: MAX_ID_BYTES,
            },
        }
    }

    /// The characters an id may contain in this dialect.
    ///
    /// ```
    /// use catalog_domain::ids::IdCharset;
    /// use catalog_domain::Dialect;
    /// assert_eq!(Dialect::Braze.charset(), IdCharset::Safe);
    /// assert_eq!(Dialect::Bloomreach.charset(), IdCharset::NoSlash);
    /// assert_eq!(Dialect::Klaviyo.charset(), IdCharset::Any);
    /// ```
    pub const fn charset(self) -> IdCharset {
        match self {
            Dialect::Native | Dialect::Braze => IdCharset::Safe,
            Dialect::Bloomreach => IdCharset::NoSlash,
            Dialect::Klaviyo => IdCharset::Any,
        }
    }

    /// Whether the same id twice in one request is refused.
    ///
    /// ```
    /// use catalog_domain::Dialect;
    /// assert!(Dialect::Native.requires_unique_ids());
    /// assert!(!Dialect::Bloomreach.requires_unique_ids());
    /// ```
    pub const fn requires_unique_ids(self) -> bool {
        !matches!(self, Dialect::Bloomreach)
    }

    /// A lowercase name, for logs and configuration.
    ///
    /// ```
    /// use catalog_domain::Dialect;
    /// let names: Vec<&str> = Dialect::ALL.iter().map(|dialect| dialect.as_str()).collect();
    /// assert_eq!(names, ["native", "braze", "bloomreach", "klaviyo"]);
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::Native => "native",
            Dialect::Braze => "braze",
            Dialect::Bloomreach => "bloomreach",
            Dialect::Klaviyo => "klaviyo",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a facade saw one id in its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawId {
    /// The id is a JSON string.
    String(String),
    /// The id key is there but holds another JSON value (a number, null, an object...).
    NotAString,
    /// The item has no id key at all.
    Missing,
}

impl From<String> for RawId {
    fn from(id: String) -> Self {
        RawId::String(id)
    }
}

impl From<&str> for RawId {
    fn from(id: &str) -> Self {
        RawId::String(id.to_owned())
    }
}

/// Why one id was refused. `Display` is the native API's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdProblem {
    /// The item has no id.
    #[error("the item has no id")]
    Missing,
    /// The id is not a JSON string.
    #[error("the item id is not a string")]
    NotAString,
    /// The id is the empty string.
    #[error("the item id is empty")]
    Empty,
    /// The id is longer than the dialect allows.
    #[error("the item id is {len} characters long, more than {max}")]
    TooLong {
        /// The dialect's cap, in characters.
        max: usize,
        /// The id's length, in characters.
        len: usize,
    },
    /// The id is longer than every backend can index, in bytes of UTF-8.
    #[error("the item id is {len} bytes long in UTF-8, more than {max}")]
    TooManyBytes {
        /// The cap, in bytes ([`MAX_ID_BYTES`]).
        max: usize,
        /// The id's length, in bytes.
        len: usize,
    },
    /// The id has a character outside the dialect's charset (in every dialect: a NUL).
    #[error("the item id contains {ch:?}; only letters, digits, `-` and `_` are allowed")]
    InvalidCharacter {
        /// The first such character.
        ch: char,
    },
    /// The id contains `/`, which Bloomreach refuses.
    #[error("the item id contains `/`")]
    ContainsSlash,
    /// The id appeared earlier in the same request.
    #[error("the item id appears earlier in the request, at index {first_index}")]
    Duplicate {
        /// Index of its first occurrence in the request.
        first_index: usize,
    },
    /// The id is valid, but the rest of the input cannot be stored ([`crate::storable`]).
    #[error(transparent)]
    Unstorable(#[from] Unstorable),
}

/// Why the whole batch was refused before looking at ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchProblem {
    /// More items than the dialect allows in one request.
    #[error("the request has {got} items, more than the limit of {max}")]
    TooManyItems {
        /// The dialect's limit.
        max: usize,
        /// Items in the request.
        got: usize,
    },
    /// No items at all.
    #[error("the request has no items")]
    Empty,
}

/// The verdict on one id: the id to use, or why it was refused.
pub type IdVerdict = Result<String, IdProblem>;

/// True for the characters of the native (and Braze) id rule and the catalog name rule:
/// ASCII letters, digits, `-` and `_`.
///
/// ```
/// use catalog_domain::ids::is_safe_char;
/// assert!("Sku-9_a".chars().all(is_safe_char));
/// assert!(!is_safe_char('/') && !is_safe_char(' ') && !is_safe_char('é'));
/// ```
pub const fn is_safe_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'
}

/// Check one id against a dialect's charset/length rule (no uniqueness).
///
/// ```
/// use catalog_domain::{check_id, Dialect, IdProblem};
/// assert_eq!(check_id(Dialect::Native, "sku-1"), Ok(()));
/// assert_eq!(check_id(Dialect::Native, "sku 1"), Err(IdProblem::InvalidCharacter { ch: ' ' }));
/// assert_eq!(check_id(Dialect::Braze, &"x".repeat(251)), Err(IdProblem::TooLong { max: 250, len: 251 }));
/// assert_eq!(check_id(Dialect::Bloomreach, "sku 1"), Ok(())); // anything but `/`
/// assert_eq!(check_id(Dialect::Bloomreach, "a/b"), Err(IdProblem::ContainsSlash));
/// assert_eq!(check_id(Dialect::Klaviyo, ""), Err(IdProblem::Empty));
/// ```
pub fn check_id(dialect: Dialect, id: &str) -> Result<(), IdProblem> {
    if id.is_empty() {
        return Err(IdProblem::Empty);
    }
    if let Some(max) = dialect.limits().max_id_len {
        // Counting stops just past the cap so a huge id costs no more than a long one.
        let len_past_cap = id.chars().take(max.saturating_add(1)).count();
        if len_past_cap > max {
            return Err(IdProblem::TooLong { max, len: id.chars().count() });
        }
    }
    let max_bytes = dialect.limits().max_id_bytes;
    if id.len() > max_bytes {
        return Err(IdProblem::TooManyBytes { max: max_bytes, len: id.len() });
    }
    match dialect.charset() {
        IdCharset::Safe => match id.chars().find(|&ch| !is_safe_char(ch)) {
            Some(ch) => Err(IdProblem::InvalidCharacter { ch }),
            None => Ok(()),
        },
        _ if crate::storable::has_nul(id) => Err(IdProblem::InvalidCharacter { ch: '\0' }),
        IdCharset::NoSlash if id.contains('/') => Err(IdProblem::ContainsSlash),
        IdCharset::NoSlash | IdCharset::Any => Ok(()),
    }
}

/// Check a request's item count against a dialect's limit.
///
/// ```
/// use catalog_domain::ids::check_batch_len;
/// use catalog_domain::{BatchProblem, Dialect};
/// assert_eq!(check_batch_len(Dialect::Braze, 50), Ok(()));
/// assert_eq!(check_batch_len(Dialect::Braze, 51), Err(BatchProblem::TooManyItems { max: 50, got: 51 }));
/// assert_eq!(check_batch_len(Dialect::Native, 0), Err(BatchProblem::Empty));
/// ```
pub fn check_batch_len(dialect: Dialect, len: usize) -> Result<(), BatchProblem> {
    let max = dialect.limits().max_items_per_request;
    if len > max {
        Err(BatchProblem::TooManyItems { max, got: len })
    } else if len == 0 {
        Err(BatchProblem::Empty)
    } else {
        Ok(())
    }
}

/// One verdict per input, in request order.
///
/// Refuses the whole batch when it is empty or larger than the dialect allows; otherwise every id
/// gets a verdict of its own, including duplicates where the dialect refuses them.
///
/// ```
/// use catalog_domain::{validate_ids, BatchProblem, Dialect, IdProblem, RawId};
/// let request = || vec![RawId::from("sku-1"), RawId::from("sku 2"), RawId::from("sku-1"), RawId::NotAString];
///
/// // Native and Braze: letters, digits, `-` and `_`, each id once.
/// let native = validate_ids(Dialect::Native, request()).expect("within the limits");
/// assert_eq!(native[0], Ok("sku-1".to_owned()));
/// assert_eq!(native[1], Err(IdProblem::InvalidCharacter { ch: ' ' }));
/// assert_eq!(native[2], Err(IdProblem::Duplicate { first_index: 0 }));
/// assert_eq!(native[3], Err(IdProblem::NotAString));
///
/// // Bloomreach: any text without `/`, and an id may come twice.
/// let bloomreach = validate_ids(Dialect::Bloomreach, request()).expect("within the limits");
/// assert!(bloomreach[..3].iter().all(Result::is_ok));
///
/// // Klaviyo (the external part of a compound id): free text, each once.
/// let klaviyo = validate_ids(Dialect::Klaviyo, request()).expect("within the limits");
/// assert_eq!(klaviyo[1], Ok("sku 2".to_owned()));
/// assert_eq!(klaviyo[2], Err(IdProblem::Duplicate { first_index: 0 }));
///
/// // A request over the dialect's item limit is refused whole, before any id is looked at.
/// let too_many = validate_ids(Dialect::Braze, vec![RawId::Missing; 51]);
/// assert_eq!(too_many, Err(BatchProblem::TooManyItems { max: 50, got: 51 }));
/// ```
pub fn validate_ids(dialect: Dialect, ids: Vec<RawId>) -> Result<Vec<IdVerdict>, BatchProblem> {
    check_batch_len(dialect, ids.len())?;
    let mut verdicts: Vec<IdVerdict> = ids
        .into_iter()
        .map(|raw| match raw {
            RawId::Missing => Err(IdProblem::Missing),
            RawId::NotAString => Err(IdProblem::NotAString),
            RawId::String(id) => check_id(dialect, &id).map(|()| id),
        })
        .collect();
    if dialect.requires_unique_ids() {
        for (index, first_index) in duplicates(&verdicts) {
            if let Some(verdict) = verdicts.get_mut(index) {
                *verdict = Err(IdProblem::Duplicate { first_index });
            }
        }
    }
    Ok(verdicts)
}

/// An empty map for the first index of each of `len` ids.
#[cfg(feature = "std")]
fn first_seen<'a>(len: usize) -> FirstSeen<&'a str, usize> {
    FirstSeen::with_capacity(len)
}

/// An empty map for the first index of each id (a B-tree has no capacity to reserve).
#[cfg(not(feature = "std"))]
fn first_seen<'a>(_len: usize) -> FirstSeen<&'a str, usize> {
    FirstSeen::new()
}

/// `(index, index of first occurrence)` of every valid id seen before.
fn duplicates(verdicts: &[IdVerdict]) -> Vec<(usize, usize)> {
    let mut first = first_seen(verdicts.len());
    let mut found = Vec::new();
    for (index, verdict) in verdicts.iter().enumerate() {
        if let Ok(id) = verdict {
            match first.entry(id.as_str()) {
                Entry::Occupied(seen) => found.push((index, *seen.get())),
                Entry::Vacant(slot) => {
                    slot.insert(index);
                }
            }
        }
    }
    found
}

/// True when a request body of `len` bytes is over the dialect's limit.
///
/// ```
/// use catalog_domain::{body_too_large, Dialect};
/// assert!(!body_too_large(Dialect::Klaviyo, 5 * 1024 * 1024));
/// assert!(body_too_large(Dialect::Klaviyo, 5 * 1024 * 1024 + 1));
/// ```
pub fn body_too_large(dialect: Dialect, len: usize) -> bool {
    len > dialect.limits().max_body_bytes
}

impl IdProblem {
    /// The error code of a refused id.
    ///
    /// ```
    /// use catalog_domain::{ErrorCode, IdProblem};
    /// assert_eq!(IdProblem::Empty.code(), ErrorCode::InvalidItemId);
    /// assert_eq!(ErrorCode::InvalidItemId.http_status(), 400);
    /// ```
    pub const fn code(&self) -> ErrorCode {
        match self {
            IdProblem::Unstorable(problem) => problem.code(),
            _ => ErrorCode::InvalidItemId,
        }
    }

    /// A stable snake_case reason for the native API's per-item result.
    ///
    /// ```
    /// use catalog_domain::IdProblem;
    /// assert_eq!(IdProblem::Duplicate { first_index: 0 }.reason(), "duplicate_id");
    /// assert_eq!(IdProblem::TooLong { max: 250, len: 300 }.reason(), "id_too_long");
    /// ```
    pub const fn reason(&self) -> &'static str {
        match self {
            IdProblem::Unstorable(problem) => problem.reason(),
            IdProblem::TooManyBytes { .. } => "id_too_long",
            IdProblem::Missing => "missing_id",
            IdProblem::NotAString => "id_not_a_string",
            IdProblem::Empty => "empty_id",
            IdProblem::TooLong { .. } => "id_too_long",
            IdProblem::InvalidCharacter { .. } => "invalid_character",
            IdProblem::ContainsSlash => "contains_slash",
            IdProblem::Duplicate { .. } => "duplicate_id",
        }
    }

    /// The `detail` of Klaviyo's JSON:API error for this problem. The id is the external id of a
    /// compound id, so the wording names that.
    ///
    /// ```
    /// use catalog_domain::IdProblem;
    /// assert_eq!(
    ///     IdProblem::Duplicate { first_index: 2 }.klaviyo_detail(),
    ///     "Duplicate id: the same id is already at index 2 of this request."
    /// );
    /// ```
    pub fn klaviyo_detail(&self) -> String {
        match self {
            IdProblem::Missing => "The resource object has no `id`.".to_owned(),
            IdProblem::NotAString => "The resource object's `id` must be a string.".to_owned(),
            IdProblem::Empty => {
                "The external id of `{integration}:::{catalog}:::{external_id}` must not be empty.".to_owned()
            }
            IdProblem::TooLong { max, len } => {
                format!("The external id is {len} characters long; at most {max} are allowed.")
            }
            IdProblem::TooManyBytes { max, len } => {
                format!("The external id is {len} bytes long in UTF-8; at most {max} are allowed.")
            }
            IdProblem::InvalidCharacter { ch: '\0' } => {
                "The external id contains the NUL character (U+0000), which is not allowed.".to_owned()
            }
            IdProblem::InvalidCharacter { ch } => {
                format!("The external id contains {ch:?}, which is not allowed.")
            }
            IdProblem::Unstorable(problem) => problem.klaviyo_detail(),
            IdProblem::ContainsSlash => "The external id must not contain '/'.".to_owned(),
            IdProblem::Duplicate { first_index } => {
                format!("Duplicate id: the same id is already at index {first_index} of this request.")
            }
        }
    }
}

impl BatchProblem {
    /// The error code of a refused batch.
    ///
    /// ```
    /// use catalog_domain::{BatchProblem, ErrorCode};
    /// assert_eq!(BatchProblem::TooManyItems { max: 50, got: 51 }.code(), ErrorCode::TooManyItems);
    /// assert_eq!(BatchProblem::Empty.code(), ErrorCode::InvalidRequest);
    /// ```
    pub const fn code(&self) -> ErrorCode {
        match self {
            BatchProblem::TooManyItems { .. } => ErrorCode::TooManyItems,
            BatchProblem::Empty => ErrorCode::InvalidRequest,
        }
    }

    /// The `detail` of Klaviyo's JSON:API error for a refused batch.
    ///
    /// ```
    /// use catalog_domain::BatchProblem;
    /// assert_eq!(BatchProblem::Empty.klaviyo_detail(), "A job must include at least one resource.");
    /// ```
    pub fn klaviyo_detail(&self) -> String {
        match self {
            BatchProblem::TooManyItems { max, got } => {
                format!("A job may include at most {max} resources; this request has {got}.")
            }
            BatchProblem::Empty => "A job must include at least one resource.".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(ids: &[&str]) -> Vec<RawId> {
        ids.iter().map(|&id| RawId::from(id)).collect()
    }

    fn verdicts(dialect: Dialect, ids: Vec<RawId>) -> Vec<IdVerdict> {
        validate_ids(dialect, ids).expect("batch is accepted")
    }

    fn n_ids(n: usize) -> Vec<RawId> {
        (0..n).map(|i| RawId::String(format!("id-{i}"))).collect()
    }

    // ---- native ----

    #[test]
    fn native_accepts_up_to_10000_items() {
        assert!(validate_ids(Dialect::Native, n_ids(10_000)).is_ok());
    }

    #[test]
    fn native_rejects_more_than_10000_items() {
        assert_eq!(
            validate_ids(Dialect::Native, n_ids(10_001)),
            Err(BatchProblem::TooManyItems { max: 10_000, got: 10_001 })
        );
    }

    #[test]
    fn native_body_limit_is_10_mb() {
        assert!(!body_too_large(Dialect::Native, 10 * 1024 * 1024));
        assert!(body_too_large(Dialect::Native, 10 * 1024 * 1024 + 1));
    }

    #[test]
    fn native_accepts_safe_charset_up_to_250_chars() {
        let long = "a".repeat(250);
        for id in ["abc", "A-b_9", "-", "_", long.as_str()] {
            assert_eq!(check_id(Dialect::Native, id), Ok(()), "{id}");
        }
    }

    #[test]
    fn native_rejects_id_longer_than_250_chars() {
        assert_eq!(check_id(Dialect::Native, &"a".repeat(251)), Err(IdProblem::TooLong { max: 250, len: 251 }));
    }

    #[test]
    fn native_rejects_empty_id() {
        assert_eq!(check_id(Dialect::Native, ""), Err(IdProblem::Empty));
    }

    #[test]
    fn native_rejects_characters_outside_charset() {
        for (id, ch) in [("a b", ' '), ("a/b", '/'), ("a.b", '.'), ("é", 'é'), ("a:b", ':')] {
            assert_eq!(check_id(Dialect::Native, id), Err(IdProblem::InvalidCharacter { ch }));
        }
    }

    #[test]
    fn native_rejects_duplicate_ids_pointing_at_first() {
        let v = verdicts(Dialect::Native, strings(&["a", "b", "a", "a"]));
        assert_eq!(v[0], Ok("a".to_owned()));
        assert_eq!(v[1], Ok("b".to_owned()));
        assert_eq!(v[2], Err(IdProblem::Duplicate { first_index: 0 }));
        assert_eq!(v[3], Err(IdProblem::Duplicate { first_index: 0 }));
    }

    #[test]
    fn native_rejects_non_string_and_missing_ids_per_item() {
        let v = verdicts(Dialect::Native, vec![RawId::NotAString, "ok".into(), RawId::Missing]);
        assert_eq!(v, vec![Err(IdProblem::NotAString), Ok("ok".to_owned()), Err(IdProblem::Missing)]);
    }

    #[test]
    fn native_rejects_empty_batch() {
        assert_eq!(validate_ids(Dialect::Native, Vec::new()), Err(BatchProblem::Empty));
    }

    #[test]
    fn native_reasons_are_stable_snake_case() {
        let all = [
            (IdProblem::Missing, "missing_id"),
            (IdProblem::NotAString, "id_not_a_string"),
            (IdProblem::Empty, "empty_id"),
            (IdProblem::TooLong { max: 250, len: 251 }, "id_too_long"),
            (IdProblem::InvalidCharacter { ch: '.' }, "invalid_character"),
            (IdProblem::ContainsSlash, "contains_slash"),
            (IdProblem::Duplicate { first_index: 0 }, "duplicate_id"),
        ];
        for (problem, reason) in all {
            assert_eq!(problem.reason(), reason);
            assert_eq!(problem.code(), ErrorCode::InvalidItemId);
            assert!(!problem.to_string().is_empty());
        }
    }

    // ---- Braze ----

    #[test]
    fn braze_accepts_50_items() {
        assert!(validate_ids(Dialect::Braze, n_ids(50)).is_ok());
    }

    #[test]
    fn braze_rejects_more_than_50_items() {
        let problem = validate_ids(Dialect::Braze, n_ids(51)).expect_err("too many");
        assert_eq!(problem, BatchProblem::TooManyItems { max: 50, got: 51 });
        assert_eq!(problem.code(), ErrorCode::TooManyItems);
    }

    #[test]
    fn braze_rejects_empty_batch() {
        assert_eq!(validate_ids(Dialect::Braze, Vec::new()), Err(BatchProblem::Empty));
    }

    #[test]
    fn braze_body_limit_is_10_mb() {
        assert_eq!(Dialect::Braze.limits().max_body_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn braze_refuses_characters_outside_the_safe_charset_and_empty_ids() {
        let v = verdicts(Dialect::Braze, strings(&["ok", "bad id", "bad/id", ""]));
        assert_eq!(
            v,
            vec![
                Ok("ok".to_owned()),
                Err(IdProblem::InvalidCharacter { ch: ' ' }),
                Err(IdProblem::InvalidCharacter { ch: '/' }),
                Err(IdProblem::Empty),
            ]
        );
    }

    #[test]
    fn braze_caps_ids_at_250_characters() {
        let long = "x".repeat(251);
        assert_eq!(
            verdicts(Dialect::Braze, strings(&[long.as_str()])),
            vec![Err(IdProblem::TooLong { max: 250, len: 251 })]
        );
    }

    #[test]
    fn braze_refuses_repeats_non_strings_and_missing_ids_per_item() {
        let v = verdicts(Dialect::Braze, vec!["a".into(), "a".into(), RawId::NotAString, RawId::Missing]);
        assert_eq!(
            v,
            vec![
                Ok("a".to_owned()),
                Err(IdProblem::Duplicate { first_index: 0 }),
                Err(IdProblem::NotAString),
                Err(IdProblem::Missing)
            ]
        );
    }

    // ---- Bloomreach ----

    #[test]
    fn bloomreach_accepts_up_to_10000_items() {
        assert!(validate_ids(Dialect::Bloomreach, n_ids(10_000)).is_ok());
    }

    #[test]
    fn bloomreach_rejects_more_than_10000_items() {
        let problem = validate_ids(Dialect::Bloomreach, n_ids(10_001)).expect_err("too many");
        assert_eq!(problem, BatchProblem::TooManyItems { max: 10_000, got: 10_001 });
    }

    #[test]
    fn bloomreach_body_limit_is_10_mb() {
        assert!(!body_too_large(Dialect::Bloomreach, 10 * 1024 * 1024));
        assert!(body_too_large(Dialect::Bloomreach, 10 * 1024 * 1024 + 1));
    }

    #[test]
    fn bloomreach_accepts_non_string_id_as_per_item_failure() {
        let v = verdicts(Dialect::Bloomreach, vec!["a".into(), RawId::NotAString, "b".into()]);
        assert_eq!(v[0], Ok("a".to_owned()));
        assert_eq!(v[1], Err(IdProblem::NotAString));
        assert_eq!(v[2], Ok("b".to_owned()));
    }

    #[test]
    fn bloomreach_rejects_empty_id_per_item() {
        let v = verdicts(Dialect::Bloomreach, strings(&["", "a"]));
        assert_eq!(v, vec![Err(IdProblem::Empty), Ok("a".to_owned())]);
    }

    #[test]
    fn bloomreach_rejects_slash_per_item() {
        let v = verdicts(Dialect::Bloomreach, strings(&["a/b", "a"]));
        assert_eq!(v, vec![Err(IdProblem::ContainsSlash), Ok("a".to_owned())]);
    }

    #[test]
    fn bloomreach_rejects_missing_item_id_per_item() {
        let v = verdicts(Dialect::Bloomreach, vec![RawId::Missing]);
        assert_eq!(v, vec![Err(IdProblem::Missing)]);
    }

    #[test]
    fn bloomreach_accepts_any_other_string() {
        let long = "é".repeat(512);
        for id in ["a b", "a.b:c", "ünïcode", " ", long.as_str()] {
            assert_eq!(check_id(Dialect::Bloomreach, id), Ok(()), "{id}");
        }
    }

    #[test]
    fn bloomreach_caps_ids_at_1024_bytes_not_characters() {
        assert_eq!(check_id(Dialect::Bloomreach, &"x".repeat(1_024)), Ok(()));
        assert_eq!(
            check_id(Dialect::Bloomreach, &"x".repeat(3_000)),
            Err(IdProblem::TooManyBytes { max: 1_024, len: 3_000 })
        );
        // 513 two-byte characters: under any character cap, over the byte cap.
        let problem = check_id(Dialect::Bloomreach, &"é".repeat(513)).expect_err("too many bytes");
        assert_eq!(problem, IdProblem::TooManyBytes { max: 1_024, len: 1_026 });
        assert_eq!(problem.reason(), "id_too_long");
    }

    #[test]
    fn bloomreach_refuses_nul_in_ids() {
        let problem = check_id(Dialect::Bloomreach, "a\0b").expect_err("nul");
        assert_eq!(problem, IdProblem::InvalidCharacter { ch: '\0' });
    }

    #[test]
    fn bloomreach_allows_duplicate_ids() {
        let v = verdicts(Dialect::Bloomreach, strings(&["a", "a"]));
        assert_eq!(v, vec![Ok("a".to_owned()), Ok("a".to_owned())]);
    }

    #[test]
    fn bloomreach_rejects_empty_batch() {
        let problem = validate_ids(Dialect::Bloomreach, Vec::new()).expect_err("empty");
        assert_eq!(problem, BatchProblem::Empty);
    }

    // ---- Klaviyo ----

    #[test]
    fn klaviyo_accepts_up_to_100_items() {
        assert!(validate_ids(Dialect::Klaviyo, n_ids(100)).is_ok());
    }

    #[test]
    fn klaviyo_rejects_more_than_100_items() {
        let problem = validate_ids(Dialect::Klaviyo, n_ids(101)).expect_err("too many");
        assert_eq!(problem, BatchProblem::TooManyItems { max: 100, got: 101 });
        assert!(problem.klaviyo_detail().contains("100"));
    }

    #[test]
    fn klaviyo_body_limit_is_5_mb() {
        assert!(!body_too_large(Dialect::Klaviyo, 5 * 1024 * 1024));
        assert!(body_too_large(Dialect::Klaviyo, 5 * 1024 * 1024 + 1));
    }

    #[test]
    fn klaviyo_external_id_is_free_text() {
        let long = "z".repeat(1000);
        for id in ["SAMPLE-DATA-ITEM-1", "a b", "a/b", "a:::b", "ünï", long.as_str()] {
            assert_eq!(check_id(Dialect::Klaviyo, id), Ok(()), "{id}");
        }
    }

    #[test]
    fn klaviyo_refuses_nul_and_ids_over_1024_bytes() {
        assert_eq!(check_id(Dialect::Klaviyo, "A\0"), Err(IdProblem::InvalidCharacter { ch: '\0' }));
        assert!(IdProblem::InvalidCharacter { ch: '\0' }.klaviyo_detail().contains("NUL"));
        let problem = check_id(Dialect::Klaviyo, &"z".repeat(1_025)).expect_err("too long");
        assert_eq!(problem, IdProblem::TooManyBytes { max: 1_024, len: 1_025 });
        assert!(problem.klaviyo_detail().contains("1025 bytes"));
    }

    #[test]
    fn klaviyo_rejects_empty_external_id() {
        assert_eq!(check_id(Dialect::Klaviyo, ""), Err(IdProblem::Empty));
    }

    #[test]
    fn klaviyo_rejects_duplicate_ids() {
        let v = verdicts(Dialect::Klaviyo, strings(&["a", "a"]));
        assert_eq!(v[1], Err(IdProblem::Duplicate { first_index: 0 }));
        assert!(IdProblem::Duplicate { first_index: 0 }.klaviyo_detail().contains("index 0"));
    }

    #[test]
    fn klaviyo_rejects_empty_batch() {
        assert_eq!(validate_ids(Dialect::Klaviyo, Vec::new()), Err(BatchProblem::Empty));
    }

    #[test]
    fn klaviyo_details_are_non_empty() {
        for problem in [IdProblem::Missing, IdProblem::NotAString, IdProblem::Empty] {
            assert!(!problem.klaviyo_detail().is_empty());
        }
    }

    // ---- all dialects ----

    #[test]
    fn every_dialect_checks_the_count_before_the_ids() {
        for &dialect in Dialect::ALL {
            let max = dialect.limits().max_items_per_request;
            let bad = vec![RawId::Missing; max + 1];
            assert!(matches!(validate_ids(dialect, bad), Err(BatchProblem::TooManyItems { .. })));
        }
    }

    #[test]
    fn every_dialect_refuses_nul_in_ids_and_caps_their_bytes() {
        for &dialect in Dialect::ALL {
            assert!(matches!(check_id(dialect, "a\0"), Err(IdProblem::InvalidCharacter { ch: '\0' })), "{dialect}");
            assert_eq!(dialect.limits().max_id_bytes, crate::storable::MAX_ID_BYTES);
            assert!(check_id(dialect, &"a".repeat(1_025)).is_err(), "{dialect}");
        }
    }

    #[test]
    fn every_dialect_renders_an_unstorable_input() {
        let problem = IdProblem::from(crate::storable::Unstorable::NulInFields { pointer: "/a".into() });
        assert_eq!((problem.code(), problem.reason()), (ErrorCode::InvalidItem, "nul_character"));
        assert!(problem.klaviyo_detail().contains("/a"));
    }

    #[test]
    fn dialect_names_are_lowercase_and_distinct() {
        let names: std::collections::HashSet<_> = Dialect::ALL.iter().map(|d| d.to_string()).collect();
        assert_eq!(names.len(), Dialect::ALL.len());
    }
}
