-- Run totals kept at write time, and indexes for the cross-run sorts that read-time
-- aggregation made slow at 1M steps (issue 5: /runs?sort=-cost 5.4 s, /pipelines 4.6 s,
-- /steps?sort=-duration 965 ms).
--
-- steps.run_span: this row is the run's own span (runs.span_id of a run whose source > 0),
-- which is stored as a step row but is not a step. It was found at read time by joining
-- runs; a flag lets an index leave the run spans out (they are the longest "steps" of all,
-- so a duration sort had to skip 100,000 of them before its first hit).
--
-- runs.step_count / runs.total_cost: count and sum of cost over the run's step rows that
-- are not its run span. Kept by the store in the statement that inserts the steps (store/sql.py
-- INSERT_STEPS): only rows that insert count (a re-sent span conflicts and adds nothing), and
-- when a better run span replaces the first one, the old one's row counts again and the new
-- one's stops counting. numeric, so the sum is exact and the same in any arrival order.
-- runs.steps_run_span: the span id whose row is flagged run_span (what the totals leave out).
ALTER TABLE steps ADD COLUMN run_span boolean NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN step_count integer NOT NULL DEFAULT 0,
                 ADD COLUMN total_cost numeric NOT NULL DEFAULT 0,
                 ADD COLUMN steps_run_span text;

-- Backfill what is already stored, by the read-time rule the totals replace.
UPDATE steps s SET run_span = true
FROM runs r
WHERE r.source > 0 AND s.run_id = r.id AND s.span_id = r.span_id;

UPDATE runs r SET step_count = t.step_count, total_cost = t.total_cost, steps_run_span = t.run_span
FROM (
    SELECT r2.id, CASE WHEN r2.source > 0 THEN r2.span_id END AS run_span,
           count(s.span_id) AS step_count, coalesce(sum(s.cost::numeric), 0) AS total_cost
    FROM runs r2
    LEFT JOIN steps s ON s.run_id = r2.id AND NOT s.run_span
    GROUP BY r2.id
) t
WHERE r.id = t.id;

-- /runs?sort=-cost and min_cost / max_cost: the total as the API shows it (double precision).
-- queries/sql.py RUN_COST spells the same expression.
CREATE INDEX runs_cost_idx ON runs ((total_cost::double precision), id);

-- /pipelines over a window: per run name, read from the index alone (status, end and cost
-- included) rather than from the heap. Same key as the index it replaces (/runs?name=).
DROP INDEX runs_name_started_idx;
CREATE INDEX runs_name_started_idx ON runs (name, started_at DESC, id DESC)
    INCLUDE (status, completed_at, total_cost);

-- /steps?sort=-duration: finished steps only, run spans left out (see run_span above).
-- queries/sql.py STEP_DURATION_MS and steps.py spell the same expression and predicate.
CREATE INDEX steps_duration_idx ON steps
    (((extract(epoch FROM completed_at - started_at) * 1000)::double precision), run_id, span_id)
    WHERE completed_at IS NOT NULL AND started_at IS NOT NULL AND NOT run_span;

-- /steps?type=…&since=… (and type with any sort over a window): type then step time. It
-- replaces the type-only index, whose every use this one serves, so ingest keeps one index here.
CREATE INDEX steps_type_time_idx ON steps (type, (coalesce(started_at, created_at)), run_id, span_id);
DROP INDEX steps_type_idx;
