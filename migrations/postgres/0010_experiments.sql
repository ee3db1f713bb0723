-- Experiments: the experiment a message's member was in and their arm (a variant's id, or
-- holdout: the message is recorded as skipped and never sent). NULL for rules without one.
ALTER TABLE messages ADD COLUMN experiment TEXT;
ALTER TABLE messages ADD COLUMN variant TEXT;
-- Conversions are events of a kind after a member's message: the report looks them up by
-- member, kind and time.
CREATE INDEX events_member_kind_at ON events (member_id, kind, at);
