"""`xray-otel alerts list | add | rm`: alert rules on a running server (GET /alerts, POST /alerts/rules,
DELETE /alerts/rules/{id}); the server checks every rule and says which field is wrong."""

from __future__ import annotations

import argparse
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

from .client_cli import ClientError, common_flags, fetch, json_out, run_command, table


def add_commands(commands: Any) -> None:
    """Register `alerts list | add | rm` on the `xray-otel` parser."""
    common = common_flags()
    alerts = commands.add_parser("alerts", help="alert rules: list, add, rm (GET /alerts, /alerts/rules)")
    actions = alerts.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="rules with their state, and recent firings")
    listing.set_defaults(func=_list)

    add = actions.add_parser("add", parents=[common], help="add a rule (docs/alerts.md): flags, or --file")
    add.add_argument("--file", type=Path, help="a JSON file holding one rule (the POST /alerts/rules body)")
    add.add_argument("--name", help="the rule's name (unique)")
    add.add_argument("--kind", choices=("threshold", "change"), help="threshold (default) or change")
    add.add_argument("--pipeline", help="the pipeline (run name) to watch")
    add.add_argument("--step", help="the step (name) to watch; leave out for the pipeline's runs as a whole")
    add.add_argument("--metric", help="drop_rate, reason_share, failure_rate, cost, duration_p95")
    add.add_argument("--reason", help="the rejection reason, for reason_share")
    bound = add.add_mutually_exclusive_group()
    bound.add_argument("--above", type=float, metavar="THRESHOLD", help="fire when the figure is above this")
    bound.add_argument("--below", type=float, metavar="THRESHOLD", help="fire when the figure is below this")
    add.add_argument("--window", help="trailing window: 30s, 15m, 24h, 7d (threshold default 15m, change 24h)")
    add.add_argument("--baseline", help="change rules: what the window is compared with (default 7d)")
    add.add_argument("--min-samples", type=int, help="decide only with at least this many runs (steps) in the window")
    add.add_argument("--webhook", help="URL that receives firings and resolutions (POST, JSON, signed)")
    add.add_argument("--secret-env", metavar="VAR", help="environment variable holding the webhook's HMAC secret "
                                                          "(kept off the command line)")
    add.set_defaults(func=_add)

    remove = actions.add_parser("rm", parents=[common], help="delete a rule, by name or id")
    remove.add_argument("rule", metavar="NAME_OR_ID")
    remove.set_defaults(func=_rm)


@run_command
def _list(args: argparse.Namespace) -> None:
    data, _ = fetch(args, "/alerts", {"limit": 20})
    if json_out(args, data):
        return
    table(["id", "name", "state", "pipeline", "step", "condition", "value", "evaluated", "note"],
          [(r["id"], r["name"], r["state"], r["pipeline"], r["step"], _condition(r), _value(r["value"]),
            _time(r["evaluated_at"]), r["note"]) for r in data["rules"]], numeric={0, 6})
    if data["firings"]:
        table(["at", "rule", "state", "step", "what", "value", "delivered"],
              [(_time(f["at"]), f["rule"], f["state"], f["step"], f["what"], _value(f["value"]), _delivery(f))
               for f in data["firings"]], numeric={5})


@run_command
def _add(args: argparse.Namespace) -> None:
    data, _ = fetch(args, "/alerts/rules", method="POST", body=_rule(args))
    if json_out(args, data):
        return
    print(f"added rule {data['id']} {data['name']!r}: {_condition(data)}")


@run_command
def _rm(args: argparse.Namespace) -> None:
    rule_id = args.rule if args.rule.isdigit() else _id_of(args, args.rule)
    fetch(args, f"/alerts/rules/{urllib.parse.quote(str(rule_id), safe='')}", method="DELETE")
    print(f"deleted rule {rule_id}")


def _rule(args: argparse.Namespace) -> dict[str, Any]:
    """The POST body: the --file's rule, with any flag given on top."""
    rule: dict[str, Any] = {}
    if args.file is not None:
        try:
            rule = json.loads(args.file.read_text())
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read the rule in {args.file}: {exc}") from None
    flags = {"name": args.name, "kind": args.kind, "pipeline": args.pipeline, "step": args.step,
             "metric": args.metric, "reason": args.reason, "window": args.window, "baseline": args.baseline,
             "min_samples": args.min_samples, "webhook": args.webhook}
    rule |= {k: v for k, v in flags.items() if v is not None}
    if args.above is not None or args.below is not None:
        rule |= {"comparison": "above" if args.above is not None else "below",
                 "threshold": args.above if args.above is not None else args.below}
    if args.secret_env:
        if args.secret_env not in os.environ:
            raise ClientError(f"--secret-env {args.secret_env}: that environment variable is not set")
        rule["secret"] = os.environ[args.secret_env]
    return rule


def _id_of(args: argparse.Namespace, name: str) -> int:
    rules, _ = fetch(args, "/alerts/rules")
    for rule in rules:
        if rule["name"] == name:
            return rule["id"]
    raise ClientError(f"no alert rule named {name!r} (xray-otel alerts list shows them)")


def _condition(rule: dict[str, Any]) -> str:
    where = f"{rule['pipeline']}" + (f" / {rule['step']}" if rule["step"] else "")
    if rule["kind"] == "change":
        return f"any significant change in {where}, last {rule['window']} against {rule['baseline']}"
    what = rule["metric"] + (f" {rule['reason']!r}" if rule.get("reason") else "")
    return f"{what} {rule['comparison']} {rule['threshold']:g} over {rule['window']}"


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _time(value: str | None) -> str:
    return "" if value is None else value.replace("T", " ")[:19]


def _delivery(firing: dict[str, Any]) -> str:
    delivery = firing["delivery"]
    if delivery is None:
        return "no webhook"
    return "yes" if delivery["delivered_at"] else f"not yet ({delivery['attempts']} attempts)"
