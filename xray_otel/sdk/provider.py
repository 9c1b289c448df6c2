"""configure(): where xray spans go. An application's own TracerProvider always wins.

Precedence for every setting: argument, then the signal-specific ``OTEL_EXPORTER_OTLP_TRACES_*``
variable, then the generic ``OTEL_EXPORTER_OTLP_*`` one, then the default below.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from importlib.metadata import version
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .. import pricing
from .export import FailSafeExporter, run_within
from .sampling import load_watched

log = logging.getLogger("xray_otel")

DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
PROTOCOLS = ("http/protobuf", "grpc")
EXIT_TIMEOUT_S = 2.0
"""The longest interpreter exit waits for the last spans (configure(exit_timeout=...))."""
FLUSH_TIMEOUT_S = 5.0
_TRACES_PATH = "/v1/traces"

_lock = threading.Lock()
_provider: trace.TracerProvider | None = None
_tracer: trace.Tracer | None = None
_prices: pricing.PriceTable = pricing.DEFAULT  # the SDK's own: configure(prices=) replaces it, never edits it


def set_prices(prices: Mapping[str, tuple[float, float]]) -> None:
    """Add or replace models' prices ``{model: (usd_per_million_input, usd_per_million_output)}`` in the
    table the SDK prices steps with (``configure(prices=)`` does the same)."""
    global _prices
    _prices = _prices.with_prices(prices)


def price_table() -> pricing.PriceTable:
    """The table the SDK prices LLM calls with: the default one, with what configure(prices=) added."""
    return _prices


def configure(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    exit_timeout: float = EXIT_TIMEOUT_S,
    prices: Mapping[str, tuple[float, float]] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> trace.TracerProvider:
    """Choose where xray spans go. Optional: the first run configures the defaults.

    Args:
        service_name: ``service.name`` of the spans (else ``OTEL_SERVICE_NAME``).
        endpoint: receiver base URL (else OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else
            http://127.0.0.1:4318, or :4317 for gRPC).
        protocol: "http/protobuf" (default) or "grpc" (needs the ``grpc`` extra).
        headers: export headers (else OTEL_EXPORTER_OTLP_[TRACES_]HEADERS).
        timeout: seconds one export may take, retries included (else OTEL_EXPORTER_OTLP_TIMEOUT, 10).
        exit_timeout: the longest interpreter exit waits for unsent spans.
        prices: ``{model: (usd_per_million_input, usd_per_million_output)}`` for the price table.
        tracer_provider: use this provider and leave the global one alone (tests, multi-provider apps).

    If the application already installed a TracerProvider, xray uses it and adds nothing,
    so its spans join the application's pipeline; export arguments are then ignored.
    """
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if prices:
        set_prices(prices)
    load_watched()  # XRAY_WATCH_IDS, read once here (or at the first step that samples)
    with _lock:
        if tracer_provider is not None:
            return _use(tracer_provider)
        existing = trace.get_tracer_provider()
        if not isinstance(existing, trace.ProxyTracerProvider):
            if service_name or endpoint or protocol or headers or timeout is not None:
                log.warning("xray-otel: a TracerProvider is already installed; using it, export arguments ignored")
            return _use(existing)
        provider, exporter = _build(service_name, endpoint=endpoint, protocol=protocol, headers=headers,
                                    timeout=timeout)
        trace.set_tracer_provider(provider)
        atexit.register(_shutdown_at_exit, provider, exit_timeout, exporter)
        return _use(trace.get_tracer_provider())


def build_provider(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> TracerProvider:
    """The provider configure() installs (batching, fail-safe OTLP export), without installing it."""
    return _build(service_name, endpoint=endpoint, protocol=protocol, headers=headers, timeout=timeout)[0]


def _build(
    service_name: str | None,
    *,
    endpoint: str | None,
    protocol: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
) -> tuple[TracerProvider, FailSafeExporter]:
    resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    protocol = resolve_protocol(protocol)
    url = resolve_endpoint(endpoint, protocol)
    exporter = FailSafeExporter(_otlp_exporter(protocol, url, headers, timeout), url)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def resolve_protocol(protocol: str | None) -> str:
    """The export protocol; an unsupported environment value is logged and replaced by the default."""
    if protocol is not None:
        return protocol
    value = (os.environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "")
    value = value.strip().lower()
    if value in PROTOCOLS:
        return value
    if value:
        log.warning("xray-otel: OTLP protocol %r is not supported (use %s); using http/protobuf", value, PROTOCOLS)
    return "http/protobuf"


def resolve_endpoint(endpoint: str | None, protocol: str) -> str:
    """The export URL: for HTTP a base URL gets ``/v1/traces``; a TRACES_ENDPOINT is used as is."""
    if protocol == "grpc":
        return (
            endpoint
            or os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
            or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT)
            or DEFAULT_GRPC_ENDPOINT
        )
    if not endpoint and os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT):
        return os.environ[OTEL_EXPORTER_OTLP_TRACES_ENDPOINT]
    base = (endpoint or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) or DEFAULT_HTTP_ENDPOINT).rstrip("/")
    return base if base.endswith(_TRACES_PATH) else base + _TRACES_PATH


def _otlp_exporter(protocol: str, url: str, headers: Mapping[str, str] | None, timeout: float | None) -> SpanExporter:
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError("OTLP over gRPC needs the grpc extra: pip install 'xray-otel[grpc]'") from exc
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=url, headers=headers, timeout=timeout)


def _use(provider: trace.TracerProvider) -> trace.TracerProvider:
    global _provider, _tracer
    _provider, _tracer = provider, provider.get_tracer("xray_otel", version("xray-otel"))
    return provider


def tracer() -> trace.Tracer:
    """The tracer xray spans come from; configures the defaults on first use."""
    return _tracer or _configure_default()


def _configure_default() -> trace.Tracer:
    try:
        configure()
    except Exception:  # e.g. OTEL_EXPORTER_OTLP_PROTOCOL=grpc without the grpc extra
        log.warning("xray-otel: default setup failed; runs are not recorded", exc_info=True)
        with _lock:
            _use(trace.NoOpTracerProvider())
    assert _tracer is not None
    return _tracer


def flush(timeout: float = FLUSH_TIMEOUT_S) -> bool:
    """Send finished spans now, waiting at most ``timeout`` seconds; True if done in time."""
    force_flush = getattr(_provider, "force_flush", None)
    return force_flush is None or run_within(force_flush, timeout, "flush")


def _shutdown_at_exit(provider: TracerProvider, timeout_s: float, exporter: FailSafeExporter) -> None:
    if not run_within(provider.shutdown, timeout_s, "exit"):
        cause = exporter.last_cause or "no answer yet"
        log.warning("xray-otel: gave up sending the last spans to %s after %.1f s at exit (%s); they are dropped",
                    exporter.endpoint, timeout_s, cause)
