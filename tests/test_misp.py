"""The `misp` enricher over `httpx.MockTransport`, with answers written for fido and a real event."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
import certifi
import httpx
import pytest

import fido
from fido import ConfigurationError, EnrichmentError, Host, Observable, User
from fido._findings import Reliability, Reputation, Verdict
from fido.adapters.enrichers.misp import MISP
from fido.testing import check_enricher

T = TypeVar("T")
KEY = "misp-Key-0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2yZ3"
BASE = "https://misp.example.org/"
DATA = Path(__file__).parent / "data" / "intel"
IP = "91.241.19.84"
DOMAIN = "mail-login-check.example"
C2 = "misp_attributes_ip_c2.json"
LOW = "misp_attributes_domain_low.json"
C2_INFO = "Cobalt Strike team servers seen in a phishing campaign"
SCAN_INFO = "Scanning of VPN gateways"
XORIST_UUID = "57c4445b-c548-4654-af0b-4be3950d210f"
XORIST_SHA256 = "b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68"
XORIST_TAGS = (
    "tlp:white",
    'circl:incident-classification="malware"',
    'ms-caro-malware:malware-type="Ransom"',
    'malware_classification:malware-category="Ransomware"',
)
Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def xorist() -> dict[str, Any]:
    """The Xorist event's attributes as restSearch gives them (ids and context added)."""
    event = payload("misp_event_osint_xorist.json")["Event"]
    context = {key: event[key] for key in ("info", "threat_level_id", "date", "uuid", "Tag")}
    context["id"] = "1207"
    attributes = [
        {**attribute, "id": str(5000 + index), "event_id": "1207", "Event": context}
        for index, attribute in enumerate(event["Attribute"])
    ]
    return {"response": {"Attribute": attributes}}


def event(ident: str, info: str, date: str, uuid: str, level: str) -> dict[str, str]:
    """An event as the finding's details sum it up."""
    return {"id": ident, "info": info, "date": date, "uuid": uuid, "threat_level": level}


def only(body: dict[str, Any], *ids: str) -> dict[str, Any]:
    """The answer with only the attributes of these ids."""
    kept = [a for a in body["response"]["Attribute"] if a["id"] in ids]
    return {"response": {"Attribute": copy.deepcopy(kept)}}


def reply(body: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def make(handler: Handler, **options: Any) -> MISP:
    options = {"api_key": KEY, "base_url": BASE, **options}
    adapter = MISP(transport=httpx.MockTransport(handler), **options)
    adapter.http.backoff = 0.01
    return adapter


def run(adapter: MISP, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` in a fresh loop, then close the adapter in that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def lookup(adapter: MISP, text: str, kind: str | None = None) -> Any:
    return run(adapter, lambda: adapter.enrich(Observable.parse(text, kind=kind)))


def recorded(body: Any, status: int = 200) -> tuple[Handler, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, json=body)

    return handler, requests


# -- the payloads, resolved -----------------------------------------------------------------


def test_a_c2_address_in_a_high_threat_event_is_malicious_and_cached() -> None:
    handler, requests = recorded(payload(C2))
    adapter = make(handler)

    async def twice() -> tuple[Any, Any]:
        subject = Observable.parse(IP)
        return await adapter.enrich(subject), await adapter.enrich(subject)

    found, again = run(adapter, twice)
    assert (found.from_cache, again.from_cache) == (False, True)
    assert attrs.evolve(again, from_cache=False) == found
    assert adapter.stats()["cache_hits"] == 1
    assert found == Reputation(
        source="misp",
        subject=Observable.parse(IP),
        verdict=Verdict.MALICIOUS,
        reliability=Reliability.C,
        detections=1,  # events flagging it for detection: 812 (790 does not)
        total=2,  # events holding it: 812 and 790; the neighbour 91.241.19.85 is left out
        label=C2_INFO,
        tags=(
            "kill-chain:Command and Control",
            "tlp:amber",
            'misp-galaxy:tool="Cobalt Strike"',
            "tlp:green",
        ),
        link="https://misp.example.org/events/view/812",
        details={
            "attributes": 2,
            "to_ids": 1,
            "events": [
                event("812", C2_INFO, "2024-05-31", "6a9d1e44-2b7c-4f0a-8d3e-91c5b7a2f610", "high"),
                event(
                    "790", SCAN_INFO, "2024-04-25", "c47a0b19-6e2d-4a8f-b1c3-5d9e8f7a6b24", "low"
                ),
            ],
            "types": ["ip-dst|port", "ip-src"],
            "categories": ["Network activity"],
            "last_change": "2024-05-31T13:00:00+00:00",
        },
        fetched_at=found.fetched_at,
    )
    [request] = requests
    assert request.method == "POST"
    assert request.url == "https://misp.example.org/attributes/restSearch"
    headers = ("authorization", "accept", "content-type")
    assert [request.headers[h] for h in headers] == [KEY, "application/json", "application/json"]
    assert json.loads(request.content) == {
        "returnFormat": "json",
        "value": [IP],  # a list: any of the subject's spellings
        "limit": 50,
        "page": 1,
        "includeContext": True,
        "includeEventTags": True,
        "enforceWarninglist": True,
    }


def test_a_detection_attribute_in_a_low_threat_event_is_suspicious() -> None:
    found = lookup(make(reply(payload(LOW))), DOMAIN)
    assert (found.verdict, found.detections, found.total) == (Verdict.SUSPICIOUS, 1, 2)
    assert found.label == "Credential phishing against webmail users"  # event 901 decides
    assert found.link == "https://misp.example.org/events/view/901"
    assert found.tags == ("tlp:red",)
    assert found.details["types"] == ["comment", "domain|ip"]
    assert [e["threat_level"] for e in found.details["events"]] == ["low", "undefined"]
    # "Mail-Login-Check.example|185.100.87.202": each part matches on its own
    found = lookup(make(reply(payload(LOW))), "185.100.87.202")
    assert (found.verdict, found.detections, found.total) == (Verdict.SUSPICIOUS, 1, 1)
    assert found.details["types"] == ["domain|ip"]


@pytest.mark.parametrize(
    ("name", "kept", "text", "verdict", "label"),
    [  # an indicator not flagged for detection; a value only mentioned in a comment
        (C2, "3990", IP, Verdict.SUSPICIOUS, SCAN_INFO),
        (LOW, "5301", DOMAIN, Verdict.UNKNOWN, "Weekly phishing digest"),
    ],
)
def test_not_flagged(name: str, kept: str, text: str, verdict: Verdict, label: str) -> None:
    found = lookup(make(reply(only(payload(name), kept))), text)
    assert (found.verdict, found.detections, found.total, found.label) == (verdict, 0, 1, label)


def test_the_xorist_sha256_is_suspicious_from_a_low_threat_event() -> None:
    found = lookup(make(reply(xorist())), XORIST_SHA256)
    assert found == Reputation(
        source="misp",
        subject=Observable.parse(XORIST_SHA256),
        verdict=Verdict.SUSPICIOUS,  # to_ids, but the event's threat level is 3 (low)
        reliability=Reliability.C,
        detections=1,
        total=1,
        label="Ransomware - Xorist",
        tags=XORIST_TAGS,
        link="https://misp.example.org/events/view/1207",
        details={
            "attributes": 1,  # the VirusTotal link holds the hash, but is not it
            "to_ids": 1,
            "events": [event("1207", "Ransomware - Xorist", "2016-08-29", XORIST_UUID, "low")],
            "types": ["sha256"],
            "categories": ["Payload delivery"],
            "last_change": "2016-08-29T14:19:55+00:00",
        },
        fetched_at=found.fetched_at,
    )


@pytest.mark.parametrize(
    ("text", "kind", "types"),
    [
        ("0749BAE92CA336A02C83D126E04EC628", "md5", ["md5"]),
        ("77b0c41b7d340b8a3d903f21347bbf06aa766b5b", "sha1", ["sha1"]),
        ("3z4wnG9603it23y.EXE", "filename", ["filename"]),  # file names ignore case
    ],
)
def test_the_xorist_indicators_match_by_kind(text: str, kind: str, types: list[str]) -> None:
    found = lookup(make(reply(xorist())), text, kind)
    assert (found.verdict, found.details["types"]) == (Verdict.SUSPICIOUS, types)


def test_malicious_levels_is_an_option() -> None:
    # scores: 3 MALICIOUS (low made malicious), 2 SUSPICIOUS (high no longer is)
    assert lookup(make(reply(xorist()), malicious_levels=[3]), XORIST_SHA256).verdict.score == 3
    assert lookup(make(reply(payload(C2)), malicious_levels=[]), IP).verdict.score == 2


def test_options_shape_the_query_and_a_full_page_is_marked_truncated() -> None:
    handler, requests = recorded(payload(C2))
    options = {"limit": 3, "ids_only": True, "published_only": True, "enforce_warninglist": False}
    found = lookup(make(handler, base_url="https://intel.example.org/misp", **options), IP)
    assert found.details["truncated"] is True
    # an instance under a path: asked there, and linked there
    assert requests[0].url == "https://intel.example.org/misp/attributes/restSearch"
    assert found.link == "https://intel.example.org/misp/events/view/812"
    sent = json.loads(requests[0].content)
    assert (sent["limit"], sent["to_ids"], sent["published"]) == (3, True, True)
    assert sent["enforceWarninglist"] is False
    body = payload(C2)
    assert "truncated" not in lookup(make(reply(body), limit=4), IP).details


def test_tags_are_bounded() -> None:
    body = only(payload(C2), "4101")
    body["response"]["Attribute"][0]["Tag"] = [{"name": f"tag-{i}"} for i in range(40)]
    tags = lookup(make(reply(body)), IP).tags
    assert (len(tags), tags[0]) == (30, "tag-0")


# -- not found, errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"response": {"Attribute": []}}),
        (200, {"response": []}),  # some versions, when nothing matches
        (200, {"response": {}}),
        (200, only(payload(C2), "3991")),  # only the neighbour
        (404, {"name": "No matches.", "message": "No matches.", "url": "/attributes/restSearch"}),
    ],
)
def test_nothing_matching_is_none_and_cached(status: int, body: Any) -> None:
    handler, requests = recorded(body, status)
    adapter = make(handler)

    async def twice() -> list[Any]:
        return [await adapter.enrich(Observable.parse(IP)) for _ in range(2)]

    assert run(adapter, twice) == [None, None]
    assert len(requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_never_shows(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"name": "Authentication failed.", "message": f"Authentication failed for {KEY}."}
    with pytest.raises(EnrichmentError, match=f"HTTP {status}") as caught:
        lookup(make(reply(body, status)), IP)
    error = caught.value
    assert (error.adapter, error.subject) == ("misp", f"ipv4:{IP}")
    assert "misp" in str(error)
    assert IP in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    assert KEY not in caplog.text


def test_a_refused_query_is_an_error_and_not_retried() -> None:
    handler, requests = recorded({"name": "Invalid filter.", "message": "Invalid filter."}, 400)
    with pytest.raises(EnrichmentError, match="POST attributes/restSearch: HTTP 400"):
        lookup(adapter := make(handler), IP)
    assert len(requests) == 1
    assert adapter.stats()["retries"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"response": {"Attribute": [', "not JSON"),
        (b'{"Attribute": []}', "unexpected answer: ValueError: not a restSearch answer"),
        (b"[]", "no response"),
        (b'{"response": {"Attribute": "none"}}', "Attribute is not a list"),
    ],
)
def test_a_malformed_answer_is_an_enrichment_error(content: bytes, message: str) -> None:
    adapter = make(lambda request: httpx.Response(200, content=content))
    with pytest.raises(EnrichmentError, match=message) as caught:
        lookup(adapter, IP)
    assert (caught.value.adapter, caught.value.subject) == ("misp", f"ipv4:{IP}")


# -- what it accepts, how it is built -------------------------------------------------------


STORED_AS_WRITTEN = {  # a URL stored as an analyst wrote it, without the trailing slash
    "id": "1",
    "event_id": "7",
    "type": "url",
    "category": "Network activity",
    "to_ids": True,
    "value": "http://evil.example",
    "Event": {"id": "7", "threat_level_id": "1", "info": "C2"},
}


def exact_match(request: httpx.Request) -> httpx.Response:
    """MISP's restSearch: a value (or any of a list of them) matched exactly."""
    asked = json.loads(request.content)["value"]
    values = asked if isinstance(asked, list) else [asked]
    hit = [STORED_AS_WRITTEN] if STORED_AS_WRITTEN["value"] in values else []
    return httpx.Response(200, json={"response": {"Attribute": hit}})


def test_a_url_stored_without_its_trailing_slash_is_found() -> None:
    subject = Observable.parse("http://evil.example")
    assert subject.value == "http://evil.example/"  # fido's normal form
    found = lookup(make(exact_match), "http://evil.example")
    assert isinstance(found, Reputation)
    assert (found.verdict, found.label) == (Verdict.MALICIOUS, "C2")


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("http://evil.example", ["http://evil.example/", "http://evil.example"]),
        ("http://evil.example/a/", ["http://evil.example/a/", "http://evil.example/a"]),
        ("http://evil.example/a?b=1", ["http://evil.example/a?b=1"]),
        (IP, [IP]),
        ("bob@Evil.Example", ["bob@evil.example"]),
    ],
)
def test_every_spelling_is_asked_for_in_one_search(text: str, values: list[str]) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"response": {"Attribute": []}})

    assert lookup(make(handler), text) is None
    [request] = requests
    assert json.loads(request.content)["value"] == values


def test_the_text_an_observable_keeps_is_asked_for_too() -> None:
    class Written(Observable):
        original = "HTTP://Evil.Example"

    subject = Written(fido.ObservableKind.URL, "HTTP://Evil.Example")
    adapter = make(reply({}))
    assert adapter.query(subject)["value"] == [
        "http://evil.example/",
        "HTTP://Evil.Example",
        "http://evil.example",
    ]


def test_a_404_that_is_not_no_matches_is_an_error() -> None:
    adapter = make(reply({"detail": "Not Found"}, 404), base_url="https://misp.example.org/misp/")
    with pytest.raises(EnrichmentError, match="HTTP 404") as caught:
        lookup(adapter, IP)
    assert "is base_url right?" in caught.value.message


def test_internal_indicators_only_with_lookup_internal() -> None:
    internal = ("10.1.2.3", "http://wiki.corp.example/x", "bob@corp.example", "ws.corp.example")
    adapter = make(reply({}), internal_domains=["corp.example"])
    own = make(reply(payload(C2)), internal_domains=["corp.example"], lookup_internal=True)
    for text in internal:
        assert not adapter.accepts(Observable.parse(text)), text
        assert own.accepts(Observable.parse(text)), text
    with pytest.raises(EnrichmentError, match="internal indicator") as caught:
        lookup(adapter, "10.1.2.3")
    assert caught.value.skipped is True
    assert lookup(own, "10.1.2.3") is None  # asked: the instance is the organisation's own
    with pytest.raises(ConfigurationError, match="lookup_internal is true or false"):
        make(reply({}), lookup_internal="yes")


def test_accepts() -> None:
    adapter = make(reply({}))
    kinds = (IP, "2001:4860::8888", DOMAIN, "http://x.io/a", "0" * 64, "a@b.io", "a.exe")
    for text in (*kinds, "0" * 32, "0" * 40):
        assert adapter.accepts(Observable.parse(text)), text
    for text in ("10.1.2.3", "fe80::1", "http://127.0.0.1:8080/"):
        assert not adapter.accepts(Observable.parse(text)), text
        assert make(reply({}), lookup_internal=True).accepts(Observable.parse(text)), text
    assert not adapter.accepts(Host(name="ws-042"))
    assert not adapter.accepts(User(name="bdoe"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_url": None}, "misp: base_url is needed"),
        ({"base_url": "misp.example.org"}, "expected an http"),
        ({"limit": 0}, "limit is between 1 and 1000"),
        ({"limit": True}, "limit"),
        ({"malicious_levels": [1, 5]}, "threat levels from 1 to 4"),
        ({"malicious_levels": "12"}, "threat levels from 1 to 4"),
        ({"api_key": None}, "an API key is needed"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file: cannot load"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MISP(**{"api_key": KEY, "base_url": BASE, **options})


@pytest.mark.parametrize(
    "handler",
    [reply(payload(C2)), reply({"message": f"refused: {KEY}"}, 403)],
)
def test_conformance(handler: Handler) -> None:
    adapter = make(handler)
    check_enricher(adapter, secrets=[KEY])
    assert KEY not in repr(adapter)
    asyncio.run(adapter.aclose())


def test_built_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIDO_TEST_MISP_KEY", KEY)
    # the instance's CA, next to the configuration (a path, not the secret of a "ca")
    (tmp_path / "misp-ca.pem").write_bytes(Path(certifi.where()).read_bytes())
    path = tmp_path / "fido.toml"
    path.write_text(
        """
[[enrichers]]
type = "misp"
base_url = "https://misp.example.org/"
api_key_env = "FIDO_TEST_MISP_KEY"
ca_file = "misp-ca.pem"
malicious_levels = [1]
ids_only = true
limit = 20
reliability = "B"
""",
        encoding="utf-8",
    )
    with fido.load_config(path).build() as pipeline:
        [enricher] = pipeline.enrichers
        assert isinstance(enricher, MISP)
        assert enricher.name == "misp"
        assert enricher.malicious_levels == frozenset({"1"})
        assert (enricher.ids_only, enricher.limit) == (True, 20)
        assert enricher.reliability is Reliability.B
        assert enricher.http.base_url == BASE
        assert enricher.http.headers["authorization"] == KEY
        assert isinstance(enricher.http._verify, ssl.SSLContext)
        assert KEY not in repr(enricher)
