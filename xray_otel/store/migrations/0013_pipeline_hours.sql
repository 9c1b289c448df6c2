-- Per-hour summaries of each pipeline's steps (issue 20, bench/health.py): /pipelines/{name}/series by
-- hour, and the part-days at either end of any window (/series by day, /changes), read a whole hour
-- from here instead of its step rows (30 days by hour summarised 100,000 step rows per read).
--
-- A cache with the rule of the per-day one (0007): a UTC hour of one run name is stored with the
-- signature of its runs (pipeline_days.py RUN_SIGNATURE), a read uses it only while the signature
-- still matches, it is filled after reads in the background (store/pipeline_hours.py) and never by
-- ingest, and retention forgets the hours whose runs it deleted.
CREATE TABLE pipeline_hours (
    name        text        NOT NULL,   -- runs.name
    hour        timestamp   NOT NULL,   -- UTC hour of runs.started_at (date_trunc, without time zone)
    runs        bigint      NOT NULL,
    signature   numeric     NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, hour)
);

-- One row per step name of a summarised hour: the columns of pipeline_step_days (0007, 0012).
CREATE TABLE pipeline_step_hours (
    name             text    NOT NULL,
    hour             timestamp NOT NULL,
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
    drop_histogram     bytea,
    duration_histogram bytea,
    reasons          text[],
    reason_counts    numeric[],
    input_sum        numeric,
    output_sum       numeric,
    drop_sq_sum      double precision,
    cost_sq_sum      double precision,
    rejecting_rows   bigint,
    reason_runs      bigint[],
    reason_share_sum double precision[],
    reason_share_sq  double precision[],
    PRIMARY KEY (name, hour, step)
);
