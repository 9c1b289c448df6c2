"""xray-otel: decision observability for multi-step pipelines, built on OpenTelemetry.

This package's top level is the SDK an application imports; it must stay free of the
server-only dependencies (aiohttp, asyncpg), which live under the ``server`` extra.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .exporter import configure, process_candidates, rank_candidates, start_run, step  # noqa: E402

__all__ = ["__version__", "configure", "process_candidates", "rank_candidates", "start_run", "step"]
