"""SQL for writing spans. Parameterised always; SQL for reading lives in read_sql.py and filters.py."""

from __future__ import annotations

from .outcomes import DISAGREE

# Rows carry times as int64 microseconds since the Unix epoch (mapping.py): asyncpg encodes an int
# in a fraction of the time a datetime takes, and PostgreSQL converts them in the statements below.
TIME_COLUMNS = ("started_at", "completed_at")


def from_micros(column: str) -> str:
    """SQL for a timestamptz from int64 microseconds, exact: interval * number goes through float8, so
    each factor is kept exactly representable (seconds, then the microseconds under one second)."""
    return (f"(timestamptz 'epoch' + ({column} / 1000000) * interval '1 second'"
            f" + ({column} % 1000000) * interval '1 microsecond')")


def staged(column: str) -> str:
    """A staged column as INSERT_STEPS selects it (table alias i): times converted from microseconds."""
    return from_micros(f"i.{column}") if column in TIME_COLUMNS else f"i.{column}"


# ALTER TABLE clauses turning a copy of steps into a staging table: times stay microseconds.
MICROS_COLUMNS = ", ".join(f"ALTER {column} TYPE bigint USING NULL" for column in TIME_COLUMNS)
# Per connection, once: a staging table that COPY fills and each commit empties.
CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS steps_in (LIKE steps INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
ALTER TABLE steps_in {MICROS_COLUMNS}
"""
# The staging table of candidate outcome parts: made on a connection the first time it writes one, not up
# front, as every commit empties each ON COMMIT DELETE ROWS table a connection has (a cost per commit that
# plain span ingest need not pay). In the writing transaction: IF NOT EXISTS makes it once per connection.
CREATE_OUTCOME_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS outcomes_in (LIKE step_outcomes INCLUDING STORAGE) ON COMMIT DELETE ROWS
"""

# In mapping.RunRow's order.
_RUN_COLUMNS = ("id, source, span_id, name, status, service, tags, inputs, outputs, error, started_at, completed_at,"
                " project, trace_id")
_RUN_ARRAYS = """unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::text[], $11::bigint[],
                     $12::bigint[], $13::text[], $14::uuid[])"""
# The run rows of the arrays, times converted.
_RUNS_IN = f"""SELECT id, source, span_id, name, status, service, tags, inputs, outputs, error,
       {from_micros('started_at')} AS started_at, {from_micros('completed_at')} AS completed_at,
       project, trace_id
FROM {_RUN_ARRAYS} AS u({_RUN_COLUMNS})"""
# Among copies of one span in a batch, the one stored (INSERT_STEPS) is the one counted here.
_ONE_COPY = "DISTINCT ON (run_id, span_id)"
_ONE_COPY_ORDER = "run_id, span_id, cost DESC"

# Runs new to the database, with their totals from the staged steps (COPY comes first): a run
# inserted here has no stored step yet, and no other writer can add one before this
# transaction ends, so its totals are exactly its staged spans but the run span. Inserting them
# whole saves updating every new run a second time. RETURNING names them; the rest (already
# stored) go through UPSERT_RUNS. Every writer, the row-by-row fallback included, locks new runs
# first and stored runs second, each in id order, so concurrent writers wait for each other in
# one order.
INSERT_NEW_RUNS = f"""
WITH u AS (
    {_RUNS_IN}
), staged AS (
    SELECT i.run_id, count(*) AS step_count, sum(i.cost::numeric) AS total_cost
    FROM (SELECT {_ONE_COPY} run_id, span_id, cost FROM steps_in ORDER BY {_ONE_COPY_ORDER}) i
    JOIN u ON u.id = i.run_id
    WHERE i.span_id IS DISTINCT FROM (CASE WHEN u.source > 0 THEN u.span_id END)
    GROUP BY i.run_id
)
INSERT INTO runs ({_RUN_COLUMNS}, step_count, total_cost, steps_run_span)
SELECT u.*, coalesce(staged.step_count, 0), coalesce(staged.total_cost, 0),
       CASE WHEN u.source > 0 THEN u.span_id END
FROM u LEFT JOIN staged ON staged.run_id = u.id
ORDER BY u.id
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# Runs already stored, one row per trace, merged by the rule in mapping.RunRow.beats: a better
# source replaces the row; on a tie, the earlier (started_at, span_id) does. Rows are
# sorted by id so concurrent requests take row locks in the same order (no deadlock); every
# row is locked, replaced or not, so INSERT_STEPS can change its totals safely.
UPSERT_RUNS = f"""
INSERT INTO runs AS r ({_RUN_COLUMNS})
{_RUNS_IN}
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

# Steps in, run totals kept, in one statement. $1: the ids of the batch's runs, whose rows this
# transaction holds (INSERT_NEW_RUNS or UPSERT_RUNS), so no other writer changes their totals
# until it ends; $2: those INSERT_NEW_RUNS inserted, whose totals already count these steps.
# {columns} are the staged step columns; the statement fills steps.run_span itself.
#
# - ins: a re-sent span conflicts and inserts nothing, so it never counts twice. A row is the
#   run span (run_span) when it is the span the run row now comes from.
# - When UPSERT_RUNS switched the run to a better span (now) than the one the stored rows say
#   (was, runs.steps_run_span), a row stored before this statement changes sides: the old run
#   span's row becomes a step again, the new one's stops being one. Rows inserted here are not
#   visible to these UPDATEs (one snapshot), so nothing is flagged or counted twice.
# - The totals change by what was inserted (steps only) and what changed sides.
INSERT_STEPS = f"""
WITH batch AS (
    SELECT id, steps_run_span AS was, CASE WHEN source > 0 THEN span_id END AS now,
           id = ANY($2::uuid[]) AS fresh
    FROM runs WHERE id = ANY($1::uuid[])
), ins AS (
    INSERT INTO steps ({{columns}}, run_span)
    SELECT {{staged}}, coalesce(i.span_id = b.now, false)
    FROM (SELECT {_ONE_COPY} * FROM steps_in ORDER BY {_ONE_COPY_ORDER}) i
    LEFT JOIN batch b ON b.id = i.run_id
    ORDER BY i.run_id, i.span_id
    ON CONFLICT (run_id, span_id) DO NOTHING
    RETURNING run_id, cost, run_span
), unflag AS (
    UPDATE steps s SET run_span = false FROM batch b
    WHERE b.was IS DISTINCT FROM b.now AND s.run_id = b.id AND s.span_id = b.was AND s.run_span
    RETURNING s.run_id, s.cost
), flag AS (
    UPDATE steps s SET run_span = true FROM batch b
    WHERE b.was IS DISTINCT FROM b.now AND s.run_id = b.id AND s.span_id = b.now AND NOT s.run_span
    RETURNING s.run_id, s.cost
), delta AS (
    SELECT run_id, sum(n) AS n, sum(cost) AS cost FROM (
        SELECT run_id, 1 AS n, cost::numeric AS cost FROM ins WHERE NOT run_span
        UNION ALL SELECT run_id, 1, cost::numeric FROM unflag
        UNION ALL SELECT run_id, -1, -cost::numeric FROM flag
    ) d GROUP BY run_id
)
UPDATE runs r
SET step_count = r.step_count + coalesce(d.n, 0), total_cost = r.total_cost + coalesce(d.cost, 0),
    steps_run_span = b.now
FROM batch b LEFT JOIN delta d ON d.run_id = b.id
WHERE r.id = b.id AND NOT b.fresh AND (d.run_id IS NOT NULL OR b.was IS DISTINCT FROM b.now)
"""

# The slow path for a batch PostgreSQL refused: one span at a time, each behind a savepoint,
# staged then moved by INSERT_STEPS (so totals follow the same rule), then unstaged.
STAGE_STEP = """
INSERT INTO steps_in ({columns}) VALUES ({values})
"""
UNSTAGE = "DELETE FROM steps_in"


# Candidate outcome parts in, from their staging table (COPY fills it), in the steps' transaction. A part
# already stored (a re-sent span) is not stored again; of two copies of one part in a batch, the whole one
# (then the one holding more outcomes) is the one stored. Copies that disagree (the same part sent twice
# with other outcomes) leave the part marked incomplete, in a batch or across batches: which copy is right
# cannot be told, so its step answers unknown rather than what came first. Key order, as every writer
# takes it: no deadlock.
OUTCOME_COLUMNS = "run_id, span_id, part, parts, total, n, ids, codes, ranks, reasons, incomplete, service"
def _content(t: str) -> str:
    """A digest of what a part holds (``t``: the table alias), to tell copies that disagree."""
    return (f"md5({t}ids || {t}codes || coalesce({t}ranks, ''::bytea) || convert_to(array_to_string({t}reasons, "
            f"E'\\x1f') || E'\\x1e' || coalesce({t}service, ''), 'UTF8'))")


_DISAGREE = DISAGREE
_ON_CONFLICT = f"""ON CONFLICT (run_id, span_id, part) DO UPDATE
SET incomplete = coalesce(step_outcomes.incomplete || '; ', '') || '{_DISAGREE}'
WHERE {_content("step_outcomes.")} IS DISTINCT FROM {_content("excluded.")}
  AND coalesce(step_outcomes.incomplete, '') NOT LIKE '%{_DISAGREE}%'"""
# Each part staged counts on its run's row (migrations/0015): the candidate index's signature. The batch's
# runs are already locked by this transaction (INSERT_NEW_RUNS, UPSERT_RUNS), so this takes no new lock.
INSERT_OUTCOMES = f"""
WITH counted AS (
    UPDATE runs r SET outcome_writes = r.outcome_writes + c.n
    FROM (SELECT run_id, count(*) AS n FROM outcomes_in GROUP BY run_id) c
    WHERE r.id = c.run_id
)
INSERT INTO step_outcomes ({OUTCOME_COLUMNS})
SELECT DISTINCT ON (run_id, span_id, part) run_id, span_id, part, parts, total, n, ids, codes, ranks, reasons,
       CASE WHEN disagree THEN coalesce(incomplete || '; ', '') || '{_DISAGREE}' ELSE incomplete END, service
FROM (SELECT *, min({_content("")}) OVER w <> max({_content("")}) OVER w AS disagree
      FROM outcomes_in WINDOW w AS (PARTITION BY run_id, span_id, part)) i
ORDER BY run_id, span_id, part, incomplete IS NOT NULL, n DESC
{_ON_CONFLICT}
"""
# The slow path's: one part at a time, behind a savepoint.
INSERT_OUTCOME = f"""
WITH counted AS (UPDATE runs SET outcome_writes = outcome_writes + 1 WHERE id = $1)
INSERT INTO step_outcomes ({OUTCOME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
{_ON_CONFLICT}
"""
