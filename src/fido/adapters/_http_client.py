"""`HttpClient`: requests to one service, with retries, kept-alive connections, no leaked key.

It sends requests: TLS verified by default (or against a CA bundle), a proxy, timeouts,
keep-alive, the user agent `fido/<version>` (with httpx's other default headers), no
redirect followed, and retries (tenacity, kept private) on connect errors, timeouts,
resets, 429, 500, 502, 503 and 504, with exponential back-off and jitter, `Retry-After`
honoured (seconds or an HTTP date) and bounded attempts and total time; other 4xx are
not retried. The first attempt runs without tenacity's machinery (most requests need
no other); a retryable failure hands it over to tenacity, which goes on from attempt 2
as if it had made the first. Each retry first passes the optional `throttle` (the
enricher's bucket: a retry is one more request against the quota, and a 429 pauses the
bucket for its `Retry-After`), and every attempt, with its place under `concurrency`
held, the optional `pace` (the bucket's rate learned from 429 answers,
`TokenBucket.admit`). A status a request calls `absent` is "not found" only if the
optional `not_found` says it is the vendor's own answer; a 429 whose `quota` says a
quota is spent carries the seconds until it resets (`HttpError.spent`).

Every request goes through one `httpx.AsyncClient` (per event loop), so that URLs,
headers, cookies, timeouts, redirects (never followed) and its log lines are httpx's.
Its transport is one of three: fido's keep-alive connections (`_http_wire.WireTransport`:
asyncio and h11, one pool per origin, a fraction of the CPU of httpx's pool, whose cost
grows with its connections, encode/httpx#3215); through a proxy, or where h11 cannot be
imported, several `httpx.AsyncHTTPTransport`s with small pools (`_Pools`: each request to
the one with the fewest in flight); or the `transport` a caller gives (tests give
`httpx.MockTransport`).

`fido.adapters._http` (the `HttpEnricher` base) re-exports what is public here.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import importlib.util
import json
import math
import random
import ssl
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, quote_plus

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from fido._errors import ConfigurationError
from fido._logging import get_logger
from fido._version import __version__

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from fido.adapters._http_wire import WireTransport

__all__ = ["RETRY_STATUSES", "HttpClient", "HttpError", "retry_after"]

log = get_logger("fido.adapters.http")

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_POOL: Final = 4
"""Connections per `httpx.AsyncHTTPTransport` of `_Pools`: measured
(benchmarks/bench_enrich.py), 4 costs the least CPU per request: 64 in one pool take 5
times as much, 16 twice, 8 about 1.5 times."""
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
        spent: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable
        self.breaks = breaks
        self.spent = spent
        """A quota is spent (not a passing congestion): `retry_after` is when it resets."""


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


def _wire_transport() -> type[WireTransport] | None:
    """The keep-alive transport of fido's own; None if h11 is missing or too old.

    h11 comes with httpx (through httpcore) but is no dependency of fido's own: without
    it, requests go over httpx's transport (`_Pools`) as they would through a proxy.
    """
    try:
        from fido.adapters._http_wire import WireTransport  # h11 may be missing
    except ImportError as exc:
        log.debug("fido's HTTP/1.1 connections are not available (%s): httpx's are used", exc)
        return None
    return WireTransport


class _Pools(httpx.AsyncBaseTransport):
    """Several transports with small pools: each request to the one with the fewest in flight.

    httpx's pool spends CPU that grows with its connections (encode/httpx#3215) and
    checks each idle connection for every request it places: 64 concurrent requests go
    over 16 pools of 4, and none queues inside a pool. A request is in flight until its
    answer is closed (read whole, by `httpx.AsyncClient`).
    """

    def __init__(self, transports: list[httpx.AsyncBaseTransport]) -> None:
        self.transports = transports
        self.load = [0] * len(transports)
        """Requests in flight on each transport."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        load = self.load
        index = load.index(min(load))
        load[index] += 1
        try:
            response = await self.transports[index].handle_async_request(request)
        except BaseException:
            load[index] -= 1
            raise
        stream = response.stream
        if isinstance(stream, httpx.AsyncByteStream) and not response.is_closed:
            response.stream = _Counted(stream, load, index)
        else:  # made already read (none of httpx's own transports does)
            load[index] -= 1
        return response

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()


class _Counted(httpx.AsyncByteStream):
    """An answer's body that counts its request out of `_Pools.load` when closed."""

    def __init__(self, stream: httpx.AsyncByteStream, load: list[int], index: int) -> None:
        self._stream = stream
        self._load = load
        self._index = index

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._index >= 0:
            self._load[self._index] -= 1
            self._index = -1
        await self._stream.aclose()


def _timed(response: httpx.Response, started: float) -> None:
    """Give `response` the `elapsed` httpx's client gives it, if it could not.

    The client times the answer's body when it closes it; an answer the transport made
    already read (`httpx.MockTransport`'s) has none, and `elapsed` would raise.
    """
    try:
        response.elapsed  # noqa: B018 - set, or RuntimeError
    except RuntimeError:
        response.elapsed = timedelta(seconds=time.perf_counter() - started)


class HttpClient:
    """Requests to one service, with retries, kept-alive connections and no leaked secret.

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
        not_found: Whether an answer whose status is in a request's `absent` really
            says "not found" (the vendor's own not-found body); else it is an error.
            None: every such status is "not found".
        quota: For a 429 answer: the seconds until a spent quota resets, if the answer
            says a quota is spent (a vendor's quota error); None: a passing congestion.
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
        not_found: Callable[[httpx.Response], bool] | None = None,
        quota: Callable[[httpx.Response], float | None] | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ConfigurationError(f"base_url: expected an http(s) URL, not {base_url!r}")
        if concurrency < 1 or max_attempts < 1:
            raise ConfigurationError("concurrency and max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/") + "/"
        try:
            httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise ConfigurationError(f"base_url: {exc}") from None
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
        self._not_found = not_found
        self._quota = quota
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Semaphore | None = None
        self._client: httpx.AsyncClient | None = None
        """The current event loop's client."""
        self._wire: WireTransport | None = None
        """Its transport, if it is fido's connections."""
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How retries wait (tests replace it)."""
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    @property
    def connections(self) -> int:
        """Connections of fido's own opened in the current event loop (tests, the benchmark)."""
        return 0 if self._wire is None else self._wire.connections

    def _ssl_context(self) -> ssl.SSLContext:
        """The one TLS context of every connection (loading a CA bundle takes a while)."""
        if not isinstance(self._verify, ssl.SSLContext):
            self._verify = httpx.create_ssl_context(verify=self._verify, trust_env=False)
        return self._verify

    def _setup(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The client and semaphore of the running event loop, made anew for a new loop.

        Clients, their connections and semaphores belong to one event loop: a new loop
        gets new ones (the old loop's connections went with it).
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None or self._gate is None:
            self._loop = loop
            self._gate = asyncio.Semaphore(self.concurrency)
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self.headers,
                timeout=httpx.Timeout(self.timeout, pool=None),
                follow_redirects=False,
                trust_env=False,
                transport=self._new_transport(),
            )
        return self._client, self._gate

    def _new_transport(self) -> httpx.AsyncBaseTransport:
        """The caller's transport; else fido's connections; else (a proxy) httpx's pools."""
        self._wire = None
        if self._transport is None and self._proxy is None:
            wire = _wire_transport()
            if wire is not None:
                self._wire = wire(
                    ssl_context=self._ssl_context, timeout=self.timeout, max_idle=self.concurrency
                )
                return self._wire
        _skip_missing_sniffio()  # httpcore's pools serve the others
        if self._transport is not None:
            return self._transport
        count = max(1, math.ceil(self.concurrency / _POOL))
        size = math.ceil(self.concurrency / count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        return _Pools(
            [
                httpx.AsyncHTTPTransport(
                    verify=self._ssl_context(), proxy=self._proxy, limits=limits, trust_env=False
                )
                for _ in range(count)
            ]
        )

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

        `path` is merged with `base_url` as `httpx.AsyncClient` merges it (an absolute
        URL goes as it is).

        Returns:
            The response (status in `ok`), or None (status in `absent`: not found).

        Raises:
            HttpError: It failed for good (the message names method, path and status).
        """
        started = time.monotonic()
        try:  # the first attempt; tenacity only for the retries
            return await self._once(method, path, params, data, json_body, ok, absent)
        except HttpError as exc:
            if not exc.retryable:
                raise
            first = exc
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
                state = attempt.retry_state
                if state.attempt_number == 1:
                    # the attempt made above, as tenacity would have seen it: its
                    # outcome, and the time the request began
                    state.start_time = started
                    raise first
                if self._throttle is not None:
                    await self._throttle()
                return await self._once(method, path, params, data, json_body, ok, absent)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET `path` and parse its JSON body; None if the service says not found.

        Raises:
            HttpError: The request failed, or the body is not JSON.
        """
        response = await self.request(kwargs.pop("method", "GET"), path, **kwargs)
        if response is None:
            return None
        try:
            return json.loads(response.content)  # as `httpx.Response.json` does
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(
                f"{path.split('?')[0]}: the answer is not JSON ({exc})", breaks=False
            ) from None

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
        client, gate = self._client, self._gate
        if client is None or gate is None or self._loop is not asyncio.get_running_loop():
            client, gate = self._setup()
        async with gate:
            if self._pace is not None:  # paced where the request is sent, retries too
                await self._pace()
            self.requests += 1
            started = time.perf_counter()
            try:
                response = await client.request(
                    method, path, params=params, data=data, json=json_body
                )
                _timed(response, started)
            except httpx.TimeoutException:
                raise HttpError(
                    f"{self._where(method, path)}: timed out after {self.timeout:g} s",
                    retryable=True,
                ) from None
            except httpx.TransportError as exc:
                raise HttpError(
                    self.scrub(f"{self._where(method, path)}: {type(exc).__name__}: {exc}"),
                    retryable=True,
                ) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a body it cannot decode...
                raise HttpError(
                    self.scrub(f"{self._where(method, path)}: {type(exc).__name__}: {exc}"),
                    breaks=False,
                ) from None
        if gate.locked():
            # the place given back went to a request waiting for it: let that one go out
            # before this answer is read (its JSON, its finding), not after
            await asyncio.sleep(0)
        if response.status_code in ok:
            return response
        self._refused(method, path, response, absent)
        return None

    @staticmethod
    def _where(method: str, path: str) -> str:
        return f"{method} {path.split('?')[0]}"

    def _refused(
        self, method: str, path: str, response: httpx.Response, absent: tuple[int, ...]
    ) -> None:
        """None for the service's "not found"; else the `HttpError` the answer means."""
        status, where = response.status_code, self._where(method, path)
        if status in absent:
            if self._not_found is None or self._not_found(response):
                return
            raise HttpError(
                f"{where}: HTTP {status}{self._reason(response)}, not the service's "
                "not-found answer (is base_url right?)",
                status=status,
            )
        retryable = status in RETRY_STATUSES
        after = retry_after(response.headers.get("retry-after")) if retryable else None
        reset = self._quota(response) if status == 429 and self._quota is not None else None
        raise HttpError(
            f"{where}: HTTP {status}{self._reason(response)}",
            status=status,
            retry_after=after if reset is None else reset,
            retryable=retryable,
            breaks=retryable or status in (401, 403),
            spent=reset is not None,
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

    async def aclose(self) -> None:
        """Close the current event loop's client and its connections.

        A transport given is closed too, as httpx's client closes it; the next request
        opens new connections.
        """
        client, self._client, self._wire = self._client, None, None
        self._loop = self._gate = None
        if client is not None:
            with contextlib.suppress(RuntimeError):  # its loop is gone: nothing to close
                await client.aclose()
