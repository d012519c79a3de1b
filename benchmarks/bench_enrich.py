"""Look-ups per second through the VirusTotal adapter against a fake VirusTotal.

The fake (benchmarks/fake_virustotal.py) runs in a child process on 127.0.0.1 and answers
every `GET /api/v3/files/{sha256}` after `--latency` seconds (50 ms) with a 14.6 kB v3 file
report. The adapter has its default settings (plan "premium": no client-side rate limit,
concurrency 64, 4 attempts, 30 s of retries) except the API key and base URL; every run
gets a fresh adapter (an empty cache, new connections, a bucket of its own) in a fresh
event loop, and launches all its look-ups at once (`asyncio.gather`). Scenarios:

- `unique`: `--unique` (1,000) distinct sha256. Bound: lookups x latency / concurrency.
- `repeat`: `--repeat` (5,000) look-ups of `--repeat-unique` (500) indicators in random
  order: the server must see exactly one request per indicator (cache + single flight).
  Bound: unique x latency / concurrency.
- `limited`: for each `--rate` (300 answers a second; give several to compare), rate x
  `--limited-seconds` (10) distinct sha256, the server answering 429 with `Retry-After`
  and a `QuotaExceededError` body to requests above the rate in any second: every
  look-up must end with a verdict. Bound: lookups / rate (the steady rate; the server's
  first second lets a burst of `rate` through, so the best possible is a little less).
  When the client cannot send `rate` requests a second (its CPU), the server never
  needs to say 429: give a lower rate too to see the bucket learn it.
- `layout`: the `unique` look-ups with the connections laid out as N clients x M
  connections with bare `httpx` (`raw`: one GET and a JSON parse per look-up, the same
  semaphore), to see the cost of large httpx pools (encode/httpx#3215), beside the
  adapter (`fido`), whose direct connections have no such layout (one pool per origin:
  `--pool` and the layouts change only its httpx pools, through a proxy or without h11),
  as a reference. Bare
  httpx runs with the httpcore fix fido makes when it uses httpcore (no failed `import
  sniffio` on each lock, encode/httpcore#1103).

Each scenario runs `--runs` times; the figures are medians, with wall time, the ratio to
the bound, look-ups per second, the client's CPU seconds, the server's requests and the
load average of the machine (other work on it slows the figures down). JSON goes to
standard output. Run with `nox -s bench -- bench_enrich` or
`PYTHONPATH=. python -m benchmarks.bench_enrich [--scenario unique ...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks.fake_virustotal import FakeVirusTotal
from fido import Observable, Reputation
from fido.adapters import _http_client
from fido.adapters.enrichers.virustotal import VirusTotal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TARGETS = {"unique": 1.10, "repeat": 1.25, "limited": 1.25}
"""Wall time allowed, as a multiple of the bound (the issue's targets; `limited`: ours)."""


def sha256s(count: int, seed: int) -> list[Observable]:
    rng = random.Random(seed)
    return [Observable.parse(f"{rng.getrandbits(256):064x}") for _ in range(count)]


@contextmanager
def pool_size(size: int | None) -> Iterator[None]:
    """Connections per `httpx.AsyncHTTPTransport` of `HttpClient` through a proxy (None: as
    the code has it); its direct connections have one pool per origin, whatever this is."""
    if size is None:
        yield
        return
    before = _http_client._POOL  # noqa: SLF001 - the benchmark compares layouts
    setattr(_http_client, "_POOL", size)  # noqa: B010 - a Final, changed for the measurement only
    try:
        yield
    finally:
        setattr(_http_client, "_POOL", before)  # noqa: B010


async def through_fido(base_url: str, subjects: list[Observable]) -> dict[str, Any]:
    adapter = VirusTotal(api_key=f"bench-{uuid.uuid4().hex}", base_url=base_url)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(
            *(adapter.enrich(s) for s in subjects), return_exceptions=True
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        stats = adapter.stats()
        learned = adapter.bucket.learned
        connections = adapter.http.connections  # fido's own (none through httpx's pools)
    finally:
        await adapter.aclose()
    verdicts = sum(isinstance(r, Reputation) for r in results)
    errors = [str(r) for r in results if isinstance(r, BaseException)]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "verdicts": verdicts,
        "failures": len(errors),
        "first_failure": errors[0] if errors else None,
        "retries": stats["retries"],
        "client_requests": stats["requests"],
        "learned_rate": learned,
        "connections": connections,
    }


async def through_httpx(
    base_url: str, subjects: list[Observable], clients: int, size: int, concurrency: int = 64
) -> dict[str, Any]:
    pools = [
        httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            timeout=httpx.Timeout(10.0, pool=None),
            trust_env=False,
        )
        for _ in range(clients)
    ]
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int, subject: Observable) -> bool:
        async with gate:
            response = await pools[n % clients].get(f"files/{subject.value}")
            return isinstance(response.json(), dict)

    try:
        start, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(one(n, s) for n, s in enumerate(subjects)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        for pool in pools:
            await pool.aclose()
    return {"wall_s": wall, "cpu_s": cpu, "verdicts": sum(results), "failures": 0}


def once(server: FakeVirusTotal, rate: int | None, job: Callable[[], Any]) -> dict[str, Any]:
    """Run `job` (a coroutine factory) once in a fresh event loop, the server reset."""
    server.reset(rate=rate)
    before = server.stats()
    load = os.getloadavg()[0]
    result: dict[str, Any] = asyncio.run(job())
    after = server.stats()
    result["server_requests"] = after["requests"]
    result["server_throttled"] = after["throttled"]
    result["server_connections"] = after["connections"]
    result["server_cpu_s"] = after["cpu_s"] - before["cpu_s"]
    result["load_1min"] = load
    return result


def measure(
    server: FakeVirusTotal,
    runs: int,
    rate: int | None,
    job: Callable[[], Any],
) -> dict[str, Any]:
    """Run `job` `runs` times; the medians and every run."""
    return summarize([once(server, rate, job) for _ in range(runs)])


def summarize(every: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians (and the worst case for verdicts and failures) over runs."""
    walls = [r["wall_s"] for r in every]
    summary = {
        "wall_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "cpu_s": statistics.median(r["cpu_s"] for r in every),
        "server_cpu_s": statistics.median(r["server_cpu_s"] for r in every),
        "server_requests": statistics.median(r["server_requests"] for r in every),
        "verdicts_min": min(r["verdicts"] for r in every),
        "failures_max": max(r["failures"] for r in every),
        "load_1min": statistics.median(r["load_1min"] for r in every),
    }
    return {**summary, "runs": [{k: _round(v) for k, v in r.items()} for r in every]}


def judge(summary: dict[str, Any], lookups: int, bound: float, target: float | None) -> None:
    summary["lookups"] = lookups
    summary["bound_s"] = bound
    summary["lookups_per_s"] = lookups / summary["wall_s"]
    summary["ratio_to_bound"] = summary["wall_s"] / bound
    if target is not None:
        summary["target_ratio"] = target
        summary["ratio_to_target"] = summary["ratio_to_bound"] / target
        summary["met"] = summary["ratio_to_bound"] <= target


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def run(args: argparse.Namespace) -> dict[str, Any]:
    latency, concurrency = args.latency, 64
    out: dict[str, Any] = {}
    with FakeVirusTotal(latency=latency) as server:
        if "unique" in args.scenario:
            subjects = sha256s(args.unique, seed=1)
            with pool_size(args.pool):
                result = measure(
                    server, args.runs, None, lambda: through_fido(server.base_url, subjects)
                )
            judge(result, len(subjects), len(subjects) * latency / concurrency, TARGETS["unique"])
            out["unique"] = result
        if "repeat" in args.scenario:
            distinct = sha256s(args.repeat_unique, seed=2)
            rng = random.Random(3)
            lookups = [distinct[n % len(distinct)] for n in range(args.repeat)]
            rng.shuffle(lookups)
            with pool_size(args.pool):
                result = measure(
                    server, args.runs, None, lambda: through_fido(server.base_url, lookups)
                )
            judge(result, len(lookups), len(distinct) * latency / concurrency, TARGETS["repeat"])
            result["server_requests_expected"] = len(distinct)
            out["repeat"] = result
        if "limited" in args.scenario:
            out["limited"] = {}
            for rate in args.rate:
                subjects = sha256s(round(rate * args.limited_seconds), seed=4)
                with pool_size(args.pool):
                    result = measure(
                        server,
                        args.runs,
                        rate,
                        functools.partial(through_fido, server.base_url, subjects),
                    )
                judge(result, len(subjects), len(subjects) / rate, TARGETS["limited"])
                out["limited"][f"{rate}/s"] = result
        if "layout" in args.scenario:
            # bare httpx with the httpcore fix fido makes whenever it uses httpcore (no
            # failed `import sniffio` per lock): it used to depend on whether fido had
            # used httpcore before in this process; fido's direct connections do not
            _http_client._skip_missing_sniffio()  # noqa: SLF001
            subjects = sha256s(args.unique, seed=5)
            bound = len(subjects) * latency / concurrency
            runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
            for _ in range(args.runs):  # interleaved: a change of load hits every layout
                for size in args.layouts:
                    clients = -(-concurrency // size)
                    with pool_size(size):
                        runs.setdefault((size, "fido"), []).append(
                            once(server, None, lambda: through_fido(server.base_url, subjects))
                        )
                    runs.setdefault((size, "raw"), []).append(
                        once(
                            server,
                            None,
                            functools.partial(
                                through_httpx, server.base_url, subjects, clients, size
                            ),
                        )
                    )
            layouts: dict[str, Any] = {}
            for size in args.layouts:
                name = f"{-(-concurrency // size)}x{size}"
                layouts[name] = {}
                for how in ("fido", "raw"):
                    result = summarize(runs[size, how])
                    judge(
                        result, len(subjects), bound, TARGETS["unique"] if how == "fido" else None
                    )
                    layouts[name][how] = _brief(result)
            out["layout"] = layouts
    return out


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("wall_s", "lookups_per_s", "ratio_to_bound", "cpu_s", "server_cpu_s", "load_1min")
    return {key: _round(result[key]) for key in keys if key in result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        nargs="+",
        choices=["unique", "repeat", "limited", "layout"],
        default=["unique", "repeat", "limited", "layout"],
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario (median)")
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per answer")
    parser.add_argument("--unique", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5000)
    parser.add_argument("--repeat-unique", type=int, default=500)
    parser.add_argument("--limited-seconds", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=int, nargs="+", default=[300], help="server answers a second"
    )
    parser.add_argument(
        "--layouts",
        type=int,
        nargs="+",
        default=[64, 16, 8, 4],
        help="connections per client for `layout` (64: one client of 64)",
    )
    parser.add_argument("--pool", type=int, default=None, help="connections per client")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the client")
    args = parser.parse_args()
    start_load = os.getloadavg()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    figures = run(args)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    report = {
        "benchmark": "enrich",
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in start_load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "httpx": version("httpx"),
            "httpcore": version("httpcore"),
            "argv": sys.argv[1:],
        },
        **{name: _tidy(value) for name, value in figures.items()},
    }
    print(json.dumps(report, indent=2))


def _tidy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return _round(value)


if __name__ == "__main__":
    main()
