"""Background evaluation: every process runs this loop, the database makes sure each due rule is
evaluated by one of them.

A rule is claimed with FOR UPDATE SKIP LOCKED (store/alerts.py CLAIM_DUE_RULE); its verdict, the state
change, the firing and the delivery owed are committed in that transaction, and ``next_eval_at`` moves
one interval on. Another process skips the locked row, then sees it is no longer due: one evaluation per
interval however many processes share the database, and a restart finds the state as it was left.

A rule whose evaluation fails in any way (a bad figure, a bug) gets a short note and its next evaluation
an interval on, in a transaction of its own: it does not stay first in line and stop the rules after it.
The error itself goes to the server log only; notes are read by every key that can read rules.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import timedelta
from typing import Any, Callable, Mapping

import asyncpg

from ..health.changes import UnknownPipeline, find_changes
from ..store import alerts as sql
from ..store.reads import Reads
from ..store.store import UNAVAILABLE_ERRORS
from .judge import Verdict, threshold_verdict, transition, webhook_body
from ..web import dumps

log = logging.getLogger(__name__)

_SHOWN_CHANGES = 5  # in a change rule's webhook body, most significant first
_FAILED = ("evaluation failed ({what}); it is tried again every interval. The server log has the error "
           "(search for this rule's name); if it persists, check the rule's definition or report it")


class Evaluator:
    """Evaluates due rules, one per call; each rule ``interval`` seconds apart (alerts/service.py runs it)."""

    def __init__(self, pool: asyncpg.Pool, reads: Reads, *, interval: float, base_url: str,
                 counted: Callable[[str], None] = lambda outcome: None,
                 delivered: asyncio.Event | None = None) -> None:
        self._pool, self._reads = pool, reads
        self.interval, self._base_url = interval, base_url
        self._counted = counted
        self._outbox = delivered  # set when a delivery was queued: the delivery loop need not wait its poll

    async def evaluate_one(self) -> bool:
        """Evaluate one due rule, if any is (and not taken by another process); True when one was."""
        claimed: list[Any] = []
        async with self._pool.acquire() as conn:
            try:
                return await self._evaluate(conn, claimed)
            except UNAVAILABLE_ERRORS:
                raise  # the database, not the rule: the loop waits a tick
            except Exception:
                if not claimed:
                    raise
                await self._set_aside(conn, claimed[0])
                return True

    async def _set_aside(self, conn: asyncpg.Connection, row: Mapping[str, Any]) -> None:
        """A rule whose evaluation failed unexpectedly: its note says so, its next evaluation an interval on."""
        log.exception("alert rule evaluation failed", extra={"rule": row["name"], "rule_id": row["id"]})
        self._counted("error")
        async with conn.transaction():
            await conn.execute(sql.SET_ASIDE, row["id"], _FAILED.format(what="unexpected error"), self.interval)

    async def _evaluate(self, conn: asyncpg.Connection, claimed: list[Any]) -> bool:
        """The claim, verdict, event and state in one transaction; the row claimed is put in ``claimed``."""
        async with conn.transaction():
            row = await conn.fetchrow(sql.CLAIM_DUE_RULE)
            if row is None:
                return False
            claimed.append(row)
            rule = {**row, "spec": json.loads(row["spec"])}
            verdict = await self._verdict(conn, rule)
            state, event = transition(rule["state"], verdict.holds)
            firing_id = rule["firing_id"] if state == "firing" else None
            if event is not None:
                event_id = await self._record(conn, rule, event, verdict)
                firing_id = event_id if event == "firing" else None
            await conn.execute(sql.SET_STATE, rule["id"], state, verdict.value, verdict.note, firing_id,
                               self.interval)
        if event is not None and rule["webhook"] and self._outbox is not None:
            self._outbox.set()  # committed: the delivery loop can take it now rather than at its next poll
        self._counted(state if verdict.holds is not None else "unknown")
        return True

    async def _verdict(self, conn: asyncpg.Connection, rule: Mapping[str, Any]) -> Verdict:
        try:
            async with conn.transaction():  # a savepoint: a failed figure leaves the claim standing
                if rule["kind"] == "threshold":
                    return await self._threshold(conn, rule)
                return await self._changes(rule)
        except (asyncpg.PostgresError, ValueError, TypeError) as exc:
            log.warning("alert rule could not be evaluated", extra={"rule": rule["name"], "rule_id": rule["id"],
                                                                    "error": f"{type(exc).__name__}: {exc}"})
            self._counted("error")
            what = "the database could not compute the figure" if isinstance(exc, asyncpg.PostgresError) \
                else "the figure could not be computed"
            return Verdict(None, None, _FAILED.format(what=what))

    async def _threshold(self, conn: asyncpg.Connection, rule: Mapping[str, Any]) -> Verdict:
        spec, now = rule["spec"], rule["now"]
        statement = sql.STEP_FIGURES if rule["step"] is not None else sql.RUN_FIGURES
        figures = await conn.fetchrow(statement, rule["pipeline"], now - timedelta(seconds=spec["window"]), now,
                                      rule["step"], spec.get("reason"))
        return threshold_verdict(spec, rule["step"], figures)

    async def _changes(self, rule: Mapping[str, Any]) -> Verdict:
        """health/changes.py's verdict on the window against the baseline right before it (its test, its
        correction for the many figures compared); fires while any significant change stands."""
        spec = rule["spec"]
        try:
            found = await find_changes(self._reads, rule["pipeline"], timedelta(seconds=spec["window"]),
                                       timedelta(seconds=spec["baseline"]), rule["now"])
        except UnknownPipeline:
            return Verdict(None, None, f"no run is named {rule['pipeline']!r} yet")
        flagged = [c for c in found if c.get("significant") and rule["step"] in (None, c.get("step"))]
        if not flagged:
            return Verdict(0.0, False)
        top = flagged[0]
        detail = {"step": top.get("step"), "what": top.get("what"), "reason": top.get("reason"),
                  "changes": flagged[:_SHOWN_CHANGES]}
        return Verdict(float(len(flagged)), True, detail=detail)

    async def _record(self, conn: asyncpg.Connection, rule: Mapping[str, Any], event: str,
                      verdict: Verdict) -> uuid.UUID:
        """The firing or resolution, and its delivery when the rule has a webhook: in the claim's transaction."""
        event_id = uuid.uuid4()
        ends = rule["firing_id"] if event == "resolved" else None
        body = dumps(webhook_body(str(event_id), event, rule, verdict, rule["now"],
                                  firing_id=None if ends is None else str(ends), base_url=self._base_url))
        await conn.execute(sql.INSERT_FIRING, event_id, rule["id"], event, ends, rule["now"], verdict.value, body)
        if rule["webhook"]:
            await conn.execute(sql.INSERT_OUTBOX, event_id, rule["id"], rule["webhook"], body)
        log.info("alert " + event, extra={"rule": rule["name"], "pipeline": rule["pipeline"], "step": rule["step"],
                                          "value": verdict.value, "event_id": str(event_id)})
        return event_id
