"""The `threatgrid` enricher over `httpx.MockTransport`, with the published v2 payloads."""

from __future__ import annotations

import asyncio
import copy
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
from fido.adapters.enrichers.threatgrid import ThreatGrid
from fido.testing import check_enricher

T = TypeVar("T")
KEY = "tg-Key-0123456789abcdef"
DATA = Path(__file__).parent / "data" / "intel"
MD5 = "a92ddbbaf6c9a50a7125595a4119ca38"
SHA1 = "2f9bc5c64eeca8c0504fd852032be29442f11ace"
SHA256 = "76b523017eb04dc56b48e4c0585ded8746c11646238484e35710289e8a385af3"
SAMPLE = "2163cc93b5daa51861397402eb94b6e3"
TAGS = (  # the behaviours' names, by threat: 60, 56, 48, 40, 27, 19, 7, 6
    "script-contains-url",
    "modified-file-in-user-dir",
    "artifact-flagged-anomaly",
    "js-uses-fromcharcode",
    "network-file-downloaded-to-disk",
    "network-only-safe-domains-contacted",
    "network-fast-flux-domain",
    "network-communications-http-get-url",
)
Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def reply(body: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


NO_ITEMS: Any = {"api_version": 2, "id": 1, "data": {"index": 0, "items": []}}
DOMAINS: Any = {  # written for fido, in the shape of the search/ips sample
    "api_version": 2,
    "id": 9288081,
    "data": {
        "index": 0,
        "items_per_page": 1000,
        "current_item_count": 2,
        "items": [
            {"result": "cisco.com", "details": "/api/v2/domains/cisco.com"},
            {"result": "www.cisco.com", "details": "/api/v2/domains/www.cisco.com"},
        ],
    },
}


def routes(seen: list[httpx.Request] | None = None, **bodies: Any) -> Handler:
    """Answers `search/<name>` with `bodies[name]` (an empty search if not given)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        name = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json=bodies.get(name, NO_ITEMS))

    return handler


def make(handler: Handler, **options: Any) -> ThreatGrid:
    options.setdefault("api_key", KEY)
    return ThreatGrid(transport=httpx.MockTransport(handler), **options)


def run(adapter: ThreatGrid, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` in a fresh loop, then close the adapter in that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def lookup(adapter: ThreatGrid, text: str) -> Any:
    return run(adapter, lambda: adapter.enrich(Observable.parse(text)))


def expected(subject: Observable, **changes: Any) -> Reputation:
    finding = Reputation(
        source="threatgrid",
        subject=subject,
        verdict=Verdict.SUSPICIOUS,
        reliability=Reliability.B,
        score=60,
        label="Script Contains URL",
        tags=TAGS,
        link=f"https://panacea.threatgrid.com/mask/samples/{SAMPLE}",
        details={
            "relation": "sample",
            "submissions": 1,
            "sample": SAMPLE,
            "filename": "sample.url",
            "sha256": SHA256,
            "submitted_at": "2020-09-29T15:12:27Z",
        },
    )
    return attrs.evolve(finding, **changes)


# -- the payloads, resolved -----------------------------------------------------------------


@pytest.mark.parametrize("checksum", [MD5, SHA1, SHA256])
def test_a_hash_resolves_to_its_own_submission(checksum: str) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=payload("threatgrid_v2_search_submissions.json"))

    found = lookup(make(handler), checksum)
    assert found == expected(Observable.parse(checksum), fetched_at=found.fetched_at)
    assert found.from_cache is False
    [request] = requests
    assert request.url.path == "/api/v2/search/submissions"
    assert dict(request.url.params) == {
        "q": checksum,
        "state": "succ",
        "sort_by": "threat_score",
        "sort_order": "desc",
        "limit": "25",
    }
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("options", "verdict"),
    [
        ({"malicious": 60}, Verdict.MALICIOUS),
        ({"suspicious": 61, "malicious": 90}, Verdict.BENIGN),
        ({"suspicious": 60, "malicious": 61}, Verdict.SUSPICIOUS),
    ],
)
def test_thresholds_are_options(options: dict[str, int], verdict: Verdict) -> None:
    adapter = make(reply(payload("threatgrid_v2_search_submissions.json")), **options)
    assert lookup(adapter, MD5).verdict is verdict


@pytest.mark.parametrize(
    ("text", "associated", "verdict"),
    [
        ("landmarkventuresvip.com", "suspicious", Verdict.SUSPICIOUS),
        ("landmarkventuresvip.com", "malicious", Verdict.MALICIOUS),
        ("landmarkventuresvip.com", "unknown", Verdict.UNKNOWN),
        ("https://landmarkventuresvip.com/l/x", "suspicious", Verdict.SUSPICIOUS),
        ("72.163.4.185", "benign", Verdict.BENIGN),
        # a hash that only matched inside another sample (an artifact, say)
        ("0" * 64, "suspicious", Verdict.SUSPICIOUS),
    ],
)
def test_samples_that_only_touched_the_subject_give_a_capped_verdict(
    text: str, associated: str, verdict: Verdict
) -> None:
    adapter = make(
        routes(submissions=payload("threatgrid_v2_search_submissions.json")),
        malicious=60,
        associated=associated,
    )
    found = lookup(adapter, text)
    assert found.verdict is verdict
    assert found.score == 60
    assert found.details["relation"] == "associated"


def test_the_highest_score_of_the_own_submissions_decides() -> None:
    body = payload("threatgrid_v2_search_submissions.json")
    other = copy.deepcopy(body["data"]["items"][0])
    other["item"].update(sample="ffff", md5="1" * 32, sha1="1" * 40, sha256="1" * 64)
    other["item"]["analysis"].update(threat_score=95, behaviors=[])
    rerun = copy.deepcopy(body["data"]["items"][0])
    rerun["item"]["sample"] = "eeee"
    rerun["item"]["analysis"].update(
        threat_score=80, behaviors=[{"name": "x-high", "threat": 80, "title": None}]
    )
    body["data"]["items"] = [other, *body["data"]["items"], rerun]
    body["data"]["total"] = 3
    found = lookup(make(reply(body)), MD5)
    # the other file scored 95, but this file's own runs are the evidence: 80 and 60
    assert (found.verdict, found.score, found.label) == (Verdict.MALICIOUS, 80, None)
    assert found.tags == ("x-high",)
    assert found.link.endswith("/mask/samples/eeee")
    assert found.details["submissions"] == 3


def test_no_threat_score_is_unknown() -> None:
    body = payload("threatgrid_v2_search_submissions.json")
    del body["data"]["items"][0]["item"]["analysis"]
    found = lookup(make(reply(body)), MD5)
    assert (found.verdict, found.score, found.label, found.tags) == (
        Verdict.UNKNOWN,
        None,
        None,
        (),
    )


def test_tags_are_bounded() -> None:
    body = payload("threatgrid_v2_search_submissions.json")
    behaviors = [{"name": f"b{i:02}", "threat": i, "title": f"B{i}"} for i in range(30)]
    body["data"]["items"][0]["item"]["analysis"]["behaviors"] = behaviors
    found = lookup(make(reply(body)), MD5)
    assert found.tags == tuple(f"b{i:02}" for i in range(29, 19, -1))
    assert found.label == "B29"


# -- not found, errors ----------------------------------------------------------------------


@pytest.mark.parametrize("text", [MD5, "cisco.com", "72.163.4.185", "http://x.example/"])
def test_no_submission_and_no_entity_is_not_found_and_cached(text: str) -> None:
    calls: list[httpx.Request] = []
    adapter = make(routes(calls))

    async def twice() -> list[Any]:
        return [await adapter.enrich(Observable.parse(text)) for _ in range(2)]

    assert run(adapter, twice) == [None, None]
    searched = [r.url.path.rsplit("/", 1)[-1] for r in calls]
    expected = {MD5: "artifacts", "cisco.com": "ips", "72.163.4.185": "domains"}.get(text)
    assert sorted(searched) == sorted(["submissions", *([expected] if expected else [])])


def test_without_related_one_request_per_lookup() -> None:
    calls: list[httpx.Request] = []
    adapter = make(routes(calls), related=False)
    for text in (MD5, "cisco.com", "72.163.4.185"):
        assert lookup(adapter, text) is None
    assert [r.url.path for r in calls] == ["/api/v2/search/submissions"] * 3


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"error": {"code": 404}}, "application/json"),
        ("<html>Not Found</html>", "text/html"),
    ],
)
def test_a_404_is_an_error(body: Any, content_type: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        content = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(404, content=content, headers={"content-type": content_type})

    with pytest.raises(EnrichmentError, match="HTTP 404") as caught:
        lookup(make(handler), MD5)
    assert "is base_url right?" in caught.value.message


# -- the entity searches: IP addresses, domains, artifacts ----------------------------------


def test_a_domain_gets_the_addresses_it_resolved_to() -> None:
    seen: list[httpx.Request] = []
    handler = routes(
        seen,
        submissions=payload("threatgrid_v2_search_submissions.json"),
        ips=payload("threatgrid_v2_search_ips.json"),
    )
    found = lookup(make(handler), "cisco.com")
    assert found.details["ips"] == ["72.163.4.185"]
    assert found.details["relation"] == "associated"
    by_path = {r.url.path: r for r in seen}
    assert set(by_path) == {"/api/v2/search/submissions", "/api/v2/search/ips"}
    entity = by_path["/api/v2/search/ips"]
    assert dict(entity.url.params) == {"term": "domain", "query": "cisco.com"}
    assert entity.headers["authorization"] == f"Bearer {KEY}"


def test_an_address_gets_the_domains_that_resolved_to_it() -> None:
    seen: list[httpx.Request] = []
    found = lookup(make(routes(seen, domains=DOMAINS)), "72.163.4.185")
    # no submission, but the sandbox saw it: a finding that says so
    assert isinstance(found, Reputation)
    assert (found.verdict, found.score, found.link) == (Verdict.UNKNOWN, None, None)
    assert found.details == {
        "relation": "observed",
        "submissions": 0,
        "domains": ["cisco.com", "www.cisco.com"],
    }
    [entity] = [r for r in seen if r.url.path == "/api/v2/search/domains"]
    assert dict(entity.url.params) == {"term": "ip", "query": "72.163.4.185"}


def test_a_hash_never_submitted_but_seen_as_an_artifact() -> None:
    seen: list[httpx.Request] = []
    found = lookup(
        make(routes(seen, artifacts=payload("threatgrid_v2_search_artifacts.json"))), MD5
    )
    assert isinstance(found, Reputation)
    assert found.verdict is Verdict.UNKNOWN
    assert found.details == {
        "relation": "observed",
        "submissions": 0,
        "artifacts": ["a2ed6cb1653b0fa64b2f53aedaafa7ea98ff895cbaee1da32bbdba6ad80587aa"],
    }
    assert [r.url.path for r in seen] == ["/api/v2/search/submissions", "/api/v2/search/artifacts"]
    assert dict(seen[1].url.params) == {"term": "md5", "query": MD5}


def test_a_submitted_hash_needs_no_artifact_search() -> None:
    seen: list[httpx.Request] = []
    handler = routes(seen, submissions=payload("threatgrid_v2_search_submissions.json"))
    assert lookup(make(handler), SHA1).details["relation"] == "sample"
    assert [r.url.path for r in seen] == ["/api/v2/search/submissions"]


def test_entity_searches_carry_the_key_as_a_parameter_with_query_auth() -> None:
    seen: list[httpx.Request] = []
    lookup(make(routes(seen), auth="query"), "cisco.com")
    assert {r.url.params["api_key"] for r in seen} == {KEY}
    assert all("authorization" not in r.headers for r in seen)


@pytest.mark.parametrize(
    "body",
    [
        payload("threatgrid_v2_search_submissions.json"),  # items without a result
        {"data": {"items": None}},
        {"data": {"items": [{"result": 5}]}},
        [],
    ],
)
def test_an_entity_answer_of_another_shape_is_an_error(body: Any) -> None:
    with pytest.raises(EnrichmentError, match="not an entity search answer"):
        lookup(make(routes(ips=body)), "cisco.com")


def test_each_entity_search_takes_a_token_of_its_own() -> None:
    seen: list[httpx.Request] = []
    adapter = make(routes(seen), rate="1/min", timeout=30, api_key=f"{KEY}-one-a-minute")
    with pytest.raises(EnrichmentError, match="skipped: rate limit, next slot in 60 s") as caught:
        lookup(adapter, "cisco.com")  # the submission search took the minute's token
    assert caught.value.skipped is True
    assert [r.url.path for r in seen] == ["/api/v2/search/submissions"]


def test_an_entity_search_error_fails_the_lookup() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ips"):
            return httpx.Response(403, json={"error": {"message": "not allowed"}})
        return httpx.Response(200, json=NO_ITEMS)

    with pytest.raises(EnrichmentError, match="GET search/ips: HTTP 403"):
        lookup(make(handler), "cisco.com")


@pytest.mark.parametrize(
    "name", ["threatgrid_v2_search_ips.json", "threatgrid_v3_user_rate_limit.json"]
)
def test_another_endpoints_answer_is_an_enrichment_error(name: str) -> None:
    with pytest.raises(EnrichmentError, match="not a submission search answer") as caught:
        lookup(make(reply(payload(name))), MD5)
    assert (caught.value.adapter, caught.value.subject) == ("threatgrid", f"md5:{MD5}")


def test_malformed_json_is_an_enrichment_error() -> None:
    adapter = make(lambda request: httpx.Response(200, content=b'{"data": {"items": [}'))
    with pytest.raises(EnrichmentError, match="not JSON") as caught:
        lookup(adapter, MD5)
    assert (caught.value.adapter, caught.value.subject) == ("threatgrid", f"md5:{MD5}")


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("auth", ["header", "query"])
def test_a_refused_key_never_shows(
    status: int, auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"api_version": 2, "error": {"code": status, "message": f"bad key {KEY}"}}
    caplog.set_level(logging.DEBUG)
    with pytest.raises(EnrichmentError, match=f"HTTP {status}") as caught:
        lookup(make(reply(body, status), auth=auth), MD5)
    error = caught.value
    assert (error.adapter, error.subject) == ("threatgrid", f"md5:{MD5}")
    assert "threatgrid" in str(error)
    assert MD5 in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    assert KEY not in caplog.text
    assert caplog.records  # httpx logged the request, redacted


def test_query_auth_sends_the_key_as_a_parameter_and_redacts_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=payload("threatgrid_v2_search_submissions.json"))

    caplog.set_level(logging.DEBUG)
    found = lookup(make(handler, auth="query"), MD5)
    assert found.score == 60
    [request] = requests
    assert request.url.params["api_key"] == KEY
    assert "authorization" not in request.headers
    assert KEY not in caplog.text
    assert "api_key=***" in caplog.text


def test_a_second_lookup_comes_from_the_cache() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json=payload("threatgrid_v2_search_submissions.json"))

    adapter = make(handler)

    async def twice() -> tuple[Any, Any]:
        subject = Observable.parse(SHA256)
        return await adapter.enrich(subject), await adapter.enrich(subject)

    first, second = run(adapter, twice)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert attrs.evolve(second, from_cache=False) == first
    assert len(calls) == 1
    assert adapter.stats()["cache_hits"] == 1


# -- what it accepts, how it is built -------------------------------------------------------


def test_accepts() -> None:
    adapter = make(reply({}))
    for text in (MD5, SHA1, SHA256, "72.163.4.185", "2001:4860::8888", "cisco.com", "http://x.io/"):
        assert adapter.accepts(Observable.parse(text)), text
    for text in ("10.1.2.3", "fe80::1", "http://192.168.1.1/a", "bob@example.com", "a.exe"):
        assert not adapter.accepts(Observable.parse(text)), text
    assert not adapter.accepts(Host(name="ws-042"))
    assert not adapter.accepts(User(name="bdoe"))
    hashes = make(reply({}), kinds=["md5", "sha256"])
    assert hashes.accepts(Observable.parse(MD5))
    assert not hashes.accepts(Observable.parse(SHA1))
    assert not hashes.accepts(Observable.parse("cisco.com"))


def test_the_portal_follows_the_base_url() -> None:
    body = payload("threatgrid_v2_search_submissions.json")
    eu = make(reply(body), base_url="https://panacea.threatgrid.eu/api/v2/")
    assert lookup(eu, MD5).link == f"https://panacea.threatgrid.eu/mask/samples/{SAMPLE}"
    mine = make(reply(body), portal_url="https://tg.example.org/")
    assert lookup(mine, MD5).link == f"https://tg.example.org/mask/samples/{SAMPLE}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth": "basic"}, "auth must be header or query"),
        ({"malicious": 40}, "suspicious <= malicious"),
        ({"suspicious": 0}, "1 <= suspicious"),
        ({"malicious": 101}, "malicious <= 100"),
        ({"samples": 0}, "samples must be 1 to 100"),
        ({"associated": "bad"}, "associated must be one of"),
        ({"kinds": ["email"]}, "cannot look up 'email'"),
        ({"api_key": None}, "an API key is needed"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ThreatGrid(**{"api_key": KEY, **options})


@pytest.mark.parametrize("auth", ["header", "query"])
def test_conformance(auth: str) -> None:
    adapter = make(reply(payload("threatgrid_v2_search_submissions.json")), auth=auth)
    check_enricher(adapter, secrets=[KEY])
    assert KEY not in repr(adapter)
    asyncio.run(adapter.aclose())


def test_conformance_when_the_key_is_refused() -> None:
    adapter = make(reply({"error": {"message": f"no such key {KEY}"}}, 401), auth="query")
    check_enricher(adapter, secrets=[KEY])
    asyncio.run(adapter.aclose())


def test_built_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIDO_TEST_TG_KEY", KEY)
    path = tmp_path / "fido.toml"
    path.write_text(
        """
[[enrichers]]
type = "threatgrid"
name = "tg-eu"
api_key_env = "FIDO_TEST_TG_KEY"
base_url = "https://panacea.threatgrid.eu/api/v2/"
auth = "query"
malicious = 80
associated = "unknown"
kinds = ["md5", "sha1", "sha256"]
timeout = "20s"
""",
        encoding="utf-8",
    )
    with fido.load_config(path).build() as pipeline:
        [enricher] = pipeline.enrichers
        assert isinstance(enricher, ThreatGrid)
        assert enricher.name == "tg-eu"
        assert (enricher.auth, enricher.malicious, enricher.suspicious) == ("query", 80, 50)
        assert enricher.associated is Verdict.UNKNOWN
        assert enricher.http.base_url == "https://panacea.threatgrid.eu/api/v2/"
        assert enricher.portal_url == "https://panacea.threatgrid.eu"
        assert enricher.timeout == 20.0
        assert KEY not in repr(enricher)


def test_the_configuration_never_holds_the_key(tmp_path: Path) -> None:
    path = tmp_path / "fido.toml"
    path.write_text(f'[[enrichers]]\ntype = "threatgrid"\napi_key = "{KEY}"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="api_key_env") as caught:
        fido.load_config(path)
    assert KEY not in str(caught.value)
