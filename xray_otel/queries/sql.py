"""SQL for reading runs and steps, and for the per-day pipeline summaries reads keep (the one
thing the query side writes). Parameterised always.

The run span is stored as a step row too (nothing is thrown away); these queries
leave it out wherever a run's steps are listed, counted or summed. The store flags that
row (``steps.run_span``) and keeps each run's step count and cost total on the run row
(``runs.step_count``, ``runs.total_cost``) as it writes; see store/sql.py INSERT_STEPS.
"""

from __future__ import annotations

from .pipeline_stats import drop_key_sql, duration_key_sql

# A step row that is not the run's own span (the row whose span_id is runs.span_id of a run
# with source > 0; the store keeps the flag in step with that rule).
_IS_STEP = "NOT s.run_span"

# The run's cost total as the API shows it; spelt as in migrations/0005_run_totals.sql runs_cost_idx.
RUN_COST = "(r.total_cost::double precision)"

_RUN_COLUMNS = f"""
    r.id, r.name, r.status, r.service, r.tags, r.error, r.started_at, r.completed_at,
    r.step_count, {RUN_COST} AS total_cost, r.project, r.trace_id
"""

GET_RUN = f"""
SELECT {_RUN_COLUMNS}, r.inputs, r.outputs, r.steps_run_span
FROM runs r
WHERE r.id = $1
"""

_STEP_FIGURES = """s.span_id, s.parent_span_id, s.name, s.type, s.status, s.reasoning, s.cost, s.cost_source, s.model,
       s.input_tokens, s.output_tokens, s.input_count, s.output_count, s.rejections, s.started_at, s.completed_at,
       s.error, s.service"""
# What a step carries beyond its figures, and may be megabytes of: left out where only figures are read.
_STEP_PAYLOAD = "s.inputs, s.outputs, s.metadata, s.decisions, s.attributes"
_NO_PAYLOAD = ("NULL::jsonb AS inputs, NULL::jsonb AS outputs, NULL::jsonb AS metadata, NULL::jsonb AS decisions,"
               " NULL::jsonb AS attributes")
_RUN_STEPS = f"""
SELECT {_STEP_FIGURES}, {{payload}}
FROM steps s
WHERE s.run_id = $1 AND {_IS_STEP}
ORDER BY s.started_at NULLS LAST, s.span_id
"""
RUN_STEPS = _RUN_STEPS.format(payload=_STEP_PAYLOAD)
# The same without the payload: the funnel (/analyze) reads figures only.
RUN_STEP_FIGURES = _RUN_STEPS.format(payload=_NO_PAYLOAD)
# What a run's step tree is built from, for paging it (GET /runs/{id}/steps): small however large the run.
RUN_STEP_TREE = f"""
SELECT s.span_id, s.parent_span_id, s.service
FROM steps s
WHERE s.run_id = $1 AND {_IS_STEP}
ORDER BY s.started_at NULLS LAST, s.span_id
"""
# One page of that tree: the steps $2 of run $1, whole.
RUN_STEPS_BY_ID = f"""
SELECT {_STEP_FIGURES}, {_STEP_PAYLOAD}
FROM steps s
WHERE s.run_id = $1 AND s.span_id = ANY($2::text[]) AND {_IS_STEP}
"""


# --- cross-run queries (GET /steps, /runs filters, lineage, /pipelines) ------------------------
# Expressions spelt exactly as in migrations/0003_query_indexes.sql and 0005_run_totals.sql, so the
# planner uses those indexes.
DROP_RATE = "((s.input_count::double precision - s.output_count) / nullif(s.input_count, 0))"
HAS_DROP_RATE = "s.input_count > 0 AND s.output_count IS NOT NULL"
STEP_TIME = "coalesce(s.started_at, s.created_at)"
STEP_DURATION_MS = "(extract(epoch FROM s.completed_at - s.started_at) * 1000)::double precision"
STEP_HAS_ERROR = "(s.status = 'FAILED' OR s.error IS NOT NULL)"
# Uncorrelated, so PostgreSQL reads the failed steps once (steps_failed_idx, migration 0004)
# into a hash and checks each run against it, instead of probing every run's steps.
RUN_HAS_ERROR = f"""(r.status = 'FAILED' OR r.error IS NOT NULL OR r.id IN (
    SELECT s.run_id FROM steps s WHERE {STEP_HAS_ERROR}))"""
STEP_FINISHED = "s.completed_at IS NOT NULL AND s.started_at IS NOT NULL"
# date_part is double precision throughout; extract's numeric costs /pipelines a third of its time.
RUN_DURATION_MS = "(date_part('epoch', r.completed_at - r.started_at) * 1000)"


class Where:
    """WHERE clauses with their values as numbered parameters: values never enter the SQL text."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[object] = []

    def arg(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str, *values: object) -> None:
        """``clause`` with ``{}`` for each value, e.g. ``add("r.name = {}", name)``."""
        self.clauses.append(clause.format(*(self.arg(v) for v in values)))

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "TRUE"


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE with the user's own % _ and \\ matched literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# Runs listed with filters and a sort; {where}, {order} and {limit} are filled by queries/runs.py
# from a fixed set of clauses, values are parameters.
LIST_RUNS_FILTERED = f"""
SELECT {_RUN_COLUMNS}
FROM runs r
WHERE {{where}}
ORDER BY {{order}}
LIMIT {{limit}}
"""


def tag_clause(where: Where, key: str, value: str) -> None:
    """Run tag ``key`` equals ``value``: as sent (a string), or as the number/boolean it spells,
    since tags set from code keep their JSON type. Containment, so the GIN index serves it."""
    import json
    import math

    alternatives: list[object] = [value]
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser: a plain string
        parsed = None
    if isinstance(parsed, bool) or (isinstance(parsed, (int, float)) and math.isfinite(parsed)):
        alternatives.append(parsed)
    where.add("(" + " OR ".join(["r.tags @> {}::jsonb"] * len(alternatives)) + ")",
              *(json.dumps({key: v}) for v in alternatives))

# The projects' parts of trace $1 (runs written with project-bound keys), for a key bound to no project.
TRACE_PARTS = "SELECT r.id, r.project FROM runs r WHERE r.trace_id = $1 AND r.trace_id IS NOT NULL ORDER BY r.project"
RUN_HAS_SERVICE = "SELECT EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND service = $2)"

# A run's recorded decisions, one row per decision, in step time order. `decisions` is a
# JSON array of {id, accepted, reason, score, rank}; anything else stored there is skipped.
# {where} adds filters on s (steps) and d.elem (one decision); values are parameters.
RUN_DECISIONS = f"""
SELECT s.span_id, s.name, s.type, s.started_at, s.input_count, s.output_count,
       {STEP_TIME} AS step_time, d.ord, d.elem
FROM steps s
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.decisions) = 'array' THEN s.decisions ELSE '[]'::jsonb END
) WITH ORDINALITY AS d(elem, ord)
WHERE s.run_id = $1 AND {_IS_STEP} AND jsonb_typeof(d.elem) = 'object' AND {{where}}
ORDER BY {STEP_TIME}, s.span_id, d.ord
LIMIT {{limit}}
"""

# Per pipeline (run name) over a time window [$1, $2): runs, failures, duration percentiles, cost.
# {where} narrows further (one name); percentile_cont skips runs still running (NULL duration).
# Everything it reads is in runs_name_started_idx (migration 0005), so it scans that index only.
PIPELINE_RUNS = f"""
SELECT r.name,
       count(*) AS run_count,
       count(*) FILTER (WHERE r.status = 'FAILED') AS failed,
       count(*) FILTER (WHERE r.status <> 'RUNNING') AS finished,
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY {RUN_DURATION_MS}) AS duration_ms,
       avg(r.total_cost)::double precision AS avg_cost,
       max(r.started_at) AS last_run_at
FROM runs r
WHERE r.started_at >= $1 AND r.started_at < $2 AND r.name IS NOT NULL AND {{where}}
GROUP BY r.name
ORDER BY run_count DESC, r.name
LIMIT {{limit}}
"""

# --- /pipelines/{name}: step figures from per-day summaries (migrations/0007_pipeline_days.sql) ---
# A run's UTC day, as the summaries key it, and a UTC day from a timestamptz parameter.
RUN_DAY = "(r.started_at AT TIME ZONE 'UTC')::date"


def _utc_day(param: str) -> str:
    return f"({param} AT TIME ZONE 'UTC')::date"


# What a day's summary depends on, hashed per run and summed: step rows never change once
# stored but for the run span flag, so a run's rows are fixed by its id, step_count,
# steps_run_span and start (offsets are from it). Read from runs_name_started_idx alone.
_RUN_SIGNATURE = ("(uuid_hash_extended(r.id, r.step_count) # hashtextextended(coalesce(r.steps_run_span, ''), 0)"
                  " # timestamptz_hash_extended(r.started_at, 0))")

# The whole UTC days in [$2, $3) of pipeline $1 whose stored summary is missing, out of date,
# or of a day that no longer has runs.
STALE_PIPELINE_DAYS = f"""
WITH current AS (
    SELECT {RUN_DAY} AS day, count(*) AS runs, sum({_RUN_SIGNATURE}) AS signature
    FROM runs r
    WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3
    GROUP BY 1
), stored AS (
    SELECT day, runs, signature FROM pipeline_days
    WHERE name = $1 AND day >= {_utc_day('$2')} AND day < {_utc_day('$3')}
)
SELECT coalesce(current.day, stored.day) AS day
FROM current FULL JOIN stored ON stored.day = current.day
WHERE (current.runs, current.signature) IS DISTINCT FROM (stored.runs, stored.signature)
ORDER BY 1
"""

_SUMMARY_COLUMNS = """day, step, count, failed, cost_sum, drop_n, drop_sum, offset_n, offset_sum, types,
    type_counts, drop_histogram, duration_histogram, reasons, reason_counts"""


def _histogram(column: str, key: str, of: str) -> str:
    """Per day and step, the histogram of ``key`` over rows of s where ``of`` is not null: its
    (key, count) pairs in key order, each an int8 in network order (pipeline_stats.histogram).
    Packed bytes, because arrays cost ~30 ns per element to read back; and histograms of several
    days merge by concatenating them."""
    return f"""SELECT day, step, string_agg(int8send(k) || int8send(n), ''::bytea ORDER BY k) AS {column}
    FROM (SELECT day, step, {key} AS k, count(*) AS n FROM s WHERE {of} IS NOT NULL GROUP BY 1, 2, 3) c
    GROUP BY 1, 2"""


_NO_DAY = "'infinity'::date"  # not NULL: the aggregates are joined USING (day, step)


def _summarise(runs: str, day: str) -> str:
    """CTEs ending in ``summary``: per ``day`` (the run's UTC day, or _NO_DAY for one row per
    step) and step name, the figures of pipeline $1's steps whose run started in [$2, $3) and passes
    ``runs``. One pass over the step rows (materialised), then one aggregate per figure."""
    return f"""
r AS MATERIALIZED (
    SELECT r.id, r.started_at, {day} AS day
    FROM runs r
    WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND {runs}
), s AS MATERIALIZED (
    SELECT r.day, s.name AS step, s.type, s.cost, s.rejections, {STEP_HAS_ERROR} AS failed,
           {DROP_RATE} AS drop_rate, {STEP_DURATION_MS} AS duration_ms,
           extract(epoch FROM s.started_at - r.started_at)::double precision AS offset_s
    FROM r JOIN steps s ON s.run_id = r.id AND {_IS_STEP}
), day_totals AS (
    SELECT day, step, count(*) AS count, count(*) FILTER (WHERE failed) AS failed,
           sum(cost::numeric) AS cost_sum, count(drop_rate) AS drop_n, sum(drop_rate) AS drop_sum,
           count(offset_s) AS offset_n, sum(offset_s) AS offset_sum
    FROM s GROUP BY day, step
), day_types AS (
    SELECT day, step, array_agg(type ORDER BY type) AS types, array_agg(n ORDER BY type) AS type_counts
    FROM (SELECT day, step, type, count(*) AS n FROM s GROUP BY 1, 2, 3) t GROUP BY 1, 2
), day_drops AS (
    {_histogram("drop_histogram", drop_key_sql("drop_rate"), "drop_rate")}
), day_durations AS (
    {_histogram("duration_histogram", duration_key_sql("duration_ms"), "duration_ms")}
), day_reasons AS (
    SELECT day, step, array_agg(reason ORDER BY reason) AS reasons, array_agg(n ORDER BY reason) AS reason_counts
    FROM (SELECT s.day, s.step, j.key AS reason, sum((j.value)::numeric) AS n
          FROM s CROSS JOIN LATERAL jsonb_each(
              CASE WHEN jsonb_typeof(s.rejections) = 'object' THEN s.rejections ELSE '{{}}'::jsonb END) AS j
          WHERE jsonb_typeof(j.value) = 'number'
          GROUP BY 1, 2, 3) t GROUP BY 1, 2
), summary AS (
    SELECT {_SUMMARY_COLUMNS}
    FROM day_totals JOIN day_types USING (day, step) LEFT JOIN day_drops USING (day, step)
    LEFT JOIN day_durations USING (day, step) LEFT JOIN day_reasons USING (day, step)
)"""


def _step_figures(parts: str, top: str, limit: str) -> str:
    """Per step name, the summaries ``parts`` (a SELECT of summary columns) added up: counts and
    sums exactly, the most frequent type, the ``top`` reasons, histograms concatenated. In the
    order steps sit in their runs (mean offset from the run's start), at most ``limit``."""
    return f""", parts AS (
    {parts}
), totals AS (
    SELECT step, sum(count)::bigint AS count, sum(failed)::bigint AS failed, sum(cost_sum) AS cost_sum,
           sum(drop_n)::bigint AS drop_n, sum(drop_sum) AS drop_sum,
           sum(offset_sum) / nullif(sum(offset_n), 0) AS offset_s,
           string_agg(drop_histogram, ''::bytea) AS drop_histogram,
           string_agg(duration_histogram, ''::bytea) AS duration_histogram
    FROM parts GROUP BY step
), step_types AS (
    SELECT DISTINCT ON (step) step, type
    FROM (SELECT step, u.type, sum(u.n) AS n FROM parts, unnest(types, type_counts) AS u(type, n)
          GROUP BY 1, 2) t
    ORDER BY step, n DESC, type
), step_reasons AS (
    SELECT step, array_agg(reason ORDER BY n DESC, reason) AS reasons,
           array_agg(n::double precision ORDER BY n DESC, reason) AS reason_counts
    FROM (SELECT step, reason, n, row_number() OVER (PARTITION BY step ORDER BY n DESC, reason) AS i
          FROM (SELECT step, u.reason, sum(u.n) AS n FROM parts, unnest(reasons, reason_counts) AS u(reason, n)
                GROUP BY 1, 2) t) ranked
    WHERE i <= {top} GROUP BY 1
)
SELECT step, type, count, failed, cost_sum, drop_n, drop_sum, drop_histogram, duration_histogram,
       reasons, reason_counts
FROM totals JOIN step_types USING (step) LEFT JOIN step_reasons USING (step)
ORDER BY offset_s NULLS LAST, step
LIMIT {limit}"""


# Per step name of pipeline $1 over runs that started in [$2, $3), the top $7 reasons, at most
# $8 steps: the stored summaries of the whole days [$4, $5) but days $6 (out of date or not
# stored), and the rest of the window (part-days and those days) summarised from the step rows.
_STORED_AND_ROWS = f"""SELECT {_SUMMARY_COLUMNS} FROM pipeline_step_days
    WHERE name = $1 AND day >= {_utc_day('$4')} AND day < {_utc_day('$5')} AND day <> ALL($6::date[])
    UNION ALL
    SELECT {_SUMMARY_COLUMNS} FROM summary"""
PIPELINE_STEP_FIGURES = f"""
WITH {_summarise(f"(NOT (r.started_at >= $4 AND r.started_at < $5) OR {RUN_DAY} = ANY($6::date[]))", _NO_DAY)}
{_step_figures(_STORED_AND_ROWS, "$7", "$8")}
"""
# The same from the step rows alone (top $4 reasons, at most $5 steps), for a role that may not
# read the stored summaries.
PIPELINE_ROW_FIGURES = f"""
WITH {_summarise("TRUE", _NO_DAY)}
{_step_figures(f"SELECT {_SUMMARY_COLUMNS} FROM summary", "$4", "$5")}
"""

# Store the summaries of days $4 of pipeline $1 (runs started in [$2, $3)) with the signature
# of the runs they come from: one statement, so both are read from one snapshot. The caller
# holds TRY_LOCK_PIPELINE and has run FORGET_PIPELINE_DAYS for the same days.
STORE_PIPELINE_DAYS = f"""
WITH signed AS (
    INSERT INTO pipeline_days (name, day, runs, signature)
    SELECT $1, {RUN_DAY}, count(*), sum({_RUN_SIGNATURE})
    FROM runs r
    WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND {RUN_DAY} = ANY($4::date[])
    GROUP BY 2
), {_summarise(f"{RUN_DAY} = ANY($4::date[])", RUN_DAY)}
INSERT INTO pipeline_step_days (name, {_SUMMARY_COLUMNS})
SELECT $1, {_SUMMARY_COLUMNS} FROM summary
"""
# The days' pipeline_days rows are locked first (LOCK_PIPELINE_DAYS), in key order, as retention
# (store/retention.py) locks them, so the two never wait for each other in a cycle.
LOCK_PIPELINE_DAYS = "SELECT day FROM pipeline_days WHERE name = $1 AND day = ANY($2::date[]) ORDER BY day FOR UPDATE"
FORGET_PIPELINE_DAYS = """
WITH steps AS (DELETE FROM pipeline_step_days WHERE name = $1 AND day = ANY($2::date[]))
DELETE FROM pipeline_days WHERE name = $1 AND day = ANY($2::date[])
"""
# One refresher per pipeline at a time, across processes; a second one leaves it to the first.
TRY_LOCK_PIPELINE = "SELECT pg_try_advisory_xact_lock(hashtextextended('xray.pipeline_days:' || $1, 0))"
