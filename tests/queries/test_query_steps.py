"""GET /steps: every filter, sorts, cursor pages, 400s; the phone-case walkthrough end to end."""

from __future__ import annotations

import urllib.parse

import pytest
from helpers import call, get_json
from query_data import Sent, send_all


@pytest.fixture(scope="module")
def sent(receiver_url: str) -> Sent:
    return send_all(receiver_url)


def steps(url: str, **params) -> list[dict]:
    return get_json(f"{url}/steps?{urllib.parse.urlencode(params, doseq=True)}")


def test_phone_case_walkthrough(receiver_url: str, sent: Sent) -> None:
    # "Every run where a filter step eliminated more than 90% of candidates" finds the bad run only...
    hits = steps(receiver_url, type="filter", min_drop_rate=0.9, service=sent.service)
    assert [(h["run_id"], h["name"], h["drop_rate"]) for h in hits] == [(sent.runs["bad"], "filter_price", 0.95)]
    assert hits[0]["run_name"] == "find_accessory" and hits[0]["rejections"] == {"price_too_high": 19}
    # ...and the lineage endpoint says where the phone case left and why.
    path = get_json(f"{receiver_url}/runs/{hits[0]['run_id']}/candidates/phone-case")
    assert path["outcome"] == "dropped"
    assert path["left_at"] == {"step_id": hits[0]["id"], "step": "filter_price", "type": "filter",
                               "reason": "price_too_high"}
    # In the good run it went all the way.
    good = get_json(f"{receiver_url}/runs/{sent.runs['good']}/candidates/phone-case")
    assert good["outcome"] == "kept" and [(d["step"], d["accepted"], d["score"]) for d in good["path"]] == [
        ("filter_price", True, None), ("rank", True, 0.93)]


def test_filters(receiver_url: str, sent: Sent) -> None:
    svc = sent.service
    good, bad, failed = sent.runs["good"], sent.runs["bad"], sent.runs["failed"]
    assert {h["run_id"] for h in steps(receiver_url, service=svc)} == {good, bad, failed}
    assert len(steps(receiver_url, service=svc)) == 7  # run spans are not steps
    assert {h["run_id"] for h in steps(receiver_url, service=svc, type="rank")} == {good, bad}
    assert [h["run_id"] for h in steps(receiver_url, service=svc, name="call_llm")] == [failed]
    assert {h["name"] for h in steps(receiver_url, service=svc, run_name="summarise")} == {"call_llm"}
    assert [h["name"] for h in steps(receiver_url, service=svc, max_drop_rate=0.8, min_drop_rate=0.76)] == ["rank"]
    assert {(h["run_id"], h["name"]) for h in steps(receiver_url, service=svc, min_input_count=20)} == {
        (good, "filter_price"), (bad, "filter_price")}
    assert {(h["run_id"], h["name"]) for h in steps(receiver_url, service=svc, reason="low_score")} == {(good, "rank")}
    assert len(steps(receiver_url, service=svc, reason="price_too_high")) == 2
    assert steps(receiver_url, service=svc, reason="price_too") == []  # exact, not a prefix
    assert [h["name"] for h in steps(receiver_url, service=svc, status="failed")] == ["call_llm"]
    assert [h["name"] for h in steps(receiver_url, service=svc, has_error="true")] == ["call_llm"]
    assert len(steps(receiver_url, service=svc, has_error="false")) == 6
    assert {h["run_id"] for h in steps(receiver_url, service=svc, tag="env:prod")} == {good, failed}
    assert {h["run_id"] for h in steps(receiver_url, service=svc, tag=["env:prod", "attempt:1"])} == {good}
    assert steps(receiver_url, service=svc, tag="attempt:3") == []
    all_steps = steps(receiver_url, service=svc, sort="started_at")
    middle = all_steps[3]["started_at"]
    assert [h["id"] for h in steps(receiver_url, service=svc, since=middle, sort="started_at")] == [
        h["id"] for h in all_steps[3:]]
    assert [h["id"] for h in steps(receiver_url, service=svc, until=middle, sort="started_at")] == [
        h["id"] for h in all_steps[:3]]
    assert len(steps(receiver_url, service=svc, since="1h")) == 7  # relative times: sent seconds ago
    assert steps(receiver_url, service=svc, until="1h") == []


def test_sorts(receiver_url: str, sent: Sent) -> None:
    svc = sent.service
    by_drop = steps(receiver_url, service=svc, sort="-drop_rate")
    assert [h["drop_rate"] for h in by_drop] == [0.95, 0.8, 0.75, 0.0]  # only steps with both counts
    assert [h["drop_rate"] for h in steps(receiver_url, service=svc, sort="drop_rate")] == [0.0, 0.75, 0.8, 0.95]
    assert [h["cost"] for h in steps(receiver_url, service=svc, sort="-cost")][:3] == [0.05, 0.02, 0.004]
    assert steps(receiver_url, service=svc, sort="-duration")[0]["name"] == "call_llm"
    assert [h["input_count"] for h in steps(receiver_url, service=svc, sort="-input_count")] == [20, 20, 5, 1]
    newest = steps(receiver_url, service=svc)
    assert [h["started_at"] for h in newest] == sorted((h["started_at"] for h in newest), reverse=True)


@pytest.mark.parametrize("sort", ["-started_at", "started_at", "-drop_rate", "cost", "-duration", "input_count"])
def test_cursor_pages_cover_every_hit_once(receiver_url: str, sent: Sent, sort: str) -> None:
    everything = steps(receiver_url, service=sent.service, sort=sort)
    seen, url = [], f"{receiver_url}/steps?service={sent.service}&sort={urllib.parse.quote(sort)}&limit=2"
    while url:
        reply = call("GET", url)
        assert reply.status == 200, reply.body
        seen += reply.json()
        link = reply.headers.get("Link")
        url = receiver_url + link[1:link.index(">")] if link else None
    assert [h["id"] + h["run_id"] for h in seen] == [h["id"] + h["run_id"] for h in everything]


@pytest.mark.parametrize("query, message", [
    ("min_drop_rate=lots", "min_drop_rate must be a number"),
    ("min_drop_rate=nan", "finite"),
    ("status=weird", "status must be one of"),
    ("has_error=maybe", "has_error must be true or false"),
    ("since=yesterday", "since must be an ISO-8601 time"),
    ("tag=novalue", "tag must be key:value"),
    ("sort=-colour", "sort must be one of"),
    ("limit=0", "limit must be at least 1"),
    ("min_input_count=-1", "min_input_count must be at least 0"),
    ("cursor=abc", "malformed cursor"),
    ("typo=1", "unknown parameter 'typo'"),
    ("type=a&type=b", "type given 2 times"),
    ("name=%00", "NUL"),
])
def test_bad_parameters_are_400_in_the_error_shape(receiver_url: str, query: str, message: str) -> None:
    reply = call("GET", f"{receiver_url}/steps?{query}")
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["status"] == 400 and message in reply.json()["error"]["message"]


def test_cursor_of_another_sort_is_refused(receiver_url: str, sent: Sent) -> None:
    cursor = call("GET", f"{receiver_url}/steps?service={sent.service}&limit=1").headers["X-Next-Cursor"]
    reply = call("GET", f"{receiver_url}/steps?service={sent.service}&limit=1&sort=-cost&cursor={cursor}")
    assert reply.status == 400 and "cursor belongs to sort=-started_at" in reply.json()["error"]["message"]
