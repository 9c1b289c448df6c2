"""GET /runs filters and sorts; lineage lists; /compare; /pipelines. Data sent over OTLP."""

from __future__ import annotations

import urllib.parse

import pytest
from helpers import call, get_json
from query_data import Sent, send_all


@pytest.fixture(scope="module")
def sent(receiver_url: str) -> Sent:
    return send_all(receiver_url)


def runs(url: str, **params) -> list[str]:
    return [r["id"] for r in get_json(f"{url}/runs?{urllib.parse.urlencode(params, doseq=True)}")]


def test_run_filters(receiver_url: str, sent: Sent) -> None:
    svc, (good, bad, failed) = sent.service, (sent.runs["good"], sent.runs["bad"], sent.runs["failed"])
    assert runs(receiver_url, service=svc) == [failed, bad, good]
    assert runs(receiver_url, service=svc, tag="env:prod") == [failed, good]
    assert runs(receiver_url, service=svc, tag=["env:prod", "product:P-phone"]) == [good]
    assert runs(receiver_url, service=svc, tag="attempt:2") == [bad]  # an int tag matched by its text
    assert runs(receiver_url, service=svc, q="ACCESS") == [bad, good]
    assert runs(receiver_url, service=svc, q="%") == []  # wildcards are literal
    assert runs(receiver_url, service=svc, min_cost=0.01) == [failed, good]
    assert runs(receiver_url, service=svc, max_cost=0.01) == [bad]
    assert runs(receiver_url, service=svc, has_error="true") == [failed]
    assert runs(receiver_url, service=svc, has_error="false") == [bad, good]
    assert runs(receiver_url, service=svc, status="completed", name="find_accessory") == [bad, good]
    everything = get_json(f"{receiver_url}/runs?service={svc}")
    assert runs(receiver_url, service=svc, since=everything[1]["started_at"]) == [failed, bad]
    assert runs(receiver_url, service=svc, until=everything[1]["started_at"]) == [good]


def test_run_sorts_and_pages(receiver_url: str, sent: Sent) -> None:
    svc = sent.service
    assert runs(receiver_url, service=svc, sort="-cost") == [sent.runs[k] for k in ("failed", "good", "bad")]
    assert runs(receiver_url, service=svc, sort="started_at") == [sent.runs[k] for k in ("good", "bad", "failed")]
    assert runs(receiver_url, service=svc, sort="-duration")[0] == sent.runs["failed"]
    for sort in ("-cost", "duration", "step_count", "-started_at"):
        seen, url = [], f"{receiver_url}/runs?service={svc}&sort={sort}&limit=1"
        while url:
            reply = call("GET", url)
            seen += [r["id"] for r in reply.json()]
            link = reply.headers.get("Link")
            url = receiver_url + link[1:link.index(">")] if link else None
        assert seen == runs(receiver_url, service=svc, sort=sort)


@pytest.mark.parametrize("query", ["min_cost=-1", "min_cost=x", "has_error=2", "sort=name", "tag=:x",
                                   "until=2026-13-01", "unknown=1", "status=done"])
def test_bad_run_parameters(receiver_url: str, query: str) -> None:
    reply = call("GET", f"{receiver_url}/runs?{query}")
    assert reply.status == 400 and reply.json()["error"]["status"] == 400


def test_decision_list_filters(receiver_url: str, sent: Sent) -> None:
    base = f"{receiver_url}/runs/{sent.runs['bad']}/candidates"
    dropped = get_json(f"{base}?step=filter_price&accepted=false&reason=price_too_high")
    assert len(dropped) == 19 and "phone-case" in {d["candidate_id"] for d in dropped}
    assert [d["candidate_id"] for d in get_json(f"{base}?accepted=true")] == ["laptop-stand", "laptop-stand"]
    assert [d["step"] for d in get_json(f"{base}?candidate=laptop-stand")] == ["filter_price", "rank"]
    assert get_json(f"{base}?reason=nope") == []
    pages, url, seen = 0, f"{base}?limit=7", []
    while url:
        reply = call("GET", url)
        seen += reply.json()
        pages += 1
        link = reply.headers.get("Link")
        url = receiver_url + link[1:link.index(">")] if link else None
    assert len(seen) == 21 and pages == 4 and seen == get_json(base)  # a full page always links on


def test_lineage_errors(receiver_url: str, sent: Sent) -> None:
    missing = call("GET", f"{receiver_url}/runs/{sent.runs['bad']}/candidates/no-such-thing")
    assert missing.status == 404 and "no decision recorded" in missing.json()["error"]["message"]
    assert call("GET", f"{receiver_url}/runs/00000000-0000-0000-0000-000000000001/candidates/x").status == 404
    assert call("GET", f"{receiver_url}/runs/nope/candidates").status == 400
    assert call("GET", f"{receiver_url}/runs/{sent.runs['bad']}/candidates?accepted=perhaps").status == 400


def test_compare_good_and_bad(receiver_url: str, sent: Sent) -> None:
    diff = get_json(f"{receiver_url}/compare?base={sent.runs['good']}&other={sent.runs['bad']}")
    assert diff["base"]["id"] == sent.runs["good"] and diff["other"]["id"] == sent.runs["bad"]
    assert [s["name"] for s in diff["steps"]] == ["retrieve", "filter_price", "rank"]
    assert diff["steps"][0]["changed"] == []
    assert diff["first_divergence"]["name"] == "filter_price"
    assert {"output_count", "drop_rate", "rejections", "reasoning"} <= set(diff["first_divergence"]["changed"])
    assert diff["steps"][1]["rejections_delta"] == {"price_too_high": 4}
    assert diff["summary"]["final_outputs"] == {"base": {"selected": "phone-case"},
                                                "other": {"selected": "laptop-stand"}}
    assert diff["summary"]["outputs_changed"] is True
    missing = get_json(f"{receiver_url}/compare?base={sent.runs['good']}&other={sent.runs['failed']}")
    assert missing["first_divergence"] == {"funnel": "retrieve", "name": "retrieve", "occurrence": 1,
                                           "changed": ["missing"]}
    assert call("GET", f"{receiver_url}/compare?base={sent.runs['good']}").status == 400
    assert call("GET", f"{receiver_url}/compare?base={sent.runs['good']}&other=x").status == 400


def test_pipelines(receiver_url: str, sent: Sent) -> None:
    listing = get_json(f"{receiver_url}/pipelines?service={sent.service}")
    by_name = {p["name"]: p for p in listing["pipelines"]}
    assert set(by_name) == {"find_accessory", "summarise"}
    assert by_name["find_accessory"]["run_count"] == 2 and by_name["find_accessory"]["failure_rate"] == 0
    assert by_name["summarise"]["failure_rate"] == 1.0
    assert by_name["find_accessory"]["duration_ms"] == {"p50": 40.0, "p95": 40.0}
    one = get_json(f"{receiver_url}/pipelines/summarise?since=1h")
    assert one["run_count"] >= 1 and [s["name"] for s in one["steps"]] == ["call_llm"]
    acc = get_json(f"{receiver_url}/pipelines/find_accessory?since=1h")
    steps = {s["name"]: s for s in acc["steps"]}
    assert list(steps) == ["retrieve", "filter_price", "rank"]
    assert steps["filter_price"]["top_rejections"][0]["reason"] == "price_too_high"
    assert steps["filter_price"]["p95_drop_rate"] is not None
    assert call("GET", f"{receiver_url}/pipelines/never-ran").status == 404
    assert get_json(f"{receiver_url}/pipelines/summarise?until=2000-01-01T00:00:00Z")["run_count"] == 0
    assert call("GET", f"{receiver_url}/pipelines?since=1h&until=2h").status == 400
