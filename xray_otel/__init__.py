"""xray-otel: decision observability for multi-step pipelines, built on OpenTelemetry.

This package's face is the SDK an application imports (``from xray_otel import start_run, step``).
It is loaded lazily (PEP 562): the server's modules live in the same package, and importing one of
them (``xray_otel.mapping``, ``xray_otel.receiver``, ...) must not load the SDK and opentelemetry-sdk.
The SDK itself never imports the server's dependencies (aiohttp, asyncpg: the ``server`` extra).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING, Any

__version__ = version("xray-otel")  # one place: pyproject.toml
__all__ = ["__version__", "configure", "process_candidates", "rank_candidates", "score_candidates", "start_run",
           "step"]

if TYPE_CHECKING:
    from .sdk import configure, process_candidates, rank_candidates, score_candidates, start_run, step


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'xray_otel' has no attribute {name!r}")
