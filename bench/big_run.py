"""Reading one very large run (issue 16 §4): a run of 100,000 steps, paged, analysed, with /health probed.

Starts its own receiver on an embedded PostgreSQL in a temporary directory (or on
XRAY_DATABASE_URL), sends one run of N steps over OTLP/HTTP protobuf, then times, each while a
separate process GETs /health every 20 ms: walking every page of GET /runs/{id}/steps (limit
1000), one GET /analyze/{id}, and the first page alone 5 times. Prints /health latency per phase
and the receiver's peak RSS. The walk must return each of the N steps exactly once, in tree order,
or the script stops; timings are printed, never checked.

    python bench/big_run.py              # 100,000 steps
    python bench/big_run.py --quick      # 20,000 steps
    python bench/big_run.py --steps 50000
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import call, export_request, get_json, make_span, new_ids  # noqa: E402

from xray_otel import conventions as xc  # noqa: E402

HEALTH_EVERY = 0.020  # s between /health probes
TARGET_MS = 100.0  # issue 16: /health under 100 ms during these reads
PAGE = 1000
FIRST_PAGE_REPEAT = 5
IDLE_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(work_dir: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = Path(work_dir) / "receiver.log"
    env = {**os.environ, "XRAY_DATA_DIR": str(Path(work_dir) / "pg")}
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "xray_otel", "serve", "--port", str(port), "--grpc-port", "0"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/ready", timeout=1)
            return server, url, log
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the receiver did not become ready:\n" + log.read_text()[-3000:])


# --- the run ----------------------------------------------------------------------------------------

def step_inputs(i: int) -> dict:
    """About 300 B of JSON, different for each step."""
    return {"query": f"wireless noise cancelling headphones, variant {i}", "locale": "en-US",
            "filters": {"max_price": 150 + i % 97, "min_rating": 4.0, "prime": i % 2 == 0,
                        "brands": ["acme", "globex", "initech"]},
            "candidate_ids": [f"B0{(i * 7 + k) % 10**7:07d}" for k in range(8)]}


def build_run(steps: int, groups: int) -> tuple[str, list[bytes], list[tuple[str, int]]]:
    """The run id, serialised protobuf batches, and the expected (name, depth) in tree order.

    ``steps`` step rows in all: ``groups`` group spans under the run span, the other steps spread over
    them in order (children after their group, by start time). The spans go out in order of end time,
    as an exporter sends them: a group and the run span after their children."""
    trace_id, base = new_ids()
    t0 = time.time_ns() - 3600 * 10**9
    leaves = steps - groups
    per_group, extra = divmod(leaves, groups)
    spans, expected, parents = [], [], []
    sid, leaf = base + 1, 0
    for g in range(groups):
        group_id, g_start = sid, t0 + leaf * 10_000
        sid += 1
        expected.append((f"group_{g:03d}", 0))
        children = per_group + (g < extra)
        for _ in range(children):
            spans.append(make_span(trace_id, sid, f"step_{leaf:06d}", parent=group_id,
                                   start=t0 + leaf * 10_000 + 1, duration_ns=5_000, attrs={
                                       xc.KIND: xc.KIND_STEP, xc.STEP_TYPE: "filter",
                                       xc.STEP_INPUTS: step_inputs(leaf),
                                       xc.STEP_INPUT_COUNT: 1000 + leaf % 500,
                                       xc.STEP_OUTPUT_COUNT: 100 + leaf % 50}))
            expected.append((f"step_{leaf:06d}", 1))
            sid, leaf = sid + 1, leaf + 1
        parents.append(make_span(trace_id, group_id, f"group_{g:03d}", parent=base, start=g_start,
                                 duration_ns=children * 10_000 + 5_000,
                                 attrs={xc.KIND: xc.KIND_STEP, xc.STEP_TYPE: "logic"}))
        spans.append(parents[-1])
    spans.append(make_span(trace_id, base, "big_run", start=t0, duration_ns=leaves * 10_000 + 10**6,
                           attrs={xc.KIND: xc.KIND_RUN}))
    return str(uuid.UUID(bytes=trace_id)), spans, expected


# --- /health, probed from a process of its own (the client's GIL must not delay it) --------------------

def probe_health(url: str, stop, results) -> None:
    """GET /health every HEALTH_EVERY s on one keep-alive connection until ``stop`` is set; sends back
    (monotonic start, latency s) of each probe. A probe later than its slot goes at once."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    got, due = [], time.monotonic()
    while not stop.is_set():
        start = time.monotonic()
        try:
            conn.request("GET", "/health")
            reply = conn.getresponse()
            reply.read()
            ok = reply.status == 200
        except OSError:
            ok = False
            conn.close()
        got.append((start, time.monotonic() - start if ok else float("nan")))
        due = max(due + HEALTH_EVERY, time.monotonic())
        stop.wait(max(0.0, due - time.monotonic()))
    results.send(got)


def latency_row(probes: list[tuple[float, float]], start: float, end: float) -> dict:
    ms = sorted(lat * 1000 for t, lat in probes if start <= t < end and lat == lat)
    failed = sum(1 for t, lat in probes if start <= t < end and lat != lat)
    if not ms:
        return {"n": 0, "failed": failed, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"n": len(ms), "failed": failed, "p50": statistics.median(ms),
            "p99": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], "max": ms[-1]}


# --- the receiver's memory -------------------------------------------------------------------------------

def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Set VmHWM back to the current RSS (Linux ≥ 4.0), so the next reading is the next phase's peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


# --- the reads ----------------------------------------------------------------------------------------------

def get(conn: http.client.HTTPConnection, path: str) -> tuple[float, bytes, http.client.HTTPResponse]:
    start = time.perf_counter()
    conn.request("GET", path)
    reply = conn.getresponse()
    body = reply.read()
    took = time.perf_counter() - start
    if reply.status != 200:
        raise SystemExit(f"GET {path}: HTTP {reply.status}: {body[:300]!r}")
    return took, body, reply


def walk(conn: http.client.HTTPConnection, run_id: str, steps: int) -> tuple[list[float], list[bytes]]:
    """Every page of the run's steps, following X-Next-Cursor; bodies are parsed after the clock stops."""
    times, bodies, query = [], [], f"?limit={PAGE}"
    while True:
        took, body, reply = get(conn, f"/runs/{run_id}/steps{query}")
        times.append(took)
        bodies.append(body)
        cursor = reply.getheader("X-Next-Cursor")
        if not cursor:
            return times, bodies
        if f"cursor={cursor}" not in (reply.getheader("Link") or ""):
            raise SystemExit(f"page {len(bodies)}: Link header {reply.getheader('Link')!r} lacks the cursor")
        query = f"?limit={PAGE}&cursor={cursor}"
        if len(bodies) > steps // PAGE + 10:  # a cursor that loops
            raise SystemExit(f"WALK WRONG: {len(bodies)} pages and still a next cursor")


def check_walk(bodies: list[bytes], expected: list[tuple[str, int]], run_id: str) -> list[str]:
    """The step ids in the order walked; stops the script unless each step came once, in tree order."""
    pages = [json.loads(body) for body in bodies]
    steps = [s for page in pages for s in page]
    sizes = [len(page) for page in pages]
    ids = [s["id"] for s in steps]
    problems = []
    if len(steps) != len(expected):
        problems.append(f"{len(steps):,} steps walked, {len(expected):,} sent")
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids)):,} steps came more than once")
    if any(n != PAGE for n in sizes[:-1]) or not 0 < sizes[-1] <= PAGE:
        problems.append(f"page sizes {sorted(set(sizes))}, expected {PAGE} but the last")
    if any(s["run_id"] != run_id for s in steps):
        problems.append("steps of another run")
    got = [(s["name"], s["depth"]) for s in steps]
    if not problems and got != expected:
        first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        problems.append(f"not in tree order: step {first:,} is {got[first]}, expected {expected[first]}")
    if problems:
        raise SystemExit("WALK WRONG: " + "; ".join(problems))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="step rows in the run (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 steps")
    parser.add_argument("--groups", type=int, default=50, help="group spans the steps hang under (default 50)")
    parser.add_argument("--batch", type=int, default=2000, help="spans per OTLP request (default 2,000)")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.steps
    if n <= args.groups:
        parser.error("--steps must exceed --groups")
    began = time.monotonic()

    run_id, spans, expected = build_run(n, args.groups)
    bodies = [export_request(spans[i:i + args.batch], service="bench-big-run").SerializeToString()
              for i in range(0, len(spans), args.batch)]
    del spans
    sent_bytes = sum(map(len, bodies))

    with tempfile.TemporaryDirectory(prefix="xray-bench-big-run-") as work_dir:
        server, url, log = start_receiver(work_dir)
        pid = server.pid
        mp = multiprocessing.get_context("spawn")
        stop = mp.Event()
        receive, send = mp.Pipe(duplex=False)
        prober = mp.Process(target=probe_health, args=(url, stop, send), daemon=True)
        phases: dict[str, tuple[float, float]] = {}
        peaks: dict[str, int] = {}
        try:
            rss_ready = status_kib(pid, "VmRSS")
            prober.start()
            while call("GET", url + "/health").status != 200:
                time.sleep(0.1)
            time.sleep(0.5)  # the prober's own start-up

            # Ingest, 2 connections, each request acknowledged before the next on that connection.
            def post(body: bytes) -> int:
                return call("POST", url + "/v1/traces", body, {"Content-Type": "application/x-protobuf"}).status

            start = time.monotonic()
            with ThreadPoolExecutor(2) as pool:
                statuses = list(pool.map(post, bodies))
            phases["ingest"] = (start, time.monotonic())
            if statuses != [200] * len(bodies):
                raise SystemExit(f"ingest: HTTP statuses {sorted(set(statuses))}")
            run = get_json(f"{url}/runs/{run_id}")
            if run["step_count"] != n or run["status"] != xc.STATUS_COMPLETED:
                raise SystemExit(f"after ingest the run has {run['step_count']:,} steps, status {run['status']}")
            peaks["ingest"] = status_kib(pid, "VmHWM")
            can_reset = reset_peak(pid)

            start = time.monotonic()
            time.sleep(IDLE_SECONDS)
            phases["idle"] = (start, time.monotonic())

            conn = http.client.HTTPConnection(url.removeprefix("http://").split(":")[0], int(url.rsplit(":", 1)[1]),
                                              timeout=120)
            reset_peak(pid)
            start = time.monotonic()
            page_times, page_bodies = walk(conn, run_id, n)
            phases["walk"] = (start, time.monotonic())
            peaks["walk"] = status_kib(pid, "VmHWM")

            reset_peak(pid)
            start = time.monotonic()
            analyze_time, analyze_body, _ = get(conn, f"/analyze/{run_id}")
            phases["analyze"] = (start, time.monotonic())
            peaks["analyze"] = status_kib(pid, "VmHWM")

            reset_peak(pid)
            start = time.monotonic()
            first_pages = [get(conn, f"/runs/{run_id}/steps?limit={PAGE}") for _ in range(FIRST_PAGE_REPEAT)]
            phases["first page"] = (start, time.monotonic())
            peaks["first page"] = status_kib(pid, "VmHWM")
            rss_after = status_kib(pid, "VmRSS")
            conn.close()

            stop.set()
            probes = receive.recv()
            prober.join(10)
        except BaseException:
            sys.stderr.write("receiver log (tail):\n" + log.read_text()[-2000:] + "\n")
            raise
        finally:
            stop.set()
            server.terminate()
            server.wait(30)

    # Correctness, after every clock has stopped.
    ids = check_walk(page_bodies, expected, run_id)
    funnel = json.loads(analyze_body).get("funnel")
    if funnel is None or [f["step_id"] for f in funnel] != ids:
        raise SystemExit("ANALYZE WRONG: its funnel is not the walked steps in the same order")
    first_ids = [s["id"] for s in json.loads(first_pages[0][1])]
    if first_ids != ids[:PAGE] or any(body != first_pages[0][1] for _, body, _ in first_pages):
        raise SystemExit("FIRST PAGE WRONG: not the walk's first page, or not the same each time")

    # Figures.
    ingest_s = phases["ingest"][1] - phases["ingest"][0]
    walk_s = sum(page_times)
    page_bytes = list(map(len, page_bodies))
    first_ms = [t * 1000 for t, _, _ in first_pages]
    later = sorted(t * 1000 for t in page_times[1:]) or [float("nan")]
    rows = {name: latency_row(probes, *span) for name, span in phases.items()}

    print(f"run of {n:,} steps ({args.groups} groups of ~{(n - args.groups) // args.groups:,} steps, "
          f"~{len(json.dumps(step_inputs(n // 2)))} B of inputs each), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"ingest: {len(bodies)} OTLP/HTTP protobuf requests of {args.batch:,} spans ({sent_bytes / 1e6:.1f} MB), "
          f"2 connections: {ingest_s:.1f} s, {n / ingest_s:,.0f} spans/s")
    print()
    print(f"{'phase':<34} {'time':>9} {'bytes':>10}   /health p50 / p99 / max (probes)   receiver peak RSS")
    print(f"{'ingest':<34} {ingest_s * 1000:7.0f} ms {sent_bytes / 1e6:7.1f} MB   {_lat(rows['ingest'])}   "
          f"{mib(peaks['ingest'])} (since start; {mib(rss_ready)} when ready)")
    print(f"{'idle':<34} {IDLE_SECONDS * 1000:7.0f} ms {'':>10}   {_lat(rows['idle'])}")
    print(f"{f'walk: {len(page_bodies)} pages of /runs/{{id}}/steps':<34} {walk_s * 1000:7.0f} ms "
          f"{sum(page_bytes) / 1e6:7.1f} MB   {_lat(rows['walk'])}   {mib(peaks['walk'])}")
    print(f"{'/analyze/{id}':<34} {analyze_time * 1000:7.0f} ms {len(analyze_body) / 1e6:7.1f} MB   "
          f"{_lat(rows['analyze'])}   {mib(peaks['analyze'])}")
    print(f"{f'first page alone, median of {FIRST_PAGE_REPEAT}':<34} {statistics.median(first_ms):7.0f} ms "
          f"{len(first_pages[0][1]) / 1e6:7.2f} MB   {_lat(rows['first page'])}   {mib(peaks['first page'])}")
    print()
    print(f"walk: first page {page_times[0] * 1000:.0f} ms (orders the tree), later pages median {statistics.median(later):.0f} ms, "
          f"max {later[-1]:.0f} ms; largest page {max(page_bytes) / 1e6:.2f} MB, {sum(page_bytes) / n:.0f} B per step")
    print(f"first page alone: {', '.join(f'{t:.0f}' for t in first_ms)} ms")
    print(f"receiver RSS: {mib(rss_ready)} when ready, peak {mib(peaks['ingest'])} by the end of ingest, "
          f"peak during the reads {mib(max(peaks['walk'], peaks['analyze'], peaks['first page']))}"
          + ("" if can_reset else " (VmHWM could not be reset: each read figure is the peak since start)")
          + f", {mib(rss_after)} after them")
    print()
    print("ratios:")
    for name in ("ingest", "idle", "walk", "analyze", "first page"):
        print(f"  /health max during {name:<11} / {TARGET_MS:.0f} ms target: {rows[name]['max'] / TARGET_MS:5.2f}")
    print(f"  walk time per 1,000 steps: {walk_s * 1000 / (n / 1000):.0f} ms")
    print(f"walk checked: {n:,} steps, each once, in tree order; /analyze's funnel the same steps in the same order")
    print(f"total time {time.monotonic() - began:.0f} s")


def _lat(row: dict) -> str:
    failed = f", {row['failed']} failed" if row["failed"] else ""
    return f"{row['p50']:5.1f} / {row['p99']:5.1f} / {row['max']:6.1f} ms ({row['n']:4d}{failed})"


if __name__ == "__main__":
    main()
