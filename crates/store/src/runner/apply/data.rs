//! The data access a chunk needs, the same on both backends: [`ChunkData`], implemented once (by a
//! macro) for each backend's write transaction, so the code of each job kind is written once.

use super::Savepoint;
use crate::db::{to_i64, RowExt, WriteTx};
use crate::idlist::{IdList, IntList};
use crate::runner::checkpoint::CheckpointRow;
use crate::runner::sql::Statements;
use catalog_domain::apply::InputError;
use std::future::Future;

/// A category as stored: id, external id, name.
pub(crate) type StoredCategory = (String, Option<String>, Option<String>);

/// A chunk's open write transaction.
pub(crate) trait ChunkData: Send {
    /// Runs `sql` with `$1` the catalog and `$2` the ids; answers the rows it changed.
    fn run_over_ids(
        &mut self,
        sql: &str,
        catalog: i64,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs `sql` with `$1` the catalog, `$2` rows as a JSON array and, when given, `$3` now.
    fn run_over_rows(
        &mut self,
        sql: &str,
        catalog: i64,
        rows: String,
        now: Option<i64>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs `sql` with `$1` the catalog and, when given, `$2` a row limit; answers the rows it
    /// changed.
    fn run_for_catalog(
        &mut self,
        sql: &str,
        catalog: i64,
        limit: Option<i64>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// The stored fields (JSON text) of the items `ids`, by id.
    fn read_items(
        &mut self,
        sql: &Statements,
        catalog: i64,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, crate::error::StoreError>> + Send;

    /// The stored external id and name of the categories `ids`, by id.
    fn read_categories(
        &mut self,
        sql: &Statements,
        catalog: i64,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<StoredCategory>, crate::error::StoreError>> + Send;

    /// Runs `sql` (`existing_items` or `existing_categories`) with `$1` the catalog and `$2` the
    /// ids; answers the ids it found.
    fn existing(
        &mut self,
        sql: &str,
        catalog: i64,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<String>, crate::error::StoreError>> + Send;

    /// Records a job's per-item failures.
    fn record_errors(
        &mut self,
        sql: &Statements,
        job: i64,
        errors: &[InputError],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Writes the chunk's checkpoint (`statement`, see `sql::checkpoint_sql`); false when its
    /// guard matched nothing.
    fn checkpoint(
        &mut self,
        statement: &str,
        row: &CheckpointRow,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// A savepoint step.
    fn savepoint(&mut self, step: Savepoint) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Runs `sql` (`$1` job ids) and answers the `id` column of its rows.
    fn job_ids(&mut self, sql: &str, jobs: Vec<i64>) -> impl Future<Output = Result<Vec<i64>, sqlx::Error>> + Send;

    /// Runs `sql` with `$1` rows as a JSON array, `$2` now and `$3` an expiry; answers the rows it
    /// changed.
    fn finish_jobs(
        &mut self,
        sql: &str,
        rows: String,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
}

macro_rules! impl_chunk_data {
    ($db:ty) => {
        impl ChunkData for WriteTx<$db> {
            async fn run_over_ids(&mut self, sql: &str, catalog: i64, ids: Vec<String>) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query(sql).bind(catalog).bind(IdList(ids)).execute(&mut **self).await?.rows_affected())
            }

            async fn run_over_rows(
                &mut self,
                sql: &str,
                catalog: i64,
                rows: String,
                now: Option<i64>,
            ) -> Result<u64, sqlx::Error> {
                let mut query = sqlx::query(sql).bind(catalog).bind(rows);
                if let Some(now) = now {
                    query = query.bind(now);
                }
                Ok(query.execute(&mut **self).await?.rows_affected())
            }

            async fn run_for_catalog(
                &mut self,
                sql: &str,
                catalog: i64,
                limit: Option<i64>,
            ) -> Result<u64, sqlx::Error> {
                let mut query = sqlx::query(sql).bind(catalog);
                if let Some(limit) = limit {
                    query = query.bind(limit);
                }
                Ok(query.execute(&mut **self).await?.rows_affected())
            }

            async fn read_items(
                &mut self,
                sql: &Statements,
                catalog: i64,
                ids: Vec<String>,
            ) -> Result<Vec<(String, String)>, crate::error::StoreError> {
                let rows =
                    sqlx::query(&sql.select_items).bind(catalog).bind(IdList(ids)).fetch_all(&mut **self).await?;
                rows.iter().map(|row| Ok((row.text("item_id")?, row.text("fields")?))).collect()
            }

            async fn read_categories(
                &mut self,
                sql: &Statements,
                catalog: i64,
                ids: Vec<String>,
            ) -> Result<Vec<StoredCategory>, crate::error::StoreError> {
                let rows =
                    sqlx::query(&sql.select_categories).bind(catalog).bind(IdList(ids)).fetch_all(&mut **self).await?;
                rows.iter()
                    .map(|row| Ok((row.text("category_id")?, row.opt_text("external_id")?, row.opt_text("name")?)))
                    .collect()
            }

            async fn existing(
                &mut self,
                sql: &str,
                catalog: i64,
                ids: Vec<String>,
            ) -> Result<Vec<String>, crate::error::StoreError> {
                let rows = sqlx::query(sql).bind(catalog).bind(IdList(ids)).fetch_all(&mut **self).await?;
                rows.iter().map(|row| row.text("id")).collect()
            }

            async fn record_errors(
                &mut self,
                sql: &Statements,
                job: i64,
                errors: &[InputError],
            ) -> Result<(), sqlx::Error> {
                for e in errors {
                    sqlx::query(sql.insert_error)
                        .bind(job)
                        .bind(to_i64(e.index))
                        .bind(storable(&e.item_id))
                        .bind(e.code.as_str())
                        .bind(e.title)
                        .bind(storable(&e.detail))
                        .bind(e.pointer.as_deref())
                        .execute(&mut **self)
                        .await?;
                }
                Ok(())
            }

            async fn checkpoint(&mut self, statement: &str, row: &CheckpointRow) -> Result<bool, sqlx::Error> {
                let query = crate::runner::checkpoint::bind_checkpoint!(sqlx::query(statement), row);
                let query = match row.catalog {
                    Some(catalog) => query.bind(catalog),
                    None => query,
                };
                Ok(query.execute(&mut **self).await?.rows_affected() > 0)
            }

            async fn savepoint(&mut self, step: Savepoint) -> Result<(), sqlx::Error> {
                sqlx::query(step.sql()).execute(&mut **self).await.map(|_| ())
            }

            async fn job_ids(&mut self, sql: &str, jobs: Vec<i64>) -> Result<Vec<i64>, sqlx::Error> {
                let rows = sqlx::query(sql).bind(IntList(jobs)).fetch_all(&mut **self).await?;
                rows.iter().map(|row| sqlx::Row::try_get::<i64, _>(row, "id")).collect()
            }

            async fn finish_jobs(
                &mut self,
                sql: &str,
                rows: String,
                now: i64,
                expires_at: i64,
            ) -> Result<u64, sqlx::Error> {
                let query = sqlx::query(sql).bind(rows).bind(now).bind(expires_at);
                Ok(query.execute(&mut **self).await?.rows_affected())
            }
        }
    };
}

/// Text an error record can hold on both backends: a NUL character (which PostgreSQL cannot store,
/// and which may be why the input failed) is written as the escape `\u0000`.
fn storable(text: &str) -> String {
    text.replace('\0', "\\u0000")
}

impl_chunk_data!(sqlx::Sqlite);
impl_chunk_data!(sqlx::Postgres);
