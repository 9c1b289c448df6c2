"""``xray-otel demo``: run the example pipeline against a receiver and print its decision funnel.

Reuses a receiver already answering at ``url``; otherwise starts one (``xray-otel serve``)
for the duration of the demo. Standard library only, like the rest of the SDK side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import IO, Any
from urllib.parse import urlsplit

from ..sdk import configure, flush
from .competitor_selection import STEP_NAMES, run_pipeline

DEFAULT_URL = "http://127.0.0.1:4318"
START_TIMEOUT_S = 120.0  # the first start initialises an embedded PostgreSQL
ANALYZE_TIMEOUT_S = 30.0


def main(url: str = DEFAULT_URL, start_server: bool = True) -> int:
    """Run the demo against the receiver at ``url``; the process exit status."""
    url = url.rstrip("/")
    server = log = None
    if not _get_json(f"{url}/health"):
        if not start_server:
            print(f"No xray-otel receiver answers at {url}; start one with `xray-otel serve`.", file=sys.stderr)
            return 1
        server, log = _start_receiver(url)
    try:
        if not _wait(lambda: _get_json(f"{url}/ready"), START_TIMEOUT_S, server):
            print(f"The receiver at {url} did not become ready within {START_TIMEOUT_S:.0f} s.", file=sys.stderr)
            return 1
        configure(service_name="xray-otel-demo", endpoint=url)
        run_id, _ = run_pipeline()
        flush()
        analysis = _wait(lambda: _complete_analysis(url, run_id), ANALYZE_TIMEOUT_S, None)
        if not analysis:
            print(f"Run {run_id} did not reach {url} within {ANALYZE_TIMEOUT_S:.0f} s.", file=sys.stderr)
            return 1
        print(format_funnel(analysis))
        more = f"{url}/ui/#/runs/{run_id}  (JSON: {url}/analyze/{run_id})"
        if server is not None:  # the receiver started for the demo stops with it; the data stays
            more += "   (start `xray-otel serve` first: this demo's receiver stops now)"
        print(f"\nMore: {more}")
        return 0
    finally:
        if server is not None:
            _stop(server, log)


def _get_json(url: str) -> Any:
    """The JSON body of a 200 answer, else None (down, not found, not yet ready)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return None


def _wait(probe: Any, timeout_s: float, server: subprocess.Popen | None) -> Any:
    """Poll ``probe`` until it returns something truthy; None on timeout or if ``server`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        if server is not None and server.poll() is not None:
            return None
        time.sleep(0.2)
    return None


def _complete_analysis(url: str, run_id: str) -> dict[str, Any] | None:
    analysis = _get_json(f"{url}/analyze/{run_id}")
    if not analysis or analysis["run"]["status"] == "RUNNING":
        return None
    names = {row["name"] for row in analysis["funnel"]}
    return analysis if names.issuperset(STEP_NAMES) else None


def _start_receiver(url: str) -> tuple[subprocess.Popen, IO[bytes]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4318
    print(f"Starting a local receiver on {host}:{port} (xray-otel serve) ...", file=sys.stderr)
    log = tempfile.TemporaryFile()  # its output, shown only if it fails
    command = [sys.executable, "-m", "xray_otel", "serve", "--host", host, "--port", str(port)]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log


def _stop(server: subprocess.Popen, log: IO[bytes] | None) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    elif server.returncode and log is not None:
        print(f"The receiver exited with status {server.returncode}:", file=sys.stderr)
        log.seek(0)
        sys.stderr.write(log.read()[-4000:].decode(errors="replace"))
    if log is not None:
        log.close()


def format_funnel(analysis: dict[str, Any]) -> str:
    """The funnel of one /analyze answer as an aligned text table."""
    run, summary = analysis["run"], analysis["summary"]
    lines = [
        f"Run {run['id']}  {run['name']}  {run['status']}  "
        f"{_number(run.get('duration_ms'))} ms  cost ${summary.get('total_cost') or 0:.6f}",
        "",
    ]
    header = ("step", "type", "in", "out", "dropped", "drop", "why dropped")
    rows = [header] + [_row(step) for step in analysis["funnel"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    right = {2, 3, 4, 5}
    for row in rows:
        cells = [row[i].rjust(w) if i in right else row[i].ljust(w) for i, w in enumerate(widths)]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    biggest = summary.get("biggest_drop")
    if biggest:
        lines += ["", f"Biggest drop: {biggest['step']} (-{biggest['dropped']}, {_percent(biggest['drop_rate'])})"]
    lines.append(f"Final outputs: {json.dumps(analysis.get('final_outputs'), ensure_ascii=False)}")
    return "\n".join(lines)


def _row(step: dict[str, Any]) -> tuple[str, ...]:
    reasons = sorted((step.get("rejections") or {}).items(), key=lambda kv: -kv[1])
    return (
        "  " * step.get("depth", 0) + step["name"],
        step.get("type") or "",
        _number(step.get("input_count")),
        _number(step.get("output_count")),
        _number(step.get("dropped")),
        _percent(step.get("drop_rate")),
        ", ".join(f"{reason} {count}" for reason, count in reasons),
    )


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def _percent(rate: Any) -> str:
    return f"{rate:.1%}" if isinstance(rate, (int, float)) else "-"
