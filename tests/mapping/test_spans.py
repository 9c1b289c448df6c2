"""Spans to run and step rows (xray_otel.mapping), without a server or database."""

from __future__ import annotations

import itertools
import json
import math
import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode

from xray_otel import conventions as c
from xray_otel import pricing
from xray_otel.mapping.rows import SOURCE_PLACEHOLDER, SOURCE_ROOT, SOURCE_RUN_SPAN, Batch, RunRow, StepRow
from xray_otel.mapping.spans import map_in_parts, map_request, nanos_to_micros, step_type

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
RUN_ID = uuid.UUID(bytes=TRACE)
T0 = 1_700_000_000_000_000_000  # ns
SECOND = 1_000_000_000


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def value(v: Any) -> AnyValue:
    if isinstance(v, AnyValue):
        return v
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=attrs(v)))
    return AnyValue(string_value=v)


def attrs(mapping: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in mapping.items()]


def span(n: int, parent: int | None = None, *, name: str | None = None, start: int | None = None,
         end: int | None = None, trace: bytes = TRACE, error: str | None = None, **attributes: Any) -> Span:
    """Span ``n`` (span id n), starting at T0 + n seconds, one second long; keyword args become attributes."""
    start = T0 + n * SECOND if start is None else start
    result = Span(
        trace_id=trace, span_id=sid(n), name=name if name is not None else f"span-{n}",
        start_time_unix_nano=start, end_time_unix_nano=start + SECOND if end is None else end,
        attributes=attrs({k.replace("__", "."): v for k, v in attributes.items()}),
    )
    if parent is not None:
        result.parent_span_id = sid(parent)
    if error is not None:
        result.status.code = Status.STATUS_CODE_ERROR
        result.status.message = error
    return result


def request(*spans: Span, service: str | None = "svc", scope: InstrumentationScope | None = None,
            resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    resource_attrs = dict(resource or {})
    if service is not None:
        resource_attrs["service.name"] = service
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=attrs(resource_attrs)),
        scope_spans=[ScopeSpans(scope=scope or InstrumentationScope(name="test"), spans=list(spans))],
    )])


def mapped(*spans: Span, **kwargs: Any) -> Batch:
    return map_request(request(*spans, **kwargs))


def one_step(s: Span, **kwargs: Any) -> StepRow:
    batch = mapped(s, **kwargs)
    assert batch.rejected == 0, batch.errors
    [step] = batch.steps
    return step


def the_run(batch: Batch) -> RunRow:
    [run] = batch.runs.values()
    return run


def ts(ns: int) -> int:
    """A time as the rows hold it: microseconds since the Unix epoch."""
    return ns // 1000


# --- run vs step --------------------------------------------------------------------


def test_run_span_by_kind_attribute() -> None:
    batch = mapped(span(1, name="pipeline", xray__kind="run"), span(2, parent=1))
    run = the_run(batch)
    assert run.id == RUN_ID
    assert run.source == SOURCE_RUN_SPAN
    assert run.span_id == sid(1).hex()
    assert run.name == "pipeline"
    assert run.status == c.STATUS_COMPLETED
    assert run.service == "svc"
    assert run.started_at == ts(T0 + SECOND)
    assert run.completed_at == ts(T0 + 2 * SECOND)
    assert [s.span_id for s in batch.steps] == [sid(1).hex(), sid(2).hex()]


def test_run_span_is_also_a_step_row_of_type_run() -> None:
    """Nothing is thrown away: the run span is stored as a step row too (queries leave it out)."""
    step = one_step(span(1, xray__kind="run"))
    assert step.type == "run"
    assert step.parent_span_id is None


def test_root_span_is_the_run_without_kind() -> None:
    run = the_run(mapped(span(1, name="root"), span(2, parent=1)))
    assert (run.source, run.span_id, run.name) == (SOURCE_ROOT, sid(1).hex(), "root")


def test_kind_run_span_beats_root_span() -> None:
    """An auto-instrumented HTTP root span wraps the pipeline's xray.kind=run span."""
    batch = mapped(span(1, name="POST /search"), span(2, parent=1, name="pipeline", xray__kind="run"),
                   span(3, parent=2))
    run = the_run(batch)
    assert (run.source, run.span_id, run.name) == (SOURCE_RUN_SPAN, sid(2).hex(), "pipeline")
    assert len(batch.steps) == 3


def test_nested_kind_run_span_with_parent_is_still_the_run() -> None:
    run = the_run(mapped(span(2, parent=99, name="pipeline", xray__kind="run")))
    assert run.source == SOURCE_RUN_SPAN


def test_root_span_marked_step_is_not_the_run() -> None:
    run = the_run(mapped(span(1, xray__kind="step")))
    assert run.source == SOURCE_PLACEHOLDER


def test_steps_before_their_run_give_a_running_placeholder() -> None:
    batch = mapped(span(3, parent=1), span(2, parent=1))
    run = the_run(batch)
    assert run.source == SOURCE_PLACEHOLDER
    assert run.status == c.STATUS_RUNNING
    assert run.name is None
    assert run.completed_at is None
    assert run.error is None
    assert run.tags == "{}"
    assert run.started_at == ts(T0 + 2 * SECOND)  # the earliest step seen
    assert run.service == "svc"


def test_placeholder_ignores_run_fields_on_steps() -> None:
    run = the_run(mapped(span(2, parent=1, xray__run__name="nope", xray__tag__env="prod", error="boom")))
    assert (run.source, run.name, run.tags, run.error, run.status) == (SOURCE_PLACEHOLDER, None, "{}", None, "RUNNING")


def test_run_name_attribute_overrides_span_name() -> None:
    run = the_run(mapped(span(1, name="span name", xray__kind="run", xray__run__name="My pipeline")))
    assert run.name == "My pipeline"


def test_run_inputs_outputs() -> None:
    run = the_run(mapped(span(1, xray__kind="run", xray__run__inputs='{"q": "shoes"}',
                              xray__run__outputs="not json")))
    assert json.loads(run.inputs or "") == {"q": "shoes"}
    assert json.loads(run.outputs or "") == "not json"


def test_run_without_service_name() -> None:
    run = the_run(mapped(span(1), service=None))
    assert run.service is None


def test_non_string_service_name() -> None:
    run = the_run(mapped(span(1), service=None, resource={"service.name": 42}))
    assert run.service == "42"


def test_two_traces_in_one_request_give_two_runs() -> None:
    other = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    batch = mapped(span(1), span(2, parent=1), span(1, trace=other, name="other"))
    assert set(batch.runs) == {RUN_ID, uuid.UUID(bytes=other)}
    assert batch.runs[uuid.UUID(bytes=other)].name == "other"
    assert len(batch.steps) == 3


# --- the merge rule and order independence -----------------------------------------------


def run_row(source: int, started: int, span_id: str, name: str = "x") -> RunRow:
    return RunRow(RUN_ID, source, span_id, name, c.STATUS_COMPLETED, None, "{}", None, None, None,
                  ts(started), None)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (run_row(SOURCE_RUN_SPAN, T0 + 5, "ff"), run_row(SOURCE_ROOT, T0, "00")),
        (run_row(SOURCE_ROOT, T0 + 5, "ff"), run_row(SOURCE_PLACEHOLDER, T0, "00")),
        (run_row(SOURCE_RUN_SPAN, T0 + 5, "ff"), run_row(SOURCE_PLACEHOLDER, T0, "00")),
        (run_row(SOURCE_ROOT, T0, "ff"), run_row(SOURCE_ROOT, T0 + 1000, "00")),
        (run_row(SOURCE_ROOT, T0, "0a"), run_row(SOURCE_ROOT, T0, "0b")),
        (run_row(SOURCE_PLACEHOLDER, T0, "01"), run_row(SOURCE_PLACEHOLDER, T0 + 1000, "00")),
    ],
)
def test_beats(a: RunRow, b: RunRow) -> None:
    assert a.beats(b)
    assert not b.beats(a)


def test_beats_is_irreflexive() -> None:
    row = run_row(SOURCE_ROOT, T0, "01")
    assert not row.beats(row)
    assert not row.beats(row._replace(name="other"))  # same key: the first one stays


def pipeline_spans() -> list[Span]:
    """A trace with everything that competes for the run row: an HTTP root, a run span, steps, a late step."""
    return [
        span(1, name="POST /search", start=T0, end=T0 + 10 * SECOND),
        span(2, parent=1, name="pipeline", start=T0 + 1, end=T0 + 9 * SECOND, xray__kind="run",
             xray__tag__env="prod", xray__run__inputs='{"q": 1}'),
        span(3, parent=2, start=T0 + 2, end=T0 + 3, xray__step__input_count=100, xray__step__output_count=10),
        span(4, parent=2, start=T0 + 2, end=T0 + 4),  # same start as 3: span id breaks the tie
        span(5, parent=3, start=T0 + 5, end=T0 + 6, error="boom"),
        span(6, parent=2, start=T0 + 1, end=T0 + 7, xray__kind="step"),
        span(7, parent=404, start=T0, end=T0 + 1),  # parent never received
    ]


def merge_like_sql(stored: dict[uuid.UUID, RunRow], batch: Batch) -> None:
    """UPSERT_RUNS: the incoming row replaces the stored one only if it beats it."""
    for run in batch.runs.values():
        current = stored.get(run.id)
        if current is None or run.beats(current):
            stored[run.id] = run


def ingest_in_batches(spans: list[Span], rng: random.Random) -> tuple[RunRow, set[StepRow]]:
    order = spans[:]
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, len(order)), rng.randint(0, len(order) - 1)))
    stored: dict[uuid.UUID, RunRow] = {}
    steps: dict[tuple[uuid.UUID, str], StepRow] = {}
    for lo, hi in zip([0, *cuts], [*cuts, len(order)]):
        batch = map_request(request(*order[lo:hi]))
        assert batch.rejected == 0, batch.errors
        merge_like_sql(stored, batch)
        for step in batch.steps:
            steps.setdefault((step.run_id, step.span_id), step)  # ON CONFLICT DO NOTHING
    [run] = stored.values()
    return run, set(steps.values())


def test_merge_is_order_and_batch_independent() -> None:
    spans = pipeline_spans()
    expected_run = the_run(mapped(*spans))
    expected_steps = set(mapped(*spans).steps)
    assert expected_run.span_id == sid(2).hex()
    rng = random.Random(20240611)
    for _ in range(300):
        run, steps = ingest_in_batches(spans, rng)
        assert run == expected_run
        assert steps == expected_steps


def test_merge_is_order_independent_in_every_permutation_of_one_batch() -> None:
    spans = pipeline_spans()[:6]
    expected = the_run(mapped(*spans))
    for order in itertools.permutations(spans):
        assert the_run(mapped(*order)) == expected


@pytest.mark.parametrize("keep", [[3, 4, 5], [3, 5, 7], [1, 3], [4, 3], [7], [1, 2]])
def test_merge_of_a_partial_trace_is_order_independent(keep: list[int]) -> None:
    """While the run span is missing the placeholder/root choice must not depend on arrival order either."""
    spans = [s for s in pipeline_spans() if int.from_bytes(s.span_id, "big") in keep]
    expected = the_run(mapped(*spans))
    for order in itertools.permutations(spans):
        assert the_run(mapped(*order)) == expected
    rng = random.Random(len(keep))
    for _ in range(20):
        assert ingest_in_batches(spans, rng)[0] == expected


def test_two_run_spans_in_one_trace_the_earlier_wins_in_any_order() -> None:
    spans = [span(1, name="first run", xray__kind="run"), span(2, name="second run", xray__kind="run"),
             span(3, parent=2)]
    for order in itertools.permutations(spans):
        assert the_run(mapped(*order)).name == "first run"


def test_resent_batch_gives_identical_rows() -> None:
    spans = pipeline_spans()
    first, second = mapped(*spans), mapped(*spans)
    assert first.runs == second.runs
    assert first.steps == second.steps


def test_placeholder_then_run_span_completes_the_run() -> None:
    stored: dict[uuid.UUID, RunRow] = {}
    merge_like_sql(stored, mapped(span(3, parent=2)))
    assert stored[RUN_ID].status == c.STATUS_RUNNING
    merge_like_sql(stored, mapped(span(2, xray__kind="run", name="pipeline")))
    assert (stored[RUN_ID].status, stored[RUN_ID].name) == (c.STATUS_COMPLETED, "pipeline")
    merge_like_sql(stored, mapped(span(4, parent=2)))  # a late step does not reopen it
    assert stored[RUN_ID].status == c.STATUS_COMPLETED


# --- tags -----------------------------------------------------------------------------


def tags_of(**attributes: Any) -> dict[str, Any]:
    return json.loads(the_run(mapped(span(1, xray__kind="run", **attributes))).tags)


def test_tags_from_prefix_attributes() -> None:
    run = the_run(mapped(span(1, xray__kind="run", **{"xray__tag__env": "prod", "xray__tag__team": "search",
                                                       "xray__tag__n": 3, "xray__tag__ok": True})))
    assert json.loads(run.tags) == {"env": "prod", "team": "search", "n": 3, "ok": True}


def test_tags_with_dots_in_key() -> None:
    run = the_run(mapped(Span(trace_id=TRACE, span_id=sid(1), start_time_unix_nano=T0, end_time_unix_nano=T0,
                              attributes=attrs({"xray.tag.model.version": "v2"}))))
    assert json.loads(run.tags) == {"model.version": "v2"}


def test_tags_from_json_object_merge_with_prefix_tags() -> None:
    assert tags_of(xray__run__tags='{"env": "dev", "a": [1, 2]}', xray__tag__env="prod") == {"env": "prod", "a": [1, 2]}


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"text"', "42", "", "{"])
def test_tags_json_that_is_not_an_object_gives_no_tags(raw: str) -> None:
    assert tags_of(xray__run__tags=raw) == {}


def test_tags_with_nan_and_nul_stay_storable() -> None:
    tags = tags_of(xray__run__tags='{"score": NaN, "k\\u0000": "v\\u0000"}', xray__tag__x=math.inf)
    assert tags == {"score": "NaN", "k": "v", "x": "Infinity"}


def test_no_tags_is_empty_object() -> None:
    assert tags_of() == {}


# --- status and errors --------------------------------------------------------------


def test_error_status_fails_run_and_step_with_message() -> None:
    batch = mapped(span(1, xray__kind="run", error="pipeline broke"), span(2, parent=1, error="step broke"))
    run = the_run(batch)
    assert (run.status, run.error) == (c.STATUS_FAILED, "pipeline broke")
    steps = {s.span_id: s for s in batch.steps}
    assert (steps[sid(2).hex()].status, steps[sid(2).hex()].error) == (c.STATUS_FAILED, "step broke")


def with_exception_event(s: Span, **event_attrs: Any) -> Span:
    s.status.code = Status.STATUS_CODE_ERROR
    s.status.message = ""
    s.events.append(Span.Event(name="log", time_unix_nano=T0, attributes=attrs({"exception.message": "not this"})))
    s.events.append(Span.Event(name="exception", time_unix_nano=T0, attributes=attrs(event_attrs)))
    return s


@pytest.mark.parametrize(
    ("event_attrs", "expected"),
    [
        ({"exception.type": "ValueError", "exception.message": "bad input"}, "ValueError: bad input"),
        ({"exception.type": "TimeoutError"}, "TimeoutError"),
        ({"exception.message": "only message"}, "only message"),
        ({"exception.stacktrace": "..."}, "error (no message)"),
        ({}, "error (no message)"),
    ],
)
def test_error_text_from_exception_event(event_attrs: dict[str, Any], expected: str) -> None:
    step = one_step(with_exception_event(span(2, parent=1), **event_attrs))
    assert (step.status, step.error) == (c.STATUS_FAILED, expected)


def test_status_message_wins_over_exception_event() -> None:
    s = with_exception_event(span(2, parent=1), **{"exception.type": "E", "exception.message": "m"})
    s.status.message = "explicit"
    assert one_step(s).error == "explicit"


def test_error_without_any_text() -> None:
    s = span(2, parent=1)
    s.status.code = Status.STATUS_CODE_ERROR
    assert one_step(s).error == "error (no message)"


@pytest.mark.parametrize("code", [Status.STATUS_CODE_UNSET, Status.STATUS_CODE_OK])
def test_non_error_status_is_completed_even_with_message_or_exception(code: int) -> None:
    s = with_exception_event(span(1), **{"exception.type": "E"})
    s.status.code = code
    s.status.message = "ignored"
    batch = mapped(s)
    assert (the_run(batch).status, the_run(batch).error) == (c.STATUS_COMPLETED, None)
    assert (batch.steps[0].status, batch.steps[0].error) == (c.STATUS_COMPLETED, None)


def test_run_without_end_is_running() -> None:
    run = the_run(mapped(span(1, end=0)))
    assert (run.status, run.completed_at) == (c.STATUS_RUNNING, None)


def test_failed_run_without_end_is_failed() -> None:
    run = the_run(mapped(span(1, end=0, error="x")))
    assert run.status == c.STATUS_FAILED


# --- rejected spans -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: setattr(s, "trace_id", b""), "invalid trace_id"),
        (lambda s: setattr(s, "trace_id", b"\x00" * 16), "invalid trace_id"),
        (lambda s: setattr(s, "trace_id", b"\x01" * 15), "invalid trace_id"),
        (lambda s: setattr(s, "trace_id", b"\x01" * 17), "invalid trace_id"),
        (lambda s: setattr(s, "span_id", b""), "invalid span_id"),
        (lambda s: setattr(s, "span_id", b"\x00" * 8), "invalid span_id"),
        (lambda s: setattr(s, "span_id", b"\x01" * 7), "invalid span_id"),
        (lambda s: setattr(s, "span_id", b"\x01" * 16), "invalid span_id"),
        (lambda s: setattr(s, "parent_span_id", b"\x01" * 4), "invalid parent_span_id"),
        (lambda s: (setattr(s, "start_time_unix_nano", 0), setattr(s, "end_time_unix_nano", 0)), "neither"),
        (lambda s: setattr(s, "end_time_unix_nano", s.start_time_unix_nano - 1), "ends before it starts"),
    ],
)
def test_bad_span_is_rejected_and_counted_rest_kept(mutate: Any, reason: str) -> None:
    bad = span(5, parent=1)
    mutate(bad)
    batch = mapped(span(1, xray__kind="run"), bad, span(2, parent=1))
    assert batch.rejected == 1
    assert len(batch.errors) == 1 and reason in batch.errors[0]
    assert reason in batch.message
    assert sorted(s.span_id for s in batch.steps) == [sid(1).hex(), sid(2).hex()]
    assert the_run(batch).source == SOURCE_RUN_SPAN


def test_all_zero_parent_span_id_means_root() -> None:
    """The invalid-id sentinel, which several exporters send for root spans (old Java/.NET OTLP exporters,
    Google Cloud's); the collector reads it as no parent. Rejecting it would lose the run span."""
    root = span(1, name="pipeline")
    root.parent_span_id = b"\x00" * 8
    batch = mapped(root, span(2, parent=1))
    assert batch.rejected == 0, batch.errors
    run = the_run(batch)
    assert (run.source, run.span_id, run.name) == (SOURCE_ROOT, sid(1).hex(), "pipeline")
    assert next(s for s in batch.steps if s.span_id == sid(1).hex()).parent_span_id is None


def test_rejected_run_span_leaves_a_placeholder_from_its_steps() -> None:
    bad = span(1, xray__kind="run", start=0, end=0)
    batch = mapped(bad, span(2, parent=1))
    assert batch.rejected == 1
    assert the_run(batch).source == SOURCE_PLACEHOLDER


def test_only_start_or_only_end_is_accepted() -> None:
    only_end = one_step(span(2, parent=1, start=0, end=T0))
    assert (only_end.started_at, only_end.completed_at) == (None, ts(T0))
    only_start = one_step(span(3, parent=1, start=T0, end=0))
    assert (only_start.started_at, only_start.completed_at) == (ts(T0), None)
    run = the_run(mapped(span(1, start=0, end=T0)))
    assert run.started_at == ts(T0)  # a run always has a start: its end stands in


def test_zero_length_span_is_fine() -> None:
    step = one_step(span(2, parent=1, start=T0, end=T0))
    assert step.started_at == step.completed_at == ts(T0)


def test_many_rejections_are_all_counted_but_messages_capped() -> None:
    bad = [span(n, parent=1, start=0, end=0) for n in range(2, 22)]
    batch = mapped(span(1), *bad)
    assert batch.rejected == 20
    assert len(batch.errors) == 5
    assert len(batch.steps) == 1


def test_all_spans_rejected() -> None:
    batch = mapped(span(1, trace=b"\x00" * 16))
    assert (batch.rejected, batch.runs, batch.steps) == (1, {}, [])


def test_empty_request() -> None:
    batch = map_request(ExportTraceServiceRequest())
    assert (batch.rejected, batch.runs, batch.steps, batch.message) == (0, {}, [], "")


def test_nanos_to_micros() -> None:
    assert nanos_to_micros(0) is None
    assert nanos_to_micros(1) == 0  # the epoch itself, not "unset"
    assert nanos_to_micros(1_700_000_000_123_456_789) == 1_700_000_000_123_456
    largest = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=nanos_to_micros(2**64 - 1))
    assert largest.year == 2554  # the largest fixed64 still reads back as a datetime


def test_largest_timestamps_are_accepted() -> None:
    step = one_step(span(2, parent=1, start=2**64 - 2, end=2**64 - 1))
    assert step.completed_at == (2**64 - 1) // 1000


# --- steps: type, funnel, cost ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "logic"), ("llm", "llm"), ("LLM", "llm"), ("  Retrieval ", "retrieval"), ("filter", "filter"),
        ("rank", "rank"), ("custom-thing", "custom-thing"), ("", "logic"), ("   ", "logic"), (3, "logic"),
        ("a\x00b", "ab"),
    ],
)
def test_step_type(raw: Any, expected: str) -> None:
    assert step_type({} if raw is None else {c.STEP_TYPE: raw}) == expected
    if raw is not None:
        assert one_step(span(2, parent=1, xray__step__type=raw)).type == expected


def test_step_fields() -> None:
    step = one_step(span(
        2, parent=1, name="filter by price", xray__step__type="filter",
        xray__step__inputs='{"candidates": 5000}', xray__step__outputs="[1, 2]",
        xray__step__metadata='{"threshold": 0.5}', xray__step__reasoning="kept the cheap ones",
        xray__step__input_count=5000, xray__step__output_count=30,
        xray__step__rejections='{"too_expensive": 4900, "out_of_stock": 70}',
        xray__step__decisions='[{"id": "a", "accepted": false, "reason": "too_expensive"}]',
    ))
    assert step.run_id == RUN_ID
    assert (step.span_id, step.parent_span_id) == (sid(2).hex(), sid(1).hex())
    assert (step.name, step.type, step.status) == ("filter by price", "filter", c.STATUS_COMPLETED)
    assert json.loads(step.inputs or "") == {"candidates": 5000}
    assert json.loads(step.outputs or "") == [1, 2]
    assert json.loads(step.metadata or "") == {"threshold": 0.5}
    assert step.reasoning == "kept the cheap ones"
    assert (step.input_count, step.output_count) == (5000, 30)
    assert json.loads(step.rejections or "") == {"too_expensive": 4900, "out_of_stock": 70}
    assert json.loads(step.decisions or "")[0]["reason"] == "too_expensive"
    assert (step.started_at, step.completed_at) == (ts(T0 + 2 * SECOND), ts(T0 + 3 * SECOND))
    assert step.error is None
    assert step.service == "svc"
    assert json.loads(step.attributes) == {}


def test_absent_optional_fields_are_none() -> None:
    step = one_step(span(2, parent=1))
    for name in ("inputs", "outputs", "metadata", "reasoning", "model", "input_tokens", "output_tokens",
                 "input_count", "output_count", "rejections", "decisions", "error"):
        assert getattr(step, name) is None, name
    assert step.cost == 0.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0), (5000, 5000), (2**31 - 1, 2**31 - 1), (2**31, None), (-1, None), (2**62, None),
        (12.0, 12), (12.5, None), (math.nan, None), (math.inf, None),
        ("42", 42), (" 7 ", 7), ("-3", None), ("--5", None), ("4.0", None), ("²", None), ("1e3", None), ("", None),
        ("9" * 5000, None),
        ("forty", None), (True, None), (False, None), ([1], None),
    ],
)
def test_funnel_counts(raw: Any, expected: int | None) -> None:
    """Counts are int32 columns: what is not a non-negative integer in range is dropped, never the span."""
    step = one_step(span(2, parent=1, xray__step__input_count=raw, xray__step__output_count=raw))
    assert (step.input_count, step.output_count) == (expected, expected)


def test_json_attributes_given_as_otlp_maps_and_arrays() -> None:
    """Exporters that can send maps/arrays directly: stored as JSON, not as a string of Python repr."""
    step = one_step(span(2, parent=1, xray__step__rejections={"dup": 3}, xray__step__outputs=["a", "b"],
                         xray__step__metadata={"nested": {"x": 1.5}}))
    assert json.loads(step.rejections or "") == {"dup": 3}
    assert json.loads(step.outputs or "") == ["a", "b"]
    assert json.loads(step.metadata or "") == {"nested": {"x": 1.5}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json", "not json"), ("NaN", "NaN"), ("{bad", "{bad"), ("", ""),
        ('{"ok": true}', {"ok": True}), (3, 3), (True, True), (math.nan, "NaN"),
    ],
)
def test_json_attribute_that_is_not_json_is_stored_as_string(raw: Any, expected: Any) -> None:
    step = one_step(span(2, parent=1, xray__step__inputs=raw))
    assert json.loads(step.inputs or "null") == expected


def test_cost_explicit() -> None:
    step = one_step(span(2, parent=1, xray__step__cost=0.0123, gen_ai__request__model="gpt-4o",
                         gen_ai__usage__input_tokens=1000, gen_ai__usage__output_tokens=1000))
    assert step.cost == 0.0123
    assert (step.model, step.input_tokens, step.output_tokens) == ("gpt-4o", 1000, 1000)


def test_explicit_zero_cost_wins_over_price_table() -> None:
    step = one_step(span(2, parent=1, xray__step__cost=0, gen_ai__request__model="gpt-4o",
                         gen_ai__usage__input_tokens=10**6))
    assert step.cost == 0.0


def test_cost_from_price_table() -> None:
    step = one_step(span(2, parent=1, gen_ai__request__model="gpt-4o-mini",
                         gen_ai__usage__input_tokens=1_000_000, gen_ai__usage__output_tokens=500_000))
    assert step.cost == pytest.approx(0.15 + 0.30)
    assert step.cost == pricing.cost_of("gpt-4o-mini", 1_000_000, 500_000)


def test_the_sdks_prices_do_not_change_what_the_receiver_prices() -> None:
    """configure(prices=) in an app that also runs the receiver (tests, the demo) prices the SDK's own
    steps; the mapper keeps the shipped table, which nothing in the process can edit."""
    from xray_otel.sdk import provider

    before = provider.price_table()
    try:
        provider.set_prices({"gpt-4o-mini": (100.0, 100.0), "my-finetune": (1.0, 2.0)})
        assert provider.price_table().cost_of("gpt-4o-mini", 1_000_000, 0) == 100.0
        step = one_step(span(2, parent=1, gen_ai__request__model="gpt-4o-mini",
                             gen_ai__usage__input_tokens=1_000_000, gen_ai__usage__output_tokens=500_000))
        assert step.cost == pytest.approx(0.15 + 0.30)
        unknown = one_step(span(3, parent=1, gen_ai__request__model="my-finetune", gen_ai__usage__input_tokens=10))
        assert (unknown.cost, unknown.cost_source) == (0.0, "none")
    finally:
        provider._prices = before
    with pytest.raises(TypeError):
        pricing.DEFAULT._prices["gpt-4o"] = (0.0, 0.0)  # type: ignore[index]


def test_embedding_calls_are_priced() -> None:
    step = one_step(span(2, parent=1, openinference__span__kind="EMBEDDING",
                         embedding__model_name="text-embedding-3-small", llm__token_count__prompt=2_000_000))
    assert (step.type, step.cost, step.cost_source) == ("embedding", pytest.approx(0.04), "price_table")


def test_cost_uses_response_model_before_request_model() -> None:
    step = one_step(span(2, parent=1, gen_ai__request__model="gpt-4o", gen_ai__response__model="gpt-4o-mini-2024-07-18",
                         gen_ai__usage__input_tokens=1_000_000))
    assert step.model == "gpt-4o-mini-2024-07-18"
    assert step.cost == pytest.approx(0.15)


@pytest.mark.parametrize("bad_cost", [-1.0, math.nan, math.inf, "0.5", True])
def test_invalid_explicit_cost_falls_back_to_price_table(bad_cost: Any) -> None:
    step = one_step(span(2, parent=1, xray__step__cost=bad_cost, gen_ai__request__model="gpt-4o",
                         gen_ai__usage__input_tokens=1_000_000))
    assert step.cost == pytest.approx(2.50)


def test_unknown_model_costs_zero() -> None:
    step = one_step(span(2, parent=1, gen_ai__request__model="my-local-model", gen_ai__usage__input_tokens=10**6))
    assert (step.model, step.cost) == ("my-local-model", 0.0)


@pytest.mark.parametrize(("tokens", "expected"), [(-5, None), (2**63, None), ("12", 12), (1.0, 1), (True, None)])
def test_token_counts(tokens: Any, expected: int | None) -> None:
    raw = AnyValue(int_value=tokens) if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens < 2**63 \
        else value(tokens) if tokens != 2**63 else AnyValue(double_value=float(2**63))
    step = one_step(span(2, parent=1, gen_ai__usage__input_tokens=raw))
    assert step.input_tokens == expected


# --- text cleaning ------------------------------------------------------------------


def test_nul_characters_are_removed_everywhere() -> None:
    run_span = span(1, name="run\x00name", xray__kind="run", error="bad\x00thing", xray__tag__k="v\x00")
    step_span = span(2, parent=1, name="st\x00ep", error="step\x00error", xray__step__reasoning="why\x00",
                     xray__step__type="llm\x00", gen_ai__request__model="gpt\x00-4o",
                     xray__step__inputs='{"a\\u0000": "\\u0000"}', **{"custom\x00key": "custom\x00value"})
    step_span.events.append(Span.Event(name="ev\x00", attributes=attrs({"a": "\x00"})))
    step_span.trace_state = "k=v\x00"
    batch = mapped(run_span, step_span, service="svc\x00", resource={"host\x00": "h\x00"},
                   scope=InstrumentationScope(name="sc\x00ope", version="1\x00"))
    assert batch.rejected == 0, batch.errors
    run = the_run(batch)
    step = next(s for s in batch.steps if s.span_id == sid(2).hex())
    for row in (run, *batch.steps):
        for text in row:
            if isinstance(text, str):
                assert "\x00" not in text and "\\u0000" not in text, text
    assert run.name == "runname"
    assert run.service == step.service == "svc"
    assert run.error == "badthing"
    assert json.loads(run.tags) == {"k": "v"}
    assert (step.name, step.error, step.reasoning) == ("step", "steperror", "why")
    assert (step.type, step.model) == ("llm", "gpt-4o")
    assert json.loads(step.inputs or "") == {"a": ""}
    assert json.loads(step.attributes) == {"customkey": "customvalue", "gen_ai.request.model": "gpt-4o"}
    otel = json.loads(step.otel)
    assert (otel["scope"], otel["trace_state"], otel["events"][0]["name"]) == ("scope@1", "k=v", "ev")
    assert json.loads(step.resource)["host"] == "h"


def test_empty_span_name() -> None:
    batch = mapped(span(1, name=""), span(2, parent=1, name="\x00"))
    assert {s.name for s in batch.steps} == {"(unnamed)"}


# --- everything else is kept --------------------------------------------------------


def test_unmapped_attributes_are_kept() -> None:
    step = one_step(span(2, parent=1, xray__step__type="llm", xray__step__input_count=3, http__method="GET",
                         **{"custom.list": [1, 2], "custom.map": {"a": True}, "custom.bytes": b"\x01\x02",
                            "custom.nan": math.nan, "xray.step.capture": "sampled", "xray.step.cost_source": "explicit",
                            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}))
    assert json.loads(step.attributes) == {
        "http.method": "GET", "custom.list": [1, 2], "custom.map": {"a": True}, "custom.bytes": "0102",
        "custom.nan": "NaN", "xray.step.capture": "sampled",
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
    }
    assert step.cost_source == "none"  # xray.step.cost_source is mapped (steps.cost_source) only with a cost


def test_mapped_attributes_are_not_duplicated_in_attributes() -> None:
    step = one_step(span(2, parent=1, xray__kind="step", xray__step__type="llm", xray__step__inputs="{}",
                         xray__step__outputs="{}", xray__step__metadata="{}", xray__step__reasoning="r",
                         xray__step__cost=1.0, xray__step__cost_source="price_table", xray__step__input_count=1,
                         xray__step__output_count=1, xray__step__rejections="{}", xray__step__decisions="[]"))
    assert json.loads(step.attributes) == {}
    assert (step.cost, step.cost_source) == (1.0, "price_table")


def test_run_attributes_on_the_run_span_are_not_duplicated() -> None:
    step = one_step(span(1, xray__kind="run", xray__run__name="n", xray__run__inputs="{}", xray__run__outputs="{}",
                         xray__run__tags="{}", xray__tag__env="prod"))
    assert json.loads(step.attributes) == {"xray.tag.env": "prod"}


def test_tags_sent_as_an_otlp_map() -> None:
    """xray.run.tags is a JSON object; an exporter that can send maps sends a kvlist, which must not be lost."""
    assert tags_of(xray__run__tags={"env": "dev", "n": 2}, xray__tag__team="search") == {
        "env": "dev", "n": 2, "team": "search"}


def test_run_attributes_on_a_step_span_are_kept() -> None:
    """On a span that is not the run they map to nothing, so they are unmapped attributes and must be kept."""
    step = one_step(span(2, parent=1, xray__run__name="n", xray__run__inputs='{"q": 1}', xray__run__tags='{"a": 1}'))
    assert json.loads(step.attributes) == {"xray.run.name": "n", "xray.run.inputs": '{"q": 1}',
                                           "xray.run.tags": '{"a": 1}'}


def test_resource_is_kept() -> None:
    step = one_step(span(2, parent=1), resource={"host.name": "box", "k8s.pod.uid": "x", "n": 3})
    assert json.loads(step.resource) == {"host.name": "box", "k8s.pod.uid": "x", "n": 3, "service.name": "svc"}


def test_otel_fields() -> None:
    s = span(2, parent=1)
    s.kind = Span.SPAN_KIND_CLIENT
    s.trace_state = "vendor=abc"
    s.events.append(Span.Event(name="retry", time_unix_nano=T0 + 5, attributes=attrs({"attempt": 2})))
    s.links.append(Span.Link(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                             span_id=bytes.fromhex("b7ad6b7169203331"), attributes=attrs({"why": "batch"})))
    step = one_step(s, scope=InstrumentationScope(name="xray", version="0.1.0"))
    assert json.loads(step.otel) == {
        "kind": "CLIENT",
        "scope": "xray@0.1.0",
        "trace_state": "vendor=abc",
        "events": [{"name": "retry", "time": T0 + 5, "attributes": {"attempt": 2}}],
        "links": [{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
                   "attributes": {"why": "batch"}}],
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(0, "UNSPECIFIED"), (1, "INTERNAL"), (2, "SERVER"), (3, "CLIENT"), (4, "PRODUCER"), (5, "CONSUMER"), (42, 42)],
)
def test_otel_kind_names(kind: int, expected: Any) -> None:
    s = span(2, parent=1)
    s.kind = kind  # type: ignore[assignment]
    assert json.loads(one_step(s).otel)["kind"] == expected


def test_otel_minimal_and_scope_without_version() -> None:
    step = one_step(span(2, parent=1), scope=InstrumentationScope(name="lib"))
    assert json.loads(step.otel) == {"kind": "UNSPECIFIED", "scope": "lib"}
    step = one_step(span(2, parent=1), scope=InstrumentationScope())
    assert json.loads(step.otel) == {"kind": "UNSPECIFIED"}


def test_otel_of_each_span_in_one_scope() -> None:
    """Plain spans of one scope share their kind's otel text; trace state, events or links make a span's own."""
    client, traced, with_event = span(3, parent=1), span(4, parent=1), span(5, parent=1)
    client.kind = Span.SPAN_KIND_CLIENT
    traced.trace_state = "k=v"
    with_event.events.append(Span.Event(name="retry", time_unix_nano=T0))
    batch = mapped(span(2, parent=1), client, traced, with_event, span(6, parent=1))
    assert [json.loads(s.otel) for s in batch.steps] == [
        {"kind": "UNSPECIFIED", "scope": "test"}, {"kind": "CLIENT", "scope": "test"},
        {"kind": "UNSPECIFIED", "scope": "test", "trace_state": "k=v"},
        {"kind": "UNSPECIFIED", "scope": "test", "events": [{"name": "retry", "time": T0, "attributes": {}}]},
        {"kind": "UNSPECIFIED", "scope": "test"},
    ]


# --- the real SDK ---------------------------------------------------------------------


def test_spans_from_the_real_sdk() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.pipeline", "2.0")
    with tracer.start_as_current_span("handle request", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("recommend", attributes={c.KIND: c.KIND_RUN, "xray.tag.user": "u1"}) as run:
            with tracer.start_as_current_span("filter", links=[Link(run.get_span_context())], attributes={
                c.STEP_TYPE: "filter", c.STEP_INPUT_COUNT: 100, c.STEP_OUTPUT_COUNT: 10,
                c.STEP_REJECTIONS: json.dumps({"price": 90}),
            }):
                pass
            with tracer.start_as_current_span("llm", attributes={c.GEN_AI_REQUEST_MODEL: "gpt-4o",
                                                                 c.GEN_AI_INPUT_TOKENS: 2000}) as llm:
                llm.record_exception(ValueError("bad json"))
                llm.set_status(StatusCode.ERROR)
    provider.shutdown()
    finished = exporter.get_finished_spans()
    batch = map_request(encode_spans(finished))
    assert batch.rejected == 0
    run = the_run(batch)
    recommend = next(s for s in finished if s.name == "recommend")
    assert run.id == uuid.UUID(int=recommend.context.trace_id)
    assert (run.source, run.span_id, run.name, run.service) == (
        SOURCE_RUN_SPAN, f"{recommend.context.span_id:016x}", "recommend", "shop")
    assert json.loads(run.tags) == {"user": "u1"}
    steps = {s.name: s for s in batch.steps}
    assert set(steps) == {"handle request", "recommend", "filter", "llm"}
    assert steps["filter"].parent_span_id == f"{recommend.context.span_id:016x}"
    assert (steps["filter"].input_count, steps["filter"].output_count) == (100, 10)
    assert json.loads(steps["filter"].otel)["links"][0]["span_id"] == f"{recommend.context.span_id:016x}"
    assert (steps["llm"].status, steps["llm"].error) == (c.STATUS_FAILED, "ValueError: bad json")
    assert steps["llm"].cost == pytest.approx(2000 * 2.50 / 1e6)
    assert json.loads(steps["handle request"].otel)["kind"] == "SERVER"
    assert json.loads(steps["llm"].otel)["scope"] == "shop.pipeline@2.0"


def test_map_in_parts_pauses_after_every_part_and_maps_as_map_request() -> None:
    """The receiver lets its event loop run at each pause; what it maps must not depend on them."""
    spans = [span(n, 1 if n > 1 else None) for n in range(1, 8)]
    batch = Batch()
    pauses = sum(1 for _ in map_in_parts(request(*spans), batch, part=3))
    assert pauses == 2  # after spans 3 and 6 of 7
    assert batch == mapped(*spans) and len(batch.steps) == 7


# --- issue 19: what real instrumentation sends ----------------------------------------------------


def test_a_bare_llm_call_is_its_run_and_its_runs_one_step() -> None:
    """openai + an instrumentation, no span of the app's own: the call's span is the root. It names the run
    and is a step of it too, so the run has its model, tokens and cost."""
    batch = mapped(span(1, name="ChatCompletion", openinference__span__kind="LLM",
                        llm__model_name="gpt-4o-mini", llm__token_count__prompt=1000))
    (run,) = batch.runs.values()
    (step,) = batch.steps
    assert run.name == "ChatCompletion" and run.span_id != step.span_id and run.span_id.startswith(step.span_id)
    assert (step.type, step.model, step.cost_source) == ("llm", "gpt-4o-mini", "price_table")


def test_a_plain_root_span_is_still_only_the_run() -> None:
    batch = mapped(span(1, name="handle_request", openinference__span__kind="CHAIN"), span(2, parent=1))
    (run,) = batch.runs.values()
    assert run.span_id == batch.steps[0].span_id  # the run span: left out of the step list


def test_an_error_with_a_traceback_is_its_first_part() -> None:
    message = ('OpenAIInvalidRequestError("Error code: 400 - context too long")Traceback (most recent call last):\n'
               '  File "x.py", line 1, in f\n' * 40)
    step = one_step(span(2, parent=1, error=message))
    assert step.error == 'OpenAIInvalidRequestError("Error code: 400 - context too long")'


def test_a_filtering_chain_over_documents_gets_counts_and_decisions() -> None:
    def doc(i: int) -> dict:
        return {"id": None, "metadata": {"id": f"kb-{i}"}, "page_content": f"text {i}", "type": "Document"}
    step = one_step(span(2, parent=1, name="keep_current", openinference__span__kind="CHAIN",
                         input__value=json.dumps([doc(i) for i in range(5)]), input__mime_type="application/json",
                         output__value=json.dumps([doc(i) for i in (0, 1, 3, 4)]), output__mime_type="application/json"))
    assert (step.type, step.input_count, step.output_count) == ("filter", 5, 4)
    assert json.loads(step.rejections) == {"not_in_output": 1}
    assert [(d["id"], d["accepted"]) for d in json.loads(step.decisions)] == [
        ("kb-0", True), ("kb-1", True), ("kb-2", False), ("kb-3", True), ("kb-4", True)]
    assert "heuristic" in json.loads(step.attributes)["xray.derived"]
