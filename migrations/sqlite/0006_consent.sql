-- Consent with history, and the audit log.

-- A member's current consent per channel and purpose: granted or revoked, with where the last
-- change came from (`api`, `import`, `unsubscribe-one-click`, `sms-reply:twilio`, ...), who made
-- it (`member` when it was the member's own decision, else the API caller, `import`, `cli`) and
-- when. No row: the member never said (what that means is the `[consent]` policy's call).
CREATE TABLE consents (
    member_id  INTEGER NOT NULL REFERENCES members (id),
    channel    TEXT    NOT NULL,
    purpose    TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('granted', 'revoked')),
    source     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (member_id, channel, purpose)
);

-- Every change of consent, append-only.
CREATE TABLE consent_history (
    id        INTEGER PRIMARY KEY,
    member_id INTEGER NOT NULL REFERENCES members (id),
    channel   TEXT    NOT NULL,
    purpose   TEXT    NOT NULL,
    status    TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX consent_history_member ON consent_history (member_id, id);

-- The opt-outs recorded so far become revocations, keeping their source and time.
INSERT INTO consents (member_id, channel, purpose, status, source, actor, changed_at)
SELECT member_id, channel, purpose, 'revoked', source,
       CASE WHEN source LIKE 'unsubscribe%' OR source LIKE 'sms reply%' OR source LIKE 'sms-reply%'
            THEN 'member' ELSE 'api' END,
       created_at
FROM opt_outs;
INSERT INTO consent_history (member_id, channel, purpose, status, source, actor, at)
SELECT member_id, channel, purpose, status, source, actor, changed_at FROM consents ORDER BY changed_at;
DROP TABLE opt_outs;
-- Readers of the old table keep working.
CREATE VIEW opt_outs AS
SELECT member_id, channel, purpose, source, changed_at AS created_at FROM consents WHERE status = 'revoked';
-- Deleting through the view deletes the revocation (PostgreSQL does this for a simple view).
CREATE TRIGGER opt_outs_delete INSTEAD OF DELETE ON opt_outs
BEGIN
    DELETE FROM consents
    WHERE member_id = OLD.member_id AND channel = OLD.channel AND purpose = OLD.purpose AND status = 'revoked';
END;

-- Who changed consent, templates, rules and journeys, and when. `detail` is a JSON object.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

-- The digest of each rule's configuration and each template's files last written to the audit
-- log, so a start-up or reload records only what changed.
CREATE TABLE audited_config (
    kind   TEXT NOT NULL,
    name   TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
