"""`WireTransport` as an httpx transport, `_Pools`, and the fallback to httpx without h11."""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import sys
import time
import types
from typing import Any

import h11
import httpx
import pytest

from fido.adapters import _http_client, _http_wire
from fido.adapters._http import HttpError
from fido.adapters._http_wire import Reply, Wire, WireTransport
from tests.test_http_wire import RawServer, Seen, client_of, reply, serve

# -- WireTransport under an httpx.AsyncClient ------------------------------------------------


def test_an_async_client_sends_through_the_wire_as_through_any_transport() -> None:
    hooks: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        hooks.append(f"request {request.url.path}")

    async def on_response(response: httpx.Response) -> None:
        hooks.append(f"response {response.status_code}")

    async def body(server: RawServer) -> list[httpx.Response]:
        transport = WireTransport(timeout=2.0)
        async with httpx.AsyncClient(
            base_url=server.url,
            transport=transport,
            event_hooks={"request": [on_request], "response": [on_response]},
        ) as client:
            got = [await client.get(f"files/{n}", params={"n": n}) for n in range(3)]
            assert transport.connections == 1  # kept alive, reused
            return got

    answers = serve(lambda seen: reply(200, b'{"a": 1}', "X-Thing: yes"), body)
    assert [r.json() for r in answers] == [{"a": 1}] * 3
    first = answers[0]
    assert first.http_version == "HTTP/1.1"
    assert first.reason_phrase == "X"
    assert first.headers["x-thing"] == "yes"
    assert str(first.url).endswith("/api/files/0?n=0")  # merged with base_url by httpx
    assert first.elapsed.total_seconds() > 0  # timed by the client, as over httpx's own
    assert hooks[:2] == ["request /api/files/0", "response 200"]


def test_cookies_are_kept_as_httpx_keeps_them() -> None:
    def script(seen: Seen) -> bytes:
        if seen.target.endswith("/login"):
            return reply(200, b"{}", "Set-Cookie: session=abc; Path=/api/")
        return reply()

    async def body(server: RawServer) -> dict[str, list[str | None]]:
        seen: dict[str, list[str | None]] = {}
        for name, transport in (
            ("wire", WireTransport()),
            ("httpx", httpx.AsyncHTTPTransport()),
        ):
            server.seen.clear()
            async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
                for path in ("before", "login", "after"):
                    await client.get(path)
                await client.get(server.url.replace("/api/", "/other/x"))  # not its path
            seen[name] = [s.header("cookie") for s in server.seen]
        return seen

    seen = serve(script, body)
    assert seen["wire"] == seen["httpx"] == [None, None, "session=abc", None]


def test_an_http_client_keeps_cookies_as_its_httpx_client_does() -> None:
    def script(seen: Seen) -> bytes:
        return (
            reply(200, b"{}", "Set-Cookie: token=t1; Path=/")
            if seen.target.endswith("/a")
            else reply()
        )

    async def body(server: RawServer) -> list[str | None]:
        http = client_of(server)
        try:
            await http.get_json("a")
            await http.get_json("b")
            return [s.header("cookie") for s in server.seen]
        finally:
            await http.aclose()

    assert serve(script, body) == [None, "token=t1"]


def test_a_redirect_is_not_followed() -> None:
    async def body(server: RawServer) -> tuple[httpx.Response | None, HttpError, int]:
        http = client_of(server, max_attempts=1)
        try:
            kept = await http.request("GET", "moved", ok=(302,))
            with pytest.raises(HttpError) as caught:
                await http.get_json("moved")
            return kept, caught.value, len(server.seen)
        finally:
            await http.aclose()

    moved = reply(302, b"", "Location: /api/elsewhere")
    kept, error, requests = serve(lambda seen: moved, body)
    assert kept is not None
    assert kept.status_code == 302
    assert kept.next_request is not None  # httpx's: what following it would send
    assert str(error) == "GET moved: HTTP 302"
    assert error.retryable is False
    assert requests == 2  # neither was followed


def test_a_request_body_reaches_the_server() -> None:
    async def body(server: RawServer) -> Seen:
        http = client_of(server)
        try:
            await http.request("POST", "search", json_body={"q": "x"})
            return server.seen[0]
        finally:
            await http.aclose()

    seen = serve(lambda seen: reply(), body)
    assert (seen.method, seen.target, seen.body) == ("POST", "/api/search", b'{"q":"x"}')
    assert seen.header("content-type") == "application/json"


def test_a_header_that_would_inject_another_is_refused_before_sending() -> None:
    async def body(server: RawServer) -> int:
        async with httpx.AsyncClient(base_url=server.url, transport=WireTransport()) as client:
            with pytest.raises(httpx.LocalProtocolError):
                await client.get("a", headers={"x-bad": "a\r\nInjected: 1"})
        return len(server.seen)

    assert serve(lambda seen: reply(), body) == 0


def test_timeouts_are_the_requests_own_else_the_transports() -> None:
    async def never(seen: Seen) -> None:
        await asyncio.sleep(5)

    async def body(server: RawServer) -> list[float]:
        spent = []
        transport = WireTransport(timeout=0.1)
        async with httpx.AsyncClient(transport=transport, timeout=0.2) as client:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.get(server.url)  # the client's timeout, 0.2 s
            spent.append(time.monotonic() - started)
        bare = WireTransport(timeout=0.1)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):  # no timeout extension: the transport's
            await bare.handle_async_request(httpx.Request("GET", server.url))
        spent.append(time.monotonic() - started)
        await bare.aclose()
        return spent

    client_timeout, transport_timeout = serve(lambda seen: never, body)
    assert 0.2 <= client_timeout < 1.0
    assert 0.1 <= transport_timeout < 0.2


def test_closing_the_client_closes_the_connections() -> None:
    async def body(server: RawServer) -> tuple[int, int]:
        transport = WireTransport()
        client = httpx.AsyncClient(base_url=server.url, transport=transport)
        await client.get("a")
        [wire] = transport._wires.values()
        [idle] = wire._idle
        await client.aclose()
        assert idle.stream.transport is None  # closed
        assert not wire._idle
        # the transport itself, after aclose, still answers but keeps nothing
        got = await transport.handle_async_request(httpx.Request("GET", f"{server.url}b"))
        assert got.status_code == 200
        assert not wire._idle
        return transport.connections, server.connections

    assert serve(lambda seen: reply(), body) == (2, 2)


def test_the_sni_hostname_extension_and_an_unsupported_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def send(self: Wire, *args: Any) -> Reply:
        return Reply(200, b"OK", [], b"")

    monkeypatch.setattr(Wire, "send", send)

    async def main() -> None:
        transport = WireTransport(ssl_context=ssl.create_default_context())
        request = httpx.Request(
            "GET", "https://10.0.0.1/x", extensions={"sni_hostname": "intel.example"}
        )
        await transport.handle_async_request(request)
        [(key, wire)] = transport._wires.items()
        assert key == ("https", "10.0.0.1", 443, "intel.example")
        assert wire.server_hostname == "intel.example"  # as httpcore takes it
        for url, message in (
            ("ftp://intel.example/x", "unsupported protocol 'ftp://'"),
            ("//intel.example/x", "missing an 'http://' or 'https://' protocol"),
        ):
            with pytest.raises(httpx.UnsupportedProtocol, match=message):
                await transport.handle_async_request(httpx.Request("GET", url))

    asyncio.run(main())


def test_the_tls_context_is_made_once_and_only_for_https() -> None:
    made: list[ssl.SSLContext] = []

    def context() -> ssl.SSLContext:
        made.append(ssl.create_default_context())
        return made[-1]

    transport = WireTransport(ssl_context=context)
    assert transport._tls() is transport._tls()
    assert len(made) == 1
    plain = WireTransport(ssl_context=context)
    plain._wire(("http", "intel.example", 80, None))
    assert len(made) == 1  # plain http makes none


# -- _Pools --------------------------------------------------------------------------------


def test_pools_spread_requests_and_count_them_out_when_read() -> None:
    served: list[int] = []

    def slow(number: int) -> httpx.MockTransport:
        async def handler(request: httpx.Request) -> httpx.Response:
            served.append(number)
            await asyncio.sleep(0.01)
            if request.url.path.endswith("/fail"):
                raise httpx.ConnectError("refused")
            if request.url.path.endswith("/read"):
                return httpx.Response(200, json=[1])
            return httpx.Response(200, stream=httpx.ByteStream(b"[]"))

        return httpx.MockTransport(handler)

    pools = _http_client._Pools([slow(n) for n in range(4)])

    async def main() -> None:
        async with httpx.AsyncClient(base_url="https://intel.example/", transport=pools) as c:
            answers = await asyncio.gather(*(c.get(f"x/{n}") for n in range(8)))
            assert all(a.json() == [] for a in answers)
            assert pools.load == [0, 0, 0, 0]  # every answer read and closed
            with pytest.raises(httpx.ConnectError):
                await c.get("fail")
            assert pools.load == [0, 0, 0, 0]
            assert (await c.get("read")).json() == [1]  # an answer made already read
            assert pools.load == [0, 0, 0, 0]

    asyncio.run(main())
    assert sorted(served[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]  # two each, none queued


# -- without h11 ----------------------------------------------------------------------------


def without_wire(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType | None) -> None:
    """Make `import fido.adapters._http_wire` run again, `module` as h11 (None: absent)."""
    monkeypatch.delitem(sys.modules, "fido.adapters._http_wire")
    monkeypatch.setitem(sys.modules, "h11", module)


def fake_h11(version: str, *missing: str) -> types.ModuleType:
    """An h11 of another version, with what the wire uses but `missing`."""
    fake = types.ModuleType("h11")
    for name in _http_wire._H11_NAMES:
        if name not in missing:
            setattr(fake, name, getattr(h11, name))
    fake.__version__ = version  # type: ignore[attr-defined]
    return fake


def test_the_h11_at_hand_is_used() -> None:
    assert _http_client._wire_transport() is WireTransport
    assert _http_wire._h11_version() >= (0, 13)


@pytest.mark.parametrize(
    "module",
    [None, fake_h11("0.12.0"), fake_h11("unknown"), fake_h11("0.16.0", "Connection")],
    ids=["absent", "too-old", "no-version", "lacking"],
)
def test_without_a_usable_h11_the_wire_is_not_used(
    monkeypatch: pytest.MonkeyPatch, module: types.ModuleType | None
) -> None:
    without_wire(monkeypatch, module)
    assert _http_client._wire_transport() is None
    assert "fido.adapters._http_wire" not in sys.modules  # a failed import leaves nothing


def test_without_h11_requests_go_over_httpx_small_pools(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    without_wire(monkeypatch, None)

    async def body(server: RawServer) -> tuple[Any, httpx.AsyncBaseTransport]:
        http = client_of(server, concurrency=10)
        try:
            answers = await asyncio.gather(*(http.get_json(f"files/{n}") for n in range(12)))
            client, _ = http._setup()
            assert http._wire is None
            assert http.connections == 0
            return answers, client._transport
        finally:
            await http.aclose()

    answers, transport = serve(lambda seen: reply(200, b"[1]"), body)
    assert answers == [[1]] * 12
    assert isinstance(transport, _http_client._Pools)
    assert len(transport.transports) == math.ceil(10 / _http_client._POOL)  # as main had
    assert all(isinstance(t, httpx.AsyncHTTPTransport) for t in transport.transports)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "HTTP/1.1 connections are not available" in caplog.text  # a debug line only
