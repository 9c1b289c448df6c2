"""Export that cannot hurt the application: no exception, one warning per outage, bounded waits.

The stock OTLP exporters retry for up to their timeout (10 s by default) and log every
failed batch; ``BatchSpanProcessor.shutdown`` then waits for all of that at interpreter
exit. :class:`FailSafeExporter` turns an outage into one warning and fast drops, and
:func:`run_within` puts a hard bound on flush and shutdown.

It also keeps every request small enough for any receiver: the BatchSpanProcessor hands over
up to 512 spans at once whatever their size, and a step's outcome parts (outcomes.py) can
weigh up to PART_BYTES each, so a batch is sent as several requests of at most about
REQUEST_BYTES (gRPC's default message limit is 4 MiB; the xray receiver's HTTP body cap 20 MiB).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .outcomes import utf8_len

log = logging.getLogger("xray_otel")

RETRY_AFTER_S = 5.0
"""After a failed export, batches ending within this many seconds are dropped untried."""
REQUEST_BYTES = 3 * 1024 * 1024
"""Estimated encoded size above which a batch is split into several requests."""
SPAN_BYTES = 256
"""Estimated bytes of a span before its name, attributes, events and links (ids, times, status)."""

# The OTLP exporters log each failed attempt here; we report the outage ourselves instead.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)
_exporting = threading.local()


class _QuietWhileExporting(logging.Filter):
    """Swallow the inner exporter's records on our export thread, keeping the cause they tell."""

    def filter(self, record: logging.LogRecord) -> bool:
        owner = getattr(_exporting, "owner", None)
        if owner is None:
            return True
        owner._note(*_cause(record))
        return False


_QUIET = _QuietWhileExporting()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET)

_PHRASES = {status.phrase.lower(): status for status in HTTPStatus}
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\"\])\]]+)")
_STATUS_CODE = re.compile(r"\bcode: (\d{3})\b")
# Records that say an export ended, not why: an earlier record's cause is kept over these.
_NO_CAUSE = ("due to timeout, max retries or shutdown", "Shutdown in progress")


def _cause(record: logging.LogRecord) -> tuple[str, bool]:
    """Why an export failed, in a few words, from an OTLP exporter's log record; and whether it says why.

    Built from the record's status code, errno text or gRPC code, never from request headers.
    """
    args = record.args if isinstance(record.args, tuple) else ()
    message = record.getMessage()
    for i, arg in enumerate(args):
        if type(arg).__name__ == "StatusCode":  # gRPC: the code, then (last) the details
            details = args[-1] if i < len(args) - 1 and isinstance(args[-1], str) else ""
            return _short(f"gRPC {arg.name}" + (f": {details}" if details.strip() else "")), True
    if "code" in str(record.msg):  # HTTP: "... batch code: %s, reason: %s"
        code = next((a for a in args if type(a) is int), None) or _int(_STATUS_CODE.search(message))
        if code is not None:
            return _http_status(code), True
    texts = [str(a) for a in args if isinstance(a, (str, BaseException))]
    for text in texts:
        errno_text = _ERRNO_TEXT.search(text)
        if errno_text:  # connection refused, name or service not known, ...
            return errno_text.group(1).strip().lower(), True
        if "timed out" in text.lower():
            return "timed out waiting for an answer", True
        status = _PHRASES.get(text.strip().lower())
        if status is not None:  # a retried status arrives as its reason phrase: "Service Unavailable"
            return _http_status(status.value), True
    if any(marker in message for marker in _NO_CAUSE):
        return "no answer in time", False
    if "already shutdown" in message:
        return "the exporter was already shut down", True
    return _short(message), True


def _int(match: re.Match[str] | None) -> int | None:
    return int(match.group(1)) if match else None


def _http_status(code: int) -> str:
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_url(url: str) -> str:
    """The URL without credentials, query or fragment: what a log message may show of an endpoint."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable endpoint>"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) or url.partition("?")[0]


class FailSafeExporter(SpanExporter):
    """Wraps an OTLP span exporter so that a missing or failing receiver costs nothing but spans."""

    def __init__(self, inner: SpanExporter, target: str) -> None:
        self._inner = inner
        self._target = target
        self._shown = shown_url(target)
        self._secrets = _url_secrets(target)
        self._lock = threading.Lock()
        self._failing = False
        self._retry_at = 0.0
        self._dropped = 0
        self._closed = False
        self._cause: str | None = None  # of the export in progress or the last failed one
        self._cause_known = False

    @property
    def endpoint(self) -> str:
        """Where spans go, as messages show it (no credentials or query)."""
        return self._shown

    @property
    def last_cause(self) -> str | None:
        """Why the export in progress (or the last one) is failing, if the exporter said; read from any thread."""
        return self._cause

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._failing and time.monotonic() < self._retry_at:
            self._dropped += len(spans)
            return SpanExportResult.FAILURE
        sent = 0
        for batch in split_by_size(spans, REQUEST_BYTES):
            self._cause, self._cause_known = None, False
            if self._export_one(batch) is not SpanExportResult.SUCCESS:
                # The receiver is failing: the rest of the batch is dropped untried, as later batches are.
                self._failed(len(spans) - sent, self._cause or "export failed")
                return SpanExportResult.FAILURE
            sent += len(batch)
        self._recovered()
        return SpanExportResult.SUCCESS

    def _export_one(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _exporting.owner = self
        try:
            return self._inner.export(spans)
        except Exception as exc:  # an exporter bug must not reach the BatchSpanProcessor's thread
            self._note(_short(repr(exc)), True)
            return SpanExportResult.FAILURE
        finally:
            _exporting.owner = None

    def _note(self, cause: str, known: bool) -> None:
        """Keep the most telling cause: a record that says why beats one that only says it ended."""
        if known or not self._cause_known:
            for secret in self._secrets:
                cause = cause.replace(secret, "…")
            self._cause, self._cause_known = cause, known

    def _failed(self, count: int, reason: str) -> None:
        self._dropped += count
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        if not self._failing:
            self._failing = True
            log.warning(
                "xray-otel: cannot send spans to %s (%s). The application is unaffected; spans are "
                "dropped until it is reachable again. Logged once per outage.",
                self._shown,
                reason,
            )

    def _recovered(self) -> None:
        if self._failing:
            log.info("xray-otel: sending spans to %s again; %d spans were dropped.", self._shown, self._dropped)
            self._failing, self._dropped = False, 0
        self._cause, self._cause_known = None, False

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


def split_by_size(spans: Sequence[ReadableSpan], budget: int) -> list[Sequence[ReadableSpan]]:
    """``spans`` in order, cut into runs of at most ``budget`` estimated bytes (a bigger span goes alone)."""
    batches: list[Sequence[ReadableSpan]] = []
    start, size = 0, 0
    for index, span in enumerate(spans):
        try:
            span_size = span_bytes(span)
        except Exception:  # not an SDK span (a test double, another SDK): assume a small one
            span_size = SPAN_BYTES
        if size + span_size > budget and index > start:
            batches.append(spans[start:index])
            start, size = index, 0
        size += span_size
    batches.append(spans[start:])
    return batches


def span_bytes(span: ReadableSpan) -> int:
    """A cheap upper estimate of a span's size in an OTLP request (C-speed over big arrays)."""
    size = SPAN_BYTES + len(span.name) * 4 + _attributes_bytes(span.attributes)
    for event in span.events:
        size += 32 + len(event.name) * 4 + _attributes_bytes(event.attributes)
    for link in span.links:
        size += 64 + _attributes_bytes(link.attributes)
    return size


def _attributes_bytes(attributes: object) -> int:
    if not attributes:
        return 0
    size = 0
    for key, value in attributes.items():  # type: ignore[attr-defined]
        size += 8 + len(key) + _value_bytes(value)
    return size


def _value_bytes(value: object) -> int:
    if isinstance(value, str):
        return 4 + utf8_len((value,))
    if isinstance(value, bytes):
        return 4 + len(value)
    if isinstance(value, (tuple, list)):
        if value and isinstance(value[0], str):
            return 4 + utf8_len(value) + 6 * len(value)  # type: ignore[arg-type]
        if value and isinstance(value[0], (tuple, list, dict)):
            return 4 + sum(_value_bytes(v) for v in value)
        return 4 + 12 * len(value)
    if isinstance(value, dict):
        return 4 + _attributes_bytes(value)
    return 12


def _url_secrets(url: str) -> list[str]:
    """The parts of an endpoint URL that may carry a credential, to be kept out of messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    return [secret for secret in (userinfo, parts.query) if secret]


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
