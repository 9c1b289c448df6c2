"""Alert rules as users write them (REST body, CLI, rules file): parsed and checked, pure.

A rule watches one pipeline (a run name), or one step of it:

- ``threshold``: a figure over a trailing window crosses a threshold (``drop_rate above 0.9 over 15m``);
- ``change``: the change detector (GET /pipelines/{name}/changes) flags a significant change.

Every mistake is a ``RuleError`` naming the field, so the API answers a 400 that says what to fix.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

KINDS = ("threshold", "change")
# What a threshold rule can watch; (needs a step, needs a reason).
METRICS = {
    "drop_rate": (True, False),  # mean of the step's drop rates, one per step row with both counts
    "reason_share": (True, True),  # the reason's count over all rejections counted by the step
    "failure_rate": (False, False),  # failed / finished runs; with a step: failed / all step rows
    "cost": (False, False),  # mean cost per run (USD); with a step: per step row
    "duration_p95": (False, False),  # 95th percentile duration (ms) of finished runs, or of the step
}
COMPARISONS = ("above", "below")
MAX_TEXT = 512
_DURATION = re.compile(r"^\s*(\d{1,7})\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MIN_WINDOW, _MAX_WINDOW = 10, 90 * 86400
_FIELDS = {"name", "kind", "pipeline", "step", "metric", "reason", "comparison", "threshold", "window", "baseline",
           "min_samples", "webhook", "secret", "enabled"}
_KEEP = object()  # a secret not given (PUT): keep the stored one


class RuleError(ValueError):
    """A rule that cannot be used; ``field`` names what to fix."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class Rule:
    """A checked rule. ``spec`` holds the kind's own settings, stored as JSON beside the columns."""

    name: str
    kind: str
    pipeline: str
    step: str | None
    spec: dict[str, Any]
    webhook: str | None = None
    secret: Any = field(default=_KEEP, repr=False)  # str, None (none), or _KEEP (not given: keep stored)
    enabled: bool = True

    @property
    def keeps_secret(self) -> bool:
        return self.secret is _KEEP


def parse_rule(doc: Any, *, private_webhooks: bool = False) -> Rule:
    """The rule ``doc`` (a JSON object) describes; RuleError for the first field that is wrong.

    A webhook at a literal loopback, private or link-local address is refused unless ``private_webhooks``
    (XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS): the server would POST inside its own network on a rule's say-so.
    """
    if not isinstance(doc, dict):
        raise RuleError("body", "a rule is a JSON object, e.g. {\"name\": ..., \"kind\": \"threshold\", ...}")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise RuleError(unknown[0], f"unknown field; a rule takes: {', '.join(sorted(_FIELDS))}")
    kind = _choice(doc, "kind", KINDS, "threshold")
    step = _text(doc, "step", required=False)
    spec = _threshold_spec(doc, step) if kind == "threshold" else _change_spec(doc)
    webhook = _webhook(doc.get("webhook"), private_webhooks)
    secret = doc["secret"] if "secret" in doc else _KEEP
    if secret is not _KEEP and secret is not None and (not isinstance(secret, str) or not 8 <= len(secret) <= 1024):
        raise RuleError("secret", "must be a string of 8 to 1024 characters, or null for none")
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError("enabled", "must be true or false")
    return Rule(_text(doc, "name"), kind, _text(doc, "pipeline"), step, spec, webhook, secret, enabled)


def _threshold_spec(doc: dict[str, Any], step: str | None) -> dict[str, Any]:
    for name in ("baseline",):
        if name in doc:
            raise RuleError(name, "is for change rules; a threshold rule takes a window")
    metric = _choice(doc, "metric", tuple(METRICS))
    needs_step, needs_reason = METRICS[metric]
    if needs_step and step is None:
        raise RuleError("step", f"{metric} is a step's figure: name the step")
    reason = _text(doc, "reason", required=needs_reason)
    if reason is not None and not needs_reason:
        raise RuleError("reason", "is only for metric reason_share")
    threshold = doc.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold != threshold \
            or abs(threshold) == float("inf"):
        raise RuleError("threshold", "is required: a finite number (a rate is 0 to 1, cost in USD, duration in ms)")
    return {"metric": metric, "reason": reason, "comparison": _choice(doc, "comparison", COMPARISONS, "above"),
            "threshold": float(threshold), "window": duration(doc, "window", "15m"),
            "min_samples": _count(doc, "min_samples", 1)}


def _change_spec(doc: dict[str, Any]) -> dict[str, Any]:
    for name in ("metric", "reason", "comparison", "threshold", "min_samples"):
        if name in doc:
            raise RuleError(name, "is for threshold rules; a change rule fires on any significant change")
    window, baseline = duration(doc, "window", "24h"), duration(doc, "baseline", "7d")
    return {"window": window, "baseline": baseline}


def duration(doc: dict[str, Any], name: str, default: str) -> int:
    """Seconds from ``30s``, ``15m``, ``24h`` or ``7d`` (10 seconds to 90 days)."""
    text = doc.get(name, default)
    match = _DURATION.match(text) if isinstance(text, str) else None
    seconds = int(match.group(1)) * _SECONDS[match.group(2)] if match else 0
    if not _MIN_WINDOW <= seconds <= _MAX_WINDOW:
        raise RuleError(name, f"must look like 30s, 15m, 24h or 7d (10 seconds to 90 days), got {text!r}")
    return seconds


def show_duration(seconds: int) -> str:
    """The shortest ``15m``-style spelling of a whole number of seconds."""
    for unit in ("d", "h", "m"):
        if seconds % _SECONDS[unit] == 0:
            return f"{seconds // _SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _text(doc: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise RuleError(name, "is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT or "\x00" in value:
        raise RuleError(name, f"must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def _choice(doc: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = doc.get(name, default)
    if value not in allowed:
        raise RuleError(name, f"must be one of {', '.join(allowed)}, got {value!r}"[:300])
    return value


def _count(doc: dict[str, Any], name: str, default: int) -> int:
    value = doc.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise RuleError(name, "must be an integer from 1 to 1000000")
    return value


def _webhook(url: Any, private_webhooks: bool) -> str | None:
    if url is None:
        return None
    try:
        parts = urlsplit(url) if isinstance(url, str) and len(url) <= 2048 else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:  # a port that is not a number, or out of range
        parts, port_ok = None, False
    if parts is None or not port_ok or parts.scheme not in ("http", "https") or not parts.hostname:
        raise RuleError("webhook", "must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise RuleError("webhook", "must not carry a user or password (user:pass@): answers show a rule's webhook "
                                   "host to every key that can read rules. Deliveries are signed with the rule's "
                                   "`secret`; put any other credential in the receiver's path instead")
    refused = private_address(parts.hostname)
    if refused is not None and not private_webhooks:
        raise RuleError("webhook", f"{parts.hostname} is {refused}, not a public one: the server refuses to "
                                   "POST inside its own network unless XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS=1 is set")
    return url


def private_address(host: str) -> str | None:
    """What kind of non-public address a literal IP ``host`` is (``loopback``, ``link-local``, ``private``…);
    None for a public address or a host name (names are checked at connect time, alerts/delivery.py)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return None if address.is_global else address_kind(address)


def address_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """A word for why ``address`` is not public, for error messages."""
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    return "not a globally routable address"


def show_webhook(url: str | None) -> str | None:
    """The webhook as answers show it: ``scheme://host[:port]/…``. The rest (path, query) is often the
    credential itself (Slack and Teams tokens, ``?token=``), so it is never shown nor logged."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/…"


def show_rule(row: Any) -> dict[str, Any]:
    """A stored rule as the API shows it: its definition, state and last figure; never its secret, and of
    its webhook only where it goes (show_webhook)."""
    spec = dict(row["spec"])
    for name in ("window", "baseline"):
        if name in spec:
            spec[name] = show_duration(spec[name])
    if spec.get("reason") is None:
        spec.pop("reason", None)
    return {"id": row["id"], "name": row["name"], "kind": row["kind"], "pipeline": row["pipeline"],
            "step": row["step"], **spec, "webhook": show_webhook(row["webhook"]),
            "has_webhook": row["webhook"] is not None, "has_secret": row["has_secret"],
            "enabled": row["enabled"], "state": row["state"], "value": row["value"], "note": row["note"],
            "evaluated_at": row["evaluated_at"], "created_at": row["created_at"], "updated_at": row["updated_at"]}
