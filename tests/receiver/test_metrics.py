"""/metrics counts what happened, exactly: accepted, rejected and refused spans, requests by outcome."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import serve
from helpers import call, export_request, new_ids, otlp_json_body, pipeline_spans, post_otlp
from xray_otel.metrics import Metrics


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    reply = call("GET", url + "/metrics")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.body.decode()) for s in family.samples}


def test_metrics_count_spans_and_requests(pg_dsn: str) -> None:
    with serve(pg_dsn) as server:
        good = pipeline_spans(*new_ids())
        partial = pipeline_spans(*new_ids())
        partial[1].span_id = b"\x01"
        assert post_otlp(server.url, export_request(good)).status == 200
        assert post_otlp(server.url, export_request(partial)).status == 200
        assert call("POST", server.url + "/v1/traces", b"junk", {"Content-Type": "application/json"}).status == 400
        assert call("POST", server.url + "/ingest", b'{"events": []}', {"Content-Type": "application/json"}).status == 200
        m = scrape(server.url)
    assert m[("xray_spans_total", (("outcome", "accepted"),))] == 9
    assert m[("xray_spans_total", (("outcome", "rejected"),))] == 1
    assert m[("xray_export_requests_total", (("outcome", "ok"), ("transport", "http")))] == 1
    assert m[("xray_export_requests_total", (("outcome", "partial"), ("transport", "http")))] == 1
    assert m[("xray_export_requests_total", (("outcome", "client_error"), ("transport", "http")))] == 1
    assert m[("xray_export_requests_total", (("outcome", "ok"), ("transport", "legacy")))] == 1
    assert m[("xray_export_request_seconds_count", (("transport", "http"),))] == 3
    assert m[("xray_export_batch_spans_count", ())] == 3  # two OTLP requests and the (empty) legacy one
    assert m[("xray_db_pool_connections", ())] >= 1


def test_metrics_count_json_bodies_by_decoder(pg_dsn: str) -> None:
    """A JSON body in another form than exporters write goes to the slower decoder: that must show."""
    json_type = {"Content-Type": "application/json"}
    with serve(pg_dsn) as server:
        exporter_form = otlp_json_body(export_request(pipeline_spans(*new_ids())))
        snake_case = otlp_json_body(export_request(pipeline_spans(*new_ids())), preserving_proto_field_name=True)
        assert call("POST", server.url + "/v1/traces", exporter_form, json_type).status == 200
        assert call("POST", server.url + "/v1/traces", snake_case, json_type).status == 200
        assert call("POST", server.url + "/v1/traces", snake_case.replace(b"}", b"", 1), json_type).status == 400
        m = scrape(server.url)
    assert m[("xray_otlp_json_bodies_total", (("decoder", "typed"),))] == 1
    assert m[("xray_otlp_json_bodies_total", (("decoder", "messages"),))] == 1
    assert m[("xray_spans_total", (("outcome", "accepted"),))] == 10


@pytest.mark.parametrize("exc, outcome", [(RuntimeError("a bug"), "error"), (asyncio.CancelledError(), "cancelled")])
def test_a_request_that_ends_in_an_exception_is_not_counted_ok(exc: BaseException, outcome: str) -> None:
    """A handler that raises (a 500) or is cancelled (a gRPC deadline passing while a request maps)."""
    metrics = Metrics()
    with pytest.raises(type(exc)):
        with metrics.request("grpc"):
            raise exc
    counted = {s.labels["outcome"]: s.value for s in metrics.requests.collect()[0].samples if s.name.endswith("_total")}
    assert counted == {outcome: 1.0}


def test_refused_spans_are_counted_when_the_database_is_down(tmp_path) -> None:
    from xray_otel.store.embedded import start_embedded

    dsn, pg = start_embedded(tmp_path / "pg")
    with serve(dsn) as server:
        pg.cleanup()
        assert post_otlp(server.url, export_request(pipeline_spans(*new_ids()))).status == 503
        m = scrape(server.url)
    assert m[("xray_spans_total", (("outcome", "refused"),))] == 5
    assert m[("xray_export_requests_total", (("outcome", "unavailable"), ("transport", "http")))] == 1
