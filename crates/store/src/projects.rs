//! Projects (tenants) and their API keys.

use crate::db::{now_ms, with_db, RowExt};
use crate::error::StoreError;
use crate::model::{ApiKey, ApiKeyId, CreatedApiKey, Principal, Project, ProjectId, Scope};
use crate::store::Store;
use crate::util::{hex, random_bytes, sha256_hex};

/// Characters of a token shown in key listings, to tell keys apart.
const PREFIX_LEN: usize = 12;

fn project_from_row(row: &impl RowExt) -> Result<Project, StoreError> {
    Ok(Project {
        id: ProjectId(row.int("id")?),
        key: row.text("key")?,
        name: row.text("name")?,
        created_at: row.int("created_at")?,
    })
}

fn parse_scopes(text: &str) -> Result<Vec<Scope>, StoreError> {
    text.split_whitespace().map(|w| w.parse::<Scope>().map_err(StoreError::Corrupt)).collect()
}

fn key_from_row(row: &impl RowExt) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: ApiKeyId(row.int("id")?),
        project_id: ProjectId(row.int("project_id")?),
        prefix: row.text("prefix")?,
        name: row.opt_text("name")?,
        scopes: parse_scopes(&row.text("scopes")?)?,
        created_at: row.int("created_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

/// A project key is used in URL paths, so it is held to the url-safe id charset.
fn check_project_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidProjectKey(key.to_owned()))
    }
}

impl Store {
    /// Creates a project. Its `key` must be url-safe (`[A-Za-z0-9_-]{1,64}`) and unique.
    pub async fn create_project(&self, key: &str, name: &str) -> Result<Project, StoreError> {
        check_project_key(key)?;
        let now = now_ms();
        let result = with_db!(self.db(), pool => {
            sqlx::query("INSERT INTO projects (key, name, created_at) VALUES ($1, $2, $3) RETURNING id, key, name, created_at")
                .bind(key)
                .bind(name)
                .bind(now)
                .fetch_one(pool)
                .await
                .map_err(StoreError::from)
                .and_then(|row| project_from_row(&row))
        });
        match result {
            Err(e) if e.is_unique_violation() => Err(StoreError::ProjectAlreadyExists(key.to_owned())),
            other => other,
        }
    }

    /// The project of this key.
    pub async fn get_project_by_key(&self, key: &str) -> Result<Project, StoreError> {
        with_db!(self.db(), pool => {
            let row = sqlx::query("SELECT id, key, name, created_at FROM projects WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(project_from_row).transpose()?.ok_or(StoreError::ProjectNotFound)
        })
    }

    /// The project of this id.
    pub async fn get_project(&self, id: ProjectId) -> Result<Project, StoreError> {
        with_db!(self.db(), pool => {
            let row = sqlx::query("SELECT id, key, name, created_at FROM projects WHERE id = $1")
                .bind(id.0)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(project_from_row).transpose()?.ok_or(StoreError::ProjectNotFound)
        })
    }

    /// Every project, oldest first (an operator's view; there are few).
    pub async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        with_db!(self.db(), pool => {
            let rows = sqlx::query("SELECT id, key, name, created_at FROM projects ORDER BY id").fetch_all(pool).await?;
            rows.iter().map(project_from_row).collect()
        })
    }

    /// Creates an API key for `project` with `scopes`. The returned token is shown this once: the
    /// store keeps only its SHA-256.
    pub async fn create_api_key(
        &self,
        project: ProjectId,
        name: Option<&str>,
        scopes: &[Scope],
    ) -> Result<CreatedApiKey, StoreError> {
        // 32 random bytes: guessing is hopeless, so a fast unsalted hash is enough to store it.
        let token = format!("cat_{}", hex(&random_bytes(32)?));
        let prefix: String = token.chars().take(PREFIX_LEN).collect();
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let scope_text = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        let now = now_ms();
        let key = with_db!(self.db(), pool => {
            let row = sqlx::query(
                "INSERT INTO api_keys (project_id, token_hash, prefix, name, scopes, created_at)
                 SELECT id, $2, $3, $4, $5, $6 FROM projects WHERE id = $1
                 RETURNING id, project_id, prefix, name, scopes, created_at, revoked_at",
            )
            .bind(project.0)
            .bind(sha256_hex(token.as_bytes()))
            .bind(&prefix)
            .bind(name)
            .bind(&scope_text)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(key_from_row).transpose()?.ok_or(StoreError::ProjectNotFound)?
        });
        Ok(CreatedApiKey { key, token })
    }

    /// The project's keys, revoked ones included, oldest first.
    pub async fn list_api_keys(&self, project: ProjectId) -> Result<Vec<ApiKey>, StoreError> {
        with_db!(self.db(), pool => {
            let rows = sqlx::query(
                "SELECT id, project_id, prefix, name, scopes, created_at, revoked_at FROM api_keys
                 WHERE project_id = $1 ORDER BY id",
            )
            .bind(project.0)
            .fetch_all(pool)
            .await?;
            rows.iter().map(key_from_row).collect()
        })
    }

    /// Revokes a key of the project; it stops authenticating at once. Revoking twice is fine.
    pub async fn revoke_api_key(&self, project: ProjectId, key: ApiKeyId) -> Result<(), StoreError> {
        self.revoke(key, Some(project)).await
    }

    /// Revokes a key, of `project` only when one is given (the operator's command gives none).
    pub(crate) async fn revoke(&self, key: ApiKeyId, project: Option<ProjectId>) -> Result<(), StoreError> {
        let now = now_ms();
        let done = with_db!(self.db(), pool => {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3)
                 WHERE id = $1 AND ($2 IS NULL OR project_id = $2)",
            )
            .bind(key.0)
            .bind(project.map(|p| p.0))
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::ApiKeyNotFound);
        }
        self.forget_api_key(key);
        Ok(())
    }

    /// True when the key exists and is not revoked.
    pub(crate) async fn api_key_live_in_db(&self, key: ApiKeyId) -> Result<bool, StoreError> {
        with_db!(self.db(), pool => {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE id = $1 AND revoked_at IS NULL")
                .bind(key.0)
                .fetch_one(pool)
                .await?;
            Ok(row.int("n")? > 0)
        })
    }

    /// The principal of a bearer token, or `None` when it matches no active key.
    ///
    /// The lookup is by SHA-256 of the token, so the database compares hashes, never the secret:
    /// timing reveals nothing an attacker can steer towards the real token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        self.authenticate_hash(&sha256_hex(token.as_bytes())).await
    }

    /// The principal of the token whose SHA-256 is `hash`.
    pub(crate) async fn authenticate_hash(&self, hash: &str) -> Result<Option<Principal>, StoreError> {
        with_db!(self.db(), pool => {
            let row = sqlx::query(
                "SELECT k.id, k.project_id, k.scopes, p.key FROM api_keys k JOIN projects p ON p.id = k.project_id
                 WHERE k.token_hash = $1 AND k.revoked_at IS NULL",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await?;
            match row {
                None => Ok(None),
                Some(row) => Ok(Some(Principal {
                    project_id: ProjectId(row.int("project_id")?),
                    project_key: row.text("key")?,
                    key_id: ApiKeyId(row.int("id")?),
                    scopes: parse_scopes(&row.text("scopes")?)?,
                })),
            }
        })
    }
}
