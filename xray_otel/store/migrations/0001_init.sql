-- Runs: one per trace. A run row is written by whichever span arrives first and
-- refined by better sources later (see store/sql.py UPSERT_RUNS): the span that
-- carries xray.kind=run (source 2) beats the trace's root span (1), which beats a
-- placeholder made from a step that arrived early (0).
CREATE TABLE runs (
    id            uuid PRIMARY KEY,            -- the trace id
    source        smallint    NOT NULL,        -- 0 placeholder, 1 root span, 2 xray run span
    span_id       text,                        -- the span the run fields came from (NULL for placeholders)
    name          text,
    status        text        NOT NULL,        -- RUNNING | COMPLETED | FAILED
    service       text,
    tags          jsonb       NOT NULL DEFAULT '{}',
    inputs        jsonb,
    outputs       jsonb,
    error         text,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_started_idx ON runs (started_at DESC, id DESC);
CREATE INDEX runs_name_started_idx ON runs (name, started_at DESC, id DESC);
CREATE INDEX runs_status_started_idx ON runs (status, started_at DESC, id DESC);

-- Spans of a run, keyed by (run, span). Every span is kept here, the run span too,
-- so nothing a client sent is lost even when the run fields come from another span;
-- queries leave out the row whose span_id equals runs.span_id.
-- No foreign key to runs: the run row is upserted in the same transaction, and a
-- per-row FK trigger would cost ingest throughput for a guarantee we already have.
CREATE TABLE steps (
    run_id          uuid             NOT NULL,
    span_id         text             NOT NULL,  -- 16 hex chars for OTLP; the step uuid for legacy /ingest
    parent_span_id  text,
    name            text             NOT NULL,
    type            text             NOT NULL,
    status          text             NOT NULL,  -- COMPLETED | FAILED
    inputs          jsonb,
    outputs         jsonb,
    metadata        jsonb,
    reasoning       text,
    cost            double precision NOT NULL DEFAULT 0,
    model           text,
    input_tokens    bigint,
    output_tokens   bigint,
    input_count     integer,
    output_count    integer,
    rejections      jsonb,                      -- {reason: count}
    decisions       jsonb,                      -- [{id, accepted, reason, score, rank}]
    started_at      timestamptz,
    completed_at    timestamptz,
    error           text,
    service         text,
    attributes      jsonb            NOT NULL DEFAULT '{}',  -- span attributes not mapped to a column above
    otel            jsonb            NOT NULL DEFAULT '{}',  -- span kind, scope, events, links, trace state
    resource        jsonb            NOT NULL DEFAULT '{}',
    created_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, span_id)
);
CREATE INDEX steps_type_idx ON steps (type);
