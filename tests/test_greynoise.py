"""The `greynoise` enricher over `httpx.MockTransport`, with Community API answers written for fido."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx
import pytest

import fido
from fido import ConfigurationError, EnrichmentError, Host, Observable, User
from fido._findings import Reliability, Reputation, Verdict
from fido.adapters.enrichers.greynoise import GreyNoise
from fido.testing import check_enricher

T = TypeVar("T")
KEY = "greynoise-Key-a1b2c3d4e5f6a7b8"
DATA = Path(__file__).parent / "data" / "intel"
IP = "45.148.10.81"
Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def reply(body: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def make(handler: Handler, **options: Any) -> GreyNoise:
    options.setdefault("api_key", KEY)
    adapter = GreyNoise(transport=httpx.MockTransport(handler), **options)
    adapter.http.backoff = 0.01
    return adapter


def run(adapter: GreyNoise, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` in a fresh loop, then close the adapter in that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def lookup(adapter: GreyNoise, text: str) -> Any:
    return run(adapter, lambda: adapter.enrich(Observable.parse(text)))


def recorded(name: str, status: int = 200) -> tuple[Handler, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, json=payload(name))

    return handler, requests


# -- the payloads, resolved -----------------------------------------------------------------


def test_a_malicious_scanner_is_malicious() -> None:
    handler, requests = recorded("greynoise_community_noise_malicious.json")
    found = lookup(make(handler), IP)
    assert found == Reputation(
        source="greynoise",
        subject=Observable.parse(IP),
        verdict=Verdict.MALICIOUS,
        reliability=Reliability.B,
        label=None,  # GreyNoise names the actor "unknown"
        tags=("noise",),
        link=f"https://viz.greynoise.io/ip/{IP}",
        details={
            "noise": True,
            "riot": False,
            "classification": "malicious",
            "last_seen": "2024-06-02",
            "message": "Success",
        },
        fetched_at=found.fetched_at,
    )
    [request] = requests
    assert request.method == "GET"
    assert request.url.path == f"/v3/community/{IP}"
    assert request.headers["key"] == KEY


def test_a_known_service_is_benign_and_named() -> None:
    found = lookup(make(reply(payload("greynoise_community_riot_resolver.json"))), "9.9.9.9")
    assert (found.verdict, found.label, found.tags) == (
        Verdict.BENIGN,
        "Quad9 Public DNS",
        ("riot",),
    )
    assert found.link == "https://viz.greynoise.io/riot/9.9.9.9"
    assert found.details["riot"] is True


def test_an_unclassified_scanner_is_suspicious() -> None:
    body = payload("greynoise_community_noise_unclassified.json")
    found = lookup(make(reply(body)), "162.142.125.12")
    assert (found.verdict, found.label, found.tags) == (Verdict.SUSPICIOUS, None, ("noise",))
    assert found.details["classification"] == "unknown"


@pytest.mark.parametrize("noise", ["unknown", "benign", "suspicious"])
def test_the_verdict_on_noise_is_an_option(noise: str) -> None:
    body = payload("greynoise_community_noise_unclassified.json")
    assert lookup(make(reply(body), noise=noise), "162.142.125.12").verdict is Verdict(noise)


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        ({"classification": "benign", "name": "Shodan.io"}, Verdict.BENIGN),  # a known scanner
        ({"classification": "suspicious"}, Verdict.SUSPICIOUS),
        ({"riot": True}, Verdict.MALICIOUS),  # malicious wins over a known service
        ({"classification": "unknown", "riot": True}, Verdict.BENIGN),
        ({"noise": False, "classification": None}, Verdict.UNKNOWN),
    ],
)
def test_the_verdict_rules(change: dict[str, Any], verdict: Verdict) -> None:
    body = {**payload("greynoise_community_noise_malicious.json"), **change}
    assert lookup(make(reply(body)), IP).verdict is verdict


def test_a_link_that_is_not_https_is_replaced() -> None:
    body = {**payload("greynoise_community_noise_malicious.json"), "link": "javascript:alert(1)"}
    assert lookup(make(reply(body)), IP).link == f"https://viz.greynoise.io/ip/{IP}"


def test_without_a_key_no_key_header_is_sent() -> None:
    handler, requests = recorded("greynoise_community_noise_malicious.json")
    found = lookup(make(handler, api_key=None), IP)
    assert found.verdict is Verdict.MALICIOUS
    assert "key" not in requests[0].headers


# -- not found, errors ----------------------------------------------------------------------


def test_an_address_never_observed_is_none_and_cached() -> None:
    handler, requests = recorded("greynoise_community_not_observed.json", 404)
    adapter = make(handler)

    async def twice() -> list[Any]:
        return [await adapter.enrich(Observable.parse("80.64.19.7")) for _ in range(2)]

    assert run(adapter, twice) == [None, None]
    assert len(requests) == 1
    assert adapter.stats()["cache_hits"] == 1


@pytest.mark.parametrize(
    "content",
    [
        b"<html>404 page not found</html>",
        b'{"message": "Request is not a valid routable IPv4 address"}',  # no ip: not that answer
        b'{"error": "no route"}',
    ],
)
def test_a_404_that_is_not_greynoises_answer_about_the_address_is_an_error(
    content: bytes,
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, content=content)

    adapter = make(handler, base_url="https://api.greynoise.io/v2/", max_attempts=1)
    for _ in range(2):
        with pytest.raises(EnrichmentError, match="HTTP 404"):
            lookup(adapter, IP)
    assert len(calls) == 2  # not cached as "never observed"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_never_shows(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"message": f"invalid API key {KEY}"}
    with pytest.raises(EnrichmentError, match=f"HTTP {status}") as caught:
        lookup(make(reply(body, status)), IP)
    error = caught.value
    assert (error.adapter, error.subject) == ("greynoise", f"ipv4:{IP}")
    assert "greynoise" in str(error)
    assert IP in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    assert KEY not in caplog.text


def test_a_refused_address_is_an_error_and_not_retried() -> None:
    handler, requests = recorded("greynoise_community_invalid_address.json", 400)
    adapter = make(handler)
    with pytest.raises(EnrichmentError, match=r"HTTP 400 .*not a valid routable"):
        lookup(adapter, IP)
    assert len(requests) == 1
    assert adapter.stats()["retries"] == 0


def test_malformed_json_is_an_enrichment_error() -> None:
    adapter = make(lambda request: httpx.Response(200, content=b'{"ip": "45.148.10.81", "noi'))
    with pytest.raises(EnrichmentError, match="not JSON") as caught:
        lookup(adapter, IP)
    assert (caught.value.adapter, caught.value.subject) == ("greynoise", f"ipv4:{IP}")


@pytest.mark.parametrize("body", [[], {"ip": IP, "message": "Success"}])
def test_an_answer_without_noise_or_riot_is_an_error(body: Any) -> None:
    with pytest.raises(EnrichmentError, match="no noise nor riot"):
        lookup(make(reply(body)), IP)


def test_a_second_lookup_comes_from_the_cache() -> None:
    handler, requests = recorded("greynoise_community_noise_malicious.json")
    adapter = make(handler)

    async def twice() -> tuple[Any, Any]:
        subject = Observable.parse(IP)
        return await adapter.enrich(subject), await adapter.enrich(subject)

    first, second = run(adapter, twice)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert attrs.evolve(second, from_cache=False) == first
    assert len(requests) == 1


# -- what it accepts, how it is built -------------------------------------------------------


def test_accepts() -> None:
    adapter = make(reply({}))
    assert adapter.accepts(Observable.parse(IP))
    for text in ("10.1.2.3", "100.64.0.1", "2001:4860:4860::8844", "example.com", "0" * 32):
        assert not adapter.accepts(Observable.parse(text)), text
    assert not adapter.accepts(Host(name="ws-042"))
    assert not adapter.accepts(User(name="bdoe"))


def test_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="noise must be one of suspicious, unknown"):
        GreyNoise(noise="malicious")


def test_conformance() -> None:
    adapter = make(reply(payload("greynoise_community_noise_malicious.json")))
    check_enricher(adapter, secrets=[KEY])
    assert KEY not in repr(adapter)
    asyncio.run(adapter.aclose())


def test_conformance_when_the_key_is_refused() -> None:
    adapter = make(reply({"message": f"invalid API key {KEY}"}, 401))
    check_enricher(adapter, secrets=[KEY])
    asyncio.run(adapter.aclose())


def test_conformance_without_a_key() -> None:
    adapter = make(reply(payload("greynoise_community_not_observed.json"), 404), api_key=None)
    check_enricher(adapter)
    asyncio.run(adapter.aclose())


def test_built_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIDO_TEST_GREYNOISE_KEY", KEY)
    path = tmp_path / "fido.toml"
    path.write_text(
        """
[[enrichers]]
type = "greynoise"
api_key_env = "FIDO_TEST_GREYNOISE_KEY"
noise = "unknown"
rate = "50/day"

[[enrichers]]
type = "greynoise"
name = "greynoise-anonymous"
""",
        encoding="utf-8",
    )
    with fido.load_config(path).build() as pipeline:
        keyed, anonymous = pipeline.enrichers
        assert isinstance(keyed, GreyNoise)
        assert keyed.name == "greynoise"
        assert keyed.noise is Verdict.UNKNOWN
        assert keyed.bucket.limit.limits == ((50.0, 86400.0),)
        assert keyed.http.base_url == "https://api.greynoise.io/v3/"
        assert keyed.http.headers["key"] == KEY
        assert KEY not in repr(keyed)
        assert isinstance(anonymous, GreyNoise)
        assert anonymous.name == "greynoise-anonymous"
        assert "key" not in anonymous.http.headers
