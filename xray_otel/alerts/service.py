"""One process's alerting: the rules file loaded at start, the evaluation and delivery loops, and the
figures /metrics shows. Every `xray-otel serve` process runs one; the database shares the work out.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..config import Settings
from ..store.store import UNAVAILABLE_ERRORS, Store
from .delivery import Deliverer
from .evaluator import Evaluator
from .rules import RuleError, parse_rule

log = logging.getLogger(__name__)
_MAX_TICK = 5.0  # seconds: how soon a new rule is first evaluated, and how fresh the gauges are
_DELIVERY_POLL = 1.0  # seconds between looks at the outbox (a firing made here wakes the loop at once)


def read_rules_file(path: Path, *, private_webhooks: bool = False) -> list[Any]:
    """The rules a file holds (a JSON list, or {"rules": [...]}), each checked; ValueError says which and why."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the alert rules file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"the alert rules file {path} is not JSON: {exc}") from None
    items = doc.get("rules") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ValueError(f"the alert rules file {path} must hold a JSON list of rules, or {{\"rules\": [...]}}")
    rules = []
    for number, item in enumerate(items, 1):
        try:
            rules.append(parse_rule(item, private_webhooks=private_webhooks))
        except RuleError as exc:
            name = item.get("name") if isinstance(item, dict) else None
            raise ValueError(f"the alert rules file {path}, rule {number}"
                             + (f" ({name!r})" if isinstance(name, str) else "") + f": {exc}") from None
    return rules


class Alerts:
    """Started and stopped by server.running."""

    def __init__(self, store: Store, settings: Settings, registry: CollectorRegistry) -> None:
        self.store = store.alerts
        self._settings = settings
        self._tick = min(settings.alert_interval, _MAX_TICK)
        wake = asyncio.Event()
        evaluations = Counter("xray_alert_evaluations", "Alert rule evaluations made by this process, by outcome "
                              "(ok, firing, unknown: too little data to decide, error)", ["outcome"],
                              registry=registry)
        deliveries = Counter("xray_alert_deliveries", "Webhook delivery attempts made by this process, by outcome "
                             "(delivered, failed: retried with backoff)", ["outcome"], registry=registry)
        base_url = settings.public_url or f"http://{settings.host}:{settings.port}"
        self.evaluator = Evaluator(store.pool, store.reads, interval=settings.alert_interval, base_url=base_url,
                                   sample_runs=settings.alert_sample_runs,
                                   counted=lambda o: evaluations.labels(o).inc(),
                                   delivered=wake)
        self.deliverer = Deliverer(store.pool, server_secret=settings.alert_secret,
                                   first_retry=settings.alert_retry, wake=wake,
                                   private_webhooks=settings.alert_allow_private_webhooks,
                                   counted=lambda o: deliveries.labels(o).inc())
        self._gauges = _AlertGauges()
        registry.register(self._gauges)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Load the rules file (by name: loading it again changes nothing), then start both loops."""
        if self._settings.alert_rules is not None:
            rules = read_rules_file(self._settings.alert_rules,
                                    private_webhooks=self._settings.alert_allow_private_webhooks)
            changed = [rule.name for rule in rules if await self.store.upsert(rule)]
            log.info("alert rules loaded", extra={"file": str(self._settings.alert_rules), "rules": len(rules),
                                                  "changed": len(changed)})
        self._tasks = [asyncio.create_task(self._evaluate()),
                       asyncio.create_task(self.deliverer.run(_DELIVERY_POLL))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _evaluate(self) -> None:
        """Every tick: evaluate the rules that are due, then refresh the gauges from the database."""
        while True:
            try:
                while await self.evaluator.evaluate_one():
                    pass
                self._gauges.states, self._gauges.pending = await self.store.states()
            except UNAVAILABLE_ERRORS as exc:
                log.warning("alert evaluation skipped: database unavailable", extra={"error": str(exc)})
            except Exception:  # one bad round must not end evaluation for good
                log.exception("alert evaluation failed; retrying next tick")
            await asyncio.sleep(self._tick)


class _AlertGauges(Collector):
    """Every enabled rule's state as ``xray_alert_firing`` 1|0, and the deliveries owed, as of the last tick
    (the database's figures, the same from every process)."""

    def __init__(self) -> None:
        self.states: list[Any] = []
        self.pending: int | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        firing = GaugeMetricFamily("xray_alert_firing", "1 while the alert rule fires, else 0 (ok, or too little "
                                   "data to decide)", labels=["rule", "pipeline", "step"])
        for row in self.states:
            firing.add_metric([row["name"], row["pipeline"], row["step"] or ""], 1 if row["state"] == "firing" else 0)
        yield firing
        if self.pending is not None:
            yield GaugeMetricFamily("xray_alert_deliveries_pending", "Webhook deliveries not yet acknowledged "
                                    "(all processes)", self.pending)
