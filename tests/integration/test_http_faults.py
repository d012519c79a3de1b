"""Faults over a real socket: `VirusTotal` against the fake service on 127.0.0.1.

Latency, 429 with `Retry-After`, 5xx, timeouts, resets, malformed JSON, the rate limit
shared by two adapters with one key, a proxy, and TLS (with a throw-away CA made by the
`openssl` command, when there is one).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import time
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs
import pytest
from tests.integration.http_server import FakeService, Reply, json_file

import fido
from fido import EnrichmentError, Observable, Reputation, Verdict
from fido.adapters.enrichers.virustotal import VirusTotal

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

T = TypeVar("T")
KEY = "vt-Key-over-the-wire-0123456789abcdef"
MALICIOUS = json_file("vt3_file_report_malicious_doc.json")
CLEAN = json_file("vt3_file_report_clean_com.json")
QUOTA = {"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}}


def sha256(n: int) -> str:
    return f"{n:064x}"


def files(*numbers: int) -> str:
    """The path pattern of these files' reports."""
    return "/api/v3/files/(" + "|".join(sha256(n) for n in numbers) + ")"


@pytest.fixture(scope="module")
def service() -> Iterator[FakeService]:
    """One server for the module (each takes half a second to shut down)."""
    with FakeService() as running:
        yield running


def make(service: FakeService, **options: Any) -> VirusTotal:
    # Plain HTTP on 127.0.0.1: verify=False spares loading a CA bundle for nothing.
    options.setdefault("api_key", KEY)
    options.setdefault("rate", "unlimited")
    options.setdefault("verify", False)
    options.setdefault("base_url", service.url("/api/v3/"))
    adapter = VirusTotal(max_retry_time=5, concurrency=16, **options)
    adapter.http.backoff = 0.01
    return adapter


def run(adapters: list[VirusTotal], body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        try:
            return await body()
        finally:
            for adapter in adapters:
                await adapter.aclose()

    return asyncio.run(main())


def lookup(adapter: VirusTotal, text: str) -> Any:
    return run([adapter], lambda: adapter.enrich(Observable.parse(text)))


def test_a_slow_answer_arrives_with_the_key_and_the_user_agent(service: FakeService) -> None:
    service.route("GET", files(1), attrs.evolve(MALICIOUS, delay=0.2))
    adapter = make(service)
    started = time.monotonic()
    found = lookup(adapter, sha256(1))
    assert time.monotonic() - started >= 0.2
    assert isinstance(found, Reputation)
    assert (found.verdict, found.detections, found.total) == (Verdict.MALICIOUS, 53, 62)
    request = service.requests[-1]
    assert (request.method, request.path) == ("GET", f"/api/v3/files/{sha256(1)}")
    assert request.headers["x-apikey"] == KEY
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == f"fido/{fido.__version__}"


def test_a_429_is_asked_again_after_retry_after(service: FakeService) -> None:
    service.script("GET", files(2), [Reply(429, QUOTA, headers={"Retry-After": "0.2"}), MALICIOUS])
    adapter = make(service, api_key=f"{KEY}-429")
    found = lookup(adapter, sha256(2))
    assert isinstance(found, Reputation)
    first, second = [r for r in service.requests if r.path.endswith(sha256(2))]
    assert second.at - first.at >= 0.2  # the server saw the retry after the pause
    assert adapter.stats()["retries"] == 1


def test_5xx_then_success(service: FakeService) -> None:
    service.script("GET", files(3), [Reply(500), Reply(502), Reply(503), CLEAN])
    adapter = make(service)
    found = lookup(adapter, sha256(3))
    assert isinstance(found, Reputation)
    assert found.verdict is Verdict.BENIGN
    assert service.count(files(3)) == 4
    assert adapter.stats()["retries"] == 3


def test_a_504_for_good_is_an_error_after_the_attempts(service: FakeService) -> None:
    service.route("GET", files(4), Reply(504, {"error": {"code": "DeadlineExceededError"}}))
    adapter = make(service, max_attempts=3)
    with pytest.raises(EnrichmentError) as caught:
        lookup(adapter, sha256(4))
    assert caught.value.message == f"GET files/{sha256(4)}: HTTP 504 (DeadlineExceededError)"
    assert service.count(files(4)) == 3


def test_an_answer_later_than_the_request_timeout(service: FakeService) -> None:
    service.route("GET", files(5), attrs.evolve(CLEAN, delay=0.6))
    adapter = make(service, request_timeout=0.2, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(EnrichmentError) as caught:
        lookup(adapter, sha256(5))
    assert time.monotonic() - started < 1.0  # two attempts of 0.2 s, not of 0.6
    assert caught.value.message == f"GET files/{sha256(5)}: timed out after 0.2 s"
    assert service.count(files(5)) == 2
    assert adapter.breaker.state == "closed"  # two failed attempts, one failed look-up


def test_a_reset_connection_is_retried(service: FakeService) -> None:
    service.script("GET", files(6), [Reply(reset=True), MALICIOUS])
    adapter = make(service)
    found = lookup(adapter, sha256(6))
    assert isinstance(found, Reputation)
    assert service.count(files(6)) == 2

    service.route("GET", files(7), Reply(reset=True))
    failing = make(service, max_attempts=2)
    with pytest.raises(EnrichmentError) as caught:
        lookup(failing, sha256(7))
    assert any(name in caught.value.message for name in ("ReadError", "RemoteProtocolError"))
    assert KEY not in str(caught.value)
    assert service.count(files(7)) == 2


def test_malformed_json_is_an_error_and_not_retried(service: FakeService) -> None:
    service.route("GET", files(8), Reply(200, b'{"data": {"attributes": {"last_analysis'))
    adapter = make(service)
    with pytest.raises(EnrichmentError, match="the answer is not JSON") as caught:
        lookup(adapter, sha256(8))
    assert caught.value.subject == f"sha256:{sha256(8)}"
    assert service.count(files(8)) == 1


def test_not_found_over_the_wire(service: FakeService) -> None:
    service.route("GET", files(9), json_file("vt3_error_not_found.json", 404))
    assert lookup(make(service), sha256(9)) is None
    assert service.count(files(9)) == 1


def test_a_wrong_base_url_is_an_error_not_not_found(service: FakeService) -> None:
    # the fake service answers any unknown path with a 404 of its own: a wrong base_url
    adapter = make(service, base_url=service.url("/api/v2/"))
    for _ in range(2):
        with pytest.raises(EnrichmentError, match="HTTP 404") as caught:
            lookup(adapter, sha256(12))
        assert "is base_url right?" in caught.value.message
    assert service.count("/api/v2/files/.*") == 2  # never cached as "not found"
    with pytest.raises(EnrichmentError, match="not the service's not-found answer"):
        run([adapter], adapter.acheck)


def test_a_spent_quota_skips_every_lookup_with_the_key(service: FakeService) -> None:
    service.route("GET", files(13, 14, 15), Reply(429, QUOTA, headers={"Retry-After": "86400"}))
    adapter = make(service, api_key=f"{KEY}-spent")

    async def body() -> list[EnrichmentError]:
        errors = []
        for n in (13, 14, 15):
            with pytest.raises(EnrichmentError) as caught:
                await adapter.enrich(Observable.parse(sha256(n)))
            errors.append(caught.value)
        return errors

    started = time.monotonic()
    errors = run([adapter], body)
    assert time.monotonic() - started < 5.0  # skipped at once, not waiting for the timeout
    assert all(e.skipped for e in errors)
    assert all(e.message.startswith("skipped: quota exhausted until ") for e in errors)
    assert service.count(files(13, 14, 15)) == 1  # the others sent no request
    assert adapter.breaker.state == "closed"


def test_a_turn_beyond_the_timeout_is_skipped_without_a_request(service: FakeService) -> None:
    service.route("GET", files(16, 17), CLEAN)
    adapter = make(service, api_key=f"{KEY}-one-a-minute", rate="1/min", timeout=10)

    async def body() -> list[Any]:
        results: list[Any] = [await adapter.enrich(Observable.parse(sha256(16)))]
        try:
            await adapter.enrich(Observable.parse(sha256(17)))
        except EnrichmentError as exc:
            results.append(exc)
        return results

    found, skipped = run([adapter], body)
    assert isinstance(found, Reputation)
    assert isinstance(skipped, EnrichmentError)
    assert skipped.skipped is True
    assert skipped.message == "skipped: rate limit, next slot in 60 s"
    assert service.count(files(16, 17)) == 1


def test_two_adapters_with_one_key_share_the_rate(service: FakeService) -> None:
    numbers = range(100, 110)
    service.route("GET", files(*numbers), CLEAN)
    key = f"{KEY}-shared-rate"
    first, second = make(service, api_key=key, rate="5/s"), make(service, api_key=key, rate="5/s")
    assert first.bucket is second.bucket

    async def body() -> list[Any]:
        return list(
            await asyncio.gather(
                *((first if n % 2 else second).enrich(Observable.parse(sha256(n))) for n in numbers)
            )
        )

    started = time.monotonic()
    found = run([first, second], body)
    elapsed = time.monotonic() - started
    assert all(isinstance(f, Reputation) for f in found)
    times = sorted(
        r.at for r in service.requests if r.path in {f"/api/v3/files/{sha256(n)}" for n in numbers}
    )
    assert len(times) == 10
    assert 0.9 <= elapsed < 3.0  # five at once, five a second later
    assert times[5] - times[0] >= 0.8
    assert times[4] - times[0] < 0.5
    assert first.bucket.waits == 5  # the five that waited, whichever adapter they used


def test_a_proxy_carries_the_requests(service: FakeService) -> None:
    service.route("GET", files(11), MALICIOUS)
    adapter = make(service, base_url="http://virustotal.invalid/api/v3/", proxy=service.url("/"))
    found = lookup(adapter, sha256(11))
    assert isinstance(found, Reputation)
    request = service.requests[-1]
    assert request.path == f"/api/v3/files/{sha256(11)}"
    assert request.headers["host"] == "virustotal.invalid"
    assert request.headers["x-apikey"] == KEY


# -- TLS ------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(  # noqa: S603 - a fixed command line of our own
        ["openssl", *args],  # noqa: S607 - found on PATH, skipped when absent
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA (`ca.pem`) and a certificate for 127.0.0.1 it signed."""
    if shutil.which("openssl") is None:
        missing("no openssl command to make a certificate")
    where = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (where / "leaf.ext").write_text(
        "subjectAltName = IP:127.0.0.1\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "authorityKeyIdentifier = keyid\n"
        "subjectKeyIdentifier = hash\n"
    )
    try:
        _openssl(
            "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=fido test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=where,
        )  # fmt: skip
        _openssl(
            "req", "-new", *ec, "-keyout", "leaf.key", "-out", "leaf.csr",
            "-subj", "/CN=127.0.0.1",
            cwd=where,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext",
            cwd=where,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        missing(f"openssl could not make a certificate: {exc}")
    return where


def missing(message: str) -> NoReturn:
    """Skip without the tool; fail under FIDO_REQUIRE_SERVICES=1 (as in CI)."""
    if os.environ.get("FIDO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"FIDO_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def secure(certificates: Path) -> Iterator[FakeService]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    with FakeService(tls=context) as running:
        running.route("GET", files(12), MALICIOUS)
        yield running


def test_tls_is_verified_by_default(secure: FakeService) -> None:
    assert secure.url().startswith("https://127.0.0.1:")
    adapter = make(secure, verify=True, max_attempts=1)
    with pytest.raises(EnrichmentError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        lookup(adapter, sha256(12))
    assert KEY not in str(caught.value)
    assert secure.count() == 0  # no request was sent over the untrusted connection


def test_tls_against_a_ca_file(secure: FakeService, certificates: Path) -> None:
    adapter = make(secure, verify=True, ca_file=str(certificates / "ca.pem"))
    found = lookup(adapter, sha256(12))
    assert isinstance(found, Reputation)
    assert found.verdict is Verdict.MALICIOUS
    assert secure.requests[-1].headers["x-apikey"] == KEY
