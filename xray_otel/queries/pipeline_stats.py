"""The histograms behind a pipeline's step percentiles, and the figures read from them: pure.

A day's summary (one row per UTC day and step name, migrations/0007_pipeline_days.sql)
holds counts and sums, which add up exactly, and two histograms, from which a percentile
over any number of days is found without reading a step row again:

- drop rate in steps of 0.001, the UI's 0.1% (a percentile is within 0.0005 of the exact one);
- duration on a log scale, buckets growing by 2% (within 1% of the exact value), the
  bucketing DDSketch uses (Masson et al., VLDB 2019).

The SQL that fills the buckets is spelt here too, so the rule lives in one place.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

DROP_SCALE = 1_000
GAMMA = 1.02
_LN_GAMMA = math.log(GAMMA)
# Keys of non-zero durations are offset by this, so a key's sign is the value's and 0 is
# zero; durations down to 1.02 ** -1000 ms (about 2.5e-9 ms) keep buckets of their own.
_BIAS = 1000


def drop_key_sql(expr: str) -> str:
    """SQL for the drop-rate bucket of ``expr`` (double precision)."""
    return f"round(({expr}) * {DROP_SCALE})::bigint"


def duration_key_sql(expr: str) -> str:
    """SQL for the duration bucket of ``expr`` (milliseconds, double precision)."""
    return (f"(CASE WHEN ({expr}) = 0 THEN 0 ELSE sign({expr})::integer"
            f" * greatest(1, ceil(ln(abs({expr})) / {_LN_GAMMA!r})::integer + {_BIAS}) END)")


def drop_value(key: int) -> float:
    return key / DROP_SCALE


def duration_value(key: int) -> float:
    """The value a bucket stands for: the one whose relative error to any member is smallest."""
    if key == 0:
        return 0.0
    magnitude = 2 * GAMMA ** (abs(key) - _BIAS) / (GAMMA + 1)
    return magnitude if key > 0 else -magnitude


Histogram = tuple[Sequence[int], Sequence[int]]  # sorted keys, cumulative counts


def histogram(packed: bytes | None) -> Histogram:
    """A stored histogram as its keys and cumulative counts: int8 pairs (key, values up to and
    including that key) in key order and network byte order (queries/sql.py _histogram)."""
    pairs = array("q", packed or b"")
    if sys.byteorder == "little":
        pairs.byteswap()
    return pairs[0::2].tolist(), pairs[1::2].tolist()  # lists bisect faster than arrays


def percentile(parts: Sequence[Histogram], q: float, value: Callable[[int], float]) -> float | None:
    """percentile_cont(q) over the values the buckets of all ``parts`` stand for, interpolated
    between the two nearest ranks as PostgreSQL's percentile_cont does over raw values. The
    parts are never merged: the key at a rank is found by bisecting the key range, counting
    each part's values up to a key by bisecting its sorted keys."""
    parts = [part for part in parts if part[0]]
    n = sum(cumulative[-1] for _, cumulative in parts)
    if not n:
        return None
    position = q * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    low_value, high_value = value(_key_at(parts, low)), value(_key_at(parts, high))
    return low_value + (position - low) * (high_value - low_value)


def _key_at(parts: Sequence[Histogram], rank: int) -> int:
    """The smallest key with more than ``rank`` values at or below it (rank counts from 0)."""
    low, high = min(keys[0] for keys, _ in parts), max(keys[-1] for keys, _ in parts)
    while low < high:
        middle = (low + high) // 2
        if _count_upto(parts, middle) > rank:
            high = middle
        else:
            low = middle + 1
    return low


def _count_upto(parts: Sequence[Histogram], key: int) -> int:
    return sum(cumulative[i - 1] for keys, cumulative in parts if (i := bisect_right(keys, key)))


class _Step:
    """One step name's figures, added up over its summaries."""

    def __init__(self) -> None:
        self.count = self.failed = self.drop_n = self.offset_n = 0
        self.cost_sum: Any = 0
        self.drop_sum = self.offset_sum = 0.0
        self.types: dict[str, int] = defaultdict(int)
        self.reasons: dict[str, Any] = defaultdict(int)
        self.drops: list[Histogram] = []
        self.durations: list[Histogram] = []

    def add(self, row: Mapping[str, Any]) -> None:
        self.count += row["count"]
        self.failed += row["failed"]
        self.cost_sum += row["cost_sum"]
        self.drop_n += row["drop_n"]
        self.drop_sum += row["drop_sum"] or 0.0
        self.offset_n += row["offset_n"]
        self.offset_sum += row["offset_sum"] or 0.0
        for into, keys, counts in ((self.types, row["types"], row["type_counts"]),
                                   (self.reasons, row["reasons"], row["reason_counts"])):
            for key, count in zip(keys or (), counts or ()):
                into[key] += count
        self.drops.append(histogram(row["drop_histogram"]))
        self.durations.append(histogram(row["duration_histogram"]))

    def offset(self) -> float | None:
        return self.offset_sum / self.offset_n if self.offset_n else None

    def figures(self, name: str, top_reasons: int) -> dict[str, Any]:
        reasons = sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:top_reasons]
        return {
            "name": name,
            "type": min(self.types.items(), key=lambda kv: (-kv[1], kv[0]))[0],
            "count": self.count,
            "failed_count": self.failed,
            "avg_drop_rate": self.drop_sum / self.drop_n if self.drop_n else None,
            "p95_drop_rate": percentile(self.drops, 0.95, drop_value),
            "avg_cost": float(self.cost_sum / self.count),
            "duration_ms": {"p50": percentile(self.durations, 0.5, duration_value),
                            "p95": percentile(self.durations, 0.95, duration_value)},
            "top_rejections": [{"reason": r, "count": float(c)} for r, c in reasons],
        }


def merge(summaries: Iterable[Mapping[str, Any]], top_reasons: int, limit: int) -> list[dict[str, Any]]:
    """Per step name, the figures over all its summaries (any days, any parts of days), in the
    order steps sit in their runs: mean offset from the run's start (steps without a start
    time last), then name. Counts, sums and reasons add exactly; percentiles are the sketch's."""
    steps: dict[str, _Step] = defaultdict(_Step)
    for row in summaries:
        steps[row["step"]].add(row)
    order = sorted(steps, key=lambda name: (steps[name].offset() is None, steps[name].offset() or 0.0, name))
    return [steps[name].figures(name, top_reasons) for name in order[:limit]]
