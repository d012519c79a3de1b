"""The `otx` enricher over `httpx.MockTransport`, with general sections written for fido."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
import httpx
import pytest

import fido
from fido import ConfigurationError, EnrichmentError, Host, Observable, User
from fido._findings import Reliability, Reputation, Verdict
from fido.adapters.enrichers.otx import OTX
from fido.testing import check_enricher

T = TypeVar("T")
KEY = "otx-Key-fedcba9876543210"
DATA = Path(__file__).parent / "data" / "intel"
IP = "45.155.205.233"
SHA256 = "04b1ff4c193358f924effdb54eb6d237fb4955e9d143d982f1f863203f183f63"
WEB = "https://otx.alienvault.com/indicator"
Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def reply(body: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def make(handler: Handler, **options: Any) -> OTX:
    return OTX(api_key=KEY, transport=httpx.MockTransport(handler), **options)


def run(adapter: OTX, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` in a fresh loop, then close the adapter in that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def lookup(adapter: OTX, text: str) -> Any:
    return run(adapter, lambda: adapter.enrich(Observable.parse(text)))


def recorded(name: str) -> tuple[Handler, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=payload(name))

    return handler, requests


# -- the payloads, resolved -----------------------------------------------------------------


def test_an_ip_in_three_pulses_is_malicious() -> None:
    handler, requests = recorded("otx_ipv4_general_pulses.json")
    found = lookup(make(handler), IP)
    assert found == Reputation(
        source="otx",
        subject=Observable.parse(IP),
        verdict=Verdict.MALICIOUS,
        reliability=Reliability.C,
        detections=3,  # four pulses listed; the phishing one holds no IPv4 indicator
        label="Emotet",
        tags=("emotet", "c2", "botnet", "scanner", "ssh", "TA542"),
        link=f"{WEB}/ip/{IP}",
        details={
            "pulses": [
                "Emotet C2 servers, March",
                "Honeypot scanners, week 11",
                "Mummy Spider infrastructure",
            ],
            "adversaries": ["Mummy Spider"],
            "reputation": 0,
            "type_title": "IPv4",
            "pulses_ignored": 1,
            "malware_families": ["Emotet", "TrickBot"],
        },
        fetched_at=found.fetched_at,
    )
    [request] = requests
    assert request.url.path == f"/api/v1/indicators/IPv4/{IP}/general"
    assert request.headers["x-otx-api-key"] == KEY


def test_a_validated_domain_is_benign_whatever_its_pulses() -> None:
    handler, requests = recorded("otx_domain_general_validated.json")
    found = lookup(make(handler), "example.com")
    assert found == Reputation(
        source="otx",
        subject=Observable.parse("example.com"),
        verdict=Verdict.BENIGN,
        reliability=Reliability.C,
        detections=2,
        label=None,
        tags=("validation:whitelist", "validation:akamai"),
        link=f"{WEB}/domain/example.com",
        details={
            "pulses": ["Domains contacted by sandboxed samples", "Phishing kit references"],
            "type_title": "Domain",
            "validation": ["Whitelisted domain", "Akamai Popular Domain"],
        },
        fetched_at=found.fetched_at,
    )
    assert requests[0].url.path == "/api/v1/indicators/domain/example.com/general"


def test_a_file_in_no_pulse_is_unknown_but_checked() -> None:
    handler, requests = recorded("otx_file_general_no_pulses.json")
    found = lookup(make(handler), SHA256)
    assert found == Reputation(
        source="otx",
        subject=Observable.parse(SHA256),
        verdict=Verdict.UNKNOWN,
        reliability=Reliability.C,
        detections=0,
        link=f"{WEB}/file/{SHA256}",
        details={"pulses": [], "type_title": "FileHash-SHA256"},
        fetched_at=found.fetched_at,
    )
    assert requests[0].url.path == f"/api/v1/indicators/file/{SHA256}/general"


@pytest.mark.parametrize(
    ("options", "verdict"),
    [
        ({"malicious": 4}, Verdict.SUSPICIOUS),
        ({"suspicious": 3, "malicious": 3}, Verdict.MALICIOUS),
        ({"suspicious": 4, "malicious": 5}, Verdict.UNKNOWN),
    ],
)
def test_thresholds_are_options(options: dict[str, int], verdict: Verdict) -> None:
    adapter = make(reply(payload("otx_ipv4_general_pulses.json")), **options)
    assert lookup(adapter, IP).verdict is verdict


def test_an_accepted_false_positive_is_benign() -> None:
    body = payload("otx_ipv4_general_pulses.json")
    body["false_positive"] = [{"assessment": "accepted", "assessment_date": "2024-03-12"}]
    found = lookup(make(reply(body)), IP)
    assert (found.verdict, found.detections, found.label) == (Verdict.BENIGN, 3, None)
    assert found.tags == ("false-positive:accepted",)


def test_malware_families_as_strings_and_pulse_names_as_labels() -> None:
    body = payload("otx_ipv4_general_pulses.json")
    pulses = body["pulse_info"]["pulses"]
    pulses[0]["malware_families"] = ["QakBot"]
    assert lookup(make(reply(body)), IP).label == "QakBot"
    for pulse in pulses:
        pulse["malware_families"] = []
    assert lookup(make(reply(body)), IP).label == "Emotet C2 servers, March"


def test_tags_and_names_are_bounded() -> None:
    body = payload("otx_ipv4_general_pulses.json")
    template = body["pulse_info"]["pulses"][0]
    pulses = []
    for i in range(15):
        pulse = copy.deepcopy(template)
        pulse.update(name=f"pulse {i}", tags=[f"t{i}a", f"t{i}b", " ", 7])
        pulses.append(pulse)
    body["pulse_info"].update(count=40, pulses=pulses)
    found = lookup(make(reply(body)), IP)
    assert found.detections == 40  # OTX's count: it lists only some of them
    assert len(found.tags) == 20
    assert found.tags[:3] == ("t0a", "t0b", "t1a")
    assert found.details["pulses"] == [f"pulse {i}" for i in range(10)]


# -- paths: sections and quoting ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "page"),
    [
        ("2001:4860:4860::8888", "IPv6/2001%3A4860%3A4860%3A%3A8888", "ip"),
        ("www.evil.example.net", "hostname/www.evil.example.net", "hostname"),
        ("evil.example", "domain/evil.example", "domain"),
        ("evil.co.uk", "domain/evil.co.uk", "domain"),
        ("evil.com.au", "domain/evil.com.au", "domain"),
        ("www.evil.co.uk", "hostname/www.evil.co.uk", "hostname"),
        ("a.b.evil.co.jp", "hostname/a.b.evil.co.jp", "hostname"),
        ("evil.example.uk", "hostname/evil.example.uk", "hostname"),  # example.uk: no suffix
        ("d41d8cd98f00b204e9800998ecf8427e", "file/d41d8cd98f00b204e9800998ecf8427e", "file"),
        ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "file/", "file"),
        ("https://Evil.example.net/a%20b/ü?x=1&y=/z#top", "url/https%3A%2F%2F", "url"),
    ],
)
def test_each_kind_goes_to_its_section(text: str, path: str, page: str) -> None:
    handler, requests = recorded("otx_file_general_no_pulses.json")
    subject = Observable.parse(text)
    found = lookup(make(handler), text)
    [request] = requests
    raw = request.url.raw_path.decode("ascii")
    assert raw.startswith(f"/api/v1/indicators/{path}")
    segment = raw.split("/")[5]
    assert segment == quote(subject.value, safe="")  # sent as it is, once encoded
    assert raw.endswith("/general")
    assert raw.count("/") == 6  # the indicator is one path segment
    assert found.link == f"{WEB}/{page}/{quote(subject.value, safe='')}"


# -- not found, errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, {"detail": "Not found."}), (400, payload("otx_error_400_invalid_indicator.json"))],
)
def test_not_found_and_refused_indicators_are_none_and_cached(status: int, body: Any) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json=body)

    adapter = make(handler)

    async def twice() -> list[Any]:
        return [await adapter.enrich(Observable.parse(IP)) for _ in range(2)]

    assert run(adapter, twice) == [None, None]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (404, b"<html><h1>Not Found</h1></html>"),
        (404, b'{"error": "not found"}'),
        (400, b"Bad Request"),
    ],
)
def test_a_404_or_400_without_otxs_detail_is_an_error(status: int, content: bytes) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, content=content)

    adapter = make(handler, base_url="https://otx.alienvault.com/api/v2/")
    for _ in range(2):
        with pytest.raises(EnrichmentError, match=f"HTTP {status}") as caught:
            lookup(adapter, IP)
        assert "is base_url right?" in caught.value.message
    assert len(calls) == 2


def test_an_answer_without_pulse_info_is_an_enrichment_error() -> None:
    with pytest.raises(EnrichmentError, match="no pulse_info") as caught:
        lookup(make(reply([{"indicator": IP}])), IP)
    assert (caught.value.adapter, caught.value.subject) == ("otx", f"ipv4:{IP}")


def test_malformed_json_is_an_enrichment_error() -> None:
    adapter = make(lambda request: httpx.Response(200, content=b'{"pulse_info": {"count": 1,'))
    with pytest.raises(EnrichmentError, match="not JSON") as caught:
        lookup(adapter, IP)
    assert (caught.value.adapter, caught.value.subject) == ("otx", f"ipv4:{IP}")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_never_shows(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"detail": "Authentication credentials were not provided.", "message": KEY}
    with pytest.raises(EnrichmentError, match=f"HTTP {status}") as caught:
        lookup(make(reply(body, status)), IP)
    error = caught.value
    assert (error.adapter, error.subject) == ("otx", f"ipv4:{IP}")
    assert "otx" in str(error)
    assert IP in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    assert KEY not in caplog.text


def test_a_second_lookup_comes_from_the_cache() -> None:
    handler, requests = recorded("otx_ipv4_general_pulses.json")
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
    for text in (IP, "2001:4860::8888", "example.com", "http://x.io/a", SHA256, "0" * 32):
        assert adapter.accepts(Observable.parse(text)), text
    for text in ("10.1.2.3", "::1", "http://127.0.0.1:8080/", "bob@example.com", "a.exe"):
        assert not adapter.accepts(Observable.parse(text)), text
    assert not adapter.accepts(Host(name="ws-042"))
    assert not adapter.accepts(User(name="bdoe"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"suspicious": 0}, "1 <= suspicious"),
        ({"suspicious": 4, "malicious": 3}, "suspicious <= malicious"),
        ({"api_key": ""}, "an API key is needed"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OTX(**{"api_key": KEY, **options})


def test_conformance() -> None:
    adapter = make(reply(payload("otx_ipv4_general_pulses.json")))
    check_enricher(adapter, secrets=[KEY])
    assert KEY not in repr(adapter)
    asyncio.run(adapter.aclose())


def test_conformance_when_the_key_is_refused() -> None:
    adapter = make(reply({"detail": f"Invalid API key {KEY}"}, 403))
    check_enricher(adapter, secrets=[KEY])
    asyncio.run(adapter.aclose())


def test_built_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIDO_TEST_OTX_KEY", KEY)
    path = tmp_path / "fido.toml"
    path.write_text(
        """
[[enrichers]]
type = "otx"
api_key_env = "FIDO_TEST_OTX_KEY"
malicious = 5
suspicious = 2
rate = ["100/min"]
reliability = "B"
""",
        encoding="utf-8",
    )
    with fido.load_config(path).build() as pipeline:
        [enricher] = pipeline.enrichers
        assert isinstance(enricher, OTX)
        assert enricher.name == "otx"
        assert (enricher.malicious, enricher.suspicious) == (5, 2)
        assert enricher.reliability is Reliability.B
        assert enricher.http.base_url == "https://otx.alienvault.com/api/v1/"
        assert enricher.http.headers["x-otx-api-key"] == KEY
        assert KEY not in repr(enricher)


def test_a_missing_key_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIDO_TEST_OTX_KEY", raising=False)
    path = tmp_path / "fido.toml"
    path.write_text('[[enrichers]]\ntype = "otx"\napi_key_env = "FIDO_TEST_OTX_KEY"\n')
    with pytest.raises(ConfigurationError, match="FIDO_TEST_OTX_KEY is not set"):
        fido.load_config(path)
