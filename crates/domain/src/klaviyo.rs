//! Klaviyo's compound ids, `{integration}:::{catalog}:::{external id}`.
//!
//! Only the `$custom` integration and the `$default` catalog exist (contracts/klaviyo.md); the
//! facade maps `$default` to a configured catalog of the key's project. The external id is free
//! text: it is split off at the first two separators, so it may itself contain `:::` (an id stored
//! through another dialect can then still be named here), and only its emptiness is refused.

use crate::ids::{self, BatchProblem, Dialect, IdProblem, RawId};
use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

/// What separates the parts of a compound id.
pub const SEPARATOR: &str = ":::";
/// The one supported integration.
pub const CUSTOM_INTEGRATION: &str = "$custom";
/// The one supported catalog.
pub const DEFAULT_CATALOG: &str = "$default";

/// Most jobs a project may have in progress (scheduled, queued or running) before Klaviyo's
/// create endpoints refuse another (contracts/klaviyo.md, "Limits"). The store enforces it inside
/// the job insert's transaction (its migration, 0011 on SQLite and 0012 on PostgreSQL, holds the same number).
///
/// ```
/// assert_eq!(catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS, 500);
/// ```
pub const MAX_JOBS_IN_PROGRESS: u64 = 500;

/// A parsed compound id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompoundId {
    /// The integration, `$custom`.
    pub integration: String,
    /// The catalog, `$default`.
    pub catalog: String,
    /// The item's (or category's) id in the catalog.
    pub external_id: String,
}

/// Why a string is not a usable compound id. `Display` is worded as a JSON:API `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompoundIdError {
    /// Fewer than three `:::`-separated parts.
    #[error("The id `{id}` must have the form `$custom:::$default:::<external id>`; it has {parts} part(s).")]
    WrongNumberOfParts {
        /// The id as given.
        id: String,
        /// How many parts it has.
        parts: usize,
    },
    /// Nothing after the second `:::`.
    #[error("The id `{id}` has an empty external id.")]
    EmptyExternalId {
        /// The id as given.
        id: String,
    },
    /// An integration other than `$custom`.
    #[error("Unsupported integration `{integration}`; only `$custom` is supported.")]
    UnsupportedIntegration {
        /// The integration given.
        integration: String,
    },
    /// A catalog other than `$default`.
    #[error("Unsupported catalog `{catalog}`; only `$default` is supported.")]
    UnsupportedCatalog {
        /// The catalog given.
        catalog: String,
    },
}

impl CompoundIdError {
    /// The `detail` of the JSON:API error.
    ///
    /// ```
    /// use catalog_domain::CompoundId;
    /// let error = CompoundId::parse("$custom:::other:::A").expect_err("an unsupported catalog");
    /// assert_eq!(error.detail(), "Unsupported catalog `other`; only `$default` is supported.");
    /// ```
    pub fn detail(&self) -> String {
        self.to_string()
    }
}

impl CompoundId {
    /// The compound id of `external_id` in the `$custom` integration's `$default` catalog.
    ///
    /// ```
    /// use catalog_domain::CompoundId;
    /// let id = CompoundId::custom_default("SKU-1");
    /// assert_eq!((id.integration.as_str(), id.catalog.as_str()), ("$custom", "$default"));
    /// ```
    pub fn custom_default(external_id: impl Into<String>) -> Self {
        CompoundId {
            integration: CUSTOM_INTEGRATION.to_owned(),
            catalog: DEFAULT_CATALOG.to_owned(),
            external_id: external_id.into(),
        }
    }

    /// Parse `{integration}:::{catalog}:::{external id}`, accepting only `$custom` and `$default`.
    ///
    /// ```
    /// use catalog_domain::{CompoundId, CompoundIdError};
    /// assert_eq!(CompoundId::parse("$custom:::$default:::SKU-1"), Ok(CompoundId::custom_default("SKU-1")));
    /// // The external id is what follows the second separator, so it may hold more of them.
    /// assert_eq!(CompoundId::parse("$custom:::$default:::a:::b").map(|id| id.external_id), Ok("a:::b".to_owned()));
    /// assert_eq!(
    ///     CompoundId::parse("SKU-1"),
    ///     Err(CompoundIdError::WrongNumberOfParts { id: "SKU-1".to_owned(), parts: 1 })
    /// );
    /// ```
    pub fn parse(id: &str) -> Result<CompoundId, CompoundIdError> {
        let mut parts = id.splitn(3, SEPARATOR);
        let (Some(integration), Some(catalog), Some(external_id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CompoundIdError::WrongNumberOfParts { id: id.to_owned(), parts: id.split(SEPARATOR).count() });
        };
        if integration != CUSTOM_INTEGRATION {
            return Err(CompoundIdError::UnsupportedIntegration { integration: integration.to_owned() });
        }
        if catalog != DEFAULT_CATALOG {
            return Err(CompoundIdError::UnsupportedCatalog { catalog: catalog.to_owned() });
        }
        if external_id.is_empty() {
            return Err(CompoundIdError::EmptyExternalId { id: id.to_owned() });
        }
        Ok(CompoundId {
            integration: integration.to_owned(),
            catalog: catalog.to_owned(),
            external_id: external_id.to_owned(),
        })
    }

    /// The compound id as Klaviyo writes it.
    ///
    /// ```
    /// use catalog_domain::CompoundId;
    /// assert_eq!(CompoundId::custom_default("SKU-1").render(), "$custom:::$default:::SKU-1");
    /// ```
    pub fn render(&self) -> String {
        self.to_string()
    }
}

/// Parse a compound id; the same as [`CompoundId::parse`].
///
/// ```
/// use catalog_domain::{klaviyo, CompoundId};
/// assert_eq!(klaviyo::parse("$custom:::$default:::A"), Ok(CompoundId::custom_default("A")));
/// ```
pub fn parse(id: &str) -> Result<CompoundId, CompoundIdError> {
    CompoundId::parse(id)
}

impl fmt::Display for CompoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{SEPARATOR}{}{SEPARATOR}{}", self.integration, self.catalog, self.external_id)
    }
}

impl FromStr for CompoundId {
    type Err = CompoundIdError;
    fn from_str(s: &str) -> Result<Self, CompoundIdError> {
        CompoundId::parse(s)
    }
}

/// Why one compound id of a Klaviyo request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KlaviyoIdProblem {
    /// The string is not a supported compound id.
    #[error(transparent)]
    Compound(#[from] CompoundIdError),
    /// The id (or its external id) breaks Klaviyo's id rule: missing, not a string, empty, or a
    /// duplicate in the request.
    #[error("{}", .0.klaviyo_detail())]
    Id(#[from] IdProblem),
}

impl KlaviyoIdProblem {
    /// The `detail` of the JSON:API error.
    ///
    /// ```
    /// use catalog_domain::klaviyo::validate_compound_ids;
    /// let verdicts = validate_compound_ids(vec!["$custom:::$default:::".into()]).expect("one id is within the limits");
    /// let problem = verdicts[0].as_ref().expect_err("an empty external id");
    /// assert_eq!(problem.detail(), "The id `$custom:::$default:::` has an empty external id.");
    /// ```
    pub fn detail(&self) -> String {
        self.to_string()
    }
}

/// The verdict on one compound id: its external id, or why it was refused.
pub type KlaviyoIdVerdict = Result<String, KlaviyoIdProblem>;

/// Validate the compound ids of a Klaviyo request in one go: one verdict per input, in request
/// order, each carrying the external id to use. Parsing comes first, then the rules of
/// [`Dialect::Klaviyo`] (see [`ids::validate_ids`]) apply to the external ids.
///
/// ```
/// use catalog_domain::klaviyo::{validate_compound_ids, KlaviyoIdProblem};
/// use catalog_domain::IdProblem;
/// let verdicts = validate_compound_ids(vec![
///     "$custom:::$default:::SKU-1".into(),
///     "SKU-2".into(),                      // not a compound id
///     "$custom:::$default:::SKU-1".into(), // the same external id again
/// ])
/// .expect("within Klaviyo's 100 resources");
/// assert_eq!(verdicts[0], Ok("SKU-1".to_owned()));
/// assert!(matches!(verdicts[1], Err(KlaviyoIdProblem::Compound(_))));
/// assert_eq!(verdicts[2], Err(KlaviyoIdProblem::Id(IdProblem::Duplicate { first_index: 0 })));
/// ```
pub fn validate_compound_ids(ids: Vec<RawId>) -> Result<Vec<KlaviyoIdVerdict>, BatchProblem> {
    ids::check_batch_len(Dialect::Klaviyo, ids.len())?;
    let mut parse_errors: Vec<Option<CompoundIdError>> = Vec::with_capacity(ids.len());
    let externals: Vec<RawId> = ids
        .into_iter()
        .map(|raw| match raw {
            RawId::String(id) => match CompoundId::parse(&id) {
                Ok(compound) => {
                    parse_errors.push(None);
                    RawId::String(compound.external_id)
                }
                Err(error) => {
                    parse_errors.push(Some(error));
                    // Stands in for the refused id so indices stay aligned; its verdict is replaced.
                    RawId::Missing
                }
            },
            other => {
                parse_errors.push(None);
                other
            }
        })
        .collect();
    let verdicts = ids::validate_ids(Dialect::Klaviyo, externals)?;
    Ok(verdicts
        .into_iter()
        .zip(parse_errors)
        .map(|(verdict, parse_error)| match parse_error {
            Some(error) => Err(KlaviyoIdProblem::Compound(error)),
            None => verdict.map_err(KlaviyoIdProblem::Id),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klaviyo_parses_custom_default_ids() {
        let id = CompoundId::parse("$custom:::$default:::SAMPLE-DATA-ITEM-1").expect("valid");
        assert_eq!(id, CompoundId::custom_default("SAMPLE-DATA-ITEM-1"));
        assert_eq!(id.render(), "$custom:::$default:::SAMPLE-DATA-ITEM-1");
    }

    #[test]
    fn klaviyo_external_id_may_contain_the_separator() {
        let id = parse("$custom:::$default:::a:::b").expect("valid");
        assert_eq!(id.external_id, "a:::b");
    }

    #[test]
    fn klaviyo_rejects_wrong_number_of_parts() {
        for (id, parts) in [("", 1), ("ITEM-1", 1), ("$custom:::$default", 2)] {
            assert_eq!(parse(id), Err(CompoundIdError::WrongNumberOfParts { id: id.to_owned(), parts }));
        }
    }

    #[test]
    fn klaviyo_rejects_empty_external_id() {
        assert!(matches!(parse("$custom:::$default:::"), Err(CompoundIdError::EmptyExternalId { .. })));
    }

    #[test]
    fn klaviyo_rejects_unsupported_integration() {
        assert_eq!(
            parse("$shopify:::$default:::A"),
            Err(CompoundIdError::UnsupportedIntegration { integration: "$shopify".to_owned() })
        );
    }

    #[test]
    fn klaviyo_rejects_unsupported_catalog() {
        let error = parse("$custom:::other:::A").expect_err("unsupported");
        assert_eq!(error, CompoundIdError::UnsupportedCatalog { catalog: "other".to_owned() });
        assert!(error.detail().contains("$default"));
    }

    #[test]
    fn klaviyo_validates_compound_ids_in_request_order() {
        let verdicts = validate_compound_ids(vec![
            "$custom:::$default:::A".into(),
            "A".into(),
            RawId::NotAString,
            "$custom:::$default:::A".into(),
            "$custom:::$default:::B".into(),
        ])
        .expect("batch accepted");
        assert_eq!(verdicts[0], Ok("A".to_owned()));
        assert!(matches!(verdicts[1], Err(KlaviyoIdProblem::Compound(_))));
        assert_eq!(verdicts[2], Err(KlaviyoIdProblem::Id(IdProblem::NotAString)));
        assert_eq!(verdicts[3], Err(KlaviyoIdProblem::Id(IdProblem::Duplicate { first_index: 0 })));
        assert_eq!(verdicts[4], Ok("B".to_owned()));
        for verdict in &verdicts {
            if let Err(problem) = verdict {
                assert!(!problem.detail().is_empty());
            }
        }
    }

    #[test]
    fn klaviyo_compound_batch_limits_apply() {
        let too_many = vec![RawId::from("$custom:::$default:::A"); 101];
        assert_eq!(validate_compound_ids(too_many), Err(BatchProblem::TooManyItems { max: 100, got: 101 }));
        assert_eq!(validate_compound_ids(Vec::new()), Err(BatchProblem::Empty));
    }
}
