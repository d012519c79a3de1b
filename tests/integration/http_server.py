r"""A real HTTP server on 127.0.0.1 for adapter tests, with faults on demand.

    with FakeService() as service:
        service.route("GET", r"/api/v3/files/(\w+)", json_file("vt3_file_report_malicious_doc.json"))
        service.script("GET", r"/api/v3/domains/.*", [Reply(429, headers={"Retry-After": "1"}), Reply(200, body=...)])
        ...  # point the adapter's base_url at service.url("/api/v3/")
        service.requests  # what arrived: method, path, query, headers, body

A handler is a `Reply`, a list of them (served in turn, the last one repeating), or a
callable `(Request) -> Reply`. A `Reply` may be delayed (`delay=` seconds), reset the
connection (`reset=True`), hang past the client's timeout (`delay` large), or carry any
body (malformed JSON included). Only 127.0.0.1 is ever bound. Each `Request` records when
it arrived (`at`, `time.monotonic()`); `FakeService(tls=context)` serves HTTPS with a
server-side `ssl.SSLContext`.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import attrs

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence
    from types import TracebackType

SAMPLES = Path(__file__).parents[1] / "data" / "intel"


@attrs.frozen
class Request:
    """A request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = 0.0
    """When it arrived (`time.monotonic()`)."""


@attrs.frozen
class Reply:
    """What to answer."""

    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    reset: bool = False


Handler = Reply | list[Reply] | Callable[[Request], Reply]


def json_file(name: str, status: int = 200, directory: Path = SAMPLES) -> Reply:
    """A reply with the bytes of a JSON file as its body."""
    return Reply(status, (directory / name).read_bytes(), {"Content-Type": "application/json"})


class FakeService:
    """A threaded HTTP/1.1 server on 127.0.0.1 and a free port; a context manager."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self._scheme = "https" if tls is not None else "http"
        self._routes: list[tuple[str, re.Pattern[str], Handler, list[int]]] = []
        self._lock = threading.Lock()
        service = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                    at=time.monotonic(),
                )
                reply = service._reply(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    # RST instead of FIN: the client sees "connection reset".
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                body = reply.body
                if not isinstance(body, bytes | str):
                    body = json.dumps(body)
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _serve  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        if tls is not None:  # a failed handshake ends in accept(): the server ignores it
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        """The server's URL for `path`."""
        return f"{self._scheme}://127.0.0.1:{self.port}{path}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer requests whose path fully matches `pattern` (the latest route wins)."""
        with self._lock:
            self._routes.insert(0, (method.upper(), re.compile(pattern), handler, [0]))

    def script(self, method: str, pattern: str, replies: Sequence[Reply]) -> None:
        """Answer with `replies` in turn (the last one repeats)."""
        self.route(method, pattern, list(replies))

    def count(self, pattern: str = ".*") -> int:
        """Requests so far whose path fully matches `pattern`."""
        matcher = re.compile(pattern)
        with self._lock:
            return sum(1 for r in self.requests if matcher.fullmatch(r.path))

    def _reply(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            for method, pattern, handler, turn in self._routes:
                if method == request.method and pattern.fullmatch(request.path):
                    if isinstance(handler, Reply):
                        return handler
                    if isinstance(handler, list):
                        index = min(turn[0], len(handler) - 1)
                        turn[0] += 1
                        return handler[index]
                    break
            else:
                return Reply(404, {"error": "no route"})
        return handler(request)  # a callable: outside the lock, it may take its time

    def __enter__(self) -> FakeService:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
