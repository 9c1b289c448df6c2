"""The histograms behind a pipeline's step percentiles, and the figures read from them: pure.

A day's summary (one row per UTC day and step name, migrations/0007_pipeline_days.sql)
holds counts and sums, which add up exactly, and two histograms, which add up bucket by
bucket, so a percentile over any number of days is found without reading a step row again:

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
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
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


def drop_value_sql(expr: str) -> str:
    """SQL for the value the drop-rate bucket of ``expr`` stands for (drop_value of its key)."""
    return f"({drop_key_sql(expr)}::double precision / {DROP_SCALE})"


def duration_value_sql(expr: str) -> str:
    """SQL for the value the duration bucket of ``expr`` stands for (duration_value of its key): the
    same libm pow and the same order of operations, so the same double."""
    key = duration_key_sql(expr)
    return (f"(sign({key})::double precision * 2 * power({GAMMA!r}::double precision,"
            f" (abs({key}) - {_BIAS})::double precision) / ({GAMMA!r}::double precision + 1))")


def drop_value(key: int) -> float:
    return key / DROP_SCALE


def duration_value(key: int) -> float:
    """The value a bucket stands for: the one whose relative error to any member is smallest."""
    if key == 0:
        return 0.0
    magnitude = 2 * GAMMA ** (abs(key) - _BIAS) / (GAMMA + 1)
    return magnitude if key > 0 else -magnitude


def histogram(packed: bytes | None) -> tuple[list[int], list[int]]:
    """Sorted keys and cumulative counts of packed (key, count) int8 pairs in network byte order
    (pipeline_days.py _histogram), from any number of concatenated histograms."""
    pairs = array("q", packed or b"")
    if sys.byteorder == "little":
        pairs.byteswap()
    keys = pairs[0::2].tolist()
    if keys == sorted(keys) and len(set(keys)) == len(keys):  # one histogram (one summary row): as stored
        return keys, list(accumulate(pairs[1::2]))
    counts: dict[int, int] = defaultdict(int)
    for key, count in zip(pairs[0::2], pairs[1::2]):
        counts[key] += count
    keys = sorted(counts)
    return keys, list(accumulate(counts[key] for key in keys))


def percentile(keys: Sequence[int], cumulative: Sequence[int], q: float,
               value: Callable[[int], float]) -> float | None:
    """percentile_cont(q) over the values the buckets stand for, interpolated between the two
    nearest ranks as PostgreSQL's percentile_cont does over raw values."""
    if not keys:
        return None
    position = q * (cumulative[-1] - 1)
    low, high = math.floor(position), math.ceil(position)
    low_value = value(keys[bisect_right(cumulative, low)])
    high_value = value(keys[bisect_right(cumulative, high)])
    return low_value + (position - low) * (high_value - low_value)


def step_figures(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API's figures for one step name from its added-up row (pipeline_days.py _step_figures)."""
    drops, durations = histogram(row["drop_histogram"]), histogram(row["duration_histogram"])
    return {
        "name": row["step"],
        "type": row["type"],
        "count": row["count"],
        "failed_count": row["failed"],
        "avg_drop_rate": row["drop_sum"] / row["drop_n"] if row["drop_n"] else None,
        "p95_drop_rate": percentile(*drops, 0.95, drop_value),
        "avg_cost": float(row["cost_sum"] / row["count"]),
        "duration_ms": {"p50": percentile(*durations, 0.5, duration_value),
                        "p95": percentile(*durations, 0.95, duration_value)},
        "top_rejections": [{"reason": r, "count": c} for r, c in zip(row["reasons"] or (), row["reason_counts"] or ())],
    }


class Sums:
    """One step's summary rows (pipeline_days.SUMMARY_COLUMNS) added up over a bucket: what a
    series point shows and what the change tests read. Counts and sums add exactly; histograms
    are kept packed and concatenated, as _step_figures does in SQL."""

    __slots__ = ("count", "failed", "cost_sum", "cost_sq", "drop_n", "drop_sum", "drop_sq", "input_sum",
                 "output_sum", "rejecting_rows", "offset_n", "offset_sum", "drop_histograms", "duration_histograms", "types", "reasons")

    def __init__(self) -> None:
        self.count = self.failed = self.drop_n = 0
        self.cost_sum = self.cost_sq = self.drop_sum = self.drop_sq = self.input_sum = self.output_sum = 0.0
        self.offset_sum = 0.0
        self.offset_n = self.rejecting_rows = 0
        self.drop_histograms: list[bytes] = []
        self.duration_histograms: list[bytes] = []
        self.types: dict[str, int] = defaultdict(int)
        # reason -> [count, rows naming it, sum of its share of a row's rejections, sum of that squared]
        self.reasons: dict[str, list[float]] = {}

    def add(self, row: Mapping[str, Any]) -> None:
        self.count += row["count"]
        self.failed += row["failed"]
        self.cost_sum += float(row["cost_sum"] or 0)
        self.cost_sq += row["cost_sq_sum"] or 0.0
        self.drop_n += row["drop_n"]
        self.drop_sum += row["drop_sum"] or 0.0
        self.drop_sq += row["drop_sq_sum"] or 0.0
        self.input_sum += float(row["input_sum"] or 0)
        self.output_sum += float(row["output_sum"] or 0)
        self.rejecting_rows += row["rejecting_rows"] or 0
        self.offset_n += row["offset_n"]
        self.offset_sum += row["offset_sum"] or 0.0
        if row["drop_histogram"]:
            self.drop_histograms.append(row["drop_histogram"])
        if row["duration_histogram"]:
            self.duration_histograms.append(row["duration_histogram"])
        for kind, n in zip(row["types"], row["type_counts"]):
            self.types[kind] += n
        reasons = self.reasons
        for reason, n, runs, share, square in zip(row["reasons"] or (), row["reason_counts"] or (),
                                                  row["reason_runs"] or (), row["reason_share_sum"] or (),
                                                  row["reason_share_sq"] or ()):
            sums = reasons.get(reason)
            if sums is None:
                reasons[reason] = [float(n), float(runs), float(share), float(square)]
            else:
                sums[0] += float(n)
                sums[1] += float(runs)
                sums[2] += float(share)
                sums[3] += float(square)

    @property
    def offset_s(self) -> float:
        """Mean start offset from the run's start: steps sort by it, as they sit in their runs."""
        return self.offset_sum / self.offset_n if self.offset_n else math.inf

    @property
    def type(self) -> str | None:
        return min(self.types, key=lambda kind: (-self.types[kind], kind)) if self.types else None

    def drops(self) -> tuple[list[int], list[int]]:
        return histogram(b"".join(self.drop_histograms))

    def durations(self) -> tuple[list[int], list[int]]:
        return histogram(b"".join(self.duration_histograms))


def log_duration_moments(keys: Sequence[int], cumulative: Sequence[int]) -> tuple[int, float, float]:
    """(n, mean, sum of squares) of ln(duration ms) over a duration histogram's positive buckets:
    the log scale on which a change in duration is tested (a duration's spread grows with it)."""
    n, total, squares, before = 0, 0.0, 0.0, 0
    for key, running in zip(keys, cumulative):
        count, before = running - before, running
        if key > 0:
            value = math.log(duration_value(key))
            n, total, squares = n + count, total + count * value, squares + count * value * value
    return n, (total / n if n else 0.0), squares
