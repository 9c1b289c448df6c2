"""The embedded PostgreSQL after `xray-otel serve` is killed (kill -9): the restarted server adopts the
postgres left running, every acknowledged span is there, and a clean stop of the restarted server stops
the adopted postgres too (no orphan holding the data directory)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conftest import free_port
from helpers import export_request, get_json, new_ids, pipeline_spans, post_otlp, wait_ready

STEPS_PER_RUN = len(pipeline_spans(b"\0" * 16, 0)) - 1  # one run span, the rest steps


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid in ``data_dir``'s postmaster.pid when that process is alive, else None."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _assert_all_stored(url: str, runs_sent: int) -> None:
    runs = get_json(url + "/runs?limit=1000")
    assert len(runs) == runs_sent
    for run in runs:
        assert len(get_json(f"{url}/runs/{run['id']}/steps")) == STEPS_PER_RUN


def test_clean_stop_after_a_crash_stops_the_adopted_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    env = {k: v for k, v in os.environ.items() if k not in ("XRAY_DATABASE_URL", "DATABASE_URL")}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", "0",
            "--data-dir", str(data_dir)]
    procs: list[subprocess.Popen] = []
    postmasters: set[int] = set()

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        wait_ready(url, proc, timeout=90)
        pid = _postmaster_pid(data_dir)
        assert pid is not None
        postmasters.add(pid)
        return proc

    def stop_cleanly(proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0

    try:
        first = start()
        crashed_postmaster = _postmaster_pid(data_dir)
        runs_sent = 3
        for _ in range(runs_sent):
            trace_id, base = new_ids()
            assert post_otlp(url, export_request(pipeline_spans(trace_id, base))).status == 200

        first.kill()  # kill -9: no clean-up of any kind
        first.wait(30)
        assert _postmaster_pid(data_dir) == crashed_postmaster  # its postgres outlives it

        second = start()
        assert _postmaster_pid(data_dir) == crashed_postmaster  # adopted, not a second server
        _assert_all_stored(url, runs_sent)
        stop_cleanly(second)
        assert _wait_gone(crashed_postmaster), f"adopted postgres {crashed_postmaster} still running"
        assert _postmaster_pid(data_dir) is None
        assert not (data_dir / "postmaster.pid").exists()

        third = start()  # a fresh postgres on the same data directory: nothing acknowledged was lost
        assert _postmaster_pid(data_dir) != crashed_postmaster
        _assert_all_stored(url, runs_sent)
        stop_cleanly(third)
        assert _postmaster_pid(data_dir) is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        for pid in postmasters:  # whatever a failed assertion left behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_clean_stop_leaves_a_postgres_another_live_process_still_uses(tmp_path: Path) -> None:
    from xray_otel.store.embedded import start_embedded

    data_dir = tmp_path / "pg"
    env = {k: v for k, v in os.environ.items() if k not in ("XRAY_DATABASE_URL", "DATABASE_URL")}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _, handle = start_embedded(data_dir)  # this (live) test process holds a handle
    postmaster = _postmaster_pid(data_dir)
    proc = subprocess.Popen([sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", "0",
                             "--data-dir", str(data_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(url, proc, timeout=90)
        assert _postmaster_pid(data_dir) == postmaster  # shared
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert _postmaster_pid(data_dir) == postmaster  # still in use here: left running
        handle.cleanup()  # the last handle: stops it
        assert postmaster is not None and _wait_gone(postmaster)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        handle.cleanup()
        if postmaster is not None and _alive(postmaster):
            os.kill(postmaster, signal.SIGKILL)
