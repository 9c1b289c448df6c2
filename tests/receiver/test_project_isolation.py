"""Project-bound keys cannot touch each other's runs (issue 16 §1), over OTLP/HTTP and OTLP/gRPC.

Two projects, shopA and shopB, each with an `ingest+read@project` key. What shopA writes into
shopB's trace id must neither change shopB's run, nor reveal anything of it to shopA, nor swallow
a span shopB sends later with the same span id. A cross-project trace stays readable to each project
as its own part, and to a key bound to no project as one run per project.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable, Iterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from conftest import ServerThread, serve
from helpers import Array, call, export_request, make_span, new_ids
from xray_otel.mapping.rows import project_run_id

KEYS = "ingest+read@shopA:key-a,ingest+read@shopB:key-b,ingest+read:admin"
PB = {"Content-Type": "application/x-protobuf"}
_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def server(pg_dsn: str) -> Iterator[ServerThread]:
    with serve(pg_dsn, api_keys=KEYS) as running:
        yield running


def _http(server: ServerThread, spans: list, service: str, key: str) -> None:
    reply = call("POST", server.url + "/v1/traces", export_request(spans, service=service).SerializeToString(),
                 {**PB, "x-api-key": key})
    assert reply.status == 200, reply.body
    answer = ExportTraceServiceResponse.FromString(reply.body)
    assert answer.partial_success.rejected_spans == 0, answer.partial_success.error_message


def _grpc(server: ServerThread, spans: list, service: str, key: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.settings.grpc_port}") as channel:
        export = channel.unary_unary(_EXPORT)
        answer = ExportTraceServiceResponse.FromString(
            export(export_request(spans, service=service).SerializeToString(), timeout=10,
                   metadata=(("authorization", f"Bearer {key}"),)))
    assert answer.partial_success.rejected_spans == 0, answer.partial_success.error_message


SENDERS: dict[str, Callable[..., None]] = {"http": _http, "grpc": _grpc}


def _get(server: ServerThread, path: str, key: str):
    return call("GET", server.url + path, headers={"x-api-key": key})


def _pipeline_b(trace_id: bytes, base: int, t0: int) -> list:
    """shopB's run: a run span with inputs and tags, and one costed step with a secret input."""
    return [
        make_span(trace_id, base, "pipeB", start=t0 + 5_000_000,
                  attrs={"xray.kind": "run", "xray.run.name": "pipeB", "xray.run.inputs": {"order": 7},
                         "xray.tag.owner": "META_B_TAG"}),
        make_span(trace_id, base + 1, "charge_card", parent=base, start=t0 + 6_000_000,
                  attrs={"xray.step.inputs": {"card": "4111-1111-1111-1111"}, "xray.step.cost": 0.25}),
    ]


@pytest.mark.parametrize("transport", SENDERS)
def test_another_project_cannot_rewrite_a_run(server: ServerThread, transport: str) -> None:
    send = SENDERS[transport]
    trace_id, base = new_ids()
    t0 = time.time_ns()
    run_id = uuid.UUID(bytes=trace_id)
    send(server, _pipeline_b(trace_id, base, t0), "shopB", "key-b")
    before = _get(server, f"/runs/{run_id}", "key-b").json()

    # shopA writes a better (earlier) run span into shopB's trace id.
    send(server, [make_span(trace_id, base + 99, "pipeHIJACKED", start=t0,
                            attrs={"xray.kind": "run", "xray.run.name": "pipeHIJACKED", "xray.tag.owner": "A"})],
         "shopA", "key-a")

    after = _get(server, f"/runs/{run_id}", "key-b").json()
    assert after == before
    assert after["name"] == "pipeB" and after["service"] == "shopB" and after["inputs"] == {"order": 7}
    assert after["tags"] == {"owner": "META_B_TAG"} and after["project"] == "shopB"
    assert after["trace_id"] == str(run_id)
    listed_b = [r for r in _get(server, "/runs?limit=1000", "key-b").json() if r["trace_id"] == str(run_id)]
    assert [r["name"] for r in listed_b] == ["pipeB"]
    # shopA's part is a run of its own, listed for shopA only.
    listed_a = [r for r in _get(server, "/runs?limit=1000", "key-a").json() if r["trace_id"] == str(run_id)]
    assert [(r["name"], r["service"]) for r in listed_a] == [("pipeHIJACKED", "shopA")]
    # A key bound to no project sees both parts, one run each, under different ids.
    both = [r for r in _get(server, "/runs?limit=1000", "admin").json() if r["trace_id"] == str(run_id)]
    assert sorted(r["project"] for r in both) == ["shopA", "shopB"] and len({r["id"] for r in both}) == 2


@pytest.mark.parametrize("transport", SENDERS)
def test_another_project_reads_nothing_of_a_run(server: ServerThread, transport: str) -> None:
    send = SENDERS[transport]
    trace_id, base = new_ids()
    t0 = time.time_ns()
    run_id = uuid.UUID(bytes=trace_id)
    send(server, _pipeline_b(trace_id, base, t0), "shopB", "key-b")
    send(server, [make_span(trace_id, base + 50, "probe", parent=base, start=t0 + 7_000_000)], "shopA", "key-a")

    bodies = b""
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/steps", f"/analyze/{run_id}", f"/runs/{run_id}/candidates",
                 f"/compare?base={run_id}&other={run_id}", "/runs?limit=1000", "/steps?limit=1000",
                 "/pipelines"):
        reply = _get(server, path, "key-a")
        assert reply.status == 200, (path, reply.status, reply.body[:200])
        bodies += reply.body
    for secret in (b"pipeB", b"META_B_TAG", b"shopB", b"4111", b"charge_card", b'"order"'):
        assert secret not in bodies, secret
    run = _get(server, f"/runs/{run_id}", "key-a").json()
    assert run["step_count"] == 1 and run["total_cost"] == 0 and run["service"] == "shopA"
    # shopB's run, asked for by the id the admin sees, is a 404 for shopA as an unknown run is.
    b_run = str(project_run_id("shopB", run_id))
    for path in (f"/runs/{b_run}", f"/runs/{b_run}/steps", f"/analyze/{b_run}", f"/runs/{b_run}/candidates"):
        assert _get(server, path, "key-a").status == 404, path
    # shopB still sees its run whole, and nothing of shopA's probe.
    steps_b = _get(server, f"/runs/{run_id}/steps", "key-b").json()
    assert [s["name"] for s in steps_b] == ["charge_card"]
    assert _get(server, f"/runs/{run_id}", "key-b").json()["total_cost"] == 0.25


@pytest.mark.parametrize("transport", SENDERS)
def test_another_project_cannot_swallow_a_span_sent_later(server: ServerThread, transport: str) -> None:
    """A downstream service sees its caller's span id in `traceparent`; writing it first must not make the
    caller's own span, sent later and acknowledged, disappear."""
    send = SENDERS[transport]
    trace_id, base = new_ids()
    t0 = time.time_ns()
    run_id = uuid.UUID(bytes=trace_id)
    send(server, [make_span(trace_id, base + 1, "squatter", parent=base, start=t0, attrs={"xray.step.cost": 9.0})],
         "shopA", "key-a")
    send(server, _pipeline_b(trace_id, base, t0), "shopB", "key-b")

    steps_b = _get(server, f"/runs/{run_id}/steps", "key-b").json()
    assert [(s["id"], s["name"], s["service"]) for s in steps_b] == [(span_hex(base + 1), "charge_card", "shopB")]
    assert steps_b[0]["inputs"] == {"card": "4111-1111-1111-1111"}
    run_b = _get(server, f"/runs/{run_id}", "key-b").json()
    assert run_b["step_count"] == 1 and run_b["total_cost"] == 0.25
    # shopA's span with the same id is stored too, in shopA's own run.
    assert [s["name"] for s in _get(server, f"/runs/{run_id}/steps", "key-a").json()] == ["squatter"]


def test_keys_bound_to_no_project_keep_one_run_per_trace(server: ServerThread) -> None:
    """Without project-bound writers nothing changes: a trace across services is one run, id = trace id."""
    trace_id, base = new_ids()
    t0 = time.time_ns()
    _http(server, [make_span(trace_id, base, "checkout", start=t0, attrs={"xray.kind": "run"})], "front", "admin")
    _http(server, [make_span(trace_id, base + 1, "charge", parent=base, start=t0 + 1000)], "billing", "admin")
    run_id = uuid.UUID(bytes=trace_id)
    run = _get(server, f"/runs/{run_id}", "admin").json()
    assert run["id"] == run["trace_id"] == str(run_id) and run["project"] is None and run["step_count"] == 1
    assert [s["service"] for s in _get(server, f"/runs/{run_id}/steps", "admin").json()] == ["billing"]


def span_hex(n: int) -> str:
    return n.to_bytes(8, "big").hex()


def test_a_downstream_projects_part_starts_at_its_remote_parent(server: ServerThread) -> None:
    """Real OTel SDKs: shopB calls shopA, which continues the trace from the `traceparent` it was sent.
    shopA's part is a run of its own, named and finished by its first local span, not a nameless
    RUNNING placeholder."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.propagate import extract, inject
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    def tracer(service: str, key: str) -> tuple[TracerProvider, trace.Tracer]:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint=server.url + "/v1/traces", headers={"x-api-key": key})))
        return provider, provider.get_tracer("test")

    provider_b, caller = tracer("shopB", "key-b")
    provider_a, callee = tracer("shopA", "key-a")
    carrier: dict[str, str] = {}
    with caller.start_as_current_span("checkout") as root:
        inject(carrier)
        with callee.start_as_current_span("price_lookup", context=extract(carrier)) as served:
            with callee.start_as_current_span("db_query"):
                pass
    provider_a.shutdown()
    provider_b.shutdown()
    trace_id = uuid.UUID(int=root.get_span_context().trace_id)
    assert served.get_span_context().trace_id == root.get_span_context().trace_id

    run_a = _get(server, f"/runs/{trace_id}", "key-a").json()
    assert (run_a["name"], run_a["status"], run_a["step_count"]) == ("price_lookup", "COMPLETED", 1)
    assert [s["name"] for s in _get(server, f"/runs/{trace_id}/steps", "key-a").json()] == ["db_query"]
    run_b = _get(server, f"/runs/{trace_id}", "key-b").json()
    assert (run_b["name"], run_b["status"], run_b["step_count"]) == ("checkout", "COMPLETED", 0)


def test_a_key_bound_to_no_project_finds_the_parts_by_trace_id(server: ServerThread) -> None:
    trace_id, base = new_ids()
    run_id = uuid.UUID(bytes=trace_id)
    _http(server, [make_span(trace_id, base, "only_a", attrs={"xray.kind": "run"})], "shopA", "key-a")
    one = _get(server, f"/runs/{run_id}", "admin")
    assert one.status == 200 and one.json()["id"] == str(project_run_id("shopA", run_id))
    assert one.json()["trace_id"] == str(run_id) and one.json()["project"] == "shopA"
    _http(server, [make_span(trace_id, base + 1, "only_b", attrs={"xray.kind": "run"})], "shopB", "key-b")
    both = _get(server, f"/runs/{run_id}", "admin")
    assert both.status == 404
    message = both.json()["error"]["message"]
    assert str(project_run_id("shopA", run_id)) in message and str(project_run_id("shopB", run_id)) in message


def test_runs_stored_before_projects_stay_readable_after_the_migration(pg_dsn: str) -> None:
    """A database at schema 7 with a run a project-bound key wrote (id = trace id, as then): migration 8
    keeps it, and both kinds of key read it as before."""
    import asyncio

    import asyncpg

    from conftest import _with_database
    from xray_otel.store.migrate import migrations

    name = f"xray_scratch_{uuid.uuid4().hex[:10]}"
    run_id = uuid.uuid4()

    async def at_version_7() -> None:
        admin = await asyncpg.connect(pg_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        conn = await asyncpg.connect(_with_database(pg_dsn, name))
        await conn.execute("CREATE TABLE xray_schema_version (version integer PRIMARY KEY, name text NOT NULL,"
                           " applied_at timestamptz NOT NULL DEFAULT now())")
        for version, file, text in migrations():
            if version <= 7:
                await conn.execute(text)
                await conn.execute("INSERT INTO xray_schema_version (version, name) VALUES ($1, $2)", version, file)
        await conn.execute("""INSERT INTO runs (id, source, span_id, name, status, service, started_at, step_count,
                                                 total_cost, steps_run_span)
                              VALUES ($1, 2, 'aa', 'old_run', 'COMPLETED', 'shopA', now(), 1, 0.5, 'aa')""", run_id)
        await conn.execute("""INSERT INTO steps (run_id, span_id, parent_span_id, name, type, status, cost, service,
                                                  run_span)
                              VALUES ($1, 'aa', NULL, 'old_run', 'run', 'COMPLETED', 0, 'shopA', true),
                                     ($1, 'bb', 'aa', 'old_step', 'llm', 'COMPLETED', 0.5, 'shopA', false)""", run_id)
        await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(pg_dsn)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(at_version_7())
    try:
        with serve(_with_database(pg_dsn, name), api_keys=KEYS) as migrated:
            for key in ("key-a", "admin"):
                run = _get(migrated, f"/runs/{run_id}", key).json()
                assert (run["name"], run["id"], run["trace_id"], run["project"]) == \
                    ("old_run", str(run_id), str(run_id), None)
                assert [s["name"] for s in _get(migrated, f"/runs/{run_id}/steps", key).json()] == ["old_step"]
            assert _get(migrated, f"/runs/{run_id}", "key-b").status == 404
    finally:
        asyncio.run(drop())


def test_a_continuation_part_from_another_service_neither_adds_to_nor_leaks_from_a_step(server: ServerThread) -> None:
    """A trusted writer (a key bound to no project) sends shopA's step, part 0 of 2, and a shopB span that
    claims to be part 1 of it. shopB's part counts for no step: shopA reads nothing of it, and the step is
    incomplete (its part 1 did not arrive from its own service), so shopB's candidate is unknown there."""
    from helpers import Array

    trace_id, base = new_ids()
    run_id = uuid.UUID(bytes=trace_id)

    def part(ids: list[str], codes: list[int], reasons: list[str], number: int) -> dict:
        return {"xray.step.outcomes.ids": Array(ids), "xray.step.outcomes.codes": Array(codes),
                "xray.step.outcomes.reasons": Array(reasons), "xray.step.outcomes.total": 3,
                "xray.step.outcomes.part": number, "xray.step.outcomes.parts": 2}

    _http(server, [make_span(trace_id, base, "pipeA", attrs={"xray.kind": "run"}),
                   make_span(trace_id, base + 1, "stepA", parent=base,
                             attrs={"xray.step.type": "filter", **part(["a1", "a2"], [0, 1], ["too_big"], 0)})],
          "shopA", "admin")
    _http(server, [make_span(trace_id, base + 2, "stepA outcomes", parent=base + 1, attrs={
        "xray.kind": "outcomes", **part(["b-secret-2"], [1], ["B-leak-reason"], 1)})], "shopB", "admin")

    for key in ("key-a", "admin"):
        listed = _get(server, f"/runs/{run_id}/candidates?limit=1000", key)
        assert listed.status == 200 and b"b-secret" not in listed.body and b"B-leak" not in listed.body, key
        path = _get(server, f"/runs/{run_id}/candidates/b-secret-2", key).json()
        assert path["outcome"] == "unknown" and "part" in path["why"], (key, path)
    funnel = _get(server, f"/analyze/{run_id}", "key-a").json()["funnel"]
    assert [(f["name"], f["outcomes"]) for f in funnel] == [("stepA", "incomplete")]
    assert _get(server, f"/runs/{run_id}/candidates/a2", "key-a").json()["outcome"] == "dropped"


def _outcome_run(name: str, service: str, key: str, server: ServerThread, target_code: int) -> None:
    """A run of ``name`` with one filter step whose outcomes hold candidate P-1 with ``target_code``."""
    trace_id, base = new_ids()
    t0 = time.time_ns() - 10**9
    spans = [make_span(trace_id, base, name, attrs={"xray.kind": "run"}, start=t0, duration_ns=10**7),
             make_span(trace_id, base + 1, "filter_by_price", parent=base, start=t0 + 10**6, attrs={
                 "xray.kind": "step", "xray.step.type": "filter",
                 "xray.step.outcomes.ids": Array(["P-1", f"{service}-secret-id"]),
                 "xray.step.outcomes.codes": Array([target_code, 1]),
                 "xray.step.outcomes.reasons": Array([f"{service}_private_reason"])})]
    _http(server, spans, service, key)


def test_a_candidates_history_and_never_survives_read_only_the_keys_project(server: ServerThread) -> None:
    shared, only_b = f"shared-{uuid.uuid4().hex[:8]}", f"only-b-{uuid.uuid4().hex[:8]}"
    _outcome_run(shared, "shopA", "key-a", server, target_code=0)
    _outcome_run(shared, "shopB", "key-b", server, target_code=1)
    _outcome_run(only_b, "shopB", "key-b", server, target_code=1)
    history = _get(server, f"/pipelines/{shared}/candidates/P-1", "key-a")
    assert history.status == 200
    answer = history.json()
    assert [r["outcome"] for r in answer["runs"]] == ["kept"] and answer["summary"]["runs_read"] == 1
    never = _get(server, f"/pipelines/{shared}/never-survives?limit=50", "key-a")
    assert never.status == 200 and never.json()["runs_read"] == 1
    for reply in (history, never):
        assert b"shopB" not in reply.body
    assert _get(server, f"/pipelines/{only_b}/candidates/P-1", "key-a").status == 404
    assert _get(server, f"/pipelines/{only_b}/never-survives", "key-a").status == 404
    both = _get(server, f"/pipelines/{shared}/candidates/P-1", "admin").json()  # a key bound to no project
    assert sorted(r["outcome"] for r in both["runs"]) == ["dropped", "kept"]
