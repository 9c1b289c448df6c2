"""Alert rules over REST: GET/POST /alerts/rules, GET/PUT/DELETE /alerts/rules/{id}, and GET /alerts
(every rule with its state, and the recent firings).

Rules are checked by alerts/rules.py: a bad one is a 400 naming the field. A rule's secret is
write-only: answers say ``has_secret``, never the secret; of its webhook they show only
``scheme://host[:port]/…`` (the path and query are often the credential) and ``has_webhook``. Changing rules needs a key with the ``admin``
scope (middleware.py); rules watch pipelines across every project, so a project-bound key gets a 403.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aiohttp import web

from ..alerts.rules import Rule, RuleError, parse_rule, show_rule, show_webhook
from ..store.alerts import DuplicateRule
from ..web import PROJECT, json_ok
from .common import STORE, QueryError
from .params import Param, parse

SERVER_SECRET = web.AppKey("alert_server_secret", bool)
"""Whether the server has a secret of its own (XRAY_ALERT_SECRET) to sign webhooks of rules without one."""
PRIVATE_WEBHOOKS = web.AppKey("alert_private_webhooks", bool)
"""Whether webhooks may be at loopback/private/link-local addresses (XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS)."""
ALERT_PARAMS = (Param("limit", "integer", "recent firings and resolutions shown, newest first (default 50, "
                      "larger values are capped at 500)", minimum=1, maximum=500, default=50),)
RULE_ID = Param("id", "integer", "the rule's id", required=True)


async def alerts_overview(request: web.Request) -> web.Response:
    """GET /alerts: every rule with its state, and the latest firings and resolutions with their delivery."""
    _check_key(request)
    p = parse(request.query, ALERT_PARAMS)
    store = request.app[STORE].alerts
    firings = [_firing(row) for row in await store.recent_firings(p["limit"])]
    return json_ok({"rules": [show_rule(r) for r in await store.rules()], "firings": firings})


async def list_rules(request: web.Request) -> web.Response:
    _check_key(request)
    parse(request.query, ())
    return json_ok([show_rule(r) for r in await request.app[STORE].alerts.rules()])


async def get_rule(request: web.Request) -> web.Response:
    _check_key(request)
    parse(request.query, ())
    return json_ok(show_rule(await _stored(request, _rule_id(request))))


async def create_rule(request: web.Request) -> web.Response:
    _check_key(request)
    rule = await _body_rule(request)
    _check_signing(request, rule, stored_secret=False)
    try:
        row = await request.app[STORE].alerts.create(rule)
    except DuplicateRule:
        raise QueryError(409, f"name: a rule named {rule.name[:64]!r} exists; PUT /alerts/rules/{{id}} changes it")
    return json_ok(show_rule(row), status=201, headers={"Location": f"/alerts/rules/{row['id']}"})


async def replace_rule(request: web.Request) -> web.Response:
    """PUT: the whole definition, as for POST; a secret left out is kept, ``"secret": null`` removes it, and a
    webhook given as answers show it (``https://host/…``) keeps the stored URL."""
    _check_key(request)
    rule_id = _rule_id(request)
    rule = await _body_rule(request)
    stored = await _stored(request, rule_id)
    if stored["webhook"] is not None and rule.webhook == show_webhook(stored["webhook"]):
        rule = replace(rule, webhook=stored["webhook"])  # read back and sent again: the URL it stands for
    _check_signing(request, rule, stored_secret=stored["has_secret"])
    try:
        row = await request.app[STORE].alerts.replace(rule_id, rule)
    except DuplicateRule:
        raise QueryError(409, f"name: another rule is named {rule.name[:64]!r}")
    if row is None:
        raise QueryError(404, f"alert rule {rule_id} not found")
    return json_ok(show_rule(row))


async def delete_rule(request: web.Request) -> web.Response:
    """DELETE: the rule, its firings and any delivery still owed for them."""
    _check_key(request)
    rule_id = _rule_id(request)
    if not await request.app[STORE].alerts.delete(rule_id):
        raise QueryError(404, f"alert rule {rule_id} not found")
    return web.Response(status=204)


def _check_key(request: web.Request) -> None:
    if request.get(PROJECT) is not None:
        raise QueryError(403, "a project-bound API key cannot read or change alert rules: they watch pipelines "
                              "across every project")


def _rule_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 2**63:
        raise QueryError(400, f"id must be a rule id (a positive integer), got {text[:64]!r}")
    return int(text)


async def _stored(request: web.Request, rule_id: int) -> dict[str, Any]:
    row = await request.app[STORE].alerts.rule(rule_id)
    if row is None:
        raise QueryError(404, f"alert rule {rule_id} not found")
    return row


async def _body_rule(request: web.Request) -> Rule:
    parse(request.query, ())
    try:
        doc = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise QueryError(400, "body: must be a JSON object describing the rule (docs/alerts.md)") from None
    try:
        return parse_rule(doc, private_webhooks=request.app[PRIVATE_WEBHOOKS])
    except RuleError as exc:
        raise QueryError(400, str(exc)) from None


def _check_signing(request: web.Request, rule: Rule, *, stored_secret: bool) -> None:
    """A webhook needs a secret to sign with: the rule's, or the server's."""
    has_secret = stored_secret if rule.keeps_secret else rule.secret is not None
    if rule.webhook and not has_secret and not request.app[SERVER_SECRET]:
        raise QueryError(400, "secret: a rule with a webhook needs a secret to sign its deliveries with "
                              "(or set XRAY_ALERT_SECRET on the server)")


def _firing(row: Any) -> dict[str, Any]:
    detail = row["detail"]
    return {"id": row["id"], "rule_id": row["rule_id"], "rule": row["rule"], "state": row["state"],
            "firing_id": row["firing_id"], "at": row["at"], "value": row["value"], "pipeline": detail["pipeline"],
            "step": detail["step"], "what": detail.get("what"), "reason": detail.get("reason"),
            "delivery": None if row["attempts"] is None else {
                "delivered_at": row["delivered_at"], "attempts": row["attempts"]}}
