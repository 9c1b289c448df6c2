"""Which candidates' payloads a step keeps: chosen for debugging, not first come.

Outcomes (every candidate's fate) are exact; what a candidate looked like (its score, label, the value
a filter compared) is kept for a sample. The sample holds, in the default capture:

- **watched** ids, always: ``watch=[...]`` on a helper and ``XRAY_WATCH_IDS`` (comma-separated);
- the **boundary**: when ``filter_fn`` returns ``(keep, reason, value)``, the BOUNDARY_PER_SIDE dropped
  candidates of each reason whose value is nearest the kept ones, and the kept nearest those; in a
  ranking, the last kept and the first cut;
- **survivors**: every kept candidate up to MAX_SURVIVORS, past it a uniform random draw;
- a **reservoir** of PER_REASON candidates of each reason, drawn uniformly over the input (the sample a
  reservoir gives, drawn after the loop from the codes, so the filter loop stays tight).

Each pick says why it is there (``sampled_as``); when a candidate qualifies twice the first of watched,
boundary, survivor, reservoir names it. Draws use ``random.Random(seed)``, the seed made from the step's
name and size: the same step gives the same sample, and a test can rely on it.
"""

from __future__ import annotations

import functools
import heapq
import os
import random
import zlib
from array import array
from collections.abc import Iterable, Sequence
from itertools import compress
from typing import Any

from .. import conventions as c
from .outcomes import warn_once

WATCH_IDS_ENV = "XRAY_WATCH_IDS"
"""Comma-separated candidate ids whose payload every step samples (read at configure() or first use)."""
MAX_SURVIVORS = 100
PER_REASON = 5
BOUNDARY_PER_SIDE = 5
MAX_WATCHED = 1_000
"""Most watched candidates sampled in one step (a step meets its watched ids once each, as a rule)."""
_CHUNK = 1_024  # codes counted per C call when locating the n-th candidate of a reason
_INDEXED = 8  # up to this many watched ids, each is looked up with list.index; more: one pass with a set

_env_watched: frozenset[str] | None = None


def load_watched() -> frozenset[str]:
    """Read XRAY_WATCH_IDS now (configure() calls this; else the first step that samples does)."""
    global _env_watched
    text = os.environ.get(WATCH_IDS_ENV, "")
    _env_watched = frozenset(part.strip() for part in text.split(",") if part.strip())
    return _env_watched


def watched_ids(extra: Iterable[Any] | None = None) -> frozenset[str]:
    """The ids to watch in a step: the environment's and the helper's ``watch=``."""
    env = _env_watched if _env_watched is not None else load_watched()
    if not extra:
        return env
    if isinstance(extra, str):  # watch="B0X": one id, not its characters
        extra = (extra,)
    return env | {str(i) for i in extra}


def seed_for(step_name: str, n: int) -> int:
    """The seed of a step's random draws: the same step name and size, the same sample."""
    return zlib.crc32(f"{step_name}\0{n}".encode("utf-8", "surrogatepass"))


def filter_picks(codes: bytearray | array, counts: list[int], values: list[Any] | None, ids: Sequence[str],
                 watch: frozenset[str], rng: random.Random) -> dict[int, str]:
    """Positions to sample in a filter's input, each with why: ``{index: sampled_as}``."""
    picks: dict[int, str] = {}
    for r, count in enumerate(counts):
        if count:
            why = c.SAMPLED_SURVIVOR if r == 0 else c.SAMPLED_RESERVOIR
            for i in spread(codes, r, count, MAX_SURVIVORS if r == 0 else PER_REASON, rng):
                picks[i] = why
    if values is not None:
        picks.update(dict.fromkeys(boundary(codes, values, BOUNDARY_PER_SIDE), c.SAMPLED_BOUNDARY))
    picks.update(dict.fromkeys(watched_positions(ids, watch), c.SAMPLED_WATCHED))
    return picks


def rank_picks(order: list[int], k: int, ids: Sequence[str], watch: frozenset[str],
               rng: random.Random) -> dict[int, str]:
    """Positions *in the ranking* to sample: the best kept, the last kept and first cut (boundary), a
    random few of the rest of the cut, and watched ids."""
    n = len(order)
    picks = dict.fromkeys(range(min(k, MAX_SURVIVORS)), c.SAMPLED_SURVIVOR)
    rest = range(k + BOUNDARY_PER_SIDE, n)
    picks.update(dict.fromkeys(rng.sample(rest, min(PER_REASON, len(rest))), c.SAMPLED_RESERVOIR))
    if 0 < k < n:
        picks.update(dict.fromkeys(range(max(k - BOUNDARY_PER_SIDE, 0), min(k + BOUNDARY_PER_SIDE, n)),
                                   c.SAMPLED_BOUNDARY))
    if watch:
        position = {index: p for p, index in enumerate(order)}
        picks.update((position[i], c.SAMPLED_WATCHED) for i in watched_positions(ids, watch))
    return picks


def score_picks(best: list[int], n: int, ids: Sequence[str], watch: frozenset[str],
                rng: random.Random) -> dict[int, str]:
    """Positions in the input to sample when nothing is dropped: the best scores, a random few of the
    others (so low scores are seen too), and watched ids."""
    picks = dict.fromkeys(best, c.SAMPLED_SURVIVOR)
    if n > len(picks):
        chosen = set(best)
        others = [i for i in rng.sample(range(n), min(n, len(best) + PER_REASON)) if i not in chosen]
        picks.update(dict.fromkeys(others[:PER_REASON], c.SAMPLED_RESERVOIR))
    picks.update(dict.fromkeys(watched_positions(ids, watch), c.SAMPLED_WATCHED))
    return picks


def spread(codes: bytearray | array, code: int, count: int, k: int, rng: random.Random) -> list[int]:
    """``k`` positions drawn uniformly among the ``count`` positions holding ``code`` (all when fewer)."""
    if count <= k and type(codes) is bytearray:  # all of them: one pass at C speed
        return list(compress(range(len(codes)), codes.translate(_mask(code))))
    targets = range(count) if count <= k else sorted(rng.sample(range(count), k))
    if type(codes) is not bytearray:  # 16-bit codes (past 255 reasons): rare, a plain pass
        members = [i for i, x in enumerate(codes) if x == code]
        return [members[t] for t in targets]
    found: list[int] = []
    seen, start, n = 0, 0, len(codes)
    for t in targets:
        while True:  # skip whole chunks, counting at C speed
            in_chunk = codes.count(code, start, min(start + _CHUNK, n))
            if seen + in_chunk > t:
                break
            seen += in_chunk
            start += _CHUNK
        end = min(start + _CHUNK, n)
        found.append(list(compress(range(start, end), codes[start:end].translate(_mask(code))))[t - seen])
    return found


def boundary(codes: bytearray | array, values: list[Any], per_side: int) -> list[int]:
    """The candidates nearest the threshold a filter compared its values with.

    For each reason: its dropped candidates whose value is nearest the kept ones' values, and the kept
    nearest them, ``per_side`` each. Whether a reason drops values above or below the kept ones is read
    from their means (a filter may drop on both sides: too cheap, too expensive). Only numbers count;
    a step with no kept (or no dropped) value has no boundary. Candidates are split by code at C speed
    (``compress``); only the nearest few are sorted.
    """
    groups = {code: _numbers(codes, code, values) for code in set(codes)}
    kept = groups.pop(0, ([], []))
    if not kept[0] or not any(v for v, _ in groups.values()):
        return []
    kept_mean = sum(kept[0]) / len(kept[0])
    picks: list[int] = []
    for vals, members in groups.values():
        if vals:
            above = sum(vals) / len(vals) > kept_mean
            picks += _nearest(vals, members, per_side, smallest=above)
            picks += _nearest(*kept, per_side, smallest=not above)
    return picks


def _numbers(codes: bytearray | array, code: int, values: list[Any]) -> tuple[list[Any], list[int]]:
    """The values and positions of the candidates of ``code`` whose value is a number (not NaN)."""
    if type(codes) is bytearray:
        mask: bytes | list[bool] = codes.translate(_mask(code))
    else:
        mask = [x == code for x in codes]
    vals, members = list(compress(values, mask)), list(compress(range(len(codes)), mask))
    try:
        total = sum(vals)
        if total == total:  # all numbers, none NaN: the common case, checked at C speed
            return vals, members
    except TypeError:
        pass
    pairs = [(v, i) for v, i in zip(vals, members) if (type(v) is float and v == v) or type(v) is int]
    return [v for v, _ in pairs], [i for _, i in pairs]


@functools.lru_cache(maxsize=256)
def _mask(code: int) -> bytes:
    """A translate table: 1 for ``code``, 0 for any other byte."""
    return bytes(int(x == code) for x in range(256))


def _nearest(vals: list[Any], members: list[int], k: int, smallest: bool) -> list[int]:
    """Positions of the ``k`` smallest (or largest) values; ties in input order."""
    if len(vals) <= k:
        return list(members)
    cut = (heapq.nsmallest if smallest else heapq.nlargest)(k, vals)[-1]
    inside = map(cut.__ge__ if smallest else cut.__le__, vals)  # C speed: no Python-level loop
    near = [(v, i) for v, i in compress(zip(vals, members), inside)]
    near.sort(key=lambda pair: pair[0], reverse=not smallest)
    return [i for _, i in near[:k]]


def watched_positions(ids: Sequence[str], watch: frozenset[str]) -> list[int]:
    """Positions of the watched ids in ``ids`` (every time one occurs), at most MAX_WATCHED."""
    if not watch:
        return []
    found: list[int] = []
    if len(watch) <= _INDEXED and isinstance(ids, list):
        for w in watch:
            i = -1
            while True:
                try:
                    i = ids.index(w, i + 1)
                except ValueError:
                    break
                found.append(i)
    else:
        found = [i for i, x in enumerate(ids) if x in watch]
    if len(found) > MAX_WATCHED:
        warn_once("watched", "xray-otel: %d watched candidates in one step; their payloads are sampled for the "
                  "first %d (their outcomes stay exact)", len(found), MAX_WATCHED)
        found = sorted(found)[:MAX_WATCHED]
    return found


def sample_counts(codes: Sequence[int], reasons: Sequence[str], counts: list[int],
                  picks: Iterable[int]) -> dict[str, Any]:
    """How much of each outcome the sample holds: ``{"kept": {sampled, total}, "dropped": {reason: {...}}}``."""
    sampled = [0] * len(counts)
    for i in picks:
        sampled[codes[i]] += 1
    dropped: dict[str, dict[str, int]] = {}
    for r, text in enumerate(reasons, 1):
        if counts[r]:
            entry = dropped.setdefault(text, {"sampled": 0, "total": 0})
            entry["sampled"] += sampled[r]
            entry["total"] += counts[r]
    return {"kept": {"sampled": sampled[0], "total": counts[0]}, "dropped": dropped}
