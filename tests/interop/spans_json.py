"""The ground truth: finished spans as plain JSON-able dicts (OpenTelemetry SDK only, so the traceloop
app, which runs in a venv of its own, writes the same shape the in-process apps return)."""

from __future__ import annotations

from typing import Any, Iterable


def span_dict(span: Any) -> dict[str, Any]:
    ctx = span.context
    status = span.status
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "kind": span.kind.name,
        "status": status.status_code.name,
        "status_description": status.description,
        "start": span.start_time,
        "end": span.end_time,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
        "events": [e.name for e in span.events],
        "resource": {k: v for k, v in span.resource.attributes.items() if isinstance(v, (str, int, float, bool))},
    }


def span_dicts(spans: Iterable[Any]) -> list[dict[str, Any]]:
    return [span_dict(s) for s in spans]


def trace_of(spans: list[dict[str, Any]]) -> str:
    """The one trace id ``spans`` share (a scenario of an app is one trace)."""
    ids = {s["trace_id"] for s in spans}
    if len(ids) != 1:
        raise AssertionError(f"expected the scenario's spans in one trace, got {len(ids)}: "
                             f"{[(s['name'], s['trace_id'][:8]) for s in spans]}")
    return ids.pop()
