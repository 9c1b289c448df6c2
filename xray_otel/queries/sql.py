"""SQL for reading runs and steps. Parameterised always.

The run span is stored as a step row too (nothing is thrown away); these queries
leave it out wherever a run's steps are listed, counted or summed.
"""

from __future__ import annotations

# A step row that is not the run's own span.
_IS_STEP = "NOT (r.source > 0 AND s.span_id = r.span_id)"

_RUN_COLUMNS = """
    r.id, r.name, r.status, r.service, r.tags, r.error, r.started_at, r.completed_at,
    agg.step_count, agg.total_cost
"""

_RUN_TOTALS = f"""
CROSS JOIN LATERAL (
    SELECT count(*) AS step_count, coalesce(sum(s.cost), 0) AS total_cost
    FROM steps s
    WHERE s.run_id = r.id AND {_IS_STEP}
) agg
"""

# Newest first; the cursor is the (started_at, id) of the last row of the previous page.
LIST_RUNS = f"""
SELECT {_RUN_COLUMNS}
FROM runs r
{_RUN_TOTALS}
WHERE ($1::text IS NULL OR r.name = $1)
  AND ($2::text IS NULL OR r.status = $2)
  AND ($3::timestamptz IS NULL OR (r.started_at, r.id) < ($3, $4::uuid))
ORDER BY r.started_at DESC, r.id DESC
LIMIT $5
"""

GET_RUN = f"""
SELECT {_RUN_COLUMNS}, r.inputs, r.outputs
FROM runs r
{_RUN_TOTALS}
WHERE r.id = $1
"""

RUN_STEPS = f"""
SELECT s.span_id, s.parent_span_id, s.name, s.type, s.status, s.inputs, s.outputs, s.metadata,
       s.reasoning, s.cost, s.cost_source, s.model, s.input_tokens, s.output_tokens, s.input_count, s.output_count,
       s.rejections, s.decisions, s.started_at, s.completed_at, s.error, s.service, s.attributes
FROM steps s
JOIN runs r ON r.id = s.run_id
WHERE s.run_id = $1 AND {_IS_STEP}
ORDER BY s.started_at NULLS LAST, s.span_id
"""
