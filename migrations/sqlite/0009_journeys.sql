-- Journeys (multi-step flows) and coupon codes.

-- One member's passage through one journey, per occurrence of its entry trigger. Re-entry rules
-- read it; an exit event (a purchase) moves every active run of the member to `exited`.
CREATE TABLE journey_runs (
    id          INTEGER PRIMARY KEY,
    journey_id  TEXT    NOT NULL,
    member_id   INTEGER NOT NULL REFERENCES members (id),
    -- The entry trigger's occurrence key, e.g. inactive60:2026-11-02T09:30:00Z.
    entry_key   TEXT    NOT NULL,
    entered_at  INTEGER NOT NULL,
    -- active, exited (an exit_on event) or completed (its last step came due)
    state       TEXT    NOT NULL,
    exit_reason TEXT,
    ended_at    INTEGER,
    UNIQUE (journey_id, member_id, entry_key)
);
CREATE INDEX journey_runs_member ON journey_runs (member_id, state);

-- Coupon codes imported into pools; a code is issued once, to one message (and its member).
CREATE TABLE coupon_codes (
    id          INTEGER PRIMARY KEY,
    pool        TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    member_id   INTEGER REFERENCES members (id),
    message_id  INTEGER UNIQUE REFERENCES messages (id),
    issued_at   INTEGER,
    imported_at INTEGER NOT NULL,
    UNIQUE (pool, code)
);
CREATE INDEX coupon_codes_free ON coupon_codes (pool, id) WHERE message_id IS NULL;
