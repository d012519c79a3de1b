"""SQLiteStore at scale: history and correlation latency, and saves per second.

A store file in a temporary directory is filled with 200,000 incidents holding 1,000,000
observable rows (5 per incident, drawn from 250,000 distinct indicators, so each is seen
in about 4 incidents) and 400,000 host-key rows (a name and an IP per incident, 20,000
hosts) over a year. The filling writes rows straight into the store's tables (the
store creates the schema first) through a plain `sqlite3` connection to the file, in one
transaction, with executemany: through `save_incident` it would take minutes. The filler
incidents' JSON is a small valid incident, since the measured queries read only the
indexed columns. Then it measures, on that file:

- `history(...)` for an incident with 5 observables and 1 host (2 host keys), as the
  scorer calls it (look-back 30 days, excluding the incident itself);
- `find_open_incident(...)` for the same subjects, with a 1-hour window either side;
- `save_incident` + `get_incident` per second for a typical incident (2 events,
  5 observables, 6 findings), each with a new id.

Run with `nox -s bench -- bench_store` or `python -m benchmarks.bench_store`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

import fido
from benchmarks.bench_scoring import realistic
from fido._sqlite import SQLiteStore
from fido._sqlite_schema import dump_json, iso

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def _indicator(n: int) -> str:
    return "sha256:" + hashlib.sha256(n.to_bytes(8, "big")).hexdigest()


def fill(db: sqlite3.Connection, *, incidents: int, per_incident: int, seed: int = 7) -> None:
    """Write the filler rows straight into the store's tables (one transaction)."""
    rng = random.Random(seed)
    pool = [_indicator(n) for n in range(max(1, incidents * per_incident // 4))]
    hosts = max(1, incidents // 10)
    filler = dump_json(fido.Incident(id="filler", created_at=NOW, updated_at=NOW).to_dict())
    rows: list[tuple[Any, ...]] = []
    host_rows: list[tuple[Any, ...]] = []
    observable_rows: list[tuple[Any, ...]] = []
    for n in range(incidents):
        first = NOW - YEAR + timedelta(seconds=rng.uniform(0, YEAR.total_seconds()))
        last = first + timedelta(seconds=rng.uniform(0, 7200))
        opened = int(rng.random() < 0.1)
        status = "open" if opened else "closed"
        first_s, last_s = iso(first), iso(last)
        incident_id = f"inc-{n:07d}"
        rows.append((incident_id, status, first_s, last_s, first_s, last_s, 40, "notify", filler))
        host = rng.randrange(hosts)
        keys = (f"ws-{host:05d}", f"10.{host >> 16}.{(host >> 8) & 255}.{host & 255}")
        host_rows.extend((incident_id, key, opened, last_s) for key in keys)
        observable_rows.extend(
            (incident_id, key, opened, last_s) for key in rng.sample(pool, per_incident)
        )
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO incidents (id, status, created_at, updated_at, first_seen, last_seen,"
        " total, level, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    columns = "(incident_id, key, open, last_seen) VALUES (?, ?, ?, ?)"
    db.executemany(f"INSERT INTO incident_hosts {columns}", host_rows)
    db.executemany(f"INSERT INTO incident_observables {columns}", observable_rows)
    db.execute("COMMIT")


def _latency(call: Callable[[int], object], rounds: int) -> dict[str, float]:
    samples: list[float] = []
    for i in range(rounds):
        start = time.perf_counter_ns()
        call(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 1),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
        "calls": len(samples),
    }


def _subjects(
    db: sqlite3.Connection, count: int, seed: int = 11
) -> list[tuple[str, list[str], list[fido.Observable], datetime]]:
    """Real incidents of the filled file: (id, host keys, 5 observables, last seen)."""
    rng = random.Random(seed)
    total = db.execute("SELECT count(*) FROM incidents").fetchone()[0]
    chosen = []
    for _ in range(count):
        incident_id = f"inc-{rng.randrange(total):07d}"
        hosts = [
            k
            for (k,) in db.execute(
                "SELECT key FROM incident_hosts WHERE incident_id = ?", (incident_id,)
            )
        ]
        observables = [
            fido.Observable(*k.split(":", 1))
            for (k,) in db.execute(
                "SELECT key FROM incident_observables WHERE incident_id = ?", (incident_id,)
            )
        ]
        (last,) = db.execute(
            "SELECT last_seen FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        chosen.append((incident_id, hosts, observables, datetime.fromisoformat(last)))
    return chosen


def run(incidents: int, per_incident: int, rounds: int, saves: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        SQLiteStore(path).close()  # creates the schema
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            start = time.perf_counter()
            fill(db, incidents=incidents, per_incident=per_incident)
            filled = time.perf_counter() - start
            subjects = _subjects(db, 200)
        size = path.stat().st_size
        with SQLiteStore(path) as store:

            def history(i: int) -> object:
                incident_id, hosts, observables, last = subjects[i % len(subjects)]
                return store.history(
                    observables=observables,
                    hosts=hosts,
                    since=last - timedelta(days=30),
                    exclude=incident_id,
                )

            def correlate(i: int) -> object:
                _, hosts, observables, last = subjects[i % len(subjects)]
                return store.find_open_incident(
                    hosts=hosts,
                    observables=observables,
                    start=last - timedelta(hours=1),
                    end=last + timedelta(hours=1),
                    first_after=last - timedelta(days=1),
                )

            sample = history(0)
            assert isinstance(sample, fido.scoring.History)
            results: dict[str, Any] = {
                "history": _latency(history, rounds),
                "find_open_incident": _latency(correlate, rounds),
            }
            incident, findings, _ = realistic()
            typical = attrs.evolve(incident, findings=tuple(findings))
            start = time.perf_counter()
            for n in range(saves):
                saved = attrs.evolve(typical, id=f"bench-{n}")
                store.save_incident(saved)
                assert store.get_incident(saved.id) is not None
            elapsed = time.perf_counter() - start
            results["save_and_get"] = {
                "pairs_per_second": round(saves / elapsed),
                "microseconds_per_pair": round(elapsed / saves * 1e6, 1),
                "incident_json_bytes": len(dump_json(typical.to_dict())),
            }
    return {
        "incidents": incidents,
        "observable_rows": incidents * per_incident,
        "host_key_rows": incidents * 2,
        "fill_seconds": round(filled, 1),
        "file_megabytes": round(size / 1e6, 1),
        **results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=200_000)
    parser.add_argument("--observables-per-incident", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--saves", type=int, default=2000)
    args = parser.parse_args()
    figures = run(args.incidents, args.observables_per_incident, args.rounds, args.saves)
    print(json.dumps({"benchmark": "store", **figures}, indent=2))


if __name__ == "__main__":
    main()
