"""Webhook delivery from the outbox: signed, retried with exponential backoff until a 2xx, at least once.

A process takes due deliveries on a lease (store/alerts.py CLAIM_DELIVERIES moves their next attempt
past the lease as it claims them), POSTs them, and records each attempt. A process that dies mid-POST
leaves its deliveries to be taken again when the lease runs out: a receiver may see an id twice, never
zero times, and deduplicates by it.

The body is signed with HMAC-SHA256 under the rule's secret, else the server's (XRAY_ALERT_SECRET):
``X-Xray-Signature: sha256=<hex>`` over the exact bytes of the body (docs/alerts.md shows how to check it).

A rule's webhook is a URL anyone with the ``admin`` scope chose, POSTed from inside the server's network:
unless the operator allows it (XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS), the delivery session connects only to
public addresses. ``PublicResolver`` drops the others from every DNS answer, at connect time, so a name
that resolves (or is re-bound) to loopback, a private network or the cloud metadata address is not
reached; a literal address is checked before the POST (aiohttp does not resolve those).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from aiohttp.abc import AbstractResolver, ResolveResult

from ..store import alerts as sql
from ..store.store import UNAVAILABLE_ERRORS
from .rules import address_kind, private_address, show_webhook

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Xray-Signature"
MAX_BACKOFF = 3600.0  # seconds: retries go on at most an hour apart, until delivered
MAX_ANSWER = 64 * 1024  # bytes of a receiver's answer read: only its status matters
_NO_SECRET = "no secret to sign with: give the rule a secret, or set XRAY_ALERT_SECRET on the server"
_OPT_IN = "set XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS=1 on the server if it is meant to be reached"


class PrivateAddress(OSError):
    """A webhook host that resolves only to non-public addresses: not connected to."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)  # strerror: what aiohttp's connection error shows

    def __str__(self) -> str:
        return self.strerror


class PublicResolver(AbstractResolver):
    """The default resolver, keeping only the public (``is_global``) addresses of each answer."""

    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if ipaddress.ip_address(r["host"]).is_global]
        if not public:
            kinds = sorted({address_kind(ipaddress.ip_address(r["host"])) for r in found})
            raise PrivateAddress(f"{host} resolves only to non-public addresses ({', '.join(kinds)}): "
                                 f"not connected to; {_OPT_IN}")
        return public

    async def close(self) -> None:
        await self._inner.close()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int, first: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: first, 2×, 4×, … up to an hour."""
    return min(MAX_BACKOFF, first * 2 ** min(attempts - 1, 30))


class Deliverer:
    """Delivers what the outbox owes, ``batch`` at a time, when woken or every ``poll`` seconds."""

    def __init__(self, pool: asyncpg.Pool, *, server_secret: str, first_retry: float, wake: asyncio.Event,
                 timeout: float = 10.0, batch: int = 20, private_webhooks: bool = False,
                 counted: Callable[[str], None] = lambda outcome: None) -> None:
        self._pool, self._secret, self._first_retry = pool, server_secret, first_retry
        self._wake, self._timeout, self._batch = wake, timeout, batch
        self._private, self._counted = private_webhooks, counted

    def session(self) -> aiohttp.ClientSession:
        """The delivery session: public addresses only, unless private webhooks are allowed."""
        connector = aiohttp.TCPConnector(resolver=None if self._private else PublicResolver())
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def run(self, poll: float) -> None:
        """Until cancelled; a failed round is logged and tried again."""
        async with self.session() as session:
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
                "event_id": str(row["id"]), "webhook": show_webhook(row["url"]), "attempt": row["attempts"],
                "status": status, "error": error})

    async def _post(self, session: aiohttp.ClientSession, row: Mapping[str, Any],
                    secret: str) -> tuple[int | None, str | None]:
        body = row["body"].encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                   "X-Xray-Event-Id": str(row["id"]), "User-Agent": "xray-otel-alerts"}
        refused = None if self._private else private_address(urlsplit(row["url"]).hostname or "")
        if refused is not None:
            return None, f"PrivateAddress: the webhook's host is {refused}: not connected to; {_OPT_IN}"
        try:
            async with session.post(row["url"], data=body, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(MAX_ANSWER)
                return resp.status, None if resp.status < 300 else f"answered HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return None, _scrubbed(f"{type(exc).__name__}: {exc}", row["url"])[:500]


def _scrubbed(error: str, url: str) -> str:
    """``error`` without the webhook's path and query (they may be its credential): errors are stored and logged."""
    parts = urlsplit(url)
    hidden = parts.path + ("?" + parts.query if parts.query else "")
    error = error.replace(url, show_webhook(url) or "")
    return error.replace(hidden, "/…") if len(hidden) > 1 else error
