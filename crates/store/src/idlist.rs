//! A list of ids bound as one statement parameter, in each backend's fastest form.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo};
use sqlx::{Encode, Type};

/// Ids bound as a JSON array text on SQLite (read back with `json_each($n)`) and as a `text[]` on
/// PostgreSQL (`= ANY($n)`): one parameter per chunk, so every chunk is one set-based statement.
#[derive(Debug, Clone)]
pub(crate) struct IdList(pub Vec<String>);

/// Set-membership SQL for a placeholder holding an [`IdList`], per backend.
pub(crate) fn in_list(pg: bool, column: &str, placeholder: &str) -> String {
    if pg {
        format!("{column} = ANY({placeholder})")
    } else {
        format!("{column} IN (SELECT value FROM json_each({placeholder}))")
    }
}

impl Type<Sqlite> for IdList {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for IdList {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        let text = serde_json::to_string(&self.0)?;
        <String as Encode<'q, Sqlite>>::encode(text, buf)
    }
}

impl Type<Postgres> for IdList {
    fn type_info() -> PgTypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for IdList {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<String> as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// Job ids bound as one parameter: a JSON array on SQLite (`json_each($n)`), a `bigint[]` on
/// PostgreSQL (`= ANY($n)`), like [`IdList`].
#[derive(Debug, Clone)]
pub(crate) struct IntList(pub Vec<i64>);

impl Type<Sqlite> for IntList {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for IntList {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        let text = serde_json::to_string(&self.0)?;
        <String as Encode<'q, Sqlite>>::encode(text, buf)
    }
}

impl Type<Postgres> for IntList {
    fn type_info() -> PgTypeInfo {
        <Vec<i64> as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for IntList {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<i64> as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}
