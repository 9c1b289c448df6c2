"""Alert rules, firings and the webhook outbox in PostgreSQL (migrations/0011_alerts.sql).

The statements are here; ``AlertStore`` runs those the REST API and start-up need, and the evaluator
and the delivery loop (xray_otel/alerts/) run theirs on a connection they hold in a transaction.
A rule's secret is written here and read only by the delivery claim: no read the API makes returns it.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from ..alerts.rules import Rule
from . import read_sql as sql
from .reads import Row

_RULE = """id, name, kind, pipeline, step, spec, webhook, secret IS NOT NULL AS has_secret, enabled, state,
           value, note, firing_id, evaluated_at, created_at, updated_at"""
LIST_RULES = f"SELECT {_RULE} FROM alert_rules ORDER BY name"
GET_RULE = f"SELECT {_RULE} FROM alert_rules WHERE id = $1"
INSERT_RULE = f"""
INSERT INTO alert_rules (name, kind, pipeline, step, spec, webhook, secret, enabled)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)
RETURNING {_RULE}
"""


def _set_definition(first: int) -> str:
    """SET clause for a definition given as parameters ``$first`` on, in _definition's order. A changed
    definition is evaluated at once; its state stays (a firing rule resolves when it no longer holds)."""
    name, kind, pipeline, step, spec, webhook, secret, keep, enabled = (f"${first + i}" for i in range(9))
    return f"""name = {name}, kind = {kind}, pipeline = {pipeline}, step = {step}, spec = {spec}::jsonb,
    webhook = {webhook}, secret = CASE WHEN {keep} THEN alert_rules.secret ELSE {secret} END, enabled = {enabled},
    updated_at = now(), next_eval_at = now()"""


REPLACE_RULE = f"UPDATE alert_rules SET {_set_definition(2)} WHERE id = $1 RETURNING {_RULE}"
# The rules file at start: by name; a definition unchanged is left alone (not re-evaluated, same updated_at).
UPSERT_RULE = f"""
INSERT INTO alert_rules (name, kind, pipeline, step, spec, webhook, secret, enabled)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, CASE WHEN $8 THEN NULL ELSE $7 END, $9)
ON CONFLICT (name) DO UPDATE SET {_set_definition(1)}
WHERE (alert_rules.kind, alert_rules.pipeline, alert_rules.step, alert_rules.spec, alert_rules.webhook,
       alert_rules.enabled) IS DISTINCT FROM ($2, $3, $4, $5::jsonb, $6, $9)
   OR (NOT $8 AND alert_rules.secret IS DISTINCT FROM $7)
RETURNING id
"""
DELETE_RULE = "DELETE FROM alert_rules WHERE id = $1 RETURNING id"
RECENT_FIRINGS = """
SELECT f.id, f.rule_id, r.name AS rule, f.state, f.firing_id, f.at, f.value, f.detail,
       o.delivered_at, o.attempts
FROM alert_firings f
JOIN alert_rules r ON r.id = f.rule_id
LEFT JOIN alert_outbox o ON o.id = f.id
ORDER BY f.at DESC, f.id
LIMIT $1
"""
RULE_STATES = "SELECT name, pipeline, step, state FROM alert_rules WHERE enabled ORDER BY name"
PENDING_DELIVERIES = "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL"

# --- evaluation: one due rule, locked for the transaction; others skip it ---------------------------
CLAIM_DUE_RULE = """
SELECT id, name, kind, pipeline, step, spec, webhook, state, firing_id, now() AS now
FROM alert_rules
WHERE enabled AND next_eval_at <= now()
ORDER BY next_eval_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
SET_STATE = """
UPDATE alert_rules SET state = $2, value = $3, note = $4, firing_id = $5, evaluated_at = now(),
    next_eval_at = now() + make_interval(secs => $6)
WHERE id = $1
"""
# An evaluation that failed unexpectedly (rolled back): the note, and the next try an interval on.
SET_ASIDE = """
UPDATE alert_rules SET note = $2, evaluated_at = now(), next_eval_at = now() + make_interval(secs => $3)
WHERE id = $1
"""
INSERT_FIRING = """
INSERT INTO alert_firings (id, rule_id, state, firing_id, at, value, detail) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
"""
INSERT_OUTBOX = "INSERT INTO alert_outbox (id, rule_id, url, body) VALUES ($1, $2, $3, $4)"

# The other threshold rules of pipeline $1 due within the next $3 seconds (not rule $2): evaluated with it
# from one read of the window, so a pipeline's rules cost one read a round, and fall in step after it.
CLAIM_SIBLINGS = """
SELECT id, name, kind, pipeline, step, spec, webhook, state, firing_id, now() AS now
FROM alert_rules
WHERE enabled AND kind = 'threshold' AND pipeline = $1 AND id <> $2
  AND next_eval_at <= now() + make_interval(secs => $3)
ORDER BY id
FOR UPDATE SKIP LOCKED
"""

# Threshold figures over the window [$2, $3) of pipeline $1: per step named in $4 (with the rejections
# of each reason in $5), and for the runs as a whole (step NULL). Read from at most $6 of the window's
# runs: all of them when it holds no more, else a uniform sample (the $6 lowest hashes of the run ids),
# so an evaluation costs the same at 3 runs a minute as at 1,000 a second; ``population`` is how many
# runs the window holds, ``sampled`` how many were read.
WINDOW_FIGURES = f"""
WITH pop AS MATERIALIZED (
    SELECT r.id FROM runs r WHERE r.name = $1 AND r.started_at >= $2 AND r.started_at < $3
), picked AS MATERIALIZED (
    SELECT id FROM pop ORDER BY uuid_hash_extended(id, 0), id LIMIT $6
), s AS MATERIALIZED (
    SELECT s.name, s.rejections, {sql.STEP_HAS_ERROR} AS failed, {sql.DROP_RATE} AS drop_rate,
           s.cost, {sql.STEP_DURATION_MS} AS duration_ms
    FROM picked CROSS JOIN LATERAL (  -- each run's steps by primary key (OFFSET 0: never a scan of them all)
        SELECT * FROM steps s WHERE s.run_id = picked.id AND {sql.IS_STEP} AND s.name = ANY($4::text[]) OFFSET 0) s
), reasons AS (
    SELECT u.name, jsonb_object_agg(u.reason, u.n) AS reason_n
    FROM (SELECT s.name, w.reason, sum((s.rejections ->> w.reason)::double precision) AS n
          FROM s JOIN unnest($4::text[], $5::text[]) AS w(step, reason) ON w.step = s.name AND w.reason IS NOT NULL
          WHERE jsonb_typeof(s.rejections -> w.reason) = 'number'
          GROUP BY 1, 2) u
    GROUP BY 1
), steps AS (
    SELECT s.name AS step, count(*) AS n, count(*) FILTER (WHERE failed) AS failed, count(*) AS finished,
           avg(drop_rate) AS drop_rate, avg(s.cost)::double precision AS cost,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS duration_p95,
           coalesce(sum((SELECT sum(j.value::text::double precision)
                         FROM jsonb_each(CASE WHEN jsonb_typeof(s.rejections) = 'object'
                                              THEN s.rejections ELSE '{{}}'::jsonb END) AS j
                         WHERE jsonb_typeof(j.value) = 'number')), 0) AS rejected_n
    FROM s GROUP BY s.name
), whole AS (
    SELECT NULL::text AS step, count(*) AS n, count(*) FILTER (WHERE r.status = 'FAILED') AS failed,
           count(*) FILTER (WHERE r.status <> 'RUNNING') AS finished, NULL::double precision AS drop_rate,
           avg(r.total_cost)::double precision AS cost,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY {sql.RUN_DURATION_MS}) AS duration_p95,
           0::double precision AS rejected_n
    FROM picked JOIN runs r ON r.id = picked.id
)
SELECT w.*, coalesce(reasons.reason_n, '{{}}'::jsonb)::text AS reason_n,
       (SELECT count(*) FROM pop) AS population, (SELECT count(*) FROM picked) AS sampled
FROM (SELECT * FROM steps UNION ALL SELECT * FROM whole) w
LEFT JOIN reasons ON reasons.name = w.step
"""

# --- delivery: a lease on due deliveries, so a process that dies mid-POST leaves them to another ------
# A rule's deliveries go in the order they were made: one is not claimed while an older one of its rule is
# undelivered (in backoff, or leased to another process), so a resolution never overtakes its firing.
CLAIM_DELIVERIES = """
UPDATE alert_outbox o SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $1)
FROM alert_rules r
WHERE r.id = o.rule_id AND o.id IN (
    SELECT d.id FROM alert_outbox d
    WHERE d.delivered_at IS NULL AND d.next_attempt_at <= now()
      AND NOT EXISTS (
          SELECT 1 FROM alert_outbox older
          WHERE older.rule_id = d.rule_id AND older.delivered_at IS NULL
            AND (older.created_at, older.id) < (d.created_at, d.id))
    ORDER BY d.next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.url, o.body, o.attempts, r.secret
"""
RECORD_ATTEMPT = """
INSERT INTO alert_delivery_attempts (outbox_id, attempt, status, error) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
"""
MARK_DELIVERED = "UPDATE alert_outbox SET delivered_at = now() WHERE id = $1"
RETRY_LATER = "UPDATE alert_outbox SET next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1"


class DuplicateRule(Exception):
    """A rule of that name exists already."""


def _definition(rule: Rule) -> tuple[Any, ...]:
    secret = None if rule.keeps_secret else rule.secret
    return (rule.name, rule.kind, rule.pipeline, rule.step, json.dumps(rule.spec, sort_keys=True), rule.webhook,
            secret, rule.keeps_secret, rule.enabled)


def rule_row(row: Row) -> dict[str, Any]:
    """A stored rule with its spec decoded."""
    return {**row, "spec": json.loads(row["spec"])}


class AlertStore:
    """The alert reads and writes the API and start-up make, over the store's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def rules(self) -> list[dict[str, Any]]:
        return [rule_row(r) for r in await self._pool.fetch(LIST_RULES)]

    async def rule(self, rule_id: int) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(GET_RULE, rule_id)
        return None if row is None else rule_row(row)

    async def create(self, rule: Rule) -> dict[str, Any]:
        name, kind, pipeline, step, spec, webhook, secret, _, enabled = _definition(rule)
        try:
            return rule_row(await self._pool.fetchrow(INSERT_RULE, name, kind, pipeline, step, spec, webhook,
                                                      secret, enabled))
        except asyncpg.UniqueViolationError:
            raise DuplicateRule(rule.name) from None

    async def replace(self, rule_id: int, rule: Rule) -> dict[str, Any] | None:
        try:
            row = await self._pool.fetchrow(REPLACE_RULE, rule_id, *_definition(rule))
        except asyncpg.UniqueViolationError:
            raise DuplicateRule(rule.name) from None
        return None if row is None else rule_row(row)

    async def upsert(self, rule: Rule) -> bool:
        """Create or redefine the rule of that name; True when anything changed."""
        return await self._pool.fetchval(UPSERT_RULE, *_definition(rule)) is not None

    async def delete(self, rule_id: int) -> bool:
        return await self._pool.fetchval(DELETE_RULE, rule_id) is not None

    async def recent_firings(self, limit: int) -> list[dict[str, Any]]:
        return [{**r, "detail": json.loads(r["detail"])} for r in await self._pool.fetch(RECENT_FIRINGS, limit)]

    async def states(self) -> tuple[list[Row], int]:
        """Every enabled rule's (name, pipeline, step, state), and the deliveries still owed."""
        async with self._pool.acquire() as conn:
            return await conn.fetch(RULE_STATES), await conn.fetchval(PENDING_DELIVERIES)
