"""`xray-otel runs | steps | analyze | compare | alerts`: ask a running server, print aligned tables.

Tables are drawn by rich (the `cli` extra); `--json` prints the server's JSON as is, for scripts,
and needs nothing beyond the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:4318"


class ClientError(Exception):
    """Something to tell the user in one line (exit status 1)."""


def common_flags() -> argparse.ArgumentParser:
    """--url, --api-key and --json, shared by every client subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("XRAY_URL", DEFAULT_URL),
                        help=f"server URL (XRAY_URL; default {DEFAULT_URL})")
    common.add_argument("--api-key", default=os.environ.get("XRAY_API_KEY"),
                        help="API key with read scope (admin too, to change alert rules), when the server "
                             "requires one (XRAY_API_KEY)")
    common.add_argument("--json", action="store_true", help="print the JSON answer instead of a table")
    return common


def add_commands(commands: Any) -> None:
    """Register the client subcommands on the `xray-otel` parser."""
    common = common_flags()

    runs = commands.add_parser("runs", parents=[common], help="list runs with filters (GET /runs)")
    for flag, text in (("--name", "exact run name"), ("--q", "run name contains (case-insensitive)"),
                       ("--status", "running | completed | failed"), ("--service", "service.name"),
                       ("--since", "ISO-8601 or relative: 30m, 24h, 7d"), ("--until", "ISO-8601 or relative"),
                       ("--min-cost", "total cost at least (USD)"), ("--max-cost", "total cost at most (USD)"),
                       ("--sort", "-started_at (default), -cost, -duration, -step_count, or ascending without -"),
                       ("--limit", "rows (default 100, max 1000)"), ("--cursor", "X-Next-Cursor of a previous page")):
        runs.add_argument(flag, help=text)
    _error_flags(runs)
    runs.add_argument("--tag", action="append", default=[], metavar="KEY:VALUE", help="run tag; repeatable")
    runs.set_defaults(func=_runs)

    steps = commands.add_parser("steps", parents=[common], help="search steps across runs (GET /steps)")
    for flag, text in (("--type", "llm, retrieval, filter, rank, logic, ..."), ("--name", "exact step name"),
                       ("--run-name", "exact run name"), ("--service", "service.name"),
                       ("--min-drop-rate", "e.g. 0.9"), ("--max-drop-rate", "e.g. 0.1"),
                       ("--min-input-count", "steps that saw at least this many candidates"),
                       ("--status", "completed | failed"), ("--since", "ISO-8601 or relative: 30m, 24h, 7d"),
                       ("--until", "ISO-8601 or relative"),
                       ("--sort", "-started_at (default), -drop_rate, -cost, -duration, -input_count"),
                       ("--limit", "rows (default 100, max 1000)"), ("--cursor", "X-Next-Cursor of a previous page")):
        steps.add_argument(flag, help=text)
    _error_flags(steps)
    steps.add_argument("--tag", action="append", default=[], metavar="KEY:VALUE", help="run tag; repeatable")
    steps.set_defaults(func=_steps)

    analyze = commands.add_parser("analyze", parents=[common], help="a run's decision funnel (GET /analyze)")
    analyze.add_argument("run_id", metavar="RUN_ID")
    analyze.set_defaults(func=_analyze)

    compare = commands.add_parser("compare", parents=[common], help="two runs side by side (GET /compare)")
    compare.add_argument("base", metavar="BASE_RUN_ID")
    compare.add_argument("other", metavar="OTHER_RUN_ID")
    compare.set_defaults(func=_compare)


def _error_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--has-error", dest="has_error", action="store_const", const="true", help="only with errors")
    group.add_argument("--no-error", dest="has_error", action="store_const", const="false", help="only without")


def fetch(args: argparse.Namespace, path: str, params: dict[str, Any] | None = None, *, method: str = "GET",
          body: Any = None) -> tuple[Any, dict[str, str]]:
    """``method`` ``path`` on the server (``body`` sent as JSON): (decoded JSON answer or None, headers).
    ClientError with the server's message."""
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, [])}, doseq=True)
    url = args.url.rstrip("/") + path + (f"?{query}" if query else "")
    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {args.api_key}"} if args.api_key else {})
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=60) as resp:
            answer = resp.read()
            return (json.loads(answer) if answer else None), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise ClientError(f"{exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach {args.url} ({reason}): is `xray-otel serve` running? "
                          "Set --url or XRAY_URL") from None


def run_command(func: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            func(args)
        except ClientError as exc:
            print(f"xray-otel: {exc}", file=sys.stderr)
            return 1
        return 0
    return wrapper


def _filters(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names}


@run_command
def _runs(args: argparse.Namespace) -> None:
    data, headers = fetch(args, "/runs", _filters(args, (
        "name", "q", "status", "service", "since", "until", "min_cost", "max_cost", "has_error", "sort", "limit",
        "cursor", "tag")))
    if json_out(args, data):
        return
    rows = [(r["id"], r["name"], r["status"], r["service"], _num(r["step_count"]), _usd(r["total_cost"]),
             _ms(r["duration_ms"]), _time(r["started_at"]), r["error"]) for r in data]
    table(["run id", "name", "status", "service", "steps", "cost", "duration", "started", "error"], rows,
           numeric={4, 5, 6})
    _next(headers)


@run_command
def _steps(args: argparse.Namespace) -> None:
    data, headers = fetch(args, "/steps", _filters(args, (
        "type", "name", "run_name", "service", "min_drop_rate", "max_drop_rate", "min_input_count", "status",
        "has_error", "since", "until", "sort", "limit", "cursor", "tag")))
    if json_out(args, data):
        return
    rows = [(s["run_id"], s["run_name"], s["name"], s["type"], _num(s["input_count"]), _num(s["output_count"]),
             _pct(s["drop_rate"]), _reasons(s["rejections"]), _usd(s["cost"]), _ms(s["duration_ms"]))
            for s in data]
    table(["run id", "run", "step", "type", "in", "out", "dropped", "top reasons", "cost", "duration"], rows,
           numeric={4, 5, 6, 8, 9})
    _next(headers)


@run_command
def _analyze(args: argparse.Namespace) -> None:
    data, _ = fetch(args, f"/analyze/{urllib.parse.quote(args.run_id, safe='')}")
    if json_out(args, data):
        return
    run, summary = data["run"], data["summary"]
    say(f"[bold]{run['name']}[/bold]  {run['id']}  {run['status']}  cost {_usd(run['total_cost'])}  "
           f"{_ms(run['duration_ms'])}")
    rows = [("  " * f["depth"] + f["name"], f["type"], f["status"], _num(f["input_count"]), _num(f["output_count"]),
             _pct(f["drop_rate"]), _reasons(f["rejections"]), _usd(f["cost"]), _ms(f["duration_ms"]))
            for f in data["funnel"]]
    table(["step", "type", "status", "in", "out", "dropped", "top reasons", "cost", "duration"], rows,
           numeric={3, 4, 5, 7, 8})
    biggest = summary["biggest_drop"]
    say(f"{_num(summary['initial_candidates'])} candidates → {_num(summary['final_count'])}"
           + (f" in {summary['main_funnel']}, the main of {summary['funnel_count']} funnels"
              if summary.get("funnel_count", 0) > 1 else "")
           + (f"; biggest drop: {biggest['step']} ({_pct(biggest['drop_rate'])})" if biggest else ""))
    if summary.get("funnel_count", 0) > 1:
        for f in data["funnels"]:
            say(f"  funnel {f['name']}: {_num(f['initial_candidates'])} → {_num(f['final_count'])}")


@run_command
def _compare(args: argparse.Namespace) -> None:
    data, _ = fetch(args, "/compare", {"base": args.base, "other": args.other})
    if json_out(args, data):
        return
    rows = []
    for s in data["steps"]:
        b, o = s["base"] or {}, s["other"] or {}
        rows.append((s["name"] + (f" #{s['occurrence']}" if s["occurrence"] > 1 else ""),
                     f"{_num(b.get('input_count'))} → {_num(b.get('output_count'))}" if b else "—",
                     f"{_num(o.get('input_count'))} → {_num(o.get('output_count'))}" if o else "—",
                     _pct(b.get("drop_rate")), _pct(o.get("drop_rate")),
                     ", ".join(f"{k} {v:+g}" for k, v in s["rejections_delta"].items()), ", ".join(s["changed"])))
    say(f"base  {data['base']['id']}  {data['base']['name']}\nother {data['other']['id']}  {data['other']['name']}")
    table(["step", "base in → out", "other in → out", "base drop", "other drop", "rejections Δ", "changed"], rows,
           numeric={3, 4})
    first = data["first_divergence"]
    say(f"first divergence: {first['name']} ({', '.join(first['changed'])})" if first else "no divergence")
    outputs = data["summary"]["final_outputs"]
    if data["summary"]["outputs_changed"]:
        say(f"outputs: {json.dumps(outputs['base'])} → {json.dumps(outputs['other'])}")


def json_out(args: argparse.Namespace, data: Any) -> bool:
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    return args.json


def _console() -> Any:
    try:
        from rich.console import Console
    except ImportError:
        raise ClientError("tables need rich: pip install 'xray-otel[cli]' (or pass --json)") from None
    # Piped into less, grep or a file there is no terminal width to respect: don't fold ids at 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def table(columns: list[str], rows: list[tuple[Any, ...]], *, numeric: set[int]) -> None:
    from rich.table import Table  # _console() has checked rich is there

    console = _console()
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i in numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    if not rows:
        console.print("(nothing matched)")


def say(text: str) -> None:
    _console().print(text)


def _next(headers: dict[str, str]) -> None:
    cursor = headers.get("X-Next-Cursor")
    if cursor:
        say(f"more: --cursor {cursor}")


def _num(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _usd(value: float | None) -> str:
    return "" if value is None else f"${value:.4f}"


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _time(value: str | None) -> str:
    return "" if value is None else value.replace("T", " ")[:19]


def _reasons(rejections: Any, top: int = 2) -> str:
    if not isinstance(rejections, dict):
        return ""
    counted = sorted(((v, k) for k, v in rejections.items() if isinstance(v, (int, float))), reverse=True)
    return ", ".join(f"{k} {v:,}" for v, k in counted[:top])
