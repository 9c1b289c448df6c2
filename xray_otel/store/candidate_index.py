"""The per-hour candidate index (migrations/0010_candidate_hours.sql): each candidate's fate in each run of
an hour, worked out from the runs' outcome parts, and packed per shard.

Pure: plain rows and Parts in, bytes out, and back. A candidate's fate in a run is the lineage answer
(queries/lineage.py) reduced to what the history needs: the first step, in step time order, that dropped
it and why, or kept by every step that decided on it. A run that answer cannot be worked out for from
its outcomes alone (a step's outcomes incomplete, or a step that recorded a sample only) is not indexed:
its ordinal goes in ``per_run`` and a read answers it from its own rows.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from itertools import compress
from typing import Any, NamedTuple

from .outcomes import INCOMPLETE, Part, state

KEPT = 0
ENTRIES_PER_SHARD = 4096  # (candidate, run) pairs a shard row holds, about: one row read per hour
MAX_SHARDS = 1024
LEVEL = 1
_HEAD = 8  # two uint32: ids, pair values
_LITTLE = sys.byteorder == "little"  # stored little-endian, as outcomes.py stores its arrays


def shard_of(candidate: str, shards: int) -> int:
    return zlib.crc32(candidate.encode()) % shards


def run_fates(steps: Sequence[Mapping[str, Any]], parts: Iterable[Part],
              fate_of: dict[tuple[str, str], int]) -> dict[str, int] | None:
    """Per candidate of the run, its fate: KEPT, or k for the (step name, reason) ``fate_of`` numbers k
    (added to as met). None when the run must be answered from its own rows. ``steps`` in step time
    order, as read_sql.RUNS_CANDIDATE_STEPS gives them."""
    if any(not s["has_outcomes"] or state(s)[0] == INCOMPLETE for s in steps) or _wraps(steps):
        return None
    by_step: dict[str, list[Part]] = {}
    for part in parts:
        by_step.setdefault(part.span_id, []).append(part)
    fates: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for step in reversed(steps):  # an earlier step's drop is written last, so it wins
        for part in reversed(by_step.get(step["span_id"], [])):
            ids, codes = part.ids(), part.codes()
            fates.update(dict.fromkeys(ids, KEPT))
            lookup = (KEPT, *(fate_of.setdefault((step["name"], r), len(fate_of) + 1) for r in part.reasons))
            dropped.update(zip(compress(ids, codes), map(lookup.__getitem__, compress(codes, codes))))
    fates.update(dropped)
    return fates


def _wraps(steps: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a retrieval or rank step that recorded decisions wraps another of the steps: its decisions
    may tell a candidate the inner step kept was not passed on (queries/lineage.py not_passed_on), which
    the run's own rows answer."""
    parents = {s["parent_span_id"] for s in steps}
    return any(s["type"] in ("retrieval", "rank") and s["decision_count"] and s["span_id"] in parents for s in steps)


class Shard(NamedTuple):
    shard: int
    ids: bytes
    postings: bytes


def shard_count(entries: int) -> int:
    shards = 1
    while shards * ENTRIES_PER_SHARD < entries and shards < MAX_SHARDS:
        shards *= 2
    return shards


def pack(runs: Sequence[Mapping[str, int] | None], shards: int) -> list[Shard]:
    """The shard rows of an hour whose runs (newest first; ordinal = place + 1) have these fates (None:
    answered per run). Per shard: its ids sorted as UTF-8, NUL-separated; and, deflated, how many runs
    each id was in, then every (ordinal, fate) pair, id by id."""
    by_shard: list[dict[bytes, list[int]]] = [{} for _ in range(shards)]
    crc = zlib.crc32
    for ordinal, fates in enumerate(runs, 1):
        if not fates:
            continue
        for candidate, fate in fates.items():
            key = candidate.encode()
            pairs = by_shard[crc(key) % shards].setdefault(key, [])
            pairs.append(ordinal)
            pairs.append(fate)
    packed = []
    for shard, entries in enumerate(by_shard):
        if not entries:
            continue
        keys = sorted(entries)
        counts = array("I", (len(entries[k]) // 2 for k in keys))
        pairs = array("I")
        for k in keys:
            pairs.extend(entries[k])
        head = array("I", [len(keys), len(pairs)])
        packed.append(Shard(shard, zlib.compress(b"\x00".join(keys), LEVEL),
                            zlib.compress(_bytes(head) + _bytes(counts) + _bytes(pairs), LEVEL)))
    return packed


def lookup(ids: bytes, postings: bytes, candidate: str) -> list[tuple[int, int]]:
    """The (ordinal, fate) pairs of ``candidate`` in one shard row; [] when it is not there."""
    keys = zlib.decompress(ids).split(b"\x00")
    key = candidate.encode()
    at = bisect_left(keys, key)
    if at == len(keys) or keys[at] != key:
        return []
    data = zlib.decompress(postings)
    n_keys = _uints(data[:4])[0]
    counts = _uints(data[_HEAD:_HEAD + 4 * n_keys])
    offset = _HEAD + 4 * n_keys + 8 * sum(counts[:at])
    pairs = _uints(data[offset:offset + 8 * counts[at]])
    return list(zip(pairs[::2], pairs[1::2]))


def _bytes(values: array) -> bytes:
    if not _LITTLE:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _uints(data: bytes) -> array:
    values = array("I")
    values.frombytes(data)
    if not _LITTLE:
        values.byteswap()
    return values
