-- Settling deadlines at each claim finds the scheduled messages past their deadline through
-- this index, instead of walking every due message (a burst of 100,000 due messages made each
-- claim read them all).
CREATE INDEX messages_deadline ON messages (deadline) WHERE state = 'scheduled' AND deadline IS NOT NULL;
-- Claims take the due messages in (run_at, id) order: with `messages_due` on run_at alone,
-- PostgreSQL sorted every due message at each claim.
CREATE INDEX messages_due_order ON messages (run_at, id) WHERE state = 'scheduled';
