-- Templates as versions in the database: each key's whole content (every locale's parts, its
-- provider mappings and fixture) as JSON, one row per version. A version is a draft until
-- published; publishing supersedes the key's previous published version, so exactly one is
-- published per key. What sends is the published versions.
CREATE TABLE template_versions (
    id           BIGSERIAL PRIMARY KEY,
    key          TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    -- draft, published or superseded
    state        TEXT    NOT NULL CHECK (state IN ('draft', 'published', 'superseded')),
    content      TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    created_by   TEXT    NOT NULL,
    note         TEXT,
    -- The version whose content a rollback copied.
    rollback_of  BIGINT,
    published_at BIGINT,
    UNIQUE (key, version)
);
CREATE UNIQUE INDEX template_versions_published ON template_versions (key) WHERE state = 'published';
