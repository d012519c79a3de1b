"""`abuseipdb`, `greynoise` and `misp` over a real socket, against the fake service."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from tests.integration.http_server import FakeService, Reply, Request, json_file

from fido import EnrichmentError, Observable, Reputation, Verdict
from fido.adapters.enrichers.abuseipdb import AbuseIPDB
from fido.adapters.enrichers.greynoise import GreyNoise
from fido.adapters.enrichers.misp import MISP

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

    from fido.adapters._http import HttpEnricher

pytestmark = pytest.mark.integration

T = TypeVar("T")
KEY = "intel-Key-over-the-wire-7"
CHECK = r"/api/v2/check"
COMMUNITY = r"/v3/community/[^/]+"
SEARCH = r"/misp/attributes/restSearch"


@pytest.fixture(scope="module")
def service() -> Iterator[FakeService]:
    """One server for the module (each takes half a second to shut down)."""
    with FakeService() as running:
        yield running


def tuned(adapter: HttpEnricher) -> HttpEnricher:
    adapter.http.backoff = 0.01
    return adapter


def options(service: FakeService, path: str) -> dict[str, Any]:
    # Plain HTTP on 127.0.0.1: verify=False spares loading a CA bundle per pool; one pool
    # (concurrency 16) for the same reason.
    return {
        "base_url": service.url(path),
        "max_retry_time": 5,
        "concurrency": 16,
        "verify": False,
    }


def run(adapter: HttpEnricher, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def throttled(service: FakeService, method: str, pattern: str, then: Reply, body: Any) -> int:
    """Answer 429 (Retry-After 0.2 s) once, then `then`; the requests so far."""
    limited = Reply(429, body, headers={"Retry-After": "0.2", "X-RateLimit-Remaining": "0"})
    service.script(method, pattern, [limited, then])
    return service.count(pattern)


def test_abuseipdb_waits_for_retry_after_then_succeeds(service: FakeService) -> None:
    limit = json.loads(json_file("abuseipdb_error_429_daily_limit.json").body)
    before = throttled(service, "GET", CHECK, json_file("abuseipdb_check_reported.json"), limit)
    adapter = tuned(AbuseIPDB(api_key=KEY, **options(service, "/api/v2/")))
    started = time.monotonic()
    found = run(adapter, lambda: adapter.enrich(Observable.parse("194.87.151.36")))
    assert time.monotonic() - started >= 0.2
    assert isinstance(found, Reputation)
    assert (found.verdict, found.score, found.detections) == (Verdict.MALICIOUS, 100, 1843)
    assert service.count(CHECK) == before + 2
    assert adapter.stats()["retries"] == 1
    request = service.requests[-1]
    assert request.query == {"ipAddress": ["194.87.151.36"], "maxAgeInDays": ["90"]}
    assert request.headers["key"] == KEY
    assert request.headers["accept"] == "application/json"


def test_abuseipdb_the_daily_limit_skips_the_key_until_its_reset(service: FakeService) -> None:
    reset = int(time.time()) + 43200
    headers = {
        "Retry-After": "43200",
        "X-RateLimit-Limit": "1000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
    }
    limit = json_file("abuseipdb_error_429_daily_limit.json")
    service.route("GET", CHECK, Reply(429, limit.body, headers=headers))
    before = service.count(CHECK)
    adapter = tuned(AbuseIPDB(api_key=f"{KEY}-daily", **options(service, "/api/v2/")))

    async def body() -> list[EnrichmentError]:
        errors = []
        for text in ("194.87.151.40", "194.87.151.41"):
            with pytest.raises(EnrichmentError) as caught:
                await adapter.enrich(Observable.parse(text))
            errors.append(caught.value)
        return errors

    errors = run(adapter, body)
    assert all(e.skipped for e in errors)
    assert all(e.message.startswith("skipped: quota exhausted until ") for e in errors)
    until = datetime.fromisoformat(errors[1].message.rpartition(" ")[2])
    assert abs(until.timestamp() - reset) <= 2
    assert service.count(CHECK) == before + 1  # the second one sent nothing
    assert KEY not in str(errors)


def test_abuseipdb_a_refused_address_is_asked_once(service: FakeService) -> None:
    service.route("GET", CHECK, json_file("abuseipdb_error_422_invalid_address.json", 422))
    before = service.count(CHECK)
    adapter = tuned(AbuseIPDB(api_key=KEY, **options(service, "/api/v2/")))
    with pytest.raises(EnrichmentError, match="HTTP 422") as caught:
        run(adapter, lambda: adapter.enrich(Observable.parse("194.87.151.37")))
    assert caught.value.subject == "ipv4:194.87.151.37"
    assert KEY not in str(caught.value)
    assert service.count(CHECK) == before + 1


def test_greynoise_waits_for_retry_after_then_succeeds(service: FakeService) -> None:
    limit = json.loads(json_file("greynoise_community_rate_limited.json").body)
    then = json_file("greynoise_community_noise_malicious.json")
    before = throttled(service, "GET", COMMUNITY, then, limit)
    adapter = tuned(GreyNoise(api_key=KEY, **options(service, "/v3/")))
    started = time.monotonic()
    found = run(adapter, lambda: adapter.enrich(Observable.parse("45.148.10.81")))
    assert time.monotonic() - started >= 0.2
    assert isinstance(found, Reputation)
    assert (found.verdict, found.tags) == (Verdict.MALICIOUS, ("noise",))
    assert service.count(COMMUNITY) == before + 2
    assert adapter.stats()["retries"] == 1
    request = service.requests[-1]
    assert request.path == "/v3/community/45.148.10.81"
    assert request.headers["key"] == KEY


def test_greynoise_without_a_key_and_not_observed(service: FakeService) -> None:
    service.route("GET", COMMUNITY, json_file("greynoise_community_not_observed.json", 404))
    adapter = tuned(GreyNoise(**options(service, "/v3/")))
    assert run(adapter, lambda: adapter.enrich(Observable.parse("80.64.19.7"))) is None
    request = service.requests[-1]
    assert request.path == "/v3/community/80.64.19.7"
    assert "key" not in request.headers


def test_misp_waits_for_retry_after_then_succeeds(service: FakeService) -> None:
    limit = {"name": "Too many requests.", "message": "Too many requests."}
    before = throttled(service, "POST", SEARCH, json_file("misp_attributes_ip_c2.json"), limit)
    adapter = tuned(MISP(api_key=KEY, **options(service, "/misp/")))
    started = time.monotonic()
    found = run(adapter, lambda: adapter.enrich(Observable.parse("91.241.19.84")))
    assert time.monotonic() - started >= 0.2
    assert isinstance(found, Reputation)
    assert (found.verdict, found.detections, found.total) == (Verdict.MALICIOUS, 1, 2)
    assert found.link == service.url("/misp/events/view/812")
    assert service.count(SEARCH) == before + 2
    assert adapter.stats()["retries"] == 1
    request = service.requests[-1]
    assert request.method == "POST"
    assert request.headers["authorization"] == KEY
    assert request.headers["content-type"] == "application/json"
    sent = json.loads(request.body)
    assert (sent["value"], sent["returnFormat"], sent["includeContext"]) == (
        ["91.241.19.84"],
        "json",
        True,
    )


def test_misp_malformed_json_then_the_cache(service: FakeService) -> None:
    service.route("POST", SEARCH, Reply(200, b'{"response": {"Attribute": [{"id": '))
    broken = tuned(MISP(api_key=KEY, **options(service, "/misp/")))
    with pytest.raises(EnrichmentError, match="not JSON"):
        run(broken, lambda: broken.enrich(Observable.parse("91.241.19.84")))

    service.route("POST", SEARCH, json_file("misp_attributes_domain_low.json"))
    adapter = tuned(MISP(api_key=KEY, **options(service, "/misp/")))
    before = service.count(SEARCH)

    async def twice() -> list[Any]:
        subject = Observable.parse("mail-login-check.example")
        return [await adapter.enrich(subject), await adapter.enrich(subject)]

    first, second = run(adapter, twice)
    assert first.verdict is Verdict.SUSPICIOUS
    assert (first.from_cache, second.from_cache) == (False, True)
    assert service.count(SEARCH) == before + 1


def test_misp_finds_a_url_stored_as_written(service: FakeService) -> None:
    stored = {
        "id": "1",
        "event_id": "7",
        "type": "url",
        "to_ids": True,
        "value": "http://evil.example",
        "Event": {"id": "7", "threat_level_id": "1", "info": "C2"},
    }

    def exact(request: Request) -> Reply:  # restSearch: any of the values, matched exactly
        values = json.loads(request.body)["value"]
        hit = [stored] if stored["value"] in values else []
        return Reply(200, {"response": {"Attribute": hit}})

    service.route("POST", SEARCH, exact)
    adapter = tuned(MISP(api_key=KEY, **options(service, "/misp/")))
    found = run(adapter, lambda: adapter.enrich(Observable.parse("http://evil.example")))
    assert isinstance(found, Reputation)
    assert (found.verdict, found.label) == (Verdict.MALICIOUS, "C2")
    sent = json.loads(service.requests[-1].body)
    assert sent["value"] == ["http://evil.example/", "http://evil.example"]
