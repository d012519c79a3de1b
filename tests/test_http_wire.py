"""`Wire` (asyncio + h11 keep-alive connections) and `HttpClient` over it, on a raw server."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

import fido
from fido.adapters import _http_client
from fido.adapters._http import HttpClient, HttpError
from fido.adapters._http_wire import Reply, Wire, WireTransport, _Stream

T = TypeVar("T")

Action = bytes | tuple[bytes, None] | Callable[["Seen"], Any] | None
"""What the server does with a request: answer these bytes (then close, in a tuple with
None), close (None), or call (a function of the request, maybe async, giving one)."""


class Seen:
    """A request as the raw server read it."""

    def __init__(self, connection: int, head: bytes, body: bytes) -> None:
        self.connection = connection
        self.head = head
        self.body = body
        first, *lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, _ = first.split(" ", 2)
        self.headers = [tuple(line.split(": ", 1)) for line in lines]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def reply(status: int = 200, body: bytes = b"{}", *extra: str, close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *extra]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers each request as `script` says."""

    def __init__(self, script: Callable[[Seen], Action]) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        for handler in self.handlers:
            handler.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers.add(handler)
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                seen = Seen(number, head, b"")
                length = int(seen.header("content-length") or 0)
                seen.body = await reader.readexactly(length) if length else b""
                self.seen.append(seen)
                action = self.script(seen)
                while callable(action):
                    action = action(seen)
                    if asyncio.iscoroutine(action):
                        action = await action
                if action is None:
                    writer.close()
                    return
                data = action[0] if isinstance(action, tuple) else action
                writer.write(data)
                await writer.drain()
                if isinstance(action, tuple):
                    return
        except asyncio.CancelledError:
            return  # the server is closing (the handler must not end cancelled)
        finally:
            writer.close()
            self.handlers.discard(handler)


def wire(server: RawServer, **options: Any) -> Wire:
    options.setdefault("timeout", 2.0)
    return Wire(scheme="http", host="127.0.0.1", port=server.port, ssl_context=None, **options)


HEADERS = [(b"Host", b"127.0.0.1"), (b"User-Agent", b"test")]


def serve(
    script: Callable[[Seen], Action], body: Callable[[RawServer], Coroutine[Any, Any, T]]
) -> T:
    async def main() -> T:
        async with RawServer(script) as server:
            return await body(server)

    return asyncio.run(main())


# -- Wire ----------------------------------------------------------------------------------


def test_connections_are_kept_alive_and_reused() -> None:
    async def body(server: RawServer) -> list[int]:
        pool = wire(server)
        try:
            for n in range(3):
                got = await pool.send(b"GET", f"/api/x{n}".encode(), HEADERS, b"")
                assert (got.status, got.body) == (200, b"{}")
            assert pool.connections == 1
            return [seen.connection for seen in server.seen]
        finally:
            await pool.aclose()

    assert serve(lambda seen: reply(), body) == [1, 1, 1]


def test_concurrent_requests_each_get_a_connection_then_share_them() -> None:
    async def slow(seen: Seen) -> bytes:
        await asyncio.sleep(0.02)
        return reply(body=seen.target.encode())

    async def body(server: RawServer) -> int:
        pool = wire(server)
        try:
            for _ in range(3):
                got = await asyncio.gather(
                    *(pool.send(b"GET", f"/{n}".encode(), HEADERS, b"") for n in range(5))
                )
                assert [g.body for g in got] == [f"/{n}".encode() for n in range(5)]
            return pool.connections
        finally:
            await pool.aclose()

    assert serve(lambda seen: slow, body) == 5


def test_connection_close_and_http_1_0_are_not_reused() -> None:
    answers = iter(
        [reply(close=True), b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", reply(), reply()]
    )

    async def body(server: RawServer) -> list[int]:
        pool = wire(server)
        try:
            for _ in range(4):
                assert (await pool.send(b"GET", b"/", HEADERS, b"")).status == 200
            return [seen.connection for seen in server.seen]
        finally:
            await pool.aclose()

    assert serve(lambda seen: next(answers), body) == [1, 2, 3, 3]


def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def body(server: RawServer) -> list[int]:
        pool = wire(server)
        try:
            await pool.send(b"GET", b"/", HEADERS, b"")
            for writer in server.writers:  # the server drops its idle connection
                writer.close()
            await asyncio.sleep(0.05)
            got = await pool.send(b"GET", b"/", HEADERS, b"")
            assert got.status == 200
            return [seen.connection for seen in server.seen]
        finally:
            await pool.aclose()

    assert serve(lambda seen: reply(), body) == [1, 2]


def test_idle_connections_expire_and_the_oldest_make_room() -> None:
    async def body(server: RawServer) -> tuple[int, int]:
        expiring = wire(server, keepalive_expiry=0.0)
        small = wire(server, max_idle=1)
        try:
            for _ in range(2):
                await expiring.send(b"GET", b"/", HEADERS, b"")
                await asyncio.sleep(0.01)
            await asyncio.gather(*(small.send(b"GET", b"/", HEADERS, b"") for _ in range(2)))
            assert len(small._idle) == 1  # one of the two was closed
            return expiring.connections, small.connections
        finally:
            await expiring.aclose()
            await small.aclose()

    assert serve(lambda seen: reply(), body) == (2, 2)


def test_bodies_chunked_informational_and_close_delimited() -> None:
    answers = iter(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n" + reply(201, b"made"),
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        ]
    )

    def script(seen: Seen) -> Action:
        answer = next(answers)
        return (answer, None) if answer.endswith(b"until the end") else answer

    async def body(server: RawServer) -> list[tuple[int, bytes]]:
        pool = wire(server)
        try:
            return [
                ((got := await pool.send(b"GET", b"/", HEADERS, b"")).status, got.body)
                for _ in range(3)
            ]
        finally:
            await pool.aclose()

    assert serve(script, body) == [(200, b"abcdefg"), (201, b"made"), (200, b"until the end")]


def test_a_request_body_and_its_headers_reach_the_server() -> None:
    async def body(server: RawServer) -> Seen:
        pool = wire(server)
        try:
            await pool.send(b"POST", b"/api/x?a=1", [*HEADERS, (b"Content-Length", b"4")], b"data")
            return server.seen[0]
        finally:
            await pool.aclose()

    seen = serve(lambda seen: reply(), body)
    assert (seen.method, seen.target, seen.body) == ("POST", "/api/x?a=1", b"data")
    assert seen.header("user-agent") == "test"


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (None, httpx.RemoteProtocolError, "Server disconnected without sending a response."),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", httpx.RemoteProtocolError, None),
        (b"NONSENSE\r\n\r\n", httpx.RemoteProtocolError, ""),
    ],
)
def test_broken_answers_are_httpx_errors(
    action: Action, error: type[Exception], message: str | None
) -> None:
    def script(seen: Seen) -> Action:
        if isinstance(action, bytes) and action.endswith(b"abc"):
            return (action, None)  # ten bytes promised, three sent, then closed
        return action

    async def body(server: RawServer) -> BaseException:
        pool = wire(server)
        try:
            with pytest.raises(httpx.TransportError) as caught:
                await pool.send(b"GET", b"/", HEADERS, b"")
            assert not pool._idle  # a broken connection is never kept
            return caught.value
        finally:
            await pool.aclose()

    caught = serve(script, body)
    assert isinstance(caught, error)
    if message:
        assert str(caught) == message


def test_a_read_timeout_and_a_refused_connection() -> None:
    async def never(seen: Seen) -> Action:
        await asyncio.sleep(5)
        return None

    async def body(server: RawServer) -> None:
        pool = wire(server, timeout=0.1)
        started = time.monotonic()
        try:
            with pytest.raises(httpx.ReadTimeout):
                await pool.send(b"GET", b"/", HEADERS, b"")
            assert time.monotonic() - started < 1.0
            assert not pool._idle
            assert not pool._busy
        finally:
            await pool.aclose()
        port = server.port
        server.server.close()  # type: ignore[union-attr]
        await server.server.wait_closed()  # type: ignore[union-attr]
        refused = Wire(scheme="http", host="127.0.0.1", port=port, ssl_context=None, timeout=1.0)
        with pytest.raises(httpx.ConnectError):
            await refused.send(b"GET", b"/", HEADERS, b"")

    serve(lambda seen: never, body)


def test_a_cancelled_request_closes_its_connection() -> None:
    async def slow(seen: Seen) -> bytes:
        await asyncio.sleep(0.2)
        return reply()

    async def body(server: RawServer) -> list[int]:
        pool = wire(server)
        try:
            task = asyncio.ensure_future(pool.send(b"GET", b"/", HEADERS, b""))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not pool._idle
            assert not pool._busy
            assert (await pool.send(b"GET", b"/", HEADERS, b"")).status == 200
            return [seen.connection for seen in server.seen]
        finally:
            await pool.aclose()

    assert serve(lambda seen: slow, body) == [1, 2]


def test_closing_closes_what_is_idle_in_use_and_still_to_come() -> None:
    async def slow(seen: Seen) -> bytes:
        await asyncio.sleep(0.05)
        return reply()

    async def body(server: RawServer) -> None:
        pool = wire(server)
        await pool.send(b"GET", b"/", HEADERS, b"")
        idle = pool._idle[0]
        late = asyncio.ensure_future(pool.send(b"GET", b"/", HEADERS, b""))
        await asyncio.sleep(0.01)
        await pool.aclose()
        assert idle.stream.transport is None
        with pytest.raises(httpx.TransportError):  # its connection was closed under it
            await late
        opened = asyncio.ensure_future(pool.send(b"GET", b"/", HEADERS, b""))
        assert (await opened).status == 200
        assert not pool._idle  # a request after the close keeps nothing

    serve(lambda seen: slow, body)


def test_https_needs_a_context() -> None:
    with pytest.raises(ValueError, match="ssl_context"):
        Wire(scheme="https", host="h", port=443, ssl_context=None, timeout=1.0)
    assert repr(Wire(scheme="http", host="h", port=80, ssl_context=None, timeout=1.0)) == (
        "Wire(http://h:80)"
    )


def test_a_write_waits_for_the_buffer_to_drain_within_its_timeout() -> None:
    class Transport:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            self.written.append(data)

    async def main() -> None:
        stream = _Stream(asyncio.get_running_loop())
        stream.transport = Transport()  # type: ignore[assignment]
        stream.pause_writing()
        with pytest.raises(httpx.WriteTimeout):
            await stream.write(b"a", 0.05)
        asyncio.get_running_loop().call_later(0.02, stream.resume_writing)
        await stream.write(b"b", 1.0)  # drained in time
        stream.connection_lost(OSError("reset"))
        with pytest.raises(httpx.WriteError):
            await stream.write(b"c", 1.0)
        with pytest.raises(httpx.ReadError, match="reset"):
            await stream.read(1.0)

    asyncio.run(main())


# -- HttpClient over Wire ------------------------------------------------------------------


def client_of(server: RawServer, **options: Any) -> HttpClient:
    options.setdefault("backoff", 0.001)
    return HttpClient(
        base_url=server.url, headers={"x-key": "s3cret"}, secrets=("s3cret",), **options
    )


def test_a_get_is_the_request_httpx_builds_byte_for_byte() -> None:
    paths = ("files/abc", "ip_addresses/1.2.3.4", "urls/aHR0cDovL2E-_~", "files/x?y=1")

    async def body(server: RawServer) -> tuple[list[Seen], list[httpx.Request]]:
        http = client_of(server)
        try:
            for path in paths:
                await http.get_json(path)
            client, _ = http._setup()
            return list(server.seen), [client.build_request("GET", path) for path in paths]
        finally:
            await http.aclose()

    seen, built = serve(lambda seen: reply(), body)
    for got, request in zip(seen, built, strict=True):
        assert got.target == request.url.raw_path.decode()
        # the headers as httpx's client makes them, in its order
        assert got.headers == [(k.decode(), v.decode()) for k, v in request.headers.raw]
    assert seen[0].header("user-agent") == f"fido/{fido.__version__}"
    assert seen[0].header("x-key") == "s3cret"
    assert seen[0].header("accept-encoding")  # httpx's defaults, as before


@pytest.mark.parametrize(
    "path",
    [
        "files/a b",
        "files/%41",
        "files/../x",
        "./files/x",
        "/files/x",
        "//other.example/x",
        "ip_addresses/2001:db8::1",
        "files/x?y=1",
        "files/x#frag",
        "files/é",
    ],
)
def test_paths_that_are_not_plain_go_as_httpx_merges_them(path: str) -> None:
    async def body(server: RawServer) -> Seen:
        http = client_of(server)
        try:
            await http.get_json(path)
            return server.seen[0]
        finally:
            await http.aclose()

    seen = serve(lambda seen: reply(), body)
    with httpx.Client(base_url="http://127.0.0.1:1/api/", transport=httpx.BaseTransport()) as c:
        expected = c.build_request("GET", path)
    assert seen.target == expected.url.raw_path.decode("ascii")


def test_an_absolute_url_goes_to_its_own_origin() -> None:
    async def body(server: RawServer) -> tuple[str, int]:
        http = HttpClient(base_url="http://127.0.0.1:9/api/")  # nothing listens there
        try:
            answer = await http.get_json(f"{server.url}page/2", params={"n": "3"})
            assert answer == {}
            assert http._wire is not None
            return server.seen[0].target, len(http._wire._wires)
        finally:
            await http.aclose()

    assert serve(lambda seen: reply(), body) == ("/api/page/2?n=3", 1)


def test_gzip_is_decoded_and_a_body_that_is_not_is_an_error() -> None:
    packed = gzip.compress(json.dumps({"ok": 1}).encode())
    answers = iter(
        [
            reply(200, packed, "Content-Encoding: gzip"),
            reply(200, b"not gzip", "Content-Encoding: gzip"),
        ]
    )

    async def body(server: RawServer) -> tuple[Any, HttpError]:
        http = client_of(server)
        try:
            decoded = await http.get_json("files/a")
            with pytest.raises(HttpError) as caught:
                await http.get_json("files/b")
            return decoded, caught.value
        finally:
            await http.aclose()

    decoded, error = serve(lambda seen: next(answers), body)
    assert decoded == {"ok": 1}
    assert "DecodingError" in str(error)
    assert error.breaks is False
    assert error.retryable is False


def test_responses_are_httpx_responses_with_their_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")

    async def body(server: RawServer) -> httpx.Response | None:
        http = client_of(server)
        try:
            return await http.request("GET", "files/a")
        finally:
            await http.aclose()

    response = serve(lambda seen: reply(200, b'{"a": 1}', "X-Thing: yes"), body)
    assert response is not None
    assert response.json() == {"a": 1}
    assert response.headers["x-thing"] == "yes"
    assert str(response.url).endswith("/api/files/a")
    assert response.request.headers["x-key"] == "s3cret"
    assert response.http_version == "HTTP/1.1"
    assert 0 < response.elapsed.total_seconds() < 5
    response.raise_for_status()
    assert "HTTP Request: GET http://127.0.0.1:" in caplog.text
    assert '/api/files/a "HTTP/1.1 200 X"' in caplog.text


def test_errors_over_the_wire_are_retried_then_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = iter([None, reply(503, b'{"error": {"code": "Busy"}}'), reply(200, b"[1]")])

    async def body(server: RawServer) -> Any:
        http = client_of(server, max_attempts=3)
        try:
            return await http.get_json("files/a", params={"key": "s3cret"})
        finally:
            await http.aclose()

    assert serve(lambda seen: next(answers), body) == [1]
    assert "attempt 1 failed (GET files/a: RemoteProtocolError" in caplog.text
    assert "attempt 2 failed (GET files/a: HTTP 503 (Busy))" in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("fido") and "s3cret" in r.message]


def test_the_first_attempt_counts_toward_the_retry_time() -> None:
    async def slow(seen: Seen) -> bytes:
        await asyncio.sleep(0.3)
        return reply(503)

    async def body(server: RawServer) -> int:
        http = client_of(server, max_attempts=10, max_retry_time=0.45)
        try:
            with pytest.raises(HttpError, match="HTTP 503"):
                await http.get_json("files/a")
            return len(server.seen)
        finally:
            await http.aclose()

    # 0.3 s in after the first, 0.6 s after the second: no third
    assert serve(lambda seen: slow, body) == 2


def test_a_connect_timeout_and_a_header_h11_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(server: RawServer) -> None:
        pool = wire(server)
        try:
            with pytest.raises(httpx.LocalProtocolError):
                await pool.send(b"GET", b"/", [(b"X-Bad", b"a\r\nInjected: 1")], b"")
            assert not server.seen  # nothing was sent
        finally:
            await pool.aclose()
        loop = asyncio.get_running_loop()

        async def hang(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(5)

        monkeypatch.setattr(loop, "create_connection", hang)
        slow = wire(server, timeout=0.05)
        with pytest.raises(httpx.ConnectTimeout):
            await slow.send(b"GET", b"/", HEADERS, b"")

    serve(lambda seen: reply(), body)


def test_an_url_of_another_scheme_is_refused_as_httpx_refuses_it() -> None:
    async def body(server: RawServer) -> HttpError:
        http = client_of(server, max_attempts=1)
        try:
            with pytest.raises(HttpError) as caught:
                await http.get_json("ftp://127.0.0.1/x")
            return caught.value
        finally:
            await http.aclose()

    error = serve(lambda seen: reply(), body)
    assert "UnsupportedProtocol" in str(error)


# -- layouts and ordering ---------------------------------------------------------------


def run(owner: HttpClient, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `body()` on a fresh loop, then close `owner` on that loop."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await owner.aclose()

    return asyncio.run(main())


def test_plain_http_loads_no_ca_bundle() -> None:
    async def body(server: RawServer) -> HttpClient:
        http = client_of(server, verify=True)
        try:
            assert await http.get_json("files/a") == {}
            return http
        finally:
            await http.aclose()

    http = serve(lambda seen: reply(), body)
    assert http._verify is True  # made only for an https connection


def test_a_proxy_goes_through_several_small_httpx_pools() -> None:
    http = HttpClient(
        base_url="https://intel.example/", proxy="http://proxy.example:3128", concurrency=20
    )

    async def layout() -> httpx.AsyncBaseTransport:
        client, _ = http._setup()
        return client._transport

    transport = run(http, layout)
    assert isinstance(transport, _http_client._Pools)
    assert len(transport.transports) == math.ceil(20 / _http_client._POOL)
    assert all(isinstance(t, httpx.AsyncHTTPTransport) for t in transport.transports)
    assert http._wire is None
    assert isinstance(http._verify, ssl.SSLContext)
    assert http._verify.verify_mode is ssl.CERT_REQUIRED


def test_a_request_waiting_for_a_place_goes_out_before_the_answer_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []

    async def answer_json(request: httpx.Request) -> httpx.Response:
        events.append(f"sent {request.url.path.rsplit('/', 1)[1]}")
        await asyncio.sleep(0.01)  # the service takes its time
        return httpx.Response(200, json={"for": request.url.path.rsplit("/", 1)[1]})

    parse = json.loads

    def parsing(data: Any) -> Any:
        found = parse(data)
        events.append(f"read {found['for']}")
        return found

    monkeypatch.setattr(json, "loads", parsing)
    http = HttpClient(
        base_url="https://intel.example/api/",
        transport=httpx.MockTransport(answer_json),
        concurrency=1,
    )

    async def both() -> list[Any]:
        return list(await asyncio.gather(http.get_json("lookup/a"), http.get_json("lookup/b")))

    assert run(http, both) == [{"for": "a"}, {"for": "b"}]
    assert events.index("sent b") < events.index("read a")  # b did not wait for a's JSON
    events.clear()
    assert run(http, lambda: http.get_json("lookup/c")) == {"for": "c"}  # nobody waiting
    assert events == ["sent c", "read c"]


def test_hosts_are_connected_to_as_httpx_would(monkeypatch: pytest.MonkeyPatch) -> None:
    async def send(self: Wire, *args: Any) -> Reply:
        return Reply(200, b"OK", [], b"")

    monkeypatch.setattr(Wire, "send", send)

    async def main() -> list[tuple[str, str, int, str | None]]:
        transport = WireTransport(ssl_context=ssl.create_default_context())
        for url in ("https://bücher.example/api/", "http://[::1]:8080/api/"):
            await transport.handle_async_request(httpx.Request("GET", url))
        return list(transport._wires)

    assert asyncio.run(main()) == [
        ("https", "xn--bcher-kva.example", 443, None),  # IDNA, as httpx's transport connects
        ("http", "::1", 8080, None),
    ]


def test_closing_closes_a_transport_given_as_httpx_client_did() -> None:
    closed: list[bool] = []

    class Closing(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    http = HttpClient(
        base_url="https://intel.example/api/",
        transport=Closing(lambda request: httpx.Response(200, json=[])),
    )
    assert run(http, lambda: http.get_json("x")) == []
    assert closed == [True]
    assert run(http, lambda: http.get_json("x")) == []  # usable again, as before
