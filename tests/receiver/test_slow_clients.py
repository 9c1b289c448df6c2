"""Slow clients must not starve exporters (issue 16 §3).

Hundreds of connections that send a body a byte at a time, within XRAY_REQUEST_TIMEOUT, must not hold
the slots that mapping and writing need: a well-behaved exporter sending meanwhile gets 200. What
bodies hold in memory stays bounded all the same: past the body budget, a 503 with Retry-After.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from contextlib import ExitStack

import psutil

from conftest import ServerThread, serve
from helpers import attr, call, export_request, get_json, make_span, new_ids, pipeline_spans, post_otlp
from xray_otel.receiver.http import INGESTER

SLOW_CLIENTS = 300
_DECLARED = 1_000_000  # what each slow client says it will send; it never gets there during the test


def _open_slow(port: int, path: str, content_type: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {_DECLARED}\r\n\r\n".encode() + b"\n")
    return sock


def _wait_for_connections(server: ServerThread, count: int) -> None:
    """Until the receiver has accepted ``count`` connections (setup, not an assertion about speed)."""
    deadline = time.monotonic() + 10
    while len(server.runner.server.connections) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_slow_uploads_do_not_starve_a_normal_export(pg_dsn: str) -> None:
    with serve(pg_dsn) as server, ExitStack() as sockets:
        port, process = server.settings.port, psutil.Process()
        rss_before = process.memory_info().rss
        slow = [sockets.enter_context(_open_slow(port, *(("/v1/traces", "application/x-protobuf") if i % 2 else
                                                         ("/ingest", "application/json"))))
                for i in range(SLOW_CLIENTS)]
        _wait_for_connections(server, SLOW_CLIENTS)
        stop, peak_rss = threading.Event(), [rss_before]

        def dribble() -> None:  # a byte per connection every half second, as long as the test runs
            while not stop.wait(0.5):
                for sock in slow:
                    sock.sendall(b" ")
                peak_rss[0] = max(peak_rss[0], process.memory_info().rss)

        dribbler = threading.Thread(target=dribble, daemon=True)
        dribbler.start()
        try:
            time.sleep(0.3)  # let the slow requests reach their handlers first
            trace_id, base = new_ids()
            otlp = post_otlp(server.url, export_request(pipeline_spans(trace_id, base)))
            run_id, step_id = uuid.uuid4(), uuid.uuid4()
            legacy = call("POST", server.url + "/ingest", (
                '{"events": [{"type": "run_complete", "data": {"id": "%s", "name": "legacy_run", '
                '"started_at": "2024-05-01T12:00:00Z"}}, {"type": "step_complete", "data": {"id": "%s", '
                '"run_id": "%s", "name": "s", "started_at": "2024-05-01T12:00:01Z"}}]}'
                % (run_id, step_id, run_id)).encode(), {"Content-Type": "application/json"})
        finally:
            stop.set()
            dribbler.join(10)
        assert (otlp.status, legacy.status) == (200, 200), (otlp.status, otlp.body[:200], legacy.body[:200])
        assert get_json(f"{server.url}/runs/{uuid.UUID(bytes=trace_id)}")["name"] == "select_competitor"
        assert get_json(f"{server.url}/runs/{run_id}")["name"] == "legacy_run"
        print(f"\n{SLOW_CLIENTS} slow clients: test process RSS {rss_before / 2**20:.0f} MiB before, "
              f"peak {peak_rss[0] / 2**20:.0f} MiB while they dribbled")


def _export_of_size(size: int) -> tuple[bytes, bytes]:
    """(trace id, a protobuf export request of about ``size`` bytes)."""
    trace_id, base = new_ids()
    span = make_span(trace_id, base, "padded_run", attrs={"xray.kind": "run"})
    span.attributes.append(attr("padding", "p" * size))
    return trace_id, export_request([span]).SerializeToString()


def _upload_all_but_the_last_byte(port: int, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:-1])
    return sock


def _status_line(sock: socket.socket) -> tuple[bytes, bytes]:
    answer = b""
    while b"\r\n\r\n" not in answer and (data := sock.recv(65536)):
        answer += data
    head = answer.split(b"\r\n\r\n")[0]
    return head.split(b"\r\n")[0], head


def test_bodies_past_the_budget_are_refused_with_retry_after(pg_dsn: str) -> None:
    """The budget of body bytes held at once is XRAY_MAX_INFLIGHT × XRAY_MAX_BODY_BYTES (here 1 × 64 KiB):
    a body that would take it past that waits for room, then gets 503 + Retry-After; once the first body
    is done the same upload goes through."""
    with serve(pg_dsn, max_inflight=1, max_body_bytes=64 * 1024) as server, ExitStack() as sockets:
        budget = server.runner.app[INGESTER].body_budget(64 * 1024)
        first_id, first = _export_of_size(40_000)
        second_id, second = _export_of_size(40_000)
        a = sockets.enter_context(_upload_all_but_the_last_byte(server.settings.port, first))
        deadline = time.monotonic() + 10
        while budget.held < len(first) - 1 and time.monotonic() < deadline:  # setup: the first body is held
            time.sleep(0.02)
        b = sockets.enter_context(_upload_all_but_the_last_byte(server.settings.port, second))
        status, head = _status_line(b)
        assert status == b"HTTP/1.1 503 Service Unavailable", head
        assert b"\r\nRetry-After: " in head
        a.sendall(first[-1:])
        assert _status_line(a)[0] == b"HTTP/1.1 200 OK"
        assert budget.held == 0
        reply = call("POST", server.url + "/v1/traces", second, {"Content-Type": "application/x-protobuf"})
        assert reply.status == 200
        for trace_id in (first_id, second_id):
            assert get_json(f"{server.url}/runs/{uuid.UUID(bytes=trace_id)}")["name"] == "padded_run"


def test_gzip_bodies_inflate_exactly_in_bounded_pieces() -> None:
    """Each piece of inflated output gets its room in the budget before it is kept, so the inflater hands
    out at most _CHUNK bytes at a time; nothing may be lost between pieces, across gzip members or chunks."""
    import gzip
    import os

    from xray_otel.receiver.http import _CHUNK, _Inflater

    plain = b"a" * 3_000_000 + os.urandom(200_000) + b"b" * 1_000_001
    body = gzip.compress(plain[:2_000_000]) + gzip.compress(plain[2_000_000:])
    for size in (1, 7, _CHUNK, len(body)):
        inflater, out = _Inflater(len(plain)), bytearray()
        for i in range(0, len(body), size):
            for piece in inflater.pieces(body[i:i + size], out):
                assert 0 < len(piece) <= _CHUNK
                out += piece
        assert inflater.done and out == plain, size
