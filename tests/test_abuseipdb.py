"""The `abuseipdb` enricher over `httpx.MockTransport`, with check answers written for fido."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx
import pytest

import fido
from fido import ConfigurationError, EnrichmentError, Host, Observable, User
from fido._findings import Reliability, Reputation, Verdict
from fido.adapters.enrichers.abuseipdb import AbuseIPDB
from fido.testing import check_enricher

T = TypeVar("T")
KEY = "abuseipdb-Key-0123456789abcdef"
DATA = Path(__file__).parent / "data" / "intel"
IP = "194.87.151.36"
WEB = "https://www.abuseipdb.com/check"
Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def reply(body: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def make(handler: Handler, **options: Any) -> AbuseIPDB:
    options.setdefault("api_key", KEY)
    adapter = AbuseIPDB(transport=httpx.MockTransport(handler), **options)
    adapter.http.backoff = 0.01
    return adapter


def run(adapter: AbuseIPDB, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` in a fresh loop, then close the adapter in that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def lookup(adapter: AbuseIPDB, text: str) -> Any:
    return run(adapter, lambda: adapter.enrich(Observable.parse(text)))


def recorded(name: str, status: int = 200) -> tuple[Handler, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, json=payload(name))

    return handler, requests


# -- the payloads, resolved -----------------------------------------------------------------


def test_a_much_reported_address_is_malicious() -> None:
    handler, requests = recorded("abuseipdb_check_reported.json")
    found = lookup(make(handler), IP)
    assert found == Reputation(
        source="abuseipdb",
        subject=Observable.parse(IP),
        verdict=Verdict.MALICIOUS,
        reliability=Reliability.C,
        detections=1843,
        score=100,
        tags=("Data Center/Web Hosting/Transit",),
        link=f"{WEB}/{IP}",
        details={
            "total_reports": 1843,
            "distinct_users": 412,
            "max_age_days": 90,
            "country": "NL",
            "usage_type": "Data Center/Web Hosting/Transit",
            "isp": "Nordvale Hosting Ltd",
            "domain": "nordvale-hosting.example",
            "last_reported": "2024-06-03T21:14:07+00:00",
            "hostnames": ["vps-36.nordvale-hosting.example"],
            "is_tor": False,
            "is_whitelisted": False,
        },
        fetched_at=found.fetched_at,
    )
    [request] = requests
    assert request.method == "GET"
    assert request.url.path == "/api/v2/check"
    assert dict(request.url.params) == {"ipAddress": IP, "maxAgeInDays": "90"}
    assert request.headers["key"] == KEY
    assert request.headers["accept"] == "application/json"


def test_a_tor_exit_with_a_middling_score_is_suspicious() -> None:
    found = lookup(make(reply(payload("abuseipdb_check_tor_exit.json"))), "185.220.101.33")
    assert (found.verdict, found.score, found.detections, found.total) == (
        Verdict.SUSPICIOUS,
        42,
        57,
        None,
    )
    assert found.tags == ("tor", "Reserved")
    assert found.details["is_tor"] is True
    assert found.link == f"{WEB}/185.220.101.33"


def test_a_whitelisted_address_is_benign_and_ipv6_works() -> None:
    handler, requests = recorded("abuseipdb_check_whitelisted.json")
    found = lookup(make(handler), "2001:4860:4860::8844")
    assert (found.verdict, found.score, found.detections) == (Verdict.BENIGN, 0, 6)
    assert found.tags == ("Content Delivery Network", "whitelisted")
    assert found.details["hostnames"] == ["dns.google"]
    assert requests[0].url.params["ipAddress"] == "2001:4860:4860::8844"


def test_whitelisting_wins_over_a_high_score() -> None:
    body = payload("abuseipdb_check_reported.json")
    body["data"]["isWhitelisted"] = True
    assert lookup(make(reply(body)), IP).verdict is Verdict.BENIGN


def test_a_never_reported_address_is_unknown_but_checked() -> None:
    found = lookup(make(reply(payload("abuseipdb_check_never_reported.json"))), "80.64.19.7")
    assert (found.verdict, found.score, found.detections) == (Verdict.UNKNOWN, 0, 0)
    assert found.tags == ("Fixed Line ISP",)
    assert "last_reported" not in found.details
    assert "is_whitelisted" not in found.details  # null in the answer


@pytest.mark.parametrize(
    ("options", "verdict"),
    [
        ({}, Verdict.SUSPICIOUS),
        ({"malicious": 40}, Verdict.MALICIOUS),
        ({"suspicious": 50, "malicious": 80}, Verdict.BENIGN),  # reported, so not UNKNOWN
    ],
)
def test_thresholds_are_options(options: dict[str, int], verdict: Verdict) -> None:
    body = payload("abuseipdb_check_tor_exit.json")
    assert lookup(make(reply(body), **options), "185.220.101.33").verdict is verdict


def test_max_age_days_is_sent() -> None:
    handler, requests = recorded("abuseipdb_check_reported.json")
    found = lookup(make(handler, max_age_days=30), IP)
    assert requests[0].url.params["maxAgeInDays"] == "30"
    assert found.details["max_age_days"] == 30


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_never_shows(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = payload("abuseipdb_error_401_authentication.json")
    body["errors"][0]["detail"] += f" (key {KEY})"
    body["errors"][0]["status"] = status
    with pytest.raises(EnrichmentError, match=f"HTTP {status}") as caught:
        lookup(make(reply(body, status)), IP)
    error = caught.value
    assert (error.adapter, error.subject) == ("abuseipdb", f"ipv4:{IP}")
    assert "abuseipdb" in str(error)
    assert IP in str(error)
    assert "Authentication failed" in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    assert KEY not in caplog.text


def test_a_refused_address_is_an_error_and_not_retried() -> None:
    handler, requests = recorded("abuseipdb_error_422_invalid_address.json", 422)
    adapter = make(handler)
    with pytest.raises(EnrichmentError, match=r"HTTP 422 .*valid IPv4 or IPv6") as caught:
        lookup(adapter, IP)
    assert caught.value.subject == f"ipv4:{IP}"
    assert len(requests) == 1
    assert adapter.stats()["retries"] == 0
    assert adapter.breaker.state == "closed"


@pytest.mark.parametrize(
    "body",
    [b"<html>404 Not Found</html>", b'{"errors": [{"detail": "Not Found", "status": 404}]}'],
)
def test_a_404_is_always_an_error(body: bytes) -> None:
    """AbuseIPDB knows every address: a 404 is a wrong base_url, never "not found"."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, content=body)

    adapter = make(handler, base_url="https://api.abuseipdb.com/", max_attempts=1)
    with pytest.raises(EnrichmentError, match="HTTP 404") as caught:
        lookup(adapter, IP)
    assert "is base_url right?" in caught.value.message
    with pytest.raises(EnrichmentError, match="HTTP 404"):
        run(adapter, adapter.acheck)  # `fido check` fails
    assert len(calls) == 2  # nothing cached
    assert adapter.stats()["failures"] == 2


def daily_limit(**headers: str) -> Handler:
    body = payload("abuseipdb_error_429_daily_limit.json")
    return lambda request: httpx.Response(429, json=body, headers=headers)


def test_the_daily_limit_used_up_skips_the_key_until_its_reset() -> None:
    reset = int(time.time()) + 43200
    calls: list[httpx.Request] = []
    limit = daily_limit(
        **{"Retry-After": "43200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    )

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return limit(request)

    adapter = make(handler, api_key=f"{KEY}-daily")

    async def three() -> list[EnrichmentError]:
        errors = []
        for text in (IP, "1.1.1.1", "9.9.9.9"):
            with pytest.raises(EnrichmentError) as caught:
                await adapter.enrich(Observable.parse(text))
            errors.append(caught.value)
        return errors

    errors = run(adapter, three)
    for error in errors:
        assert error.skipped is True
        assert error.message.startswith("skipped: quota exhausted until ")
    until = datetime.fromisoformat(errors[0].message.rpartition(" ")[2])
    assert abs(until.timestamp() - reset) <= 2
    assert len(calls) == 1  # the others were skipped without a request
    assert adapter.breaker.state == "closed"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "120"}, 120.0),
        ({"X-RateLimit-Remaining": "0", "Retry-After": "600"}, 600.0),
        ({"X-RateLimit-Remaining": "0"}, None),
        ({"X-RateLimit-Remaining": "17", "Retry-After": "5"}, None),  # not the daily limit
        ({"Retry-After": "5"}, None),
    ],
)
def test_quota_reset(headers: dict[str, str], expected: float | None) -> None:
    adapter = make(reply({}))
    response = httpx.Response(429, json=payload("abuseipdb_error_429_daily_limit.json"))
    response.headers.update(headers)
    assert adapter.quota_reset(response) == expected


def test_malformed_json_is_an_enrichment_error() -> None:
    adapter = make(lambda request: httpx.Response(200, content=b'{"data": {"ipAddress": '))
    with pytest.raises(EnrichmentError, match="not JSON") as caught:
        lookup(adapter, IP)
    assert (caught.value.adapter, caught.value.subject) == ("abuseipdb", f"ipv4:{IP}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "no data"),
        ({"data": {"ipAddress": IP}}, "no abuseConfidenceScore"),
        ({"data": {"abuseConfidenceScore": "high"}}, "no abuseConfidenceScore"),
    ],
)
def test_an_answer_that_is_not_a_check_is_an_error(body: Any, message: str) -> None:
    with pytest.raises(EnrichmentError, match=message):
        lookup(make(reply(body)), IP)


def test_a_score_above_100_is_capped() -> None:
    body = payload("abuseipdb_check_reported.json")
    body["data"]["abuseConfidenceScore"] = 180
    assert lookup(make(reply(body)), IP).score == 100


def test_a_second_lookup_comes_from_the_cache() -> None:
    handler, requests = recorded("abuseipdb_check_reported.json")
    adapter = make(handler)

    async def twice() -> tuple[Any, Any]:
        subject = Observable.parse(IP)
        return await adapter.enrich(subject), await adapter.enrich(subject)

    first, second = run(adapter, twice)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert attrs.evolve(second, from_cache=False) == first
    assert len(requests) == 1
    assert adapter.stats()["cache_hits"] == 1


# -- what it accepts, how it is built -------------------------------------------------------


def test_accepts() -> None:
    adapter = make(reply({}))
    for text in (IP, "2001:4860:4860::8844"):
        assert adapter.accepts(Observable.parse(text)), text
    for text in ("10.1.2.3", "192.168.0.1", "::1", "fe80::1", "example.com", "0" * 64):
        assert not adapter.accepts(Observable.parse(text)), text
    assert not adapter.accepts(Host(name="ws-042"))
    assert not adapter.accepts(User(name="bdoe"))


def test_the_free_plan_is_the_default_rate() -> None:
    adapter = make(reply({}))
    assert adapter.bucket.limit.limits == ((1000.0, 86400.0),)
    assert adapter.reliability is Reliability.C


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"suspicious": 0}, "1 <= suspicious <= malicious <= 100"),
        ({"suspicious": 80, "malicious": 75}, "1 <= suspicious <= malicious"),
        ({"malicious": 101}, "<= 100"),
        ({"max_age_days": 0}, "max_age_days is between 1 and 365"),
        ({"max_age_days": 366}, "max_age_days"),
        ({"max_age_days": "90"}, "max_age_days"),
        ({"api_key": ""}, "an API key is needed"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AbuseIPDB(**{"api_key": KEY, **options})


def test_conformance() -> None:
    adapter = make(reply(payload("abuseipdb_check_reported.json")))
    check_enricher(adapter, secrets=[KEY])
    assert KEY not in repr(adapter)
    asyncio.run(adapter.aclose())


def test_conformance_when_the_key_is_refused() -> None:
    adapter = make(reply(payload("abuseipdb_error_401_authentication.json"), 401))
    check_enricher(adapter, secrets=[KEY])
    asyncio.run(adapter.aclose())


def test_built_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"{KEY}-configured"  # a key of its own: a bucket is shared by every user of a key
    monkeypatch.setenv("FIDO_TEST_ABUSEIPDB_KEY", key)
    path = tmp_path / "fido.toml"
    path.write_text(
        """
[[enrichers]]
type = "abuseipdb"
api_key_env = "FIDO_TEST_ABUSEIPDB_KEY"
malicious = 90
suspicious = 40
max_age_days = 30
rate = "10000/day"
""",
        encoding="utf-8",
    )
    with fido.load_config(path).build() as pipeline:
        [enricher] = pipeline.enrichers
        assert isinstance(enricher, AbuseIPDB)
        assert enricher.name == "abuseipdb"
        assert (enricher.malicious, enricher.suspicious, enricher.max_age_days) == (90, 40, 30)
        assert enricher.bucket.limit.limits == ((10000.0, 86400.0),)
        assert enricher.http.base_url == "https://api.abuseipdb.com/api/v2/"
        assert enricher.http.headers["key"] == key
        assert key not in repr(enricher)


def test_a_missing_key_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIDO_TEST_ABUSEIPDB_KEY", raising=False)
    path = tmp_path / "fido.toml"
    path.write_text('[[enrichers]]\ntype = "abuseipdb"\napi_key_env = "FIDO_TEST_ABUSEIPDB_KEY"\n')
    with pytest.raises(ConfigurationError, match="FIDO_TEST_ABUSEIPDB_KEY is not set"):
        fido.load_config(path)
