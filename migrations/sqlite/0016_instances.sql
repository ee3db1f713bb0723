-- Each daemon's heartbeat, written at every tick (one upsert): when it started, when it was last
-- seen, its last evaluation tick (when, how long) and its providers' health as JSON (circuit
-- state, calls by outcome, mean latency), which lives in the daemon's memory. `tidings status`
-- reads it; an instance not seen for a while is shown as stale.
CREATE TABLE instances (
    instance_id  TEXT PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    seen_at      INTEGER NOT NULL,
    last_tick_at INTEGER,
    last_tick_ms INTEGER,
    providers    TEXT NOT NULL DEFAULT '[]'
);
