"""SQL for reading runs and steps: named statements, and the expressions filters and sorts are
spelt with. Parameterised always; SQL for writing lives in sql.py, for the per-day pipeline
summaries in pipeline_days.py, and the statements built from a request's filters in filters.py.

The run span is stored as a step row too (nothing is thrown away); these queries
leave it out wherever a run's steps are listed, counted or summed. The store flags that
row (``steps.run_span``) and keeps each run's step count and cost total on the run row
(``runs.step_count``, ``runs.total_cost``) as it writes; see sql.py INSERT_STEPS.
"""

from __future__ import annotations

from .. import conventions as c
from ..mapping.values import MAX_NAME

# A step row that is not the run's own span (the row whose span_id is runs.span_id of a run
# with source > 0; the store keeps the flag in step with that rule).
IS_STEP = "NOT s.run_span"

# The run's cost total as the API shows it; spelt as in migrations/0005_run_totals.sql runs_cost_idx.
RUN_COST = "(r.total_cost::double precision)"

RUN_COLUMNS = f"""
    r.id, r.name, r.status, r.service, r.tags, r.error, r.started_at, r.completed_at,
    r.step_count, {RUN_COST} AS total_cost, r.project, r.trace_id
"""

GET_RUN = f"""
SELECT {RUN_COLUMNS}, r.inputs, r.outputs, r.steps_run_span
FROM runs r
WHERE r.id = $1
"""

# The candidate stream the SDK named (xray.step.funnel, kept in attributes as no column holds it): a string only,
# capped as a step name is.
_FUNNEL = f"""CASE WHEN jsonb_typeof(s.attributes -> '{c.STEP_FUNNEL}') = 'string'
                   THEN left(s.attributes ->> '{c.STEP_FUNNEL}', {MAX_NAME}) END"""
_STEP_FIGURES = f"""s.span_id, s.parent_span_id, s.name, s.type, s.status, s.reasoning, s.cost, s.cost_source, s.model,
       s.input_tokens, s.output_tokens, s.input_count, s.output_count, s.rejections, s.started_at, s.completed_at,
       s.error, s.service, {_FUNNEL} AS funnel"""
# What a step carries beyond its figures, and may be megabytes of: left out where only figures are read.
_STEP_PAYLOAD = "s.inputs, s.outputs, s.metadata, s.decisions, s.attributes"
_NO_PAYLOAD = ("NULL::jsonb AS inputs, NULL::jsonb AS outputs, NULL::jsonb AS metadata, NULL::jsonb AS decisions,"
               " NULL::jsonb AS attributes")
_RUN_STEPS = f"""
SELECT {_STEP_FIGURES}, {{payload}}
FROM steps s
WHERE s.run_id = $1 AND {IS_STEP}
ORDER BY s.started_at NULLS LAST, s.span_id
"""
RUN_STEPS = _RUN_STEPS.format(payload=_STEP_PAYLOAD)
# The same without the payload: the funnel (/analyze) reads figures only.
RUN_STEP_FIGURES = _RUN_STEPS.format(payload=_NO_PAYLOAD)
# What a run's step tree is built from, for paging it (GET /runs/{id}/steps): small however large the run.
RUN_STEP_TREE = f"""
SELECT s.span_id, s.parent_span_id, s.service
FROM steps s
WHERE s.run_id = $1 AND {IS_STEP}
ORDER BY s.started_at NULLS LAST, s.span_id
"""
# One page of that tree: the steps $2 of run $1, whole.
RUN_STEPS_BY_ID = f"""
SELECT {_STEP_FIGURES}, {_STEP_PAYLOAD}
FROM steps s
WHERE s.run_id = $1 AND s.span_id = ANY($2::text[]) AND {IS_STEP}
"""

# The projects' parts of trace $1 (runs written with project-bound keys), for a key bound to no project.
TRACE_PARTS = "SELECT r.id, r.project FROM runs r WHERE r.trace_id = $1 AND r.trace_id IS NOT NULL ORDER BY r.project"
RUN_HAS_SERVICE = "SELECT EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND service = $2)"
RUN_NAME_EXISTS = "SELECT EXISTS (SELECT 1 FROM runs WHERE name = $1)"
# Whether project $2's runs (any project's when NULL) include one named $1.
PROJECT_RUN_NAME_EXISTS = "SELECT EXISTS (SELECT 1 FROM runs WHERE name = $1 AND ($2::text IS NULL OR project = $2))"


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

# Runs listed with filters and a sort; {where}, {order} and {limit} are filled by filters.py
# from a fixed set of clauses, values are parameters.
LIST_RUNS_FILTERED = f"""
SELECT {{key}} AS sort_key, {RUN_COLUMNS}
FROM runs r
WHERE {{where}}
ORDER BY {{order}}
LIMIT {{limit}}
"""

# How a step's decisions sample was drawn (xray.step.sample.*, kept in steps.attributes): rule, rate, seed,
# and with counts the sampled and total candidates per outcome. '{}' when the step sent none of it.
_SAMPLE_FIELDS = (f"'rule', s.attributes -> '{c.STEP_SAMPLE_RULE}', 'rate', s.attributes -> '{c.STEP_SAMPLE_RATE}', "
                  f"'seed', s.attributes -> '{c.STEP_SAMPLE_SEED}'")
STEP_SAMPLE = f"jsonb_strip_nulls(jsonb_build_object({_SAMPLE_FIELDS}))"
STEP_SAMPLE_COUNTS = (f"jsonb_strip_nulls(jsonb_build_object({_SAMPLE_FIELDS}, "
                      f"'counts', s.attributes -> '{c.STEP_SAMPLE_COUNTS}'))")

# Steps across runs, with their run's id, trace and name; filled by filters.py as LIST_RUNS_FILTERED.
SEARCH_STEPS = f"""
SELECT s.run_id, r.trace_id, r.name AS run_name, s.span_id, s.parent_span_id, s.name, s.type, s.status, s.service,
       s.cost, s.cost_source, s.model, s.input_count, s.output_count, s.rejections, s.reasoning, s.started_at,
       s.completed_at, s.error, {STEP_SAMPLE_COUNTS} AS sample, {{key}} AS sort_key
FROM steps s
JOIN runs r ON r.id = s.run_id
WHERE {IS_STEP} AND {{where}}
ORDER BY {{key}} {{direction}}, s.run_id {{direction}}, s.span_id {{direction}}
LIMIT {{limit}}
"""

# What a run's steps sent of their candidate outcomes (migrations/0009), per step: enough to tell whether
# they are complete (outcomes.state), without reading the packed columns.
# A part counts for its step only when the span that carried it is of the step's service.
_SAME_SERVICE = """EXISTS (SELECT 1 FROM steps s WHERE s.run_id = o.run_id AND s.span_id = o.span_id
                           AND s.service IS NOT DISTINCT FROM o.service)"""
_OUTCOME_SUMMARY = """
    SELECT {key}, max(parts) AS parts, min(parts) AS parts_min,
           array_agg(part ORDER BY part) FILTER (WHERE part >= 0) AS present,
           sum(n)::bigint AS stored, max(total) AS total, min(total) AS total_min, count(total) AS totals,
           array_agg(incomplete ORDER BY part) FILTER (WHERE incomplete IS NOT NULL) AS notes
    FROM step_outcomes o
    WHERE {runs} AND """ + _SAME_SERVICE + """
    GROUP BY {key}
"""
_RUN_OUTCOME_SUMMARY = _OUTCOME_SUMMARY.format(key="span_id", runs="run_id = $1")
RUN_OUTCOME_STATES = _RUN_OUTCOME_SUMMARY
# The run's steps that answer for candidates: those that sent outcomes, and those that recorded decisions
# (a sample, `xray.step.decisions`), in step time order (span ids compared as bytes, as Python compares
# them, so that pages of both kinds merge in one order).
RUN_CANDIDATE_STEPS = f"""
WITH o AS ({_RUN_OUTCOME_SUMMARY})
SELECT s.span_id, s.parent_span_id, s.name, s.type, s.service, s.started_at, s.input_count, s.output_count,
       {STEP_TIME} AS step_time, o.span_id IS NOT NULL AS has_outcomes, o.parts, o.parts_min, o.present,
       o.stored, o.total, o.total_min, o.totals, o.notes,
       CASE WHEN jsonb_typeof(s.decisions) = 'array' THEN jsonb_array_length(s.decisions) ELSE 0 END
           AS decision_count, {STEP_SAMPLE} AS sample
FROM steps s
LEFT JOIN o ON o.span_id = s.span_id
WHERE s.run_id = $1 AND {IS_STEP}
  AND (o.span_id IS NOT NULL OR (jsonb_typeof(s.decisions) = 'array' AND jsonb_array_length(s.decisions) > 0))
ORDER BY {STEP_TIME}, s.span_id COLLATE "C"
"""
# The stored parts of steps $2 of run $1, packed (store/outcomes.Part reads them).
RUN_OUTCOME_PARTS = f"""
SELECT span_id, part, n, ids, codes, ranks, reasons
FROM step_outcomes o
WHERE run_id = $1 AND span_id = ANY($2::text[]) AND part >= 0 AND {_SAME_SERVICE}
ORDER BY span_id, part
"""
# The first stored part of the run $1's steps, at most $2 of them, the first in step time order: a sample of
# each step's ids, for telling which step's candidates another's are (queries/streams.py).
RUN_FIRST_OUTCOME_PARTS = f"""
SELECT o.span_id, o.part, o.n, o.ids, o.codes, o.ranks, o.reasons
FROM step_outcomes o
JOIN steps s ON s.run_id = o.run_id AND s.span_id = o.span_id AND s.service IS NOT DISTINCT FROM o.service
WHERE o.run_id = $1 AND o.part = 0 AND {IS_STEP}
ORDER BY {STEP_TIME}, o.span_id COLLATE "C"
LIMIT $2
"""
# Parts $3 on of step $2 of run $1, at most $4 of them: a page of a large step reads only what it shows.
STEP_OUTCOME_PARTS = f"""
SELECT span_id, part, n, ids, codes, ranks, reasons
FROM step_outcomes o
WHERE run_id = $1 AND span_id = $2 AND part >= $3 AND {_SAME_SERVICE}
ORDER BY part
LIMIT $4
"""

# --- one candidate across a pipeline's runs (queries/history.py) ---
# A page of pipeline $1's runs that started in [$2, $3), newest first, before the key ($4, $5) when given;
# {where} narrows to a project. Read through runs_name_started_idx (migration 0005).
PIPELINE_RUN_PAGE = """
SELECT r.id, r.trace_id, r.project, r.status, r.started_at
FROM runs r
WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3
  AND ($4::timestamptz IS NULL OR (r.started_at, r.id) < ($4, $5::uuid)) AND {where}
ORDER BY r.started_at DESC, r.id DESC
LIMIT {limit}
"""
RUN_STATUSES = "SELECT id, status FROM runs WHERE id = ANY($1::uuid[])"
# RUN_CANDIDATE_STEPS for the runs $1, with each step's run_id.
RUNS_CANDIDATE_STEPS = f"""
WITH o AS ({_OUTCOME_SUMMARY.format(key="run_id, span_id", runs="run_id = ANY($1::uuid[])")})
SELECT s.run_id, s.span_id, s.parent_span_id, s.name, s.type, s.service, s.started_at, s.input_count,
       s.output_count, {STEP_TIME} AS step_time, o.span_id IS NOT NULL AS has_outcomes, o.parts, o.parts_min,
       o.present, o.stored, o.total, o.total_min, o.totals, o.notes,
       CASE WHEN jsonb_typeof(s.decisions) = 'array' THEN jsonb_array_length(s.decisions) ELSE 0 END
           AS decision_count, {STEP_SAMPLE} AS sample
FROM steps s
LEFT JOIN o ON o.run_id = s.run_id AND o.span_id = s.span_id
WHERE s.run_id = ANY($1::uuid[]) AND {IS_STEP}
  AND (o.span_id IS NOT NULL OR (jsonb_typeof(s.decisions) = 'array' AND jsonb_array_length(s.decisions) > 0))
ORDER BY s.run_id, {STEP_TIME}, s.span_id COLLATE "C"
"""
# The stored parts of the runs $1 (of every step that sent them), with each part's run_id.
RUNS_OUTCOME_PARTS = f"""
SELECT run_id, span_id, part, n, ids, codes, ranks, reasons
FROM step_outcomes o
WHERE run_id = ANY($1::uuid[]) AND part >= 0 AND {_SAME_SERVICE}
ORDER BY run_id, span_id, part
"""
# The recorded decisions on candidate $2 of the steps $3 of the runs $1 (steps that sent no outcomes).
RUNS_CANDIDATE_DECISIONS = f"""
SELECT s.run_id, s.span_id, s.parent_span_id, s.name, s.type, s.started_at, s.input_count, s.output_count,
       {STEP_TIME} AS step_time, d.ord, d.elem, {STEP_SAMPLE} AS sample
FROM steps s
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.decisions) = 'array' THEN s.decisions ELSE '[]'::jsonb END
) WITH ORDINALITY AS d(elem, ord)
WHERE s.run_id = ANY($1::uuid[]) AND s.span_id = ANY($3::text[]) AND {IS_STEP}
  AND jsonb_typeof(d.elem) = 'object' AND d.elem ->> 'id' = $2
ORDER BY s.run_id, {STEP_TIME}, s.span_id COLLATE "C", d.ord
"""

# A run's recorded decisions, one row per decision, in step time order. `decisions` is a
# JSON array of {id, accepted, reason, score, rank}; anything else stored there is skipped.
# {where} adds filters on s (steps) and d.elem (one decision); values are parameters.
RUN_DECISIONS = f"""
SELECT s.span_id, s.parent_span_id, s.name, s.type, s.started_at, s.input_count, s.output_count,
       {STEP_TIME} AS step_time, d.ord, d.elem, {STEP_SAMPLE} AS sample
FROM steps s
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.decisions) = 'array' THEN s.decisions ELSE '[]'::jsonb END
) WITH ORDINALITY AS d(elem, ord)
WHERE s.run_id = $1 AND {IS_STEP} AND jsonb_typeof(d.elem) = 'object' AND {{where}}
ORDER BY {STEP_TIME}, s.span_id COLLATE "C", d.ord
LIMIT {{limit}}
"""

# A run's retrieval and rank steps with how many decisions each recorded, for the candidates a step
# wrapping a retriever did not pass on (queries/lineage.py). Few rows: those types only.
_WRAPPERS = """
SELECT s.run_id, s.span_id, s.parent_span_id, s.name, s.type, s.started_at, s.input_count, s.output_count,
       s.service, CASE WHEN jsonb_typeof(s.decisions) = 'array' THEN jsonb_array_length(s.decisions) END
           AS decision_count
FROM steps s
WHERE {runs} AND """ + IS_STEP + """ AND s.type IN ('retrieval', 'rank')
"""
RUN_WRAPPERS = _WRAPPERS.format(runs="s.run_id = $1")
# RUN_WRAPPERS for the runs $1.
RUNS_WRAPPERS = _WRAPPERS.format(runs="s.run_id = ANY($1::uuid[])")

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
# One pipeline's figures over [$1, $2): PIPELINE_RUNS for the name $3.
ONE_PIPELINE_RUNS = PIPELINE_RUNS.format(where="r.name = $3", limit=1)
