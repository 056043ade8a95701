//! What every backend can store: the one rule each dialect applies at the edge, so that nothing is
//! accepted that a job cannot apply.
//!
//! PostgreSQL refuses a NUL character (U+0000) anywhere in `text` and an index row over 2,704
//! bytes; SQLite stores both. Left to the database, such an input is accepted (202) and then fails
//! in the runner on one backend only. So every dialect refuses, per input and in its own words:
//!
//! - a NUL in any string of an input: its id ([`crate::ids::check_id`] reports it as an
//!   [`crate::IdProblem::InvalidCharacter`]), a field name or value at any depth, a category's
//!   name or external id, the ids it names; and in a request's own text (a job's description or
//!   reference id, a catalog's description), which refuses the request;
//! - an id longer than [`MAX_ID_BYTES`] bytes of UTF-8, in every dialect (native and Braze keep
//!   their 250 characters, which in their charset are at most 250 bytes);
//! - an item whose fields, written as compact JSON, are over [`MAX_ITEM_BYTES`].
//!
//! Why these numbers (docs/RULES.md, "What can be stored"): the widest index on ids is
//! `category_items (catalog_id, category_id, item_id)`, two ids in one row. Two ids of 1,024 bytes,
//! their length headers, the catalog id and the tuple header come to about 2,070 bytes, well under
//! PostgreSQL's 2,704. An item of 256 KiB is far below what either backend holds in a value (1 GB),
//! keeps a runner chunk of 1,000 items and a page of 1,000 items under 256 MiB, and holds any
//! item Braze accepts in practice (its values are at most 5,000 characters).
//!
//! The domain holds no JSON type: the caller walks its JSON and asks [`has_nul`] about each string
//! and key, building the pointer of the first bad one, and measures the compact JSON for
//! [`check_item_bytes`]. Each dialect renders an [`Unstorable`] from its variant and [`Unstorable::reason`] (Klaviyo's
//! words are still the method below).

use crate::ErrorCode;
use alloc::format;
use alloc::string::String;

/// Longest id every backend can index, in bytes of UTF-8, in every dialect.
pub const MAX_ID_BYTES: usize = 1_024;

/// Largest item, as the compact JSON of its fields, in bytes.
pub const MAX_ITEM_BYTES: usize = 256 * 1024;

/// True when `text` holds a NUL character, which PostgreSQL cannot store in `text`.
///
/// ```
/// use catalog_domain::storable::has_nul;
/// assert!(has_nul("a\0b") && !has_nul("ab"));
/// ```
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// Why an input (beyond its id) cannot be stored. `Display` is the native API's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unstorable {
    /// A NUL in a field's name or in a value at any depth.
    #[error("the field at `{pointer}` contains a NUL character (U+0000), which cannot be stored")]
    NulInFields {
        /// JSON pointer of the string (or of the field whose name holds the NUL) within the
        /// item's fields, e.g. `/colors/0`; a NUL in a name is written `\u0000` here.
        pointer: String,
    },
    /// A NUL in another member of the input (a category's `name` or `external_id`).
    #[error("`{member}` contains a NUL character (U+0000), which cannot be stored")]
    NulIn {
        /// The member, as the request names it.
        member: &'static str,
    },
    /// The item's fields are larger than [`MAX_ITEM_BYTES`].
    #[error("the item's fields are {bytes} bytes as JSON, more than the limit of {max}")]
    TooLarge {
        /// The limit.
        max: usize,
        /// The fields' size, as compact JSON.
        bytes: usize,
    },
}

/// Refuses fields of `bytes` bytes (their compact JSON) when over [`MAX_ITEM_BYTES`].
///
/// ```
/// use catalog_domain::storable::check_item_bytes;
/// use catalog_domain::{Unstorable, MAX_ITEM_BYTES};
/// assert_eq!(check_item_bytes(MAX_ITEM_BYTES), Ok(()));
/// assert_eq!(check_item_bytes(MAX_ITEM_BYTES + 1), Err(Unstorable::TooLarge { max: MAX_ITEM_BYTES, bytes: MAX_ITEM_BYTES + 1 }));
/// ```
pub fn check_item_bytes(bytes: usize) -> Result<(), Unstorable> {
    if bytes > MAX_ITEM_BYTES {
        Err(Unstorable::TooLarge { max: MAX_ITEM_BYTES, bytes })
    } else {
        Ok(())
    }
}

/// Refuses a member of an input (`name`, `external_id`) that holds a NUL.
///
/// ```
/// use catalog_domain::storable::check_member;
/// use catalog_domain::Unstorable;
/// assert_eq!(check_member("name", "Shoes"), Ok(()));
/// assert_eq!(check_member("name", "Sh\0es"), Err(Unstorable::NulIn { member: "name" }));
/// ```
pub fn check_member(member: &'static str, text: &str) -> Result<(), Unstorable> {
    if has_nul(text) {
        Err(Unstorable::NulIn { member })
    } else {
        Ok(())
    }
}

/// Why a request's own text was refused (a description, a reference id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` contains a NUL character (U+0000), which cannot be stored")]
pub struct UnstorableText {
    /// The field, as the request names it.
    pub field: &'static str,
}

impl UnstorableText {
    /// The error code of the refused request.
    ///
    /// ```
    /// use catalog_domain::storable::UnstorableText;
    /// use catalog_domain::ErrorCode;
    /// assert_eq!(UnstorableText { field: "description" }.code(), ErrorCode::InvalidRequest);
    /// ```
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::InvalidRequest
    }
}

/// Refuses a request's own text (`description`, `reference_id`) that holds a NUL.
///
/// ```
/// use catalog_domain::storable::{check_text, UnstorableText};
/// assert_eq!(check_text("reference_id", "ok"), Ok(()));
/// assert_eq!(check_text("reference_id", "\0"), Err(UnstorableText { field: "reference_id" }));
/// ```
pub fn check_text(field: &'static str, text: &str) -> Result<(), UnstorableText> {
    if has_nul(text) {
        Err(UnstorableText { field })
    } else {
        Ok(())
    }
}

/// Appends one reference token to a JSON pointer (RFC 6901: `~` is `~0`, `/` is `~1`). A NUL is
/// written `\u0000`, so a pointer never carries the character it reports.
///
/// ```
/// use catalog_domain::storable::push_pointer_token;
/// let mut pointer = String::new();
/// push_pointer_token(&mut pointer, "sizes/eu");
/// push_pointer_token(&mut pointer, "0");
/// assert_eq!(pointer, "/sizes~1eu/0");
/// ```
pub fn push_pointer_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for ch in token.chars() {
        match ch {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            '\0' => pointer.push_str("\\u0000"),
            other => pointer.push(other),
        }
    }
}

impl Unstorable {
    /// The error code of the refused input.
    ///
    /// ```
    /// use catalog_domain::{ErrorCode, Unstorable};
    /// assert_eq!(Unstorable::NulIn { member: "name" }.code(), ErrorCode::InvalidItem);
    /// ```
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::InvalidItem
    }

    /// A stable snake_case reason for the native API's per-item result.
    ///
    /// ```
    /// use catalog_domain::Unstorable;
    /// assert_eq!(Unstorable::TooLarge { max: 262_144, bytes: 300_000 }.reason(), "item_too_large");
    /// ```
    pub const fn reason(&self) -> &'static str {
        match self {
            Unstorable::NulInFields { .. } | Unstorable::NulIn { .. } => "nul_character",
            Unstorable::TooLarge { .. } => "item_too_large",
        }
    }

    /// The `detail` of Klaviyo's JSON:API error.
    ///
    /// ```
    /// use catalog_domain::Unstorable;
    /// let problem = Unstorable::NulIn { member: "name" };
    /// assert_eq!(problem.klaviyo_detail(), "'name' contains the NUL character (U+0000), which is not allowed.");
    /// ```
    pub fn klaviyo_detail(&self) -> String {
        match self {
            Unstorable::NulInFields { pointer } => {
                format!("The value at '{pointer}' contains the NUL character (U+0000), which is not allowed.")
            }
            Unstorable::NulIn { member } => {
                format!("'{member}' contains the NUL character (U+0000), which is not allowed.")
            }
            Unstorable::TooLarge { max, bytes } => {
                format!("The resource is {bytes} bytes as JSON; at most {max} are allowed.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn all_dialects_nul_is_found_anywhere_in_a_string() {
        assert!(has_nul("\0"));
        assert!(has_nul("a\0b"));
        assert!(!has_nul(""));
        assert!(!has_nul("a\\u0000b"), "an escaped NUL is six ordinary characters");
    }

    #[test]
    fn all_dialects_item_size_is_capped_at_256_kib() {
        assert_eq!(check_item_bytes(MAX_ITEM_BYTES), Ok(()));
        assert_eq!(check_item_bytes(MAX_ITEM_BYTES + 1), Err(Unstorable::TooLarge { max: 262_144, bytes: 262_145 }));
    }

    #[test]
    fn all_dialects_two_ids_fit_in_a_postgres_index_row() {
        // category_items (catalog_id BIGINT, category_id TEXT, item_id TEXT): tuple header 8,
        // bigint 8, two 4-byte varlena headers, padding at most 8.
        let row = 8 + 8 + 2 * (4 + MAX_ID_BYTES) + 8;
        assert!(row <= 2_704, "{row}");
    }

    #[test]
    fn all_dialects_members_and_texts_refuse_nul() {
        assert_eq!(check_member("name", "Shoes"), Ok(()));
        assert_eq!(check_member("name", "Sh\0oes"), Err(Unstorable::NulIn { member: "name" }));
        assert_eq!(check_text("description", "ok"), Ok(()));
        let refused = check_text("description", "\0").expect_err("nul");
        assert_eq!(refused.code(), ErrorCode::InvalidRequest);
        assert!(refused.to_string().contains("`description`"));
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        let mut pointer = String::new();
        push_pointer_token(&mut pointer, "a/b~c");
        push_pointer_token(&mut pointer, "0");
        push_pointer_token(&mut pointer, "n\0l");
        assert_eq!(pointer, "/a~1b~0c/0/n\\u0000l");
    }

    #[test]
    fn every_problem_has_a_code_a_reason_and_words() {
        let problems = [
            Unstorable::NulInFields { pointer: "/a/0".into() },
            Unstorable::NulIn { member: "name" },
            Unstorable::TooLarge { max: MAX_ITEM_BYTES, bytes: MAX_ITEM_BYTES + 1 },
        ];
        for problem in problems {
            assert_eq!(problem.code(), ErrorCode::InvalidItem);
            assert!(["nul_character", "item_too_large"].contains(&problem.reason()));
            for text in [problem.to_string(), problem.klaviyo_detail()] {
                assert!(!text.is_empty() && !has_nul(&text), "{text}");
            }
        }
    }

    proptest! {
        #[test]
        fn text_without_nul_passes(text in "[^\u{0}]{0,64}") {
            prop_assert_eq!(check_text("description", &text), Ok(()));
            prop_assert_eq!(check_member("name", &text), Ok(()));
        }

        #[test]
        fn text_with_nul_is_refused(prefix in ".{0,16}", suffix in ".{0,16}") {
            let text = format!("{prefix}\0{suffix}");
            prop_assert!(check_text("reference_id", &text).is_err());
        }
    }
}
