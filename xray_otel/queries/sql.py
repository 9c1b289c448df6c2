"""SQL for reading runs and steps. Parameterised always.

The run span is stored as a step row too (nothing is thrown away); these queries
leave it out wherever a run's steps are listed, counted or summed. The store flags that
row (``steps.run_span``) and keeps each run's step count and cost total on the run row
(``runs.step_count``, ``runs.total_cost``) as it writes; see store/sql.py INSERT_STEPS.
"""

from __future__ import annotations

# A step row that is not the run's own span (the row whose span_id is runs.span_id of a run
# with source > 0; the store keeps the flag in step with that rule).
_IS_STEP = "NOT s.run_span"

# The run's cost total as the API shows it; spelt as in migrations/0005_run_totals.sql runs_cost_idx.
RUN_COST = "(r.total_cost::double precision)"

_RUN_COLUMNS = f"""
    r.id, r.name, r.status, r.service, r.tags, r.error, r.started_at, r.completed_at,
    r.step_count, {RUN_COST} AS total_cost
"""

GET_RUN = f"""
SELECT {_RUN_COLUMNS}, r.inputs, r.outputs
FROM runs r
WHERE r.id = $1
"""

RUN_STEPS = f"""
SELECT s.span_id, s.parent_span_id, s.name, s.type, s.status, s.inputs, s.outputs, s.metadata,
       s.reasoning, s.cost, s.cost_source, s.model, s.input_tokens, s.output_tokens, s.input_count, s.output_count,
       s.rejections, s.decisions, s.started_at, s.completed_at, s.error, s.service, s.attributes
FROM steps s
WHERE s.run_id = $1 AND {_IS_STEP}
ORDER BY s.started_at NULLS LAST, s.span_id
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
    except ValueError:
        parsed = None
    if isinstance(parsed, bool) or (isinstance(parsed, (int, float)) and math.isfinite(parsed)):
        alternatives.append(parsed)
    where.add("(" + " OR ".join(["r.tags @> {}::jsonb"] * len(alternatives)) + ")",
              *(json.dumps({key: v}) for v in alternatives))

RUN_EXISTS = "SELECT r.id, r.name, r.status, r.service FROM runs r WHERE r.id = $1"
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

# Per step name of one pipeline ($3) over the window: drop rates and where in the run it sits.
PIPELINE_STEPS = f"""
SELECT s.name,
       mode() WITHIN GROUP (ORDER BY s.type) AS type,
       count(*) AS step_count,
       count(*) FILTER (WHERE {STEP_HAS_ERROR}) AS failed,
       avg({DROP_RATE}) AS avg_drop_rate,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY {DROP_RATE}) AS p95_drop_rate,
       avg(s.cost) AS avg_cost,
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY {STEP_DURATION_MS}) AS duration_ms,
       avg(extract(epoch FROM s.started_at - r.started_at)) AS offset_s
FROM runs r
JOIN steps s ON s.run_id = r.id AND {_IS_STEP}
WHERE r.started_at >= $1 AND r.started_at < $2 AND r.name = $3
GROUP BY s.name
ORDER BY offset_s NULLS LAST, s.name
LIMIT 500
"""

# Rejection reasons per step name of one pipeline over the window, biggest first.
PIPELINE_REJECTIONS = f"""
SELECT s.name, j.key AS reason, sum((j.value)::numeric)::double precision AS count
FROM runs r
JOIN steps s ON s.run_id = r.id AND {_IS_STEP}
CROSS JOIN LATERAL jsonb_each(
    CASE WHEN jsonb_typeof(s.rejections) = 'object' THEN s.rejections ELSE '{{}}'::jsonb END
) AS j
WHERE r.started_at >= $1 AND r.started_at < $2 AND r.name = $3 AND jsonb_typeof(j.value) = 'number'
GROUP BY s.name, j.key
ORDER BY s.name, count DESC, j.key
"""
