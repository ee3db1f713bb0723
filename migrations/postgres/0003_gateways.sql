-- Gateways: push devices, suppressed addresses, opt-outs, delivery receipts and channel fallback.

-- A member's push targets: FCM registration tokens, APNs device tokens and Web Push
-- subscriptions (the endpoint URL is the token; p256dh and auth are the subscription's keys).
CREATE TABLE push_devices (
    id         BIGSERIAL PRIMARY KEY,
    member_id  BIGINT  NOT NULL REFERENCES members (id),
    platform   TEXT    NOT NULL,
    token      TEXT    NOT NULL,
    p256dh     TEXT,
    auth       TEXT,
    created_at BIGINT  NOT NULL,
    UNIQUE (platform, token)
);
CREATE INDEX push_devices_member ON push_devices (member_id);

-- Addresses never sent to again: hard bounces, invalid numbers, complaints. Keyed by the
-- address, not the member, so a re-import of the member does not lift it.
CREATE TABLE suppressions (
    channel    TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (channel, address)
);

-- A member's "stop" on a channel for a purpose (marketing or service), with where it came from.
CREATE TABLE opt_outs (
    member_id  BIGINT  NOT NULL REFERENCES members (id),
    channel    TEXT    NOT NULL,
    purpose    TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (member_id, channel, purpose)
);

-- Delivery receipts: the provider's last status code, and when delivery was confirmed.
ALTER TABLE messages ADD COLUMN provider_code TEXT;
ALTER TABLE messages ADD COLUMN delivered_at BIGINT;
-- The channels to fall back to, in order, when the member has no address on this one
-- (comma-separated; empty for none). The chosen channel replaces channel when it is sent.
ALTER TABLE messages ADD COLUMN fallback TEXT NOT NULL DEFAULT '';
-- Whether the rule is marketing (needs consent, carries unsubscribe links) or service.
ALTER TABLE messages ADD COLUMN purpose TEXT NOT NULL DEFAULT 'marketing';
CREATE INDEX messages_provider_id ON messages (provider, provider_id);
