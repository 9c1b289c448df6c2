"""Alert evaluation's cost to ingest (issue 20): spans/s through one receiver with no rules, and with
20 rules evaluated every 2 seconds, in the same run, alternating, side by side.

    python bench/alerts.py            # about 2 minutes
    python bench/alerts.py --quick    # smoke run

The receiver (``python -m xray_otel serve``, XRAY_ALERT_INTERVAL=2) and PostgreSQL (embedded in a
temporary directory, or XRAY_DATABASE_URL) share the machine with this load generator. The 20 rules
watch the very pipeline being ingested (its steps' drop rate, failures, cost, p95 duration, a reason's
share; and its runs), over a 15-minute window that holds everything sent, so every evaluation reads a
growing window: the worst case, not a quiet pipeline's. Rounds alternate off and on, so drift of the
machine falls on both; the median of each is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import _STEPS, PROTOBUF, Receiver, build_requests, send_all  # noqa: E402

from xray_otel.store.embedded import given_or_embedded  # noqa: E402

RUN_NAME, SERVICE = "alerts-bench", "alerts-bench"
SPANS_PER_TRACE = len(_STEPS) + 1
INTERVAL = 2  # seconds between a rule's evaluations
TARGET = 0.02  # alert evaluation costs ingest less than 2%


def rules() -> list[dict]:
    """20 rules on the ingested pipeline: five figures of each filter-ish step, and its runs."""
    found = []
    for _, step, _ in _STEPS[1:]:
        for metric, extra in (("drop_rate", {}), ("failure_rate", {}), ("cost", {}), ("duration_p95", {}),
                              ("reason_share", {"reason": "price_too_high"})):
            if len(found) < 16:
                found.append({"name": f"{step} {metric}", "pipeline": RUN_NAME, "step": step, "metric": metric,
                              "comparison": "above", "threshold": 0.5, "window": "15m", **extra})
    for metric in ("failure_rate", "cost", "duration_p95", "failure_rate"):
        found.append({"name": f"runs {metric} {len(found)}", "pipeline": RUN_NAME, "metric": metric,
                      "comparison": "above", "threshold": 0.5, "window": "15m"})
    return found


async def add_rules(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for rule in rules():
            async with session.post(url + "/alerts/rules", json={**rule, "enabled": False}) as resp:
                if resp.status != 201:
                    raise SystemExit(f"rule refused: {resp.status} {await resp.text()}")


async def bench(args: argparse.Namespace, dsn: str, workdir: Path) -> None:
    traces = args.spans // SPANS_PER_TRACE
    rounds = [[r.SerializeToString() for r in build_requests(traces, args.batch, SERVICE, RUN_NAME)]
              for _ in range(2 * args.rounds + 1)]
    os.environ["XRAY_ALERT_INTERVAL"] = str(INTERVAL)
    receiver = Receiver(dsn, workdir / "receiver.log")
    admin = await asyncpg.connect(dsn)
    try:
        await receiver.wait_ready()
        await add_rules(receiver.url)
        url = receiver.url + "/v1/traces"
        await send_all(url, rounds[0], PROTOBUF, args.connections)  # warm-up
        rates: dict[bool, list[float]] = {False: [], True: []}
        for i, bodies in enumerate(rounds[1:]):
            on = i % 2 == 1
            await admin.execute("UPDATE alert_rules SET enabled = $1, next_eval_at = now()", on)
            before = await _evaluations(receiver.url)
            seconds, _ = await send_all(url, bodies, PROTOBUF, args.connections)
            rates[on].append(traces * SPANS_PER_TRACE / seconds)
            evaluated = await _evaluations(receiver.url) - before
            print(f"round {i + 1:2}: rules {'on ' if on else 'off'}  {rates[on][-1]:>9,.0f} spans/s  "
                  f"({seconds:.1f} s; rule evaluations meanwhile: {evaluated})", flush=True)
        off, on = statistics.median(rates[False]), statistics.median(rates[True])
        window_runs = await admin.fetchval("SELECT count(*) FROM runs WHERE name = $1", RUN_NAME)
        print(f"\ningest, no rules        {off:>9,.0f} spans/s (median of {len(rates[False])})")
        print(f"ingest, 20 rules / {INTERVAL} s  {on:>9,.0f} spans/s (median of {len(rates[True])})")
        cost = 1 - on / off
        print(f"ratio {on / off:.3f}: alert evaluation costs ingest {cost:.1%} (target < {TARGET:.0%}: "
              f"{'met' if cost < TARGET else 'NOT met'}); the window held up to {window_runs:,} runs")
    finally:
        await admin.close()
        receiver.stop()


async def _evaluations(url: str) -> int:
    """Rule evaluations the receiver made so far (xray_alert_evaluations_total, every outcome)."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("xray_alert_evaluations_total{")))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spans", type=int, default=60_000, help="spans per round (default 60000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds with rules and as many without (default 3)")
    p.add_argument("--batch", type=int, default=512, help="spans per request (default 512)")
    p.add_argument("--connections", type=int, default=4, help="concurrent connections (default 4)")
    p.add_argument("--quick", action="store_true", help="smoke run: 12000 spans, 2 rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.spans, args.rounds = 12_000, 2
    with tempfile.TemporaryDirectory(prefix="xray-bench-alerts-") as tmp:
        with given_or_embedded(Path(tmp) / "pgdata") as dsn:
            asyncio.run(bench(args, dsn, Path(tmp)))


if __name__ == "__main__":
    main()
