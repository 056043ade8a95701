//! Braze's rules for the fields of catalog items (contracts/braze.md, "the other asynchronous item
//! endpoints"): field names, value sizes, keys inside object values and nesting depth.
//!
//! The domain holds no JSON type, so the facade walks its JSON and asks these functions about each
//! field name, string, object key and nesting depth it meets, and renders the problems found in
//! Braze's words (its error ids and messages are the facade's), from the variant or its
//! [`BrazeFieldProblem::reason`].
//!
//! Decisions the contract leaves open:
//! - `invalid-fields` is a top-level field name outside the catalog field name rule (letters,
//!   digits, `-`, `_`, 1 to 250 characters), or one the catalog did not declare when it declared
//!   its fields ([`FieldType`]); a catalog that declared none accepts any.
//! - `unable-to-coerce-value` is a value its declared type does not take ([`FieldType::accepts`]):
//!   catalogd stores values as sent, so it converts nothing and takes only the value's own kind
//!   (a `time` takes an RFC 3339 string); `null` blanks a field of any type.
//! - `items-too-large` applies to every string at any depth, counted in characters.
//! - A NUL character in a value or a key is `invalid-fields` (no backend can store it; Braze
//!   documents no id for it).
//! - Depth counts containers: a scalar field value is depth 0, `{"a":1}` or `[1]` is depth 1, and
//!   anything deeper than [`MAX_NESTING_DEPTH`] is refused.

use crate::ids::is_safe_char;
use crate::time::parse_rfc3339;
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
    /// A top-level field the catalog did not declare (when it declared its fields).
    #[error("field not declared by the catalog")]
    UndeclaredField,
    /// A value the field's declared type does not take ([`FieldType::accepts`]).
    #[error("value not of the field's type")]
    UncoercibleValue,
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
    /// ([`crate::storable`]).
    #[error("NUL character")]
    NulCharacter,
}

impl BrazeFieldProblem {
    /// A stable snake_case reason for the problem.
    ///
    /// ```
    /// use catalog_domain::braze_fields::BrazeFieldProblem;
    /// assert_eq!(BrazeFieldProblem::ValueTooLarge.reason(), "value_too_large");
    /// ```
    pub const fn reason(self) -> &'static str {
        match self {
            BrazeFieldProblem::InvalidFieldName => "invalid_field_name",
            BrazeFieldProblem::UndeclaredField => "undeclared_field",
            BrazeFieldProblem::UncoercibleValue => "value_not_of_field_type",
            BrazeFieldProblem::ValueTooLarge => "value_too_large",
            BrazeFieldProblem::InvalidKeyInValueObject => "invalid_key_in_value_object",
            BrazeFieldProblem::TooDeepNesting => "too_deep_nesting",
            BrazeFieldProblem::NulCharacter => "nul_character",
        }
    }
}

/// The type of a declared catalog field, as Braze names it in `fields[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Text.
    String,
    /// A JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A point in time, as an RFC 3339 string.
    Time,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

/// What a value is, as far as a field type cares (the domain holds no JSON type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string, with its text.
    String(&'a str),
    /// An array.
    Array,
    /// An object.
    Object,
}

impl FieldType {
    /// Every type, in Braze's order.
    pub const ALL: &'static [FieldType] = &[
        FieldType::String,
        FieldType::Number,
        FieldType::Boolean,
        FieldType::Time,
        FieldType::Object,
        FieldType::Array,
    ];

    /// The type named `word`, if Braze has it.
    ///
    /// ```
    /// use catalog_domain::braze_fields::FieldType;
    /// assert_eq!(FieldType::parse("time"), Some(FieldType::Time));
    /// assert_eq!(FieldType::parse("float"), None);
    /// ```
    pub fn parse(word: &str) -> Option<FieldType> {
        FieldType::ALL.iter().copied().find(|t| t.as_str() == word)
    }

    /// Braze's name of the type.
    ///
    /// ```
    /// use catalog_domain::braze_fields::FieldType;
    /// assert_eq!(FieldType::Boolean.as_str(), "boolean");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Time => "time",
            FieldType::Object => "object",
            FieldType::Array => "array",
        }
    }

    /// Whether a field of this type takes `value` (see the module notes: nothing is converted).
    ///
    /// ```
    /// use catalog_domain::braze_fields::{FieldType, ValueKind};
    /// assert!(FieldType::Number.accepts(ValueKind::Number));
    /// assert!(!FieldType::Number.accepts(ValueKind::String("5")));
    /// assert!(FieldType::Time.accepts(ValueKind::String("2022-11-01T09:03:19.967+00:00")));
    /// assert!(!FieldType::Time.accepts(ValueKind::String("yesterday")));
    /// assert!(FieldType::Boolean.accepts(ValueKind::Null));
    /// ```
    pub fn accepts(self, value: ValueKind<'_>) -> bool {
        match (self, value) {
            (_, ValueKind::Null)
            | (FieldType::String, ValueKind::String(_))
            | (FieldType::Number, ValueKind::Number)
            | (FieldType::Boolean, ValueKind::Bool)
            | (FieldType::Object, ValueKind::Object)
            | (FieldType::Array, ValueKind::Array) => true,
            (FieldType::Time, ValueKind::String(text)) => parse_rfc3339(text).is_ok(),
            (
                FieldType::String
                | FieldType::Number
                | FieldType::Boolean
                | FieldType::Time
                | FieldType::Object
                | FieldType::Array,
                _,
            ) => false,
        }
    }
}

/// Most fields a catalog may declare (Braze: a catalog cannot have more than 500 fields).
pub const MAX_CATALOG_FIELDS: usize = 500;
/// Most fields one `POST /catalogs/{catalog_name}/fields` may add (Braze: 50).
pub const MAX_FIELDS_PER_REQUEST: usize = 50;

/// Why a catalog's field declarations were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FieldDeclarationProblem {
    /// A catalog's declarations must start with `id` of type `string`.
    #[error("the first field must be `id` of type `string`")]
    IdNotFirst,
    /// A name outside the field name rule, or `id` declared again.
    #[error("invalid field name")]
    InvalidName,
    /// A type Braze does not have.
    #[error("invalid field type")]
    InvalidType,
    /// The same name twice.
    #[error("field names are not unique")]
    NotUnique,
    /// More fields than the limit.
    #[error("more than {max} fields")]
    TooMany {
        /// The limit.
        max: usize,
    },
}

/// Checks a list of field declarations (`name`, `type` word): every name by the field name rule
/// and once, every type one of [`FieldType`], at most `max` of them. With `id_first` (a new
/// catalog), the first must be `id` of type `string`; otherwise (fields added later) `id` may
/// not appear.
///
/// ```
/// use catalog_domain::braze_fields::{check_field_declarations, FieldDeclarationProblem};
/// let fields = [("id", "string"), ("Rating", "number")];
/// assert_eq!(check_field_declarations(fields, true, 500), Ok(()));
/// assert_eq!(check_field_declarations([("Rating", "number")], true, 500), Err(FieldDeclarationProblem::IdNotFirst));
/// assert_eq!(check_field_declarations([("Rating", "decimal")], false, 50), Err(FieldDeclarationProblem::InvalidType));
/// ```
pub fn check_field_declarations<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    id_first: bool,
    max: usize,
) -> Result<(), FieldDeclarationProblem> {
    let mut seen: Vec<&str> = Vec::new();
    for (index, (name, word)) in fields.into_iter().enumerate() {
        if index == 0 && id_first && (name != "id" || word != "string") {
            return Err(FieldDeclarationProblem::IdNotFirst);
        }
        if index >= max {
            return Err(FieldDeclarationProblem::TooMany { max });
        }
        if check_field_name(name).is_err() || (name == "id" && !(id_first && index == 0)) {
            return Err(FieldDeclarationProblem::InvalidName);
        }
        if FieldType::parse(word).is_none() {
            return Err(FieldDeclarationProblem::InvalidType);
        }
        if seen.contains(&name) {
            return Err(FieldDeclarationProblem::NotUnique);
        }
        seen.push(name);
    }
    if id_first && seen.is_empty() {
        return Err(FieldDeclarationProblem::IdNotFirst);
    }
    Ok(())
}

/// What a catalog declared about one field, as [`check_declared`] asks: the field's name and its
/// type, `None` for a type word this build does not know (it takes any value rather than none).
pub type Declared<'a> = (&'a str, Option<FieldType>);

/// Checks a field of an item against the catalog's declared fields: a catalog that declared none
/// takes any field; otherwise the field must be declared and its type take `value`
/// ([`FieldType::accepts`]). With `value` `None` the field is changed by Braze's array operators,
/// which need an `array` field.
///
/// ```
/// use catalog_domain::braze_fields::{check_declared, BrazeFieldProblem, FieldType, ValueKind};
/// let declared = [("id", Some(FieldType::String)), ("Rating", Some(FieldType::Number))];
/// assert_eq!(check_declared(&declared, "Rating", Some(ValueKind::Number)), Ok(()));
/// assert_eq!(check_declared(&declared, "Rating", Some(ValueKind::Bool)), Err(BrazeFieldProblem::UncoercibleValue));
/// assert_eq!(check_declared(&declared, "Colour", Some(ValueKind::Null)), Err(BrazeFieldProblem::UndeclaredField));
/// assert_eq!(check_declared(&[], "Colour", None), Ok(()));
/// ```
pub fn check_declared(
    declared: &[Declared<'_>],
    name: &str,
    value: Option<ValueKind<'_>>,
) -> Result<(), BrazeFieldProblem> {
    if declared.is_empty() {
        return Ok(());
    }
    let Some((_, ty)) = declared.iter().find(|(declared_name, _)| *declared_name == name) else {
        return Err(BrazeFieldProblem::UndeclaredField);
    };
    let fits = match (ty, value) {
        (None, _) => true,
        (Some(ty), Some(value)) => ty.accepts(value),
        (Some(ty), None) => *ty == FieldType::Array,
    };
    if fits {
        Ok(())
    } else {
        Err(BrazeFieldProblem::UncoercibleValue)
    }
}

/// Most filters a selection may have (Braze: four).
pub const MAX_SELECTION_FILTERS: usize = 4;
/// Largest `results_limit` of a selection (Braze: 1 to 50).
pub const MAX_SELECTION_RESULTS: i64 = 50;

/// Why a catalog selection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SelectionProblem {
    /// The name breaks the catalog name rule.
    #[error("invalid selection name")]
    InvalidName,
    /// More than [`MAX_SELECTION_FILTERS`] filters.
    #[error("too many filters")]
    TooManyFilters,
    /// A filter on a field the catalog does not declare, with an operator its type does not have
    /// ([`FieldType::operators`]), or with a value of another kind.
    #[error("invalid filter")]
    InvalidFilter,
    /// Filters on more than one `array` field.
    #[error("more than one array field")]
    TooManyArrays,
    /// A `results_limit` outside 1 to [`MAX_SELECTION_RESULTS`].
    #[error("invalid results limit")]
    InvalidResultsLimit,
    /// A `sort_field` without a `sort_order`, or the reverse.
    #[error("invalid sorting")]
    InvalidSorting,
    /// A `sort_field` the catalog does not declare.
    #[error("invalid sort field")]
    InvalidSortField,
    /// A `sort_order` other than `asc` or `desc`.
    #[error("invalid sort order")]
    InvalidSortOrder,
}

/// One filter of a selection: a field, an operator, a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectionFilter<'a> {
    /// The field filtered on.
    pub field: &'a str,
    /// Braze's operator words, e.g. `greater than`.
    pub operator: &'a str,
    /// The value compared with.
    pub value: ValueKind<'a>,
}

impl FieldType {
    /// The filter operators of a field of this type (Braze's "filter operators" table; `object`
    /// fields cannot be filtered on).
    ///
    /// ```
    /// use catalog_domain::braze_fields::FieldType;
    /// assert!(FieldType::Number.operators().contains(&"greater than"));
    /// assert!(FieldType::Object.operators().is_empty());
    /// ```
    pub const fn operators(self) -> &'static [&'static str] {
        match self {
            FieldType::String => &["equals", "does not equal"],
            FieldType::Number => &["equals", "does not equal", "greater than", "less than"],
            FieldType::Boolean => &["is"],
            FieldType::Time => &["before", "after"],
            FieldType::Array => &["includes value", "does not include value"],
            FieldType::Object => &[],
        }
    }

    /// Whether a filter on a field of this type takes `value`: the field's own kind, and for an
    /// array one of its elements (a string or a number).
    const fn filter_takes(self, value: ValueKind<'_>) -> bool {
        match (self, value) {
            (FieldType::Array, ValueKind::String(_) | ValueKind::Number) => true,
            (FieldType::Array, _) | (_, ValueKind::Null) => false,
            (FieldType::String | FieldType::Time, ValueKind::String(_))
            | (FieldType::Number, ValueKind::Number)
            | (FieldType::Boolean, ValueKind::Bool) => true,
            (FieldType::String | FieldType::Number | FieldType::Boolean | FieldType::Time | FieldType::Object, _) => {
                false
            }
        }
    }
}

/// Checks a selection of a catalog whose fields are `declared` (name, type): its name by the
/// catalog name rule, at most four filters, each on a declared field with one of its type's
/// operators and a value of its kind (a `time` an RFC 3339 string), at most one of them on an
/// `array` field, a `results_limit` of 1 to 50, and `sort_field` with `sort_order` (`asc` or
/// `desc`) both or neither, the field declared.
///
/// ```
/// use catalog_domain::braze_fields::{check_selection, FieldType, SelectionFilter, SelectionProblem, ValueKind};
/// let declared = [("City", FieldType::String), ("Rating", FieldType::Number)];
/// let filters = [SelectionFilter { field: "Rating", operator: "greater than", value: ValueKind::Number }];
/// assert_eq!(check_selection("top", &filters, &declared, Some(5), Some("Rating"), Some("desc")), Ok(()));
/// let bad = [SelectionFilter { field: "City", operator: "greater than", value: ValueKind::String("NYC") }];
/// assert_eq!(check_selection("top", &bad, &declared, None, None, None), Err(SelectionProblem::InvalidFilter));
/// ```
pub fn check_selection(
    name: &str,
    filters: &[SelectionFilter<'_>],
    declared: &[(&str, FieldType)],
    results_limit: Option<i64>,
    sort_field: Option<&str>,
    sort_order: Option<&str>,
) -> Result<(), SelectionProblem> {
    if crate::catalog::validate_catalog_name(name).is_err() {
        return Err(SelectionProblem::InvalidName);
    }
    if filters.len() > MAX_SELECTION_FILTERS {
        return Err(SelectionProblem::TooManyFilters);
    }
    let mut arrays = 0;
    for filter in filters {
        let ty = declared.iter().find(|(name, _)| *name == filter.field).map(|(_, ty)| *ty);
        let Some(ty) = ty else { return Err(SelectionProblem::InvalidFilter) };
        let operator_fits = ty.operators().contains(&filter.operator);
        let value_fits = ty.filter_takes(filter.value)
            && !matches!((ty, filter.value), (FieldType::Time, ValueKind::String(text)) if parse_rfc3339(text).is_err());
        if !operator_fits || !value_fits {
            return Err(SelectionProblem::InvalidFilter);
        }
        if ty == FieldType::Array {
            arrays += 1;
        }
    }
    if arrays > 1 {
        return Err(SelectionProblem::TooManyArrays);
    }
    if results_limit.is_some_and(|limit| !(1..=MAX_SELECTION_RESULTS).contains(&limit)) {
        return Err(SelectionProblem::InvalidResultsLimit);
    }
    match (sort_field, sort_order) {
        (None, None) => Ok(()),
        (Some(_), None) | (None, Some(_)) => Err(SelectionProblem::InvalidSorting),
        (Some(field), Some(order)) => {
            if !declared.iter().any(|(name, _)| *name == field) {
                Err(SelectionProblem::InvalidSortField)
            } else if !matches!(order, "asc" | "desc") {
                Err(SelectionProblem::InvalidSortOrder)
            } else {
                Ok(())
            }
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
    fn reasons_are_distinct_snake_case() {
        use BrazeFieldProblem::*;
        let all = [
            InvalidFieldName,
            UndeclaredField,
            UncoercibleValue,
            ValueTooLarge,
            InvalidKeyInValueObject,
            TooDeepNesting,
            NulCharacter,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(|p| p.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        assert!(reasons.iter().all(|r| r.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }

    #[test]
    fn field_types_take_only_their_own_kind() {
        use ValueKind as V;
        let kinds = [V::Bool, V::Number, V::String("text"), V::Array, V::Object];
        for ty in FieldType::ALL {
            assert!(ty.accepts(V::Null), "{ty:?} takes null");
            let taken: Vec<_> = kinds.iter().filter(|k| ty.accepts(**k)).collect();
            let expected = match ty {
                FieldType::String => vec![&V::String("text")],
                FieldType::Number => vec![&V::Number],
                FieldType::Boolean => vec![&V::Bool],
                FieldType::Time => vec![],
                FieldType::Object => vec![&V::Object],
                FieldType::Array => vec![&V::Array],
            };
            assert_eq!(taken, expected, "{ty:?}");
        }
        assert!(FieldType::Time.accepts(V::String("2021-09-03T09:03:19.967+00:00")));
        assert_eq!(FieldType::parse("string"), Some(FieldType::String));
        assert!(FieldType::ALL.iter().all(|t| FieldType::parse(t.as_str()) == Some(*t)));
    }

    #[test]
    fn selections() {
        use SelectionProblem as P;
        use ValueKind as V;
        let declared = [
            ("City", FieldType::String),
            ("Rating", FieldType::Number),
            ("Tags", FieldType::Array),
            ("More", FieldType::Array),
            ("Open", FieldType::Time),
        ];
        let f = |field, operator, value| SelectionFilter { field, operator, value };
        let ok = [
            f("City", "equals", V::String("NYC")),
            f("Rating", "greater than", V::Number),
            f("Tags", "includes value", V::String("x")),
            f("Open", "after", V::String("2024-01-01T00:00:00Z")),
        ];
        assert_eq!(check_selection("sel", &ok, &declared, Some(50), Some("Rating"), Some("asc")), Ok(()));
        assert_eq!(check_selection("a b", &[], &declared, None, None, None), Err(P::InvalidName));
        let five = [f("City", "equals", V::String("a")); 5];
        assert_eq!(check_selection("sel", &five, &declared, None, None, None), Err(P::TooManyFilters));
        for bad in [
            f("Nope", "equals", V::String("a")),
            f("City", "is", V::String("a")),
            f("Rating", "equals", V::String("5")),
            f("Open", "before", V::String("soon")),
        ] {
            assert_eq!(check_selection("sel", &[bad], &declared, None, None, None), Err(P::InvalidFilter), "{bad:?}");
        }
        let two_arrays = [f("Tags", "includes value", V::String("a")), f("More", "includes value", V::Number)];
        assert_eq!(check_selection("sel", &two_arrays, &declared, None, None, None), Err(P::TooManyArrays));
        for limit in [0, 51] {
            assert_eq!(check_selection("sel", &[], &declared, Some(limit), None, None), Err(P::InvalidResultsLimit));
        }
        assert_eq!(check_selection("sel", &[], &declared, None, Some("City"), None), Err(P::InvalidSorting));
        assert_eq!(check_selection("sel", &[], &declared, None, Some("Nope"), Some("asc")), Err(P::InvalidSortField));
        assert_eq!(check_selection("sel", &[], &declared, None, Some("City"), Some("up")), Err(P::InvalidSortOrder));
    }

    #[test]
    fn field_declarations() {
        use FieldDeclarationProblem as P;
        assert_eq!(check_field_declarations([("id", "string"), ("Name", "string")], true, 500), Ok(()));
        assert_eq!(check_field_declarations([], true, 500), Err(P::IdNotFirst));
        assert_eq!(check_field_declarations([("id", "number")], true, 500), Err(P::IdNotFirst));
        assert_eq!(check_field_declarations([("id", "string"), ("id", "string")], true, 500), Err(P::InvalidName));
        assert_eq!(check_field_declarations([("id", "string")], false, 50), Err(P::InvalidName));
        assert_eq!(check_field_declarations([("a.b", "string")], false, 50), Err(P::InvalidName));
        assert_eq!(check_field_declarations([("a", "string"), ("a", "number")], false, 50), Err(P::NotUnique));
        assert_eq!(check_field_declarations([("a", "string"), ("b", "number")], false, 1), Err(P::TooMany { max: 1 }));
        assert_eq!(check_field_declarations([], false, 50), Ok(()));
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
