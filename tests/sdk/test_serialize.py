"""Any value to bounded JSON text, never an exception."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from xray_otel.conventions import TRUNCATION_MARKER
from xray_otel.sdk.serialize import MAX_ATTRIBUTE_CHARS, to_json, truncate


class Color(enum.Enum):
    RED = "red"


@dataclass
class Product:
    asin: str
    tags: set[str] = field(default_factory=set)
    seen: dt.datetime | None = None


class PydanticLike:
    """Duck-typed like a pydantic v2 model: only model_dump()."""

    def __init__(self, **data):
        self.data = data

    def model_dump(self):
        return dict(self.data)


class Plain:
    def __init__(self):
        self.name, self.score = "p", 0.5


class Raising:
    def model_dump(self):
        raise RuntimeError("broken model")

    def __repr__(self):
        raise RuntimeError("broken repr")


class VectorLike:
    def tolist(self):
        return [1.0, 2.0]


def loads(value) -> object:
    return json.loads(to_json(value))


def test_plain_data_is_compact_json():
    assert to_json({"a": [1, 2.5, None, True], "b": "é"}) == '{"a":[1,2.5,null,true],"b":"é"}'


def test_rich_python_values_become_readable_json():
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    assert loads(Product("B01", {"b", "a"}, when)) == {
        "asin": "B01", "tags": ["a", "b"], "seen": "2024-05-01T12:30:00+00:00"}
    assert loads(PydanticLike(when=dt.date(2024, 1, 2), nested=Product("X"))) == {
        "when": "2024-01-02", "nested": {"asin": "X", "tags": [], "seen": None}}
    assert loads({"d": dt.timedelta(seconds=90), "c": Color.RED, "u": uuid.UUID(int=1)}) == {
        "d": 90.0, "c": "red", "u": "00000000-0000-0000-0000-000000000001"}
    assert loads([decimal.Decimal("1.10"), PurePosixPath("/tmp/x"), frozenset({3}), (1, 2)]) == [
        "1.10", "/tmp/x", [3], [1, 2]]
    assert loads({"vec": VectorLike(), "obj": Plain(), "r": range(3)}) == {
        "vec": [1.0, 2.0], "obj": {"name": "p", "score": 0.5}, "r": [0, 1, 2]}


def test_bytes_are_base64_and_mixed_sets_survive():
    assert loads(b"\x00\xffhi") == "base64:AP9oaQ=="
    assert sorted(map(str, loads({1, "a"}))) == ["1", "a"]


def test_what_json_refuses_is_made_safe_instead():
    assert loads({"x": math.nan, "y": [math.inf]}) == {"x": "nan", "y": ["inf"]}
    assert loads({(1, 2): "tuple key", 3: "int key"}) == {"(1, 2)": "tuple key", "3": "int key"}
    loop: list = [1]
    loop.append(loop)
    assert loads(loop) == [1, "…[circular reference]"]
    deep: list = []
    for _ in range(5000):  # past the interpreter's recursion limit
        deep = [deep]
    assert "nested too deep" in to_json(deep)


def test_values_that_raise_are_described_not_raised():
    assert loads({"ok": 1, "bad": Raising()}) == {"ok": 1, "bad": "<unprintable Raising>"}
    assert loads(Raising()) == "<unprintable Raising>"


def test_long_values_are_cut_at_the_cap_with_a_visible_marker():
    text = to_json({"prompt": "x" * 100_000})
    assert len(text) == MAX_ATTRIBUTE_CHARS and text.endswith(TRUNCATION_MARKER)
    assert to_json(list(range(10)), limit=21) == "[0,1,2,3,4,5,6,7,8,9]"
    cut = to_json(list(range(100)), limit=40)
    assert len(cut) == 40 and cut.startswith("[0,1,2,") and cut.endswith(TRUNCATION_MARKER)
    assert to_json(b"y" * 1_000_000).endswith(TRUNCATION_MARKER)
    assert to_json("short", limit=None) == '"short"'


def test_truncate_keeps_short_text_and_cuts_long_text_to_the_limit():
    assert truncate("abc", 10) == "abc"
    assert truncate("z" * 100, len(TRUNCATION_MARKER) + 3) == "zzz" + TRUNCATION_MARKER
    assert truncate("z" * 100, None) == "z" * 100
