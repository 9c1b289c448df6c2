"""Property-based fuzzing of the REST query API over real HTTP, against a real PostgreSQL.

For every GET endpoint /openapi.json documents (read from the running server), every parameter it
documents (query and path) gets hostile values: arbitrary unicode, lone surrogates, raw invalid
UTF-8, NUL, huge and negative numbers, NaN/inf, nested brackets, strings up to ~10 kB, empty;
``tag`` values of every such shape; cursors that are base64 of arbitrary or deeply nested JSON,
arbitrary bytes, and real cursors with one part swapped for a hostile value. Whatever comes in,
the answer is below 500, and a 4xx is the API's one error shape ``{"error": {"status", "message"}}``.

Every (endpoint, parameter) pair is fuzzed and every failure is collected, so one run lists all the
500s rather than the first. Explicit ``@example``s pin the shapes issue 16 §2 reported.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import free_port
from helpers import call, export_request, get_json, make_span, new_ids, post_otlp
from query_data import Sent, send_all

EXAMPLES = 50  # per (endpoint, parameter); a cursor gets twice as many
CASES = settings(max_examples=EXAMPLES, deadline=None, database=None, report_multiple_bugs=False,
                 suppress_health_check=list(HealthCheck))
MAX_REQUEST_LINE = 8190  # aiohttp's HTTP parser refuses longer request lines itself (400, plain text)

# --- values --------------------------------------------------------------------------------------

# Nesting past Python's default recursion limit (1000) in few enough characters to pass the 2048-character cap on a
# value (and, base64-encoded, on a cursor): the depth that made json.loads raise RecursionError.
NESTED = ["[" * 1100, "[" * 1000 + "]" * 1000, '{"a":' * 400, "[1," * 500, "[[[[[[[[[[[[[[[[[[[[[[[[[[[["]
SPECIAL = ["", " ", "0", "-0", "-1", "1e309", "-1e309", "1e-400", "nan", "NaN", "-inf", "Infinity", "0x10", "1_000",
           str(2**63), str(-(2**63) - 1), "9" * 400, "true", "null", "[]", "{}", '"x"', "\x00", "a\x00b", "\ud800",
           "\ufffd", "\U0001F600" * 3, "%", "%00", "_", "\\", "'; DROP TABLE runs; --", ":", "k:", ":v", "k:v:w",
           "2026-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0000-01-01",
           "10000-01-01", "2026-02-30", "999999w", "0s", "-1d", "1000000d", "x" * 10_000, "\u00e9" * 4000,
           *NESTED]
numbers = st.one_of(st.integers(min_value=-(2**80), max_value=2**80).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
times = st.one_of(st.datetimes(timezones=st.timezones() | st.none()).map(lambda d: d.isoformat()),
                  st.tuples(st.integers(0, 10**9), st.sampled_from("smhdwy")).map(lambda t: f"{t[0]}{t[1]}"))
nested = st.tuples(st.integers(1, 1200) | st.integers(900, 3000), st.sampled_from(["[", "{", '{"a":', "[1,"]),
                   st.booleans()).map(lambda t: t[1] * t[0] + ("]" * t[0] if t[2] and t[1] == "[" else ""))
long_text = st.tuples(st.integers(1000, 10_000), st.sampled_from(["x", "\u00e9", "%", "[", "\U0001F600"])).map(
    lambda t: t[1] * t[0])
unicode = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)  # surrogates and controls too
raw = st.binary(max_size=40)  # bytes sent percent-encoded as they are: invalid UTF-8 included
values = st.one_of(st.sampled_from(SPECIAL), unicode, numbers, times, nested, long_text, raw)
tags = st.one_of(
    st.tuples(st.sampled_from(["k", "env", "attempt", ""]) | unicode, values).map(
        lambda kv: kv[0] + ":" + (kv[1].decode("utf-8", "surrogateescape") if isinstance(kv[1], bytes) else kv[1])),
    values)

json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), unicode,
    st.sampled_from(["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-14:00", "2026-01-01", "00000000-0000-0000-0000-000000000000",
                     "0" * 32, "{" + "0" * 32 + "}", "urn:uuid:" + str(uuid.uuid4()), "-started_at", "decisions",
                     str(uuid.uuid4()).upper(), "x" * 3000]))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    unicode, inner, max_size=3), max_leaves=10)


def b64(data: bytes, style: str = "server") -> str:
    if style == "server":
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    if style == "padded":
        return base64.urlsafe_b64encode(data).decode()
    return base64.b64encode(data).decode()  # + and / : not the urlsafe alphabet


def cursor_of(document: Any) -> str:
    return b64(json.dumps(document).encode())


def decode(cursor: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def cursors(real: list[str]) -> st.SearchStrategy[tuple[str | None, str | bytes]]:
    """(sort to ask for, or None for the default; cursor): forged, broken and tampered cursors."""
    styles = st.sampled_from(["server", "padded", "standard"])
    forged = st.one_of(
        st.tuples(json_values, styles).map(lambda t: b64(json.dumps(t[0]).encode(), t[1])),
        st.tuples(nested, styles).map(lambda t: b64(t[0].encode(), t[1])),
        st.tuples(st.binary(max_size=300), styles).map(lambda t: b64(t[0], t[1])),
        values)
    out = st.tuples(st.none(), forged)
    if not real:
        return out

    def tamper(parts: tuple[str, int, str, Any]) -> tuple[str | None, str]:
        text, index, how, value = parts
        sort, key = decode(text)
        if how == "replace":
            key[index % len(key)] = value
        elif how == "append":
            key.append(value)
        elif how == "drop":
            del key[index % len(key)]
        elif how == "key":
            key = value
        elif how == "sort":
            return None, cursor_of([value, key])
        elif how == "text":  # the cursor as the server issued it, with a character changed
            i = index % len(text)
            return sort, text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
        return sort, cursor_of([sort, key])

    tampered = st.tuples(st.sampled_from(real), st.integers(0, 5),
                         st.sampled_from(["replace", "replace", "replace", "append", "drop", "key", "sort", "text"]),
                         json_values).map(tamper)
    return out | tampered | tampered


# --- the server, as a user runs it ---------------------------------------------------------------

class Server:
    """``xray-otel serve`` in a process of its own on the test PostgreSQL: Hypothesis raises this
    interpreter's recursion limit while it runs a test, which would hide the RecursionErrors a real
    server raises; and its log (stderr, JSON lines) names the exception behind each 500."""

    def __init__(self, dsn: str, log_path: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_") and k != "DATABASE_URL"}
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "xray_otel", "serve", "--port", str(port),
                                      "--grpc-port", "0", "--database-url", dsn],
                                     env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.seen = log_path.stat().st_size

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            try:
                if call("GET", self.url + "/ready").status == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)

    def new_exception(self) -> str:
        """The last exception the server logged since the previous call: its type and message, and
        the innermost frame of this project's code."""
        with open(self.log_path, "rb") as f:
            f.seek(self.seen)
            lines = f.read().decode("utf-8", "replace").splitlines()
        self.seen = self.log_path.stat().st_size
        for line in reversed(lines):
            try:
                trace = json.loads(line).get("exception")
            except ValueError:
                continue
            if trace:
                frames = [t.strip() for t in trace.splitlines() if "xray_otel" in t and t.strip().startswith("File")]
                return trace.strip().splitlines()[-1][:200] + (f" [{frames[-1]}]" if frames else "")
        return "(no exception logged)"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- HTTP ----------------------------------------------------------------------------------------

class Client:
    """One keep-alive connection; reconnects when the server closes it (it does after a parser 400)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.netloc = urllib.parse.urlsplit(server.url).netloc
        self.conn = http.client.HTTPConnection(self.netloc, timeout=60)

    def get(self, target: str) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request("GET", target)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.netloc, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def quote(value: str | bytes) -> str:
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return urllib.parse.quote(data, safe="")


def target(path: str, path_values: dict[str, str | bytes], query: list[tuple[str, str | bytes]]) -> str:
    for name, value in path_values.items():
        path = path.replace("{" + name + "}", quote(value))
    return path + ("?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query) if query else "")


def check(client: Client, where: str, url: str) -> None:
    status, body = client.get(url)
    shown = f"GET {url[:300]}{'…' if len(url) > 300 else ''} ({len(url)} chars)"
    assert status < 500, f"{where}: {status} for {shown}: {client.server.new_exception()}"
    if status < 400:
        return
    if len(url) + len("GET  HTTP/1.1") > MAX_REQUEST_LINE and status in (400, 414):
        return  # refused by aiohttp's HTTP parser before any route runs
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"{where}: {status} not in the error shape for {shown}: {body[:300]!r}") from None
    assert error["status"] == status and isinstance(error["message"], str) and error["message"], (where, shown, body)


# --- the test ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(pg_dsn, tmp_path_factory.mktemp("fuzz") / "server.log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def sent(server: Server) -> Sent:
    return send_all(server.url)


def _valid(name: str, sent: Sent) -> str:
    return {"run_id": sent.runs["good"], "base": sent.runs["good"], "other": sent.runs["bad"],
            "candidate_id": "phone-case", "name": "find_accessory"}.get(name, "x")


def _real_cursors(base: str, path: str, op: dict[str, Any], sent: Sent) -> list[str]:
    """Cursors the server issues for ``path`` (limit=1 with each sort), to tamper with."""
    names = {p["name"]: p for p in op["parameters"]}
    if "cursor" not in names:
        return []
    sorts = names["sort"]["schema"]["enum"] if "sort" in names else [None]
    found = []
    for sort in sorts:
        path_values = {p["name"]: _valid(p["name"], sent) for p in op["parameters"] if p["in"] == "path"}
        url = base + target(path, path_values, [("limit", "1")] + ([("sort", sort)] if sort else []))
        reply = call("GET", url)
        assert reply.status == 200, (url, reply.body[:300])
        if reply.headers.get("X-Next-Cursor"):
            found.append(reply.headers["X-Next-Cursor"])
            assert call("GET", url + "&cursor=" + reply.headers["X-Next-Cursor"]).status == 200
    return found


def _fuzz(client: Client, path: str, op: dict[str, Any], param: dict[str, Any], sent: Sent,
          real: list[str], max_examples: int) -> Callable[[], None]:
    """A Hypothesis test for one parameter of one endpoint; the other required ones get valid values."""
    name, where = param["name"], param["in"]
    path_values = {p["name"]: _valid(p["name"], sent) for p in op["parameters"] if p["in"] == "path"}
    required = [(p["name"], _valid(p["name"], sent)) for p in op["parameters"]
                if p["in"] == "query" and p["required"] and p["name"] != name]
    label = f"{path} {name}"
    kind = param["schema"].get("items", param["schema"])
    is_tag = kind.get("pattern") == "^[^:]+:.*$"
    has_sort = any(p["name"] == "sort" for p in op["parameters"])

    if name == "cursor":
        strategy = cursors(real)
    elif is_tag:
        strategy = st.tuples(st.none(), tags)
    else:
        strategy = st.tuples(st.none(), values)

    def one(case: tuple[str | None, str | bytes]) -> None:
        sort, value = case
        if where == "path":
            if value in ("", b""):
                return  # an empty segment is another route (or none)
            url = target(path, {**path_values, name: value}, required)
        else:
            sorted_by = [("sort", sort)] if sort and has_sort else []  # a cursor's own sort, where it has one
            url = target(path, path_values, required + sorted_by + [(name, value)])
        check(client, label, url)

    test = given(strategy)(one)
    if name == "cursor":
        for shape in NESTED:
            test = example((None, b64(shape.encode())))(test)
    elif is_tag:
        for shape in NESTED:
            test = example((None, "k:" + shape))(test)
    for special in ("", "\ud800", "1e309", "nan", "-1", "x" * 10_000, "[" * 3000, str(2**70)):
        test = example((None, special))(test)
    return settings(CASES, max_examples=max_examples)(test)


def test_no_parameter_value_gives_a_5xx(server: Server, sent: Sent) -> None:
    receiver_url = server.url
    doc = get_json(receiver_url + "/openapi.json")
    client = Client(server)
    failures: list[str] = []
    fuzzed: list[str] = []
    try:
        for path, item in doc["paths"].items():
            op = item.get("get")
            if not op:
                continue
            real = _real_cursors(receiver_url, path, op, sent)
            unknown = {"name": "zz_unknown", "in": "query", "required": False, "schema": {"type": "string"}}
            for param, n in [(p, EXAMPLES * (2 if p["name"] == "cursor" else 1)) for p in op["parameters"]] + [
                    (unknown, 5)]:  # a parameter no endpoint documents: a 400 (or ignored), never a 5xx
                fuzzed.append(f"{path} {param['name']}")
                try:
                    _fuzz(client, path, op, param, sent, real, n)()
                except AssertionError as exc:  # collected, so one run lists every failure
                    failures.append(str(exc).splitlines()[0][:600])
                except Exception as exc:  # e.g. Hypothesis' Flaky: a 500 that did not happen again
                    failures.append(f"{path} {param['name']}: {type(exc).__name__}: {str(exc).splitlines()[0][:600]}")
    finally:
        client.close()
    assert {"/runs cursor", "/steps cursor", "/runs/{run_id}/candidates cursor", "/runs tag", "/steps tag",
            "/runs/{run_id} run_id"} <= set(fuzzed)
    assert not failures, f"{len(failures)} of {len(fuzzed)} fuzzed parameters gave a 5xx or a bad error body:\n" + \
        "\n".join(failures)


# --- cursors: exactly what the server issued, or a 400 -----------------------------------------------

INF = "__inf__"  # stands for the JSON number 1e999, which json.loads takes as inf


# Cursor parts that hold a span id: text of any form (a legacy step's id looks like a UUID, yet a
# different case of it is another id, not a malformed one).
_TEXT_PARTS = {"/steps": 2, "/runs/{run_id}/candidates": 1, "/runs/{run_id}/steps": 1}


def _bad_values(value: Any, text: bool = False) -> list[Any]:
    """Values of the wrong type, form or range for the part of a real cursor that holds ``value``
    (``text``: a part that takes any text)."""
    wrong_type: list[Any] = [None, [value], {"v": value}, True, [[[[[]]]]]]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return wrong_type
    if isinstance(value, (int, float)):
        return wrong_type + [str(value), float("nan"), INF, 2**64, -(2**64), 1.5 if isinstance(value, int) else []]
    if text:
        return wrong_type + ["\x00", "a\ud800", "x" * 3000, 1, 1.5]
    try:
        uuid.UUID(value)
        return wrong_type + [value.upper(), "{" + value + "}", "urn:uuid:" + value, value.replace("-", ""), 1]
    except ValueError:
        pass
    if value[:4].isdigit() and "T" in value:  # a time, as datetime.isoformat writes it (UTC)
        naive = value.rsplit("+", 1)[0]
        return wrong_type + [naive, naive + "Z", naive + "+01:00", naive[:10], "0001-01-01T00:00:00+14:00",
                             "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00+00:00", 1_700_000_000]
    return wrong_type + ["\x00", "a\ud800", "x" * 3000, 1, 1.5]


def _forgeries(text: str, path: str) -> list[str]:
    """Cursors that are not the one the server issued for ``path``, nor any it could issue."""
    sort, key = decode(text)
    out = [b64(("[" * 1100).encode()), b64(b"\xff\xfe"), cursor_of([sort]), cursor_of([sort, key, key]),
           cursor_of([sort, key + [1]]), cursor_of([sort, key[:-1]]), cursor_of({"sort": sort, "key": key}),
           cursor_of([sort, {str(i): v for i, v in enumerate(key)}]), cursor_of([[sort], key]),
           text + "=", text + "==", text + "!", "!" + text,
           b64(json.dumps([sort, key], separators=(",", ":")).encode()),  # the same JSON, written another way
           b64(json.dumps([sort, key], indent=1).encode()), b64((json.dumps([sort, key]) + " ").encode()),
           base64.b64encode(json.dumps([sort, key]).encode()).decode()]  # the standard alphabet, padded
    for i, value in enumerate(key):
        for bad in _bad_values(value, text=_TEXT_PARTS.get(path) == i):
            forged = json.dumps([sort, key[:i] + [bad] + key[i + 1:]]).replace(f'"{INF}"', "1e999")
            out.append(b64(forged.encode()))
    return [f for f in out if f != text]


def test_only_a_cursor_the_server_issued_is_taken(server: Server, sent: Sent) -> None:
    """Unforgeable in shape: every cursor that is not one this server could have issued, in exactly the
    text it issues, is a 400 that says to start again without it; the real ones still page."""
    doc = get_json(server.url + "/openapi.json")
    client = Client(server)
    checked = 0
    try:
        for path, item in doc["paths"].items():
            op = item.get("get")
            if not op or not any(p["name"] == "cursor" for p in op["parameters"]):
                continue
            has_sort = any(p["name"] == "sort" for p in op["parameters"])
            real = _real_cursors(server.url, path, op, sent)
            assert real, f"{path} issued no cursor at limit=1: page through more data"
            for text in real:
                sort = decode(text)[0]
                for forged in _forgeries(text, path):
                    query = ([("sort", sort)] if has_sort else []) + [("cursor", forged)]
                    url = target(path, {p["name"]: _valid(p["name"], sent) for p in op["parameters"]
                                        if p["in"] == "path"}, query)
                    status, body = client.get(url)
                    assert status == 400, (url[:300], status, decode(forged) if status == 200 else body[:300])
                    message = json.loads(body)["error"]["message"]
                    assert "cursor" in message and "start again without it" in message, (url[:300], message)
                    checked += 1
    finally:
        client.close()
    assert checked > 300


@pytest.mark.parametrize("path", ["/runs", "/steps"])
def test_a_tag_value_nested_past_the_json_parser_is_a_plain_string(receiver_url: str, path: str) -> None:
    """It was a 500 (RecursionError in the number/boolean check); it is a string like any other."""
    trace_id, base = new_ids()
    deep = "[" * 1500  # past json's recursion limit (1000), within the request line (8190 bytes)
    assert post_otlp(receiver_url, export_request([make_span(trace_id, base, "deep_tag", attrs={
        "xray.kind": "run", "xray.tag.shape": deep})])).status == 200
    reply = call("GET", f"{receiver_url}{path}?tag=shape:{urllib.parse.quote(deep)}")
    assert reply.status == 200, reply.body[:200]
    if path == "/runs":
        assert [r["id"] for r in reply.json()] == [str(uuid.UUID(bytes=trace_id))]
