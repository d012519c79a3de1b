"""`HttpClient` and `HttpEnricher` over `httpx.MockTransport`: retries, guards, secrets."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import certifi
import httpx
import pytest

import fido
from fido import ConfigurationError, EnrichmentError, Observable, Reputation, Verdict
from fido.adapters._guards import Breaker, RateLimit
from fido.adapters._http import HttpClient, HttpEnricher, HttpError, retry_after, subject_text

if TYPE_CHECKING:
    from pathlib import Path

    from fido._findings import Subject
    from fido.adapters._http_wire import Wire, WireTransport

T = TypeVar("T")
KEY = "probe-Key-0123456789abcdef"
_serial = itertools.count(1)


def unique_key() -> str:
    """A key of the test's own: buckets are shared per key, so tests do not meet."""
    return f"{KEY}-{next(_serial)}"


# -- a scripted service -------------------------------------------------------------------

Step = tuple[int, Any, dict[str, str]] | Exception | Callable[[httpx.Request], Any]


def answer(status: int, body: Any = None, **headers: str) -> Step:
    return (status, body, {k.replace("_", "-"): v for k, v in headers.items()})


class Script:
    """Answers with `steps` in turn (the last one repeats) and records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = steps
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, Exception):
            raise step
        if callable(step):
            result = step(request)
            return await result if isinstance(result, Awaitable) else result  # type: ignore[no-any-return]
        status, body, headers = step
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    @property
    def count(self) -> int:
        return len(self.requests)


class Sleeps:
    """Stands in for the retries' `asyncio.sleep`: records, and sleeps only if told."""

    def __init__(self, *, real: bool = False) -> None:
        self.real = real
        self.values: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.values.append(seconds)
        await asyncio.sleep(seconds if self.real else 0)


def client(script: Script, sleeps: Sleeps | None = None, **options: Any) -> HttpClient:
    options.setdefault("backoff", 0.01)
    made = HttpClient(
        base_url="https://intel.example/api",
        headers={"x-probe-key": KEY},
        secrets=(KEY,),
        transport=httpx.MockTransport(script),
        **options,
    )
    made._sleep = sleeps if sleeps is not None else Sleeps()
    return made


def run(owner: HttpClient | HttpEnricher, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` on a fresh loop, then close `owner` on that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await owner.aclose()

    return asyncio.run(main())


def get(http: HttpClient, path: str = "lookup/x", **kwargs: Any) -> httpx.Response | None:
    return run(http, lambda: http.request("GET", path, **kwargs))


def failure(http: HttpClient, path: str = "lookup/x", **kwargs: Any) -> HttpError:
    with pytest.raises(HttpError) as caught:
        get(http, path, **kwargs)
    return caught.value


# -- an enricher on the base --------------------------------------------------------------


class Probe(HttpEnricher):
    """The smallest HTTP enricher: `GET lookup/{value}` answers `{"verdict": ...}`."""

    service: ClassVar[str] = "probe"
    default_base_url: ClassVar[str] = "https://intel.example/api/"
    key_in_query: ClassVar[bool] = False

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {} if self.key_in_query else {"x-probe-key": api_key}

    def accepts(self, subject: Subject) -> bool:
        return isinstance(subject, Observable)

    def is_not_found(self, response: httpx.Response) -> bool:
        try:
            return bool(response.json() == {"error": {"code": "NotFoundError"}})
        except ValueError:
            return False

    async def fetch(self, subject: Subject) -> Reputation | None:
        assert isinstance(subject, Observable)
        params = {"key": self._key} if self.key_in_query else None
        body = await self.http.get_json(f"lookup/{subject.value}", params=params)
        if body is None:
            return None
        if body.get("raise"):
            raise RuntimeError(f"unexpected state {body['raise']}")
        if body.get("refuse"):
            raise EnrichmentError("refused", adapter=self.name, subject=subject.key)
        return Reputation(source=self.name, verdict=body["verdict"])


class QueryProbe(Probe):
    key_in_query: ClassVar[bool] = True


def probe(script: Script, sleeps: Sleeps | None = None, **options: Any) -> Probe:
    cls = options.pop("cls", Probe)
    options.setdefault("api_key", unique_key())
    options.setdefault("max_retry_time", 5)
    adapter: Probe = cls(transport=httpx.MockTransport(script), **options)
    adapter.http.backoff = 0.01
    adapter.http._sleep = sleeps if sleeps is not None else Sleeps()
    return adapter


def lookup(adapter: HttpEnricher, *texts: str) -> list[Any]:
    """Look each subject up in turn, on one loop; errors are returned, not raised."""

    async def body() -> list[Any]:
        results: list[Any] = []
        for text in texts:
            try:
                results.append(await adapter.enrich(Observable.parse(text)))
            except EnrichmentError as exc:
                results.append(exc)
        return results

    return run(adapter, body)


MALICIOUS = answer(200, {"verdict": "malicious"})
BENIGN = answer(200, {"verdict": "benign"})


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retried_statuses_then_success(status: int) -> None:
    script, sleeps = Script(answer(status, {"error": "later"}), BENIGN), Sleeps()
    retried: list[BaseException | None] = []
    http = client(script, sleeps, on_retry=retried.append)
    response = get(http)
    assert response is not None
    assert response.json() == {"verdict": "benign"}
    assert (script.count, http.requests, http.retries, len(sleeps.values)) == (2, 2, 1, 1)
    [error] = retried
    assert isinstance(error, HttpError)
    assert (error.status, error.retryable) == (status, True)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.PoolTimeout("no connection free"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_are_retried(error: Exception) -> None:
    script = Script(error, BENIGN)
    http = client(script)
    assert get(http) is not None
    assert (script.count, http.retries) == (2, 1)


@pytest.mark.parametrize("status", [400, 401, 403, 405, 409, 418, 422])
def test_other_4xx_are_not_retried(status: int) -> None:
    script = Script(answer(status, {"error": {"code": "NopeError", "message": "no"}}), BENIGN)
    http = client(script)
    error = failure(http)
    assert str(error) == f"GET lookup/x: HTTP {status} (NopeError)"
    assert (error.status, error.retryable, error.retry_after) == (status, False, None)
    assert error.breaks is (status in (401, 403))
    assert (script.count, http.retries) == (1, 0)


def test_404_is_not_found_and_not_retried() -> None:
    script = Script(answer(404, {"error": {"code": "NotFoundError"}}))
    http = client(script)
    assert get(http) is None
    assert script.count == 1
    assert failure(client(script), absent=()).status == 404  # unless 404 means an error
    assert script.count == 2


def test_other_success_statuses_are_asked_for() -> None:
    script = Script(answer(201, {"id": 1}))
    assert failure(client(script)).status == 201  # not in ok: an error, not retried
    response = get(client(script), ok=(200, 201))
    assert response is not None
    assert response.status_code == 201
    assert response.elapsed.total_seconds() >= 0  # as httpx's client sets it
    assert script.count == 2


def test_attempts_are_bounded() -> None:
    script, sleeps = Script(answer(503, {"error": {"code": "TransientError"}})), Sleeps()
    http = client(script, sleeps, max_attempts=3)
    error = failure(http)
    assert str(error) == "GET lookup/x: HTTP 503 (TransientError)"
    assert (script.count, http.retries, len(sleeps.values)) == (3, 2, 2)
    single = client(Script(answer(503)), max_attempts=1)
    failure(single)
    assert single.requests == 1


def test_total_time_is_bounded() -> None:
    script = Script(answer(503))
    sleeps = Sleeps(real=True)
    http = client(script, sleeps, max_attempts=1000, max_retry_time=0.3, backoff=0.05)
    started = time.monotonic()
    failure(http)
    elapsed = time.monotonic() - started
    assert 0.29 <= elapsed < 1.5
    assert sum(sleeps.values) <= 0.3 + 1e-6
    assert 2 <= script.count < 1000


def test_backoff_is_exponential_with_full_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    monkeypatch.setattr("fido.adapters._http_client.random.uniform", highest)
    sleeps = Sleeps()
    failure(client(Script(answer(502)), sleeps, max_attempts=5, backoff=0.5))
    assert bounds[:4] == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 4.0)]
    assert sleeps.values == [0.5, 1.0, 2.0, 4.0]


def test_jitter_stays_within_its_bounds() -> None:
    sleeps = Sleeps()
    for _ in range(10):
        failure(client(Script(answer(500)), sleeps, max_attempts=5, backoff=0.1))
    assert len(sleeps.values) == 40
    for attempt, value in zip(itertools.cycle(range(4)), sleeps.values, strict=False):
        assert 0 <= value <= 0.1 * 2**attempt
    assert len(set(sleeps.values)) > 30  # random, not fixed


def test_a_wait_never_exceeds_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fido.adapters._http_client.random.uniform", lambda low, high: high)
    sleeps = Sleeps(real=True)
    failure(client(Script(answer(500)), sleeps, max_attempts=10, backoff=0.2, max_retry_time=0.3))
    assert sleeps.values[0] == 0.2
    assert sleeps.values[1] < 0.101  # 0.4 s of back-off, capped at what is left of the 0.3
    assert sum(sleeps.values) <= 0.3


# -- Retry-After --------------------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured() -> None:
    script, sleeps = Script(answer(429, None, retry_after="7"), BENIGN), Sleeps()
    assert get(client(script, sleeps)) is not None
    assert sleeps.values == [7.0]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    script, sleeps = Script(answer(503, None, retry_after=when), BENIGN), Sleeps()
    assert get(client(script, sleeps)) is not None
    [slept] = sleeps.values
    assert 3.5 < slept <= 5.0  # the date has whole seconds


def test_a_retry_after_beyond_the_time_left_gives_up_at_once() -> None:
    script, sleeps = Script(answer(429, {"error": "slow down"}, retry_after="60"), BENIGN), Sleeps()
    error = failure(client(script, sleeps, max_retry_time=30))
    assert (error.status, error.retry_after) == (429, 60.0)
    assert (script.count, sleeps.values) == (1, [])  # not asked again before it said


def test_retry_after_is_ignored_on_a_status_not_retried() -> None:
    error = failure(client(Script(answer(400, None, retry_after="5"))))
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: at once
        ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0),  # RFC 850, still allowed
        ("Wed, 21 Oct 2015 07:28:10 -0000", 10.0),  # no zone: read as UTC
    ],
)
def test_retry_after_header(header: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert retry_after(header, now=now) == expected


# -- throttle, headers, TLS -----------------------------------------------------------------


def test_each_retry_passes_the_throttle_first() -> None:
    calls: list[int] = []
    script = Script(answer(503), answer(503), BENIGN)

    async def throttle() -> None:
        calls.append(script.count)

    assert get(client(script, throttle=throttle)) is not None
    assert calls == [1, 2]  # before the second and the third request, not the first


def test_requests_carry_the_user_agent_and_the_headers() -> None:
    script = Script(BENIGN)
    get(client(script), "lookup/x", params={"limit": 1})
    [request] = script.requests
    assert request.headers["user-agent"] == f"fido/{fido.__version__}"
    assert request.headers["x-probe-key"] == KEY
    assert request.url.path == "/api/lookup/x"
    assert request.url.params["limit"] == "1"


def test_configuration_errors() -> None:
    assert repr(HttpClient(base_url="https://intel.example/api")) == (
        "HttpClient('https://intel.example/api/')"
    )
    with pytest.raises(ConfigurationError, match="base_url: expected an http"):
        HttpClient(base_url="ftp://intel.example/")
    with pytest.raises(ConfigurationError, match="at least 1"):
        HttpClient(base_url="https://intel.example/", concurrency=0)
    with pytest.raises(ConfigurationError, match="at least 1"):
        HttpClient(base_url="https://intel.example/", max_attempts=0)


def test_a_ca_file_that_cannot_be_read_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigurationError, match=r"ca_file: cannot load .*missing\.pem"):
        HttpClient(base_url="https://intel.example/", ca_file=str(missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match="ca_file"):
        Probe(api_key=KEY, ca_file=str(garbage))
    ok = HttpClient(base_url="https://intel.example/", ca_file=certifi.where())
    assert isinstance(ok._verify, ssl.SSLContext)
    assert ok._verify.verify_mode is ssl.CERT_REQUIRED


def test_tls_is_verified_by_default_and_every_connection_shares_one_context() -> None:
    http = HttpClient(base_url="https://intel.example/", timeout=2.5, concurrency=20)

    async def layout() -> tuple[httpx.AsyncClient, WireTransport, Wire, Wire]:
        client, _ = http._setup()
        transport = http._wire
        assert transport is not None
        wire = transport._wire(("https", "intel.example", 443, None))
        return client, transport, wire, transport._wire(("https", "cdn.example", 443, None))

    client, transport, wire, other = run(http, layout)
    assert isinstance(http._verify, ssl.SSLContext)
    assert http._verify.verify_mode is ssl.CERT_REQUIRED
    assert http._verify.check_hostname is True
    assert wire._ssl is http._verify
    assert other._ssl is http._verify
    assert (wire.timeout, wire.max_idle, wire.keepalive_expiry) == (2.5, 20, 5.0)
    # one httpx.AsyncClient, fido's connections its transport
    assert client._transport is transport
    assert client.timeout == httpx.Timeout(2.5, pool=None)
    assert client.headers["user-agent"] == f"fido/{fido.__version__}"
    assert client.follow_redirects is False
    assert client.base_url == "https://intel.example/"


# -- secrets ------------------------------------------------------------------------------

ODD_KEY = "k3y/with+special=chars"


def test_a_key_in_the_url_never_shows_in_an_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    http = HttpClient(
        base_url="https://intel.example/api/",
        secrets=(ODD_KEY,),
        transport=httpx.MockTransport(refuse),
        max_attempts=2,
        backoff=0.001,
    )
    error = failure(http, params={"key": ODD_KEY})
    assert "ConnectError: cannot reach https://intel.example/api/lookup/x?key=***" in str(error)
    assert "k3y" not in str(error)
    assert "retrying" in caplog.text
    assert "k3y" not in caplog.text


def test_a_key_in_an_error_body_never_shows() -> None:
    body = {"error": {"message": f"the key {KEY} is wrong"}}
    error = failure(client(Script(answer(401, body))))
    assert str(error) == "GET lookup/x: HTTP 401 (the key *** is wrong)"


def test_enrichment_errors_name_the_adapter_and_subject_never_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    adapter = probe(Script(refuse), cls=QueryProbe, api_key=ODD_KEY, name="intel", max_attempts=2)
    [error] = lookup(adapter, "8.8.8.8")
    assert isinstance(error, EnrichmentError)
    assert (error.adapter, error.subject, error.skipped) == ("intel", "ipv4:8.8.8.8", False)
    assert str(error).endswith("(adapter=intel, subject='ipv4:8.8.8.8')")
    for text in (str(error), repr(error), repr(adapter), caplog.text):
        assert "k3y" not in text
    assert "?key=***" in str(error)


# -- the enricher: errors -------------------------------------------------------------------


def test_malformed_json_is_an_error_and_not_retried() -> None:
    script = Script(answer(200, b'{"verdict": "mali'))
    adapter = probe(script)
    [error] = lookup(adapter, "8.8.8.8")
    assert isinstance(error, EnrichmentError)
    assert "lookup/8.8.8.8: the answer is not JSON" in error.message
    assert script.count == 1
    assert adapter.breaker.state == "closed"


def test_an_odd_answer_is_an_error() -> None:
    adapter = probe(Script(answer(200, {"verdict": "so-so"}), answer(200, {"no": "verdict"})))
    first, second = lookup(adapter, "8.8.8.8", "8.8.4.4")
    assert isinstance(first, EnrichmentError)
    assert first.message.startswith("unexpected answer: InvalidRecord: verdict is one of")
    assert isinstance(second, EnrichmentError)
    assert second.message == "unexpected answer: KeyError: 'verdict'"
    assert adapter.stats()["failures"] == 2


def test_any_other_error_of_a_subclass_is_wrapped() -> None:
    adapter = probe(Script(answer(200, {"raise": KEY})), api_key=KEY)
    [error] = lookup(adapter, "8.8.8.8")
    assert isinstance(error, EnrichmentError)
    assert error.message == "failed: RuntimeError: unexpected state ***"


def test_an_enrichment_error_of_a_subclass_passes_as_it_is() -> None:
    adapter = probe(Script(answer(200, {"refuse": True})), breaker_failures=1)
    [error] = lookup(adapter, "8.8.8.8")
    assert isinstance(error, EnrichmentError)
    assert (error.message, error.subject) == ("refused", "ipv4:8.8.8.8")
    assert adapter.stats()["failures"] == 1
    assert adapter.breaker.state == "closed"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"error": {"code": "NotAllowedError", "message": "no"}}, " (NotAllowedError)"),
        ({"error": {"message": "quota spent"}}, " (quota spent)"),
        ({"errors": [{"detail": "bad indicator"}]}, " (bad indicator)"),
        ({"errors": [{"message": "bad"}]}, " (bad)"),
        ({"message": "Too many requests."}, " (Too many requests.)"),
        ({"error": "invalid"}, " (invalid)"),
        ({"error": {"code": 1042}}, " (1042)"),
        ({"error": ["x"]}, ""),
        ({"detail": "nothing known"}, ""),
        ([1, 2], ""),
        (b"<html>Bad gateway</html>", ""),
        ({"error": {"message": "x" * 300}}, " (" + "x" * 200 + ")"),
    ],
)
def test_the_reason_in_an_error_body(body: Any, reason: str) -> None:
    error = failure(client(Script(answer(409, body))))
    assert str(error) == f"GET lookup/x: HTTP 409{reason}"


def test_a_body_that_cannot_be_decoded_is_an_error() -> None:
    broken = answer(200, b"not gzip at all", content_encoding="gzip")
    script = Script(broken)
    [error] = lookup(probe(script), "8.8.8.8")
    assert isinstance(error, EnrichmentError)
    assert "DecodingError" in error.message
    assert script.count == 1


# -- the enricher: cache, single flight ------------------------------------------------------


def test_findings_say_whether_they_came_from_the_cache_and_when_fetched() -> None:
    script = Script(MALICIOUS)
    adapter = probe(script)
    before = datetime.now(UTC)
    first, second = lookup(adapter, "8.8.8.8", "8.8.8.8")
    after = datetime.now(UTC)
    assert isinstance(first, Reputation)
    assert isinstance(second, Reputation)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert first.fetched_at == second.fetched_at  # the age of a cached answer shows
    assert first.fetched_at is not None
    assert before <= first.fetched_at <= after
    age = second.age(after + timedelta(minutes=5))
    assert age is not None
    assert timedelta(minutes=5) <= age < timedelta(minutes=6)
    assert script.count == 1


def test_not_found_is_cached_and_errors_are_not() -> None:
    script = Script(answer(404, {"error": {"code": "NotFoundError"}}))
    adapter = probe(script, max_attempts=1)
    assert lookup(adapter, "8.8.8.8", "8.8.8.8") == [None, None]
    assert script.count == 1

    failing = Script(answer(500), BENIGN)
    adapter = probe(failing, max_attempts=1)
    first, second, third = lookup(adapter, "8.8.8.8", "8.8.8.8", "8.8.8.8")
    assert isinstance(first, EnrichmentError)
    assert isinstance(second, Reputation)
    assert (second.from_cache, third.from_cache) == (False, True)
    assert failing.count == 2


def test_the_cache_ttl_is_set_per_verdict() -> None:
    adapter = probe(Script(BENIGN), cache_ttl={"malicious": "2d", "unknown": 60, "missing": "5m"})
    assert adapter.cache.ttls["malicious"] == 172800.0
    assert (adapter.cache.ttls["unknown"], adapter.cache.ttls["missing"]) == (60.0, 300.0)
    with pytest.raises(ConfigurationError, match="cache_ttl: unknown verdict 'evil'"):
        probe(Script(BENIGN), cache_ttl={"evil": 5})
    with pytest.raises(ConfigurationError, match=r"cache_ttl\.benign"):
        probe(Script(BENIGN), cache_ttl={"benign": "forever"})


def test_concurrent_lookups_of_one_subject_share_one_request() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.02)
        return httpx.Response(200, json={"verdict": "malicious"})

    script = Script(slow)
    adapter = probe(script)
    subject = Observable.parse("8.8.8.8")

    async def body() -> list[Any]:
        return list(await asyncio.gather(*(adapter.enrich(subject) for _ in range(20))))

    results = run(adapter, body)
    assert script.count == 1
    assert all(r == results[0] and r.verdict is Verdict.MALICIOUS for r in results)
    stats = adapter.stats()
    assert (stats["lookups"], stats["requests"], stats["cache_hits"]) == (20, 1, 0)


def test_a_lookup_cancelled_by_its_time_limit_does_not_fail_the_others() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"verdict": "benign"})

    script = Script(slow)
    adapter = probe(script)
    subject = Observable.parse("8.8.8.8")

    async def body() -> tuple[Any, Any]:
        hurried = asyncio.ensure_future(asyncio.wait_for(adapter.enrich(subject), 0.01))
        await asyncio.sleep(0)
        patient = asyncio.ensure_future(adapter.enrich(subject))
        results = await asyncio.gather(hurried, patient, return_exceptions=True)
        return results[0], results[1]

    hurried, patient = run(adapter, body)
    assert isinstance(hurried, TimeoutError)
    assert isinstance(patient, Reputation)
    assert patient.verdict is Verdict.BENIGN
    assert script.count == 2


def test_a_lookup_on_a_second_event_loop_works() -> None:
    script = Script(BENIGN)
    adapter = probe(script)
    first = asyncio.run(adapter.enrich(Observable.parse("8.8.8.8")))  # not closed: its loop ends
    loops: list[Any] = [adapter.http._loop]
    second, again = lookup(adapter, "8.8.4.4", "8.8.8.8")
    loops.append(adapter.http._loop)
    assert isinstance(first, Reputation)
    assert isinstance(second, Reputation)
    assert not second.from_cache
    assert isinstance(again, Reputation)
    assert again.from_cache  # the cache outlives loops
    assert script.count == 2
    assert loops[0] is not None
    assert loops[0] is not loops[1]  # new clients for the new loop


# -- the enricher: rate limit --------------------------------------------------------------


def test_a_429_pauses_every_lookup_with_the_key() -> None:
    key = unique_key()
    script = Script(answer(429, {"error": {"code": "QuotaExceededError"}}, retry_after="0.2"))
    first = probe(script, api_key=key, max_attempts=1)
    second = probe(Script(BENIGN), api_key=key)
    assert first.bucket is second.bucket
    [error] = lookup(first, "8.8.8.8")
    assert isinstance(error, EnrichmentError)
    assert error.message == "GET lookup/8.8.8.8: HTTP 429 (QuotaExceededError)"
    started = time.monotonic()
    [found] = lookup(second, "8.8.4.4")
    assert isinstance(found, Reputation)
    assert time.monotonic() - started >= 0.15  # it waited for the pause, it did not fail
    assert second.stats()["rate_waits"] == 1
    other = probe(Script(BENIGN))  # another key: not held back
    assert other.bucket is not first.bucket
    assert other.bucket.reserve() == 0.0


def test_a_429_without_retry_after_pauses_a_second() -> None:
    adapter = probe(Script(answer(429)), max_attempts=1)
    lookup(adapter, "8.8.8.8")
    assert 0.8 < adapter.bucket.reserve() <= 1.0


def test_each_retry_takes_a_token() -> None:
    script, sleeps = Script(answer(503), BENIGN), Sleeps()
    adapter = probe(script, sleeps, rate=RateLimit(((1.0, 0.1),)))  # one a tenth of a second
    started = time.monotonic()
    [found] = lookup(adapter, "8.8.8.8")
    assert isinstance(found, Reputation)
    assert time.monotonic() - started >= 0.09
    assert script.times[1] - script.times[0] >= 0.05  # the retry waited for its token
    assert adapter.bucket.waits == 1
    assert len(sleeps.values) == 1


def test_the_rate_is_set_per_adapter_and_credential() -> None:
    key = unique_key()
    limited = probe(Script(BENIGN), api_key=key, rate=["4/min", "500/day"])
    assert limited.bucket.limit.limits == ((4.0, 60.0), (500.0, 86400.0))
    again = probe(Script(BENIGN), api_key=key, rate=("4/min", "500/day"))
    assert again.bucket is limited.bucket
    assert probe(Script(BENIGN), api_key=unique_key(), rate="4/min").bucket is not limited.bucket
    with pytest.raises(ConfigurationError, match="rate"):
        probe(Script(BENIGN), rate="fast")


# -- the enricher: breaker ------------------------------------------------------------------


def test_the_breaker_opens_after_n_failures_and_skips(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(answer(503))
    adapter = probe(script, max_attempts=1, breaker_failures=3, breaker_cooldown="1m")
    results = lookup(adapter, "8.8.8.1", "8.8.8.2", "8.8.8.3", "8.8.8.4", "8.8.8.5")
    assert all(isinstance(r, EnrichmentError) for r in results)
    assert [r.skipped for r in results] == [False, False, False, True, True]
    skipped = results[3]
    assert skipped.message == "skipped: circuit open for 60 s more"
    assert (skipped.adapter, skipped.subject) == ("probe", "ipv4:8.8.8.4")
    assert script.count == 3  # no request while open
    stats = adapter.stats()
    assert (stats["breaker"], stats["failures"], stats["skipped"]) == ("open", 3, 2)


def test_half_open_one_trial_decides() -> None:
    clock = [0.0]
    script = Script(answer(500), answer(500), BENIGN)
    adapter = probe(script, max_attempts=1)
    adapter.breaker = Breaker(2, 30.0, clock=lambda: clock[0])
    first = lookup(adapter, "8.8.8.1", "8.8.8.2", "8.8.8.3")
    assert [getattr(r, "skipped", None) for r in first] == [False, False, True]
    clock[0] = 30.0
    assert adapter.breaker.state == "half-open"
    script.steps = (answer(500), BENIGN)
    script.requests.clear()
    trial, skipped = lookup(adapter, "8.8.8.4", "8.8.8.5")
    assert (trial.skipped, skipped.skipped) == (False, True)  # the trial failed: open again
    assert adapter.breaker.state == "open"
    clock[0] = 60.0
    found, more = lookup(adapter, "8.8.8.6", "8.8.8.7")
    assert isinstance(found, Reputation)
    assert isinstance(more, Reputation)
    assert adapter.breaker.state == "closed"
    assert adapter.breaker.opened == 2


def test_a_trial_cut_short_by_the_time_limit_lets_the_next_one_try() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        raise AssertionError("not reached")  # pragma: no cover

    clock = [0.0]
    script = Script(answer(500), hang, BENIGN)
    adapter = probe(script, max_attempts=1)
    adapter.breaker = Breaker(1, 30.0, clock=lambda: clock[0])

    async def body() -> Any:
        with pytest.raises(EnrichmentError):
            await adapter.enrich(Observable.parse("8.8.8.1"))
        clock[0] = 30.0
        with pytest.raises(TimeoutError):  # the pipeline's timeout cancels the trial
            await asyncio.wait_for(adapter.enrich(Observable.parse("8.8.8.2")), 0.02)
        return await adapter.enrich(Observable.parse("8.8.8.3"))

    found = run(adapter, body)
    assert isinstance(found, Reputation)
    assert adapter.breaker.state == "closed"


@pytest.mark.parametrize(
    ("status", "opens"),
    [(400, False), (404, True), (422, False), (401, True), (403, True), (500, True)],
)
def test_what_counts_towards_the_breaker(status: int, opens: bool) -> None:
    # (a 404 that is not the service's not-found answer: a wrong base_url)
    adapter = probe(Script(answer(status)), max_attempts=1, breaker_failures=1)
    lookup(adapter, "8.8.8.8")
    assert adapter.breaker.state == ("open" if opens else "closed")


def test_the_services_not_found_answer_does_not_count_towards_the_breaker() -> None:
    script = Script(answer(404, {"error": {"code": "NotFoundError"}}))
    adapter = probe(script, max_attempts=1, breaker_failures=1)
    assert lookup(adapter, "8.8.8.8") == [None]
    assert adapter.breaker.state == "closed"


def test_a_timeout_counts_towards_the_breaker() -> None:
    adapter = probe(Script(httpx.ReadTimeout("slow")), max_attempts=2, breaker_failures=1)
    [error] = lookup(adapter, "8.8.8.8")
    assert isinstance(error, EnrichmentError)
    assert error.message == "GET lookup/8.8.8.8: timed out after 10 s"
    assert adapter.stats()["retries"] == 1
    assert adapter.breaker.state == "open"


# -- stats ---------------------------------------------------------------------------------


def test_stats_figures() -> None:
    script = Script(
        answer(503),
        MALICIOUS,
        answer(404, {"error": {"code": "NotFoundError"}}),
        answer(400, {"error": {"code": "BadRequestError"}}),
    )
    adapter = probe(script)
    assert adapter.stats() == {
        "lookups": 0,
        "cache_hits": 0,
        "cache_hit_rate": 0.0,
        "requests": 0,
        "retries": 0,
        "failures": 0,
        "skipped": 0,
        "withheld": 0,
        "breaker": "closed",
        "rate_waits": 0,
        "rate_refused": 0,
    }
    results = lookup(adapter, "8.8.8.8", "8.8.8.8", "example.com", "example.com", "example.org")
    assert [type(r).__name__ for r in results] == [
        "Reputation",
        "Reputation",
        "NoneType",
        "NoneType",
        "EnrichmentError",
    ]
    assert adapter.stats() == {
        "lookups": 5,
        "cache_hits": 2,
        "cache_hit_rate": 0.4,
        "requests": 4,
        "retries": 1,
        "failures": 1,
        "skipped": 0,
        "withheld": 0,
        "breaker": "closed",
        "rate_waits": 0,
        "rate_refused": 0,
    }


def test_subject_text() -> None:
    assert subject_text(Observable.parse("8.8.8.8")) == "ipv4:8.8.8.8"
    assert subject_text(fido.Host(name="ws-042")) == "host:ws-042"
    assert subject_text(fido.User(name="bdoe")) == "user:bdoe"


def test_a_key_is_required_and_never_in_the_repr() -> None:
    with pytest.raises(ConfigurationError, match="probe: an API key is needed"):
        Probe()
    adapter = Probe(api_key=KEY, base_url="https://mirror.example/api")
    assert repr(adapter) == "Probe(name='probe', base_url='https://mirror.example/api/')"
    with pytest.raises(ConfigurationError, match="reliability"):
        Probe(api_key=KEY, reliability="Z")
    assert Probe(api_key=KEY, reliability="a").reliability.value == "A"


def test_acheck_looks_up_the_first_probe_the_service_accepts() -> None:
    script = Script(answer(200, {"verdict": "benign"}))
    adapter = probe(script)
    detail = run(adapter, adapter.acheck)
    assert detail.startswith("looked up ipv4:8.8.8.8 in ")
    assert detail.endswith(" ms: benign")
    assert [r.url.path for r in script.requests] == ["/api/lookup/8.8.8.8"]
    again = run(adapter, adapter.acheck)  # past the cache: a check asks the service
    assert again.endswith(" ms: benign")
    assert script.count == 2


def test_acheck_fails_on_a_refused_key_without_showing_it() -> None:
    adapter = probe(Script(answer(401, {"error": f"bad key {KEY}"})), api_key=KEY)
    with pytest.raises(EnrichmentError, match="401") as info:
        run(adapter, adapter.acheck)
    assert KEY not in str(info.value)


def test_acheck_without_an_accepted_probe_says_so() -> None:
    class UsersOnly(Probe):
        def accepts(self, subject: Subject) -> bool:
            return False

    adapter = probe(Script(answer(200, {})), cls=UsersOnly)
    assert run(adapter, adapter.acheck) == "no probe subject accepted: connectivity not tested"


# -- a 404 that is not the service's --------------------------------------------------------


def test_a_404_from_a_wrong_base_url_is_an_error_not_cached_and_fails_acheck() -> None:
    page = answer(404, b"<html><body>Not Found</body></html>", content_type="text/html")
    script = Script(page)
    adapter = probe(script, max_attempts=1)
    first, second = lookup(adapter, "8.8.8.8", "8.8.8.8")
    for error in (first, second):
        assert isinstance(error, EnrichmentError)
        assert error.skipped is False
        assert "HTTP 404" in error.message
        assert "is base_url right?" in error.message
    assert script.count == 2  # not cached as "not found"
    assert adapter.stats()["failures"] == 2
    with pytest.raises(EnrichmentError, match="not the service's not-found answer"):
        run(adapter, adapter.acheck)


# -- the rate limit: turns that do not come in time, turns given back ----------------------


def test_a_lookup_whose_turn_lies_beyond_its_timeout_is_skipped_at_once() -> None:
    script = Script(BENIGN)
    adapter = probe(script, rate="1/min", timeout=30)
    found, skipped = lookup(adapter, "8.8.8.8", "8.8.4.4")
    assert isinstance(found, Reputation)
    assert isinstance(skipped, EnrichmentError)
    assert skipped.skipped is True
    assert skipped.message == "skipped: rate limit, next slot in 60 s"
    assert (skipped.adapter, skipped.subject) == ("probe", "ipv4:8.8.4.4")
    assert script.count == 1
    stats = adapter.stats()
    assert (stats["skipped"], stats["failures"], stats["rate_refused"]) == (1, 0, 1)
    assert adapter.breaker.state == "closed"


def test_max_wait_bounds_the_wait_for_a_turn() -> None:
    adapter = probe(Script(BENIGN), rate="1/min", max_wait="10s")
    assert adapter.max_wait == 10.0
    _, skipped = lookup(adapter, "8.8.8.8", "8.8.4.4")
    assert isinstance(skipped, EnrichmentError)
    assert skipped.message == "skipped: rate limit, next slot in 60 s"
    with pytest.raises(ConfigurationError, match="max_wait"):
        probe(Script(BENIGN), max_wait="soon")


def test_the_timeout_set_after_construction_bounds_the_wait() -> None:
    adapter = probe(Script(BENIGN), rate="1/min")  # timeout 300: a minute's wait is fine
    adapter.timeout = 5.0  # as the configuration's `timeout` sets it
    _, skipped = lookup(adapter, "8.8.8.8", "8.8.4.4")
    assert isinstance(skipped, EnrichmentError)
    assert skipped.skipped is True


def test_cancelled_lookups_give_their_turns_back() -> None:
    """40 look-ups at once on 4 a minute, each cut short after half a second."""
    script = Script(BENIGN)
    adapter = probe(script, rate="4/min")

    async def one(n: int) -> str:
        try:
            await asyncio.wait_for(adapter.enrich(Observable.parse(f"{n:064x}")), 0.5)
        except TimeoutError:
            return "timeout"
        except EnrichmentError as exc:
            return "skipped" if exc.skipped else "failed"
        return "ok"

    async def body() -> list[str]:
        return list(await asyncio.gather(*(one(n) for n in range(40))))

    done = run(adapter, body)
    # 4 go now; 20 have a turn within the 300 s timeout and wait for it (cut short);
    # the 16 whose turn lies beyond it are skipped at once
    assert (done.count("ok"), done.count("timeout"), done.count("skipped")) == (4, 20, 16)
    assert script.count == 4
    assert adapter.bucket.released == 20
    assert adapter.bucket.reserve() <= 60.0  # the next one waits for the 4 used, not 599 s


# -- a spent quota, a long Retry-After ------------------------------------------------------


def test_a_retry_after_beyond_the_retry_time_skips_every_lookup_until_it_ends() -> None:
    script = Script(answer(429, {"error": {"code": "QuotaExceededError"}}, retry_after="86400"))
    adapter = probe(script)
    first, second, third = lookup(adapter, "8.8.8.8", "8.8.4.4", "1.1.1.1")
    for error in (first, second, third):
        assert isinstance(error, EnrichmentError)
        assert error.skipped is True
        assert error.message.startswith("skipped: quota exhausted until ")
    until = datetime.fromisoformat(first.message.rpartition(" ")[2])
    assert abs(until - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=1)
    assert script.count == 1  # no request until the quota resets
    assert adapter.breaker.state == "closed"
    assert adapter.stats()["skipped"] == 3


class QuotaProbe(Probe):
    """A service that says in its body when a spent quota resets."""

    def quota_reset(self, response: httpx.Response) -> float | None:
        body = response.json()
        return float(body["reset_in"]) if "reset_in" in body else None


def test_a_spent_quota_pauses_until_the_reset_and_teaches_no_rate() -> None:
    script = Script(answer(429, {"reset_in": 7200}), BENIGN)
    adapter = probe(script, cls=QuotaProbe)
    [skipped] = lookup(adapter, "8.8.8.8")
    assert isinstance(skipped, EnrichmentError)
    assert skipped.skipped is True
    assert skipped.message.startswith("skipped: quota exhausted until ")
    assert 7190 < adapter.bucket.paused_for() <= 7200
    assert adapter.bucket.learned is None  # a spent quota is no congestion
    assert script.count == 1  # not retried: the reset is beyond max_retry_time


def test_a_short_spent_quota_is_waited_for_and_retried() -> None:
    script, sleeps = Script(answer(429, {"reset_in": 0.05}), BENIGN), Sleeps()
    adapter = probe(script, sleeps, cls=QuotaProbe)
    [found] = lookup(adapter, "8.8.8.8")
    assert isinstance(found, Reputation)
    assert sleeps.values == [0.05]


# -- internal indicators never leave -----------------------------------------------------


def test_internal_indicators_are_never_sent(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(BENIGN)
    adapter = probe(script, internal_domains=["corp.example", ".Lab.Example.NET."])
    assert adapter.internal_domains == ("corp.example", "lab.example.net")
    internal = [
        "10.1.2.3",
        "fd00::1",
        "http://192.168.1.1/admin",
        "http://intranet/wiki",
        "corp.example",
        "ws-042.corp.example",
        "https://wiki.corp.example/page",
        "bdoe@corp.example",
        "build.lab.example.net",
    ]
    for text in internal:
        assert adapter.is_internal(Observable.parse(text)), text
    results = lookup(adapter, *internal)
    assert all(isinstance(r, EnrichmentError) and r.skipped for r in results)
    assert results[0].message == "skipped: an internal indicator is not sent to probe"
    assert script.count == 0
    assert adapter.stats()["withheld"] == len(internal)
    for text in (
        "corp.example.evil.example",
        "notcorp.example",
        "http://evil.example/corp.example",
    ):
        assert not adapter.is_internal(Observable.parse(text)), text
    assert not adapter.is_internal(fido.Host(name="ws-042"))


@pytest.mark.parametrize("value", [[""], ["a b"], ["http://corp.example"], [5], 5])
def test_internal_domains_must_be_domain_suffixes(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="internal_domains"):
        probe(Script(BENIGN), internal_domains=value)


def test_an_enricher_for_the_organisations_own_service_may_send_internal_ones() -> None:
    class Own(Probe):
        looks_up_internal = True

    script = Script(BENIGN)
    [found] = lookup(probe(script, cls=Own), "10.1.2.3")
    assert isinstance(found, Reputation)
    assert script.count == 1


# -- logs ---------------------------------------------------------------------------------


def test_verification_off_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fido")
    probe(Script(BENIGN), verify=False)
    assert "TLS certificate verification is off (verify = false)" in caplog.text
    caplog.clear()
    probe(Script(BENIGN), verify=False, base_url="http://127.0.0.1:9/")  # no TLS to check
    assert caplog.text == ""


def test_retry_records_carry_the_event_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fido.adapters.http")
    lookup(probe(Script(answer(503), BENIGN)), "8.8.8.8")
    [record] = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert hasattr(record, "event_id")
    assert hasattr(record, "incident_id")


# -- every external-intel enricher keeps internal indicators in --------------------------


def _builtin(cls_name: str, transport: httpx.MockTransport) -> HttpEnricher:
    from fido.adapters.enrichers.abuseipdb import AbuseIPDB
    from fido.adapters.enrichers.greynoise import GreyNoise
    from fido.adapters.enrichers.misp import MISP
    from fido.adapters.enrichers.otx import OTX
    from fido.adapters.enrichers.threatgrid import ThreatGrid
    from fido.adapters.enrichers.virustotal import VirusTotal

    classes: dict[str, type[HttpEnricher]] = {
        "virustotal": VirusTotal,
        "threatgrid": ThreatGrid,
        "otx": OTX,
        "abuseipdb": AbuseIPDB,
        "greynoise": GreyNoise,
        "misp": MISP,
    }
    options: dict[str, Any] = {"api_key": unique_key(), "internal_domains": ["corp.example"]}
    if cls_name == "misp":
        options["base_url"] = "https://misp.partner.example/"
    return classes[cls_name](transport=transport, **options)


INTERNAL = (
    "10.1.2.3",
    "192.168.0.7",
    "fd12:3456::1",
    "::ffff:10.0.0.1",
    "ws-042.corp.example",
    "http://10.1.2.3:8080/admin",
    "https://wiki.corp.example/x",
    "http://intranet/wiki",
    "bdoe@corp.example",
    "https://nas.local/share",  # on a special-use name (Observable.is_internal of the host)
    "bob@printer.home.arpa",
)


@pytest.mark.parametrize(
    "name", ["virustotal", "threatgrid", "otx", "abuseipdb", "greynoise", "misp"]
)
def test_no_external_enricher_sends_an_internal_indicator(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    special = (".local", ".home.arpa", ".internal")
    plain: Any = vars(Observable)["is_internal"]

    def is_internal(self: Observable) -> bool:  # special-use names, as the model rules them
        if self.kind is fido.ObservableKind.DOMAIN and self.value.endswith(special):
            return True
        return bool(plain.fget(self))

    monkeypatch.setattr(Observable, "is_internal", property(is_internal))
    script = Script(BENIGN)
    adapter = _builtin(name, httpx.MockTransport(script))

    async def body() -> list[Any]:
        results: list[Any] = []
        for text in INTERNAL:
            subject = Observable.parse(text)
            assert not adapter.accepts(subject), (name, text)
            try:
                results.append(await adapter.enrich(subject))
            except EnrichmentError as exc:
                results.append(exc)
        return results

    results = run(adapter, body)
    assert all(isinstance(r, EnrichmentError) and r.skipped for r in results), results
    assert script.count == 0
