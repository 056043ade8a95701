-- The fields a catalog was created with (Braze `fields`: a name and a type each), so a facade can
-- show them and check items against them. A catalog with no row here declared nothing and takes
-- any field. `position` keeps the order they were declared in. The rows go with their catalog.
CREATE TABLE catalog_fields (
    catalog_id BIGINT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    name       TEXT COLLATE "C" NOT NULL,
    type       TEXT NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (catalog_id, name)
);
