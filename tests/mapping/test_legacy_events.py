"""The original X-Ray SDK's /ingest events to run and step rows (xray_otel.receiver.legacy.map_events)."""

from __future__ import annotations

import itertools
import json
import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from xray_otel import conventions as c
from xray_otel.mapping.rows import SOURCE_PLACEHOLDER, SOURCE_RUN_SPAN, Batch, RunRow
from xray_otel.mapping.legacy import LegacyEventError, map_events, map_events_in_parts

RUN = "0b0f3a8e-6f4e-4d1a-9c55-2a4f6f0d1e21"
STEP = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
CHILD = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
T = "2024-05-01T12:00:00Z"
T_LATER = "2024-05-01T12:00:05Z"


def us(moment: datetime) -> int:
    """A time as the rows hold it: microseconds since the Unix epoch."""
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


UTC_T = us(datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc))
SECOND = 1_000_000


def run_event(kind: str = "run_complete", **data: Any) -> dict[str, Any]:
    return {"type": kind, "data": {"id": RUN, "name": "recommend", "started_at": T, "completed_at": T_LATER, **data}}


def step_event(kind: str = "step_complete", **data: Any) -> dict[str, Any]:
    return {"type": kind, "data": {"id": STEP, "run_id": RUN, "name": "filter", "type": "filter",
                                   "started_at": T, "completed_at": T_LATER, **data}}


def mapped(*events: Any) -> tuple[Batch, int]:
    return map_events({"events": list(events)})


def the_run(batch: Batch) -> RunRow:
    [run] = batch.runs.values()
    return run


def error_of(*events: Any) -> str:
    with pytest.raises(LegacyEventError) as info:
        mapped(*events)
    return str(info.value)


# --- the happy paths ------------------------------------------------------------------


def test_run_complete() -> None:
    batch, processed = mapped(run_event(tags={"env": "prod"}, inputs={"q": "shoes"}, outputs=["a", "b"]))
    assert processed == 1
    run = the_run(batch)
    assert run.id == uuid.UUID(RUN)
    assert (run.source, run.span_id) == (SOURCE_RUN_SPAN, RUN)
    assert (run.name, run.status, run.error, run.service) == ("recommend", c.STATUS_COMPLETED, None, None)
    assert json.loads(run.tags) == {"env": "prod"}
    assert json.loads(run.inputs or "") == {"q": "shoes"}
    assert json.loads(run.outputs or "") == ["a", "b"]
    assert (run.started_at, run.completed_at) == (UTC_T, UTC_T + 5 * SECOND)
    assert batch.steps == []


def test_run_failed() -> None:
    run = the_run(mapped(run_event("run_failed", error="LLM timeout"))[0])
    assert (run.status, run.error) == (c.STATUS_FAILED, "LLM timeout")


def test_failed_event_type_wins_over_a_status_field() -> None:
    run = the_run(mapped(run_event("run_failed", status="completed"))[0])
    assert run.status == c.STATUS_FAILED


def test_run_defaults() -> None:
    run = the_run(mapped({"type": "run_complete", "data": {"id": RUN, "started_at": T}})[0])
    assert (run.name, run.tags, run.inputs, run.outputs, run.completed_at) == ("(unnamed)", "{}", None, None, None)


def test_step_complete() -> None:
    batch, processed = mapped(step_event(
        inputs={"candidates": 5000}, outputs={"kept": 30}, reasoning="price filter", cost=0.002,
        metadata={"input_count": 5000, "output_count": 30, "rejections": {"too_expensive": 4970},
                  "decisions": [{"id": "p1", "accepted": False}], "threshold": 10},
    ))
    assert processed == 1
    [step] = batch.steps
    assert (step.run_id, step.span_id, step.parent_span_id) == (uuid.UUID(RUN), STEP, None)
    assert (step.name, step.type, step.status) == ("filter", "filter", c.STATUS_COMPLETED)
    assert json.loads(step.inputs or "") == {"candidates": 5000}
    assert json.loads(step.outputs or "") == {"kept": 30}
    assert step.reasoning == "price filter"
    assert (step.cost, step.cost_source) == (0.002, "explicit")
    assert (step.input_count, step.output_count) == (5000, 30)
    assert json.loads(step.rejections or "") == {"too_expensive": 4970}
    assert json.loads(step.decisions or "") == [{"id": "p1", "accepted": False}]
    assert json.loads(step.metadata or "")["threshold"] == 10  # the whole metadata is kept
    assert (step.started_at, step.completed_at, step.error) == (UTC_T, UTC_T + 5 * SECOND, None)
    assert json.loads(step.otel) == {"source": "legacy /ingest"}
    assert (step.attributes, step.resource) == ("{}", "{}")


def test_step_failed() -> None:
    [step] = mapped(step_event("step_failed", error="rate limited"))[0].steps
    assert (step.status, step.error) == (c.STATUS_FAILED, "rate limited")


def test_step_defaults() -> None:
    [step] = mapped({"type": "step_complete", "data": {"id": STEP, "run_id": RUN, "started_at": T}})[0].steps
    assert (step.name, step.type, step.cost, step.metadata) == ("(unnamed)", c.DEFAULT_STEP_TYPE, 0.0, "{}")
    assert step.cost_source == "none"
    for name in ("inputs", "outputs", "reasoning", "input_count", "output_count", "rejections", "decisions", "error"):
        assert getattr(step, name) is None, name


def test_step_type_is_lower_cased() -> None:
    [step] = mapped(step_event(type="LLM"))[0].steps
    assert step.type == "llm"


@pytest.mark.parametrize(
    ("key", "value"),
    [("rejections", {"a": 1}), ("rejection_reasons", {"a": 1}), ("rejection_histogram", {"a": 1}),
     ("rejected_reasons", {"a": 1})],
)
def test_funnel_rejections_from_any_known_metadata_key(key: str, value: Any) -> None:
    [step] = mapped(step_event(metadata={key: value}))[0].steps
    assert json.loads(step.rejections or "") == value


def test_funnel_decisions_from_candidates_key() -> None:
    [step] = mapped(step_event(metadata={"candidates": [{"id": "x"}]}))[0].steps
    assert json.loads(step.decisions or "") == [{"id": "x"}]


def test_funnel_first_known_key_wins() -> None:
    [step] = mapped(step_event(metadata={"rejection_reasons": {"b": 2}, "rejections": {"a": 1}}))[0].steps
    assert json.loads(step.rejections or "") == {"a": 1}


def test_nested_steps_keep_their_parent() -> None:
    batch, _ = mapped(step_event(), step_event(id=CHILD, parent_id=STEP))
    parents = {s.span_id: s.parent_span_id for s in batch.steps}
    assert parents == {STEP: None, CHILD: STEP}


@pytest.mark.parametrize("spelling", [STEP.upper(), STEP.replace("-", ""), "{" + STEP + "}", "urn:uuid:" + STEP])
def test_parent_id_in_another_uuid_spelling_still_points_at_its_parent(spelling: str) -> None:
    """Step ids are normalised to the canonical UUID form; a parent id must be too, or nesting breaks."""
    batch, _ = mapped(step_event(id=STEP.upper()), step_event(id=CHILD, parent_id=spelling))
    ids = {s.span_id for s in batch.steps}
    child = next(s for s in batch.steps if s.span_id == CHILD)
    assert child.parent_span_id in ids


def test_empty_parent_id_is_no_parent() -> None:
    [step] = mapped(step_event(parent_id=""))[0].steps
    assert step.parent_span_id is None


def test_step_before_run_gives_a_running_placeholder() -> None:
    batch, _ = mapped(step_event())
    run = the_run(batch)
    assert (run.id, run.source, run.status, run.name, run.completed_at) == (
        uuid.UUID(RUN), SOURCE_PLACEHOLDER, c.STATUS_RUNNING, None, None)
    assert run.started_at == UTC_T


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_run_and_steps_in_any_order_give_the_same_rows(order: tuple[int, ...]) -> None:
    events = [run_event(), step_event(), step_event(id=CHILD, parent_id=STEP, started_at=T_LATER)]
    expected, _ = mapped(*events)
    batch, processed = mapped(*[events[i] for i in order])
    assert processed == 3
    assert batch.runs == expected.runs
    assert the_run(batch).source == SOURCE_RUN_SPAN
    assert sorted(batch.steps) == sorted(expected.steps)


def test_events_across_requests_merge_like_sql() -> None:
    """The step request first, then the run request: the run row replaces the placeholder."""
    stored: dict[uuid.UUID, RunRow] = {}
    for events in ([step_event()], [run_event()], [step_event(id=CHILD, started_at="2024-05-01T11:00:00Z")]):
        for run in mapped(*events)[0].runs.values():
            if run.id not in stored or run.beats(stored[run.id]):
                stored[run.id] = run
    assert stored[uuid.UUID(RUN)] == the_run(mapped(run_event())[0])


def test_empty_event_list() -> None:
    batch, processed = mapped()
    assert (processed, batch.runs, batch.steps) == (0, {}, [])


def test_status_field_overrides_event_default_case_insensitively() -> None:
    assert the_run(mapped(run_event(status="running"))[0]).status == c.STATUS_RUNNING
    [step] = mapped(step_event(status="Failed"))[0].steps
    assert step.status == c.STATUS_FAILED


# --- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", UTC_T),
        ("2024-05-01T12:00:00+00:00", UTC_T),
        ("2024-05-01T12:00:00", UTC_T),  # naive: taken as UTC
        ("2024-05-01 12:00:00", UTC_T),
        ("2024-05-01T14:00:00+02:00", UTC_T),
        ("2024-05-01T12:00:00.250Z", UTC_T + 250_000),
        ("2024-05-01T12:00:00.123456Z", UTC_T + 123456),
        ("2024-05-01T12:00:00.123456789Z", UTC_T + 123456),
        ("2024-05-01", UTC_T - 12 * 3600 * SECOND),
        ("1969-12-31T23:59:59.999999Z", -1),  # before the epoch: negative
    ],
)
def test_iso_timestamps(text: str, expected: int) -> None:
    run = the_run(mapped(run_event(started_at=text, completed_at=None))[0])
    assert run.started_at == expected


def test_naive_and_aware_timestamps_compare() -> None:
    run = the_run(mapped(run_event(started_at="2024-05-01T12:00:00", completed_at="2024-05-01T12:00:01Z"))[0])
    assert run.completed_at is not None and run.completed_at > run.started_at


def test_only_completed_at_stands_in_for_started_at() -> None:
    run = the_run(mapped(run_event(started_at=None, completed_at=T))[0])
    assert (run.started_at, run.completed_at) == (UTC_T, UTC_T)
    [step] = mapped(step_event(started_at=None, completed_at=T))[0].steps
    assert (step.started_at, step.completed_at) == (UTC_T, UTC_T)


# --- validation: every error names the event ----------------------------------------------


@pytest.mark.parametrize("document", [None, [], "events", {}, {"events": None}, {"events": {}}, {"events": "x"},
                                      {"Events": []}])
def test_body_must_be_an_events_list(document: Any) -> None:
    with pytest.raises(LegacyEventError, match='"events"'):
        map_events(document)


BAD_EVENTS = [
    pytest.param(None, 'needs a "type" and a "data"', id="event-null"),
    pytest.param("run_complete", 'needs a "type" and a "data"', id="event-string"),
    pytest.param({"type": "run_complete"}, 'needs a "type" and a "data"', id="no-data"),
    pytest.param({"type": "run_complete", "data": []}, 'needs a "type" and a "data"', id="data-list"),
    pytest.param({"type": "run_started", "data": {}}, "unknown event type 'run_started'", id="unknown-type"),
    pytest.param({"data": {}}, "unknown event type None", id="no-type"),
    pytest.param(run_event(id=None), '"id" must be a UUID', id="run-id-null"),
    pytest.param({"type": "run_complete", "data": {"started_at": T}}, '"id" is required', id="run-no-id"),
    pytest.param(run_event(id="run-1"), '"id" must be a UUID', id="run-id-not-uuid"),
    pytest.param(run_event(id=12345), '"id" must be a UUID', id="run-id-number"),
    pytest.param(step_event(run_id="nope"), '"run_id" must be a UUID', id="step-run-id"),
    pytest.param({"type": "step_complete", "data": {"id": STEP, "started_at": T}}, '"run_id" is required',
                 id="step-no-run-id"),
    pytest.param({"type": "step_complete", "data": {"run_id": RUN, "started_at": T}}, '"id" is required',
                 id="step-no-id"),
    pytest.param(run_event(started_at=None, completed_at=None), '"started_at" is required', id="no-times"),
    pytest.param(run_event(started_at="yesterday"), '"started_at" must be an ISO-8601', id="bad-start"),
    pytest.param(run_event(completed_at="2024-13-01T00:00:00Z"), '"completed_at" must be an ISO-8601',
                 id="bad-end"),
    pytest.param(run_event(started_at=1714564800), '"started_at" must be an ISO-8601', id="epoch-number"),
    pytest.param(run_event(started_at=T_LATER, completed_at=T), '"completed_at"', id="run-ends-before-start"),
    pytest.param(step_event(started_at=T_LATER, completed_at=T), '"completed_at"', id="step-ends-before-start"),
    pytest.param(run_event(status="done"), '"status" must be RUNNING, COMPLETED or FAILED', id="bad-status"),
    pytest.param(run_event(tags=["a", "b"]), '"tags" must be an object', id="tags-list"),
    pytest.param(run_event(tags="env=prod"), '"tags" must be an object', id="tags-string"),
    pytest.param(step_event(metadata=[1]), '"metadata" must be an object', id="metadata-list"),
    pytest.param(step_event(cost=-0.01), '"cost" must be a non-negative number', id="cost-negative"),
    pytest.param(step_event(cost="0.5"), '"cost" must be a non-negative number', id="cost-string"),
    pytest.param(step_event(cost=True), '"cost" must be a non-negative number', id="cost-bool"),
    pytest.param(step_event(cost=math.inf), '"cost" must be a non-negative number', id="cost-inf"),
    pytest.param(step_event(cost=math.nan), '"cost" must be a non-negative number', id="cost-nan"),
    pytest.param(step_event(cost=10**400), '"cost" must be a non-negative number', id="cost-huge-int"),
    pytest.param(step_event(metadata={"input_count": -1}), 'metadata "input_count" must be a non-negative integer',
                 id="count-negative"),
    pytest.param(step_event(metadata={"output_count": 2.5}), 'metadata "output_count"', id="count-float"),
    pytest.param(step_event(metadata={"input_count": "10"}), 'metadata "input_count"', id="count-string"),
    pytest.param(step_event(metadata={"input_count": True}), 'metadata "input_count"', id="count-bool"),
    pytest.param(step_event(metadata={"input_count": 2**31}), 'metadata "input_count"', id="count-int32-overflow"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_EVENTS)
def test_bad_event_is_rejected_with_its_index(bad: Any, message: str) -> None:
    text = error_of(run_event(), step_event(), bad, step_event(id=CHILD))
    assert text.startswith("events[2]: "), text
    assert message in text


@pytest.mark.parametrize(("bad", "message"), BAD_EVENTS[:6])
def test_first_bad_event_is_named(bad: Any, message: str) -> None:
    text = error_of(bad, run_event(), bad)
    assert text.startswith("events[0]: ")


def test_a_bad_event_applies_nothing() -> None:
    """map_events raises before returning any batch, so nothing of the request can be written."""
    with pytest.raises(LegacyEventError):
        mapped(run_event(), step_event(), step_event(cost=-1))


def test_error_messages_truncate_long_values() -> None:
    text = error_of(run_event(id="x" * 10_000))
    assert len(text) < 200


@pytest.mark.parametrize("extreme", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_timestamps_that_overflow_in_utc_are_a_clear_error(extreme: str) -> None:
    """Python cannot hold these in UTC (year 10000 / year 0): a 400 naming the field, not a crash at write time."""
    text = error_of(run_event(started_at=extreme, completed_at=None))
    assert text.startswith("events[0]: ") and "started_at" in text


# --- text cleaning ------------------------------------------------------------------


def test_nul_characters_and_lone_surrogates_are_cleaned() -> None:
    batch, _ = mapped(
        run_event(name="rec\x00ommend", error="bad\x00", tags={"k\x00": "v\x00"}, inputs={"q": "\x00"}),
        step_event(name="fil\x00ter", reasoning="why\x00\ud800", type="LL\x00M", metadata={"n": "\x00"}),
    )
    run, [step] = the_run(batch), batch.steps
    for row in (run, step):
        for text in row:
            if isinstance(text, str):
                assert "\x00" not in text and "\\u0000" not in text, text
                text.encode("utf-8")
    assert (run.name, run.error, json.loads(run.tags)) == ("recommend", "bad", {"k": "v"})
    assert (step.name, step.type) == ("filter", "llm")
    assert step.reasoning == "why\ufffd"


def test_nan_in_json_fields_is_stored_as_string() -> None:
    """Python's json accepts NaN in the request body; jsonb does not."""
    batch, _ = mapped(run_event(inputs={"score": math.nan}), step_event(metadata={"x": math.inf}))
    assert json.loads(the_run(batch).inputs or "") == {"score": "NaN"}
    assert json.loads(batch.steps[0].metadata or "") == {"x": "Infinity"}


def test_non_string_text_fields_are_stringified() -> None:
    batch, _ = mapped(run_event(name=42, error=["x"]), step_event(reasoning={"a": 1}))
    run = the_run(batch)
    assert (run.name, run.error) == ("42", "['x']")
    assert batch.steps[0].reasoning == "{'a': 1}"


def test_map_events_in_parts_pauses_after_every_part_and_maps_as_map_events() -> None:
    events = [run_event(), *(step_event(id=str(uuid.UUID(int=n))) for n in range(1, 7))]
    batch = Batch()
    pauses = sum(1 for _ in map_events_in_parts({"events": events}, batch, part=2))
    assert pauses == 3  # after events 2, 4 and 6 of 7
    assert batch == mapped(*events)[0] and len(batch.steps) == 6
