-- Rules and journeys defined through the API, as an append-only history: every create, change,
-- enable, disable and removal is a new row. The row with the highest seq for a (kind, id) is in
-- force; a NULL body means removed. They are merged with the configuration file's: a stored
-- definition with the id of a configured one takes its place.
CREATE TABLE definitions (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    -- rule or journey
    kind  TEXT    NOT NULL CHECK (kind IN ('rule', 'journey')),
    id    TEXT    NOT NULL,
    -- The definition as written ([[rules]] / [[journeys]] keys), JSON; NULL: removed.
    body  TEXT,
    actor TEXT    NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX definitions_kind_id ON definitions (kind, id, seq);
