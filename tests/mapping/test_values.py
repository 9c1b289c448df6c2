"""OTLP AnyValue conversion and text/JSON cleaning for PostgreSQL (xray_otel.mapping.values).

PostgreSQL refuses NUL in text and jsonb, ``\\u0000`` escapes and lone UTF-16
surrogates in jsonb, and NaN/Infinity in JSON; everything these functions return
must be storable, and must still say what the client sent.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from xray_otel.mapping import values
from xray_otel.mapping.values import (
    any_value,
    attributes_to_dict,
    cap_strings,
    clean_text,
    json_column,
    split_attributes,
    to_json,
)

def storable(text: str) -> str:
    """Assert ``text`` is what PostgreSQL accepts in text/jsonb, and return it."""
    assert "\x00" not in text
    text.encode("utf-8")  # no lone surrogates
    return text


def storable_json(text: str) -> Any:
    """Assert ``text`` is JSON that a jsonb column accepts (strict JSON, no NUL or surrogate escapes)."""
    storable(text)
    for match in re.finditer(r"(?<!\\)((?:\\\\)*)\\u0000", text):
        raise AssertionError(f"\\u0000 escape left in {text!r} at {match.start()}")

    def reject(name: str) -> None:
        raise AssertionError(f"{name} is not JSON: {text!r}")

    value = json.loads(text, parse_constant=reject)
    # json.loads joins a valid surrogate pair into one character; a lone one stays and cannot be UTF-8.
    json.dumps(value, ensure_ascii=False).encode("utf-8")
    return value


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


# --- any_value / attributes_to_dict -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (AnyValue(string_value="text"), "text"),
        (AnyValue(string_value=""), ""),
        (AnyValue(bool_value=True), True),
        (AnyValue(bool_value=False), False),
        (AnyValue(int_value=0), 0),
        (AnyValue(int_value=-(2**63)), -(2**63)),
        (AnyValue(int_value=2**63 - 1), 2**63 - 1),
        (AnyValue(double_value=0.0), 0.0),
        (AnyValue(double_value=-1.5), -1.5),
        (AnyValue(double_value=1e308), 1e308),
        (AnyValue(bytes_value=b"\x00\x01\xfe\xff"), "0001feff"),
        (AnyValue(bytes_value=b""), ""),
        (AnyValue(), None),
    ],
    ids=lambda v: repr(v)[:30] if not isinstance(v, AnyValue) else None,
)
def test_any_value_scalars(value: AnyValue, expected: Any) -> None:
    result = any_value(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("number", "expected"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")],
)
def test_any_value_non_finite_doubles_become_strings(number: float, expected: str) -> None:
    assert any_value(AnyValue(double_value=number)) == expected


def test_any_value_array_of_every_kind() -> None:
    array = ArrayValue(values=[
        AnyValue(string_value="a"), AnyValue(int_value=1), AnyValue(double_value=2.5), AnyValue(bool_value=True),
        AnyValue(bytes_value=b"\xab"), AnyValue(double_value=math.nan), AnyValue(),
    ])
    assert any_value(AnyValue(array_value=array)) == ["a", 1, 2.5, True, "ab", "NaN", None]


def test_any_value_empty_array_and_kvlist() -> None:
    assert any_value(AnyValue(array_value=ArrayValue())) == []
    assert any_value(AnyValue(kvlist_value=KeyValueList())) == {}


def test_any_value_nested_arrays_and_kvlists() -> None:
    inner = AnyValue(kvlist_value=KeyValueList(values=[
        kv("scores", AnyValue(array_value=ArrayValue(values=[
            AnyValue(double_value=0.5), AnyValue(double_value=math.inf)]))),
        kv("raw", AnyValue(bytes_value=b"\x01")),
    ]))
    outer = AnyValue(array_value=ArrayValue(values=[
        inner,
        AnyValue(array_value=ArrayValue(values=[AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=7)]))])),
    ]))
    assert any_value(outer) == [{"scores": [0.5, "Infinity"], "raw": "01"}, [[7]]]


def test_any_value_result_is_json_safe() -> None:
    """Whatever any_value returns, strict JSON can encode (no NaN, no bytes)."""
    value = AnyValue(kvlist_value=KeyValueList(values=[
        kv("nan", AnyValue(double_value=math.nan)),
        kv("bytes", AnyValue(bytes_value=b"\x00")),
        kv("list", AnyValue(array_value=ArrayValue(values=[AnyValue(double_value=-math.inf)]))),
    ]))
    json.dumps(any_value(value), allow_nan=False)


def test_any_value_deep_nesting() -> None:
    value = AnyValue(string_value="leaf")
    for _ in range(30):  # protobuf itself caps message depth at 100 (3 messages per level)
        value = AnyValue(kvlist_value=KeyValueList(values=[kv("k", value)]))
    result = any_value(value)
    for _ in range(30):
        result = result["k"]
    assert result == "leaf"


def test_attributes_to_dict_later_duplicate_wins() -> None:
    attrs = [kv("a", AnyValue(int_value=1)), kv("b", AnyValue(string_value="x")), kv("a", AnyValue(int_value=2))]
    assert attributes_to_dict(attrs) == {"a": 2, "b": "x"}


_MIXED = [kv("a", AnyValue(string_value="x" * 4)), kv("b", AnyValue(int_value=1)),
          kv("c", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="y" * 6), AnyValue(int_value=2)]))),
          kv("a", AnyValue(string_value="z")), kv("d", AnyValue(string_value="")), kv("e", AnyValue())]


@pytest.mark.parametrize("limit", [3, 5, 100])
@pytest.mark.parametrize("items", [_MIXED, [kv("bytes", AnyValue(bytes_value=b"\x01\x02\x03"))]])
def test_split_attributes_is_attributes_to_dict_then_cap_strings(items: list[KeyValue], limit: int) -> None:
    expected = attributes_to_dict(items)
    cut = cap_strings(expected, limit)
    assert split_attributes(items, limit, frozenset()) == (expected, {}, cut)


def test_attributes_to_dict_empty() -> None:
    assert attributes_to_dict([]) == {}


def test_kvlist_duplicate_key_later_wins() -> None:
    value = AnyValue(kvlist_value=KeyValueList(values=[kv("k", AnyValue(int_value=1)), kv("k", AnyValue(int_value=2))]))
    assert any_value(value) == {"k": 2}


# --- clean_text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("", ""),
        ("a\x00b", "ab"),
        ("\x00\x00", ""),
        ("\x00lead and trail\x00", "lead and trail"),
        ("ünïcode 🚀", "ünïcode 🚀"),
        ("literal \\u0000 stays", "literal \\u0000 stays"),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_clean_text_returns_same_object_when_clean() -> None:
    text = "nothing to do " * 10
    assert clean_text(text) is text


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udc80\x00"])
def test_clean_text_lone_surrogates_become_storable(text: str) -> None:
    """Python's json accepts "\\ud800" (legacy /ingest bodies); PostgreSQL text cannot hold it."""
    cleaned = storable(clean_text(text))
    assert "\ufffd" in cleaned


# --- to_json ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -1, 2**70, 1.5, "s", "", [], {}, [1, "a", None], {"k": {"n": [1, 2, {"x": False}]}}, "ünï 🚀"],
)
def test_to_json_round_trips_plain_values(value: Any) -> None:
    assert storable_json(to_json(value)) == value


def test_to_json_is_compact_and_keeps_unicode() -> None:
    assert to_json({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        ([1.0, math.nan], [1.0, "NaN"]),
        ({"a": {"b": [math.inf]}}, {"a": {"b": ["Infinity"]}}),
        ((1, math.nan), [1, "NaN"]),
    ],
)
def test_to_json_non_finite_numbers_become_strings(value: Any, expected: Any) -> None:
    assert storable_json(to_json(value)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\x00b", "ab"),
        ({"k\x00ey": "v\x00"}, {"key": "v"}),
        (["\x00", "x\x00y"], ["", "xy"]),
        ({"nan": math.nan, "nul": "\x00"}, {"nan": "NaN", "nul": ""}),
    ],
)
def test_to_json_removes_nul(value: Any, expected: Any) -> None:
    assert storable_json(to_json(value)) == expected


def test_to_json_keeps_a_literal_backslash_u0000() -> None:
    """The six characters \\u0000 in a string are text, not a NUL: they must survive."""
    value = {"path": "C:\\u0000\\dir", "x": "\\\x00"}
    assert storable_json(to_json(value)) == {"path": "C:\\u0000\\dir", "x": "\\"}


def test_to_json_non_json_types_become_strings() -> None:
    assert storable_json(to_json({"b": b"x", "s": {1, 2} and "set", "o": object})) == {
        "b": "b'x'", "s": "set", "o": "<class 'object'>"}


def test_to_json_non_string_keys() -> None:
    assert storable_json(to_json({1: "a", None: "b", 2.5: "c"})) == {"1": "a", "null": "b", "2.5": "c"}


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_to_json_deep_nesting_does_not_crash(depth: int) -> None:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    storable_json(to_json(value))
    value = {"leaf": math.nan}
    for _ in range(depth):
        value = {"k": value}
    storable_json(to_json(value))


@pytest.mark.parametrize("value", ["\ud800", {"k": "a\udfffb"}, ["\udc80"], {"\ud800": 1}])
def test_to_json_lone_surrogates_become_storable(value: Any) -> None:
    storable_json(to_json(value))


# --- json_column --------------------------------------------------------------------


def test_json_column_none_is_null() -> None:
    assert json_column(None) is None


@pytest.mark.parametrize(
    "text",
    ['{"a": 1}', "[1, 2, 3]", '"a string"', "42", "-1.5e3", "true", "null", '{"nested": {"list": [{"x": null}]}}',
     '  {"spaced" :  [ 1 ] }  ', '{"u": "\\u00e9 \\ud83d\\ude80"}', "1e400"],
)
def test_json_column_valid_json_is_kept_as_is(text: str) -> None:
    assert json_column(text) == text


@pytest.mark.parametrize(
    "text",
    ["not json", "", "   ", "{", "{'single': 'quotes'}", "[1, 2,]", "NaN", "Infinity", "-Infinity", "[1, NaN]",
     '{"a": Infinity}', "True", "None", "undefined", '{"a": 1} trailing', '"unterminated', "1e99999999999999999999",
     '{"a": [0e99999999999999999999]}'],
)
def test_json_column_invalid_json_is_stored_as_a_json_string(text: str) -> None:
    stored = json_column(text)
    assert stored is not None
    assert storable_json(stored) == text


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', "-0", "-0.0", "1e5", "5e-324", "1e-400", "1e-20000", "1e400", "0.30000000000000004",
     "18446744073709551616", "-9223372036854775809", "1" + "0" * 400, "9" * 4300, "9" * 4301, "NaN", "[1, -Infinity]",
     '"\\ud800"', '"\\ud83d\\ude00"', '"\ud800"', '"\x01"', '"\\u0000"', '{"k": "a\\u0000b"}', "\ufeff{}",
     "1e99999999999999999999", "[1,]", "01", " \t[1]\n ", "[" * 990 + "]" * 990, "[" * 996 + "]" * 996, "[" * 5000 + "]" * 5000,
     "[" * 400 + '"' + "x" * 2000 + '"' + "]" * 400, '{"\u00e9": "\u2028"}', "true false", "", " "],
)
def test_json_column_fast_path_gives_what_the_scanner_gives(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """msgspec validates first; whatever it accepts, the stdlib scanner (the reference) must accept alike."""
    fast = json_column(text)

    def refuse(_: str) -> None:
        raise ValueError("fast path off")

    monkeypatch.setattr(values, "_FAST_DECODE", refuse)
    assert fast == json_column(text)


def test_json_column_deep_text_skips_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """msgspec nests a level or two deeper than the scanner before RecursionError, so deeply nested text gets the
    scanner's verdict alone: here a fast path that accepts anything must not turn a too-deep value into JSON."""
    monkeypatch.setattr(values, "_FAST_DECODE", lambda text: None)
    deep = "[" * 5000 + "]" * 5000
    assert storable_json(json_column(deep) or "null") == deep  # too deep for the scanner: stored as a string
    assert json_column("[[]]") == "[[]]"


def test_json_column_non_string_values_are_encoded() -> None:
    assert json_column(5) == "5"
    assert json_column(True) == "true"
    assert json_column(2.5) == "2.5"
    assert json_column([1, "a"]) == '[1,"a"]'
    assert storable_json(json_column(math.nan)) == "NaN"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"a\\u0000b"', "ab"),
        ('{"k": "\\u0000"}', {"k": ""}),
        ('["\\u0000\\u0000x"]', ["x"]),
        ('{"k\\u0000": 1}', {"k": 1}),
        ('"\\\\\\u0000"', "\\"),  # escaped backslash, then a real NUL escape: the NUL goes
        ('"\\\\\\\\\\u0000"', "\\\\"),
    ],
)
def test_json_column_removes_nul_escapes(text: str, expected: Any) -> None:
    assert storable_json(json_column(text)) == expected


@pytest.mark.parametrize(
    "text",
    ['"\\\\u0000"', '{"path": "C:\\\\u0000"}', '"\\\\\\\\u0000"'],
)
def test_json_column_keeps_escaped_backslash_before_u0000(text: str) -> None:
    """\\\\u0000 in JSON is a backslash followed by "u0000", not a NUL: kept byte for byte."""
    assert json_column(text) == text
    assert "\\u0000" in json.dumps(storable_json(text))


def test_json_column_invalid_json_with_nul_is_cleaned() -> None:
    assert storable_json(json_column("not \x00 json")) == "not  json"


def test_json_column_raw_nul_inside_json_string_is_not_valid_json() -> None:
    """A raw control character is not allowed inside a JSON string: stored as a string, without the NUL."""
    assert storable_json(json_column('"a\x00b"')) == '"ab"'


@pytest.mark.parametrize(
    "text",
    ['"\\ud800"', '{"a": "\\udfff"}', '"\\uD83D"', '["x\\ud83dy"]', '"\\ude80\\ud83d"',
     '"\\ud83d\\ud83d\\ude80"', '"\\ud83d\\ude80\\ude80"'],
)
def test_json_column_lone_surrogate_escapes_become_storable(text: str) -> None:
    """Valid JSON to Python, refused by jsonb ("Unicode low surrogate must follow a high surrogate")."""
    stored = json_column(text)
    assert stored is not None
    storable_json(stored)


def test_json_column_paired_surrogate_escapes_keep_their_meaning() -> None:
    text = '{"emoji": "\\ud83d\\ude80"}'
    assert json.loads(storable(json_column(text) or "")) == {"emoji": "🚀"}


@pytest.mark.parametrize(
    "text",
    ["1e131071", "[-12e131070]", "1e-16383", '{"x": 1.5e-16382}', "0e200000", "1e400", "1e-400"],
)
def test_json_column_numbers_jsonb_can_hold_are_kept(text: str) -> None:
    """numeric holds up to 131072 digits before the point and 16383 after (checked against PostgreSQL 18)."""
    assert json_column(text) == text


@pytest.mark.parametrize("text", ["1e131072", "[1e200000]", '{"x": -1e-16384}', "0.0e-20000"])
def test_json_column_numbers_out_of_jsonb_range_are_stored_as_a_string(text: str) -> None:
    """Valid JSON to Python, but jsonb refuses it ("value overflows numeric format")."""
    assert storable_json(json_column(text) or "") == text


def test_json_column_long_mantissa_with_a_short_exponent_is_stored_as_a_string() -> None:
    """0.(7000 digits)e-9999 has 17,000 digits after the point: jsonb refuses it though no exponent has 5 digits."""
    text = "0." + "0" * 6999 + "1e-9999"
    assert storable_json(json_column(text) or "") == text


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_column_deep_nesting_does_not_crash(depth: int) -> None:
    text = "[" * depth + "]" * depth
    stored = json_column(text)
    assert stored is not None
    assert stored == text or storable_json(stored) == text


def test_json_column_unicode_kept() -> None:
    assert json_column('{"name": "étape 🚀"}') == '{"name": "étape 🚀"}'
    assert storable_json(json_column("pas du json é")) == "pas du json é"
