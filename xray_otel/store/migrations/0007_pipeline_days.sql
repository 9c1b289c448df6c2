-- Per-day summaries of each pipeline's steps, for /pipelines/{name} over long windows
-- (issue 5: 30 days read ~100,000 step rows at 100,000 runs, 535-680 ms; bench/queries.py).
--
-- A cache, checked at read time and filled after reads (queries/pipeline_days.py), never by
-- ingest: a UTC day of one run name is stored summarised, with a signature of the runs it was
-- computed from. A read uses a stored day only while the runs' signature still matches, so
-- late spans, renamed runs, a better run span and retention all show up without ingest doing
-- anything. Step rows never change once stored but for run_span, so a run's step rows are
-- known from its id, step_count, steps_run_span and started_at: the signature hashes those.
CREATE TABLE pipeline_days (
    name        text        NOT NULL,   -- runs.name
    day         date        NOT NULL,   -- UTC day of runs.started_at
    runs        bigint      NOT NULL,
    signature   numeric     NOT NULL,   -- queries/sql.py DAY_SIGNATURE over the day's runs
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, day)
);

-- One row per step name of a summarised day. Sums and counts merge exactly across days;
-- drop rates and durations are histograms (queries/pipeline_stats.py) so that percentiles merge too,
-- within the error the buckets allow.
CREATE TABLE pipeline_step_days (
    name             text    NOT NULL,
    day              date    NOT NULL,
    step             text    NOT NULL,
    count            bigint  NOT NULL,
    failed           bigint  NOT NULL,
    cost_sum         numeric NOT NULL,
    drop_n           bigint  NOT NULL,
    drop_sum         double precision,
    offset_n         bigint  NOT NULL,
    offset_sum       double precision,
    types            text[]  NOT NULL,
    type_counts      bigint[] NOT NULL,
    drop_histogram     bytea,   -- (key, count) pairs in key order, each an int8 in network order:
    duration_histogram bytea,   -- packed, as arrays cost ~30 ns per element to read back
    reasons          text[],
    reason_counts    numeric[],
    PRIMARY KEY (name, day, step)
);

-- The signature is read from the runs index alone: what it hashes joins the columns kept there.
DROP INDEX runs_name_started_idx;
CREATE INDEX runs_name_started_idx ON runs (name, started_at DESC, id DESC)
    INCLUDE (status, completed_at, total_cost, step_count, steps_run_span);
