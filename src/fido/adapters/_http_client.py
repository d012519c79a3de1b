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

Requests go out three ways, with the same headers, URLs, bodies and timeouts: directly
over `Wire` connections (`_http_wire`: asyncio and h11, one keep-alive pool per origin,
which costs a fraction of the CPU of `httpx.AsyncClient` and its pool,
encode/httpx#3215); through a proxy, over several `httpx.AsyncHTTPTransport`s with small
pools (each request to the one with the fewest in flight); or through the `transport`
a caller gives (tests give `httpx.MockTransport`). Requests are built as httpx builds
them (`httpx.Request`, merged with `base_url` as `httpx.AsyncClient` does), except a GET
of a plain relative path, whose target and headers are the same bytes made without
parsing; answers are httpx's `httpx.Response`, decoded as httpx decodes them. No cookie
is kept between requests.

`fido.adapters._http` (the `HttpEnricher` base) re-exports what is public here.
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
import re
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
from fido.adapters._http_wire import Reply, Wire

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

__all__ = ["RETRY_STATUSES", "HttpClient", "HttpError", "retry_after"]

log = get_logger("fido.adapters.http")
_REQUEST_LOG: Final = logging.getLogger("httpx")
"""Where `httpx.AsyncClient` logs each request (INFO): so does `HttpClient`."""

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_POOL: Final = 4
"""Connections per `httpx.AsyncHTTPTransport` (through a proxy): measured
(benchmarks/bench_enrich.py), 4 costs the least CPU per request: 64 in one pool take 5
times as much, 16 twice, 8 about 1.5 times."""
_PLAIN_PATH: Final = re.compile(r"[A-Za-z0-9_~!$&'()*+,;=-][A-Za-z0-9._~!$&'()*+,;=/-]*")
"""A relative path httpx leaves as it is (no query, escape or colon; no leading `/` or
`.`); one with a dot segment (`/.`) is not plain either."""
_PORTS: Final = {"http": 80, "https": 443}
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


def _host(url: httpx.URL) -> str:
    """The host to connect to, as httpx's transport has it (IDNA-encoded, no brackets)."""
    return url.raw_host.decode("ascii")


def _log_request(response: httpx.Response) -> None:
    """The line `httpx.AsyncClient` logs for a request, on its logger."""
    request = response.request
    _REQUEST_LOG.info(
        'HTTP Request: %s %s "%s %d %s"',
        request.method,
        request.url,
        response.http_version,
        response.status_code,
        response.reason_phrase,
    )


class _Answer:
    """An answer: its status, its body (decoded), and the `httpx.Response` when needed.

    From a direct connection the response is made on first use (most answers need only
    their status and body), for `request`: an `httpx.Request`, or the target of a plain
    GET on `base_url`'s origin (made into one by `client`).
    """

    __slots__ = ("_client", "_reply", "_request", "_response", "content", "status")

    def __init__(
        self,
        status: int,
        content: bytes,
        response: httpx.Response | None = None,
        *,
        reply: Reply | None = None,
        request: httpx.Request | bytes | None = None,
        client: HttpClient | None = None,
    ) -> None:
        self.status = status
        self.content = content
        self._response = response
        self._reply = reply
        self._request = request
        self._client = client

    @property
    def response(self) -> httpx.Response:
        """The answer as an `httpx.Response` (made on first use)."""
        if self._response is None:
            reply, request, client = self._reply, self._request, self._client
            if reply is None or request is None or client is None:  # pragma: no cover
                raise AssertionError("an answer has a response or what makes one")
            if not isinstance(request, httpx.Request):
                request = client._plain_request(request)  # noqa: SLF001 - its maker
            self._response = _response(reply, request)
        return self._response


def _response(reply: Reply, request: httpx.Request) -> httpx.Response:
    """An `httpx.Response` from a direct connection's reply (its body decoded, as httpx does).

    Raises:
        httpx.DecodingError: The body cannot be decoded (gzip that is not, say).
    """
    response = httpx.Response(
        reply.status,
        headers=reply.headers,
        stream=httpx.ByteStream(reply.body),
        request=request,
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": reply.reason},
    )
    response.read()
    response.elapsed = timedelta(seconds=reply.elapsed)
    return response


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
            self._base = httpx.URL(self.base_url)
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
        self._alpn = False
        self._proxy = proxy
        self._transport = transport
        self._on_retry = on_retry
        self._throttle = throttle
        self._pace = pace
        self._not_found = not_found
        self._quota = quota
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": None}
        """The `timeout` extension of every request (as `httpx.AsyncClient` sets it)."""
        with httpx.Client(
            headers=self.headers, transport=httpx.BaseTransport(), trust_env=False
        ) as defaults:  # httpx's default headers (accept, accept-encoding...) and ours
            self._defaults = defaults.headers
        base = httpx.Request("GET", self._base, headers=self._defaults)
        self._plain_headers = base.headers.raw
        """The headers of a GET on `base_url`'s origin, Host first, as httpx sends them."""
        self._base_path = self._base.raw_path
        self._origin = (self._base.scheme, _host(self._base), self._base.port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Semaphore | None = None
        self._wires: dict[tuple[str, str, int], Wire] = {}
        """Direct connections, by origin (the current event loop's)."""
        self._transports: list[httpx.AsyncBaseTransport] = []
        """Through a proxy or the caller's transport (the current event loop's)."""
        self._load: list[int] = []
        """Requests in flight on each of `_transports`."""
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How retries wait (tests replace it)."""
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    @property
    def connections(self) -> int:
        """Direct connections opened in the current event loop (tests, the benchmark)."""
        return sum(wire.connections for wire in self._wires.values())

    def _ssl_context(self) -> ssl.SSLContext:
        """The one TLS context of every connection (loading a CA bundle takes a while).

        Offering HTTP/1.1 by ALPN, as httpcore's connections do with theirs.
        """
        if not isinstance(self._verify, ssl.SSLContext):
            self._verify = httpx.create_ssl_context(verify=self._verify, trust_env=False)
        if not self._alpn:
            self._verify.set_alpn_protocols(["http/1.1"])
            self._alpn = True
        return self._verify

    def _setup(self) -> asyncio.Semaphore:
        """The semaphore of the running event loop, its connections made anew if it is new.

        Connections, transports and semaphores belong to one event loop: a new loop gets
        new ones (the old loop's connections went with it).
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._gate is not None:
            return self._gate
        self._loop = loop
        self._gate = asyncio.Semaphore(self.concurrency)
        self._wires = {}
        if self._transport is not None or self._proxy is not None:
            _skip_missing_sniffio()  # httpcore's pools serve these
        if self._transport is not None:
            self._transports = [self._transport]
        elif self._proxy is not None:
            count = max(1, math.ceil(self.concurrency / _POOL))
            size = math.ceil(self.concurrency / count)
            self._transports = [
                httpx.AsyncHTTPTransport(
                    verify=self._ssl_context(),
                    proxy=self._proxy,
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                    trust_env=False,
                )
                for _ in range(count)
            ]
        else:
            self._transports = []
        self._load = [0] * len(self._transports)
        return self._gate

    def _wire(self, scheme: str, host: str, port: int) -> Wire:
        key = (scheme, host, port)
        wire = self._wires.get(key)
        if wire is None:
            wire = self._wires[key] = Wire(
                scheme=scheme,
                host=host,
                port=port,
                ssl_context=self._ssl_context() if scheme == "https" else None,
                timeout=self.timeout,
                max_idle=self.concurrency,
            )
        return wire

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
        answer = await self._attempts(
            method, path, params=params, data=data, json_body=json_body, ok=ok, absent=absent
        )
        return None if answer is None else answer.response

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET `path` and parse its JSON body; None if the service says not found.

        Raises:
            HttpError: The request failed, or the body is not JSON.
        """
        answer = await self._attempts(kwargs.pop("method", "GET"), path, **kwargs)
        if answer is None:
            return None
        try:
            return json.loads(answer.content)  # as `httpx.Response.json` does
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(
                f"{path.split('?')[0]}: the answer is not JSON ({exc})", breaks=False
            ) from None

    async def _attempts(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (200,),
        absent: tuple[int, ...] = (404,),
    ) -> _Answer | None:
        """The first attempt, then (after a retryable failure) tenacity's retries."""
        started = time.monotonic()
        try:
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
    ) -> _Answer | None:
        gate = self._gate
        if gate is None or self._loop is not asyncio.get_running_loop():
            gate = self._setup()
        async with gate:
            if self._pace is not None:  # paced where the request is sent, retries too
                await self._pace()
            self.requests += 1
            try:
                answer = await self._exchange(method, path, params, data, json_body)
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
        if _REQUEST_LOG.isEnabledFor(logging.INFO):
            _log_request(answer.response)
        status = answer.status
        if status in ok:
            return answer
        self._refused(method, path, answer, absent)
        return None

    @staticmethod
    def _where(method: str, path: str) -> str:
        return f"{method} {path.split('?')[0]}"

    def _refused(self, method: str, path: str, answer: _Answer, absent: tuple[int, ...]) -> None:
        """None for the service's "not found"; else the `HttpError` the answer means."""
        status, response, where = answer.status, answer.response, self._where(method, path)
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

    async def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        json_body: Any,
    ) -> _Answer:
        """Send one request the way it goes (directly, a proxy, a transport); read it all.

        Raises:
            httpx.HTTPError: It could not be sent, or its answer not read or decoded.
            httpx.InvalidURL: `path` makes no valid URL.
        """
        if (
            not self._transports
            and method == "GET"
            and params is None
            and data is None
            and json_body is None
            and _PLAIN_PATH.fullmatch(path) is not None
            and "/." not in path
        ):  # the common case: the target and headers as httpx would make them
            target = self._base_path + path.encode("ascii")
            scheme, host, port = self._origin
            reply = await self._wire(scheme, host, port or _PORTS[scheme]).send(
                b"GET", target, self._plain_headers, b""
            )
            return self._answer(reply, target)
        request = httpx.Request(
            method,
            self._merge_url(path),
            params=params,
            data=data,
            json=json_body,
            headers=self._defaults,
            extensions={"timeout": self._timeouts},
        )
        if self._transports:
            return await self._through(request)
        url = request.url
        scheme = url.scheme
        if scheme not in _PORTS:
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}'")
        reply = await self._wire(scheme, _host(url), url.port or _PORTS[scheme]).send(
            request.method.encode("ascii"), url.raw_path, request.headers.raw, request.read()
        )
        return self._answer(reply, request)

    def _merge_url(self, path: str) -> httpx.URL:
        """`path` under `base_url`, as `httpx.AsyncClient` merges them (an absolute URL: as is)."""
        url = httpx.URL(path)
        if url.is_relative_url:
            return self._base.copy_with(raw_path=self._base_path + url.raw_path.lstrip(b"/"))
        return url

    def _plain_request(self, target: bytes) -> httpx.Request:
        """The `httpx.Request` a plain GET was (for its response)."""
        return httpx.Request(
            "GET",
            self._base.copy_with(raw_path=target),
            headers=self._defaults,
            extensions={"timeout": self._timeouts},
        )

    def _answer(self, reply: Reply, request: httpx.Request | bytes) -> _Answer:
        """An answer from a direct connection; a body encoded (gzip...) is decoded now."""
        for name, value in reply.headers:
            if name.lower() == b"content-encoding" and value.strip().lower() != b"identity":
                if not isinstance(request, httpx.Request):
                    request = self._plain_request(request)
                made = _response(reply, request)  # a body that cannot be decoded: an error now
                return _Answer(reply.status, made.content, made)
        return _Answer(reply.status, reply.body, reply=reply, request=request, client=self)

    async def _through(self, request: httpx.Request) -> _Answer:
        """Send through the proxy's (or the caller's) transport with the fewest in flight."""
        load = self._load
        index = load.index(min(load))
        load[index] += 1
        started = time.perf_counter()
        try:
            response = await self._transports[index].handle_async_request(request)
            response.request = request
            try:
                await response.aread()
            finally:
                await response.aclose()
                response.elapsed = timedelta(seconds=time.perf_counter() - started)
        finally:
            load[index] -= 1
        return _Answer(response.status_code, response.content, response)

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
        """Close the connections of the current event loop."""
        wires, self._wires = self._wires, {}
        transports, self._transports = self._transports, []
        self._loop = self._gate = None
        for wire in wires.values():
            with contextlib.suppress(RuntimeError):  # their loop is gone: nothing to close
                await wire.aclose()
        for transport in transports:  # the caller's too, as httpx's client closes it
            with contextlib.suppress(RuntimeError):
                await transport.aclose()
