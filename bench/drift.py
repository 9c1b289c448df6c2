"""Detection quality of the change tests (xray_otel/health/drift.py), on synthetic pipelines: no server.

A pipeline of 20 filter steps, 300 runs a day at random times. Each step has its own mean drop
rate (5% to 60%) and two or three rejection reasons; each run draws its own drop rate from a beta
distribution around that mean (concentration 40 to 120: run-to-run spread of 4 to 10 points), its
own number of candidates (log-normal, median 150, 20 to 2,000) and splits its rejections over the
reasons by a Dirichlet draw, so counts are overdispersed as real traffic is.

Evaluation, as an alert rule would run it: every 15 minutes, window = the last 2 hours, baseline =
the 7 days before it, one drift.compare over every step and figure (BH across them).

- Detection: a change starts at a random time after 7 days of stable data: one step's drop rate
  +10 points, or a new reason reaching 5% of its step's rejections. Detected when an evaluation
  within 2 hours of the change flags that step with the right figure; the delay is the first such
  evaluation's time after the change.
- False alarms: stable weeks (after a 7-day baseline), evaluated every 15 minutes; one alarm is a
  (step, figure, reason) flagged at an evaluation where it was not flagged at the one before (a
  rising edge: what an alert would fire), counted per simulated week.

    python bench/drift.py [--trials 200] [--weeks 10]
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_otel.health import drift  # noqa: E402

RUNS_PER_DAY, STEPS = 300, 20
EVERY, WINDOW, BASELINE = 15 * 60, 2 * 3600, 7 * 86400
SETTINGS = drift.Settings()


@dataclass
class StepModel:
    name: str
    mean: float
    concentration: float
    reasons: list[str]
    weights: list[float]


NEW = "new_reason"


@dataclass
class Row:
    """One run's step, reduced to what the summaries keep."""
    drop: float
    reasons: dict[str, int]


def make_steps(rng: random.Random) -> list[StepModel]:
    return [StepModel(f"step_{i:02d}", rng.uniform(0.05, 0.6), rng.uniform(40, 120),
                      [f"reason_{i}_{k}" for k in range(rng.choice((2, 3)))], [])
            for i in range(STEPS)]


def run_rows(rng: random.Random, steps: list[StepModel], shift: tuple[str, str] | None) -> dict[str, Row]:
    """One run: per step its drop rate and reasons. ``shift`` = (step, 'drop' | 'reason')."""
    rows = {}
    for s in steps:
        mean = s.mean + (0.10 if shift == (s.name, "drop") else 0.0)
        p = rng.betavariate(mean * s.concentration, (1 - mean) * s.concentration)
        n = max(20, min(2000, int(rng.lognormvariate(math.log(150), 0.8))))
        dropped = sum(rng.random() < p for _ in range(n)) if n <= 60 else round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))
        dropped = max(0, min(n, dropped))
        shares = [rng.gammavariate(3.0, 1.0) for _ in s.reasons]
        total = sum(shares)
        counts = {r: round(dropped * w / total) for r, w in zip(s.reasons, shares)}
        if shift == (s.name, "reason") and dropped:
            counts = {r: round(c * 0.95) for r, c in counts.items()} | {NEW: max(1, round(dropped * 0.05))}
        rows[s.name] = Row(dropped / n, {r: c for r, c in counts.items() if c})
    return rows


def features(step: StepModel, row: Row) -> list[float]:
    """What the day summaries keep of one run's step, as a vector that adds up: rows, drop sum and
    squares, whether it rejected anything, then per reason (the step's and NEW) its count, naming
    rows, its share of the row's rejections and that squared."""
    t = float(sum(row.reasons.values()))
    out = [1.0, row.drop, row.drop * row.drop, 1.0 if t else 0.0, 0.0]
    for reason in step.reasons + [NEW]:
        y = float(row.reasons.get(reason, 0))
        share = y / t if t else 0.0
        out += [y, 1.0 if y else 0.0, share, share * share]
    return out


def stats(step: StepModel, v: list[float]) -> drift.StepStats:
    reasons = {}
    for k, reason in enumerate(step.reasons + [NEW]):
        y, runs, sq, cross = v[5 + 4 * k:9 + 4 * k]
        if runs:
            reasons[reason] = drift.Reason(y, round(runs), sq, cross)
    n = round(v[0])
    return drift.StepStats(rows=n, drop=drift.Moments(n, v[1], v[2]), rejecting_rows=round(v[3]), reasons=reasons)


class Stream:
    """Runs at random times (Poisson, RUNS_PER_DAY a day), kept as running sums per step, so a
    window's figures are two lookups, as the stored day summaries make them for the server."""

    def __init__(self, steps: list[StepModel]) -> None:
        self.steps, self.times = steps, []
        self.cum = [[[0.0] * (5 + 4 * (len(s.reasons) + 1))] for s in steps]

    def grow(self, rng: random.Random, seconds: float, shift_at: float | None = None,
             shift: tuple[str, str] | None = None) -> Stream:
        """Runs up to ``seconds``, those from ``shift_at`` on with ``shift``."""
        t = self.times[-1] if self.times else 0.0
        while True:
            t += rng.expovariate(RUNS_PER_DAY / 86400)
            if t >= seconds:
                return self
            self.times.append(t)
            rows = run_rows(rng, self.steps, shift if shift_at is not None and t >= shift_at else None)
            for s, cum in zip(self.steps, self.cum):
                cum.append([a + b for a, b in zip(cum[-1], features(s, rows[s.name]))])

    def fork(self) -> Stream:
        """A copy to grow apart: the runs so far are shared, never changed."""
        other = Stream(self.steps)
        other.times, other.cum = list(self.times), [list(cum) for cum in self.cum]
        return other

    def side(self, start: float, end: float) -> drift.Side:
        i, j = bisect.bisect_left(self.times, start), bisect.bisect_left(self.times, end)
        return drift.Side(j - i, {s.name: stats(s, [b - a for a, b in zip(cum[i], cum[j])])
                                  for s, cum in zip(self.steps, self.cum)})

    def flagged(self, at: float) -> set[tuple[str, str, str | None]]:
        baseline, window = self.side(at - WINDOW - BASELINE, at - WINDOW), self.side(at - WINDOW, at)
        return {(f.step, f.what, f.reason) for f in drift.compare(baseline, window, SETTINGS) if f.significant}


def detection(trials: int, seed: int) -> tuple[float, list[float], dict[str, float]]:
    rng = random.Random(seed)
    detected, delays, by_kind = 0, [], {"drop": [0, 0], "reason": [0, 0]}
    for trial in range(trials):
        if trial % 10 == 0:  # a new pipeline, its stable week shared by ten trials
            steps = make_steps(rng)
            stable = Stream(steps).grow(rng, BASELINE + WINDOW)
        kind = ("drop", "reason")[trial % 2]
        target = rng.choice(steps).name
        shift_at = BASELINE + WINDOW + rng.uniform(0, EVERY)  # lands anywhere between two evaluations
        stream = stable.fork().grow(rng, shift_at + WINDOW + EVERY, shift_at, (target, kind))
        want = (target, "drop_rate", None) if kind == "drop" else (target, "reason_new", NEW)
        first = math.ceil(shift_at / EVERY) * EVERY
        hit = next((at - shift_at for at in range(int(first), int(shift_at + WINDOW) + 1, EVERY)
                    if want in stream.flagged(at)), None)
        by_kind[kind][1] += 1
        if hit is not None:
            detected += 1
            by_kind[kind][0] += 1
            delays.append(hit / 60)
    return detected / trials, delays, {k: d / n for k, (d, n) in by_kind.items() if n}


def false_alarms(weeks: int, seed: int) -> tuple[int, float]:
    rng = random.Random(seed)
    alarms = 0
    for _ in range(weeks):
        steps = make_steps(rng)
        stream = Stream(steps).grow(rng, BASELINE + WINDOW + 7 * 86400)
        before: set = set()
        for at in range(BASELINE + WINDOW, BASELINE + WINDOW + 7 * 86400, EVERY):
            now = stream.flagged(at)
            alarms += len(now - before)
            before = now
    return alarms, alarms / weeks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    started = time.perf_counter()
    rate, delays, kinds = detection(args.trials, args.seed)
    alarms, per_week = false_alarms(args.weeks, args.seed + 1)
    delays.sort()
    median = delays[len(delays) // 2] if delays else math.nan
    p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))] if delays else math.nan
    print(f"settings: {SETTINGS}")
    print(f"{RUNS_PER_DAY} runs/day, {STEPS} steps, window {WINDOW // 3600} h vs baseline {BASELINE // 86400} d, "
          f"evaluated every {EVERY // 60} min")
    print(f"{'detected within 2 h':<28}{rate:8.1%}   (target >= 95%; {args.trials} injected changes)")
    for kind, value in kinds.items():
        print(f"{'  ' + ('+10 points drop rate' if kind == 'drop' else 'new reason at 5% share'):<28}{value:8.1%}")
    print(f"{'delay (min) median / p95':<28}{median:8.0f} / {p95:.0f}")
    print(f"{'false alarms per week':<28}{per_week:8.2f}   (target <= 1; {alarms} in {args.weeks} stable weeks, "
          f"{args.weeks * 7 * 96} evaluations)")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
