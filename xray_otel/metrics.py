"""Self-metrics in Prometheus text format (prometheus_client), served at GET /metrics.

Per process: with ``--workers N`` each worker keeps its own figures, and a scrape of
the shared port reaches one of them (scrape each worker's process, or sum over time).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .receiver.errors import ReceiverError

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 8, 64, 256, 512, 1024, 4096, 16384, 65536)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("xray_export_requests", "Export requests by transport and outcome (ok, partial, "
                                "client_error, unavailable; error: a bug, answered 500; cancelled)",
                                ["transport", "outcome"], registry=self.registry)
        self.spans = Counter("xray_spans", "Spans by outcome: accepted (stored), rejected (partial_success), "
                             "refused (request failed, the exporter retries)", ["outcome"], registry=self.registry)
        self.latency = Histogram("xray_export_request_seconds", "Export request latency, received to answered",
                                 ["transport"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.json_bodies = Counter("xray_otlp_json_bodies", "OTLP/JSON bodies decoded, by how receiver/otlp_json "
                                   "read them: typed (in one pass, msgspec straight into structs: the form exporters "
                                   "write, and other camelCase spellings) or messages (walked field by field, slower: "
                                   "snake_case names, or a body the typed pass stopped at, such as one with a field "
                                   "newer than this receiver, parsed again)", ["decoder"], registry=self.registry)
        self.ignored = Counter("xray_otlp_ignored_requests", "OTLP metrics and logs export requests: answered "
                               "success so the app logs no export errors (traceloop-sdk and the OTel SDKs send them "
                               "by default), nothing of them stored", ["signal", "transport"], registry=self.registry)
        self.ignored_bytes = Counter("xray_otlp_ignored_bytes", "Bytes of OTLP metrics and logs export requests "
                                     "answered and not stored", ["signal", "transport"], registry=self.registry)
        self.batch = Histogram("xray_export_batch_spans", "Spans per export request",
                               buckets=_BATCH_BUCKETS, registry=self.registry)
        self.outcomes_incomplete = Counter(
            "xray_outcome_parts_incomplete", "Candidate outcome parts stored incomplete (an outcome set or outcomes "
            "refused, reasons cut): their steps answer unknown for a candidate not found there, never kept; the "
            "log and the export's partial_success message say why", registry=self.registry)

    def watch_pool(self, pool: Any) -> None:
        """Report the database pool's size and idle connections at each scrape."""
        self.registry.register(_PoolCollector(pool))

    def stored(self, accepted: int, rejected: int) -> None:
        self.batch.observe(accepted + rejected)
        self.spans.labels("accepted").inc(accepted)
        self.spans.labels("rejected").inc(rejected)

    def refused(self, spans: int) -> None:
        self.spans.labels("refused").inc(spans)

    @contextmanager
    def request(self, transport: str) -> Iterator[Callable[[str], None]]:
        """Time one export request; the body calls the yielded function to set the outcome (default ok)."""
        outcome = ["ok"]
        started = time.perf_counter()
        try:
            yield lambda value: outcome.__setitem__(0, value)
        except BaseException as exc:  # not answered by the handler: a bug (500), or the request cancelled
            outcome[0] = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            raise
        finally:
            self.latency.labels(transport).observe(time.perf_counter() - started)
            self.requests.labels(transport, outcome[0]).inc()


def outcome_of(exc: ReceiverError) -> str:
    """The request outcome label for a failed export."""
    return "unavailable" if exc.http_status in (429, 503) else "client_error"


class _PoolCollector(Collector):
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("xray_db_pool_connections", "Open database connections", self._pool.get_size())
        yield GaugeMetricFamily("xray_db_pool_idle", "Idle database connections", self._pool.get_idle_size())
