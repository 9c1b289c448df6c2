"""Web UI responsiveness on a large run (issue 6): 1,000 steps, 10,000 decisions in one step.

Starts its own receiver on an embedded PostgreSQL in a temporary directory (or on
XRAY_DATABASE_URL), sends the run over OTLP/HTTP, then drives Debian's Chromium through
Playwright (pip install -e '.[test]'; XRAY_CHROMIUM names another Chromium) and prints the
median of a few repetitions of what a user does on that run page.

    python bench/ui.py
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import export_request, make_span, new_ids, post_otlp  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

STEPS, DECISIONS, REPEAT = 1_000, 10_000, 5
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "XRAY_DATA_DIR": data_dir}
    server = subprocess.Popen([sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", "0"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/ready", timeout=1)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the receiver did not become ready within 2 minutes")


def send_large_run(url: str) -> tuple[str, str]:
    """The run id and the id of its step with all the decisions."""
    trace_id, base = new_ids()
    t0 = time.time_ns()
    spans = [make_span(trace_id, base, "big_run", attrs={"xray.kind": "run"}, start=t0, duration_ns=10**9)]
    for i in range(1, STEPS + 1):
        decisions = [{"id": f"c{i}-{j}", "accepted": j % 2 == 0} for j in range(DECISIONS if i == 1 else 10)]
        spans.append(make_span(trace_id, base + i, f"step_{i:04d}", parent=base, start=t0 + i * 1000, attrs={
            "xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": len(decisions),
            "xray.step.output_count": len(decisions) // 2, "xray.step.rejections": {"odd": len(decisions) // 2},
            "xray.step.decisions": decisions}))
    for chunk in range(0, len(spans), 250):
        assert post_otlp(url, export_request(spans[chunk:chunk + 250])).status == 200
    return str(uuid.UUID(bytes=trace_id)), spans[1].span_id.hex()


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def measure(url: str, run_id: str, big_step: str) -> dict[str, list[float]]:
    chromium = os.environ.get("XRAY_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("no Chromium: apt-get install chromium, or set XRAY_CHROMIUM")
    got: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        for _ in range(REPEAT):
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            rows = page.locator("#step-tree tbody tr")
            steps = [
                ("open the run page (steps table drawn)",
                 lambda: (page.goto(f"{url}/ui/#/runs/{run_id}"), rows.first.wait_for())),
                ("choose a step with 10,000 decisions", lambda: (
                    page.locator(f'#step-tree tr[data-step-id="{big_step}"]').click(),
                    page.locator("#decisions tbody tr").first.wait_for())),
                ("search those decisions for one id", lambda: (
                    page.get_by_label("Search decisions by candidate id or reason").fill("c1-9999"),
                    page.wait_for_function("document.querySelectorAll('#decisions tbody tr').length === 1"))),
                ("show 200 more steps", lambda: (
                    page.get_by_role("button", name="Show 200 more of 800").click(),
                    page.wait_for_function("document.querySelectorAll('#step-tree tbody tr').length === 400"))),
            ]
            for name, action in steps:
                got.setdefault(name, []).append(timed(action))
            page.close()
        browser.close()
    return got


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="xray-bench-ui-") as data_dir:
        server, url = start_receiver(data_dir)
        try:
            run_id, big_step = send_large_run(url)
            fetch = [timed(lambda: urllib.request.urlopen(f"{url}/runs/{run_id}/steps").read()) for _ in range(REPEAT)]
            results = {"GET /runs/{id}/steps (server + transfer)": fetch, **measure(url, run_id, big_step)}
        finally:
            server.terminate()
            server.wait(30)
    print(f"run of {STEPS:,} steps, {DECISIONS:,} decisions in one step; median of {REPEAT} (min-max), headless Chromium")
    for name, values in results.items():
        print(f"  {name:<45} {statistics.median(values):7.0f} ms   ({min(values):.0f}-{max(values):.0f})")


if __name__ == "__main__":
    main()
