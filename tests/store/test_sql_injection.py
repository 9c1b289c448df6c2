"""SQL injection through every documented parameter changes nothing: the same rows before and after."""

from __future__ import annotations

import asyncio
import urllib.parse

import asyncpg

from helpers import call, export_request, get_json, new_ids, pipeline_spans, post_otlp

PAYLOADS = ["'; DROP TABLE runs; --", "x' OR '1'='1", "1; DELETE FROM steps", "') ; TRUNCATE steps; --",
            "a:b'); UPDATE runs SET name='pwned'; --", "$1", "\\'; DROP TABLE steps; --"]


def _snapshot(dsn: str) -> tuple:
    async def read() -> tuple:
        conn = await asyncpg.connect(dsn)
        try:
            return (await conn.fetchval("SELECT count(*) FROM runs"), await conn.fetchval("SELECT count(*) FROM steps"),
                    await conn.fetchval("SELECT count(*) FROM runs WHERE name = 'pwned'"),
                    await conn.fetchval("SELECT md5(string_agg(id::text || coalesce(name, ''), ',' ORDER BY id)) FROM runs"))
        finally:
            await conn.close()

    return asyncio.run(read())


def test_injection_payloads_in_every_parameter_change_nothing(receiver_url: str, pg_dsn: str) -> None:
    trace_id, base = new_ids()
    assert post_otlp(receiver_url, export_request(pipeline_spans(trace_id, base))).status == 200
    before = _snapshot(pg_dsn)
    doc = get_json(receiver_url + "/openapi.json")
    sent = 0
    for path, item in doc["paths"].items():
        op = item.get("get")
        if not op:
            continue
        for param in op["parameters"]:
            for payload in PAYLOADS:
                quoted = urllib.parse.quote(payload, safe="")
                url = receiver_url + path
                for other in op["parameters"]:  # fill the path, then put the payload in one place
                    if other["in"] == "path":
                        url = url.replace("{" + other["name"] + "}", quoted if other is param else "x")
                if param["in"] == "query":
                    url += "?" + urllib.parse.urlencode({param["name"]: payload})
                reply = call("GET", url)
                assert reply.status < 500, (url, reply.status, reply.body[:200])
                sent += 1
    assert sent > 300
    assert _snapshot(pg_dsn) == before
