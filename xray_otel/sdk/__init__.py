"""The xray-otel SDK: instrument a pipeline with runs, steps and candidate decisions as OTel spans."""

from __future__ import annotations

from .candidates import process_candidates, rank_candidates, score_candidates
from .provider import build_provider, configure, flush, set_prices
from .runs import Run, Step, current_step, start_run, step

__all__ = [
    "Run",
    "Step",
    "build_provider",
    "configure",
    "current_step",
    "flush",
    "process_candidates",
    "rank_candidates",
    "score_candidates",
    "set_prices",
    "start_run",
    "step",
]
