"""Run and Step handles: what ``start_run`` and ``step`` give back, writing ``xray.*`` attributes.

Every public method is safe: a bad value is logged, never raised into the application.
A handle outside a run (or of an unsampled span) records nothing, cheaply.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from .. import conventions as c
from .outcomes import OUTCOME_KEYS, Outcomes, drop_attributes
from .provider import price_table
from .serialize import to_json, truncate

log = logging.getLogger("xray_otel")

F = TypeVar("F", bound=Callable[..., Any])
MAX_TAG_CHARS = 1_024
_UNSET: Any = object()
_unpriced_models: set[str] = set()


def _guard(method: F) -> F:
    """Instrumentation must never break the application: log the failure and carry on."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            log.warning("xray-otel: %s failed", method.__qualname__, exc_info=True)
            return None

    return guarded  # type: ignore[return-value]


def _payload(value: Any, fields: dict[str, Any]) -> Any:
    """``set_outputs(x)``, ``set_outputs(a=1)`` and ``set_outputs({"a": 1}, b=2)`` all work."""
    if value is _UNSET:
        return fields
    if not fields:
        return value
    return {**value, **fields} if isinstance(value, Mapping) else {"value": value, **fields}


class _Handle:
    __slots__ = ("span", "name")

    def __init__(self, span: trace.Span, name: str) -> None:
        self.span = span
        self.name = name

    @property
    def recording(self) -> bool:
        """False outside a run (or when the span is not sampled): nothing is recorded."""
        return self.span.is_recording()

    def _set_json(self, key: str, value: Any, fields: dict[str, Any]) -> None:
        if self.span.is_recording():
            self.span.set_attribute(key, to_json(_payload(value, fields)))


class Run(_Handle):
    """One execution of a pipeline: the root span of its own trace."""

    __slots__ = ("run_id", "tracer", "_failure")

    def __init__(self, span: trace.Span, name: str, run_tracer: trace.Tracer) -> None:
        super().__init__(span, name)
        # The trace id as a UUID: the id in the receiver's /runs/{run_id} and /analyze/{run_id}.
        self.run_id = str(uuid.UUID(int=span.get_span_context().trace_id))
        self.tracer = run_tracer  # where this run's steps come from
        self._failure: BaseException | None = None

    @_guard
    def set_outputs(self, value: Any = _UNSET, /, **fields: Any) -> None:
        """The run's final result (any JSON-able value; replaces an earlier call)."""
        self._set_json(c.RUN_OUTPUTS, value, fields)

    @_guard
    def set_tag(self, key: str, value: Any) -> None:
        """Add one tag (``xray.tag.<key>``), as ``start_run(tags=...)`` does."""
        self.span.set_attribute(c.TAG_PREFIX + key, tag_text(value))

    def _fail(self, exc: BaseException, where: str = "") -> None:
        if self._failure is exc:  # the failing step already said where it happened
            return
        self._failure = exc
        self.span.set_status(Status(StatusCode.ERROR, f"{where}{_error_text(exc)}"))

    def _raised(self, exc: BaseException) -> None:
        """``exc`` escaped the run's with-block."""
        self._fail(exc)
        self.span.record_exception(exc)


class Step(_Handle):
    """One decision-making step of a run: a child span of the run or of another step."""

    __slots__ = ("_run", "_cost", "_input_tokens", "_output_tokens", "_priced_only", "_outcomes")

    def __init__(self, span: trace.Span, name: str, run: Run | None) -> None:
        super().__init__(span, name)
        self._run = run
        self._cost = 0.0
        self._input_tokens = self._output_tokens = 0
        self._priced_only = True
        self._outcomes: Outcomes | None = None

    @_guard
    def set_inputs(self, value: Any = _UNSET, /, **fields: Any) -> None:
        """What the step received (replaces an earlier call)."""
        self._set_json(c.STEP_INPUTS, value, fields)

    @_guard
    def set_outputs(self, value: Any = _UNSET, /, **fields: Any) -> None:
        """What the step produced (replaces an earlier call)."""
        self._set_json(c.STEP_OUTPUTS, value, fields)

    @_guard
    def set_metadata(self, value: Any = _UNSET, /, **fields: Any) -> None:
        """Anything else worth keeping: parameters, thresholds, versions."""
        self._set_json(c.STEP_METADATA, value, fields)

    @_guard
    def set_reasoning(self, text: str) -> None:
        """Why the step decided what it decided, in words."""
        if self.span.is_recording():
            self.span.set_attribute(c.STEP_REASONING, truncate(str(text)))

    @_guard
    def set_cost(self, usd: float) -> None:
        """The step's cost in USD, replacing whatever ``record_llm`` added up."""
        self._cost, self._priced_only = float(usd), False
        self._write_cost()

    @_guard
    def record_llm(self, model: str, input_tokens: int | None = None, output_tokens: int | None = None,
                   cost: float | None = None) -> None:
        """One LLM call: GenAI model and token attributes, and its cost added to the step's.

        Without ``cost``, the price table (``xray_otel.pricing``) prices the tokens.
        """
        if not self.span.is_recording():
            return
        self._input_tokens += int(input_tokens or 0)
        self._output_tokens += int(output_tokens or 0)
        self.span.set_attributes({
            c.GEN_AI_REQUEST_MODEL: model,
            c.GEN_AI_INPUT_TOKENS: self._input_tokens,
            c.GEN_AI_OUTPUT_TOKENS: self._output_tokens,
        })
        if cost is None:
            cost = price_table().cost_of(model, input_tokens, output_tokens)
            if cost is None:
                _warn_unpriced(model)
                return
        else:
            self._priced_only = False
        self._cost += float(cost)
        self._write_cost()

    def _write_cost(self) -> None:
        if self.span.is_recording():
            self.span.set_attribute(c.STEP_COST, self._cost)
            self.span.set_attribute(c.STEP_COST_SOURCE, "price_table" if self._priced_only else "explicit")

    @_guard
    def set_counts(self, input_count: int | None = None, output_count: int | None = None,
                   rejections: Mapping[str, int] | None = None) -> None:
        """Funnel figures by hand, e.g. ``set_counts(output_count=len(hits))`` after a retrieval."""
        if not self.span.is_recording():
            return
        if input_count is not None:
            self.span.set_attribute(c.STEP_INPUT_COUNT, int(input_count))
        if output_count is not None:
            self.span.set_attribute(c.STEP_OUTPUT_COUNT, int(output_count))
        if rejections is not None:
            self.span.set_attribute(c.STEP_REJECTIONS, to_json({str(k): int(v) for k, v in rejections.items()}))

    def _set_decisions(self, decisions_json: str | None, capture: str, dropped: int, sample: dict[str, Any]) -> None:
        """The decisions sample (JSON, None for none) and how it was drawn (``xray.step.sample.*``),
        replacing what an earlier helper call on this step set."""
        if self.span.is_recording():
            self.span.set_attribute(c.STEP_CAPTURE, capture)
            self.span.set_attribute(c.STEP_DECISIONS_DROPPED, dropped)
            drop_attributes(self.span, [key for key in (c.STEP_DECISIONS, *c.STEP_SAMPLE_KEYS)
                                        if key not in sample and (key != c.STEP_DECISIONS or decisions_json is None)])
            self.span.set_attributes(sample)
            if decisions_json is not None:
                self.span.set_attribute(c.STEP_DECISIONS, decisions_json)

    def _set_outcomes(self, outcomes: Outcomes | None) -> None:
        """Every candidate's outcome (part 0 now, the other parts when the step ends); None removes them.

        A later helper call on the same step replaces an earlier one's outcomes, as it does its counts.
        """
        if not self.span.is_recording():
            return
        self._outcomes = outcomes if outcomes is not None and len(outcomes.bounds) > 1 else None
        if outcomes is None:
            drop_attributes(self.span, OUTCOME_KEYS)
        else:
            outcomes.set_first(self.span)

    def _ending(self) -> None:
        """Just before the step span ends: send the outcome parts that did not fit on it."""
        outcomes, self._outcomes = self._outcomes, None
        if outcomes is not None and self._run is not None and self.span.is_recording():
            try:
                outcomes.send_rest(self.span, self.name, self._run.tracer)
            except Exception:
                log.warning("xray-otel: sending the outcomes of step %r failed", self.name, exc_info=True)

    def _raised(self, exc: BaseException) -> None:
        """``exc`` escaped the step's with-block: the step and its run failed."""
        self.span.set_status(Status(StatusCode.ERROR, _error_text(exc)))
        self.span.record_exception(exc)
        if self._run is not None:
            self._run._fail(exc, f"step {self.name!r} failed: ")


def _error_text(exc: BaseException) -> str:
    return truncate(f"{type(exc).__name__}: {exc}")


def tag_text(value: Any) -> str:
    return truncate(value if isinstance(value, str) else to_json(value), MAX_TAG_CHARS)


def _warn_unpriced(model: str) -> None:
    if model not in _unpriced_models:
        _unpriced_models.add(model)
        log.warning("xray-otel: no price for model %r; pass cost= or add its price with configure(prices={...})", model)

