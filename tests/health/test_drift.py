"""The change tests' statistics (xray_otel/health/drift.py), pure: distributions against known values,
the tests against the situations they are for."""

from __future__ import annotations

import math
import random

import pytest

from xray_otel.health import drift
from xray_otel.health.drift import Moments, Reason, Side, StepStats


@pytest.mark.parametrize("t, df, p", [(2.0, 10, 0.07339), (2.228, 10, 0.05), (4.0, 38, 0.000282), (1.96, 1e6, 0.05)])
def test_student_t_two_sided_matches_tables(t, df, p):
    assert drift.t_two_sided(t, df) == pytest.approx(p, rel=2e-3)


def test_binomial_tail_and_the_presence_test():
    assert drift.binomial_tail(3, 10, 0.5) == pytest.approx(sum(math.comb(10, k) for k in range(3, 11)) / 1024)
    assert drift.presence_p(0, 2100, 25, 25) < 1e-40  # a reason in every window run, never before
    assert drift.presence_p(5, 2100, 0, 300) > 0.3  # a rare reason absent for a while: nothing to say
    assert drift.presence_p(0, 100, 0, 100) == 1.0


def moments(values: list[float]) -> Moments:
    return Moments(len(values), sum(values), sum(v * v for v in values))


def test_pooled_t_sees_a_shift_and_not_noise():
    rng = random.Random(1)
    base = moments([rng.betavariate(12, 28) for _ in range(2000)])  # mean 0.3, sd ~0.07
    same = moments([rng.betavariate(12, 28) for _ in range(25)])
    moved = moments([rng.betavariate(16, 24) for _ in range(25)])  # mean 0.4
    assert drift.pooled_t(base, same)[1] > 1e-3
    t, p = drift.pooled_t(base, moved)
    assert t > 4 and p < 1e-4
    assert drift.pooled_t(Moments(30, 9, 2.7), Moments(30, 9, 2.7)) == (0.0, 1.0)  # no spread, no change
    assert drift.pooled_t(Moments(30, 9, 2.7), Moments(30, 12, 4.8))[1] == 0.0  # no spread, a change


def test_benjamini_hochberg_adjusts_in_rank_order():
    findings = [drift.Finding("s", "drop_rate", None, 0, 0, p_value=p) for p in (0.01, 0.04, 0.03, 0.005)]
    drift.adjust(findings)
    assert [f.p_adjusted for f in findings] == pytest.approx([0.02, 0.04, 0.04, 0.02])


def step(rng: random.Random, n: int, mean: float, reasons: dict[str, float]) -> StepStats:
    """n runs of a filter step with beta noise around ``mean``, rejections split by ``reasons`` (shares)."""
    drops, sums = [], {r: [0.0, 0, 0.0, 0.0] for r in reasons}
    for _ in range(n):
        drops.append(rng.betavariate(40 * mean, 40 * (1 - mean)))
        weights = {r: rng.gammavariate(20 * s, 1) for r, s in reasons.items()}
        total = sum(weights.values())
        for r, w in weights.items():
            share = w / total
            sums[r][0] += share * 100
            sums[r][1] += 1
            sums[r][2] += share
            sums[r][3] += share * share
    return StepStats(rows=n, drop=moments(drops), rejecting_rows=n,
                     reasons={r: Reason(*v) for r, v in sums.items()})


def test_compare_flags_the_moved_step_and_reason_and_ranks_them_first():
    rng = random.Random(2)
    base = Side(2000, {"price": step(rng, 2000, 0.3, {"high": 0.7, "low": 0.3}),
                       "rating": step(rng, 2000, 0.5, {"low_rating": 1.0})})
    window = Side(40, {"price": step(rng, 40, 0.5, {"high": 0.85, "low": 0.15}),
                       "rating": step(rng, 40, 0.5, {"low_rating": 1.0})})
    found = drift.compare(base, window)
    flagged = [(f.step, f.what, f.reason) for f in found if f.significant]
    assert set(flagged) == {("price", "drop_rate", None), ("price", "reason_share", "high"),
                            ("price", "reason_share", "low")}
    assert found[0].significant and found[-1].significant is False


def test_compare_says_insufficient_data_and_names_new_and_gone_steps():
    rng = random.Random(3)
    base = Side(2000, {"price": step(rng, 2000, 0.3, {"high": 1.0}), "old": step(rng, 2000, 0.1, {"x": 1.0})})
    few = drift.compare(base, Side(5, {"price": step(rng, 5, 0.9, {"high": 1.0})}))
    assert sorted((f.step, f.what, f.insufficient_data, f.significant) for f in few) == [
        ("old", "step_gone", True, False), ("price", "drop_rate", True, False)]
    window = Side(40, {"price": step(rng, 40, 0.3, {"high": 1.0}), "new": step(rng, 40, 0.1, {"y": 1.0})})
    changed = {(f.step, f.what): f.significant for f in drift.compare(base, window)}
    assert changed[("old", "step_gone")] and changed[("new", "step_new")] and not changed[("price", "drop_rate")]


def test_a_small_move_is_not_significant_however_sure():
    rng = random.Random(4)
    base = Side(20000, {"price": step(rng, 20000, 0.30, {"high": 1.0})})
    window = Side(20000, {"price": step(rng, 20000, 0.31, {"high": 1.0})})
    drop = next(f for f in drift.compare(base, window) if f.what == "drop_rate")
    assert drop.p_adjusted < 1e-6 and not drop.significant  # 1 point: below min_drop_effect
