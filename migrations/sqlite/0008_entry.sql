-- Entry triggers and transactional messages.

-- What the host (or the daemon itself, for built-in events) said about the event: a JSON object,
-- exposed to templates as `occurrence.event.*`.
ALTER TABLE events ADD COLUMN data TEXT;
-- The member_changes counter's value in the transaction that recorded the event: an event rule
-- reads the events stamped above the counter its last tick saw, so one committed during a tick
-- is found by the next (as members are).
ALTER TABLE events ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_kind_change ON events (kind, change_seq);

-- Transactional sends by idempotency key: the request as first accepted, so a retry answers
-- with the same messages and a reused key with another request is refused.
CREATE TABLE send_requests (
    idempotency_key TEXT    PRIMARY KEY,
    request         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
