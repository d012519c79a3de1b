"""The HTTP plumbing every HTTP adapter shares: `HttpEnricher` and `HttpClient`.

`HttpClient` sends requests: TLS verified by default (or against a CA bundle), a proxy,
timeouts, keep-alive, the user agent `fido/<version>`, and retries (tenacity, kept
private) on connect errors, timeouts, resets, 429, 500, 502, 503 and 504, with
exponential back-off and jitter, `Retry-After` honoured (seconds or an HTTP date) and
bounded attempts and total time; other 4xx are not retried. Requests go through several
`httpx.AsyncClient`s with small pools, each request to the one with the fewest in flight:
httpx 0.28's pool spends CPU that grows with the square of the connections in one pool
(encode/httpx#3215), and checks each idle connection of a pool for every request it
places, so 64 concurrent look-ups run as 16 pools of 4 and never queue inside a pool.
Each retry first passes the optional `throttle` (the enricher's bucket: a retry is one
more request against the quota, and a 429 pauses the bucket for its `Retry-After`), and
every attempt, with its place under `concurrency` held, the optional `pace` (the bucket's
rate learned from 429 answers, `TokenBucket.admit`).

`HttpEnricher` is the base of the HTTP enrichers: a subclass says which subjects it
`accepts`, how to `fetch` one (with `self.http.get_json(...)`), and the key a subject is
cached under. The base adds the rate limit (a token bucket per adapter and credential),
the TTL cache with single flight, the circuit breaker, `stats()`, and wraps every error
in an `EnrichmentError` that names the adapter and the subject, never the credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import importlib.util
import json
import logging
import math
import random
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote, quote_plus

import attrs
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from fido._errors import ConfigurationError, EnrichmentError
from fido._findings import Reliability, Reputation
from fido._observable import Observable, ObservableKind
from fido._version import __version__
from fido.adapters._guards import (
    Breaker,
    LookupCache,
    RateLimit,
    TokenBucket,
    fingerprint,
    seconds,
    shared_bucket,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from fido._findings import Finding, Subject

__all__ = ["HttpClient", "HttpEnricher", "HttpError", "subject_text"]

log = logging.getLogger("fido.adapters.http")

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_POOL: Final = 4
"""Connections per `httpx.AsyncClient`: measured (benchmarks/bench_enrich.py), 4 costs the
least CPU per request: 64 in one pool take 5 times as much, 16 twice, 8 about 1.5 times."""
_PATCHED: list[bool] = []


def _skip_missing_sniffio() -> None:
    """Spare httpcore a failed `import sniffio` on each lock, event and semaphore it makes.

    httpcore 1.0.x imports sniffio inside `current_async_library()`, several times per
    request, and assumes asyncio when it is missing; anyio no longer installs sniffio,
    and a failed import searches all of `sys.path` every time (encode/httpcore#1103).
    Where sniffio is absent, the function is replaced by one that answers what it would
    have ("asyncio") without the search; otherwise nothing changes.
    """
    if _PATCHED:
        return
    _PATCHED.append(True)
    try:
        from httpcore import _synchronization
    except ImportError:  # pragma: no cover - httpx always brings httpcore
        return
    original = getattr(_synchronization, "current_async_library", None)
    code = getattr(original, "__code__", None)
    if (
        code is None
        or "sniffio" not in code.co_varnames  # a release that imports it once, or not at all
        or getattr(_synchronization, "anyio", None) is None
        or importlib.util.find_spec("sniffio") is not None
    ):
        return

    def current_async_library() -> str:
        return "asyncio"

    _synchronization.current_async_library = current_async_library


class HttpError(Exception):
    """A request that failed: what, and whether trying again may help. Never the key."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        breaks: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable
        self.breaks = breaks


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        return max(0.0, when.timestamp() - current)
    return max(0.0, number) if math.isfinite(number) else None


def subject_text(subject: Subject) -> str:
    """A subject as text for errors and logs (`sha256:44d8...`, `host:ws-042`, `user:bdoe`)."""
    key = getattr(subject, "key", None)
    kind = getattr(subject, "kind", None)
    if kind is not None:
        return f"{kind.value}:{subject.value}"  # type: ignore[union-attr]
    return f"{type(subject).__name__.lower()}:{key}"


class HttpClient:
    """Requests to one service, with retries, several small pools and no leaked secret.

    Args:
        base_url: The service's root URL.
        headers: Sent with every request (authentication among them).
        secrets: Strings scrubbed from every error message (the credentials).
        timeout: Seconds per request (connect, read, write).
        verify: Verify TLS certificates (default); False only for a lab.
        ca_file: A CA bundle to verify against instead of the system's.
        proxy: A proxy URL.
        concurrency: Requests in flight at once; more wait their turn.
        max_attempts: Tries per request, the first included.
        max_retry_time: Seconds a request may spend retrying, in all.
        transport: An `httpx` transport (tests use `httpx.MockTransport`).
        on_retry: Called with the error before each retry.
        throttle: Awaited before each retry (the enricher's `TokenBucket.acquire`; the
            first attempt took its token before the request began).
        pace: Awaited before each attempt, a place under `concurrency` held (the
            enricher's `TokenBucket.admit`: the end of a pause, and the learned rate).
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        secrets: tuple[str, ...] = (),
        timeout: float = 10.0,
        verify: bool = True,
        ca_file: str | None = None,
        proxy: str | None = None,
        concurrency: int = 64,
        max_attempts: int = 4,
        max_retry_time: float = 30.0,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: Any = None,
        throttle: Callable[[], Awaitable[None]] | None = None,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ConfigurationError(f"base_url: expected an http(s) URL, not {base_url!r}")
        if concurrency < 1 or max_attempts < 1:
            raise ConfigurationError("concurrency and max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/") + "/"
        self.headers = {"user-agent": f"fido/{__version__}", **(headers or {})}
        self._secrets = tuple(s for s in secrets if s)
        self.timeout = timeout
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.max_retry_time = max_retry_time
        self.backoff = backoff
        self._verify: ssl.SSLContext | bool = verify
        if ca_file is not None:
            try:
                self._verify = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(f"ca_file: cannot load {ca_file}: {exc}") from None
        self._proxy = proxy
        self._transport = transport
        self._on_retry = on_retry
        self._throttle = throttle
        self._pace = pace
        self._clients: list[httpx.AsyncClient] = []
        self._load: list[int] = []
        """Requests in flight on each client."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Semaphore | None = None
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How retries wait (tests replace it)."""
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def _client(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._gate is None:
            # Clients and semaphores belong to one event loop: a new loop gets new ones
            # (the old loop's connections went with it).
            _skip_missing_sniffio()
            if not isinstance(self._verify, ssl.SSLContext) and (
                self._transport is None or self._proxy is not None  # else none is used
            ):
                # one context for all the clients: each would otherwise load the CA
                # bundle again (tens of milliseconds apiece)
                self._verify = httpx.create_ssl_context(verify=self._verify, trust_env=False)
            self._loop = loop
            self._gate = asyncio.Semaphore(self.concurrency)
            count = max(1, math.ceil(self.concurrency / _POOL))
            size = math.ceil(self.concurrency / count)
            self._clients = [
                httpx.AsyncClient(
                    base_url=self.base_url,
                    headers=self.headers,
                    timeout=httpx.Timeout(self.timeout, pool=None),
                    verify=self._verify,
                    proxy=self._proxy,
                    transport=self._transport,
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                    follow_redirects=False,
                    trust_env=False,
                )
                for _ in range(count)
            ]
            self._load = [0] * count
        load = self._load
        return self._clients[load.index(min(load))], self._gate

    def scrub(self, text: str) -> str:
        """`text` without any credential in it (as it is, or escaped in a URL)."""
        for secret in self._secrets:
            for form in (secret, quote(secret, safe=""), quote_plus(secret, safe="")):
                text = text.replace(form, "***")
        return text

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (200,),
        absent: tuple[int, ...] = (404,),
    ) -> httpx.Response | None:
        """Send a request, retrying what may succeed later.

        Returns:
            The response (status in `ok`), or None (status in `absent`: not found).

        Raises:
            HttpError: It failed for good (the message names method, path and status).
        """
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, HttpError) and e.retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1 and self._throttle is not None:
                    await self._throttle()
                return await self._once(method, path, params, data, json_body, ok, absent)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True

    def _stop(self, state: RetryCallState) -> bool:
        """Whether to give up: attempts spent, time spent, or a `Retry-After` beyond it.

        A server that asks for more time than is left is not asked again too early.
        """
        if state.attempt_number >= self.max_attempts:
            return True
        error = state.outcome.exception() if state.outcome is not None else None
        after = getattr(error, "retry_after", None) or 0.0
        return time.monotonic() - state.start_time + after >= self.max_retry_time

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        after = getattr(error, "retry_after", None)
        elapsed = time.monotonic() - state.start_time
        left = max(0.0, self.max_retry_time - elapsed)
        if after is not None:
            return min(float(after), left)
        exponential = self.backoff * 2 ** (state.attempt_number - 1)
        return min(random.uniform(0, exponential), left)  # noqa: S311 - jitter, not crypto

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        error = state.outcome.exception() if state.outcome is not None else None
        if self._on_retry is not None:
            self._on_retry(error)
        log.info(
            "%s: attempt %d failed (%s), retrying in %.2f s",
            self.base_url,
            state.attempt_number,
            self.scrub(str(error)),
            state.upcoming_sleep,
        )

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        json_body: Any,
        ok: tuple[int, ...],
        absent: tuple[int, ...],
    ) -> httpx.Response | None:
        where = f"{method} {path.split('?')[0]}"
        _, gate = self._client()
        async with gate:
            if self._pace is not None:  # paced where the request is sent, retries too
                await self._pace()
            # the client with the fewest requests in flight: none queues inside a pool
            client, _ = self._client()
            load, index = self._load, self._clients.index(client)
            load[index] += 1
            self.requests += 1
            try:
                response = await client.request(
                    method, path, params=params, data=data, json=json_body
                )
            except httpx.TimeoutException:
                raise HttpError(
                    f"{where}: timed out after {self.timeout:g} s", retryable=True
                ) from None
            except httpx.TransportError as exc:
                raise HttpError(
                    self.scrub(f"{where}: {type(exc).__name__}: {exc}"), retryable=True
                ) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a body it cannot decode...
                raise HttpError(
                    self.scrub(f"{where}: {type(exc).__name__}: {exc}"), breaks=False
                ) from None
            finally:
                load[index] -= 1
        status = response.status_code
        if status in ok:
            return response
        if status in absent:
            return None
        retryable = status in RETRY_STATUSES
        raise HttpError(
            f"{where}: HTTP {status}{self._reason(response)}",
            status=status,
            retry_after=retry_after(response.headers.get("retry-after")) if retryable else None,
            retryable=retryable,
            breaks=retryable or status in (401, 403),
        )

    def _reason(self, response: httpx.Response) -> str:
        """A short reason from an error body (`{"error": {"code": ...}}` and the like)."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ""
        code = None
        if isinstance(body, dict):
            error = body.get("error", body.get("errors", body.get("message")))
            if isinstance(error, dict):
                code = error.get("code") or error.get("message")
            elif isinstance(error, list) and error and isinstance(error[0], dict):
                code = error[0].get("detail") or error[0].get("message")
            elif isinstance(error, str):
                code = error
        if not isinstance(code, str | int):
            return ""
        return f" ({self.scrub(str(code))[:200]})"

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET `path` and parse its JSON body; None if the service says not found.

        Raises:
            HttpError: The request failed, or the body is not JSON.
        """
        response = await self.request(kwargs.pop("method", "GET"), path, **kwargs)
        if response is None:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(
                f"{path.split('?')[0]}: the answer is not JSON ({exc})", breaks=False
            ) from None

    async def aclose(self) -> None:
        """Close the connections of the current event loop's clients."""
        clients, self._clients = self._clients, []
        self._loop = self._gate = None
        for client in clients:
            with contextlib.suppress(RuntimeError):  # their loop is gone: nothing to close
                await client.aclose()


@attrs.define
class _Counters:
    lookups: int = 0
    failures: int = 0
    skipped: int = 0


class HttpEnricher:
    """The base of fido's HTTP enrichers (see the module docstring).

    Subclasses set `service` (the adapter type, as registered), `default_base_url`,
    `default_rate` (None: no limit), and implement `accepts`, `fetch` and `auth_headers`.

    Args:
        name: The enricher's name (the findings' source).
        api_key: The credential (from `api_key_env` or `api_key_file` in the config).
        base_url: The service's root URL (default: the vendor's).
        rate: Look-ups allowed, as in `"4/min"` or `["4/min", "500/day"]`; `"unlimited"`.
        request_timeout: Seconds per HTTP request.
        timeout: Seconds one look-up may take in all, waiting for its turn under the rate
            limit and retrying included (the pipeline gives up after it; default 300).
        verify: Verify TLS certificates (default True).
        ca_file: A CA bundle to verify against.
        proxy: A proxy URL.
        concurrency: Requests in flight at once.
        max_attempts: Tries per request.
        max_retry_time: Seconds one look-up may spend retrying.
        cache_ttl: Seconds or durations by verdict (`malicious`, `suspicious`, `benign`,
            `unknown`, `missing` for not found, `context` for host and user context).
        cache_size: Answers kept.
        breaker_failures: Consecutive failures that open the breaker.
        breaker_cooldown: Seconds the breaker stays open.
        reliability: The Admiralty reliability (A-F) of this source's verdicts.
        transport: An `httpx` transport, for tests.
    """

    service: ClassVar[str] = "http"
    default_base_url: ClassVar[str] = ""
    default_rate: ClassVar[str | list[str] | None] = None
    default_reliability: ClassVar[str] = "C"
    requires_key: ClassVar[bool] = True
    probes: ClassVar[tuple[Subject, ...]] = (
        Observable(ObservableKind.IPV4, "8.8.8.8"),  # Google's public resolver
        Observable(ObservableKind.DOMAIN, "example.com"),  # reserved by RFC 2606
        Observable(ObservableKind.MD5, "44d88612fea8a8f36de82e1278abb02f"),  # EICAR
    )
    """Well-known subjects `acheck` looks up: the first that `accepts` takes."""

    def __init__(
        self,
        *,
        name: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        rate: Any = "default",
        request_timeout: Any = 10.0,
        timeout: Any = 300.0,
        verify: bool = True,
        ca_file: str | None = None,
        proxy: str | None = None,
        concurrency: int = 64,
        max_attempts: int = 4,
        max_retry_time: Any = 30.0,
        cache_ttl: Mapping[str, Any] | None = None,
        cache_size: int = 100_000,
        breaker_failures: int = 5,
        breaker_cooldown: Any = 60.0,
        reliability: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name or self.service
        if self.requires_key and not api_key:
            raise ConfigurationError(
                f"{self.service}: an API key is needed (api_key_env or api_key_file)"
            )
        self._key = api_key
        self.timeout = seconds(timeout, "timeout")
        """The pipeline's limit per look-up (the config's `timeout` sets it too)."""
        try:
            self.reliability = Reliability.parse(reliability or self.default_reliability)
        except ValueError as exc:
            raise ConfigurationError(f"reliability: {exc}") from None
        ttls = {k: seconds(v, f"cache_ttl.{k}") for k, v in (cache_ttl or {}).items()}
        unknown = set(ttls) - {"malicious", "suspicious", "benign", "unknown", "missing"}
        if unknown - {"context"}:
            raise ConfigurationError(f"cache_ttl: unknown verdict {sorted(unknown)[0]!r}")
        self.cache = LookupCache(cache_size, ttls)
        self.breaker = Breaker(breaker_failures, seconds(breaker_cooldown, "breaker_cooldown"))
        limit = RateLimit.parse(self.default_rate if rate == "default" else rate)
        # Always a bucket: with no limit it only holds back everyone after a 429.
        self.bucket: TokenBucket = shared_bucket(self.service, api_key, limit or RateLimit(()))
        self.http = HttpClient(
            base_url=base_url or self.default_base_url,
            headers=self.auth_headers(api_key) if api_key else {},
            secrets=(api_key,) if api_key else (),
            timeout=seconds(request_timeout, "request_timeout"),
            verify=verify,
            ca_file=ca_file,
            proxy=proxy,
            concurrency=concurrency,
            max_attempts=max_attempts,
            max_retry_time=seconds(max_retry_time, "max_retry_time"),
            transport=transport,
            on_retry=self._retried,
            throttle=self.bucket.acquire,
            pace=self.bucket.admit,
        )
        self._fingerprint = fingerprint(api_key)
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.http.base_url!r})"

    # -- what a subclass provides ---------------------------------------------------------

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the credential."""
        raise NotImplementedError

    def accepts(self, subject: Subject) -> bool:
        """Whether this service knows about such subjects."""
        raise NotImplementedError

    def cache_key(self, subject: Subject) -> str:
        """What a subject is cached under (default: its key)."""
        return str(getattr(subject, "key", subject))

    async def fetch(self, subject: Subject) -> Finding | None:
        """Look the subject up (through `self.http`); None if the service does not know it."""
        raise NotImplementedError

    # -- the look-up ----------------------------------------------------------------------

    def _retried(self, error: BaseException | None) -> None:
        """A 429 pauses every look-up that shares the bucket (its `Retry-After`, or 1 s).

        It lowers the rate the bucket lets requests go at, too (`TokenBucket.throttled`).
        """
        after = getattr(error, "retry_after", None)
        if getattr(error, "status", None) == 429:
            self.bucket.throttled(after)

    async def enrich(self, subject: Subject) -> Finding | None:
        """The finding about `subject`, from the cache or the service.

        Raises:
            EnrichmentError: The look-up failed (`skipped=True` when the breaker is open).
        """
        self._counters.lookups += 1
        key = (self.service, self._fingerprint, self.cache_key(subject))
        try:
            entry, cached = await self.cache.get(key, lambda: self._guarded(subject))
        except EnrichmentError:
            raise
        except HttpError as exc:
            raise EnrichmentError(
                self.http.scrub(str(exc)), adapter=self.name, subject=subject_text(subject)
            ) from None
        finding = entry.finding
        if finding is None:
            return None
        return attrs.evolve(finding, fetched_at=entry.fetched_at, from_cache=cached)  # type: ignore[no-any-return]

    async def _guarded(self, subject: Subject) -> Finding | None:
        if not self.breaker.allow():
            self._counters.skipped += 1
            raise EnrichmentError(
                f"skipped: circuit open for {self.breaker.retry_in():.0f} s more",
                adapter=self.name,
                subject=subject_text(subject),
                skipped=True,
            )
        try:
            await self.bucket.acquire()
            finding = await self.fetch(subject)
        except HttpError as exc:
            if exc.status == 429:  # given up: the pause holds back the look-ups to come
                self._retried(exc)
            if exc.breaks:
                self.breaker.failure()
            else:
                self.breaker.success()
            self._counters.failures += 1
            raise
        except EnrichmentError:
            self._counters.failures += 1
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.breaker.success()  # the service answered; its answer was odd
            self._counters.failures += 1
            raise EnrichmentError(
                self.http.scrub(f"unexpected answer: {type(exc).__name__}: {exc}")[:300],
                adapter=self.name,
                subject=subject_text(subject),
            ) from None
        except Exception as exc:
            self._counters.failures += 1
            raise EnrichmentError(
                self.http.scrub(f"failed: {type(exc).__name__}: {exc}")[:300],
                adapter=self.name,
                subject=subject_text(subject),
            ) from None
        finally:
            # a half-open trial that ended without a verdict (cancelled by the look-up's
            # time limit, or an error that says nothing of the service) lets another try
            self.breaker.release()
        self.breaker.success()
        self.bucket.answered()
        return finding

    async def acheck(self) -> str:
        """Test the connection and the credential with one look-up (`fido check`).

        Looks up the first of `probes` this service accepts, past the cache, under the
        rate limit (it uses one look-up of the plan's quota) and the breaker.

        Returns:
            What was looked up, how long it took and the answer.

        Raises:
            EnrichmentError: The service could not be reached or refused the request
                (a wrong key: 401 or 403).
        """
        subject = next((s for s in self.probes if self.accepts(s)), None)
        if subject is None:
            return "no probe subject accepted: connectivity not tested"
        started = time.monotonic()
        try:
            finding = await self._guarded(subject)
        except HttpError as exc:
            raise EnrichmentError(
                self.http.scrub(str(exc)), adapter=self.name, subject=subject_text(subject)
            ) from None
        answer = "not found" if finding is None else type(finding).__name__
        if isinstance(finding, Reputation):
            answer = finding.verdict.value
        return (
            f"looked up {subject_text(subject)} in "
            f"{(time.monotonic() - started) * 1000:.0f} ms: {answer}"
        )

    def stats(self) -> dict[str, Any]:
        """Look-ups, cache hits and hit rate, requests, retries, failures, breaker state."""
        counters = self._counters
        answered = self.cache.hits + self.cache.misses + self.cache.shared
        return {
            "lookups": counters.lookups,
            "cache_hits": self.cache.hits,
            "cache_hit_rate": round(self.cache.hits / answered, 3) if answered else 0.0,
            "requests": self.http.requests,
            "retries": self.http.retries,
            "failures": counters.failures,
            "skipped": counters.skipped,
            "breaker": self.breaker.state,
            "rate_waits": self.bucket.waits,
        }

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.http.aclose()
