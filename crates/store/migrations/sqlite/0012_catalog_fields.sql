-- The fields a catalog was created with (Braze `fields`: a name and a type each; Bloomreach's
-- field definitions: a name, a type and whether it is searchable), so a facade can show them and
-- check items against them. A catalog with no row here declared nothing and takes any field.
-- `position` keeps the order they were declared in. The rows go with their catalog.
CREATE TABLE catalog_fields (
    catalog_id INTEGER NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    searchable INTEGER,
    PRIMARY KEY (catalog_id, name)
) WITHOUT ROWID;

-- A display name apart from the catalog's name (Bloomreach: a catalog has an id, which is its
-- catalogd name, and a name people read, which may be anything and change).
CREATE TABLE catalog_titles (
    catalog_id INTEGER PRIMARY KEY REFERENCES catalogs(id) ON DELETE CASCADE,
    title      TEXT NOT NULL
);

-- A catalog's selections (Braze): a name and the selection as the facade checked it (JSON).
CREATE TABLE catalog_selections (
    catalog_id INTEGER NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (catalog_id, name)
);
