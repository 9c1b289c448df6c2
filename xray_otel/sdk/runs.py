"""start_run() and step(): a run is a new trace, its steps are spans with ``xray.*`` attributes.

The active run and step travel in the OpenTelemetry Context (contextvars), so nesting
follows asyncio tasks, and threads that are handed the context. Outside a run, ``step``
records nothing and costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar, overload

from opentelemetry import context, trace

from .. import conventions as c
from .decorate import wrap
from .handles import Run, Step, tag_text
from .serialize import to_json
from .provider import tracer

F = TypeVar("F", bound=Callable[..., Any])
_SCOPE = context.create_key("xray_otel.scope")


class _Scope(NamedTuple):
    run: Run
    step: Step | None


def _scope() -> _Scope | None:
    return context.get_value(_SCOPE)  # type: ignore[return-value]


def current_step() -> Step | None:
    """The innermost open step in this context, if any."""
    scope = _scope()
    return scope.step if scope is not None else None


class _Opened(NamedTuple):
    handle: Run | Step
    token: object


def _enter(handle: Run | Step, scope: _Scope) -> _Opened:
    """Make ``handle`` the current span and ``scope`` the current run and step."""
    ctx = trace.set_span_in_context(handle.span, context.set_value(_SCOPE, scope))
    return _Opened(handle, context.attach(ctx))


def _exit(opened: _Opened, exc: BaseException | None) -> None:
    try:
        if exc is not None and opened.handle.recording:
            opened.handle._raised(exc)
        if isinstance(opened.handle, Step):
            opened.handle._ending()
        opened.handle.span.end()
    finally:
        context.detach(opened.token)


class _RunContext:
    __slots__ = ("_name", "_tags", "_inputs", "_open")

    def __init__(self, name: str, tags: Mapping[str, Any] | None, inputs: Any) -> None:
        self._name, self._tags, self._inputs = name, tags or {}, inputs
        self._open: list[_Opened] = []

    def __enter__(self) -> Run:
        run_tracer = tracer()
        attributes: dict[str, Any] = {c.KIND: c.KIND_RUN}
        attributes.update((c.TAG_PREFIX + str(k), tag_text(v)) for k, v in self._tags.items())
        if self._inputs is not None:
            attributes[c.RUN_INPUTS] = to_json(self._inputs)
        caller = trace.get_current_span().get_span_context()
        span = run_tracer.start_span(
            self._name,
            context=context.Context(),  # always a new trace
            links=[trace.Link(caller)] if caller.is_valid else None,
            attributes=attributes,
        )
        run = Run(span, self._name, run_tracer)
        self._open.append(_enter(run, _Scope(run, None)))
        return run

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        _exit(self._open.pop(), exc)


def start_run(name: str, tags: Mapping[str, Any] | None = None, inputs: Any = None) -> _RunContext:
    """Begin a run: ``with start_run("name", tags={...}, inputs=...) as run:``.

    Always a new trace (one run = one trace), linked to the caller's active span if any.
    """
    return _RunContext(name, tags, inputs)


class _StepContext:
    __slots__ = ("_name", "_type", "_inputs", "_metadata", "_record_args", "_record_result", "_open")

    def __init__(self, name: str | None, step_type: str, inputs: Any, metadata: Any,
                 record_args: bool, record_result: bool) -> None:
        self._name, self._type = name, step_type.lower()
        self._inputs, self._metadata = inputs, metadata
        self._record_args, self._record_result = record_args, record_result
        self._open: list[_Opened] = []

    def __enter__(self) -> Step:
        if self._name is None:
            raise ValueError("step() needs a name in a with-statement: with step('name'): ...")
        scope = _scope()
        if scope is None:  # outside any run: a handle that records nothing
            return Step(trace.INVALID_SPAN, self._name, None)
        span = scope.run.tracer.start_span(self._name, attributes={c.KIND: c.KIND_STEP, c.STEP_TYPE: self._type})
        handle = Step(span, self._name, scope.run)
        if self._inputs is not None:
            handle.set_inputs(self._inputs)
        if self._metadata is not None:
            handle.set_metadata(self._metadata)
        self._open.append(_enter(handle, _Scope(scope.run, handle)))
        return handle

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._open:  # empty when entered outside a run
            _exit(self._open.pop(), exc)

    def __call__(self, fn: F) -> F:
        """Decorator form: each call of ``fn`` is one step (sync or async)."""
        return wrap(fn, lambda: _StepContext(self._name or fn.__qualname__, self._type, self._inputs,
                                             self._metadata, False, False),
                    self._record_args, self._record_result)


@overload
def step(name: F) -> F: ...


@overload
def step(name: str | None = None, step_type: str = ..., inputs: Any = None, metadata: Any = None, *,
         record_args: bool = False, record_result: bool = False) -> _StepContext: ...


def step(name: Any = None, step_type: str = c.DEFAULT_STEP_TYPE, inputs: Any = None,
         metadata: Any = None, *, record_args: bool = False, record_result: bool = False) -> Any:
    """A step of the current run: ``with step("name", step_type="llm") as s:`` or ``@step(...)``.

    As a decorator, ``record_args`` / ``record_result`` store the call's arguments and return
    value as the step's inputs / outputs; the name defaults to the function's.
    """
    if callable(name):  # bare @step
        return _StepContext(None, step_type, inputs, metadata, record_args, record_result)(name)
    return _StepContext(name, step_type, inputs, metadata, record_args, record_result)
