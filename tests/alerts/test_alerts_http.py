"""Alerts through the real path: rules over HTTP, spans over OTLP, the server's own background evaluation,
and a real aiohttp webhook receiver that checks the signature; two servers on one database; a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from conftest import _admin, _with_database, free_port, serve
from helpers import call, db, export_request, get_json, new_ids, pipeline_spans, post_otlp
from query_data import health_runs
from xray_otel.alerts import evaluator
from xray_otel.cli import main

SECRET = "webhook-secret-1234"
SAFE = {"alert_interval": 0.2, "alert_retry": 0.2}  # the default: webhooks at public addresses only
FAST = {**SAFE, "alert_allow_private_webhooks": True}  # opted in: the Hook listens on 127.0.0.1
PIPELINE, STEP = "select_competitor", "filter_price"  # helpers.pipeline_spans: filter_price drops 4700 of 5000


class Hook:
    """A webhook receiver on its own loop: answers 500 to the first ``fail`` calls, then 200."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.calls = fail, []  # calls: (status answered, headers, body bytes)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Hook:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if len(self.calls) < self.fail else 200
        self.calls.append((status, dict(request.headers), body))
        return web.Response(status=status)

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies answered 200, each with its signature checked against SECRET."""
        found = []
        for status, headers, body in self.calls:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Xray-Signature"], expected)
            if status == 200:
                found.append(json.loads(body))
        return found


@pytest.fixture
def alert_db(pg_dsn: str) -> Iterator[str]:
    """A database of this test's own: rules and firings no other server sees or evaluates."""
    name = f"xray_alerts_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(pg_dsn, f'CREATE DATABASE "{name}"'))
    yield _with_database(pg_dsn, name)
    asyncio.run(_admin(pg_dsn, f'DROP DATABASE "{name}" WITH (FORCE)'))


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


def send(url: str, runs: int = 3) -> None:
    for _ in range(runs):
        assert post_otlp(url, export_request(pipeline_spans(*new_ids()))).status == 200


def post_json(url: str, body: Any, method: str = "POST", **headers: str) -> Any:
    return call(method, url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})


def rule(**change: Any) -> dict[str, Any]:
    return {"name": "price filter drops nearly all", "pipeline": PIPELINE, "step": STEP, "metric": "drop_rate",
            "comparison": "above", "threshold": 0.9, "window": "15m", **change}


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = call("GET", url + "/metrics").body.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def evaluations(url: str) -> float:
    return sum(v for (name, _), v in scrape(url).items() if name == "xray_alert_evaluations_total")


def test_a_threshold_rule_fires_once_signed_retried_and_resolves(alert_db: str) -> None:
    with Hook(fail=2) as hook, serve(alert_db, **FAST) as server:
        send(server.url)
        reply = post_json(server.url + "/alerts/rules", rule(webhook=hook.url, secret=SECRET))
        assert reply.status == 201, reply.body
        created = reply.json()
        assert created["has_secret"] is True and SECRET not in reply.body.decode()
        assert created["webhook"] == f"http://127.0.0.1:{hook.port}/…" and created["has_webhook"] is True
        assert reply.headers["Location"] == f"/alerts/rules/{created['id']}"

        firing = until(hook.delivered, "the firing delivered")[0]
        assert [status for status, _, _ in hook.calls] == [500, 500, 200]  # retried with backoff, same body
        assert len({body for _, _, body in hook.calls}) == 1
        assert firing["state"] == "firing" and firing["pipeline"] == PIPELINE and firing["step"] == STEP
        assert firing["what"] == "drop_rate" and firing["threshold"] == 0.9
        assert firing["value"] == pytest.approx(0.94) and firing["rule"]["name"] == created["name"]
        assert firing["links"]["steps"].startswith(server.url + "/steps?run_name=select_competitor&name=filter_price")
        attempts = db(alert_db, "SELECT attempt, status FROM alert_delivery_attempts ORDER BY attempt")
        assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]

        overview = get_json(server.url + "/alerts")
        assert overview["rules"][0]["state"] == "firing" and overview["rules"][0]["value"] == pytest.approx(0.94)
        assert [(f["id"], f["state"], f["delivery"]["attempts"]) for f in overview["firings"]] == [
            (firing["id"], "firing", 3)]
        labels = (("pipeline", PIPELINE), ("rule", created["name"]), ("step", STEP))
        assert scrape(server.url)[("xray_alert_firing", labels)] == 1

        # The same rule with a threshold it no longer crosses: a resolution, naming the firing it ends.
        reply = post_json(server.url + f"/alerts/rules/{created['id']}", rule(webhook=hook.url, threshold=0.99),
                          method="PUT")
        assert reply.status == 200 and reply.json()["has_secret"] is True  # a secret left out is kept
        resolved = until(lambda: hook.delivered()[1:], "the resolution delivered")[0]
        assert resolved["state"] == "resolved" and resolved["firing_id"] == firing["id"]
        until(lambda: scrape(server.url)[("xray_alert_firing", labels)] == 0, "the gauge back to 0")
        seen = evaluations(server.url)
        until(lambda: evaluations(server.url) >= seen + 5, "five more evaluations")
        assert len(hook.delivered()) == 2  # nothing new to say: nothing more sent
        assert db(alert_db, "SELECT count(*) FROM alert_firings")[0]["count"] == 2


def test_two_servers_on_one_database_fire_each_rule_once(alert_db: str) -> None:
    with Hook() as hook, serve(alert_db, **FAST) as one, serve(alert_db, **FAST) as two:
        send(one.url)
        for n in range(10):  # disabled, then enabled at once: both servers find all ten due together
            reply = post_json(two.url + "/alerts/rules",
                              rule(name=f"rule {n}", webhook=hook.url, secret=SECRET, enabled=False))
            assert reply.status == 201, reply.body
        db(alert_db, "UPDATE alert_rules SET enabled = true, next_eval_at = now()")
        until(lambda: len(hook.delivered()) >= 10, "ten firings delivered")
        until(lambda: evaluations(one.url) + evaluations(two.url) >= 100, "many evaluations by both")
        assert db(alert_db, "SELECT count(*) FROM alert_firings")[0]["count"] == 10
        assert sorted(body["rule"]["name"] for body in hook.delivered()) == sorted(f"rule {n}" for n in range(10))
        assert len(hook.calls) == 10


def test_a_restart_neither_loses_nor_repeats_a_firing(alert_db: str) -> None:
    with Hook(fail=10**6) as hook:
        with serve(alert_db, **FAST) as server:
            send(server.url)
            assert post_json(server.url + "/alerts/rules", rule(webhook=hook.url, secret=SECRET)).status == 201
            until(lambda: hook.calls, "a first delivery attempt")
        hook.fail = 0  # the receiver recovers while no server runs
        with serve(alert_db, **FAST) as server:
            until(hook.delivered, "the firing delivered after the restart")
            seen = evaluations(server.url)
            until(lambda: evaluations(server.url) >= seen + 5, "five more evaluations")
            assert get_json(server.url + "/alerts/rules")[0]["state"] == "firing"
    assert len(hook.delivered()) == 1
    assert len({body for _, _, body in hook.calls}) == 1  # every attempt the same firing
    assert db(alert_db, "SELECT count(*) FROM alert_firings")[0]["count"] == 1


def test_bad_input_is_a_400_naming_the_field(alert_db: str) -> None:
    with serve(alert_db, **FAST) as server:
        rules = server.url + "/alerts/rules"
        for body, field in ((rule(name=None), "name"), (rule(metric="speed"), "metric"),
                            (rule(threshold="high"), "threshold"), (rule(window="5 parsecs"), "window"),
                            (rule(webhook="ftp://example.com"), "webhook"), (rule(colour="red"), "colour"),
                            (rule(webhook="http://127.0.0.1:9/hook"), "secret"), ([], "body")):
            reply = post_json(rules, body)
            assert reply.status == 400, (field, reply.body)
            assert reply.json()["error"]["message"].startswith(field + ":"), reply.body
        assert call("POST", rules, b"{not json", {"Content-Type": "application/json"}).json()["error"][
            "message"].startswith("body:")
        created = post_json(rules, rule()).json()
        assert post_json(rules, rule()).status == 409
        assert call("GET", rules + "/abc").status == 400
        assert call("GET", rules + "/999999").status == 404
        assert post_json(rules + "/999999", rule(), method="PUT").status == 404
        assert call("DELETE", rules + f"/{created['id']}").status == 204
        assert call("DELETE", rules + f"/{created['id']}").status == 404
        assert call("GET", server.url + "/alerts?limit=0").status == 400


def test_changing_rules_needs_the_admin_scope(alert_db: str) -> None:
    with serve(alert_db, api_keys="read:reader-key,read+admin:admin-key,read@shop:shop-key", **FAST) as server:
        rules = server.url + "/alerts/rules"
        assert post_json(rules, rule(), Authorization="Bearer reader-key").status == 403
        assert post_json(rules, rule(), Authorization="Bearer admin-key").status == 201
        assert call("GET", rules, headers={"Authorization": "Bearer reader-key"}).status == 200
        assert call("GET", server.url + "/alerts", headers={"Authorization": "Bearer shop-key"}).status == 403


def test_a_change_rule_fires_once_naming_the_step_and_what_moved(alert_db: str) -> None:
    """The price filter of a noisy pipeline starts rejecting twice as much as "too expensive" in the last day."""
    rng, now, day = random.Random(7), datetime.now(timezone.utc), timedelta(days=1)
    with Hook() as hook, serve(alert_db, **FAST) as server:
        reply = post_json(server.url + "/alerts/rules", {"name": "nobody yet", "kind": "change", "pipeline": "nope"})
        assert reply.json()["window"] == "1d" and reply.json()["baseline"] == "7d"
        until(lambda: get_json(server.url + f"/alerts/rules/{reply.json()['id']}")["evaluated_at"], "evaluated")
        assert "no run is named 'nope'" in get_json(server.url + f"/alerts/rules/{reply.json()['id']}")["note"]

        health_runs(server.url, "shop", sorted(now - 8 * day + 7 * day * rng.random() for _ in range(280)), rng)
        health_runs(server.url, "shop", sorted(now - day + day * rng.random() for _ in range(40)), rng,
                    high_share=0.6)
        assert post_json(server.url + "/alerts/rules", {"name": "anything in shop", "kind": "change",
                                                        "pipeline": "shop", "webhook": hook.url,
                                                        "secret": SECRET}).status == 201
        body = until(hook.delivered, "the change delivered")[0]
        seen = evaluations(server.url)
        until(lambda: evaluations(server.url) >= seen + 5, "five more evaluations")
    assert len(hook.calls) == 1
    assert body["state"] == "firing" and body["pipeline"] == "shop" and body["step"] == "filter_by_price"
    assert body["what"] in ("drop_rate", "reason_share") and body["value"] >= 1
    assert body["changes"][0]["significant"] and body["changes"][0]["step"] == "filter_by_price"


def test_rules_file_at_start_is_idempotent_by_name(alert_db: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [rule(), rule(name="runs fail", step=None, metric="failure_rate",
                                                     threshold=0.2)]}))
    with serve(alert_db, alert_rules=path, **FAST) as server:
        first = {r["name"]: r for r in get_json(server.url + "/alerts/rules")}
    with serve(alert_db, alert_rules=path, **FAST) as server:
        again = {r["name"]: r for r in get_json(server.url + "/alerts/rules")}
    assert first.keys() == again.keys() == {"price filter drops nearly all", "runs fail"}
    assert all(first[n]["id"] == again[n]["id"] and first[n]["updated_at"] == again[n]["updated_at"] for n in first)
    path.write_text(json.dumps([rule(window="2 fortnights")]))
    with pytest.raises(ValueError, match=r"rule 1 \('price filter drops nearly all'\): window: must look like"):
        with serve(alert_db, alert_rules=path, **FAST):
            pass


def test_cli_adds_lists_and_removes_rules(alert_db: str, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with serve(alert_db, **FAST) as server:
        send(server.url)
        assert main(["alerts", "add", "--url", server.url, "--name", "cli rule", "--pipeline", PIPELINE, "--step",
                     STEP, "--metric", "drop_rate", "--above", "0.5", "--window", "1h", "--webhook",
                     "http://127.0.0.1:9/hook", "--secret-env", "HOOK_SECRET"]) == 0
        assert "drop_rate above 0.5 over 1h" in capsys.readouterr().out
        until(lambda: get_json(server.url + "/alerts/rules")[0]["state"] == "firing", "the rule firing")
        assert main(["alerts", "list", "--url", server.url]) == 0
        out = capsys.readouterr().out
        assert "cli rule" in out and "firing" in out and SECRET not in out
        assert main(["alerts", "add", "--url", server.url, "--name", "x", "--pipeline", "p", "--metric", "nope",
                     "--above", "1"]) == 1
        assert capsys.readouterr().err.startswith("xray-otel: 400: metric: must be one of")
        assert main(["alerts", "rm", "cli rule", "--url", server.url]) == 0
        assert get_json(server.url + "/alerts/rules") == []


def test_answers_show_only_where_a_webhook_goes(alert_db: str) -> None:
    """A webhook URL is often the credential (a Slack token in the path, ``?token=``): read keys see its host."""
    url = "https://hooks.example.com/services/T0/B0/SECRETTOKEN?token=abc"  # no runs: never fires, never sent
    with serve(alert_db, api_keys="read:reader-key,read+admin:admin-key", **SAFE) as server:
        rules, admin = server.url + "/alerts/rules", {"Authorization": "Bearer admin-key"}
        reply = post_json(rules, rule(webhook=url, secret=SECRET), **admin)
        assert reply.status == 201, reply.body
        rule_id = reply.json()["id"]
        assert post_json(rules, rule(name="no hook"), **admin).status == 201
        reader = {"Authorization": "Bearer reader-key"}
        answers = [reply.body] + [call("GET", server.url + path, headers=reader).body
                                  for path in ("/alerts/rules", f"/alerts/rules/{rule_id}", "/alerts")]
        assert not [body for body in answers if b"SECRETTOKEN" in body or b"token=" in body]
        shown = {r["name"]: r for r in json.loads(answers[1])}
        assert shown[rule()["name"]]["webhook"] == "https://hooks.example.com/…"
        assert shown[rule()["name"]]["has_webhook"] is True
        assert shown["no hook"]["webhook"] is None and shown["no hook"]["has_webhook"] is False

        # Read back and sent again as shown: the stored URL stays (it is not replaced by its shortened form).
        again = {k: v for k, v in shown[rule()["name"]].items() if k in rule() or k == "webhook"}
        assert post_json(rules + f"/{rule_id}", again, method="PUT", **admin).status == 200
        assert db(alert_db, "SELECT webhook FROM alert_rules WHERE id = $1", rule_id)[0]["webhook"] == url

        for bad in ("https://user:pass@hooks.example.com/x", "https://token@hooks.example.com/x"):
            reply = post_json(rules, rule(name="creds", webhook=bad, secret=SECRET), **admin)
            message = reply.json()["error"]["message"]
            assert reply.status == 400 and message.startswith("webhook:") and "`secret`" in message, message


def test_webhooks_inside_the_network_are_refused_without_opt_in(alert_db: str) -> None:
    """Literal addresses at creation (a 400), names at connect time (DNS answers filtered: no rebinding)."""
    with Hook() as hook, serve(alert_db, **SAFE) as server:
        rules = server.url + "/alerts/rules"
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x",
                    "http://10.1.2.3/x"):
            reply = post_json(rules, rule(webhook=url, secret=SECRET))
            message = reply.json()["error"]["message"]
            assert reply.status == 400 and message.startswith("webhook:"), message
            assert "XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS=1" in message, message

        send(server.url)
        reply = post_json(rules, rule(webhook=f"http://localhost:{hook.port}/hook", secret=SECRET))
        assert reply.status == 201, reply.body
        attempt = until(lambda: db(alert_db, "SELECT status, error FROM alert_delivery_attempts"), "an attempt")[0]
        assert attempt["status"] is None and "localhost resolves only to non-public addresses" in attempt["error"]
        assert "XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS=1" in attempt["error"] and "/hook" not in attempt["error"]

        # A literal address stored while private webhooks were allowed is not connected to either.
        db(alert_db, "DELETE FROM alert_delivery_attempts")
        db(alert_db, "UPDATE alert_outbox SET url = $1, next_attempt_at = now()", hook.url)
        attempt = until(lambda: db(alert_db, "SELECT status, error FROM alert_delivery_attempts"), "an attempt")[0]
        assert attempt["status"] is None and "is a loopback address: not connected to" in attempt["error"]
        assert get_json(server.url + "/alerts")["firings"][0]["delivery"]["delivered_at"] is None
    assert hook.calls == []


def test_a_resolution_is_not_delivered_before_the_firing_it_ends(alert_db: str) -> None:
    """The firing's first delivery fails and waits out its backoff; the rule resolves meanwhile and the
    receiver recovers: the receiver still hears the firing first, so it does not end believing it fires."""
    with Hook(fail=1) as hook, serve(alert_db, **{**FAST, "alert_retry": 5.0}) as server:
        send(server.url)
        created = post_json(server.url + "/alerts/rules", rule(webhook=hook.url, secret=SECRET)).json()
        until(lambda: hook.calls, "the firing's first, failed, delivery")
        reply = post_json(server.url + f"/alerts/rules/{created['id']}", rule(webhook=hook.url, threshold=0.99),
                          method="PUT")
        assert reply.status == 200, reply.body
        delivered = until(lambda: hook.delivered() if len(hook.delivered()) == 2 else None, "both delivered")
    assert [body["state"] for body in delivered] == ["firing", "resolved"]
    assert delivered[1]["firing_id"] == delivered[0]["id"]


def test_a_rule_that_cannot_be_evaluated_does_not_stop_the_others(alert_db: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule's evaluation raises (a bug), another's figure fails: both get a short note a read key may see,
    and the rule made after them still fires."""
    real = evaluator.threshold_verdict

    def judge(spec: dict, step: str | None, figures: Any, **kwargs: Any) -> Any:
        if spec["threshold"] == 0.5:
            raise RuntimeError("internal detail: a bug")
        if spec["threshold"] == 0.6:
            raise ValueError("internal detail: relation secret_table")
        return real(spec, step, figures, **kwargs)

    monkeypatch.setattr(evaluator, "threshold_verdict", judge)  # the server runs in this process, on a thread
    with serve(alert_db, **FAST) as server:
        send(server.url)
        rules = server.url + "/alerts/rules"
        for name, threshold in (("broken", 0.5), ("bad figure", 0.6), ("works", 0.9)):
            assert post_json(rules, rule(name=name, threshold=threshold)).status == 201
        until(lambda: {r["name"]: r["state"] for r in get_json(rules)}["works"] == "firing", "the third rule firing")
        shown = until(lambda: [r for r in get_json(rules) if r["note"] and r["name"] != "works"] if all(
            r["note"] for r in get_json(rules) if r["name"] != "works") else None, "both failures noted")
    assert {r["name"] for r in shown} == {"broken", "bad figure"}
    for found in shown:
        assert found["state"] == "unknown" and found["note"].startswith("evaluation failed"), found
        assert "internal detail" not in found["note"] and "Error" not in found["note"], found["note"]


def test_a_busy_pipelines_rules_are_read_together_from_a_sample_that_says_so(alert_db: str) -> None:
    """A window holding more runs than an evaluation reads (alert_sample_runs) is read from a uniform
    sample, and every verdict says of how many; a pipeline's threshold rules are judged from one read, in
    one transaction (their evaluated_at is one timestamp)."""
    with Hook() as hook, serve(alert_db, **FAST, alert_sample_runs=100) as server:
        spans = [span for _ in range(150) for span in pipeline_spans(*new_ids())]
        for i in range(0, len(spans), 250):
            assert post_otlp(server.url, export_request(spans[i:i + 250])).status == 200
        rules = server.url + "/alerts/rules"
        for body in (rule(webhook=hook.url, secret=SECRET, enabled=False),
                     rule(name="price share", metric="reason_share", reason="price_too_high", threshold=0.5,
                          enabled=False),
                     rule(name="runs failing", step=None, metric="failure_rate", threshold=0.5, enabled=False)):
            assert post_json(rules, body).status == 201
        db(alert_db, "UPDATE alert_rules SET enabled = true, next_eval_at = now()")
        firing = until(hook.delivered, "the firing delivered")[0]
        assert firing["sample"] == {"runs": 100, "of": 150} and firing["value"] == pytest.approx(0.94)
        def evaluated() -> dict[str, Any] | None:
            found = {r["name"]: r for r in get_json(rules)}
            return found if all(r["evaluated_at"] for r in found.values()) else None

        states = until(evaluated, "all three evaluated")
    assert states["price share"]["state"] == "firing" and states["price share"]["value"] == 1.0
    assert states["runs failing"]["state"] == "ok" and states["runs failing"]["value"] == 0.0
    for found in states.values():
        assert found["note"] == "estimated from 100 of the 150 runs in the last 15m (a uniform sample by run id)"
    assert len({row["evaluated_at"] for row in db(alert_db, "SELECT evaluated_at FROM alert_rules")}) == 1
