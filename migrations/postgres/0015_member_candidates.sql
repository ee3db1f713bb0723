-- What the evaluator narrows a rule's members by (triggers/narrow.rs), so a tick reads only the
-- members who may have an occurrence rather than every member: the month and day of the member
-- dates (`MM-DD`, the last five characters of `YYYY-MM-DD`), the registered lunar birthday, the
-- instant an inactivity crossing counts from, and the change counter; each with the id the
-- evaluator pages by.
CREATE INDEX members_birth_md ON members (right(birth_date, 5), id);
CREATE INDEX members_since_md ON members (right(member_since, 5), id);
CREATE INDEX members_lunar_birthday ON members (lunar_birthday, id);
CREATE INDEX members_activity ON members (coalesce(last_activity_at, created_at), id);
CREATE INDEX members_change_seq ON members (change_seq, id);
