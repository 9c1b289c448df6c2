"""Candidate outcomes on disk (migrations/0009_step_outcomes.sql): packing a part for ``step_outcomes``
and reading it back.

A part's ids, codes and ranks are parallel arrays; each is packed into bytes and deflated (zlib, level 1:
the fastest, and within a tenth of the best level's size on ids). Measured on 10 steps of 5,000
candidates, everything counted (heap, TOAST, indexes, free space maps): ids of ten random letters and
digits take about 10 bytes an outcome, numbered ones (``cand-04217``) about 6, and less on larger tables
(8 and 3.3 on 100 steps), as the fixed pages weigh less. Left to PostgreSQL (a text[] or the same bytes,
pglz), the random ones took 12 to 14: pglz has no entropy coding, and gives up on data it cannot shrink
by a quarter. tests/store/test_outcome_storage.py keeps the figure under 12.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from typing import Any, Iterator, NamedTuple, Sequence

from ..mapping.rows import OutcomeRow

LEVEL = 1
SEPARATOR = b"\x00"  # no id holds one (mapping/outcomes.py refuses those that do)
_LITTLE = sys.byteorder == "little"


class PackedOutcomes(NamedTuple):
    """Columns of ``step_outcomes`` in table order, as written by COPY."""

    run_id: Any
    span_id: str
    part: int
    parts: int
    total: int | None
    n: int
    ids: bytes
    codes: bytes
    ranks: bytes | None
    reasons: list[str]
    incomplete: str | None
    service: str | None


def pack(row: OutcomeRow) -> PackedOutcomes:
    ids = "\x00".join(row.ids).encode()
    return PackedOutcomes(row.run_id, row.span_id, row.part, row.parts, row.total, len(row.ids),
                          zlib.compress(ids, LEVEL), zlib.compress(_ints("B" if len(row.reasons) < 256 else "H",
                                                                         row.codes), LEVEL),
                          None if row.ranks is None else zlib.compress(_ints("I", row.ranks), LEVEL),
                          row.reasons, row.incomplete, row.service)


def _ints(code: str, values: Sequence[int]) -> bytes:
    packed = array(code, values)
    if not _LITTLE and packed.itemsize > 1:
        packed.byteswap()
    return packed.tobytes()


def _unints(code: str, data: bytes) -> array:
    values = array(code)
    values.frombytes(data)
    if not _LITTLE and values.itemsize > 1:
        values.byteswap()
    return values


MAX_FOUND = 10_000  # places of one candidate in one part: more is a loop, and the first ones tell the story


class Part:
    """One stored part, unpacked as it is asked: ids only when searched or listed."""

    __slots__ = ("span_id", "part", "n", "reasons", "_ids", "_codes", "_ranks", "_id_list", "_code_list",
                 "_rank_list")

    def __init__(self, row: Any) -> None:
        self.span_id, self.part, self.n = row["span_id"], row["part"], row["n"]
        self.reasons: list[str] = list(row["reasons"])
        self._ids, self._codes, self._ranks = row["ids"], row["codes"], row["ranks"]
        self._id_list: list[str] | None = None
        self._code_list: array | None = None
        self._rank_list: array | None = None

    def ids(self) -> list[str]:
        if self._id_list is None:
            self._id_list = zlib.decompress(self._ids).decode().split("\x00") if self.n else []
        return self._id_list

    def codes(self) -> array:
        if self._code_list is None:
            data = zlib.decompress(self._codes)
            self._code_list = _unints("B" if len(data) == self.n else "H", data)
        return self._code_list

    def ranks(self) -> array | None:
        if self._rank_list is None and self._ranks is not None:
            self._rank_list = _unints("I", zlib.decompress(self._ranks))
        return self._rank_list

    def find(self, candidate: str, most: int = MAX_FOUND) -> list[int]:
        """Where ``candidate`` is among the part's ids (usually once; more when the step saw it more often),
        at most ``most`` places. Separators are counted from the last match on, so many matches cost one
        pass over the part, not one each."""
        if not self.n or not candidate:
            return []
        data = zlib.decompress(self._ids)
        needle = candidate.encode()
        found: list[int] = []
        start = counted_to = index = 0
        while len(found) < most:
            at = data.find(needle, start)
            if at < 0:
                break
            end = at + len(needle)
            if (at == 0 or data[at - 1] == 0) and (end == len(data) or data[end] == 0):
                index += data.count(SEPARATOR, counted_to, at)
                counted_to = at
                found.append(index)
            start = end if end > at else at + 1
        return found

    def code(self, index: int) -> int:
        return self.codes()[index]

    def rank(self, index: int) -> int | None:
        ranks = self.ranks()
        return None if ranks is None or not ranks[index] else ranks[index]

    def reason(self, code: int) -> str | None:
        return self.reasons[code - 1] if code else None

    def matching(self, *, accepted: bool | None, reason: str | None, candidate: str | None,
                 prefix: str | None, after: int) -> Iterator[int]:
        """Indexes (from ``after`` on) of the outcomes that pass the filters, in input order."""
        wanted: set[int] | None = None
        if reason is not None:
            wanted = {code for code, text in enumerate(self.reasons, 1) if text == reason}
            if not wanted or accepted is True:
                return
        if candidate is not None:
            indexes: Iterator[int] = iter([i for i in self.find(candidate) if i >= after])
        else:
            indexes = iter(range(after, self.n))
        codes = self.codes()
        ids = self.ids() if prefix else None
        for i in indexes:
            code = codes[i]
            if wanted is not None and code not in wanted:
                continue
            if accepted is not None and (code == 0) != accepted:
                continue
            if ids is not None and not ids[i].startswith(prefix):  # type: ignore[arg-type]
                continue
            yield i


COMPLETE, INCOMPLETE, NONE = "complete", "incomplete", "none"
DISAGREE = "copies of this part disagree"  # store/sql.py marks a part so: no outcome in it can be trusted


def state(summary: Any) -> tuple[str, str | None]:
    """(COMPLETE or INCOMPLETE, why not complete) of a step's outcomes, from read_sql's outcome summary: whole
    when every part it announced arrived whole, they agree, and they hold as many outcomes as its total."""
    notes = list(summary["notes"] or [])
    parts = summary["parts"]
    present = set(summary["present"] or [])
    absent = parts - len({p for p in present if 0 <= p < parts})
    if absent > 0:  # counted, and the first few named: a span may claim a million parts
        first = []
        for part in range(parts):
            if part not in present:
                first.append(str(part))
                if len(first) == 5:
                    break
        notes.append(f"{absent:,} of its {parts:,} parts did not arrive (part {', '.join(first)}"
                     f"{', …' if absent > 5 else ''})")
    if summary["parts_min"] != parts:
        notes.append("its parts disagree on how many parts there are")
    total, stored = summary["total"], summary["stored"]
    if summary["totals"] and summary["total_min"] != total:
        notes.append("its parts disagree on the total")
    elif total is not None and stored != total:
        notes.append(f"it holds {stored:,} outcomes of the {total:,} candidates it decided on")
    return (INCOMPLETE, "; ".join(notes)) if notes else (COMPLETE, None)
