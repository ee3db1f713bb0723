-- The instance that last handled each message (its lease owner when it was finalized or
-- handed to a provider), so operators can tell which daemon sent what.
ALTER TABLE messages ADD COLUMN instance TEXT;
