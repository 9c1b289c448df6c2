"""Retention deletes whole runs older than the window, with their steps, and nothing newer."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest

from conftest import serve
from helpers import call, export_request, get_json, new_ids, pipeline_spans, post_otlp
from xray_otel.config import Settings, parse_window
from xray_otel.store.retention import sweep
from xray_otel.store.store import Store

DAY_NS = 86_400 * 10**9


def _post(url: str, age_days: float) -> str:
    trace_id, base = new_ids()
    start = time.time_ns() - int(age_days * DAY_NS)
    assert post_otlp(url, export_request(pipeline_spans(trace_id, base, start))).status == 200
    return str(uuid.UUID(bytes=trace_id))


def test_sweep_deletes_old_runs_and_their_steps(receiver, pg_dsn: str) -> None:
    old = [_post(receiver.url, 400 + i) for i in range(3)]
    recent = _post(receiver.url, 1)

    async def run_sweep() -> tuple[int, int]:
        store = await Store.open(pg_dsn, pool_size=2)
        try:
            deleted = await sweep(store, timedelta(days=365), batch=2)  # several batches
            orphans = await store.pool.fetchval(
                "SELECT count(*) FROM steps WHERE run_id = ANY($1::uuid[])", old)
            return deleted, orphans
        finally:
            await store.close()

    deleted, orphans = asyncio.run(run_sweep())
    assert deleted >= 3 and orphans == 0
    for run_id in old:
        assert call("GET", f"{receiver.url}/runs/{run_id}").status == 404
    assert get_json(f"{receiver.url}/runs/{recent}")["step_count"] == 4


def test_server_sweeps_in_the_background(pg_dsn: str) -> None:
    with serve(pg_dsn, retention="30d", retention_interval=0.2) as server:
        old, fresh = _post(server.url, 45), _post(server.url, 0)
        deadline = time.monotonic() + 10
        while call("GET", f"{server.url}/runs/{old}").status != 404:
            assert time.monotonic() < deadline, "old run not swept"
            time.sleep(0.1)
        assert get_json(f"{server.url}/runs/{fresh}")["step_count"] == 4


@pytest.mark.parametrize("text, expected", [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)),
                                            (" 90m ", timedelta(minutes=90))])
def test_parse_window(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "30", "0d", "-1d", "3w", "1.5d"])
def test_bad_windows_are_refused_at_start(text: str) -> None:
    with pytest.raises(ValueError, match="30d, 12h or 90m"):
        Settings.from_env({"XRAY_RETENTION": text}) if text else parse_window(text)
