"""/openapi.json covers every route; /docs works offline; no parameter value makes any endpoint 500."""

from __future__ import annotations

import itertools
import re
import urllib.parse

import pytest
from helpers import call, get_json
from query_data import Sent, send_all

from xray_otel.app import build_app
from xray_otel.config import Settings
from xray_otel.queries.openapi import document

# Values a careless or hostile client might send: every one must give a 2xx or a 4xx, never a 5xx.
NASTY = ["", "0", "-1", "1e309", "nan", "-inf", "99999999999999999999999", "true", "x" * 3000, "%", "_",
         "\\", "'; DROP TABLE runs; --", "a:b", ":", "\u00e9\u4e2d\U0001F600", "\ud800", "\x00",
         "2026-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59+14:00", "24h", "999999w", "-drop_rate",
         '{"a": 1}', "[1]", "k:NaN", "k:1e999"]


@pytest.fixture(scope="module")
def sent(receiver_url: str) -> Sent:
    return send_all(receiver_url)


def _routes() -> set[tuple[str, str]]:
    app = build_app(store=None, ingester=None, settings=Settings.from_env({}))  # type: ignore[arg-type]
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("GET", "POST", "PUT", "DELETE") and path:
            found.add((route.method.lower(), path))
        elif route.method == "*" and path:
            found.add(("post", path))
    return found


def test_every_route_is_documented_and_nothing_else() -> None:
    documented = {(m, p) for p, item in document()["paths"].items() for m in item}
    assert not _routes() - documented, "add these routes to ENDPOINTS in xray_otel/queries/openapi.py"
    assert not documented - _routes(), "documented in xray_otel/queries/openapi.py but not served"


def test_openapi_document_is_served(receiver_url: str) -> None:
    doc = get_json(receiver_url + "/openapi.json")
    assert doc["openapi"].startswith("3.") and "/steps" in doc["paths"]
    params = {p["name"] for p in doc["paths"]["/steps"]["get"]["parameters"]}
    assert {"type", "min_drop_rate", "tag", "sort", "cursor"} <= params


def test_docs_page_is_local(receiver_url: str) -> None:
    reply = call("GET", receiver_url + "/docs")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
    page = reply.body.decode()
    assert "openapi.json" in page and not re.search(r"(src|href)=\"https?://", page)


def _url(base: str, path: str, query: list[tuple[str, str]], run_id: str) -> str:
    path = path.replace("{run_id}", run_id).replace("{candidate_id}", "phone-case").replace("{name}",
                                                                                              "find_accessory")
    return base + path + ("?" + urllib.parse.urlencode(query, errors="surrogatepass") if query else "")


def test_no_parameter_value_gives_a_500(receiver_url: str, sent: Sent) -> None:
    doc = get_json(receiver_url + "/openapi.json")
    run_id = sent.runs["bad"]
    checked = 0
    for path, item in doc["paths"].items():
        op = item.get("get")
        if not op or path == "/docs":
            continue
        required = [(p["name"], run_id) for p in op["parameters"] if p["required"] and p["in"] == "query"]
        for p in op["parameters"]:
            for value in NASTY:
                if p["in"] == "path":
                    if not value:  # an empty segment is another URL: the router's 404, not this route
                        continue
                    quoted = urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe="")
                    url = _url(receiver_url, path.replace("{" + p["name"] + "}", quoted), required, run_id)
                else:
                    query = [q for q in required if q[0] != p["name"]] + [(p["name"], value)]
                    url = _url(receiver_url, path, query, run_id)
                reply = call("GET", url)
                checked += 1
                assert reply.status < 500 or reply.status == 503, (url[:300], reply.status, reply.body[:300])
                if reply.body == b"404: Not Found":  # no route matched (aiohttp refuses { } in a segment)
                    continue
                if reply.status >= 400:
                    assert reply.body.startswith(b'{"error"'), (url[:300], reply.body[:200])
                    assert reply.json()["error"]["status"] == reply.status, url[:300]
    assert checked > 500


def test_valid_values_combined_never_500(receiver_url: str, sent: Sent) -> None:
    """Every sort with every filter of /steps and /runs, together: a 200 each time."""
    for endpoint, filters in (
        ("/steps", ["type=filter", "min_drop_rate=0.5", "tag=env:prod", "since=7d", "has_error=false",
                    "min_input_count=3", "status=completed", "max_drop_rate=1", "reason=price_too_high"]),
        ("/runs", ["tag=env:prod", "q=acc", "min_cost=0", "has_error=true", "since=7d", "service=x"]),
    ):
        sorts = document()["paths"][endpoint]["get"]["parameters"]
        sort_values = next(p for p in sorts if p["name"] == "sort")["schema"]["enum"]
        for sort, pair in itertools.product(sort_values, itertools.combinations(filters, 2)):
            reply = call("GET", f"{receiver_url}{endpoint}?sort={urllib.parse.quote(sort)}&{'&'.join(pair)}&limit=1")
            assert reply.status == 200, (endpoint, sort, pair, reply.body[:300])
            if reply.headers.get("Link"):
                link = reply.headers["Link"]
                assert call("GET", receiver_url + link[1:link.index(">")]).status == 200
