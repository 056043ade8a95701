//! A list of ids bound as one statement parameter, in each backend's fastest form.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo};
use sqlx::{Encode, Type};

/// Implements binding `$list` (a newtype over `Vec<$item>`) as one parameter: a JSON array text on
/// SQLite (read back with `json_each($n)`), a native array on PostgreSQL (`= ANY($n)`).
macro_rules! bound_as_one_list {
    ($list:ident, $item:ty) => {
        impl Type<Sqlite> for $list {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }
        }

        impl<'q> Encode<'q, Sqlite> for $list {
            fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
                let text = serde_json::to_string(&self.0)?;
                <String as Encode<'q, Sqlite>>::encode(text, buf)
            }
        }

        impl Type<Postgres> for $list {
            fn type_info() -> PgTypeInfo {
                <Vec<$item> as Type<Postgres>>::type_info()
            }
        }

        impl<'q> Encode<'q, Postgres> for $list {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <Vec<$item> as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
            }
        }
    };
}

/// Ids bound as one statement parameter (`text[]` on PostgreSQL): one parameter per chunk, so
/// every chunk is one set-based statement.
#[derive(Debug, Clone)]
pub(crate) struct IdList(pub Vec<String>);

/// Job ids bound as one parameter (`bigint[]` on PostgreSQL).
#[derive(Debug, Clone)]
pub(crate) struct IntList(pub Vec<i64>);

bound_as_one_list!(IdList, String);
bound_as_one_list!(IntList, i64);

/// PostgreSQL: the array `placeholder` as an expression the planner cannot see into (see
/// [`in_list`]).
pub(crate) fn opaque_list_pg(placeholder: &str) -> String {
    // A scalar subquery is planned apart (an InitPlan): the outer statement sees its value as an
    // unknown, as a generic plan would, and nothing is copied.
    // The cast keeps `= ANY(...)` reading it as one array, not as a subquery of rows.
    format!("(SELECT {placeholder})::text[]")
}

/// Set-membership SQL for a placeholder holding an [`IdList`], per backend.
///
/// On PostgreSQL the array is passed through a subquery ([`opaque_list_pg`]), so that the planner
/// goes by the key whatever the list's length: shown 10,000 ids of a catalog of a million, it
/// chose a sequential scan of the catalog (52 ms, measured with auto_explain in `bench_store`)
/// over the key lookups it makes for a list it cannot see into (22 ms); and a scan grows with the
/// catalog where lookups grow with the list.
pub(crate) fn in_list(pg: bool, column: &str, placeholder: &str) -> String {
    if pg {
        format!("{column} = ANY({})", opaque_list_pg(placeholder))
    } else {
        format!("{column} IN (SELECT value FROM json_each({placeholder}))")
    }
}
