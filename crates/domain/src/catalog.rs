//! The catalog name rule, `[A-Za-z0-9_-]{1,250}` (DESIGN §3), the same in every dialect.

use crate::ids::is_safe_char;
use crate::ErrorCode;

/// Longest catalog name, in characters.
pub const MAX_CATALOG_NAME_LEN: usize = 250;

/// Why a catalog name was refused. `Display` is the native API's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogNameError {
    /// The name is empty.
    #[error("the catalog name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("the catalog name is {len} characters long, more than {max}")]
    TooLong {
        /// The limit, in characters.
        max: usize,
        /// The name's length, in characters.
        len: usize,
    },
    /// The name has a character other than a letter, digit, `-` or `_`.
    #[error("the catalog name contains {ch:?}; only letters, digits, `-` and `_` are allowed")]
    InvalidCharacter {
        /// The first such character.
        ch: char,
    },
}

/// Check a catalog name against `[A-Za-z0-9_-]{1,250}`.
///
/// ```
/// use catalog_domain::{validate_catalog_name, CatalogNameError};
/// assert_eq!(validate_catalog_name("spring-shoes_2026"), Ok(()));
/// assert_eq!(validate_catalog_name("spring shoes"), Err(CatalogNameError::InvalidCharacter { ch: ' ' }));
/// assert_eq!(validate_catalog_name(&"n".repeat(251)), Err(CatalogNameError::TooLong { max: 250, len: 251 }));
/// assert_eq!(validate_catalog_name(""), Err(CatalogNameError::Empty));
/// ```
pub fn validate_catalog_name(name: &str) -> Result<(), CatalogNameError> {
    if name.is_empty() {
        return Err(CatalogNameError::Empty);
    }
    let len = name.chars().count();
    if len > MAX_CATALOG_NAME_LEN {
        return Err(CatalogNameError::TooLong { max: MAX_CATALOG_NAME_LEN, len });
    }
    match name.chars().find(|&ch| !is_safe_char(ch)) {
        Some(ch) => Err(CatalogNameError::InvalidCharacter { ch }),
        None => Ok(()),
    }
}

/// The first of `names` a catalog that declared the fields `declared` does not declare; none when
/// it declared none (it takes any field). Bloomreach's rule for an item's properties.
///
/// ```
/// use catalog_domain::catalog::first_undeclared;
/// assert_eq!(first_undeclared(["title", "colour"], &["title", "price"]), Some("colour"));
/// assert_eq!(first_undeclared(["colour"], &[]), None);
/// ```
pub fn first_undeclared<'a>(names: impl IntoIterator<Item = &'a str>, declared: &[&str]) -> Option<&'a str> {
    if declared.is_empty() {
        return None;
    }
    names.into_iter().find(|name| !declared.contains(name))
}

impl CatalogNameError {
    /// The error code of a refused name.
    ///
    /// ```
    /// use catalog_domain::{CatalogNameError, ErrorCode};
    /// assert_eq!(CatalogNameError::Empty.code(), ErrorCode::InvalidCatalogName);
    /// ```
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::InvalidCatalogName
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_catalog_name_accepts_safe_charset_up_to_250() {
        for name in ["restaurants", "A-b_9", &"n".repeat(250)] {
            assert_eq!(validate_catalog_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn native_catalog_name_rejects_empty() {
        assert_eq!(validate_catalog_name(""), Err(CatalogNameError::Empty));
    }

    #[test]
    fn native_catalog_name_rejects_longer_than_250() {
        assert_eq!(validate_catalog_name(&"n".repeat(251)), Err(CatalogNameError::TooLong { max: 250, len: 251 }));
    }

    #[test]
    fn native_catalog_name_rejects_other_characters() {
        for (name, ch) in [("a b", ' '), ("a/b", '/'), ("a.b", '.'), ("ä", 'ä')] {
            let error = validate_catalog_name(name).expect_err("invalid");
            assert_eq!(error, CatalogNameError::InvalidCharacter { ch });
            assert_eq!(error.code(), ErrorCode::InvalidCatalogName);
        }
    }
}
