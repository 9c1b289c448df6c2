"""What an evaluation decides, pure: a rule's figure from the window's aggregates, the state it leads
to, and the webhook body of a firing or a resolution.

States: ``unknown`` (never decided, or the window held too little to decide), ``ok``, ``firing``.
A rule fires when its condition holds from ``unknown`` or ``ok``, and resolves when it is known not to
hold. A window with too little data decides nothing: a firing rule stays firing (its note says why),
as an empty window is no evidence that the problem went away.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from .rules import show_duration


@dataclass(frozen=True)
class Verdict:
    """One evaluation's outcome: the rule's figure (None: undecided, ``note`` says why) and whether
    the condition holds (None: undecided)."""
    value: float | None
    holds: bool | None
    note: str | None = None
    detail: dict[str, Any] | None = None  # what moved, for a change rule


class Figures:
    """One read of a window (store/alerts.py WINDOW_FIGURES): the figures per step, and of the runs as a
    whole (step None); ``sample`` is (runs read, runs in the window) when the window held more runs than
    an evaluation reads, else None."""

    _NONE = {"n": 0, "failed": 0, "finished": 0, "drop_rate": None, "cost": None, "duration_p95": None,
             "rejected_n": 0.0, "reason_n": "{}"}

    def __init__(self, rows: list[Mapping[str, Any]]) -> None:
        self._rows = {row["step"]: row for row in rows}
        whole = self._rows.get(None, {"sampled": 0, "population": 0})
        self.sample = (whole["sampled"], whole["population"]) if whole["population"] > whole["sampled"] else None

    def of(self, step: str | None, reason: str | None) -> dict[str, Any]:
        """What threshold_verdict reads for a rule on ``step`` (None: the runs), ``reason`` for reason_share."""
        row = self._rows.get(step, self._NONE)
        figures = {key: row[key] for key in self._NONE}
        figures["reason_n"] = json.loads(row["reason_n"]).get(reason, 0.0) if reason is not None else 0.0
        return figures


def threshold_verdict(spec: Mapping[str, Any], step: str | None, figures: Mapping[str, Any],
                      *, sample: tuple[int, int] | None = None) -> Verdict:
    """The threshold rule's verdict from store/alerts.py's window figures; read from ``sample`` (runs read,
    runs in the window) when the window held more than an evaluation reads, which its notes say. Under a
    sample, min_samples is held against the window's count scaled up from the sample's (exact for runs)."""
    metric, window = spec["metric"], show_duration(spec["window"])
    what = f"step {step!r}" if step else "runs"
    read, held = sample or (1, 1)
    sampled = f" (from a uniform sample of {read:,} of the {held:,} runs)" if sample else ""
    count = round(figures["n"] * held / read)
    if count < spec["min_samples"]:
        return Verdict(None, None, f"{'about ' if sample and step else ''}{count:,} {what} in the last {window}"
                                   f"{sampled}, fewer than min_samples {spec['min_samples']}: nothing to decide on")
    value, basis = _figure(metric, figures)
    if value is None:
        return Verdict(None, None, f"no {what} in the last {window} had {basis}{sampled}")
    holds = value > spec["threshold"] if spec["comparison"] == "above" else value < spec["threshold"]
    if sample is None:
        return Verdict(value, holds)
    return Verdict(value, holds, f"estimated from {read:,} of the {held:,} runs in the last {window} "
                                 f"(a uniform sample by run id)", {"sample": {"runs": read, "of": held}})


def _figure(metric: str, f: Mapping[str, Any]) -> tuple[float | None, str]:
    if metric == "drop_rate":
        return f["drop_rate"], "both candidate counts (input and output)"
    if metric == "reason_share":
        return (f["reason_n"] / f["rejected_n"] if f["rejected_n"] else None), "rejections counted"
    if metric == "failure_rate":
        return (f["failed"] / f["finished"] if f["finished"] else None), "finished"
    if metric == "cost":
        return f["cost"], "a cost"
    return f["duration_p95"], "a duration (finished)"


def transition(state: str, holds: bool | None) -> tuple[str, str | None]:
    """(the new state, the event to record and deliver: ``firing``, ``resolved`` or None)."""
    if holds is None:
        return ("firing" if state == "firing" else "unknown"), None
    if holds:
        return "firing", (None if state == "firing" else "firing")
    return "ok", ("resolved" if state == "firing" else None)


def webhook_body(event_id: str, event: str, rule: Mapping[str, Any], verdict: Verdict, at: datetime,
                 *, firing_id: str | None, base_url: str) -> dict[str, Any]:
    """The JSON a webhook receives; ``id`` is stable (stored with the firing): deduplicate by it."""
    spec = rule["spec"]
    body: dict[str, Any] = {
        "id": event_id, "rule": {"id": rule["id"], "name": rule["name"], "kind": rule["kind"]}, "state": event,
        "pipeline": rule["pipeline"], "step": rule["step"], "at": at, "value": verdict.value,
        "window": show_duration(spec["window"]),
    }
    if rule["kind"] == "threshold":
        body |= {"what": spec["metric"], "reason": spec.get("reason"), "comparison": spec["comparison"],
                 "threshold": spec["threshold"], "sample": (verdict.detail or {}).get("sample")}
    else:
        body |= {"baseline": show_duration(spec["baseline"]), **(verdict.detail or {})}
    if firing_id is not None:
        body["firing_id"] = firing_id
    body["links"] = links(rule, at, base_url)
    return body


def links(rule: Mapping[str, Any], at: datetime, base_url: str) -> dict[str, str]:
    """Where to look: the alert list, the pipeline, and the step's rows in the window."""
    since = datetime.fromtimestamp(at.timestamp() - rule["spec"]["window"], at.tzinfo).isoformat()
    base = base_url.rstrip("/")
    found = {"alerts": f"{base}/alerts", "pipeline": f"{base}/pipelines/{quote(rule['pipeline'], safe='')}?"
             + urlencode({"since": since})}
    if rule["step"] is not None:
        found["steps"] = f"{base}/steps?" + urlencode({"run_name": rule["pipeline"], "name": rule["step"],
                                                       "since": since, "sort": "-drop_rate"})
    return found
