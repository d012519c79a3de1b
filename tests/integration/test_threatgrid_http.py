"""The `threatgrid` enricher over a real socket, against the fake service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from tests.integration.http_server import FakeService, Reply, json_file

from fido import EnrichmentError, Observable, Reputation, Verdict
from fido.adapters.enrichers.threatgrid import ThreatGrid

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

pytestmark = pytest.mark.integration

T = TypeVar("T")
KEY = "tg-Key-over-the-wire-42"
MD5 = "a92ddbbaf6c9a50a7125595a4119ca38"
SEARCH = r"/api/v2/search/submissions"


@pytest.fixture(scope="module")
def service() -> Iterator[FakeService]:
    """One server for the module (each takes half a second to shut down)."""
    with FakeService() as running:
        yield running


def make(service: FakeService, **options: Any) -> ThreatGrid:
    # Plain HTTP on 127.0.0.1: verify=False spares loading a CA bundle per pool (0.15 s
    # each); one pool (concurrency 16) for the same reason.
    adapter = ThreatGrid(
        api_key=KEY,
        base_url=service.url("/api/v2/"),
        max_retry_time=5,
        concurrency=16,
        verify=False,
        **options,
    )
    adapter.http.backoff = 0.01
    return adapter


def run(adapter: ThreatGrid, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def test_a_429_waits_for_retry_after_then_succeeds(service: FakeService) -> None:
    service.script(
        "GET",
        SEARCH,
        [
            Reply(429, {"error": {"code": 429}}, headers={"Retry-After": "0.2"}),
            json_file("threatgrid_v2_search_submissions.json"),
        ],
    )
    before = service.count(SEARCH)
    adapter = make(service)
    started = time.monotonic()
    found = run(adapter, lambda: adapter.enrich(Observable.parse(MD5)))
    elapsed = time.monotonic() - started
    assert isinstance(found, Reputation)
    assert (found.verdict, found.score) == (Verdict.SUSPICIOUS, 60)
    assert elapsed >= 0.2
    assert service.count(SEARCH) == before + 2
    assert adapter.stats()["retries"] == 1
    request = service.requests[-1]
    assert request.query["q"] == [MD5]
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_query_auth_over_the_wire_keeps_the_key_out_of_errors_and_logs(
    service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service.route("GET", SEARCH, Reply(403, {"error": {"code": 403, "message": KEY}}))
    adapter = make(service, auth="query")
    with pytest.raises(EnrichmentError, match="HTTP 403") as caught:
        run(adapter, lambda: adapter.enrich(Observable.parse("c" * 32)))
    request = service.requests[-1]
    assert request.query["api_key"] == [KEY]
    assert "authorization" not in request.headers
    assert (caught.value.adapter, caught.value.subject) == ("threatgrid", f"md5:{'c' * 32}")
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text
    assert "api_key=***" in caplog.text


def test_malformed_json_not_found_and_the_cache(service: FakeService) -> None:
    service.route("GET", SEARCH, Reply(200, b'{"api_version": 2, "data": '))
    adapter = make(service)
    with pytest.raises(EnrichmentError, match="not JSON"):
        run(adapter, lambda: adapter.enrich(Observable.parse(MD5)))

    service.route("GET", SEARCH, Reply(404, {"error": {"code": 404}}))
    missing = make(service)
    with pytest.raises(EnrichmentError, match="HTTP 404"):  # a wrong base_url, not "unknown"
        run(missing, lambda: missing.enrich(Observable.parse("b" * 64)))

    service.route("GET", SEARCH, json_file("threatgrid_v2_search_submissions.json"))
    cached = make(service)
    before = service.count(SEARCH)

    async def twice() -> list[Any]:
        subject = Observable.parse(MD5)
        return [await cached.enrich(subject), await cached.enrich(subject)]

    first, second = run(cached, twice)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert service.count(SEARCH) == before + 1


DOMAINS = {  # written for fido, in the shape of the search/ips sample
    "api_version": 2,
    "id": 9288081,
    "data": {
        "index": 0,
        "items_per_page": 1000,
        "current_item_count": 1,
        "items": [{"result": "cisco.com", "details": "/api/v2/domains/cisco.com"}],
    },
}
EMPTY = {"api_version": 2, "id": 1, "data": {"index": 0, "items": []}}


def test_a_domain_and_an_address_with_their_entity_searches(service: FakeService) -> None:
    service.route("GET", SEARCH, json_file("threatgrid_v2_search_submissions.json"))
    service.route("GET", r"/api/v2/search/ips", json_file("threatgrid_v2_search_ips.json"))
    service.route("GET", r"/api/v2/search/domains", Reply(200, DOMAINS))
    adapter = make(service, malicious=60)
    before = len(service.requests)

    async def both() -> list[Any]:
        return [
            await adapter.enrich(Observable.parse("cisco.com")),
            await adapter.enrich(Observable.parse("72.163.4.185")),
        ]

    domain, address = run(adapter, both)
    assert isinstance(domain, Reputation)
    assert isinstance(address, Reputation)
    assert domain.details["ips"] == ["72.163.4.185"]
    assert address.details["domains"] == ["cisco.com"]
    assert (domain.verdict, address.verdict) == (Verdict.SUSPICIOUS, Verdict.SUSPICIOUS)
    sent = {r.path: r for r in service.requests[before:]}
    assert sent["/api/v2/search/ips"].query == {"term": ["domain"], "query": ["cisco.com"]}
    assert sent["/api/v2/search/domains"].query == {"term": ["ip"], "query": ["72.163.4.185"]}
    assert {r.headers["authorization"] for r in service.requests[before:]} == {f"Bearer {KEY}"}
    assert len(service.requests) - before == 4  # two searches for each


def test_a_hash_seen_only_as_an_artifact(service: FakeService) -> None:
    service.route("GET", SEARCH, Reply(200, EMPTY))
    artifacts = r"/api/v2/search/artifacts"
    service.route("GET", artifacts, json_file("threatgrid_v2_search_artifacts.json"))
    adapter = make(service)
    found = run(
        adapter, lambda: adapter.enrich(Observable.parse("f2adb5f1cfa13fbce8dcc8f3087732d9"))
    )
    assert isinstance(found, Reputation)
    assert (found.verdict, found.details["relation"]) == (Verdict.UNKNOWN, "observed")
    assert found.details["artifacts"] == [
        "a2ed6cb1653b0fa64b2f53aedaafa7ea98ff895cbaee1da32bbdba6ad80587aa"
    ]
    request = service.requests[-1]
    assert request.path == artifacts
    assert request.query == {"term": ["md5"], "query": ["f2adb5f1cfa13fbce8dcc8f3087732d9"]}
