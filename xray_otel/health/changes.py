"""What changed in a pipeline's steps: the window's figures against the baseline's right before it,
tested by drift.py, as the API's entries (GET /changes, /pipelines/{name}/changes, the alert rules)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..store.reads import Reads


async def find_changes(reads: Reads, pipeline: str | None, window: timedelta, baseline: timedelta,
                       until: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """The changes of ``pipeline`` (every pipeline with runs in the window when None) between
    [until - window, until) and the ``baseline`` right before it, most significant first, at most
    ``limit``. Each entry is JSON-ready: pipeline, step, what, reason, baseline, window, delta,
    statistic, p_value, significant, insufficient_data, examples {baseline, window}, compare."""
    raise NotImplementedError  # landed first as the interface; filled in by the next commits
