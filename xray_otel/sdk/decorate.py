"""The decorator form of step(): one step per call, for plain and async functions."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def wrap(fn: F, open_step: Callable[[], AbstractContextManager[Any]], record_args: bool, record_result: bool) -> F:
    """``fn`` run inside a fresh step each call; arguments and result recorded when asked."""
    signature = inspect.signature(fn) if record_args else None

    def before(s: Any, args: tuple, kwargs: dict) -> None:
        if signature is not None and s.recording:
            s.set_inputs(_arguments(signature, args, kwargs))

    def after(s: Any, result: Any) -> Any:
        if record_result:
            s.set_outputs(result)
        return result

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_step(*args: Any, **kwargs: Any) -> Any:
            with open_step() as s:
                before(s, args, kwargs)
                return after(s, await fn(*args, **kwargs))

        return async_step  # type: ignore[return-value]

    @functools.wraps(fn)
    def sync_step(*args: Any, **kwargs: Any) -> Any:
        with open_step() as s:
            before(s, args, kwargs)
            return after(s, fn(*args, **kwargs))

    return sync_step  # type: ignore[return-value]


def _arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments by parameter name, defaults included, without ``self``/``cls``."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:  # the call itself is about to fail with a clearer message
        return {"args": args, "kwargs": kwargs}
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
