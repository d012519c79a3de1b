"""Alerts per second through the whole pipeline, and per-alert latency (p50, p99).

In-process async enrichers (a threat feed and an inventory), a recording responder and the
MemoryStore; every alert is new (no duplicates), on one of 2,000 hosts, with three
observables. Run with `nox -s bench` or `python -m benchmarks.bench_pipeline`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import fido
from fido.testing import StaticEnricher

START = datetime(2026, 11, 28, tzinfo=UTC)


def alerts(count: int, seed: int = 7) -> list[fido.Event]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        host = f"ws-{rng.randrange(2000):04d}"
        events.append(
            fido.Event(
                detector=rng.choice(["edr", "ids", "proxy"]),
                id=f"a-{n}",
                time=START + timedelta(seconds=n * 7),
                title="Suspicious activity",
                severity=rng.choice(list(fido.Severity)),
                category=rng.choice(["malware", "c2", None]),
                host=fido.Host(name=host),
                user=fido.User(f"user{rng.randrange(500)}"),
                observables=[
                    f"{rng.getrandbits(128):032x}",
                    f"host{rng.randrange(5000)}.example",
                    f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
                ],
            )
        )
    return events


class Recorder:
    """An in-process async responder (a real one would post to Slack or Jira)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    async def respond(self, incident: fido.Incident, action: fido.Action) -> None:
        self.calls += 1


def pipeline(events: list[fido.Event]) -> fido.Pipeline:
    bad = {o: fido.Verdict.MALICIOUS for e in events[::5] for o in e.observables[:1]}
    hosts = {
        e.host: fido.HostContext(source="cmdb", criticality="medium")
        for e in events[::3]
        if e.host is not None
    }
    return fido.Pipeline(
        enrichers=[StaticEnricher(bad, name="feed"), StaticEnricher(hosts, name="cmdb")],
        responders={name: [Recorder(name)] for name in ("notify", "ticket", "contain")},
    )


def run(count: int) -> dict[str, float]:
    events = alerts(count)
    with pipeline(events) as through:
        start = time.perf_counter()
        through.process_many(events)
        elapsed = time.perf_counter() - start
    latencies = []
    sample = alerts(min(count, 2000), seed=11)
    with pipeline(sample) as single:
        for event in sample:
            begin = time.perf_counter()
            single.process(event)
            latencies.append(time.perf_counter() - begin)
    latencies.sort()
    return {
        "alerts": count,
        "alerts_per_second": count / elapsed,
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "latency_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps({"benchmark": "pipeline", **run(args.alerts)}, indent=2))


if __name__ == "__main__":
    main()
