"""Background evaluation: every process runs this loop, the database makes sure each due rule is
evaluated by one of them.

A rule is claimed with FOR UPDATE SKIP LOCKED (store/alerts.py CLAIM_DUE_RULE), with its pipeline's
other threshold rules due within the interval (CLAIM_SIBLINGS: one read of the window serves them, at
most SAMPLE_RUNS of its runs); the verdicts, state changes, firings and deliveries owed are committed
in that transaction, and ``next_eval_at`` moves one interval on. Another process skips the locked rows,
then sees they are no longer due: one evaluation per interval however many processes share the
database (a sibling may be taken up to an interval early), and a restart finds the state as it was left.

A rule whose figure cannot be computed or judged gets a short note, its state left undecided (a firing
rule stays firing), and its next evaluation an interval on, while the rules read with it are judged as
usual; anything else that fails sets every claimed rule aside in a transaction of its own, so none stays
first in line and stops the rules after it. The error itself goes to the server log only; notes are
read by every key that can read rules.
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
from .judge import Figures, Verdict, threshold_verdict, transition, webhook_body
from ..web import dumps

log = logging.getLogger(__name__)

_SHOWN_CHANGES = 5  # in a change rule's webhook body, most significant first
# Runs of a window a threshold evaluation reads at most: a uniform sample beyond (the verdict says so).
# 1,000 runs put a mean drop rate within about +-0.006 (95%, a run-to-run spread of 0.1) and keep a
# round of a pipeline's rules to tens of milliseconds however busy the pipeline is (bench/alerts.py).
SAMPLE_RUNS = 1_000
_FAILED = ("evaluation failed ({what}); it is tried again every interval. The server log has the error "
           "(search for this rule's name); if it persists, check the rule's definition or report it")


class Evaluator:
    """Evaluates due rules, one per call; each rule ``interval`` seconds apart (alerts/service.py runs it)."""

    def __init__(self, pool: asyncpg.Pool, reads: Reads, *, interval: float, base_url: str,
                 sample_runs: int = SAMPLE_RUNS, counted: Callable[[str], None] = lambda outcome: None,
                 delivered: asyncio.Event | None = None) -> None:
        self._pool, self._reads = pool, reads
        self.sample_runs = sample_runs
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
                await self._set_aside(conn, claimed)
                return True

    async def _set_aside(self, conn: asyncpg.Connection, rows: list[Mapping[str, Any]]) -> None:
        """Rules whose evaluation failed unexpectedly: their notes say so, their next evaluation an interval on."""
        log.exception("alert rule evaluation failed", extra={"rules": [row["name"] for row in rows],
                                                             "rule_ids": [row["id"] for row in rows]})
        async with conn.transaction():
            for row in rows:
                self._counted("error")
                await conn.execute(sql.SET_ASIDE, row["id"], _FAILED.format(what="unexpected error"), self.interval)

    async def _evaluate(self, conn: asyncpg.Connection, claimed: list[Any]) -> bool:
        """The claim, verdicts, events and states in one transaction; the rows claimed are put in ``claimed``.
        A threshold rule brings its pipeline's other threshold rules due within the interval: one read of
        the window serves them all."""
        async with conn.transaction():
            row = await conn.fetchrow(sql.CLAIM_DUE_RULE)
            if row is None:
                return False
            claimed.append(row)
            if row["kind"] == "threshold":
                claimed += await conn.fetch(sql.CLAIM_SIBLINGS, row["pipeline"], row["id"], self.interval)
            rules = [{**r, "spec": json.loads(r["spec"])} for r in claimed]
            verdicts = await self._verdicts(conn, rules)
            wake = False
            for rule, verdict in zip(rules, verdicts):
                state, event = transition(rule["state"], verdict.holds)
                firing_id = rule["firing_id"] if state == "firing" else None
                if event is not None:
                    event_id = await self._record(conn, rule, event, verdict)
                    firing_id = event_id if event == "firing" else None
                    wake = wake or bool(rule["webhook"])
                await conn.execute(sql.SET_STATE, rule["id"], state, verdict.value, verdict.note, firing_id,
                                   self.interval)
                self._counted(state if verdict.holds is not None else "unknown")
        if wake and self._outbox is not None:
            self._outbox.set()  # committed: the delivery loop can take it now rather than at its next poll
        return True

    async def _verdicts(self, conn: asyncpg.Connection, rules: list[dict[str, Any]]) -> list[Verdict]:
        """Each rule's verdict: threshold rules from one read per window length, a change rule on its own."""
        verdicts: dict[int, Verdict] = {}
        windows: dict[int, list[dict[str, Any]]] = {}
        for rule in rules:
            if rule["kind"] == "threshold":
                windows.setdefault(rule["spec"]["window"], []).append(rule)
            else:
                verdicts[rule["id"]] = await self._guarded(conn, [rule], self._changes(rule))
        for window, group in windows.items():
            found = await self._guarded(conn, group, self._figures(conn, group, window))
            for rule in group:
                verdicts[rule["id"]] = found if isinstance(found, Verdict) else self._threshold(rule, found)
        return [verdicts[rule["id"]] for rule in rules]

    def _threshold(self, rule: Mapping[str, Any], figures: Figures) -> Verdict:
        """One rule's verdict from its window's figures; a rule that cannot be judged (a bad figure, a bug)
        is noted as failed, and the rules read with it are judged all the same."""
        try:
            return threshold_verdict(rule["spec"], rule["step"], figures.of(rule["step"], rule["spec"].get("reason")),
                                     sample=figures.sample)
        except Exception as exc:
            unexpected = not isinstance(exc, (ValueError, TypeError))
            (log.exception if unexpected else log.warning)(
                "alert rule could not be evaluated", extra={"rule": rule["name"], "rule_id": rule["id"],
                                                            "error": f"{type(exc).__name__}: {exc}"})
            self._counted("error")
            return Verdict(None, None, _FAILED.format(
                what="unexpected error" if unexpected else "the figure could not be computed"))

    async def _guarded(self, conn: asyncpg.Connection, rules: list[Mapping[str, Any]], work: Any) -> Any:
        """``work``'s result, or the verdict of a figure that could not be computed for ``rules`` (in a
        savepoint: a failed figure leaves the claim standing)."""
        try:
            async with conn.transaction():
                return await work
        except (asyncpg.PostgresError, ValueError, TypeError) as exc:
            for rule in rules:
                log.warning("alert rule could not be evaluated", extra={
                    "rule": rule["name"], "rule_id": rule["id"], "error": f"{type(exc).__name__}: {exc}"})
                self._counted("error")
            what = "the database could not compute the figure" if isinstance(exc, asyncpg.PostgresError) \
                else "the figure could not be computed"
            return Verdict(None, None, _FAILED.format(what=what))

    async def _figures(self, conn: asyncpg.Connection, rules: list[dict[str, Any]], window: int) -> Figures:
        """The figures of these threshold rules (one pipeline, one window length) from one read."""
        first = rules[0]
        wanted = sorted({(rule["step"], rule["spec"].get("reason") or "") for rule in rules if rule["step"] is not None})
        wanted = [(step, reason or None) for step, reason in wanted]  # each pair once: a reason is summed once
        rows = await conn.fetch(sql.WINDOW_FIGURES, first["pipeline"], first["now"] - timedelta(seconds=window),
                                first["now"], [step for step, _ in wanted], [reason for _, reason in wanted],
                                self.sample_runs)
        return Figures(rows)

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
