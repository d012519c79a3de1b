"""The durable pipeline end to end: `pipeline.run()` with the SQLiteStore.

Two figures:

- throughput: alerts per second through the run loop (poll, store the event, dedup,
  correlate, enrich, score, decide, respond, save) with the SQLite store on disk and warm
  enrichment caches (in-process enrichers that answer at once: what a cached look-up costs),
  `concurrency` events at once, on one core;
- memory: the peak resident set size while `--memory-alerts` alerts (default 1,000,000)
  stream through the same loop (run in its own process, so that the throughput run's
  allocations do not count).

The alerts: one a second (in alert time), each on one of `--hosts` (20,000) hosts and 500
users, with a file hash, a domain and an IP address; one domain in seven is known bad, and
one host in three is in the inventory. Alerts on one host an hour apart or less join one
incident (up to the policy's `max_span` of a day); so do alerts that share an observable
with an incident active within the hour. The domains come from a pool of `--domains`
(200,000) and the IP addresses from 45.0.0.0/8 (16.7 million): most alerts carry a domain
no other host reported within the hour, as in an organisation whose common domains are
allowlisted, and a host alerts every five and a half hours on average.

Smaller pools show how correlation chains (the worst case rather than the usual one):
with `--hosts 2000` every host alerts every half hour, so its incident stays active all
day and keeps its domains joinable; by some 50,000 alerts the chance coincidences of
200,000 domains have chained them into incidents of hundreds of events across hundreds of
hosts. With `--domains 5000` every domain recurs within the hour and incidents chain from
the start, up to `Limits.max_events` (500). Each later event of such an incident costs what
the incident holds (its hosts' earlier incidents, its observables' sightings, its whole
assessment).

Beside the rates (over the whole run, and over its last tenth, once the store is large),
the report says how the alerts correlated (incidents, events per incident).

Run with `nox -s bench -- bench_durable` or `python -m benchmarks.bench_durable`; pass
`--memory-alerts 0` to skip the long memory run.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fido

START = datetime(2026, 11, 28, tzinfo=UTC)
HOSTS = 20_000
DOMAINS = 200_000


class Synthetic:
    """A detector that makes `total` alerts, `batch` per poll; the cursor is a count."""

    interval = 0.01

    def __init__(
        self, total: int, batch: int = 500, domains: int = DOMAINS, hosts: int = HOSTS
    ) -> None:
        self.name = "edr"
        self.total = total
        self.batch = batch
        self.domains = domains
        self.hosts = hosts

    def parse(self, payload: Any) -> list[fido.Event]:
        return [fido.Event.from_dict(payload)]

    def poll(self, cursor: str | None) -> tuple[list[fido.Event], str | None]:
        first = int(cursor or 0)
        last = min(self.total, first + self.batch)
        return [alert(n, self.domains, self.hosts) for n in range(first, last)], str(last)


def alert(n: int, domains: int = DOMAINS, hosts: int = HOSTS) -> fido.Event:
    """Alert `n`: one of 2,000 hosts and 500 users, three observables (see the module)."""
    rng = random.Random(n)
    return fido.Event(
        detector="edr",
        id=f"a-{n}",
        time=START + timedelta(seconds=n),
        title="Suspicious activity",
        severity=rng.choice(list(fido.Severity)),
        category=rng.choice(["malware", "c2", None]),
        host=fido.Host(name=f"ws-{rng.randrange(hosts):05d}"),
        user=fido.User(f"user{rng.randrange(500)}"),
        observables=[
            f"{rng.getrandbits(128):032x}",
            f"host{rng.randrange(domains)}.example",
            f"45.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        ],
    )


class Recorder:
    """An in-process async responder (a real one would post to Slack or Jira)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def respond(self, incident: fido.Incident, action: fido.Action) -> None:
        return None


class Feed:
    """A threat feed in process, every answer cached: `hostN.example` is bad when 7 | N.

    (A rule rather than a table of every bad domain, so that the feed itself weighs
    nothing in the memory figure.)
    """

    name = "feed"

    def accepts(self, subject: object) -> bool:
        if not isinstance(subject, fido.Observable) or subject.kind is not DOMAIN:
            return False
        number = subject.value.removeprefix("host").removesuffix(".example")
        return number.isdigit() and int(number) % 7 == 0

    async def enrich(self, subject: fido.Observable) -> fido.Reputation | None:
        if not self.accepts(subject):
            return None
        return fido.Reputation(
            source=self.name, verdict=fido.Verdict.MALICIOUS, reliability=fido.Reliability.C
        )


class Inventory:
    """A CMDB in process, every answer cached: one host in three is known."""

    name = "cmdb"

    def __init__(self, hosts: int = HOSTS) -> None:
        self._known = {
            fido.Host(name=f"ws-{n:05d}"): fido.HostContext(source="cmdb", criticality="medium")
            for n in range(0, hosts, 3)
        }

    def accepts(self, subject: object) -> bool:
        return subject in self._known

    async def enrich(self, subject: fido.Host) -> fido.HostContext | None:
        return self._known.get(subject)


DOMAIN = fido.ObservableKind.DOMAIN


def pipeline(path: Path, total: int, domains: int = DOMAINS, hosts: int = HOSTS) -> fido.Pipeline:
    return fido.Pipeline(
        detectors=[Synthetic(total, domains=domains, hosts=hosts)],
        enrichers=[Feed(), Inventory(hosts)],
        responders={name: [Recorder(name)] for name in ("notify", "ticket", "contain")},
        store=fido.SQLiteStore(path / "fido.sqlite3"),
    )


def rss_mb() -> float:
    """The resident set size now, in MB (Linux)."""
    with open("/proc/self/statm") as stream:  # noqa: PTH123 - a proc file
        pages = int(stream.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def incident_sizes(path: Path) -> dict[str, Any]:
    """How the alerts correlated: incidents, and events per incident (read-only SQL)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        counts = [n for (n,) in db.execute("SELECT event_count FROM incidents")]
    counts.sort()
    return {
        "incidents": len(counts),
        "events_per_incident_mean": round(statistics.fmean(counts), 1) if counts else 0,
        "events_per_incident_p50": counts[len(counts) // 2] if counts else 0,
        "events_per_incident_max": counts[-1] if counts else 0,
        "incidents_at_max_events": sum(1 for n in counts if n >= fido.Limits().max_events),
    }


def run(total: int, domains: int = DOMAINS, hosts: int = HOSTS) -> dict[str, Any]:
    marks: list[tuple[int, float, float]] = []
    start = time.perf_counter()

    def progress(snapshot: dict[str, Any]) -> None:
        done = snapshot["processed"]
        if not marks or done - marks[-1][0] >= max(1, total // 20):
            marks.append((done, round(rss_mb(), 1), round(time.perf_counter() - start, 2)))
            print(f"{done} processed, rss {marks[-1][1]} MB", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as directory:
        with pipeline(Path(directory), total, domains, hosts) as through:
            start = time.perf_counter()
            through.run(exit_when_idle=True, handle_signals=False, on_progress=progress)
            elapsed = time.perf_counter() - start
            counters = through.stats()["counters"]
        size = sum(f.stat().st_size for f in Path(directory).iterdir())
        shape = incident_sizes(Path(directory) / "fido.sqlite3")
    # The rate over the last tenth of the run: what it settles at once the store is large.
    last = marks[-1] if marks else (0, 0.0, 0.0)
    first = max((m for m in marks if m[0] <= total * 0.9), default=last)
    settled = (last[0] - first[0]) / (last[2] - first[2]) if last[2] > first[2] else None
    return {
        "alerts": total,
        "domains": domains,
        "hosts": hosts,
        "seconds": round(elapsed, 2),
        "alerts_per_second": round(total / elapsed),
        "alerts_per_second_last_tenth": None if settled is None else round(settled),
        "processed": counters.get("processed", 0),
        "store_bytes": size,
        **shape,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "processed_rss_mb_seconds": marks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--memory-alerts", type=int, default=1_000_000)
    parser.add_argument(
        "--domains", type=int, default=DOMAINS, help="the pool of domains (see above)"
    )
    parser.add_argument("--hosts", type=int, default=HOSTS, help="the hosts (see above)")
    parser.add_argument("--only", type=int, help=argparse.SUPPRESS)  # the memory child
    args = parser.parse_args()
    if args.only is not None:
        print(json.dumps(run(args.only, args.domains, args.hosts)))
        return
    report: dict[str, Any] = {
        "benchmark": "durable",
        "throughput": run(args.alerts, args.domains, args.hosts),
    }
    if args.memory_alerts:
        child = subprocess.run(  # noqa: S603 - this very module
            [
                sys.executable,
                "-m",
                "benchmarks.bench_durable",
                "--only",
                str(args.memory_alerts),
                "--domains",
                str(args.domains),
                "--hosts",
                str(args.hosts),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        report["memory"] = json.loads(child.stdout)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
