"""The per-hour candidate index (store/candidate_index.py): fates worked out as the lineage answers
them, packed per shard and read back exactly."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings, strategies as st

from xray_otel.mapping.rows import OutcomeRow
from xray_otel.store.candidate_index import KEPT, lookup, pack, run_fates, shard_count, shard_of
from xray_otel.store.outcomes import Part, pack as pack_part


def _part(span: str, ids: list[str], codes: list[int], reasons: list[str], part: int = 0) -> Part:
    p = pack_part(OutcomeRow(uuid.uuid4(), span, part, 1, len(ids), ids, codes, None, reasons, None))
    return Part({"span_id": span, "part": part, "n": p.n, "ids": p.ids, "codes": p.codes, "ranks": None,
                 "reasons": p.reasons})


def _step(span: str, name: str, n: int, *, has_outcomes: bool = True, parts: int = 1, kind: str = "filter",
          parent: str | None = None, decisions: int = 0) -> dict[str, Any]:
    return {"span_id": span, "name": name, "has_outcomes": has_outcomes, "parts": parts, "parts_min": parts,
            "present": list(range(parts)), "stored": n, "total": n, "total_min": n, "totals": parts, "notes": None,
            "type": kind, "parent_span_id": parent, "decision_count": decisions}


def test_the_first_step_that_dropped_a_candidate_is_its_fate() -> None:
    steps = [_step("a", "filter_by_price", 4), _step("b", "filter_by_rating", 2)]
    parts = [_part("b", ["p2", "p3"], [1, 0], ["rating_below_4"]),
             _part("a", ["p1", "p2", "p3", "p4"], [1, 0, 0, 2], ["price_too_high", "out_of_stock"])]
    fate_of: dict[tuple[str, str], int] = {}
    fates = run_fates(steps, parts, fate_of)
    named = {k: v for v, k in fate_of.items()}
    assert fates is not None and fates["p3"] == KEPT
    assert named[fates["p1"]] == ("filter_by_price", "price_too_high")
    assert named[fates["p4"]] == ("filter_by_price", "out_of_stock")
    assert named[fates["p2"]] == ("filter_by_rating", "rating_below_4")


def test_a_run_with_an_incomplete_or_sample_only_step_is_answered_per_run() -> None:
    parts = [_part("a", ["p1"], [0], [])]
    missing = _step("a", "f", 2)  # total 2, one stored
    missing["stored"] = 1
    assert run_fates([missing], parts, {}) is None
    assert run_fates([_step("a", "f", 1), _step("s", "llm", 0, has_outcomes=False)], parts, {}) is None
    assert run_fates([_step("a", "f", 1)], parts, {}) == {"p1": KEPT}
    # A retriever wrapped by a step whose decisions may say it did not pass a candidate on.
    wrapped = [_step("w", "compress", 1, kind="retrieval", decisions=1), _step("a", "f", 1, parent="w")]
    assert run_fates(wrapped, parts + [_part("w", ["p1"], [0], [])], {}) is None
    wrapped[0]["decision_count"] = 0
    assert run_fates(wrapped, parts + [_part("w", ["p1"], [0], [])], {}) == {"p1": KEPT}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda t: "\x00" not in t),
                                                    st.integers(0, 70_000), max_size=40)), max_size=12),
       st.sampled_from([1, 2, 8]))
def test_every_candidate_reads_back_exactly(runs: list[dict[str, int] | None], shards: int) -> None:
    rows = {s.shard: s for s in pack(runs, shards)}
    expected: dict[str, list[tuple[int, int]]] = {}
    for ordinal, fates in enumerate(runs, 1):
        for candidate, fate in (fates or {}).items():
            expected.setdefault(candidate, []).append((ordinal, fate))
    for candidate, pairs in expected.items():
        row = rows[shard_of(candidate, shards)]
        assert lookup(row.ids, row.postings, candidate) == pairs
    for row in rows.values():
        assert lookup(row.ids, row.postings, "\U0001f600 not a candidate") == []


def test_shards_grow_with_the_entries() -> None:
    assert shard_count(0) == 1 and shard_count(4096) == 1 and shard_count(4097) == 2
    assert shard_count(10**9) == 1024
