"""REST queries: listing, filters, cursor pagination, 404/400 JSON errors, service endpoints."""

from __future__ import annotations

import time
import uuid

from helpers import call, export_request, get_json, make_span, new_ids, post_otlp


def _post_runs(url: str, name: str, count: int, *, failed: set[int] = frozenset()) -> list[str]:
    t0 = time.time_ns()
    ids = []
    for i in range(count):
        trace_id, base = new_ids()
        spans = [make_span(trace_id, base, name, attrs={"xray.kind": "run"}, start=t0 + i * 1000,
                           error="boom" if i in failed else None)]
        assert post_otlp(url, export_request(spans)).status == 200
        ids.append(str(uuid.UUID(bytes=trace_id)))
    return ids


def test_runs_newest_first_with_cursor_pages(receiver_url: str) -> None:
    name = f"paged-{uuid.uuid4().hex[:8]}"
    ids = _post_runs(receiver_url, name, 7)
    seen, url, pages = [], f"{receiver_url}/runs?name={name}&limit=3", 0
    while url:
        reply = call("GET", url)
        assert reply.status == 200
        seen += [r["id"] for r in reply.json()]
        pages += 1
        link = reply.headers.get("Link")
        url = receiver_url + link[1:link.index(">")] if link else None
    assert seen == ids[::-1]
    assert pages == 3


def test_runs_filter_by_status(receiver_url: str) -> None:
    name = f"status-{uuid.uuid4().hex[:8]}"
    ids = _post_runs(receiver_url, name, 4, failed={1, 3})
    failed = get_json(f"{receiver_url}/runs?name={name}&status=failed")
    assert [r["id"] for r in failed] == [ids[3], ids[1]]
    assert all(r["status"] == "FAILED" and r["error"] == "boom" for r in failed)


def test_limit_is_capped_and_validated(receiver_url: str) -> None:
    assert call("GET", receiver_url + "/runs?limit=abc").status == 400
    assert call("GET", receiver_url + "/runs?limit=0").status == 400
    assert call("GET", receiver_url + "/runs?status=weird").status == 400
    assert call("GET", receiver_url + "/runs?cursor=!!!").status == 400
    assert call("GET", receiver_url + "/runs?limit=100000").status == 200


def test_unknown_and_malformed_run_ids(receiver_url: str) -> None:
    missing = uuid.uuid4()
    for path in ("/runs/{}", "/runs/{}/steps", "/analyze/{}"):
        reply = call("GET", receiver_url + path.format(missing))
        assert reply.status == 404
        assert reply.json()["error"]["status"] == 404 and str(missing) in reply.json()["error"]["message"]
        bad = call("GET", receiver_url + path.format("not-a-uuid"))
        assert bad.status == 400 and "malformed run id" in bad.json()["error"]["message"]


def test_trace_id_hex_is_accepted_as_run_id(receiver_url: str) -> None:
    (run_id,) = _post_runs(receiver_url, "hex-lookup", 1)
    assert get_json(f"{receiver_url}/runs/{uuid.UUID(run_id).hex}")["id"] == run_id


def test_index_health_ready(receiver_url: str) -> None:
    index = get_json(receiver_url + "/")
    assert index["name"] == "xray-otel" and "POST /v1/traces" in index["endpoints"]
    assert {"GET /steps", "GET /compare", "GET /metrics", "gRPC TraceService/Export"} <= set(index["endpoints"])
    assert get_json(receiver_url + "/health") == {"status": "ok"}
    assert get_json(receiver_url + "/ready") == {"status": "ready"}


def test_unknown_paths_and_methods_use_the_json_error_shape(receiver_url: str) -> None:
    missing = call("GET", receiver_url + "/no/such/thing")
    assert missing.status == 404 and missing.json()["error"]["status"] == 404
    wrong = call("DELETE", receiver_url + "/runs")
    assert wrong.status == 405 and wrong.json()["error"]["status"] == 405 and "GET" in wrong.headers["Allow"]
