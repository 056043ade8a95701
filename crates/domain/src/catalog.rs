//! The catalog name rule, `[A-Za-z0-9_-]{1,250}` (DESIGN §3), the same in every dialect; and
//! Bloomreach's rules for the properties of a catalog that declares its fields ([`PropertyType`],
//! [`check_property`]). Braze's field rules differ (its `time` is an RFC 3339 string, its `string`
//! takes only text) and live in [`crate::braze_fields`].

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

/// The type of a field a Bloomreach catalog declares (`fields[].type`), as Bloomreach Engagement
/// names its data types. A value is taken when Bloomreach would take it ([`PropertyType::accepts`]);
/// catalogd stores it as sent (it converts nothing).
///
/// Rules, from Bloomreach's "Data types" and "Catalogs" pages where they say, catalogd's choice
/// where they do not (docs/compat/bloomreach.md):
/// - `string`, `long text`: text, and the scalars Bloomreach keeps as text (numbers, booleans);
///   not a list or an object.
/// - `number`: a number, or a string that is one ("a quoted number" is a number to Bloomreach).
/// - `boolean`: `true`, `false`, `1` or `0` (Bloomreach: "Options: true/false; 0/1").
/// - `date`, `datetime`: a UNIX timestamp in seconds, a number (Bloomreach: ISO 8601 works for
///   imports "but not for updates via API").
/// - `list`: a JSON list.
/// - `url`: an `http` or `https` URL with a host and no white space.
/// - `json`: a JSON object or list.
/// - `null` blanks a field of any type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyType {
    /// Text.
    String,
    /// Long text.
    LongText,
    /// A number.
    Number,
    /// A boolean.
    Boolean,
    /// A day, as a UNIX timestamp.
    Date,
    /// A point in time, as a UNIX timestamp.
    Datetime,
    /// A list.
    List,
    /// A web address.
    Url,
    /// A JSON document.
    Json,
}

/// A property's value, as far as a [`PropertyType`] cares (the domain holds no JSON type).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PropertyValue<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number (as `f64`; the type rules need no more precision).
    Number(f64),
    /// A string, with its text.
    String(&'a str),
    /// A list.
    List,
    /// An object.
    Object,
}

impl PropertyType {
    /// Every type, in Bloomreach's order.
    pub const ALL: &'static [PropertyType] = &[
        PropertyType::String,
        PropertyType::LongText,
        PropertyType::Number,
        PropertyType::Boolean,
        PropertyType::Date,
        PropertyType::Datetime,
        PropertyType::List,
        PropertyType::Url,
        PropertyType::Json,
    ];

    /// The type named `word`, if Bloomreach has it.
    ///
    /// ```
    /// use catalog_domain::catalog::PropertyType;
    /// assert_eq!(PropertyType::parse("long text"), Some(PropertyType::LongText));
    /// assert_eq!(PropertyType::parse("decimal"), None);
    /// ```
    pub fn parse(word: &str) -> Option<PropertyType> {
        PropertyType::ALL.iter().copied().find(|t| t.as_str() == word)
    }

    /// Bloomreach's name of the type.
    pub const fn as_str(self) -> &'static str {
        match self {
            PropertyType::String => "string",
            PropertyType::LongText => "long text",
            PropertyType::Number => "number",
            PropertyType::Boolean => "boolean",
            PropertyType::Date => "date",
            PropertyType::Datetime => "datetime",
            PropertyType::List => "list",
            PropertyType::Url => "url",
            PropertyType::Json => "json",
        }
    }

    /// Whether a field of this type takes `value` (the rules are in the type's notes).
    ///
    /// ```
    /// use catalog_domain::catalog::{PropertyType, PropertyValue as V};
    /// assert!(PropertyType::Number.accepts(V::String("12.5")));
    /// assert!(!PropertyType::Number.accepts(V::String("twelve")));
    /// assert!(PropertyType::Boolean.accepts(V::Number(1.0)));
    /// assert!(!PropertyType::Date.accepts(V::String("2024-01-01")));
    /// assert!(PropertyType::Url.accepts(V::String("https://example.com/p1")));
    /// assert!(PropertyType::List.accepts(V::Null));
    /// ```
    pub fn accepts(self, value: PropertyValue<'_>) -> bool {
        use PropertyValue as V;
        match (self, value) {
            (_, V::Null)
            | (PropertyType::String | PropertyType::LongText, V::String(_) | V::Number(_) | V::Bool(_))
            | (PropertyType::Number, V::Number(_))
            | (PropertyType::Boolean, V::Bool(_))
            | (PropertyType::List, V::List)
            | (PropertyType::Json, V::List | V::Object) => true,
            (PropertyType::Number, V::String(text)) => text.trim().parse::<f64>().is_ok_and(f64::is_finite),
            (PropertyType::Boolean, V::Number(n)) => n == 0.0 || n == 1.0,
            (PropertyType::Date | PropertyType::Datetime, V::Number(n)) => n.is_finite(),
            (PropertyType::Url, V::String(text)) => is_web_url(text),
            (
                PropertyType::String
                | PropertyType::LongText
                | PropertyType::Number
                | PropertyType::Boolean
                | PropertyType::Date
                | PropertyType::Datetime
                | PropertyType::List
                | PropertyType::Url
                | PropertyType::Json,
                _,
            ) => false,
        }
    }
}

/// `http://` or `https://` (any case), a host, and no white space anywhere.
fn is_web_url(text: &str) -> bool {
    let after = |scheme: &str| {
        text.get(..scheme.len()).filter(|head| head.eq_ignore_ascii_case(scheme)).and_then(|_| text.get(scheme.len()..))
    };
    let Some(rest) = after("https://").or_else(|| after("http://")) else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !text.chars().any(char::is_whitespace)
}

/// Why a property of an item was refused by the catalog's declared fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PropertyProblem {
    /// The catalog declares its fields and not this one.
    #[error("not a field of the catalog")]
    Undeclared,
    /// The field's type does not take the value.
    #[error("not a value of type {}", .0.as_str())]
    WrongType(PropertyType),
}

/// What a catalog declared about one field, as [`check_property`] reads it: its name and its type,
/// `None` for a type word Bloomreach does not have (a field declared by another surface, whose
/// rules are that surface's: it takes any value here).
pub type DeclaredProperty<'a> = (&'a str, Option<PropertyType>);

/// Checks one property of an item against the catalog's declared fields: a catalog that declared
/// none takes any property; otherwise the property must be declared and its type take `value`.
/// Bloomreach's rule for item properties.
///
/// ```
/// use catalog_domain::catalog::{check_property, PropertyProblem, PropertyType, PropertyValue as V};
/// let declared = [("title", Some(PropertyType::String)), ("price", Some(PropertyType::Number))];
/// assert_eq!(check_property(&declared, "price", V::Number(10.0)), Ok(()));
/// assert_eq!(check_property(&declared, "price", V::List), Err(PropertyProblem::WrongType(PropertyType::Number)));
/// assert_eq!(check_property(&declared, "colour", V::String("red")), Err(PropertyProblem::Undeclared));
/// assert_eq!(check_property(&[], "colour", V::List), Ok(()));
/// ```
pub fn check_property(
    declared: &[DeclaredProperty<'_>],
    name: &str,
    value: PropertyValue<'_>,
) -> Result<(), PropertyProblem> {
    if declared.is_empty() {
        return Ok(());
    }
    match declared.iter().find(|(declared_name, _)| *declared_name == name) {
        None => Err(PropertyProblem::Undeclared),
        Some((_, Some(ty))) if !ty.accepts(value) => Err(PropertyProblem::WrongType(*ty)),
        Some(_) => Ok(()),
    }
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

    #[test]
    fn property_types_take_their_values() {
        use PropertyType as T;
        use PropertyValue as V;
        let cases: &[(T, &[V<'_>], &[V<'_>])] = &[
            (T::String, &[V::String("x"), V::Number(5.0), V::Bool(true)], &[V::List, V::Object]),
            (T::LongText, &[V::String("long"), V::Number(1.5)], &[V::List, V::Object]),
            (
                T::Number,
                &[V::Number(-2.5), V::String(" 12 "), V::String("1e3")],
                &[V::String("12a"), V::String("NaN"), V::Bool(true), V::List],
            ),
            (
                T::Boolean,
                &[V::Bool(false), V::Number(1.0), V::Number(0.0)],
                &[V::Number(2.0), V::String("true"), V::List],
            ),
            (T::Date, &[V::Number(1_700_000_000.0)], &[V::String("2024-01-01"), V::Bool(true)]),
            (T::Datetime, &[V::Number(1_700_000_000.5)], &[V::String("2024-01-01T00:00:00Z"), V::Object]),
            (T::List, &[V::List], &[V::String("[1]"), V::Object, V::Number(1.0)]),
            (
                T::Url,
                &[V::String("https://example.com"), V::String("HTTP://a.b/c?d")],
                &[
                    V::String("example.com"),
                    V::String("https://"),
                    V::String("https://a b"),
                    V::String("ftp://a"),
                    V::Number(1.0),
                ],
            ),
            (T::Json, &[V::Object, V::List], &[V::String("{}"), V::Number(1.0), V::Bool(true)]),
        ];
        for (ty, taken, refused) in cases {
            assert!(ty.accepts(V::Null), "{ty:?} takes null");
            for value in *taken {
                assert!(ty.accepts(*value), "{ty:?} takes {value:?}");
            }
            for value in *refused {
                assert!(!ty.accepts(*value), "{ty:?} refuses {value:?}");
            }
        }
        assert_eq!(cases.len(), PropertyType::ALL.len(), "every type has its cases");
        assert!(PropertyType::ALL.iter().all(|t| PropertyType::parse(t.as_str()) == Some(*t)));
    }

    #[test]
    fn properties_are_checked_against_declared_fields() {
        use PropertyValue as V;
        let declared = [("title", Some(PropertyType::String)), ("when", None)];
        assert_eq!(check_property(&declared, "title", V::String("a")), Ok(()));
        assert_eq!(
            check_property(&declared, "title", V::Object),
            Err(PropertyProblem::WrongType(PropertyType::String))
        );
        assert_eq!(check_property(&declared, "when", V::Object), Ok(()), "an unknown type word takes anything");
        assert_eq!(check_property(&declared, "other", V::Null), Err(PropertyProblem::Undeclared));
        assert_eq!(check_property(&[], "other", V::Object), Ok(()));
    }
}
