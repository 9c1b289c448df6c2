"""SQL for writing spans. Parameterised always; queries for reading live in queries/sql.py."""

from __future__ import annotations

# Per connection, once: a staging table that COPY fills and each commit empties.
CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS steps_in (LIKE steps INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

# Runs, one row per trace, merged by the rule in mapping.RunRow.beats: a better
# source replaces the row; on a tie, the earlier (started_at, span_id) does. Rows are
# sorted by id so concurrent requests take row locks in the same order (no deadlock).
UPSERT_RUNS = """
INSERT INTO runs AS r (id, source, span_id, name, status, service, tags, inputs, outputs,
                       error, started_at, completed_at)
SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::text[], $11::timestamptz[],
                     $12::timestamptz[])
ORDER BY 1
ON CONFLICT (id) DO UPDATE SET
    source = excluded.source, span_id = excluded.span_id, name = excluded.name,
    status = excluded.status, service = excluded.service, tags = excluded.tags,
    inputs = excluded.inputs, outputs = excluded.outputs, error = excluded.error,
    started_at = excluded.started_at, completed_at = excluded.completed_at
WHERE excluded.source > r.source
   OR (excluded.source = r.source
       AND (excluded.started_at, excluded.span_id) < (r.started_at, r.span_id))
"""

# A re-sent span is the same span: the first copy stays, so cost is never counted twice.
INSERT_STEPS = """
INSERT INTO steps SELECT * FROM steps_in ORDER BY run_id, span_id
ON CONFLICT (run_id, span_id) DO NOTHING
"""

# The slow path for a batch PostgreSQL refused: one span at a time, each behind a savepoint.
INSERT_STEP = """
INSERT INTO steps ({columns}) VALUES ({values})
ON CONFLICT (run_id, span_id) DO NOTHING
"""
