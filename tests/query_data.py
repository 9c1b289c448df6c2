"""Runs for the cross-run query tests, sent over OTLP: the phone-case walkthrough and a few more."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from helpers import Array, export_request, make_span, new_ids, post_otlp

MS = 1_000_000


@dataclass
class Sent:
    service: str
    runs: dict[str, str] = field(default_factory=dict)  # label → run id


def decisions(kept: list[str], dropped: dict[str, str], scores: dict[str, float] | None = None) -> list[dict]:
    scores = scores or {}
    out = [{"id": c, "accepted": True, "reason": None, "score": scores.get(c), "rank": None} for c in kept]
    out += [{"id": c, "accepted": False, "reason": r, "score": scores.get(c), "rank": None} for c, r in dropped.items()]
    return out


def accessory_run(url: str, service: str, *, strict: bool, t0: int, tags: dict | None = None,
                  name: str = "find_accessory") -> str:
    """Twenty candidates → filter by price → rank. The strict filter drops the phone case (19 of 20);
    the lenient one keeps it and the ranker picks it."""
    trace_id, base = new_ids()
    others = [f"item-{i}" for i in range(18)]
    if strict:
        kept, dropped = ["laptop-stand"], {"phone-case": "price_too_high", **{o: "price_too_high" for o in others}}
        picked = "laptop-stand"
        rank = decisions(["laptop-stand"], {}, {"laptop-stand": 0.41})
    else:
        kept = ["phone-case", "laptop-stand"] + others[:3]
        dropped = {o: "price_too_high" for o in others[3:]}
        picked = "phone-case"
        rank = decisions(["phone-case"], {"laptop-stand": "low_score", **{o: "low_score" for o in others[:3]}},
                         {"phone-case": 0.93, "laptop-stand": 0.41})
    run_tags = {"xray.tag.product": "P-phone", **{f"xray.tag.{k}": v for k, v in (tags or {}).items()}}
    spans = [
        make_span(trace_id, base, name, attrs={"xray.kind": "run", **run_tags,
                                               "xray.run.outputs": {"selected": picked}},
                  start=t0, duration_ns=40 * MS),
        make_span(trace_id, base + 1, "retrieve", parent=base, start=t0 + MS,
                  attrs={"xray.kind": "step", "xray.step.type": "retrieval", "xray.step.output_count": 20}),
        make_span(trace_id, base + 2, "filter_price", parent=base, start=t0 + 2 * MS, duration_ns=3 * MS,
                  attrs={"xray.kind": "step", "xray.step.type": "filter", "xray.step.input_count": 20,
                         "xray.step.output_count": len(kept),
                         "xray.step.rejections": {"price_too_high": len(dropped)},
                         "xray.step.decisions": decisions(kept, dropped),
                         "xray.step.reasoning": "max price 15" if strict else "max price 40"}),
        make_span(trace_id, base + 3, "rank", parent=base, start=t0 + 6 * MS, duration_ns=20 * MS,
                  attrs={"xray.kind": "step", "xray.step.type": "rank", "xray.step.input_count": len(kept),
                         "xray.step.output_count": 1, "xray.step.cost": 0.004 if strict else 0.02,
                         "xray.step.rejections": {"low_score": len(kept) - 1} if len(kept) > 1 else {},
                         "xray.step.decisions": rank, "xray.step.outputs": {"selected": picked}}),
    ]
    assert post_otlp(url, export_request(spans, service=service)).status == 200
    return str(uuid.UUID(bytes=trace_id))


def outcome_attrs(ids: list[str], kept: list[str], reason: str) -> dict:
    """A step's candidate outcomes as the SDK sends them (docs/conventions.md): every id, 0 kept, 1 ``reason``."""
    return {"xray.step.outcomes.ids": Array(ids), "xray.step.outcomes.codes": Array([0 if i in kept else 1 for i in ids]),
            "xray.step.outcomes.reasons": Array([reason]), "xray.step.outcomes.total": len(ids)}


def listing_run(url: str, service: str, *, t0: int, named: bool = False, bullets_kept: int = 5,
                name: str = "listing_optimization") -> str:
    """A listing-optimization run as the SDK records it: 6 titles generated -> 1 chosen and 8 bullets -> 5
    kept (``bullets_kept``), the two streams interleaved in time; ``named``: each step sent with its
    ``xray.step.funnel`` ("titles", "bullets"). The run id."""
    trace_id, base = new_ids()
    titles, bullets = [f"title-{i}" for i in range(6)], [f"bullet-{i}" for i in range(8)]

    def step(n: int, step_name: str, funnel: str, attrs: dict) -> object:
        extra = {"xray.step.funnel": funnel} if named else {}
        return make_span(trace_id, base + n, step_name, parent=base, start=t0 + n * MS, duration_ns=MS // 2,
                         attrs={"xray.kind": "step", **attrs, **extra})

    spans = [
        make_span(trace_id, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=10 * MS),
        step(1, "generate_titles", "titles", {"xray.step.type": "llm", "xray.step.output_count": 6}),
        step(2, "generate_bullets", "bullets", {"xray.step.type": "llm", "xray.step.output_count": 8}),
        step(3, "choose_title", "titles", {
            "xray.step.type": "rank", "xray.step.input_count": 6, "xray.step.output_count": 1,
            "xray.step.rejections": {"below_top_k": 5}, **outcome_attrs(titles, titles[2:3], "below_top_k")}),
        step(4, "filter_bullets", "bullets", {
            "xray.step.type": "filter", "xray.step.input_count": 8, "xray.step.output_count": bullets_kept,
            "xray.step.rejections": {"too_long": 8 - bullets_kept},
            **outcome_attrs(bullets, bullets[:bullets_kept], "too_long")}),
    ]
    assert post_otlp(url, export_request(spans, service=service)).status == 200
    return str(uuid.UUID(bytes=trace_id))


def failed_run(url: str, service: str, t0: int, name: str = "summarise") -> str:
    trace_id, base = new_ids()
    spans = [
        make_span(trace_id, base, name, attrs={"xray.kind": "run", "xray.tag.env": "prod"}, start=t0,
                  duration_ns=90 * MS, error="upstream timeout"),
        make_span(trace_id, base + 1, "call_llm", parent=base, start=t0 + MS, duration_ns=80 * MS,
                  attrs={"xray.kind": "step", "xray.step.type": "llm", "xray.step.cost": 0.05},
                  error="timeout"),
    ]
    assert post_otlp(url, export_request(spans, service=service)).status == 200
    return str(uuid.UUID(bytes=trace_id))


def send_all(url: str) -> Sent:
    sent = Sent(service=f"svc-{uuid.uuid4().hex[:10]}")
    t0 = time.time_ns() - 10 * 1000 * MS
    sent.runs["good"] = accessory_run(url, sent.service, strict=False, t0=t0, tags={"env": "prod", "attempt": 1})
    sent.runs["bad"] = accessory_run(url, sent.service, strict=True, t0=t0 + 1000 * MS,
                                     tags={"env": "staging", "attempt": 2})
    sent.runs["failed"] = failed_run(url, sent.service, t0 + 2000 * MS)
    return sent


# --- pipeline health over time (issue 20): a noisy competitor-selection-like pipeline -----------------


@dataclass
class HealthRun:
    """What one run sent, so tests can add up the figures they expect without the server."""
    run_id: str
    start: datetime
    failed: bool
    steps: list[dict]  # name, input_count, output_count, rejections, cost, duration_ms


def health_runs(url: str, name: str, starts: list, rng, *, high_share: float = 0.3,
                new_reason: str | None = None, service: str = "health-svc") -> list[HealthRun]:
    """Runs of ``name`` started at ``starts`` (backdated), sent over OTLP/HTTP in batches: retrieve ->
    filter_by_price (price_too_high / price_too_low, with run-to-run beta noise around ``high_share``)
    -> filter_by_rating -> call_llm (cost, sometimes failing). ``new_reason`` adds a third reason to
    the price filter in every run, about 5% of its candidates."""
    sent, spans = [], []
    for start in starts:
        trace_id, base = new_ids()
        t0 = int(start.timestamp() * 1e9)
        n = rng.randrange(100, 400)
        high = round(n * rng.betavariate(30 * high_share, 30 * (1 - high_share)))
        low = round((n - high) * rng.betavariate(4.5, 25.5))
        extra = round(n * 0.05) if new_reason else 0
        extra = min(extra, n - high - low)
        kept = n - high - low - extra
        rating_out = round(kept * rng.betavariate(20, 20))
        failed = rng.random() < 0.05
        price_rej = {"price_too_high": high, "price_too_low": low} | ({new_reason: extra} if new_reason else {})
        steps = [
            {"name": "retrieve", "input_count": None, "output_count": n, "rejections": None, "cost": 0.0,
             "duration_ms": rng.randrange(20, 80)},
            {"name": "filter_by_price", "input_count": n, "output_count": kept, "rejections": price_rej, "cost": 0.0,
             "duration_ms": rng.randrange(1, 5)},
            {"name": "filter_by_rating", "input_count": kept, "output_count": rating_out,
             "rejections": {"rating_too_low": kept - rating_out}, "cost": 0.0, "duration_ms": rng.randrange(1, 5)},
            {"name": "call_llm", "input_count": None, "output_count": None, "rejections": None,
             "cost": round(rng.uniform(0.001, 0.003), 6), "duration_ms": rng.randrange(200, 900)},
        ]
        spans.append(make_span(trace_id, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=2000 * MS,
                               error="llm timeout" if failed else None))
        for i, step in enumerate(steps, 1):
            attrs = {"xray.kind": "step", "xray.step.type": "llm" if step["name"] == "call_llm" else "filter"}
            for key in ("input_count", "output_count", "rejections"):
                if step[key] is not None:
                    attrs[f"xray.step.{key}"] = step[key]
            if step["cost"]:
                attrs["xray.step.cost"] = step["cost"]
            spans.append(make_span(trace_id, base + i, step["name"], parent=base, start=t0 + i * 10 * MS,
                                   duration_ns=step["duration_ms"] * MS, attrs=attrs))
        sent.append(HealthRun(str(uuid.UUID(bytes=trace_id)), start, failed, steps))
        if len(spans) >= 500:
            assert post_otlp(url, export_request(spans, service=service)).status == 200
            spans = []
    if spans:
        assert post_otlp(url, export_request(spans, service=service)).status == 200
    return sent
