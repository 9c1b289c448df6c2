"""configure(): settings precedence, reusing the app's provider, and export that cannot hurt the app."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

from xray_otel import configure, start_run
from xray_otel.sdk import build_provider, export, flush
from xray_otel.sdk.export import FailSafeExporter, run_within
from xray_otel.sdk.provider import resolve_endpoint, resolve_protocol

OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_precedence(clean_env):
    assert resolve_endpoint(None, "http/protobuf") == "http://127.0.0.1:4318/v1/traces"
    assert resolve_endpoint(None, "grpc") == "http://127.0.0.1:4317"
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert resolve_endpoint(None, "http/protobuf") == "http://collector:4318/v1/traces"
    assert resolve_endpoint(None, "grpc") == "http://collector:4318/"
    clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom")
    assert resolve_endpoint(None, "http/protobuf") == "http://traces:9999/custom"
    assert resolve_endpoint("http://arg:1", "http/protobuf") == "http://arg:1/v1/traces"
    assert resolve_endpoint("http://arg:1/v1/traces", "http/protobuf") == "http://arg:1/v1/traces"


def test_protocol_precedence_and_bad_values(clean_env, caplog):
    assert resolve_protocol(None) == "http/protobuf"
    clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert resolve_protocol(None) == "grpc"
    clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    assert resolve_protocol(None) == "http/protobuf"
    assert "'http/json' is not supported" in caplog.text
    assert resolve_protocol("grpc") == "grpc"
    with pytest.raises(ValueError, match="protocol must be one of"):
        configure(protocol="http/json")


def test_build_provider_wires_the_otlp_exporter_of_each_protocol(clean_env):
    for protocol, module in (("http/protobuf", ".proto.http."), ("grpc", ".proto.grpc.")):
        provider = build_provider("svc", endpoint="http://127.0.0.1:1", protocol=protocol)
        (processor,) = provider._active_span_processor._span_processors  # the one processor we add
        assert isinstance(processor.span_exporter, FailSafeExporter)
        assert module in type(processor.span_exporter._inner).__module__
        assert provider.resource.attributes["service.name"] == "svc"
        provider.shutdown()


class FlakyExporter(SpanExporter):
    """Fails (logging like the OTLP exporters do) until told to succeed."""

    def __init__(self) -> None:
        self.calls, self.ok, self.raise_ = 0, False, False

    def export(self, spans):
        self.calls += 1
        if self.raise_:
            raise ConnectionError("exporter bug")
        if self.ok:
            return SpanExportResult.SUCCESS
        logging.getLogger(export._EXPORTER_LOGGERS[0]).error("Failed to export spans batch code: 503")
        return SpanExportResult.FAILURE

    def shutdown(self):
        pass


def test_an_outage_is_one_warning_and_fast_drops_until_the_receiver_is_back(caplog, monkeypatch):
    monkeypatch.setattr(export, "RETRY_AFTER_S", 0.3)
    caplog.set_level(logging.INFO, logger="xray_otel")
    inner = FlakyExporter()
    exporter = FailSafeExporter(inner, "http://receiver/v1/traces")
    for _ in range(3):
        assert exporter.export([object()]) is SpanExportResult.FAILURE
    assert inner.calls == 1  # the next batches were dropped without trying
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["xray_otel"]
    assert "http://receiver/v1/traces" in warnings[0].getMessage()
    assert "(HTTP 503 Service Unavailable)" in warnings[0].getMessage()  # the exporter's reason, logged once by us

    time.sleep(0.35)  # past the retry pause: the next batch is tried again
    inner.ok = True
    assert exporter.export([object()]) is SpanExportResult.SUCCESS
    assert "3 spans were dropped" in caplog.text
    inner.ok, inner.raise_ = False, True
    assert exporter.export([object()]) is SpanExportResult.FAILURE  # an exporter that raises is contained
    assert "exporter bug" in caplog.records[-1].getMessage()


def test_a_closed_port_with_the_real_exporter_logs_once_and_returns_quickly(caplog):
    url = f"http://127.0.0.1:{closed_port()}/v1/traces"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FailSafeExporter(OTLPSpanExporter(endpoint=url, timeout=1), url)))
    configure(tracer_provider=provider)
    started = time.monotonic()
    for _ in range(5):
        with start_run("r"):
            pass
    assert time.monotonic() - started < 5
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == ["xray_otel"]
    provider.shutdown()


def test_flush_and_exit_waits_are_bounded():
    release = threading.Event()

    class Stuck(SpanExporter):
        def export(self, spans):
            release.wait(10)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Stuck()))
    configure(tracer_provider=provider)
    provider.get_tracer("t").start_span("queued").end()
    started = time.monotonic()
    assert flush(timeout=0.2) is False
    assert run_within(lambda: release.wait(10), 0.2, "test") is False
    assert time.monotonic() - started < 2
    release.set()
    assert flush(timeout=5) is True
    provider.shutdown()


def run_python(code: str, **env: str) -> Any:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60, env={"PATH": "", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_sdk_never_imports_the_server_libraries():
    got = run_python("""
        import json, sys
        import xray_otel, xray_otel.demo.run
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"aiohttp", "asyncpg"})))
    """)
    assert got == []


def test_an_application_provider_is_reused_and_nothing_is_added():
    got = run_python("""
        import json
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import xray_otel

        exporter, app = InMemorySpanExporter(), TracerProvider()
        app.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(app)
        before = len(app._active_span_processor._span_processors)
        same = xray_otel.configure(endpoint="http://ignored:1") is app
        with xray_otel.start_run("r"):
            with xray_otel.step("s"):
                pass
        print(json.dumps({"same": same, "added": len(app._active_span_processor._span_processors) - before,
                          "spans": [s.name for s in exporter.get_finished_spans()]}))
    """)
    assert got == {"same": True, "added": 0, "spans": ["s", "r"]}


def test_first_use_without_configure_installs_the_default_provider_and_exits_promptly():
    port = closed_port()
    started = time.monotonic()
    got = run_python("""
        import json
        from opentelemetry import trace
        import xray_otel

        with xray_otel.start_run("r"):
            pass
        provider = trace.get_tracer_provider()
        (processor,) = provider._active_span_processor._span_processors
        print(json.dumps({"target": processor.span_exporter._target,
                          "service": provider.resource.attributes["service.name"]}))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_SERVICE_NAME="from-env")
    assert got == {"target": f"http://127.0.0.1:{port}/v1/traces", "service": "from-env"}
    assert time.monotonic() - started < 15  # interpreter start + the 2 s exit bound, on a busy machine


SECRET = "sekrit-ingest-key-4711"


def exit_log(endpoint: str) -> str:
    """stderr of a script that records one run to ``endpoint`` (with an API key header) and exits."""
    code = f"""
        import xray_otel
        xray_otel.configure(endpoint={endpoint!r}, headers={{"authorization": "Bearer {SECRET}"}})
        with xray_otel.start_run("r"):
            pass
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60, env={"PATH": ""})
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stderr
    return result.stderr


@pytest.fixture
def answering() -> Any:
    """An HTTP server answering every export with the given status (503s ask to retry after 1 s)."""
    servers = []

    def start(status: int) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_giving_up_at_exit_names_the_endpoint_and_the_cause(answering):
    port = closed_port()
    stderr = exit_log(f"http://127.0.0.1:{port}")
    assert (f"gave up sending the last spans to http://127.0.0.1:{port}/v1/traces after 2.0 s at exit "
            "(connection refused)") in stderr

    url = answering(503)  # retried until exit gives up
    stderr = exit_log(url)
    assert f"gave up sending the last spans to {url}/v1/traces after 2.0 s at exit (HTTP 503 Service Unavailable)" \
        in stderr


def test_a_refusal_at_exit_names_the_endpoint_and_the_status(answering):
    for status, phrase in ((401, "Unauthorized"), (404, "Not Found")):  # not retried: said at once, no wait
        url = answering(status)
        started = time.monotonic()
        stderr = exit_log(url)
        assert f"cannot send spans to {url}/v1/traces (HTTP {status} {phrase})" in stderr
        assert "gave up" not in stderr
        assert time.monotonic() - started < 10


def test_messages_show_no_credentials_of_the_endpoint():
    exporter = FailSafeExporter(FlakyExporter(), "http://user:pa55@receiver:4318/v1/traces?api_key=k1")
    assert exporter.endpoint == "http://receiver:4318/v1/traces"
    exporter._note("POST http://user:pa55@receiver:4318/v1/traces?api_key=k1 failed", True)
    assert "pa55" not in exporter.last_cause and "k1" not in exporter.last_cause
