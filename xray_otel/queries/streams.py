"""Pure: a run's counted steps grouped into funnels, one per stream of candidates.

A run can hold several streams: a listing pipeline generates 6 titles (-> 1 chosen) and 8 bullets (-> 5).
One funnel over both would read "6 -> 5", true of neither. A step joins a stream by, in this order:

1. the name the SDK gave it (``xray.step.funnel``): that name's stream, whatever the counts say;
2. the retrieval steps it wraps (analysis.data_flow's ``fed_by``): their stream, one stream for all of them;
3. its candidate ids: its first ids are what one stream's last step kept (IdSample, a bounded sample);
4. its input count: equal to the output count of exactly one stream's last step.

A step none of these places, or that more than one stream could have fed, starts a stream of its own:
never merged on a guess. Steps without counts belong to no stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

# How a step was placed in its stream (``funnel_link`` in /analyze).
NAMED, WRAPS, IDS, COUNTS, START, AMBIGUOUS = "named", "wraps", "outcome_ids", "input_count", "start", "ambiguous"
ID_SAMPLE = 64  # a step's first ids compared with a stream's last step: enough to tell, cheap on any step


class IdSample:
    """A step's candidate ids and what it did with them, from its first stored outcome part; read lazily,
    as most steps are compared with few others. ``whole``: the part holds every candidate of the step."""

    def __init__(self, ids: Callable[[], Sequence[str]], codes: Callable[[], Sequence[int]], whole: bool) -> None:
        self._ids, self._codes, self.whole = ids, codes, whole
        self._kept: dict[str, bool] | None = None

    def first(self) -> Sequence[str]:
        return self._ids()[:ID_SAMPLE]

    def kept(self, candidate: str) -> bool | None:
        """True: the step kept it (once at least); False: dropped it; None: not among these ids."""
        if self._kept is None:
            fates: dict[str, bool] = {}
            for cid, code in zip(self._ids(), self._codes()):
                fates[cid] = fates.get(cid, False) or code == 0
            self._kept = fates
        return self._kept.get(candidate)


def continues(last: IdSample, step: IdSample) -> bool | None:
    """Whether ``step``'s candidates are what ``last`` kept: True, False, or None when the ids cannot tell
    (none of the sample is among ``last``'s stored ids, and those are not all of them)."""
    found = 0
    for cid in step.first():
        fate = last.kept(cid)
        if fate is False or (fate is None and last.whole):
            return False  # a candidate the last step dropped, or never saw, is not its output
        found += fate is True
    return True if found else None


@dataclass
class Stream:
    name: str
    named: bool  # the name is the SDK's (xray.step.funnel), not the first step's
    steps: list[dict[str, Any]] = field(default_factory=list)  # in placing order (time, data flow)


def counted(step: Mapping[str, Any]) -> bool:
    return step.get("input_count") is not None or step.get("output_count") is not None


def group(flow: list[dict[str, Any]], ids: Mapping[str, IdSample] | None = None
          ) -> tuple[list[Stream], dict[str, tuple[str, str]]]:
    """The streams of ``flow`` (analysis.data_flow's steps), in the order they start, each step in time order
    (a wrapper after the steps it wraps), and per placed step id, (its stream's name, how it was placed)."""
    ids = ids or {}
    streams: list[Stream | None] = []
    where: dict[str, int] = {}  # step id -> its stream's index
    link: dict[str, str] = {}
    named: dict[str, int] = {}
    order = placing_order(flow)
    for s in order:
        given = s.get("funnel")
        if given:
            at = named.get(given)
            if at is None:
                at = named[given] = len(streams)
                streams.append(Stream(given, True))
            how = NAMED
        else:
            at, how = _infer(s, streams, where, ids)
            if at is None:
                at = len(streams)
                streams.append(Stream(s["name"], False))
        streams[at].steps.append(s)  # type: ignore[union-attr]
        where[s["id"]], link[s["id"]] = at, how
    found = [st for st in streams if st is not None]
    position = {s["id"]: n for n, s in enumerate(order)}
    for st in found:  # merged streams: back in placing order
        st.steps.sort(key=lambda s: position[s["id"]])
    _unique_names(found)
    return found, {sid: (streams[at].name, link[sid]) for sid, at in where.items()}  # type: ignore[union-attr]


def placing_order(flow: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The counted steps in start time order (NULL last, as the store lists them), ties in data-flow order;
    a wrapper right after the last step it wraps, as its input is their output."""
    key: dict[str, tuple[Any, ...]] = {}
    for i, s in enumerate(flow):
        fed = [key[k] for k in s.get("fed_by", ()) if k in key]
        if fed:
            last = max(fed)
            key[s["id"]] = last[:3] + (last[3] + 1,)
        else:
            t = s.get("started_at")
            key[s["id"]] = (t is None, t, i, 0)
    return sorted((s for s in flow if counted(s)), key=lambda s: key[s["id"]])


def _infer(s: dict[str, Any], streams: list[Stream | None], where: dict[str, int],
           ids: Mapping[str, IdSample]) -> tuple[int | None, str]:
    """The stream ``s`` continues and how that is known, or (None, START / AMBIGUOUS)."""
    fed = sorted({where[k] for k in s.get("fed_by", ()) if k in where})
    if fed:
        for other in fed[1:]:  # retrievers feeding one wrapper: one stream from here on
            _merge(streams, where, fed[0], other)
        return fed[0], WRAPS
    live = [(i, st.steps[-1]) for i, st in enumerate(streams) if st is not None]
    ruled_out: set[int] = set()
    sample = ids.get(s["id"])
    if sample is not None:
        yes = []
        for i, last in live:
            before = ids.get(last["id"])
            verdict = None if before is None else continues(before, sample)
            if verdict:
                yes.append(i)
            elif verdict is False:
                ruled_out.add(i)
        if len(yes) == 1:
            return yes[0], IDS
        if yes:
            return None, AMBIGUOUS
    n_in = s.get("input_count")
    if n_in is None:
        return None, START  # a source: it made its candidates
    match = [i for i, last in live if i not in ruled_out and last.get("output_count") == n_in]
    if len(match) == 1:
        return match[0], COUNTS
    return None, AMBIGUOUS if match else START


def _merge(streams: list[Stream | None], where: dict[str, int], into: int, other: int) -> None:
    taken = streams[other]
    if taken is None or into == other:
        return
    streams[into].steps.extend(taken.steps)  # type: ignore[union-attr]
    for s in taken.steps:
        where[s["id"]] = into
    streams[other] = None


def _unique_names(streams: list[Stream]) -> None:
    """A name the SDK gave stays; an inferred one that is taken gets " #2", " #3", ..."""
    taken = {st.name for st in streams if st.named}
    for st in streams:
        if st.named:
            continue
        name, n = st.name, 1
        while name in taken:
            n += 1
            name = f"{st.name} #{n}"
        st.name = name
        taken.add(name)
