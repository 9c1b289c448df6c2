"""The xray-otel SDK: instrument a pipeline with runs and steps as OTel spans."""

from __future__ import annotations

from .sdk import Run, Step, current_step, start_run, step
from .setup import build_provider, configure, flush

__all__ = [
    "Run",
    "Step",
    "build_provider",
    "configure",
    "current_step",
    "flush",
    "start_run",
    "step",
]
