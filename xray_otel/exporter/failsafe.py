"""Export that cannot hurt the application: no exception, one warning per outage, bounded waits.

The stock OTLP exporters retry for up to their timeout (10 s by default) and log every
failed batch; ``BatchSpanProcessor.shutdown`` then waits for all of that at interpreter
exit. :class:`FailSafeExporter` turns an outage into one warning and fast drops, and
:func:`run_within` puts a hard bound on flush and shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("xray_otel")

RETRY_AFTER_S = 5.0
"""After a failed export, batches ending within this many seconds are dropped untried."""

# The OTLP exporters log each failed attempt here; we report the outage ourselves instead.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)
_exporting = threading.local()


class _QuietWhileExporting(logging.Filter):
    """Swallow the inner exporter's records on our export thread, keeping the last as the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(_exporting, "active", False):
            return True
        _exporting.reason = record.getMessage()
        return False


_QUIET = _QuietWhileExporting()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET)


class FailSafeExporter(SpanExporter):
    """Wraps an OTLP span exporter so that a missing or failing receiver costs nothing but spans."""

    def __init__(self, inner: SpanExporter, target: str) -> None:
        self._inner = inner
        self._target = target
        self._lock = threading.Lock()
        self._failing = False
        self._retry_at = 0.0
        self._dropped = 0
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._failing and time.monotonic() < self._retry_at:
            self._dropped += len(spans)
            return SpanExportResult.FAILURE
        _exporting.active, _exporting.reason = True, None
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # an exporter bug must not reach the BatchSpanProcessor's thread
            result, _exporting.reason = SpanExportResult.FAILURE, repr(exc)
        finally:
            _exporting.active = False
        if result is SpanExportResult.SUCCESS:
            self._recovered()
        else:
            self._failed(len(spans), _exporting.reason or "export failed")
        return result

    def _failed(self, count: int, reason: str) -> None:
        self._dropped += count
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        if not self._failing:
            self._failing = True
            log.warning(
                "xray-otel: cannot send spans to %s (%s). The application is unaffected; spans are "
                "dropped until it is reachable again. Logged once per outage.",
                self._target,
                reason,
            )

    def _recovered(self) -> None:
        if self._failing:
            log.info("xray-otel: sending spans to %s again; %d spans were dropped.", self._target, self._dropped)
            self._failing, self._dropped = False, 0

    def shutdown(self) -> None:
        """Stop the inner exporter once; also interrupts a retry back-off in progress."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._inner.shutdown()
        except Exception:
            log.debug("xray-otel: exporter shutdown failed", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here; the BatchSpanProcessor holds the queue


def run_within(fn: Callable[[], object], timeout_s: float, name: str) -> bool:
    """Run ``fn`` on a daemon thread and wait at most ``timeout_s``; True if it finished in time.

    A thread that overruns is left behind; being a daemon, it cannot hold up interpreter exit.
    """
    def target() -> None:
        try:
            fn()
        except Exception:
            log.debug("xray-otel: %s failed", name, exc_info=True)

    worker = threading.Thread(target=target, name=f"xray-otel-{name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return not worker.is_alive()
