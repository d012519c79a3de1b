"""The `virustotal` enricher over `httpx.MockTransport`, with real API v3 payloads."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx
import pytest

import fido
from fido import ConfigurationError, EnrichmentError, Host, Observable, User
from fido._findings import Reliability, Reputation, Verdict
from fido._incident import FailureKind
from fido.adapters.enrichers.virustotal import VirusTotal, url_id
from fido.testing import check_enricher
from tests.factories import event

T = TypeVar("T")
KEY = "vt-Key-0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
DATA = Path(__file__).parent / "data" / "intel"
GUI = "https://www.virustotal.com/gui"
MALICIOUS_DOC = "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c"
MALICIOUS_DOC_MD5 = "b214da9f6b0d6e6de5090b3f9672defe"
CLEAN_COM = "0001a1252300b4732e4a010a5dd13a291dcb8b0ebee6febedb5152dfb0bcd488"
URL = "http://218.54.47.76/"
URL_SHA256 = "19e1199c6aa6e817845cc025cd7c8979cec22f8c94bc7416ff16b8808706cd54"
Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def url_object() -> Any:
    """The URL report as the API sends it: the stored file is the inner object."""
    return {"data": payload("vt3_url_object_1malicious.json")}


def reply(body: Any, status: int = 200, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def recorded(body: Any, status: int = 200) -> tuple[Handler, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, json=body)

    return handler, requests


def service(request: httpx.Request) -> httpx.Response:
    """A VirusTotal that knows one object of each kind."""
    known = {
        f"/api/v3/files/{MALICIOUS_DOC}": payload("vt3_file_report_malicious_doc.json"),
        f"/api/v3/files/{CLEAN_COM}": payload("vt3_file_report_clean_com.json"),
        "/api/v3/domains/haiku-os.org": payload("vt3_domain_report.json"),
        "/api/v3/ip_addresses/8.8.8.8": payload("vt3_ip_report_redacted.json"),
        f"/api/v3/urls/{url_id(URL)}": url_object(),
    }
    if request.headers.get("x-apikey") != KEY:
        return httpx.Response(401, json=payload("vt3_error_wrong_credentials.json"))
    body = known.get(request.url.path)
    if body is None:
        return httpx.Response(404, json=payload("vt3_error_not_found.json"))
    return httpx.Response(200, json=body)


def make(handler: Handler = service, **options: Any) -> VirusTotal:
    options.setdefault("api_key", KEY)
    adapter = VirusTotal(transport=httpx.MockTransport(handler), **options)
    adapter.http.backoff = 0.01
    return adapter


def run(adapter: VirusTotal, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` in a fresh loop, then close the adapter in that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def lookup(adapter: VirusTotal, text: str) -> Any:
    return run(adapter, lambda: adapter.enrich(Observable.parse(text)))


# -- the payloads, resolved -----------------------------------------------------------------


def test_a_malicious_document() -> None:
    handler, requests = recorded(payload("vt3_file_report_malicious_doc.json"))
    found = lookup(make(handler), MALICIOUS_DOC)
    assert found == Reputation(
        source="virustotal",
        subject=Observable.parse(MALICIOUS_DOC),
        verdict=Verdict.MALICIOUS,
        reliability=Reliability.B,
        detections=53,
        total=62,  # 53 malicious + 9 undetected; the 13 type-unsupported did not analyse it
        label="virus.hill/w97m",
        tags=("obfuscated", "macros", "doc", "threat:virus"),
        link=f"{GUI}/file/{MALICIOUS_DOC}",
        details={
            "stats": {
                "malicious": 53,
                "suspicious": 0,
                "harmless": 0,
                "undetected": 9,
                "timeout": 0,
                "type-unsupported": 13,
                "confirmed-timeout": 0,
                "failure": 0,
            },
            "reputation": 0,
            "type_description": "MS Word Document",
            "meaningful_name": "cDCUTY.tmp",
            "last_analysis": "2020-04-10T19:24:05+00:00",
        },
        fetched_at=found.fetched_at,
    )
    assert found.from_cache is False
    [request] = requests
    assert request.method == "GET"
    assert str(request.url) == f"https://www.virustotal.com/api/v3/files/{MALICIOUS_DOC}"
    assert request.headers["x-apikey"] == KEY
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == f"fido/{fido.__version__}"


def test_a_file_asked_by_md5_links_to_its_sha256() -> None:
    handler, requests = recorded(payload("vt3_file_report_malicious_doc.json"))
    found = lookup(make(handler), MALICIOUS_DOC_MD5.upper())
    assert found.subject == Observable.parse(MALICIOUS_DOC_MD5)
    assert found.link == f"{GUI}/file/{MALICIOUS_DOC}"
    assert requests[0].url.path == f"/api/v3/files/{MALICIOUS_DOC_MD5}"


def test_a_clean_file_with_eight_counters() -> None:
    found = lookup(make(), CLEAN_COM)
    assert found == Reputation(
        source="virustotal",
        subject=Observable.parse(CLEAN_COM),
        verdict=Verdict.BENIGN,
        reliability=Reliability.B,
        detections=0,
        total=60,
        label=None,
        tags=("com",),
        link=f"{GUI}/file/{CLEAN_COM}",
        details={
            "stats": {
                "malicious": 0,
                "suspicious": 0,
                "harmless": 0,
                "undetected": 60,
                "timeout": 1,
                "type-unsupported": 14,
                "confirmed-timeout": 0,
                "failure": 0,
            },
            "reputation": 0,
            "type_description": "DOS COM",
            "meaningful_name": "VirusShare_119aef5280f0d609dc5b30d454c1b94c",
            "last_analysis": "2020-09-22T15:53:23+00:00",
        },
        fetched_at=found.fetched_at,
    )


def test_a_domain_with_five_counters() -> None:
    found = lookup(make(), "haiku-os.org")
    assert found == Reputation(
        source="virustotal",
        subject=Observable.parse("haiku-os.org"),
        verdict=Verdict.BENIGN,
        reliability=Reliability.B,
        detections=0,
        total=94,
        tags=(),
        link=f"{GUI}/domain/haiku-os.org",
        details={
            "stats": {
                "malicious": 0,
                "suspicious": 0,
                "harmless": 63,
                "undetected": 31,
                "timeout": 0,
                "type-unsupported": 0,  # a domain has five counters: the rest are zero
                "confirmed-timeout": 0,
                "failure": 0,
            },
            "reputation": 0,
            "last_analysis": "2025-03-15T16:20:14+00:00",
        },
        fetched_at=found.fetched_at,
    )


def test_an_ip_address() -> None:
    found = lookup(make(), "8.8.8.8")
    assert found == Reputation(
        source="virustotal",
        subject=Observable.parse("8.8.8.8"),
        verdict=Verdict.MALICIOUS,  # 5 engines, 3 needed
        reliability=Reliability.B,
        detections=5,
        total=87,
        link=f"{GUI}/ip-address/8.8.8.8",
        details={
            "stats": {
                "malicious": 5,
                "suspicious": 2,
                "harmless": 72,
                "undetected": 8,
                "timeout": 0,
                "type-unsupported": 0,
                "confirmed-timeout": 0,
                "failure": 0,
            },
            "reputation": -4,
            "as_owner": "EMERALD-ONION",
            "country": "US",
        },
        fetched_at=found.fetched_at,
    )


def test_a_url_asked_by_its_unpadded_base64_id() -> None:
    handler, requests = recorded(url_object())
    found = lookup(make(handler), URL)
    assert found == Reputation(
        source="virustotal",
        subject=Observable.parse(URL),
        verdict=Verdict.SUSPICIOUS,  # one engine of 80
        reliability=Reliability.B,
        detections=1,
        total=80,
        tags=("ip",),
        link=f"{GUI}/url/{URL_SHA256}",  # the object's own id
        details={
            "stats": {
                "malicious": 1,
                "suspicious": 0,
                "harmless": 69,
                "undetected": 10,
                "timeout": 0,
                "type-unsupported": 0,
                "confirmed-timeout": 0,
                "failure": 0,
            },
            "reputation": 0,
            "last_analysis": "2020-05-21T16:30:13+00:00",
        },
        fetched_at=found.fetched_at,
    )
    assert requests[0].url.path == "/api/v3/urls/aHR0cDovLzIxOC41NC40Ny43Ni8"


def test_a_bare_object_reads_as_the_wrapped_one() -> None:
    bare = lookup(make(reply(payload("vt3_url_object_1malicious.json"))), URL)
    wrapped = lookup(make(reply(url_object())), URL)
    assert bare == attrs.evolve(wrapped, fetched_at=bare.fetched_at)


def test_a_url_without_an_id_links_by_its_base64_id() -> None:
    found = lookup(make(reply({"data": {"type": "url", "attributes": {}}})), URL)
    assert found.link == f"{GUI}/url/{url_id(URL)}"
    assert (found.verdict, found.detections, found.total) == (Verdict.UNKNOWN, 0, 0)


@pytest.mark.parametrize("name", ["vt3_error_not_found.json", "vt3_error_not_found_vtpy.json"])
def test_not_found_is_no_finding_and_cached(name: str) -> None:
    handler, requests = recorded(payload(name), status=404)
    adapter = make(handler)

    async def twice() -> list[Any]:
        subject = Observable.parse(
            "fffdddd2c3dc06d147c5ddddddd5c7e6acda4d1f1369fbc994cddd3c19a2de88"
        )
        return [await adapter.enrich(subject), await adapter.enrich(subject)]

    assert run(adapter, twice) == [None, None]
    assert len(requests) == 1
    assert adapter.stats()["cache_hits"] == 1


def test_wrong_credentials_are_an_error_never_retried() -> None:
    handler, requests = recorded(payload("vt3_error_wrong_credentials.json"), status=401)
    adapter = make(handler, api_key="vt-wrong-Key-fedcba9876543210")
    with pytest.raises(EnrichmentError) as caught:
        lookup(adapter, "8.8.8.8")
    error = caught.value
    assert error.message == "GET ip_addresses/8.8.8.8: HTTP 401 (WrongCredentialsError)"
    assert (error.adapter, error.subject, error.skipped) == ("virustotal", "ipv4:8.8.8.8", False)
    assert "vt-wrong-Key" not in str(error)
    assert len(requests) == 1
    assert adapter.stats()["failures"] == 1


def test_a_quota_error_waits_for_retry_after_and_retries() -> None:
    quota = {"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}}
    answers = iter(
        [
            httpx.Response(429, json=quota, headers={"Retry-After": "0.1"}),
            httpx.Response(200, json=payload("vt3_domain_report.json")),
        ]
    )
    adapter = make(lambda request: next(answers), api_key=f"{KEY}-quota-1")
    found = lookup(adapter, "haiku-os.org")
    assert found.verdict is Verdict.BENIGN
    assert adapter.stats()["retries"] == 1


QUOTA = {"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}}


def test_a_quota_error_without_retry_after_skips_the_key_for_a_minute() -> None:
    handler, requests = recorded(QUOTA, 429)
    adapter = make(handler, api_key=f"{KEY}-quota-2")
    with pytest.raises(EnrichmentError, match="skipped: quota exhausted until ") as caught:
        lookup(adapter, "haiku-os.org")
    assert caught.value.skipped is True
    assert 59.0 < adapter.bucket.paused_for() <= 60.0  # the per-minute quota, assumed
    assert len(requests) == 1  # a minute is beyond max_retry_time: not retried
    adapter.max_wait = 1.0
    with pytest.raises(EnrichmentError, match="skipped: quota exhausted until "):
        lookup(adapter, "8.8.8.8")  # the others are skipped too, without a request
    assert len(requests) == 1
    assert adapter.breaker.state == "closed"


def test_a_quota_error_again_after_the_minute_is_the_daily_quota(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("fido.adapters.enrichers.virustotal.time.monotonic", lambda: clock[0])
    adapter = make(reply(QUOTA, 429), api_key=f"{KEY}-quota-3")
    answer = httpx.Response(429, json=QUOTA)
    assert adapter.quota_reset(answer) == 60.0  # the per-minute quota first
    clock[0] += 30.0
    assert adapter.quota_reset(answer) == 60.0  # answers to requests sent before the pause
    clock[0] += 61.0  # after the pause: still spent, with no answer in between
    daily = adapter.quota_reset(answer)
    assert daily is not None
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert daily == pytest.approx((midnight - now).total_seconds(), abs=5)
    assert adapter.quota_reset(httpx.Response(429, json=QUOTA, headers={"Retry-After": "7"})) == 7
    assert adapter.quota_reset(httpx.Response(429, json={"error": {"code": "X"}})) is None


def test_an_answer_between_two_quota_errors_keeps_them_per_minute() -> None:
    answers = iter(
        [
            httpx.Response(429, json=QUOTA, headers={"Retry-After": "0.05"}),
            httpx.Response(200, json=payload("vt3_domain_report.json")),
        ]
    )
    adapter = make(lambda request: next(answers), api_key=f"{KEY}-quota-4")
    assert lookup(adapter, "haiku-os.org").verdict is Verdict.BENIGN
    assert adapter._minute_pause_ends is None


# -- what it looks up -----------------------------------------------------------------------


def test_url_ids_are_unpadded_url_safe_base64() -> None:
    assert url_id("http://www.virustotal.com/") == "aHR0cDovL3d3dy52aXJ1c3RvdGFsLmNvbS8"
    for url, expected in [
        ("http://example.com/??>", "aHR0cDovL2V4YW1wbGUuY29tLz8_Pg"),  # "_", "==" cut
        ("https://example.com/dl?id=~~~>", "aHR0cHM6Ly9leGFtcGxlLmNvbS9kbD9pZD1-fn4-"),  # "-"
        ("https://пример.рф/", url_id("https://пример.рф/")),
    ]:
        ident = url_id(url)
        assert ident == expected
        assert "=" not in ident
        assert "+" not in ident
        assert "/" not in ident
        assert base64.urlsafe_b64decode(ident + "=" * (-len(ident) % 4)).decode() == url


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        (MALICIOUS_DOC, True),
        (MALICIOUS_DOC_MD5, True),
        ("b7162dfcbcac2724c71c03385abe577e1ab0cd8d", True),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("haiku-os.org", True),
        (URL, True),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("127.0.0.1", False),
        ("100.64.0.1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("http://10.0.0.5/admin", False),  # a URL on an internal address stays inside
        ("http://localhost:8080/", False),
        ("bdoe@example.com", False),
        ("invoice.exe", False),
    ],
)
def test_what_it_accepts(text: str, accepted: bool) -> None:
    assert make().accepts(Observable.parse(text)) is accepted


def test_hosts_and_users_are_not_its_business() -> None:
    adapter = make()
    assert adapter.accepts(Host(name="ws-042", ip="8.8.8.8")) is False
    assert adapter.accepts(User(name="bdoe")) is False


def test_ipv6_addresses_go_to_ip_addresses() -> None:
    handler, requests = recorded(payload("vt3_ip_report_redacted.json"))
    lookup(make(handler), "2001:4860:4860::8888")
    assert requests[0].url.path == "/api/v3/ip_addresses/2001:4860:4860::8888"


# -- thresholds and parsing -----------------------------------------------------------------


def test_thresholds_are_options() -> None:
    doc = payload("vt3_file_report_malicious_doc.json")
    assert lookup(make(reply(doc), malicious=60), MALICIOUS_DOC).verdict is Verdict.SUSPICIOUS
    assert lookup(make(reply(doc), malicious=53), MALICIOUS_DOC).verdict is Verdict.MALICIOUS
    assert lookup(make(reply(url_object()), malicious=1), URL).verdict is Verdict.MALICIOUS
    assert lookup(make(reply(url_object()), suspicious=2), URL).verdict is Verdict.BENIGN
    ip = payload("vt3_ip_report_redacted.json")  # 5 malicious, 2 suspicious
    assert (
        lookup(make(reply(ip), malicious=6, suspicious=7), "8.8.8.8").verdict is Verdict.SUSPICIOUS
    )
    assert lookup(make(reply(ip), malicious=6, suspicious=8), "8.8.8.8").verdict is Verdict.BENIGN


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"malicious": 0}, "malicious and suspicious must be at least 1"),
        ({"suspicious": 0}, "malicious and suspicious must be at least 1"),
        ({"plan": "gold"}, "plan must be one of public, premium, not 'gold'"),
        ({"api_key": None}, "virustotal: an API key is needed"),
        ({"api_key": ""}, "virustotal: an API key is needed"),
        ({"rate": "4 a minute"}, "rate: expected"),
        ({"base_url": "www.virustotal.com"}, "base_url: expected an http"),
    ],
)
def test_configuration_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make(**options)


def test_the_plan_sets_the_rate() -> None:
    assert make().bucket.limit.limits == ()  # premium: no limit of ours, 429s honoured
    public = make(plan="public", api_key=f"{KEY}-public")
    assert public.bucket.limit.limits == ((4.0, 60.0), (500.0, 86400.0))
    assert public.bucket is make(plan="public", api_key=f"{KEY}-public").bucket  # shared
    own = make(plan="public", rate="30/min", api_key=f"{KEY}-own")  # rate wins
    assert own.bucket.limit.limits == ((30.0, 60.0),)


def test_the_public_plan_makes_the_fifth_lookup_of_a_minute_wait() -> None:
    adapter = make(plan="public", api_key=f"{KEY}-fifth")
    assert [adapter.bucket.reserve() for _ in range(4)] == [0.0] * 4
    assert adapter.bucket.reserve() > 59.0


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        ({"malicious": 2, "harmless": 1}, (Verdict.SUSPICIOUS, 2, 3)),
        ({"suspicious": 1}, (Verdict.SUSPICIOUS, 0, 1)),
        ({"undetected": 4}, (Verdict.BENIGN, 0, 4)),
        ({"type-unsupported": 70, "timeout": 2, "failure": 1}, (Verdict.UNKNOWN, 0, 0)),
        ({}, (Verdict.UNKNOWN, 0, 0)),
        (None, (Verdict.UNKNOWN, 0, 0)),
        ({"malicious": -3, "harmless": "9", "undetected": True}, (Verdict.UNKNOWN, 0, 0)),
        ({"malicious": 3.0, "undetected": 2}, (Verdict.BENIGN, 0, 2)),
    ],
)
def test_counters_are_parsed_with_defaults(stats: Any, expected: tuple[Verdict, int, int]) -> None:
    body = {
        "data": {
            "id": "example.net",
            "type": "domain",
            "attributes": {"last_analysis_stats": stats},
        }
    }
    found = lookup(make(reply(body)), "example.net")
    assert (found.verdict, found.detections, found.total) == expected
    assert set(found.details["stats"]) == {
        "malicious",
        "suspicious",
        "harmless",
        "undetected",
        "timeout",
        "type-unsupported",
        "confirmed-timeout",
        "failure",
    }


def test_odd_fields_are_left_out() -> None:
    body = {
        "data": {
            "id": "example.net",
            "type": "domain",
            "attributes": {
                "last_analysis_stats": {"harmless": 1},
                "tags": ["ok", 7, None],
                "reputation": {"nested": True},
                "popular_threat_classification": {
                    "suggested_threat_label": 5,
                    "popular_threat_category": [{"value": 1}, "x", {"value": "trojan"}],
                },
                "last_analysis_date": "yesterday",
            },
        }
    }
    found = lookup(make(reply(body)), "example.net")
    assert found.tags == ("ok", "threat:trojan")
    assert found.label is None
    assert found.details == {"stats": {**dict.fromkeys(found.details["stats"], 0), "harmless": 1}}


@pytest.mark.parametrize(
    "body",
    [
        {"data": None},
        {"data": {"type": "domain", "attributes": ["x"]}},
        {"data": {"type": "domain", "attributes": {"last_analysis_stats": [1, 2]}}},
        {"data": {"type": "domain", "attributes": {"popular_threat_classification": "trojan"}}},
        [1, 2, 3],
    ],
)
def test_an_answer_of_another_shape_is_an_error(body: Any) -> None:
    with pytest.raises(EnrichmentError, match="unexpected answer"):
        lookup(make(reply(body)), "example.net")


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (payload("vt3_file_rescan_analysis_ref.json"), "of type 'analysis'"),
        (payload("vt3_domain_report.json"), "of type 'domain'"),
        ({"data": {"attributes": {"last_analysis_stats": {"malicious": 60}}}}, "without a type"),
    ],
)
def test_an_object_of_another_type_is_an_error_not_a_finding(body: Any, found: str) -> None:
    with pytest.raises(EnrichmentError, match="unexpected answer") as caught:
        lookup(make(reply(body)), MALICIOUS_DOC)
    assert found in caught.value.message
    assert "not 'file'" in caught.value.message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><title>404 Not Found</title></html>", "text/html"),
        (b'{"error": {"code": "NotFoundError"}', "application/json"),  # cut short
        (b'{"detail": "Not Found"}', "application/json"),  # another API's 404
    ],
)
def test_a_404_without_the_not_found_error_is_an_error(body: bytes, content_type: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, content=body, headers={"content-type": content_type})

    adapter = make(handler, base_url="https://www.virustotal.com/api/v2/")
    with pytest.raises(EnrichmentError, match="HTTP 404") as caught:
        lookup(adapter, MALICIOUS_DOC)
    assert "is base_url right?" in caught.value.message
    with pytest.raises(EnrichmentError, match="not the service's not-found answer"):
        run(adapter, adapter.acheck)
    assert len(calls) == 2


# -- conformance, configuration, the pipeline ----------------------------------------------


def test_conformance() -> None:
    adapter = make()
    check_enricher(adapter, secrets=[KEY])
    check_enricher(
        adapter,
        [Observable.parse(t) for t in (MALICIOUS_DOC, CLEAN_COM, "haiku-os.org", "8.8.8.8", URL)],
        secrets=[KEY],
    )
    assert KEY not in repr(adapter)
    asyncio.run(adapter.aclose())


def test_conformance_when_the_key_is_refused() -> None:
    adapter = make(api_key="vt-refused-Key-0123456789")
    check_enricher(adapter, secrets=["vt-refused-Key-0123456789"])
    asyncio.run(adapter.aclose())


def test_built_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_API_KEY", KEY)
    path = tmp_path / "fido.toml"
    path.write_text(
        """
[[enrichers]]
type = "virustotal"
api_key_env = "VT_API_KEY"
plan = "public"
malicious = 5
suspicious = 2
request_timeout = "5s"
cache_ttl = { malicious = "2d", missing = "10m" }
breaker_failures = 3
breaker_cooldown = "2m"
reliability = "A"
""",
        encoding="utf-8",
    )
    with fido.load_config(path).build() as pipeline:
        [enricher] = pipeline.enrichers
        assert isinstance(enricher, VirusTotal)
        assert enricher.name == "virustotal"
        assert (enricher.malicious, enricher.suspicious) == (5, 2)
        assert enricher.bucket.limit.limits == ((4.0, 60.0), (500.0, 86400.0))
        assert enricher.http.base_url == "https://www.virustotal.com/api/v3/"
        assert enricher.http.headers["x-apikey"] == KEY
        assert enricher.http.timeout == 5.0
        assert enricher.cache.ttls["malicious"] == 172800.0
        assert enricher.cache.ttls["missing"] == 600.0
        assert (enricher.breaker.failures, enricher.breaker.cooldown) == (3, 120.0)
        assert enricher.reliability is Reliability.A
        assert KEY not in repr(enricher)


def test_the_key_is_never_written_in_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "fido.toml"
    path.write_text(f'[[enrichers]]\ntype = "virustotal"\napi_key = "{KEY}"\n')
    with pytest.raises(ConfigurationError, match="secrets are never written") as caught:
        fido.load_config(path)
    assert KEY not in str(caught.value)


def test_an_unknown_option_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_API_KEY", KEY)
    path = tmp_path / "fido.toml"
    path.write_text(
        '[[enrichers]]\ntype = "virustotal"\napi_key_env = "VT_API_KEY"\nthreshold = 3\n'
    )
    with pytest.raises(ConfigurationError, match="threshold"):
        fido.load_config(path).build().close()


def test_a_pipeline_scores_the_virustotal_verdict() -> None:
    adapter = make()
    with fido.Pipeline(enrichers=[adapter]) as pipeline:
        incident = pipeline.process(event(observables=[MALICIOUS_DOC, "10.9.8.7"]))
        stats = pipeline.stats()["adapters"]["virustotal"]
    [finding] = incident.findings  # the internal address was not sent
    assert isinstance(finding, Reputation)
    assert (finding.source, finding.verdict, finding.detections) == (
        "virustotal",
        Verdict.MALICIOUS,
        53,
    )
    assert incident.failures == ()
    [contribution] = [c for c in incident.assessment.contributions if c.source == "virustotal"]
    assert contribution.rule == "threat.verdicts.malicious"
    assert contribution.points > 0
    assert "53/62" in contribution.reason
    assert (stats["lookups"], stats["requests"], stats["breaker"]) == (1, 1, "closed")


def test_an_open_breaker_shows_as_a_skipped_lookup_on_the_incident() -> None:
    handler, requests = recorded(payload("vt3_file_report_malicious_doc.json"))
    adapter = make(handler, breaker_failures=1, breaker_cooldown="10m")
    adapter.breaker.failure()  # the service failed a moment ago
    with fido.Pipeline(enrichers=[adapter]) as pipeline:
        incident = pipeline.process(event(observables=[MALICIOUS_DOC]))
    assert incident.findings == ()
    [failure] = incident.failures
    assert (failure.enricher, failure.kind) == ("virustotal", FailureKind.SKIPPED)
    assert failure.subject == Observable.parse(MALICIOUS_DOC)
    assert failure.message.startswith("skipped: circuit open for 600 s more")
    assert requests == []
    assert not any(c.source == "virustotal" for c in incident.assessment.contributions)
