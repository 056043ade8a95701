//! Bloomreach Engagement's catalog API (contracts/bloomreach.md), under
//! `/data/v2/projects/{project_id}/catalogs`: bulk delete (POST and DELETE, `{"item_id"}` objects or
//! bare strings), bulk update (PUT, full replace), partial update (per-item `upsert`), catalog
//! create and list, and item list (`count`/`skip`).
//!
//! Auth is HTTP Basic, `base64(<api key id>:<api secret>)`: the secret is a catalogd token and the
//! key id must be that token's key id. A key of another project than `{project_id}` is 401, a key
//! without the scope 403. `{catalog_id}` is the catalog's name (what `POST .../catalogs` answers as
//! `id`).
//!
//! The bulk endpoints answer 200 with one result per input in request order; a bad input fails
//! alone. Whole-request problems are 400 in `{"errors":{"_global":[...]},"success":false}`; an
//! unknown catalog is the documented 404. The per-catalog quota (5 per 10 s) is shared by the bulk
//! endpoints, is taken once the catalog is known to exist, and refuses with 429 and `Retry-After`.
//! Id rules and messages come from catalog-domain; jobs from catalog-store.
//!
//! A catalog's declared fields (name, type, searchable) are enforced: a property must be declared
//! and its value of the field's type (catalog-domain's `check_property`), else that input fails
//! (400 on the single-item endpoints); the item list searches the searchable fields only. Catalog
//! management, the single-item endpoints and the item list run under the native quotas
//! (`auth::native`: Bloomreach documents no figure for them).

mod auth;
mod catalogs;
mod error;
mod items;
mod routes;

pub use routes::routes;
