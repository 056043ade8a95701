//! Braze's rules for the fields of catalog items (contracts/braze.md, "the other asynchronous item
//! endpoints"): field names, value sizes, keys inside object values and nesting depth.
//!
//! The domain holds no JSON type, so the facade walks its JSON and asks these functions about each
//! field name, string, object key and nesting depth it meets; [`braze_field_errors`] then renders
//! the problems found as Braze error entries (one per distinct error id, like
//! [`crate::braze_errors`] for ids).
//!
//! Decisions the contract leaves open:
//! - `invalid-fields` is a top-level field name outside the catalog field name rule (letters,
//!   digits, `-`, `_`, 1 to 250 characters). catalogd keeps no per-catalog field schema, so a
//!   field the catalog does not declare is accepted.
//! - `items-too-large` applies to every string at any depth, counted in characters.
//! - A NUL character in a value or a key is `invalid-fields` (no backend can store it; Braze
//!   documents no id for it).
//! - Depth counts containers: a scalar field value is depth 0, `{"a":1}` or `[1]` is depth 1, and
//!   anything deeper than [`MAX_NESTING_DEPTH`] is refused.

use crate::ids::{is_safe_char, BrazeError};
use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest string value, in characters.
pub const MAX_VALUE_CHARS: usize = 5_000;
/// Deepest nesting of objects and arrays in one field value.
pub const MAX_NESTING_DEPTH: usize = 50;
/// Longest field name, in characters.
pub const MAX_FIELD_NAME_LEN: usize = 250;

/// Why an item's fields were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BrazeFieldProblem {
    /// A top-level field name outside the field name rule.
    #[error("invalid field name")]
    InvalidFieldName,
    /// A string value longer than [`MAX_VALUE_CHARS`].
    #[error("value too large")]
    ValueTooLarge,
    /// A key inside an object value containing `.` or `$`.
    #[error("invalid key in value object")]
    InvalidKeyInValueObject,
    /// A value nested deeper than [`MAX_NESTING_DEPTH`].
    #[error("value nested too deep")]
    TooDeepNesting,
    /// A NUL character in a value or a key at any depth, which no backend can store
    /// ([`crate::storable`]); Braze documents no id for it, so it is its `invalid-fields`.
    #[error("NUL character")]
    NulCharacter,
}

impl BrazeFieldProblem {
    /// Braze's error id.
    ///
    /// ```
    /// use catalog_domain::braze_fields::BrazeFieldProblem;
    /// assert_eq!(BrazeFieldProblem::ValueTooLarge.error_id(), "items-too-large");
    /// ```
    pub const fn error_id(self) -> &'static str {
        match self {
            BrazeFieldProblem::InvalidFieldName | BrazeFieldProblem::NulCharacter => "invalid-fields",
            BrazeFieldProblem::ValueTooLarge => "items-too-large",
            BrazeFieldProblem::InvalidKeyInValueObject => "invalid-keys-in-value-object",
            BrazeFieldProblem::TooDeepNesting => "too-deep-nesting-in-value-object",
        }
    }

    /// The message of the error entry (a choice: Braze documents only the ids).
    ///
    /// ```
    /// use catalog_domain::braze_fields::BrazeFieldProblem;
    /// assert_eq!(BrazeFieldProblem::ValueTooLarge.message(), "Item values can't be more than 5000 characters");
    /// ```
    pub fn message(self) -> String {
        match self {
            BrazeFieldProblem::InvalidFieldName => format!(
                "Item field names can only include letters, numbers, hyphens, and underscores, and be at most {MAX_FIELD_NAME_LEN} characters"
            ),
            BrazeFieldProblem::ValueTooLarge => format!("Item values can't be more than {MAX_VALUE_CHARS} characters"),
            BrazeFieldProblem::InvalidKeyInValueObject => {
                "Keys in item object values can't include `.` or `$`".to_owned()
            }
            BrazeFieldProblem::TooDeepNesting => {
                format!("Item object values can't be nested more than {MAX_NESTING_DEPTH} levels")
            }
            BrazeFieldProblem::NulCharacter => "Item fields can't contain the NUL character (U+0000)".to_owned(),
        }
    }
}

/// Checks a top-level field name of an item (not `id`, which follows the id rule).
///
/// ```
/// use catalog_domain::braze_fields::{check_field_name, BrazeFieldProblem};
/// assert_eq!(check_field_name("price_eur"), Ok(()));
/// assert_eq!(check_field_name("price.eur"), Err(BrazeFieldProblem::InvalidFieldName));
/// ```
pub fn check_field_name(name: &str) -> Result<(), BrazeFieldProblem> {
    let len_past_cap = name.chars().take(MAX_FIELD_NAME_LEN + 1).count();
    if name.is_empty() || len_past_cap > MAX_FIELD_NAME_LEN || !name.chars().all(is_safe_char) {
        return Err(BrazeFieldProblem::InvalidFieldName);
    }
    Ok(())
}

/// Checks a string value found at any depth.
///
/// ```
/// use catalog_domain::braze_fields::{check_string_value, BrazeFieldProblem};
/// assert_eq!(check_string_value(&"é".repeat(5_000)), Ok(()));
/// assert_eq!(check_string_value(&"é".repeat(5_001)), Err(BrazeFieldProblem::ValueTooLarge));
/// ```
pub fn check_string_value(value: &str) -> Result<(), BrazeFieldProblem> {
    if value.chars().take(MAX_VALUE_CHARS + 1).count() > MAX_VALUE_CHARS {
        return Err(BrazeFieldProblem::ValueTooLarge);
    }
    Ok(())
}

/// Checks a key of an object nested in a field value.
///
/// ```
/// use catalog_domain::braze_fields::{check_object_key, BrazeFieldProblem};
/// assert_eq!(check_object_key("size"), Ok(()));
/// assert_eq!(check_object_key("$size"), Err(BrazeFieldProblem::InvalidKeyInValueObject));
/// ```
pub fn check_object_key(key: &str) -> Result<(), BrazeFieldProblem> {
    if key.contains('.') || key.contains('$') {
        return Err(BrazeFieldProblem::InvalidKeyInValueObject);
    }
    Ok(())
}

/// Checks the container depth of a value (see the module notes for how depth is counted).
///
/// ```
/// use catalog_domain::braze_fields::{check_depth, BrazeFieldProblem, MAX_NESTING_DEPTH};
/// assert_eq!(check_depth(MAX_NESTING_DEPTH), Ok(()));
/// assert_eq!(check_depth(MAX_NESTING_DEPTH + 1), Err(BrazeFieldProblem::TooDeepNesting));
/// ```
pub fn check_depth(depth: usize) -> Result<(), BrazeFieldProblem> {
    if depth > MAX_NESTING_DEPTH {
        return Err(BrazeFieldProblem::TooDeepNesting);
    }
    Ok(())
}

/// Braze error entries for `problems`: one per distinct error id, in first-seen order.
///
/// ```
/// use catalog_domain::braze_fields::{braze_field_errors, BrazeFieldProblem::*};
/// let errors = braze_field_errors([ValueTooLarge, InvalidFieldName, ValueTooLarge, NulCharacter]);
/// assert_eq!(errors.iter().map(|error| error.id).collect::<Vec<_>>(), ["items-too-large", "invalid-fields"]);
/// ```
pub fn braze_field_errors(problems: impl IntoIterator<Item = BrazeFieldProblem>) -> Vec<BrazeError> {
    let mut errors: Vec<BrazeError> = Vec::new();
    for problem in problems {
        if errors.iter().all(|e| e.id != problem.error_id()) {
            errors.push(BrazeError {
                id: problem.error_id(),
                message: problem.message(),
                parameters: Vec::new(),
                parameter_values: Vec::new(),
            });
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_names_follow_the_safe_charset_up_to_250() {
        for ok in ["Name", "cuisine_type-2", &"f".repeat(250)] {
            assert_eq!(check_field_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "with space", "dotted.name", "dollar$", "é", &"f".repeat(251)] {
            assert_eq!(check_field_name(bad), Err(BrazeFieldProblem::InvalidFieldName), "{bad}");
        }
    }

    #[test]
    fn string_values_up_to_5000_characters() {
        assert_eq!(check_string_value(&"v".repeat(5_000)), Ok(()));
        assert_eq!(check_string_value(&"é".repeat(5_000)), Ok(()), "characters, not bytes");
        assert_eq!(check_string_value(&"v".repeat(5_001)), Err(BrazeFieldProblem::ValueTooLarge));
    }

    #[test]
    fn object_keys_refuse_dot_and_dollar() {
        assert_eq!(check_object_key("plain_key"), Ok(()));
        assert_eq!(check_object_key("a.b"), Err(BrazeFieldProblem::InvalidKeyInValueObject));
        assert_eq!(check_object_key("$set"), Err(BrazeFieldProblem::InvalidKeyInValueObject));
    }

    #[test]
    fn depth_up_to_50() {
        assert_eq!(check_depth(0), Ok(()));
        assert_eq!(check_depth(50), Ok(()));
        assert_eq!(check_depth(51), Err(BrazeFieldProblem::TooDeepNesting));
    }

    #[test]
    fn error_ids_follow_the_contract() {
        assert_eq!(BrazeFieldProblem::InvalidFieldName.error_id(), "invalid-fields");
        assert_eq!(BrazeFieldProblem::ValueTooLarge.error_id(), "items-too-large");
        assert_eq!(BrazeFieldProblem::InvalidKeyInValueObject.error_id(), "invalid-keys-in-value-object");
        assert_eq!(BrazeFieldProblem::TooDeepNesting.error_id(), "too-deep-nesting-in-value-object");
        assert_eq!(BrazeFieldProblem::NulCharacter.error_id(), "invalid-fields");
    }

    #[test]
    fn errors_are_deduplicated_in_first_seen_order() {
        let errors = braze_field_errors([
            BrazeFieldProblem::ValueTooLarge,
            BrazeFieldProblem::InvalidFieldName,
            BrazeFieldProblem::ValueTooLarge,
        ]);
        let ids: Vec<_> = errors.iter().map(|e| e.id).collect();
        assert_eq!(ids, ["items-too-large", "invalid-fields"]);
        assert!(errors.iter().all(|e| e.parameters.is_empty() && !e.message.is_empty()));
    }

    proptest! {
        #[test]
        fn safe_names_within_the_cap_pass(name in "[A-Za-z0-9_-]{1,250}") {
            prop_assert_eq!(check_field_name(&name), Ok(()));
        }

        #[test]
        fn keys_without_dot_or_dollar_pass(key in "[^.$]{0,40}") {
            prop_assert_eq!(check_object_key(&key), Ok(()));
        }

        #[test]
        fn strings_pass_exactly_up_to_the_cap(len in 0usize..6_000) {
            let verdict = check_string_value(&"x".repeat(len));
            prop_assert_eq!(verdict.is_ok(), len <= MAX_VALUE_CHARS);
        }
    }
}
