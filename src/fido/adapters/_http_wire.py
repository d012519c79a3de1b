"""`WireTransport`: fido's HTTP/1.1 keep-alive connections, as an httpx transport.

The transport of the `httpx.AsyncClient` of `HttpClient` when there is no proxy and no
transport of the caller's: requests go over plain asyncio connections (`asyncio.Protocol`,
TLS by the event loop's `ssl` support), each exchange framed and parsed by `h11`, the
HTTP/1.1 state machine that httpx's own transport (httpcore) uses. It does what
httpcore's pool does for fido's requests, at a fraction of the CPU: one request at a time
per connection, idle connections kept for `keepalive_expiry` seconds and reused last in,
first out (no scan of the pool per request: encode/httpx#3215), a connection the server
closed or wrote to while idle never reused, one that a cancellation or an error left
half-way closed. The request's `timeout` extension (as `httpx.AsyncClient` sets it)
bounds connecting (the TLS handshake included), each write that must wait and each read;
failures raise httpx's own exceptions (`httpx.ConnectError`, `httpx.ReadTimeout`,
`httpx.RemoteProtocolError`, ...). Each answer is read whole before it is handed over
(its connection free for the next request), its body as sent: the client decodes it.

h11 comes with httpx (through httpcore) but is not a dependency of fido's own: importing
this module raises `ImportError` if h11 is missing or older than this module needs
(0.13, httpcore 1.0's own floor), and `HttpClient` then uses httpx's transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING, Final

import h11
import httpx

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Reply", "Wire", "WireTransport"]

_H11_NAMES: Final = (
    "CLIENT",
    "DONE",
    "NEED_DATA",
    "SEND_RESPONSE",
    "Connection",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
)
"""What this module uses of h11."""


def _h11_version() -> tuple[int, ...]:
    try:
        version: str = h11.__version__  # type: ignore[attr-defined]
        return tuple(int(part) for part in version.split(".")[:2])
    except (AttributeError, ValueError):
        return ()


if _h11_version() < (0, 13) or not all(hasattr(h11, name) for name in _H11_NAMES):
    raise ImportError(
        f"h11 {getattr(h11, '__version__', '?')} lacks what fido's HTTP wire needs (0.13+)"
    )

_MAX_HEAD: Final = 100 * 1024
"""The largest response head accepted (httpcore's figure)."""
_PORTS: Final = {"http": 80, "https": 443}

Timeouts = tuple[float | None, float | None, float | None]
"""Seconds to connect, to read, to write (None: no limit)."""


class Reply:
    """A response as it came: status, reason, raw headers, body (as sent: not decoded)."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class _Stream(asyncio.Protocol):
    """One TCP (or TLS) connection: bytes in, bytes out, with timeouts."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._data = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream transport
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._data += data
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None:
            self._error = exc
        self._wake()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- what a connection uses ---------------------------------------------------------

    @property
    def stale(self) -> bool:
        """Whether the connection, idle, was closed or written to by the server."""
        transport = self.transport
        return self._eof or bool(self._data) or transport is None or transport.is_closing()

    async def read(self, timeout: float | None) -> bytes:
        """The bytes received so far, waiting up to `timeout` for some; b"" at the end.

        Raises:
            httpx.ReadTimeout: Nothing came in time.
            httpx.ReadError: The connection broke.
        """
        if not self._data and not self._eof:
            waiter = self._waiter = self._loop.create_future()
            timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                raise httpx.ReadTimeout("timed out reading the response") from None
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None
        if self._data:
            data = bytes(self._data)
            self._data.clear()
            return data
        if self._error is not None:
            raise httpx.ReadError(str(self._error) or type(self._error).__name__)
        return b""

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send `data`, waiting up to `timeout` if the transport's buffer is full.

        Raises:
            httpx.WriteTimeout: The buffer did not drain in time.
            httpx.WriteError: The connection is closed or broke.
        """
        transport = self.transport
        if transport is None or transport.is_closing() or self._error is not None:
            raise httpx.WriteError(str(self._error or "the connection is closed"))
        transport.write(data)
        drained = self._drained
        if drained is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(drained)
        except TimeoutError:
            raise httpx.WriteTimeout("timed out writing the request") from None
        if self._error is not None:
            raise httpx.WriteError(str(self._error))

    def close(self) -> None:
        """Close the connection now, without a TLS close_notify.

        As httpcore's streams do (anyio's TLS, not standard-compatible): asyncio's own
        TLS close would wait for the server's answer to a close_notify (up to 30 s),
        its socket still open after the event loop may be gone.
        """
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection:
    """A stream and its HTTP/1.1 state: one exchange at a time."""

    __slots__ = ("h11", "idle_since", "stream")

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.idle_since = 0.0


class Wire:
    """Keep-alive HTTP/1.1 connections to one origin (scheme, host, port).

    Args:
        scheme: `http` or `https`.
        host: The host name or address.
        port: The port.
        ssl_context: How to verify the server (`https`; None for `http`).
        server_hostname: The name the server's certificate must have, sent by SNI
            (default: `host`).
        timeout: Seconds to connect, and for each read and each write that waits, for a
            request that gives no timeouts of its own.
        keepalive_expiry: Seconds an idle connection is kept (httpx's default, 5).
        max_idle: Idle connections kept at most (the client's concurrency).
    """

    def __init__(
        self,
        *,
        scheme: str,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None = None,
        timeout: float | None,
        keepalive_expiry: float = 5.0,
        max_idle: int = 64,
    ) -> None:
        if scheme == "https" and ssl_context is None:
            raise ValueError("https needs an ssl_context")
        self.scheme = scheme
        self.host = host
        self.port = port
        self._ssl = ssl_context if scheme == "https" else None
        self.server_hostname = server_hostname or host
        self.timeout = timeout
        self.keepalive_expiry = keepalive_expiry
        self.max_idle = max_idle
        self._idle: deque[_Connection] = deque()
        self._busy: set[_Connection] = set()
        self._closed = False
        self.connections = 0
        """Connections opened (for tests and the benchmark)."""

    def __repr__(self) -> str:
        return f"Wire({self.scheme}://{self.host}:{self.port})"

    async def send(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: Timeouts | None = None,
    ) -> Reply:
        """One exchange: the request out, the whole response in.

        Args:
            method: The method, as sent.
            target: The request target (path and query), as sent.
            headers: The headers, as sent (`Host` among them).
            body: The body (empty: none).
            timeouts: Seconds to connect, to read, to write (default: `timeout`).

        Raises:
            httpx.TransportError: It could not be sent or its answer read (a subclass:
                `httpx.ConnectError`, `httpx.ReadTimeout`, `httpx.RemoteProtocolError`...).
        """
        if timeouts is None:
            timeouts = (self.timeout, self.timeout, self.timeout)
        connection = self._take() or await self._connect(timeouts[0])
        self._busy.add(connection)
        done = False
        try:
            reply = await self._exchange(connection, method, target, headers, body, timeouts)
            done = True
            return reply
        finally:
            self._busy.discard(connection)
            if done:
                self._put(connection)
            else:  # cancelled, or failed half-way: its state is unknown
                connection.stream.close()

    def _take(self) -> _Connection | None:
        idle = self._idle
        if not idle:
            return None
        oldest = time.monotonic() - self.keepalive_expiry
        while idle:
            connection = idle.pop()  # the most recent: the least likely to be closed
            if connection.idle_since >= oldest and not connection.stream.stale:
                return connection
            connection.stream.close()
        return None

    def _put(self, connection: _Connection) -> None:
        state = connection.h11
        if self._closed:  # closed while this request was under way
            connection.stream.close()
        elif state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            connection.idle_since = time.monotonic()
            idle = self._idle
            if len(idle) >= self.max_idle:
                idle.popleft().stream.close()  # the oldest goes
            idle.append(connection)
        else:  # `Connection: close`, HTTP/1.0, or a body left unread
            connection.stream.close()

    async def _connect(self, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        secure = self._ssl is not None
        try:
            async with asyncio.timeout(timeout):
                _, stream = await loop.create_connection(
                    lambda: _Stream(loop),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.server_hostname if secure else None,
                    ssl_handshake_timeout=timeout if secure else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out connecting") from None
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, a bad certificate
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        self.connections += 1
        return _Connection(stream)

    async def _exchange(
        self,
        connection: _Connection,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: Timeouts,
    ) -> Reply:
        state, stream = connection.h11, connection.stream
        _, read, write = timeouts
        try:
            parts = [state.send(h11.Request(method=method, target=target, headers=headers))]
            if body:
                parts.append(state.send(h11.Data(data=body)))
            parts.append(state.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from None
        # as httpcore does, a failed write is no error yet: the server may have answered
        # (an error) and closed before reading it all; the answer, if any, is read below
        with contextlib.suppress(httpx.WriteError):
            await stream.write(b"".join(part for part in parts if part), write)
        status, reason = 0, b""
        head: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            kind = type(event)  # h11's events are final classes (and ABCs: isinstance is slow)
            if event is h11.NEED_DATA:
                data = await stream.read(read)
                if not data and state.their_state is h11.SEND_RESPONSE and not status:
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                state.receive_data(data)
            elif kind is h11.Data:
                chunks.append(bytes(event.data))  # type: ignore[union-attr]
            elif kind is h11.Response:
                status, reason = event.status_code, bytes(event.reason)  # type: ignore[union-attr]
                head = list(event.headers.raw_items())  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return Reply(status, reason, head, body)
            elif kind is h11.ConnectionClosed:  # pragma: no cover - h11 raises first
                raise httpx.RemoteProtocolError("Server disconnected during the response.")
            # an h11.InformationalResponse (1xx): the real answer follows

    async def aclose(self) -> None:
        """Close every connection (idle ones, any in use, any a request still opens)."""
        self.close()

    def close(self) -> None:
        """`aclose`, which need not wait for anything."""
        self._closed = True
        idle, self._idle = self._idle, deque()
        for connection in idle:
            connection.stream.close()
        busy, self._busy = self._busy, set()
        for connection in busy:
            connection.stream.close()


class WireTransport(httpx.AsyncBaseTransport):
    """`Wire` connections as an `httpx.AsyncBaseTransport`: one `Wire` per origin.

    Args:
        ssl_context: The TLS context of `https` connections, or what makes it on the
            first one (plain `http` loads no CA bundle). It offers HTTP/1.1 by ALPN, as
            httpcore's connections do. Default: httpx's (certifi's CAs, verified).
        timeout: Seconds to connect, read and write for a request with no `timeout`
            extension (`httpx.AsyncClient` always gives one).
        keepalive_expiry: Seconds an idle connection is kept (httpx's default, 5).
        max_idle: Idle connections kept at most per origin (the client's concurrency).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] = httpx.create_ssl_context,
        timeout: float | None = 5.0,
        keepalive_expiry: float = 5.0,
        max_idle: int = 64,
    ) -> None:
        self._context = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self.timeout = timeout
        self.keepalive_expiry = keepalive_expiry
        self.max_idle = max_idle
        self._wires: dict[tuple[str, str, int, str | None], Wire] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"WireTransport({sorted(map(repr, self._wires.values()))})"

    @property
    def connections(self) -> int:
        """Connections opened (for tests and the benchmark)."""
        return sum(wire.connections for wire in self._wires.values())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` over a kept-alive connection to its origin; its answer, read.

        Raises:
            httpx.TransportError: It could not be sent or its answer read.
        """
        url = request.url
        scheme = url.scheme
        default = _PORTS.get(scheme)
        if default is None:
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'."
                if scheme
                else "Request URL is missing an 'http://' or 'https://' protocol."
            )
        extensions = request.extensions
        key: tuple[str, str, int, str | None]
        key = (scheme, url.raw_host.decode("ascii"), url.port or default, None)
        sni = extensions.get("sni_hostname")  # as httpcore's connections take it
        if sni is not None:
            key = (scheme, key[1], key[2], str(sni))
        wire = self._wires.get(key) or self._wire(key)
        timeout: Mapping[str, float | None] | None = extensions.get("timeout")
        reply = await wire.send(
            request.method.encode("ascii"),
            url.raw_path,
            request.headers.raw,
            await request.aread(),
            None
            if timeout is None
            else (timeout.get("connect"), timeout.get("read"), timeout.get("write")),
        )
        return httpx.Response(
            reply.status,
            headers=reply.headers,
            stream=httpx.ByteStream(reply.body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reply.reason},
        )

    def _wire(self, key: tuple[str, str, int, str | None]) -> Wire:
        scheme, host, port, sni = key
        wire = self._wires[key] = Wire(
            scheme=scheme,
            host=host,
            port=port,
            ssl_context=self._tls() if scheme == "https" else None,
            server_hostname=sni,
            timeout=self.timeout,
            keepalive_expiry=self.keepalive_expiry,
            max_idle=self.max_idle,
        )
        if self._closed:  # a request after `aclose`: it keeps nothing
            wire.close()
        return wire

    def _tls(self) -> ssl.SSLContext:
        context = self._ssl
        if context is None:
            made = self._context
            context = self._ssl = made if isinstance(made, ssl.SSLContext) else made()
            context.set_alpn_protocols(["http/1.1"])
        return context

    async def aclose(self) -> None:
        """Close every connection, and any a request under way still opens."""
        self._closed = True
        for wire in self._wires.values():
            wire.close()
