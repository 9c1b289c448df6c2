-- Indexes for the cross-run queries (GET /steps, /runs filters, /pipelines).
--
-- Expression indexes rather than generated columns: the store moves rows in with
-- INSERT INTO steps SELECT * FROM a staging table made LIKE steps, and a generated
-- column cannot take a value there. queries/sql.py spells each expression exactly as
-- below so the planner matches it.
--
-- Decisions (lineage) get no index: every lineage query is for one run, which the
-- primary key narrows to a handful of rows, and a GIN index over every recorded
-- decision would cost ingest on each candidate for no read it serves (bench/queries.py).

-- /steps?min_drop_rate=…&sort=-drop_rate: only steps with both counts have a drop rate,
-- so only those are indexed (the query repeats the WHERE to use it). Computed in double
-- precision and guarded by nullif: an index expression that raised would fail the insert.
CREATE INDEX steps_drop_rate_idx ON steps
    (((input_count::double precision - output_count) / nullif(input_count, 0)), run_id, span_id)
    WHERE input_count > 0 AND output_count IS NOT NULL;

-- /steps newest first, and its since/until window. A step without a start time (legacy
-- /ingest may omit one) sorts by when it was received.
CREATE INDEX steps_time_idx ON steps ((coalesce(started_at, created_at)), run_id, span_id);

-- /runs?service=… newest first; /runs?tag=k:v and /steps?tag=k:v (jsonb containment).
CREATE INDEX runs_service_started_idx ON runs (service, started_at DESC, id DESC);
CREATE INDEX runs_tags_idx ON runs USING gin (tags jsonb_path_ops);
