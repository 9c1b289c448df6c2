"""Webhook delivery from the outbox: signed, retried with exponential backoff until a 2xx, at least once.

A process takes due deliveries on a lease (store/alerts.py CLAIM_DELIVERIES moves their next attempt
past the lease as it claims them), POSTs them, and records each attempt. A process that dies mid-POST
leaves its deliveries to be taken again when the lease runs out: a receiver may see an id twice, never
zero times, and deduplicates by it.

The body is signed with HMAC-SHA256 under the rule's secret, else the server's (XRAY_ALERT_SECRET):
``X-Xray-Signature: sha256=<hex>`` over the exact bytes of the body (docs/alerts.md shows how to check it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from ..store import alerts as sql
from ..store.store import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Xray-Signature"
MAX_BACKOFF = 3600.0  # seconds: retries go on at most an hour apart, until delivered
_NO_SECRET = "no secret to sign with: give the rule a secret, or set XRAY_ALERT_SECRET on the server"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int, first: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: first, 2×, 4×, … up to an hour."""
    return min(MAX_BACKOFF, first * 2 ** min(attempts - 1, 30))


class Deliverer:
    """Delivers what the outbox owes, ``batch`` at a time, when woken or every ``poll`` seconds."""

    def __init__(self, pool: asyncpg.Pool, *, server_secret: str, first_retry: float, wake: asyncio.Event,
                 timeout: float = 10.0, batch: int = 20,
                 counted: Callable[[str], None] = lambda outcome: None) -> None:
        self._pool, self._secret, self._first_retry = pool, server_secret, first_retry
        self._wake, self._timeout, self._batch = wake, timeout, batch
        self._counted = counted

    async def run(self, poll: float) -> None:
        """Until cancelled; a failed round is logged and tried again."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout)) as session:
            while True:
                self._wake.clear()
                try:
                    while await self.deliver_due(session) == self._batch:
                        pass
                except UNAVAILABLE_ERRORS as exc:
                    log.warning("alert delivery skipped: database unavailable", extra={"error": str(exc)})
                except Exception:  # one bad round must not end delivery for good
                    log.exception("alert delivery failed; retrying")
                try:
                    await asyncio.wait_for(self._wake.wait(), poll)
                except asyncio.TimeoutError:
                    pass

    async def deliver_due(self, session: aiohttp.ClientSession) -> int:
        """Claim the due deliveries (up to a batch), send them at once; how many were claimed."""
        claimed = await self._pool.fetch(sql.CLAIM_DELIVERIES, self._timeout + 20, self._batch)
        await asyncio.gather(*(self._deliver(session, row) for row in claimed))
        return len(claimed)

    async def _deliver(self, session: aiohttp.ClientSession, row: Mapping[str, Any]) -> None:
        secret = row["secret"] or self._secret
        status, error = (None, _NO_SECRET) if not secret else await self._post(session, row, secret)
        delivered = status is not None and 200 <= status < 300
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.RECORD_ATTEMPT, row["id"], row["attempts"], status, error)
            if delivered:
                await conn.execute(sql.MARK_DELIVERED, row["id"])
            else:
                await conn.execute(sql.RETRY_LATER, row["id"], backoff(row["attempts"], self._first_retry))
        self._counted("delivered" if delivered else "failed")
        if not delivered:
            log.warning("alert delivery failed; will retry", extra={
                "event_id": str(row["id"]), "host": urlsplit(row["url"]).hostname, "attempt": row["attempts"],
                "status": status, "error": error})

    async def _post(self, session: aiohttp.ClientSession, row: Mapping[str, Any],
                    secret: str) -> tuple[int | None, str | None]:
        body = row["body"].encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                   "X-Xray-Event-Id": str(row["id"]), "User-Agent": "xray-otel-alerts"}
        try:
            async with session.post(row["url"], data=body, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                return resp.status, None if resp.status < 300 else f"answered HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
