"""A fake VirusTotal API v3 on 127.0.0.1 for the enrichment benchmark.

`GET /api/v3/files/{id}` answers, after `latency` seconds, a v3 file object (the sample
report of tests/data/intel with its `id` replaced by the one asked for). With a `rate`,
a request that would make more than `rate` answered requests within the last second gets
`429` with `Retry-After` and VirusTotal's `QuotaExceededError` body instead (after the
same latency). Two control paths, answered at once and not counted:
`GET /_fake/stats` (the counters, as JSON) and `GET /_fake/reset?rate=N&latency=S` (zero
the counters and set the rate, `rate=0` for none, and the latency).

It is a minimal HTTP/1.1 server (keep-alive, pipelining in order, no TLS, no chunked
request bodies) written on `asyncio.Protocol`: a request costs a parse and a timer, so
that thousands of requests a second over many connections leave it far from being the
bottleneck. Run it in a process of its own, as `FakeVirusTotal` does:

    python -m benchmarks.fake_virustotal --latency 0.05   # prints the port, then serves
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from types import TracebackType

SAMPLE = (
    Path(__file__).parents[1] / "tests" / "data" / "intel" / "vt3_file_report_malicious_doc.json"
)
PREFIX = "/api/v3/files/"
_QUOTA = json.dumps(
    {"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}},
    separators=(",", ":"),
).encode()
_REASONS = {200: b"OK", 404: b"Not Found", 429: b"Too Many Requests"}


def report_template() -> tuple[bytes, bytes, bytes]:
    """The sample report, minified, split around its id: (before, after, sample id)."""
    report = json.loads(SAMPLE.read_text(encoding="utf-8"))
    ident: str = report["data"]["id"]
    text = json.dumps(report, separators=(",", ":"))
    marker = "\x00ID\x00"
    before, after = text.replace(ident, marker).split(marker, 1)
    # the id appears in links and attributes too: those keep the sample's (harmless)
    return before.encode(), after.replace(marker, ident).encode(), ident.encode()


class Service:
    """The server's state: settings and counters, shared by every connection."""

    def __init__(self, latency: float, rate: int | None) -> None:
        self.latency = latency
        self.rate = rate
        self.before, self.after, _ = report_template()
        self.reset(latency, rate)

    def reset(self, latency: float, rate: int | None) -> None:
        self.latency = latency
        self.rate = rate or None
        self.requests = 0
        self.answered = 0
        self.throttled = 0
        self.ids: set[bytes] = set()
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.window: collections.deque[float] = collections.deque()
        self.first: float | None = None
        self.last: float | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "throttled": self.throttled,
            "unique_ids": len(self.ids),
            "connections": self.connections,
            "max_open_connections": self.max_open,
            "span_s": (self.last - self.first) if self.first and self.last else 0.0,
            "rate": self.rate,
            "latency": self.latency,
            "cpu_s": time.process_time(),
        }

    def admit(self, now: float) -> float | None:
        """None if the request may be answered now, else the seconds to come back in."""
        if self.rate is None:
            return None
        window = self.window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate:
            return window[0] + 1.0 - now
        window.append(now)
        return None

    def answer(self, method: bytes, target: bytes) -> tuple[int, bytes, dict[bytes, bytes], bool]:
        """(status, body, extra headers, delayed) for one request."""
        if target.startswith(b"/_fake/"):
            return self.control(target.decode("latin-1"))
        if method != b"GET" or not target.startswith(PREFIX.encode()):
            return 404, b'{"error":{"code":"NotFoundError","message":"no such path"}}', {}, True
        ident = target[len(PREFIX) :].split(b"?", 1)[0]
        now = time.monotonic()
        self.requests += 1
        if self.first is None:
            self.first = now
        self.last = now
        again = self.admit(now)
        if again is not None:
            self.throttled += 1
            seconds = str(max(1, math.ceil(again))).encode()
            return 429, _QUOTA, {b"Retry-After": seconds}, True
        self.answered += 1
        self.ids.add(ident)
        return 200, b"".join((self.before, ident, self.after)), {}, True

    def control(self, target: str) -> tuple[int, bytes, dict[bytes, bytes], bool]:
        parts = urlsplit(target)
        if parts.path == "/_fake/reset":
            query = parse_qs(parts.query)
            rate = int(query.get("rate", ["0"])[0])
            latency = float(query.get("latency", [str(self.latency)])[0])
            self.reset(latency, rate)
        body = json.dumps(self.stats()).encode()
        return 200, body, {}, False


class Connection(asyncio.Protocol):
    """One keep-alive connection: parse requests as bytes arrive, answer after the latency."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.pending: collections.deque[bytes | None] = collections.deque()
        self.sent_base = 0
        """How many responses this connection has sent (the index of `pending[0]`)."""
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        service = self.service
        service.connections += 1
        service.open += 1
        service.max_open = max(service.max_open, service.open)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.open -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].split(b"\r\n")
            length = 0
            keep_alive = True
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or b"0")
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep_alive = False
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, target, _ = [*head[0].split(b" ", 2), b"", b""][:3]
            status, body, headers, delayed = self.service.answer(method, target)
            response = self.render(status, body, headers, keep_alive=keep_alive)
            self.pending.append(None)
            slot = len(self.pending) - 1 + self.sent_base
            if delayed and self.service.latency > 0:
                self.loop.call_later(self.service.latency, self.ready, slot, response)
            else:
                self.ready(slot, response)
            if not keep_alive:
                self.close_after = True
                return

    def ready(self, slot: int, response: bytes) -> None:
        """Send the responses that are ready, in the order their requests came."""
        index = slot - self.sent_base
        if index < 0 or index >= len(self.pending):
            return
        self.pending[index] = response
        out = []
        while self.pending and self.pending[0] is not None:
            out.append(self.pending.popleft())
            self.sent_base += 1
        if out and self.transport is not None:
            self.transport.write(b"".join(part for part in out if part is not None))
            if self.close_after and not self.pending:
                self.transport.close()

    @staticmethod
    def render(status: int, body: bytes, headers: dict[bytes, bytes], *, keep_alive: bool) -> bytes:
        lines = [
            b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown")),
            b"Content-Type: application/json",
            b"Content-Length: %d" % len(body),
            b"Connection: keep-alive" if keep_alive else b"Connection: close",
        ]
        lines += [name + b": " + value for name, value in headers.items()]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def serve(port: int, latency: float, rate: int | None) -> None:
    """Serve on 127.0.0.1 until standard input closes; print the port first."""
    service = Service(latency, rate)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Connection(service), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(bound, flush=True)
    stdin_closed = loop.create_future()

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 65536) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with server:
        await stdin_closed


class FakeVirusTotal:
    """The fake server in a child process: `with FakeVirusTotal() as vt: vt.base_url`."""

    def __init__(self, latency: float = 0.05, rate: int | None = None) -> None:
        self.latency = latency
        self.rate = rate
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> FakeVirusTotal:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [
                sys.executable,
                "-m",
                "benchmarks.fake_virustotal",
                "--latency",
                str(self.latency),
                "--rate",
                str(self.rate or 0),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[1],
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip():
            self.__exit__(None, None, None)
            raise RuntimeError("the fake VirusTotal did not start")
        self.port = int(line)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the server stops when its standard input closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def base_url(self) -> str:
        """What to give the adapter as `base_url`."""
        return f"http://127.0.0.1:{self.port}/api/v3/"

    def _control(self, path: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def stats(self) -> dict[str, Any]:
        """The counters: requests, answered, throttled, unique ids, connections..."""
        return self._control("/_fake/stats")

    def reset(self, rate: int | None = None, latency: float | None = None) -> None:
        """Zero the counters; set the rate (None: no limit) and the latency."""
        self.rate = rate
        if latency is not None:
            self.latency = latency
        self._control(f"/_fake/reset?rate={rate or 0}&latency={self.latency}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--rate", type=int, default=0, help="answers a second (0: no limit)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency, args.rate or None))


if __name__ == "__main__":
    main()
