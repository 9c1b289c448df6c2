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
    order = placing_order(flow)
    grouping = _Grouping(ids or {})
    for s in order:
        grouping.place(s)
    found = [st for st in grouping.streams if st is not None]
    position = {s["id"]: n for n, s in enumerate(order)}
    for st in found:  # merged streams: back in placing order
        st.steps.sort(key=lambda s: position[s["id"]])
    _unique_names(found)
    return found, {sid: (grouping.streams[at].name, grouping.link[sid])  # type: ignore[union-attr]
                   for sid, at in grouping.where.items()}


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


class _Grouping:
    """Streams as they grow, with their last steps indexed by output count (and by whether they have ids),
    so placing a step costs the same in a run of 100,000 streams as in one of two."""

    def __init__(self, ids: Mapping[str, IdSample]) -> None:
        self.ids = ids
        self.streams: list[Stream | None] = []
        self.where: dict[str, int] = {}  # step id -> its stream's index
        self.link: dict[str, str] = {}
        self.named: dict[str, int] = {}
        self.by_out: dict[Any, set[int]] = {}  # a last step's output count -> the streams it ends
        self.with_ids: set[int] = set()  # the streams whose last step has an id sample

    def place(self, s: dict[str, Any]) -> None:
        given = s.get("funnel")
        if given:
            at = self.named.get(given)
            if at is None:
                at = self.named[given] = self._new(Stream(given, True))
            how = NAMED
        else:
            at, how = self._infer(s)
            if at is None:
                at = self._new(Stream(s["name"], False))
        self._append(at, s)
        self.link[s["id"]] = how

    def _infer(self, s: dict[str, Any]) -> tuple[int | None, str]:
        """The stream ``s`` continues and how that is known, or (None, START / AMBIGUOUS)."""
        fed = sorted({self.where[k] for k in s.get("fed_by", ()) if k in self.where})
        if fed:
            for other in fed[1:]:  # retrievers feeding one wrapper: one stream from here on
                self._merge(fed[0], other)
            return fed[0], WRAPS
        ruled_out: set[int] = set()
        sample = self.ids.get(s["id"])
        if sample is not None:
            yes = []
            for i in sorted(self.with_ids):
                verdict = continues(self.ids[self._last(i)["id"]], sample)
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
        match = self.by_out.get(n_in, set()) - ruled_out
        if len(match) == 1:
            return match.pop(), COUNTS
        return None, AMBIGUOUS if match else START

    def _last(self, at: int) -> dict[str, Any]:
        return self.streams[at].steps[-1]  # type: ignore[union-attr]

    def _new(self, stream: Stream) -> int:
        self.streams.append(stream)
        return len(self.streams) - 1

    def _append(self, at: int, s: dict[str, Any]) -> None:
        stream = self.streams[at]
        if stream.steps:  # type: ignore[union-attr]
            self._unindex(at)
        stream.steps.append(s)  # type: ignore[union-attr]
        self.where[s["id"]] = at
        self._index(at)

    def _index(self, at: int) -> None:
        last = self._last(at)
        if last.get("output_count") is not None:
            self.by_out.setdefault(last["output_count"], set()).add(at)
        if last["id"] in self.ids:
            self.with_ids.add(at)

    def _unindex(self, at: int) -> None:
        last = self._last(at)
        self.by_out.get(last.get("output_count"), set()).discard(at)
        self.with_ids.discard(at)

    def _merge(self, into: int, other: int) -> None:
        taken = self.streams[other]
        if taken is None or into == other:
            return
        self._unindex(other)
        self._unindex(into)
        self.streams[into].steps.extend(taken.steps)  # type: ignore[union-attr]
        for s in taken.steps:
            self.where[s["id"]] = into
        self.streams[other] = None
        self._index(into)


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
