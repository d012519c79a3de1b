"""Crash test: `fido run` killed with SIGKILL at several points, then restarted.

Every alert must end in exactly one incident, and no responder may be called twice for the
same (incident, action), however the kills fall.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import fido
from fido import Host, ResponseStatus, Severity

pytestmark = pytest.mark.integration

FIDO = str(Path(sys.executable).parent / "fido")
ALERTS = 400

CONFIG = """
[store]
type = "sqlite"
path = "fido.sqlite3"

[limits]
concurrency = 4

[[detectors]]
type = "jsonl"
name = "edr"
path = "alerts.jsonl"
interval = "0.2s"
batch = 50

[[enrichers]]
type = "static"
name = "feed"
verdicts = { "44d88612fea8a8f36de82e1278abb02f" = "malicious" }

[[responders]]
type = "jsonl"
name = "log"
actions = ["notify", "ticket", "contain"]
path = "actions.jsonl"
"""


def write_alerts(path: Path) -> None:
    start = datetime(2026, 11, 28, tzinfo=UTC)
    with path.open("w") as stream:
        for n in range(ALERTS):
            event = fido.Event(
                detector="edr",
                id=f"alert-{n}",
                time=start + timedelta(seconds=n),
                title=f"Alert {n}",
                severity=Severity.HIGH,
                # Distinct hosts; every third alert shares one hash, so those 134 alerts
                # correlate into one incident and the others stand alone: 267 incidents,
                # 268 actions (the shared one reaches ticket).
                host=Host(name=f"host-{n}"),
                observables=["44d88612fea8a8f36de82e1278abb02f"] if n % 3 == 0 else [],
            )
            stream.write(json.dumps(event.to_dict()) + "\n")


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sigkill_at_several_points_loses_and_repeats_nothing(tmp_path: Path) -> None:
    (tmp_path / "fido.toml").write_text(CONFIG)
    write_alerts(tmp_path / "alerts.jsonl")
    actions = tmp_path / "actions.jsonl"
    kills = 0
    for target in (30, 90, 160, 230):  # kill once this many actions have been written
        process = subprocess.Popen(  # noqa: S603 - our own command
            [FIDO, "-q", "run", "fido.toml", "--no-progress"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while lines(actions) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    assert kills >= 2, "the kills should fall while work is in flight"
    final = subprocess.run(  # noqa: S603
        [FIDO, "-q", "run", "fido.toml", "--once", "--no-progress", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr

    store = fido.SQLiteStore(tmp_path / "fido.sqlite3")
    try:
        incidents = store.incidents(limit=None)
        assert store.pending_events() == []
        assert store.unfinished_incidents() == []
    finally:
        store.close()
    keys = Counter(e.key for i in incidents for e in i.events)
    assert len(keys) == ALERTS, "every alert ends in an incident"
    assert set(keys.values()) == {1}, "and in only one"
    written = [json.loads(line)["key"] for line in actions.read_text().splitlines()]
    repeated = [k for k, n in Counter(written).items() if n > 1]
    assert repeated == [], "no responder was called twice for the same (incident, action)"
    started = {r.key for i in incidents for r in i.responses if r.status is ResponseStatus.STARTED}
    done = {r.key for i in incidents for r in i.responses if r.status is ResponseStatus.DONE}
    assert set(written) == done | (set(written) & started)
    assert len(done) + len(started) == sum(len(i.decision.actions) for i in incidents)
