-- Member rights: an erased member's row stays as a tombstone (its messages keep their member_id
-- for statistics) with every personal field cleared, an opaque external id and erased_at set.
-- Tombstones are left out of evaluation, the value refresh and the member count.
ALTER TABLE members ADD COLUMN erased_at INTEGER;
