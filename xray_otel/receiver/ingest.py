"""The one path every transport feeds: map a decoded request, store it, report what was refused.

It also bounds in-flight work: past ``max_inflight`` concurrent requests being decoded,
mapped or written, a request waits up to ``queue_timeout`` seconds for a slot, then gets
a retryable error, so a slow database makes exporters back off instead of piling
mapped rows up in memory. HTTP bodies are read before a slot is taken, so slow uploads
cannot hold the slots; what the bodies hold is bounded by a BodyBudget instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterator

from ..mapping.rows import Batch
from ..mapping.spans import MAX_VALUE_CHARS, Admit, map_in_parts
from ..metrics import Metrics
from ..store.store import Store, StoreUnavailable
from .errors import PayloadTooLarge, Unavailable

log = logging.getLogger(__name__)

MAX_SPANS = 100_000  # per request; XRAY_MAX_SPANS_PER_REQUEST


class Ingester:
    def __init__(self, store: Store, metrics: Metrics, *, max_inflight: int = 8, queue_timeout: float = 5.0,
                 max_spans: int = MAX_SPANS, max_value_chars: int = MAX_VALUE_CHARS) -> None:
        self.store = store
        self.metrics = metrics
        self._max_spans, self._max_value_chars = max_spans, max_value_chars
        self._slots = asyncio.Semaphore(max_inflight)
        self._max_inflight, self._queue_timeout = max_inflight, queue_timeout
        self._bodies: BodyBudget | None = None

    async def export(self, request: Any, project: str | None = None) -> tuple[int, str]:
        """Store an ExportTraceServiceRequest (or otlp_json's structs of the same shape); returns (rejected spans, message)
        once committed.

        Call it holding a ``slot()``. A non-empty message with nothing rejected is a warning (OTLP
        partial_success allows that).
        """
        spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        if spans > self._max_spans:
            raise PayloadTooLarge(f"{spans} spans in one request exceed the limit of {self._max_spans}; "
                                  "send smaller batches")
        batch = Batch()
        return await self.store_mapped(batch, map_in_parts(request, batch, self._max_value_chars, project,
                                                           None if project is None else _only(project)))

    async def store_mapped(self, batch: Batch, parts: Iterator[None]) -> tuple[int, str]:
        """Run ``parts``, a generator that maps into ``batch`` and pauses now and then (map_in_parts,
        legacy.map_events_in_parts), letting other requests' reads and writes go on at each pause; then
        store the batch, holding a ``slot()``; returns once committed."""
        for _ in parts:
            await asyncio.sleep(0)
        return await self._store(batch)

    def body_budget(self, max_body_bytes: int) -> BodyBudget:
        """The budget of request-body bytes held at once: ``max_inflight`` bodies of the largest size
        (``max_body_bytes``, given by the first caller), the most that slots held when bodies were read
        inside them. Made on first use."""
        if self._bodies is None:
            self._bodies = BodyBudget(self._max_inflight * max_body_bytes, self._queue_timeout)
        return self._bodies

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of ``max_inflight`` slots while a request is decoded, mapped and stored, so the limit
        bounds the memory of requests in progress; past the wait, Unavailable. Take it once the body is
        in (a slow upload must not hold a slot), and the body is counted by ``body_budget`` meanwhile."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self._queue_timeout)
        except asyncio.TimeoutError:
            raise Unavailable("receiver is at capacity (database writes are slow); retry later") from None
        try:
            yield
        finally:
            self._slots.release()

    async def _store(self, batch: Batch) -> tuple[int, str]:
        try:
            refused, errors = await self.store.write(batch)
        except StoreUnavailable as exc:
            self.metrics.refused(len(batch.steps) + batch.continuations + batch.rejected)
            raise Unavailable(str(exc)) from None
        self.metrics.stored(len(batch.steps) + batch.continuations - refused, batch.rejected + refused)
        if batch.outcomes_incomplete:
            self.metrics.outcomes_incomplete.inc(batch.outcomes_incomplete)
            log.warning("candidate outcomes stored incomplete", extra={
                "parts": batch.outcomes_incomplete, "why": "; ".join(batch.outcome_notes)})
        return batch.rejected + refused, "; ".join(batch.errors + errors + batch.warnings(self._max_value_chars))


def _only(project: str) -> Admit:
    """The rule of a key bound to ``project``: it writes that service.name's spans, no other's."""
    def admit(service: str | None) -> str | None:
        if service == project:
            return None
        return f"this API key may only write project {project!r}, not service.name {service!r}"
    return admit


class BodyBudget:
    """At most ``capacity`` bytes of request bodies held at once, across requests, counted as they arrive.

    A request takes room for each piece of its body before keeping it (``BodyHold.take``) and gives all of
    it back when done. A slow upload holds only what it has sent so far, so hundreds dribbling a byte at a
    time hold next to nothing; a body that would take the total past the capacity waits for room, up to
    ``wait`` seconds over the whole request, then gets Unavailable (503 + Retry-After).
    """

    def __init__(self, capacity: int, wait: float) -> None:
        self.capacity, self.held = capacity, 0
        self._wait = wait
        self._freed = asyncio.Event()  # set (and replaced) whenever room is given back

    @asynccontextmanager
    async def holding(self) -> AsyncIterator[BodyHold]:
        """A hold for one request's body; everything it took is given back when the block exits."""
        hold = BodyHold(self)
        try:
            yield hold
        finally:
            self._give_back(hold.bytes)

    async def _take(self, hold: BodyHold, n: int) -> None:
        while self.held + n > self.capacity:
            left = self._wait - hold.waited
            if left <= 0:
                raise Unavailable("receiver is at capacity (too many request bodies arriving at once); "
                                  "retry later")
            started, freed = time.monotonic(), self._freed
            try:
                await asyncio.wait_for(freed.wait(), left)
            except asyncio.TimeoutError:
                pass
            hold.waited += time.monotonic() - started
        self.held += n
        hold.bytes += n

    def _give_back(self, n: int) -> None:
        if n:
            self.held -= n
            self._freed.set()  # wakes every waiter; each checks for room again
            self._freed = asyncio.Event()


class BodyHold:
    """One request's share of a BodyBudget."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.bytes = 0
        self.waited = 0.0

    async def take(self, n: int) -> None:
        """Room for ``n`` more bytes of this body; waits for it, or raises Unavailable."""
        await self._budget._take(self, n)
