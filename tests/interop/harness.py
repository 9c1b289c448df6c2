"""Runs each app once per transport, against the session's receiver, and keeps the result for every
test that asks (the apps are the slow part; the checks are REST reads).

Cases: ``langchain`` (LangChain + OpenInference), ``openai-openinference``, ``openai-openllmetry``,
``traceloop`` (traceloop-sdk, in its own venv: traceloop_env.py). Transports: ``http`` (through
fakes.RecordingProxy, so every request the library sends and its answer are seen) and ``grpc``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps import AppRun
from fakes import FakeOpenAI, RecordingProxy
from helpers import call

CASES = ("langchain", "openai-openinference", "openai-openllmetry", "traceloop")
TRANSPORTS = ("http", "grpc")
HERE = Path(__file__).parent


@dataclass
class Env:
    receiver_url: str
    grpc_port: int
    fake: FakeOpenAI
    proxy: RecordingProxy


_ENV: Env | None = None
_RUNS: dict[tuple[str, str], AppRun] = {}


def env(receiver: Any) -> Env:
    """The fake OpenAI API and the recording proxy, started once per test session."""
    global _ENV
    if _ENV is None or _ENV.receiver_url != receiver.url:
        _ENV = Env(receiver.url, receiver.settings.grpc_port, FakeOpenAI().start(),
                   RecordingProxy(receiver.url).start())
    return _ENV


def run_case(case: str, transport: str, receiver: Any) -> AppRun:
    if case == "langchain" and sys.version_info < (3, 11):
        import pytest

        pytest.skip("langchain-core 1.x needs Python 3.11")
    key = (case, transport)
    if key not in _RUNS:
        e = env(receiver)
        run = AppRun(case, transport)
        mark = e.proxy.mark()
        start = time.time_ns()
        if case == "traceloop":
            _run_traceloop(run, e)
        else:
            _run_app(run, e)
        run.window = (start, time.time_ns())
        run.forwarded = e.proxy.since(mark)
        _wait_stored(e.receiver_url, run)
        _RUNS[key] = run
    return _RUNS[key]


def _run_app(run: AppRun, e: Env) -> None:
    """apps.py's app for ``run.case``, in a process of its own (the project's python)."""
    result = _subprocess(run, sys.executable, "apps.py", run.case, run.transport, e.proxy.url,
                         f"127.0.0.1:{e.grpc_port}", e.fake.base_url)
    for name in ("scenarios", "spans", "export_results", "exporter_logs", "app_errors", "documents"):
        setattr(run, name, result[name])


def _run_traceloop(run: AppRun, e: Env) -> None:
    """traceloop_app.py in traceloop's own venv (traceloop_env.py)."""
    from traceloop_env import traceloop_python

    endpoint = e.proxy.url if run.transport == "http" else f"grpc://127.0.0.1:{e.grpc_port}"
    result = _subprocess(run, str(traceloop_python()), "traceloop_app.py", endpoint, e.fake.base_url)
    for name in ("scenarios", "spans", "exporter_logs", "app_errors"):
        setattr(run, name, result[name])


def _subprocess(run: AppRun, python: str, script: str, *args: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xray-interop-") as tmp:
        out = Path(tmp) / "out.json"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))}
        # A user pointing gRPC exporters at a plaintext collector says so: traceloop's span exporter is
        # insecure for grpc:// already, its metric exporter reads this.
        environ.update({"OTEL_EXPORTER_OTLP_INSECURE": "true", "PYTHONPATH": str(HERE)})
        done = subprocess.run([python, str(HERE / script), *args, str(out)], capture_output=True, text=True,
                              timeout=120, env=environ, cwd=tmp)
        run.stdout = done.stdout + done.stderr
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"{script} {run.case} {run.transport} failed ({done.returncode}):\n{run.stdout[-4000:]}")
        return json.loads(out.read_text())


def _wait_stored(url: str, run: AppRun, timeout: float = 10.0) -> None:
    """Until every scenario's run answers with at least the steps its spans could make (the receiver
    answers an export once stored, so this is normally at once); the checks judge what is there."""
    deadline = time.monotonic() + timeout
    for trace in run.scenarios.values():
        want = max(sum(1 for s in run.spans if s["trace_id"] == trace) - 1, 0)
        while True:
            reply = call("GET", f"{url}/runs/{trace}")
            if reply.status == 200 and (reply.json().get("step_count") or 0) >= want:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
