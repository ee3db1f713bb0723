-- Settling deadlines at each claim finds the scheduled messages past their deadline through
-- this index, instead of walking every due message (a burst of 100,000 due messages made each
-- claim read them all).
CREATE INDEX messages_deadline ON messages (deadline) WHERE state = 'scheduled' AND deadline IS NOT NULL;
