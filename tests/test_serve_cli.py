"""`xray-otel serve` as a user runs it: embedded PostgreSQL, schema migration, graceful stop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys

import asyncpg
import pytest

from conftest import free_port
from helpers import export_request, get_json, new_ids, pipeline_spans, post_otlp, wait_ready
from xray_otel.store.migrate import SchemaTooNew, migrate, migrations


def test_serve_on_embedded_database_then_sigterm(tmp_path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("XRAY_DATABASE_URL", "DATABASE_URL")}
    args = [sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", str(free_port()),
            "--data-dir", str(tmp_path / "pg")]
    url = f"http://127.0.0.1:{port}"
    for attempt in range(2):  # the second start reuses the data directory: migrations are a no-op
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_ready(url, proc)
            trace_id, base = new_ids()
            assert post_otlp(url, export_request(pipeline_spans(trace_id, base))).status == 200
            assert len(get_json(url + "/runs")) == attempt + 1
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0


def test_serve_reports_a_bad_database_url() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xray_otel", "serve", "--port", str(free_port()), "--grpc-port", "0",
         "--database-url", "postgresql://nobody@127.0.0.1:1/none"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "XRAY_CONNECT_TIMEOUT": "1"},
    )
    assert proc.returncode == 1
    assert "cannot connect to PostgreSQL" in proc.stderr


def test_serve_on_a_taken_port_names_it_and_says_what_to_do(pg_dsn: str) -> None:
    with socket.socket() as taken:  # e.g. a Collector or a second xray-otel on the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", "0",
             "--database-url", pg_dsn],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 1
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("xray-otel: cannot start: ")
    assert f"127.0.0.1:{port}" in message and "in use" in message
    assert "--port" in message and "XRAY_PORT" in message
    assert "Traceback" not in proc.stderr


def test_migrations_are_idempotent_and_refuse_newer_schema(pg_dsn: str) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            latest = migrations()[-1][0]
            assert await migrate(conn) == latest
            assert await migrate(conn) == latest
            assert await conn.fetchval("SELECT count(*) FROM xray_schema_version") == len(migrations())  # each once
            await conn.execute("INSERT INTO xray_schema_version (version, name) VALUES (9999, 'future')")
            with pytest.raises(SchemaTooNew, match="upgrade xray-otel"):
                await migrate(conn)
            await conn.execute("DELETE FROM xray_schema_version WHERE version = 9999")
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_serve_with_two_workers_sharing_the_ports(tmp_path) -> None:
    import psutil

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("XRAY_DATABASE_URL", "DATABASE_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", str(free_port()),
         "--workers", "2", "--data-dir", str(tmp_path / "pg")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        workers = [p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        ids = [new_ids() for _ in range(20)]
        for trace_id, base in ids:  # separate connections: the kernel spreads them over both workers
            assert post_otlp(url, export_request(pipeline_spans(trace_id, base))).status == 200
        assert len(get_json(url + "/runs?limit=1000")) == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_gc_tuning_freezes_start_up_objects_and_collects_the_young_less_often() -> None:
    """What _serve applies once the receiver is up (xray_otel.server._tune_gc); restored after."""
    from xray_otel import server

    threshold = gc.get_threshold()
    try:
        server._tune_gc()
        assert gc.get_threshold() == (server._GC_YOUNG, *threshold[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
