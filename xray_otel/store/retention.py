"""Retention: delete whole runs (with their steps) older than a window, in small batches.

Each batch is its own short transaction that skips rows other transactions hold
(FOR UPDATE SKIP LOCKED), so ingestion is never blocked behind a sweep and several
workers can sweep at once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from .store import Store, StoreUnavailable, UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

DELETE_BATCH = """
WITH doomed AS (
    SELECT id FROM runs
    WHERE started_at < $1
    ORDER BY started_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone_steps AS (
    DELETE FROM steps s USING doomed d WHERE s.run_id = d.id
)
DELETE FROM runs r USING doomed d WHERE r.id = d.id
"""

async def sweep(store: Store, window: timedelta, batch: int = 500) -> int:
    """Delete every run that started before now - window; returns how many runs went."""
    cutoff = datetime.now(timezone.utc) - window
    deleted = 0
    while True:
        try:
            async with store.pool.acquire() as conn:
                status = await conn.execute(DELETE_BATCH, cutoff, batch)
        except UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(f"retention sweep: database unavailable: {exc}") from exc
        count = int(status.split()[-1])
        deleted += count
        if count < batch:
            return deleted
        await asyncio.sleep(0)  # let requests in between batches


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
