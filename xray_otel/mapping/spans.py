"""Map decoded OTLP spans to run and step rows. Pure: plain data in, plain data out.

One run per trace; every span becomes a step row (the run span too, so nothing a
client sent is lost; queries leave the run span out of the step list). Each span
also contributes a candidate run row; the best one wins, by the same rule here
(within a request) and in SQL (across requests), so the stored result does not
depend on the order or batching in which spans arrive:

    higher source wins (2 = xray.kind=run span, 1 = root span, 0 = placeholder
    from a step); on a tie the earlier (started_at, span_id) wins.

Spans from other instrumentation (OpenInference, OpenLLMetry, GenAI semantic
conventions) are read by semconv.py into the same fields; ``xray.*`` wins where both
say something.

A span that cannot be stored (bad id, no timestamps) is rejected and counted; the
rest of the request is kept.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable, Iterator, Optional

from .. import conventions as c
from ..pricing import DEFAULT as PRICES
from . import outcomes, semconv
from .rows import (COST_EXPLICIT, COST_NONE, COST_PRICE_TABLE, SOURCE_ROOT, SOURCE_RUN_SPAN, Batch, OutcomeRow,
                   RunRow, StepRow, project_run_id)
from .semconv import as_count, as_usd
from .shapes import ExportRequest
from .values import MAX_NAME, attributes_to_dict, cap_name, clean_text, json_column, split_attributes, to_json

log = logging.getLogger(__name__)

_MAX_INT32 = 2**31 - 1
_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
# Step types that are calls, not containers: a root span of one of these is a step of its run too.
CALL_TYPES = frozenset({"llm", "embedding", "retrieval", "rank", "tool"})
SELF_STEP = "+step"  # runs.span_id of a run whose root span is also its step: matches no step row
MAX_ERROR_CHARS = 1000
_TRACEBACK = "Traceback (most recent call last)"
# Span.flags: the parent is known to be in another process (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | _IS_REMOTE).
# Such a span is where a project's part of a trace starts: its run span, as the root is the trace's.
_REMOTE_PARENT = 0x300
_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")

MAX_VALUE_CHARS = 1024 * 1024  # per string attribute value; XRAY_MAX_VALUE_CHARS
PART_SPANS = 128  # map_in_parts: ~2 ms of mapping between pauses

# Attributes that land in their own column; everything else stays in steps.attributes.
# Run attributes map to a column only on a run span; on any other span they are kept.
_MAPPED_RUN = frozenset({c.RUN_NAME, c.RUN_INPUTS, c.RUN_OUTPUTS, c.RUN_TAGS})
_MAPPED_STEP = frozenset({
    c.KIND, c.STEP_TYPE, c.STEP_INPUTS, c.STEP_OUTPUTS, c.STEP_METADATA, c.STEP_REASONING, c.STEP_COST,
    c.STEP_COST_SOURCE, c.STEP_INPUT_COUNT, c.STEP_OUTPUT_COUNT, c.STEP_REJECTIONS, c.STEP_DECISIONS,
}) | outcomes.KEYS  # outcomes: a table of their own (step_outcomes), never in steps.attributes
_MAPPED = _MAPPED_RUN | _MAPPED_STEP


class SpanError(ValueError):
    """A span that cannot be stored; the message tells the sender why."""


def map_request(request: ExportRequest, max_value_chars: int = MAX_VALUE_CHARS, project: str | None = None,
                admit: Admit | None = None) -> Batch:
    """Map an ExportTraceServiceRequest (protobuf, or the OTLP/JSON decoder's structs of the same shape) to a
    Batch.

    String attribute values longer than ``max_value_chars`` are cut (with the truncation marker) and
    counted in ``Batch.truncated`` rather than failing the span. ``project``: the spans were written with
    a key bound to it, and make that project's runs (rows.project_run_id). ``admit``: the caller's rule
    for a resource's ``service.name``, a reason to reject its spans or None (ingest's project rule).
    """
    batch = Batch()
    for _ in map_in_parts(request, batch, max_value_chars, project, admit):
        pass
    return batch


# A rule on a resource's service.name: None to map its spans, else why they are rejected.
Admit = Callable[[Optional[str]], Optional[str]]


def map_in_parts(request: ExportRequest, batch: Batch, max_value_chars: int = MAX_VALUE_CHARS,
                 project: str | None = None, admit: Admit | None = None, part: int = PART_SPANS) -> Iterator[None]:
    """map_request into ``batch``, pausing (a bare yield) after every ``part`` spans, so that a caller on an
    event loop lets other work run between parts: a 100,000-span request maps for over a second."""
    mapped = 0
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        context = _ResourceContext(resource, max_value_chars, project)
        refusal = admit(context.service) if admit is not None else None
        if refusal is not None:
            for scope_spans in resource_spans.scope_spans:
                for _ in scope_spans.spans:
                    batch.reject(refusal)
            continue
        batch.services_cut += context.service_cut
        for scope_spans in resource_spans.scope_spans:
            scope = _ScopeContext(_scope_label(scope_spans.scope), context)
            for span in scope_spans.spans:
                _map_one(batch, span, scope)
                mapped += 1
                if mapped % part == 0:
                    yield


class _ResourceContext:
    """What every span of one resource shares, encoded once."""

    __slots__ = ("service", "service_cut", "project", "resource_json", "tags", "max_value_chars", "_run_ids")

    def __init__(self, resource: dict[str, Any], max_value_chars: int, project: str | None = None) -> None:
        self.max_value_chars = max_value_chars
        self.project = project
        service = resource.get("service.name")
        service = clean_text(str(service)) if service is not None else None
        # Indexed (runs.service): cut like a name, with the marker, so no index entry outgrows a page.
        self.service_cut = int(service is not None and len(service) > MAX_NAME)
        self.service = cap_name(service) if self.service_cut else service
        self.resource_json = to_json(resource)
        self.tags = semconv.resource_tags(resource)
        self._run_ids: dict[bytes, tuple[uuid.UUID, uuid.UUID | None]] = {}

    def run_id(self, trace_id: bytes) -> tuple[uuid.UUID, uuid.UUID | None]:
        """(run id, trace id when they differ) of a trace id, built once per trace: a trace's spans mostly
        travel together. With a project-bound key the run id is the project's own (project_run_id)."""
        ids = self._run_ids.get(trace_id)
        if ids is None:
            trace = _trace_id(trace_id)
            ids = (trace, None) if self.project is None else (project_run_id(self.project, trace), trace)
            self._run_ids[trace_id] = ids
        return ids


class _ScopeContext:
    """What every span of one instrumentation scope shares: its label, and the otel column of plain spans."""

    __slots__ = ("label", "resource", "_otel")

    def __init__(self, label: str, resource: _ResourceContext) -> None:
        self.label, self.resource = label, resource
        self._otel: dict[int, str] = {}

    def otel_json(self, span: Any) -> str:
        """steps.otel. Without trace state, events or links (most spans) it depends on the span kind alone."""
        if span.trace_state or span.events or span.links:
            return to_json(_otel_fields(span, self.label))
        text = self._otel.get(span.kind)
        if text is None:
            text = self._otel[span.kind] = to_json(_otel_fields(span, self.label))
        return text


def _map_one(batch: Batch, span: Any, scope: _ScopeContext) -> None:
    try:
        run, step, truncated, outcome = map_span(span, scope)
    except SpanError as exc:
        batch.reject(str(exc))
        return
    except Exception:  # a bug here must cost one span, not the client's whole request
        log.exception("span mapping failed")
        batch.reject("span could not be mapped (server error, logged)")
        return
    context = scope.resource
    if step is None:  # a continuation span: more outcomes of its parent step, and no step of its own
        batch.continuations += 1
        batch.add_placeholder_run(outcome.run_id, _span_id(span.span_id, "span_id"), context.service,  # type: ignore[union-attr]
                                  nanos_to_micros(span.start_time_unix_nano or span.end_time_unix_nano),
                                  context.project, context.run_id(span.trace_id)[1])
    elif run is None:
        batch.add_placeholder(step, context.project, context.run_id(span.trace_id)[1])
    else:
        batch.add_run(run)
    if step is not None:
        batch.steps.append(step)
    if outcome is not None:
        batch.add_outcomes(outcome, span.name)
    batch.truncated += truncated


def map_span(span: Any, scope: _ScopeContext) -> tuple[RunRow | None, StepRow | None, int, OutcomeRow | None]:
    """Map one span to its run row (None for a step: Batch.add_placeholder makes its run's), its step row
    (None for a continuation span, ``xray.kind=outcomes``), how many attribute values were truncated, and
    the part of its step's candidate outcomes it carries (None when it carries none)."""
    context = scope.resource
    run_id, trace = context.run_id(span.trace_id)
    span_id = _span_id(span.span_id, "span_id")
    # All zeros is the invalid-id sentinel some exporters send for a root span: no parent, as in the collector.
    parent = _span_id(span.parent_span_id, "parent_span_id") if any(span.parent_span_id) else None
    started, completed = _times(span.start_time_unix_nano, span.end_time_unix_nano)
    # Outcome arrays apart, whole: they are no attribute value to cap, and outcomes.py checks them its own way.
    attrs, sent, truncated = split_attributes(span.attributes, context.max_value_chars, outcomes.KEYS)
    kind = attrs.get(c.KIND)
    if kind == c.KIND_OUTCOMES:
        if parent is None:
            raise SpanError(f"a {c.KIND}={c.KIND_OUTCOMES} span carries more outcomes of its parent step, but has "
                            "no parent_span_id")
        return None, None, truncated, outcomes.read_values(sent, run_id, parent, context.max_value_chars)._replace(
            service=context.service)
    outcome = outcomes.read_values(sent, run_id, span_id, context.max_value_chars)._replace(
        service=context.service) if sent else None
    found = semconv.read(attrs, span.kind)  # OpenInference / OpenLLMetry / GenAI; xray.* below wins
    error = _error_text(span)
    is_run = kind == c.KIND_RUN or (kind != c.KIND_STEP and (parent is None or (
        context.project is not None and span.flags & _REMOTE_PARENT == _REMOTE_PARENT)))
    step = _step_row(run_id, span, span_id, parent, attrs, found, kind, started, completed, error, scope, is_run)
    if not is_run:
        return None, step, truncated, outcome
    # A root that is itself a call (an LLM call with no span of the app's own around it) is its run and
    # also its run's one step: the run row then names no step row as its own, so the step counts.
    run_span = span_id + SELF_STEP if kind != c.KIND_RUN and step.type in CALL_TYPES else span_id
    run = _run_row(run_id, trace, span, run_span, attrs, found, kind, started, completed, error, context)
    return run, step, truncated, outcome


def _run_row(run_id, trace, span, span_id, attrs, found, kind, started, completed, error, context) -> RunRow:
    status = c.STATUS_FAILED if error is not None else (c.STATUS_COMPLETED if completed else c.STATUS_RUNNING)
    name = attrs.get(c.RUN_NAME) or found.run_name or semconv.default_run_name(span.name, span.kind, attrs,
                                                                                context.service)
    return RunRow(
        run_id,
        SOURCE_RUN_SPAN if kind == c.KIND_RUN else SOURCE_ROOT,
        span_id,
        cap_name(str(name)),
        status,
        context.service,
        to_json({**context.tags, **_tags(attrs)}),
        _either(json_column(attrs.get(c.RUN_INPUTS)), found.inputs),
        _either(json_column(attrs.get(c.RUN_OUTPUTS)), found.outputs),
        error,
        _either(started, completed),
        completed,
        context.project,
        trace,
    )


def _step_row(run_id, span, span_id, parent, attrs, found, kind, started, completed, error, scope, is_run) -> StepRow:
    cost, cost_source = _cost(attrs, found)
    return StepRow(
        run_id,
        span_id,
        parent,
        cap_name(span.name) or "(unnamed)",
        "run" if kind == c.KIND_RUN else _xray_step_type(attrs) or found.type or c.DEFAULT_STEP_TYPE,
        c.STATUS_FAILED if error is not None else c.STATUS_COMPLETED,
        _either(json_column(attrs.get(c.STEP_INPUTS)), found.inputs),
        _either(json_column(attrs.get(c.STEP_OUTPUTS)), found.outputs),
        json_column(attrs.get(c.STEP_METADATA)),
        _str_or_none(attrs.get(c.STEP_REASONING)),
        cost,
        found.model,
        found.input_tokens,
        found.output_tokens,
        _either(as_count(attrs.get(c.STEP_INPUT_COUNT), _MAX_INT32), found.input_count),
        _either(as_count(attrs.get(c.STEP_OUTPUT_COUNT), _MAX_INT32), found.output_count),
        _either(json_column(attrs.get(c.STEP_REJECTIONS)), found.rejections),
        _either(json_column(attrs.get(c.STEP_DECISIONS)), found.decisions),
        started,
        completed,
        error,
        scope.resource.service,
        _unmapped_json(attrs, _MAPPED if is_run else _MAPPED_STEP, found.derived),
        scope.otel_json(span),
        scope.resource.resource_json,
        cost_source,
    )


def _unmapped_json(attrs: dict[str, Any], mapped: frozenset[str], derived: str | None = None) -> str:
    """steps.attributes: what no column holds, and ``xray.derived`` when a heuristic rule filled a column
    (semconv.Found.derived). Often nothing is left, which a subset test tells at C speed."""
    if attrs.keys() <= mapped and derived is None:
        return "{}"
    unmapped = {k: v for k, v in attrs.items() if k not in mapped}
    counts = unmapped.get(c.STEP_SAMPLE_COUNTS)
    if isinstance(counts, str):  # the sample's counts as an object, for the answers to show as they are
        unmapped[c.STEP_SAMPLE_COUNTS] = _json_or_text(counts)
    if derived is not None:
        unmapped[c.DERIVED] = derived
    return to_json(unmapped)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _either(xray: Any, other: Any) -> Any:
    """The xray.* value when given, else the other conventions' one."""
    return xray if xray is not None else other


def step_type(attrs: dict[str, Any], span_kind: int = 0) -> str:
    """``xray.step.type`` lower-cased, else what another convention says (semconv), else "logic"."""
    return _xray_step_type(attrs) or semconv.read(attrs, span_kind).type or c.DEFAULT_STEP_TYPE


def _xray_step_type(attrs: dict[str, Any]) -> str | None:
    value = attrs.get(c.STEP_TYPE)
    if isinstance(value, str) and value.strip():
        return cap_name(value.strip().lower()) or None
    return None


def _trace_id(raw: bytes) -> uuid.UUID:
    if len(raw) != 16 or not any(raw):
        raise SpanError(f"invalid trace_id: expected 16 non-zero bytes, got {len(raw)} bytes")
    return uuid.UUID(bytes=raw)


def _span_id(raw: bytes, name: str) -> str:
    if len(raw) != 8 or not any(raw):
        raise SpanError(f"invalid {name}: expected 8 non-zero bytes, got {len(raw)} bytes")
    return raw.hex()


def nanos_to_micros(nanos: int) -> int | None:
    """Unix nanoseconds to the rows' microseconds (an int: asyncpg encodes one faster than a datetime,
    which also costs time to build); 0 means unset."""
    return nanos // 1000 if nanos else None


def _times(start: int, end: int) -> tuple[int | None, int | None]:
    if not start and not end:
        raise SpanError("span has neither start_time_unix_nano nor end_time_unix_nano")
    if end and start and end < start:
        raise SpanError("span ends before it starts (end_time_unix_nano < start_time_unix_nano)")
    return nanos_to_micros(start), nanos_to_micros(end)


def _error_text(span: Any) -> str | None:
    """The error of a failed span, short: the status message without a traceback (some instrumentations
    append one; the exception event keeps it, in steps.otel), else the exception event's type and
    message; None when not failed."""
    if span.status.code != _STATUS_ERROR:
        return None
    message = clean_text(span.status.message) if span.status.message else ""
    head = message.split(_TRACEBACK, 1)[0].strip()
    if message and head == message:
        return _capped_error(message)
    event = _exception_event(span)
    if event:
        return _capped_error(event)
    if head:
        return _capped_error(head)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return _capped_error(lines[-1]) if lines else "error (no message)"


def _exception_event(span: Any) -> str | None:
    for event in span.events:
        if event.name == "exception":
            ev = attributes_to_dict(event.attributes)
            text = ": ".join(str(ev[k]) for k in ("exception.type", "exception.message") if ev.get(k))
            if text:
                return clean_text(text).split(_TRACEBACK, 1)[0].strip() or None
    return None


def _capped_error(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + c.TRUNCATION_MARKER


def _tags(attrs: dict[str, Any]) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    raw = attrs.get(c.RUN_TAGS)
    if isinstance(raw, dict):  # sent as an OTLP map (kvlist)
        tags.update(raw)
    elif isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            tags.update(parsed)
    for key, value in attrs.items():
        if key.startswith(c.TAG_PREFIX):
            tags[key[len(c.TAG_PREFIX):]] = value
    return tags


def _otel_fields(span: Any, scope: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": _SPAN_KINDS[span.kind] if 0 <= span.kind < len(_SPAN_KINDS) else span.kind}
    if scope:
        out["scope"] = scope
    if span.trace_state:
        out["trace_state"] = span.trace_state
    if span.events:
        out["events"] = [
            {"name": e.name, "time": e.time_unix_nano, "attributes": attributes_to_dict(e.attributes)}
            for e in span.events
        ]
    if span.links:
        out["links"] = [
            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(), "attributes": attributes_to_dict(link.attributes)}
            for link in span.links
        ]
    return out


def _scope_label(scope: Any) -> str:
    return f"{scope.name}@{scope.version}" if scope.version else scope.name


def _cost(attrs: dict[str, Any], found: semconv.Found) -> tuple[float, str]:
    """(USD, cost_source): xray.step.cost, else another convention's explicit cost, else priced from
    model + tokens, else 0. An SDK cost says itself whether the SDK priced it (xray.step.cost_source)."""
    explicit = as_usd(attrs.get(c.STEP_COST))
    if explicit is not None:
        source = attrs.get(c.STEP_COST_SOURCE)
        return explicit, source if source in (COST_EXPLICIT, COST_PRICE_TABLE) else COST_EXPLICIT
    if found.cost is not None:
        return found.cost, COST_EXPLICIT
    if found.input_tokens is not None or found.output_tokens is not None:
        priced = PRICES.cost_of(found.model, found.input_tokens, found.output_tokens)
        if priced is not None:
            return min(priced, semconv.MAX_USD), COST_PRICE_TABLE
    return 0.0, COST_NONE


def _str_or_none(value: Any) -> str | None:
    return None if value is None else clean_text(value if isinstance(value, str) else str(value))
