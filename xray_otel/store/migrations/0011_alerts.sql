-- Alerts (issue 20, item 3): rules, the firings they made, and the webhook deliveries owed.
--
-- Every receiver process evaluates rules, so the database says who does: a process claims a rule
-- that is due (next_eval_at <= now()) with FOR UPDATE SKIP LOCKED, evaluates it, records any state
-- change, its firing and the delivery owed in that one transaction, and moves next_eval_at on. A rule is
-- thus evaluated once however many processes share the database, and a restart neither loses a firing
-- (committed with the state change) nor repeats one (the state says it was made).
CREATE TABLE alert_rules (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL UNIQUE,
    kind          text        NOT NULL CHECK (kind IN ('threshold', 'change')),
    pipeline      text        NOT NULL,    -- runs.name
    step          text,                    -- steps.name; NULL: the pipeline's runs as a whole
    spec          jsonb       NOT NULL,    -- the rest of the definition (alerts/rules.py Rule.spec)
    webhook       text,                    -- where firings and resolutions are POSTed; NULL: none
    secret        text,                    -- HMAC key for the webhook (write-only: never read back by the API)
    enabled       boolean     NOT NULL DEFAULT true,
    state         text        NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'ok', 'firing')),
    value         double precision,        -- the last evaluation's figure; NULL: none could be made
    note          text,                    -- why the last evaluation could not decide, or failed
    firing_id     uuid,                    -- the firing in force while state = 'firing'
    evaluated_at  timestamptz,
    next_eval_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_rules_due_idx ON alert_rules (next_eval_at) WHERE enabled;

-- One row per state change: a rule firing, or resolving (firing_id: the firing it ends).
CREATE TABLE alert_firings (
    id         uuid        PRIMARY KEY,    -- the webhook body's id: receivers deduplicate by it
    rule_id    bigint      NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    state      text        NOT NULL CHECK (state IN ('firing', 'resolved')),
    firing_id  uuid,                       -- for a resolution, the firing it ends
    at         timestamptz NOT NULL,
    value      double precision,
    detail     jsonb       NOT NULL        -- the webhook body, as sent
);
CREATE INDEX alert_firings_rule_idx ON alert_firings (rule_id, at DESC);

-- Deliveries owed: written with the firing, taken by any process (a lease: claimed_until), retried
-- with exponential backoff until the receiver answers 2xx. At least once; the receiver deduplicates by id.
CREATE TABLE alert_outbox (
    id            uuid        PRIMARY KEY REFERENCES alert_firings (id) ON DELETE CASCADE,
    rule_id       bigint      NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    url           text        NOT NULL,
    body          text        NOT NULL,    -- exactly the bytes signed and sent
    attempts      integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_outbox_due_idx ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- Every delivery attempt, answered or not.
CREATE TABLE alert_delivery_attempts (
    outbox_id  uuid        NOT NULL REFERENCES alert_outbox (id) ON DELETE CASCADE,
    attempt    integer     NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    status     integer,                    -- the HTTP status; NULL: no answer
    error      text,
    PRIMARY KEY (outbox_id, attempt)
);
