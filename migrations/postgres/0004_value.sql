-- Lunar birthdays, member value (RFM scores, segments, churn risk) and the fitted models.

-- A lunar birthday as registered: `MM-DD`, or `LMM-DD` for a leap month (see triggers/calendar).
ALTER TABLE members ADD COLUMN lunar_birthday TEXT;

-- Each member's value as the last nightly refresh computed it: RFM quintile scores (0 without a
-- purchase), the segment, and from the BG/NBD model P(alive) and the expected purchases over the
-- configured horizon. Written by the refresh; only a member whose P(alive) crossed a churn rule's
-- threshold counts as a member change (so the next tick looks at them again).
CREATE TABLE member_value (
    member_id          BIGINT PRIMARY KEY REFERENCES members (id),
    recency_days       DOUBLE PRECISION,
    frequency          BIGINT NOT NULL,
    monetary           DOUBLE PRECISION NOT NULL,
    r_score            BIGINT NOT NULL,
    f_score            BIGINT NOT NULL,
    m_score            BIGINT NOT NULL,
    segment            TEXT    NOT NULL,
    p_alive            DOUBLE PRECISION,
    expected_purchases DOUBLE PRECISION,
    last_purchase_at   BIGINT,
    -- When P(alive) last crossed below a churn_risk rule's threshold since the last purchase.
    churn_crossed_at   BIGINT,
    scored_at          BIGINT NOT NULL
);

-- Every fit attempted: parameters, log-likelihood, whether it converged and was accepted. The
-- current model is the latest accepted one; a fit that did not converge never replaces it.
CREATE TABLE models (
    id             BIGSERIAL PRIMARY KEY,
    kind           TEXT    NOT NULL,
    fitted_at      BIGINT NOT NULL,
    params         TEXT    NOT NULL,
    log_likelihood DOUBLE PRECISION,
    customers      BIGINT NOT NULL,
    iterations     BIGINT NOT NULL,
    converged      BOOLEAN NOT NULL,
    accepted       BOOLEAN NOT NULL,
    at_risk        BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    note           TEXT
);
CREATE INDEX models_accepted ON models (kind, id) WHERE accepted;
CREATE INDEX events_kind_member ON events (kind, member_id, at);
-- Inbound SMS (STOP) finds its members by number.
CREATE INDEX members_phone ON members (phone);
