"""The `otx` enricher over a real socket, against the fake service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

import pytest
from tests.integration.http_server import FakeService, Reply, json_file

from fido import EnrichmentError, Observable, Reputation, Verdict
from fido.adapters.enrichers.otx import OTX

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

pytestmark = pytest.mark.integration

T = TypeVar("T")
KEY = "otx-Key-over-the-wire-42"
IP = "45.155.205.233"
GENERAL = r"/api/v1/indicators/[^/]+/[^/]+/general"


@pytest.fixture(scope="module")
def service() -> Iterator[FakeService]:
    """One server for the module (each takes half a second to shut down)."""
    with FakeService() as running:
        yield running


def make(service: FakeService, **options: Any) -> OTX:
    # Plain HTTP on 127.0.0.1: verify=False spares loading a CA bundle per pool (0.15 s
    # each); one pool (concurrency 16) for the same reason.
    adapter = OTX(
        api_key=KEY,
        base_url=service.url("/api/v1/"),
        max_retry_time=5,
        concurrency=16,
        verify=False,
        **options,
    )
    adapter.http.backoff = 0.01
    return adapter


def run(adapter: OTX, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def test_a_429_waits_for_retry_after_then_succeeds(service: FakeService) -> None:
    service.script(
        "GET",
        GENERAL,
        [
            Reply(429, {"detail": "Request was throttled."}, headers={"Retry-After": "0.2"}),
            json_file("otx_ipv4_general_pulses.json"),
        ],
    )
    before = service.count(GENERAL)
    adapter = make(service)
    started = time.monotonic()
    found = run(adapter, lambda: adapter.enrich(Observable.parse(IP)))
    elapsed = time.monotonic() - started
    assert isinstance(found, Reputation)
    assert (found.verdict, found.detections, found.label) == (Verdict.MALICIOUS, 3, "Emotet")
    assert elapsed >= 0.2
    assert service.count(GENERAL) == before + 2
    assert adapter.stats()["retries"] == 1
    request = service.requests[-1]
    assert request.path == f"/api/v1/indicators/IPv4/{IP}/general"
    assert request.headers["x-otx-api-key"] == KEY


def test_a_url_arrives_as_one_path_segment(service: FakeService) -> None:
    url = "https://evil.example.net/dl/payload.exe?id=7&x=/y"
    service.route("GET", GENERAL, json_file("otx_file_general_no_pulses.json"))
    adapter = make(service)
    found = run(adapter, lambda: adapter.enrich(Observable.parse(url)))
    assert isinstance(found, Reputation)
    assert found.verdict is Verdict.UNKNOWN
    request = service.requests[-1]
    segment = quote(url, safe="")
    assert request.path == f"/api/v1/indicators/url/{segment}/general"
    assert unquote(request.path.split("/")[5]) == url  # whole, once decoded
    assert found.link == f"https://otx.alienvault.com/indicator/url/{segment}"


def test_errors_never_show_the_key(service: FakeService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service.route("GET", GENERAL, Reply(403, {"detail": f"Invalid API key {KEY}"}))
    adapter = make(service)
    with pytest.raises(EnrichmentError, match="HTTP 403") as caught:
        run(adapter, lambda: adapter.enrich(Observable.parse("45.155.205.234")))
    assert (caught.value.adapter, caught.value.subject) == ("otx", "ipv4:45.155.205.234")
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text


def test_malformed_json_a_bad_indicator_and_the_cache(service: FakeService) -> None:
    service.route("GET", GENERAL, Reply(200, b'{"pulse_info": {"count": 3, "pulses": ['))
    adapter = make(service)
    with pytest.raises(EnrichmentError, match="not JSON"):
        run(adapter, lambda: adapter.enrich(Observable.parse(IP)))

    service.route("GET", GENERAL, json_file("otx_error_400_invalid_indicator.json", 400))
    refused = make(service)
    assert run(refused, lambda: refused.enrich(Observable.parse("bad-name.example"))) is None

    service.route("GET", GENERAL, json_file("otx_domain_general_validated.json"))
    cached = make(service)
    before = service.count(GENERAL)

    async def twice() -> list[Any]:
        subject = Observable.parse("example.com")
        return [await cached.enrich(subject), await cached.enrich(subject)]

    first, second = run(cached, twice)
    assert first.verdict is Verdict.BENIGN
    assert (first.from_cache, second.from_cache) == (False, True)
    assert service.count(GENERAL) == before + 1
