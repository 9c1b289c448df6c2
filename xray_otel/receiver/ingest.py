"""The one path every transport feeds: map a decoded request, store it, report what was refused.

It also bounds in-flight work: past ``max_inflight`` concurrent requests being mapped
or written, a request waits up to ``queue_timeout`` seconds for a slot, then gets a
retryable error, so a slow database makes exporters back off instead of piling
mapped rows up in memory.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterator

from ..mapping import MAX_VALUE_CHARS, Batch, map_in_parts
from ..metrics import Metrics
from ..store.store import Store, StoreUnavailable
from .errors import PayloadTooLarge, Unavailable

MAX_SPANS = 100_000  # per request; XRAY_MAX_SPANS_PER_REQUEST


class Ingester:
    def __init__(self, store: Store, metrics: Metrics, *, max_inflight: int = 8, queue_timeout: float = 5.0,
                 max_spans: int = MAX_SPANS, max_value_chars: int = MAX_VALUE_CHARS) -> None:
        self.store = store
        self.metrics = metrics
        self._max_spans, self._max_value_chars = max_spans, max_value_chars
        self._slots = asyncio.Semaphore(max_inflight)
        self._queue_timeout = queue_timeout

    async def export(self, request: Any, project: str | None = None) -> tuple[int, str]:
        """Store an ExportTraceServiceRequest (or otlp_json_typed's structs); returns (rejected spans, message)
        once committed.

        Call it holding a ``slot()``. A non-empty message with nothing rejected is a warning (OTLP
        partial_success allows that).
        """
        spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        if spans > self._max_spans:
            raise PayloadTooLarge(f"{spans} spans in one request exceed the limit of {self._max_spans}; "
                                  "send smaller batches")
        batch = Batch()
        return await self.store_mapped(batch, map_in_parts(request, batch, self._max_value_chars, project))

    async def store_mapped(self, batch: Batch, parts: Iterator[None]) -> tuple[int, str]:
        """Run ``parts``, a generator that maps into ``batch`` and pauses now and then (map_in_parts,
        legacy.map_events_in_parts), letting other requests' reads and writes go on at each pause; then
        store the batch, holding a ``slot()``; returns once committed."""
        for _ in parts:
            await asyncio.sleep(0)
        return await self._store(batch)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of ``max_inflight`` slots while a request is read, decoded, mapped and stored,
        so the limit bounds the memory of requests in progress; past the wait, Unavailable."""
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
            self.metrics.refused(len(batch.steps) + batch.rejected)
            raise Unavailable(str(exc)) from None
        self.metrics.stored(len(batch.steps) - refused, batch.rejected + refused)
        return batch.rejected + refused, "; ".join(batch.errors + errors + batch.warnings(self._max_value_chars))
