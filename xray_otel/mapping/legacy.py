"""Map the original X-Ray SDK's /ingest events to run and step rows. Pure, as spans.py.

A run event is its run's row (as an ``xray.kind=run`` span would be); a step event a step row,
with the funnel figures the original SDK sent read into their columns, first found wins (docs/api.md,
"POST /ingest"):

- input_count: ``metadata.input_count``, ``metadata.total_count``, ``inputs.candidate_count``;
- output_count: ``metadata.output_count``, ``metadata.survivor_count``, ``outputs.survivor_count``, the
  length of ``outputs.survivors`` when a list; for a retrieval step then ``outputs.count``, the length of
  ``outputs.items`` when a list;
- rejections: ``metadata.rejections``, ``rejection_reasons``, ``rejection_histogram``, ``rejected_reasons``.

``metadata.drop_rate`` is not read: the funnel works the rate out of the counts, and the SDK rounds it.
``metadata.input_count`` and ``output_count`` must be counts (a 400 otherwise, as always); the other
sources are used only when they are counts. The survivors of ``process_candidates`` become kept outcomes
(step_outcomes) when ``outputs.survivors`` is a list whose items each carry an ``id``: the step then
answers exactly for a survivor, and ``unknown`` for any other candidate (it was dropped here if it
reached this step; the SDK does not say which candidates did).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from .. import conventions as c
from . import outcomes
from .rows import COST_EXPLICIT, COST_NONE, SOURCE_RUN_SPAN, Batch, OutcomeRow, RunRow, StepRow
from .semconv import MAX_USD
from .spans import PART_SPANS
from .values import cap_name, clean_text, to_json

_RUN_EVENTS = {"run_complete": c.STATUS_COMPLETED, "run_failed": c.STATUS_FAILED}
_STEP_EVENTS = {"step_complete": c.STATUS_COMPLETED, "step_failed": c.STATUS_FAILED}
# Funnel figures the original SDK kept in step metadata, under these names.
_REJECTION_KEYS = ("rejections", "rejection_reasons", "rejection_histogram", "rejected_reasons")
_DECISION_KEYS = ("decisions", "candidates")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_EPOCH, _MICROSECOND = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)
# The UTC times a datetime can hold, so every stored time reads back (queries decode to datetime).
_MIN_US = (datetime.min.replace(tzinfo=timezone.utc) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime.max.replace(tzinfo=timezone.utc) - _EPOCH) // _MICROSECOND


class LegacyEventError(ValueError):
    """An event that cannot be stored; the message names it."""


def map_events(document: Any) -> tuple[Batch, int]:
    """Validate and map every event; raises LegacyEventError naming the first bad one."""
    batch = Batch()
    for _ in map_events_in_parts(document, batch):
        pass
    return batch, len(document["events"])


def map_events_in_parts(document: Any, batch: Batch, part: int = PART_SPANS) -> Iterator[None]:
    """map_events into ``batch``, pausing after every ``part`` events, as mapping.map_in_parts does."""
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise LegacyEventError('body must be {"events": [{"type": ..., "data": {...}}, ...]}')
    run_ids: dict[str, uuid.UUID] = {}
    for index, event in enumerate(document["events"], 1):
        try:
            _map_event(batch, event, run_ids)
        except LegacyEventError as exc:
            raise LegacyEventError(f"events[{index - 1}]: {exc}") from None
        if index % part == 0:
            yield


def _map_event(batch: Batch, event: Any, run_ids: dict[str, uuid.UUID]) -> None:
    """One event into the batch; ``run_ids`` holds the run ids this request has parsed."""
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise LegacyEventError('each event needs a "type" and a "data" object')
    kind, data = event.get("type"), event["data"]
    if kind in _RUN_EVENTS:
        batch.add_run(_run_row(data, _RUN_EVENTS[kind], run_ids))
    elif kind in _STEP_EVENTS:
        step = _step_row(data, _STEP_EVENTS[kind], run_ids)
        batch.steps.append(step)
        batch.add_placeholder(step)
        survivors = _survivor_outcomes(data, step)
        if survivors is not None:
            batch.outcomes.append(survivors)  # survivors only by design: not counted as outcomes cut on the way
    else:
        expected = ", ".join([*_RUN_EVENTS, *_STEP_EVENTS])
        raise LegacyEventError(f"unknown event type {kind!r}; expected one of {expected}")


def _run_row(data: dict[str, Any], status: str, run_ids: dict[str, uuid.UUID]) -> RunRow:
    run_id = _run_id(data, "id", run_ids)
    started, completed = _times(data)
    tags = data.get("tags") or {}
    if not isinstance(tags, dict):
        raise LegacyEventError('"tags" must be an object')
    return RunRow(
        run_id, SOURCE_RUN_SPAN, str(run_id), _capped(data.get("name")) or "(unnamed)",
        _status(data, status), None, to_json(tags), _json(data, "inputs"), _json(data, "outputs"),
        _text(data.get("error")), started, completed,
    )


def _step_row(data: dict[str, Any], status: str, run_ids: dict[str, uuid.UUID]) -> StepRow:
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise LegacyEventError('"metadata" must be an object')
    started, completed = _times(data)
    step_type = (_capped(data.get("type")) or c.DEFAULT_STEP_TYPE).lower()
    inputs, outputs = _object(data.get("inputs")), _object(data.get("outputs"))
    input_count = _first_count(_count(metadata, "input_count"), metadata.get("total_count"),
                               inputs.get("candidate_count"))
    output_count = _first_count(_count(metadata, "output_count"), metadata.get("survivor_count"),
                                outputs.get("survivor_count"), _length(outputs.get("survivors")),
                                *((outputs.get("count"), _length(outputs.get("items"))) if step_type == "retrieval"
                                  else ()))
    return StepRow(
        _run_id(data, "run_id", run_ids), _uuid_text(data, "id"), _parent_id(data.get("parent_id")),
        _capped(data.get("name")) or "(unnamed)", step_type,
        _status(data, status), _json(data, "inputs"), _json(data, "outputs"), to_json(metadata),
        _text(data.get("reasoning")), _cost(data.get("cost")), None, None, None,
        input_count, output_count,
        _first_json(metadata, _REJECTION_KEYS), _first_json(metadata, _DECISION_KEYS),
        started, completed, _text(data.get("error")), None, "{}", '{"source":"legacy /ingest"}', "{}",
        COST_EXPLICIT if data.get("cost") is not None else COST_NONE,
    )


def _uuid(data: dict[str, Any], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(data[key]))
    except KeyError:
        raise LegacyEventError(f'"{key}" is required') from None
    except ValueError:
        raise LegacyEventError(f'"{key}" must be a UUID, got {str(data[key])[:64]!r}') from None


def _run_id(data: dict[str, Any], key: str, known: dict[str, uuid.UUID]) -> uuid.UUID:
    """A run id, parsed once per request: a run's events mostly travel together."""
    text = data.get(key)
    run_id = known.get(text) if type(text) is str else None
    if run_id is None:
        run_id = _uuid(data, key)
        if type(text) is str:
            known[text] = run_id
    return run_id


def _uuid_text(data: dict[str, Any], key: str) -> str:
    """A step id in canonical form; most already are (as the SDK sends them), which a match tells for a
    fifth of the cost of parsing and printing it."""
    text = data.get(key)
    if type(text) is str and _CANONICAL_UUID.match(text):
        return text
    return str(_uuid(data, key))


def _parent_id(value: Any) -> str | None:
    """The parent's id in the same canonical form as step ids, so any UUID spelling still nests."""
    text = _text(value)
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


def _times(data: dict[str, Any]) -> tuple[int, int | None]:
    """(started, completed) in the rows' microseconds since the epoch; started falls back to completed."""
    started, completed = _time(data, "started_at"), _time(data, "completed_at")
    if started is None and completed is None:
        raise LegacyEventError('"started_at" is required (ISO-8601)')
    if started is not None and completed is not None and completed < started:
        raise LegacyEventError('"completed_at" is before "started_at"')
    return (completed if started is None else started), completed  # type: ignore[return-value]


def _time(data: dict[str, Any], key: str) -> int | None:
    """An ISO-8601 time (UTC when it names no zone) in microseconds since the epoch."""
    value = data.get(key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise LegacyEventError(f'"{key}" must be an ISO-8601 timestamp, got {str(value)[:64]!r}') from None
    micros = ((parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)) - _EPOCH) // _MICROSECOND
    if not _MIN_US <= micros <= _MAX_US:
        raise LegacyEventError(f'"{key}" is out of range in UTC, got {str(value)[:64]!r}')
    return micros


def _status(data: dict[str, Any], from_type: str) -> str:
    """A *_failed event is FAILED whatever its data says; otherwise ``status`` may refine it."""
    value = str(data.get("status") or from_type).upper()
    if value not in (c.STATUS_RUNNING, c.STATUS_COMPLETED, c.STATUS_FAILED):
        raise LegacyEventError(f'"status" must be RUNNING, COMPLETED or FAILED, got {value[:32]!r}')
    return c.STATUS_FAILED if from_type == c.STATUS_FAILED else value


def _cost(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_USD:
        raise LegacyEventError(f'"cost" must be a non-negative number up to {MAX_USD:.0e} (USD), got {str(value)[:32]!r}')
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        raise LegacyEventError(f'"cost" must be a non-negative number, got {str(value)[:32]!r}') from None


def _count(metadata: dict[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise LegacyEventError(f'metadata "{key}" must be a non-negative integer, got {str(value)[:32]!r}')
    return value


def _first_count(*values: Any) -> int | None:
    """The first value that is a count a column takes (a non-negative int under 2**31), else None."""
    for value in values:
        if type(value) is int and 0 <= value < 2**31:
            return value
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


SURVIVORS_ONLY = ("the original X-Ray SDK's process_candidates sends its survivors only: a candidate not among "
                  "them was dropped here if it reached this step")


def _survivor_outcomes(data: dict[str, Any], step: StepRow) -> OutcomeRow | None:
    """Kept outcomes for the ids of ``outputs.survivors``: a list whose items each carry an ``id`` (a string or
    an int); None otherwise (a list of other things, or one string: the SDK's str() of objects)."""
    survivors = _object(data.get("outputs")).get("survivors")
    if not isinstance(survivors, list) or not survivors:
        return None
    ids = []
    for item in survivors:
        value = item.get("id") if isinstance(item, dict) else None
        if type(value) is int:
            value = str(value)
        if type(value) is not str:
            return None
        ids.append(value)
    row = outcomes.read({c.OUTCOME_IDS: ids, c.OUTCOME_CODES: [0] * len(ids), c.OUTCOME_REASONS: []},
                        step.run_id, step.span_id, outcomes.MAX_ID_CHARS)
    whole = step.input_count is not None and step.input_count == len(ids) and row.incomplete is None
    notes = [n for n in (row.incomplete, None if whole else SURVIVORS_ONLY) if n]
    return row._replace(total=step.input_count, incomplete="; ".join(notes) or None)


def _json(data: dict[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else to_json(data[key])


def _first_json(metadata: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if metadata.get(key) is not None:
            return to_json(metadata[key])
    return None


def _capped(value: Any) -> str | None:
    return None if value is None else cap_name(str(value))


def _text(value: Any) -> str | None:
    return None if value is None else clean_text(str(value))
