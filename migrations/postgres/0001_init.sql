-- The pipeline's tables, as in migrations/sqlite/0001_init.sql in PostgreSQL's dialect.
-- Instants are BIGINT epoch milliseconds (UTC); civil dates are YYYY-MM-DD text; JSON documents
-- (attributes, vars, rendered) are stored as the text serde_json writes, as on SQLite, so an
-- unchanged row compares equal.

CREATE TABLE members (
    id               BIGSERIAL PRIMARY KEY,
    external_id      TEXT    NOT NULL UNIQUE,
    name             TEXT    NOT NULL,
    phone            TEXT,
    email            TEXT,
    locale           TEXT,
    time_zone        TEXT,
    birth_date       TEXT,
    member_since     TEXT,
    tier             TEXT,
    points           BIGINT  NOT NULL DEFAULT 0,
    attributes       TEXT    NOT NULL DEFAULT '{}',
    last_activity_at BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    -- The member_changes counter's value when the row last changed (see below).
    change_seq       BIGINT  NOT NULL DEFAULT 0
);

-- A counter bumped inside every transaction that changes members. A tick records the value it
-- saw at its start; members with a higher change_seq were changed after (or while) it read them
-- and are evaluated as changed by the next tick. Unlike a timestamp taken before the write
-- commits, it cannot miss a member changed during a tick.
CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('member_changes', 0);

CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT UNIQUE,
    member_id   BIGINT  NOT NULL REFERENCES members (id),
    kind        TEXT    NOT NULL,
    amount      DOUBLE PRECISION,
    at          BIGINT  NOT NULL,
    received_at BIGINT  NOT NULL
);
CREATE INDEX events_member_at ON events (member_id, at);

-- How far each rule has been evaluated: the next window starts at evaluated_until; members
-- whose change_seq is above seen_changes were not seen by the last tick.
CREATE TABLE rule_state (
    rule_id         TEXT   PRIMARY KEY,
    evaluated_until BIGINT NOT NULL,
    seen_changes    BIGINT NOT NULL,
    evaluated_at    BIGINT NOT NULL
);

CREATE TABLE messages (
    id          BIGSERIAL PRIMARY KEY,
    -- rule:member:occurrence:channel; one message per key, ever.
    dedupe_key  TEXT    NOT NULL UNIQUE,
    rule_id     TEXT    NOT NULL,
    member_id   BIGINT  NOT NULL REFERENCES members (id),
    occurrence  TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    vars        TEXT    NOT NULL,
    run_at      BIGINT  NOT NULL,
    deadline    BIGINT,
    -- scheduled, claimed, sending, sent, failed, dead, skipped, ambiguous
    state       TEXT    NOT NULL,
    reason      TEXT,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    provider    TEXT,
    provider_id TEXT,
    rendered    TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    sent_at     BIGINT
);
CREATE INDEX messages_due ON messages (run_at) WHERE state = 'scheduled';
CREATE INDEX messages_leased ON messages (lease_until) WHERE state IN ('claimed', 'sending');
CREATE INDEX messages_member ON messages (member_id);
CREATE INDEX messages_rule_state ON messages (rule_id, state);

-- Every state change of every message, with its detail: the message's history.
CREATE TABLE message_history (
    id         BIGSERIAL PRIMARY KEY,
    message_id BIGINT  NOT NULL REFERENCES messages (id),
    at         BIGINT  NOT NULL,
    state      TEXT    NOT NULL,
    detail     TEXT
);
CREATE INDEX message_history_message ON message_history (message_id);
