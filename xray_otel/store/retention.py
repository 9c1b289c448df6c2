"""Retention: delete whole runs (with their steps and candidate outcomes) older than a window, in small batches.

Each batch is its own short transaction that skips rows other transactions hold
(FOR UPDATE SKIP LOCKED), so ingestion is never blocked behind a sweep and several
workers can sweep at once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from .candidate_hours import forget_hours_before as forget_candidate_hours_before
from .pipeline_days import forget_days_before
from .pipeline_hours import forget_hours_before as forget_pipeline_hours_before
from .store import Store, StoreUnavailable, UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

# Four statements in one transaction, not one: a statement reads one snapshot, so a single
# DELETE … USING would miss steps an ingest committed after it started (left behind as orphans).
# Once the runs are locked, no writer can add steps to them (writers lock a run before its steps).
LOCK_DOOMED = """
SELECT id FROM runs
WHERE started_at < $1
ORDER BY started_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
DELETE_STEPS = "DELETE FROM steps WHERE run_id = ANY($1::uuid[])"
DELETE_OUTCOMES = "DELETE FROM step_outcomes WHERE run_id = ANY($1::uuid[])"
DELETE_RUNS = "DELETE FROM runs WHERE id = ANY($1::uuid[])"


async def sweep(store: Store, window: timedelta, batch: int = 500) -> int:
    """Delete every run that started before now - window; returns how many runs went."""
    cutoff = datetime.now(timezone.utc) - window
    deleted = 0
    while True:
        try:
            async with store.pool.acquire() as conn, conn.transaction():
                doomed = [row["id"] for row in await conn.fetch(LOCK_DOOMED, cutoff, batch)]
                await conn.execute(DELETE_STEPS, doomed)
                await conn.execute(DELETE_OUTCOMES, doomed)
                await conn.execute(DELETE_RUNS, doomed)
        except UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(f"retention sweep: database unavailable: {exc}") from exc
        count = len(doomed)
        deleted += count
        if count < batch:
            await _forget_days(store, cutoff)
            return deleted
        await asyncio.sleep(0)  # let requests in between batches


async def _forget_days(store: Store, cutoff: datetime) -> None:
    """The per-day and per-hour pipeline summaries and the candidate index of the days and hours now
    emptied (pipeline_days.py, pipeline_hours.py, candidate_hours.py)."""
    try:
        await forget_days_before(store.pool, cutoff)
        await forget_candidate_hours_before(store.pool, cutoff)
        await forget_pipeline_hours_before(store.pool, cutoff)
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"retention sweep: database unavailable: {exc}") from exc


async def run_retention(store: Store, window: timedelta, interval: float) -> None:
    """Sweep every ``interval`` seconds until cancelled; a failed sweep is logged and retried."""
    while True:
        try:
            deleted = await sweep(store, window)
            if deleted:
                log.info("retention sweep", extra={"runs_deleted": deleted, "window": str(window)})
        except StoreUnavailable as exc:
            log.warning("retention sweep skipped", extra={"error": str(exc)})
        except Exception:  # a sweep that fails must not end retention for good
            log.exception("retention sweep failed; retrying next interval")
        await asyncio.sleep(interval)
