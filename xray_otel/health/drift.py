"""Pure statistics for change detection: did a step behave differently in a window than in the
baseline right before it? No I/O; docs/health.md explains the tests and how to tune them.

Runs are the unit, never candidates. Candidates of one run are not independent coin flips: a
query that finds poor matches rejects many at once, so per-candidate counts are overdispersed
and a binomial test over them would cry wolf. Every test here treats one step execution (a run's
step) as one observation and estimates the run-to-run spread from the data:

- drop rate, cost, log duration: the mean over runs, a two-sample Student t test with the variance
  pooled over both sides (under "nothing changed" the sides share one distribution; the pooled
  variance is dominated by the long baseline, so a short window is judged against a well-measured
  spread, as a quasi-binomial test with the dispersion estimated from the baseline would be);
- a reason's share of the step's rejections: per run, the reason's count over all reasons' counts,
  and the same pooled t test over runs, so a run that rejects 500 candidates for one reason weighs
  as one run's worth of evidence, not 500 (a ratio of sums, weighting runs by their rejections,
  cried wolf in bench/drift.py: a few big runs dominate a short window);
- a reason (or step) that is new or gone: the runs naming it, conditioned on their total, fall in
  the window binomially in proportion to the window's share of runs (an exact test).

The p-values of one evaluation (one pipeline: every step x figure) are corrected together by
Benjamini-Hochberg, and a change is ``significant`` only when its adjusted p-value is below
``alpha`` *and* it moved at least the minimum effect: with a week of baseline even a tiny drift
is "statistically" real, but nobody should be paged for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WHATS = ("drop_rate", "reason_share", "reason_new", "reason_gone", "step_new", "step_gone", "cost", "duration")


@dataclass(frozen=True)
class Settings:
    """The knobs (docs/health.md, "Tuning")."""
    alpha: float = 0.001  # false discovery rate over one pipeline's comparisons (BH)
    min_runs: int = 15  # step executions needed on each side before anything is said
    min_drop_effect: float = 0.03  # absolute change of the mean drop rate
    min_share_effect: float = 0.02  # absolute change of a reason's share (and a new/gone reason's share)
    min_relative_effect: float = 0.25  # cost and duration: |window / baseline - 1|
    min_presence_runs: int = 3  # runs naming a new reason (having a new step) before it can be flagged


@dataclass(frozen=True)
class Moments:
    """n observations, their sum and sum of squares: they add up across days exactly."""
    n: int
    total: float
    squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def ss(self) -> float:
        """Sum of squared deviations from the mean (never negative, whatever the rounding)."""
        return max(0.0, self.squares - self.total * self.total / self.n) if self.n else 0.0


@dataclass(frozen=True)
class Reason:
    """One reason at one step over one side: its count summed, the rows naming it, and over the rows
    that rejected anything the sum of its share of the row's rejections and of that share squared."""
    count: float
    runs: int
    share_sum: float
    share_squares: float


@dataclass
class StepStats:
    """One step over one side (baseline or window)."""
    rows: int  # step executions
    drop: Moments | None = None  # per-run drop rates
    cost: Moments | None = None  # per-run cost
    log_duration: Moments | None = None  # per-run ln(duration ms)
    duration_p50: float | None = None  # shown, not tested
    rejecting_rows: int = 0  # rows that rejected anything (their reasons add up to more than 0)
    reasons: dict[str, Reason] = field(default_factory=dict)


@dataclass
class Side:
    runs: int  # runs of the pipeline
    steps: dict[str, StepStats]


@dataclass
class Finding:
    step: str
    what: str
    reason: str | None
    baseline: float | None
    window: float | None
    statistic: float | None = None  # t or z; None for the exact tests and when not tested
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    insufficient_data: bool = False
    big_enough: bool = False  # moved at least the minimum effect

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.window is None else self.window - self.baseline


def compare(baseline: Side, window: Side, settings: Settings = Settings()) -> list[Finding]:
    """Every comparison of the two sides, ranked: significant first, then by adjusted p-value."""
    findings: list[Finding] = []
    for name in list(baseline.steps) + [n for n in window.steps if n not in baseline.steps]:
        findings += _step(name, baseline, window, settings)
    adjust(findings)
    for f in findings:
        f.significant = (not f.insufficient_data and f.p_adjusted is not None and f.p_adjusted <= settings.alpha
                         and f.big_enough)
    return sorted(findings, key=rank)


def rank(f: Finding) -> tuple:
    """The order findings are shown in: significant first, insufficient data last, then by adjusted p."""
    return (not f.significant, f.insufficient_data, f.p_adjusted if f.p_adjusted is not None else 2.0,
            -abs(f.statistic or 0.0), f.step, f.what, f.reason or "")


def _step(name: str, baseline: Side, window: Side, s: Settings) -> list[Finding]:
    b, w = baseline.steps.get(name), window.steps.get(name)
    if b is None or w is None:
        # a step may run more than once in a run: its rows, capped, stand for the runs that have it
        return [_presence(name, "step_new" if b is None else "step_gone", None,
                          (min(b.rows, baseline.runs) if b else 0, baseline.runs),
                          (min(w.rows, window.runs) if w else 0, window.runs), s)]
    if min(b.rows, w.rows) < s.min_runs:
        shown = (b.drop.mean, w.drop.mean) if b.drop and w.drop and b.drop.n and w.drop.n else (None, None)
        return [Finding(name, "drop_rate", None, *shown, insufficient_data=True)]
    found = []
    if b.drop and w.drop and min(b.drop.n, w.drop.n) >= s.min_runs:
        found.append(_mean_shift(name, "drop_rate", b.drop, w.drop, b.drop.mean, w.drop.mean,
                                 abs(w.drop.mean - b.drop.mean) >= s.min_drop_effect))
    if b.cost and w.cost and b.cost.mean > 0:
        found.append(_mean_shift(name, "cost", b.cost, w.cost, b.cost.mean, w.cost.mean,
                                 abs(w.cost.mean / b.cost.mean - 1) >= s.min_relative_effect))
    if b.log_duration and w.log_duration and min(b.log_duration.n, w.log_duration.n) >= s.min_runs:
        ratio = math.exp(w.log_duration.mean - b.log_duration.mean)
        found.append(_mean_shift(name, "duration", b.log_duration, w.log_duration, b.duration_p50, w.duration_p50,
                                 abs(ratio - 1) >= s.min_relative_effect))
    return found + _reasons(name, b, w, s)


def _mean_shift(step: str, what: str, b: Moments, w: Moments, shown_b: float | None, shown_w: float | None,
                big_enough: bool) -> Finding:
    t, p = pooled_t(b, w)
    return Finding(step, what, None, shown_b, shown_w, statistic=t, p_value=p, big_enough=big_enough)


def _reasons(step: str, b: StepStats, w: StepStats, s: Settings) -> list[Finding]:
    found = []
    for reason in list(b.reasons) + [r for r in w.reasons if r not in b.reasons]:
        rb, rw = b.reasons.get(reason), w.reasons.get(reason)
        share_b = rb.share_sum / b.rejecting_rows if rb and b.rejecting_rows else 0.0
        share_w = rw.share_sum / w.rejecting_rows if rw and w.rejecting_rows else 0.0
        if rb is None or rw is None or not rb.runs or not rw.runs:
            what = "reason_new" if rb is None or not rb.runs else "reason_gone"
            f = _presence(step, what, reason, (rb.runs if rb else 0, b.rows), (rw.runs if rw else 0, w.rows), s)
            f.baseline, f.window = share_b, share_w
            f.big_enough = f.big_enough and max(share_b, share_w) >= s.min_share_effect
            found.append(f)
            continue
        if min(b.rejecting_rows, w.rejecting_rows) < s.min_runs:
            found.append(Finding(step, "reason_share", reason, share_b, share_w, insufficient_data=True))
            continue
        t, p = pooled_t(Moments(b.rejecting_rows, rb.share_sum, rb.share_squares),
                        Moments(w.rejecting_rows, rw.share_sum, rw.share_squares))
        found.append(Finding(step, "reason_share", reason, share_b, share_w, statistic=t, p_value=p,
                             big_enough=abs(share_w - share_b) >= s.min_share_effect))
    return found


def _presence(step: str, what: str, reason: str | None, b: tuple[int, int], w: tuple[int, int],
              s: Settings) -> Finding:
    """A step or reason present on one side only: ``b`` and ``w`` are (runs with it, runs)."""
    (kb, nb), (kw, nw) = b, w
    f = Finding(step, what, reason, kb / nb if nb else None, kw / nw if nw else None)
    if min(nb, nw) < s.min_runs:
        f.insufficient_data = True
        return f
    f.p_value = presence_p(kb, nb, kw, nw)
    f.big_enough = max(kb, kw) >= s.min_presence_runs
    return f


# --- the tests ---------------------------------------------------------------------------------


def pooled_t(b: Moments, w: Moments) -> tuple[float, float]:
    """Two-sample Student t of the window's mean against the baseline's, variance pooled; (t, two-sided p)."""
    df = b.n + w.n - 2
    if df <= 0:
        return 0.0, 1.0
    variance = (b.ss + w.ss) / df
    diff = w.mean - b.mean
    if variance <= 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / math.sqrt(variance * (1 / b.n + 1 / w.n))
    return t, t_two_sided(t, df)


def presence_p(kb: int, nb: int, kw: int, nw: int) -> float:
    """Exact test that runs naming something fall in the window as often as in the baseline: given
    k = kb + kw of them, the window's count is Binomial(k, nw / (nb + nw)) under no change;
    two-sided by doubling the smaller tail."""
    k, f = kb + kw, nw / (nb + nw)
    if k == 0:
        return 1.0
    upper = binomial_tail(kw, k, f)  # P(X >= kw)
    lower = 1.0 - binomial_tail(kw + 1, k, f) if kw < k else 1.0  # P(X <= kw)
    return min(1.0, 2 * min(upper, lower))


def adjust(findings: list[Finding]) -> None:
    """Benjamini-Hochberg adjusted p-values over the findings that were tested."""
    tested = sorted((f for f in findings if f.p_value is not None), key=lambda f: f.p_value)
    m, running = len(tested), 1.0
    for i in range(m - 1, -1, -1):
        running = min(running, tested[i].p_value * m / (i + 1))
        tested[i].p_adjusted = running


# --- distributions (no SciPy: the server has no numeric dependencies) ---------------------------


def normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / (df + t * t), df / 2, 0.5)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact for any n the store holds)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(term - top) for term in terms))


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) by its continued fraction (modified Lentz), the symmetric form where it converges fast."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - regularized_beta(1 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return min(1.0, front * result)
