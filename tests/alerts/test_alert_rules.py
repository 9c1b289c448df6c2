"""Alert rules and verdicts, pure: every bad rule names its field; the state machine; the signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket

import pytest
from aiohttp.abc import AbstractResolver

from xray_otel.alerts.delivery import MAX_BACKOFF, PrivateAddress, PublicResolver, backoff, sign
from xray_otel.alerts.judge import Figures, threshold_verdict, transition
from xray_otel.alerts.rules import RuleError, parse_rule, show_duration, show_webhook

GOOD = {"name": "price filter", "pipeline": "competitor_selection", "step": "filter_by_price",
        "metric": "drop_rate", "comparison": "above", "threshold": 0.9, "window": "15m"}


def test_a_good_rule_parses_with_defaults() -> None:
    rule = parse_rule(GOOD)
    assert rule.kind == "threshold" and rule.keeps_secret and rule.enabled
    assert rule.spec == {"metric": "drop_rate", "reason": None, "comparison": "above", "threshold": 0.9,
                         "window": 900, "min_samples": 1}
    change = parse_rule({"name": "any", "kind": "change", "pipeline": "p"})
    assert change.spec == {"window": 86400, "baseline": 7 * 86400} and change.step is None


@pytest.mark.parametrize("change, field", [
    ({"name": None}, "name"), ({"name": ""}, "name"), ({"pipeline": 3}, "pipeline"), ({"metric": "speed"}, "metric"),
    ({"threshold": "high"}, "threshold"), ({"threshold": True}, "threshold"), ({"threshold": float("nan")}, "threshold"),
    ({"window": "5 parsecs"}, "window"), ({"window": "1s"}, "window"), ({"window": "100d"}, "window"),
    ({"comparison": "over"}, "comparison"), ({"step": None}, "step"), ({"webhook": "ftp://x/y"}, "webhook"),
    ({"webhook": "not a url"}, "webhook"), ({"secret": "short"}, "secret"), ({"enabled": "yes"}, "enabled"),
    ({"min_samples": 0}, "min_samples"), ({"colour": "red"}, "colour"), ({"kind": "vibes"}, "kind"),
    ({"metric": "reason_share"}, "reason"), ({"reason": "x"}, "reason"), ({"baseline": "7d"}, "baseline"),
])
def test_a_bad_rule_names_its_field(change: dict, field: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule({**GOOD, **change})
    assert caught.value.field == field and str(caught.value).startswith(field + ": ")


def test_a_change_rule_refuses_threshold_fields() -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule({"name": "c", "kind": "change", "pipeline": "p", "threshold": 1})
    assert caught.value.field == "threshold"
    with pytest.raises(RuleError):
        parse_rule([GOOD])


def test_durations_show_short() -> None:
    assert [show_duration(s) for s in (900, 86400, 90, 7200)] == ["15m", "1d", "90s", "2h"]


@pytest.mark.parametrize("state, holds, expected", [
    ("unknown", True, ("firing", "firing")), ("ok", True, ("firing", "firing")), ("firing", True, ("firing", None)),
    ("firing", False, ("ok", "resolved")), ("ok", False, ("ok", None)), ("unknown", False, ("ok", None)),
    ("firing", None, ("firing", None)), ("ok", None, ("unknown", None)),
])
def test_states(state: str, holds: bool | None, expected: tuple) -> None:
    assert transition(state, holds) == expected


def _figures(**given: float) -> dict:
    return {"n": 10, "failed": 0, "finished": 10, "drop_rate": None, "cost": None, "duration_p95": None,
            "reason_n": 0, "rejected_n": 0, **given}


def test_threshold_verdicts() -> None:
    spec = parse_rule(GOOD).spec
    assert threshold_verdict(spec, "f", _figures(drop_rate=0.95)).holds is True
    assert threshold_verdict(spec, "f", _figures(drop_rate=0.9)).holds is False  # above means strictly above
    undecided = threshold_verdict(spec, "f", _figures(n=0))
    assert undecided.holds is None and undecided.value is None and "fewer than min_samples" in undecided.note
    no_counts = threshold_verdict(spec, "f", _figures())
    assert no_counts.holds is None and "candidate counts" in no_counts.note
    share = parse_rule({**GOOD, "metric": "reason_share", "reason": "price_too_high", "comparison": "below",
                        "threshold": 0.5}).spec
    verdict = threshold_verdict(share, "f", _figures(reason_n=30, rejected_n=100))
    assert verdict.value == pytest.approx(0.3) and verdict.holds is True


def test_window_figures_per_rule_and_the_sample_they_came_from() -> None:
    whole = {"step": None, "n": 5, "failed": 1, "finished": 5, "drop_rate": None, "cost": 0.5, "duration_p95": 9.0,
             "rejected_n": 0.0, "reason_n": "{}", "population": 5, "sampled": 5}
    step = {**whole, "step": "f", "drop_rate": 0.5, "rejected_n": 10.0, "reason_n": '{"price": 4.0}'}
    exact = Figures([whole, step])
    assert exact.sample is None and exact.of("f", "price")["reason_n"] == 4.0 and exact.of("f", None)["reason_n"] == 0
    assert exact.of("gone", None)["n"] == 0 and exact.of(None, None)["failed"] == 1
    spec = parse_rule(GOOD).spec
    assert threshold_verdict(spec, "f", exact.of("f", None), sample=exact.sample).note is None
    sampled = Figures([{**whole, "population": 9000, "sampled": 2000}, {**step, "population": 9000, "sampled": 2000}])
    verdict = threshold_verdict(spec, "f", sampled.of("f", None), sample=sampled.sample)
    assert sampled.sample == (2000, 9000) and verdict.value == 0.5 and verdict.holds is False
    assert verdict.note == "estimated from 2,000 of the 9,000 runs in the last 15m (a uniform sample by run id)"
    assert verdict.detail == {"sample": {"runs": 2000, "of": 9000}}
    # min_samples is held against the window, scaled up from the sample: 10 rows in 100 of 1,000 runs
    spec = parse_rule({**GOOD, "min_samples": 50}).spec
    assert threshold_verdict(spec, "f", _figures(n=10, drop_rate=0.95), sample=(100, 1000)).holds is True
    few = threshold_verdict(spec, "f", _figures(n=3, drop_rate=0.95), sample=(100, 1000))
    assert few.holds is None and few.note == ("about 30 step 'f' in the last 15m (from a uniform sample of 100 of "
                                              "the 1,000 runs), fewer than min_samples 50: nothing to decide on")


def test_signature_is_the_hmac_a_receiver_computes() -> None:
    body = b'{"id": "x"}'
    expected = hmac.new(b"s3cret-key", body, hashlib.sha256).hexdigest()
    assert sign("s3cret-key", body) == "sha256=" + expected


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n, 5) for n in (1, 2, 3)] == [5, 10, 20]
    assert backoff(40, 5) == backoff(1000, 5) == MAX_BACKOFF


@pytest.mark.parametrize("url, shown", [
    ("https://hooks.slack.com/services/T00/B00/XXXXSECRET", "https://hooks.slack.com/…"),
    ("https://hooks.example.com:8443/x?token=abc", "https://hooks.example.com:8443/…"),
    ("http://[2001:db8::1]:9000/hook", "http://[2001:db8::1]:9000/…"), (None, None),
])
def test_a_webhook_shows_only_where_it_goes(url: str | None, shown: str | None) -> None:
    assert show_webhook(url) == shown


@pytest.mark.parametrize("url, words", [
    ("https://user:pass@hooks.example.com/x", "secret"), ("https://token@hooks.example.com/x", "secret"),
    ("http://127.0.0.1:9/hook", "loopback"), ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]/x", "loopback"), ("http://10.1.2.3/x", "private"), ("http://0.0.0.0/x", "unspecified"),
    ("http://[::ffff:127.0.0.1]/x", "XRAY_ALERT_ALLOW_PRIVATE_WEBHOOKS"), ("http://h:99999/x", "http"),
])
def test_a_webhook_with_credentials_or_inside_the_network_is_refused(url: str, words: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule({**GOOD, "webhook": url})
    assert caught.value.field == "webhook" and words in str(caught.value)


def test_private_webhooks_are_allowed_when_the_operator_opts_in() -> None:
    assert parse_rule({**GOOD, "webhook": "http://127.0.0.1:9/h"}, private_webhooks=True).webhook \
        == "http://127.0.0.1:9/h"
    assert parse_rule({**GOOD, "webhook": "http://localhost:9/h"}).webhook == "http://localhost:9/h"  # at connect
    with pytest.raises(RuleError, match="user or password"):
        parse_rule({**GOOD, "webhook": "http://u:p@127.0.0.1:9/h"}, private_webhooks=True)


class _Answers(AbstractResolver):
    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        return [{"hostname": host, "host": h, "port": port, "family": family, "proto": 0, "flags": 0}
                for h in self.hosts]

    async def close(self) -> None:
        pass


def test_the_delivery_resolver_keeps_only_public_addresses() -> None:
    async def resolved(*hosts: str) -> list[str]:
        resolver = PublicResolver()
        resolver._inner = _Answers(*hosts)
        return [r["host"] for r in await resolver.resolve("hook.example", 443)]

    assert asyncio.run(resolved("127.0.0.1", "93.184.215.14")) == ["93.184.215.14"]
    with pytest.raises(PrivateAddress, match=r"only to non-public addresses \(a link-local address, a loopback"):
        asyncio.run(resolved("169.254.169.254", "::1"))
