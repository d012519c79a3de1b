"""Assessments per second for realistic incidents (issue target: >= 50,000/s on one core).

A realistic incident: two correlated events from two detectors, 5 observables, 6 findings
(4 reputations from 3 sources, host and user context) and a history with sightings and an
earlier incident on the host. Run with `nox -s bench` or `python -m benchmarks.bench_scoring`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

import fido
from fido.scoring import History, Policy, PriorIncident, assess

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def realistic() -> tuple[fido.Incident, list[fido.Finding], History]:
    host = fido.Host(name="ws-042", ip="10.1.2.3")
    user = fido.User("CORP\\bdoe")
    observables = [
        fido.Observable.parse(t)
        for t in (
            "44d88612fea8a8f36de82e1278abb02f" * 2,
            "evil-update.example",
            "hxxp://evil-update[.]example/gate.php",
            "198.51.100.23",
            "invoice.pdf.exe",
        )
    ]
    events = (
        fido.Event(
            detector="edr",
            id="e-1",
            time=NOW,
            title="Trojan detected",
            severity=fido.Severity.HIGH,
            category="malware",
            host=host,
            user=user,
            observables=[observables[0], observables[4]],
        ),
        fido.Event(
            detector="proxy",
            id="p-9",
            time=NOW,
            title="Callback to known C2",
            severity=fido.Severity.MEDIUM,
            category="c2",
            host=host,
            user=user,
            observables=observables[1:4],
        ),
    )
    incident = fido.Incident(id="inc-1", created_at=NOW, updated_at=NOW, events=events)
    findings: list[fido.Finding] = [
        fido.Reputation(
            source="virustotal",
            verdict=fido.Verdict.MALICIOUS,
            reliability=fido.Reliability.B,
            subject=observables[0],
            detections=53,
            total=70,
            fetched_at=NOW,
        ),
        fido.Reputation(
            source="otx", verdict=fido.Verdict.MALICIOUS, subject=observables[0], fetched_at=NOW
        ),
        fido.Reputation(
            source="virustotal",
            verdict=fido.Verdict.SUSPICIOUS,
            reliability=fido.Reliability.B,
            subject=observables[1],
            fetched_at=NOW,
        ),
        fido.Reputation(
            source="abuseipdb",
            verdict=fido.Verdict.BENIGN,
            reliability=fido.Reliability.C,
            subject=observables[3],
            score=3,
            fetched_at=NOW,
        ),
        fido.HostContext(
            source="cmdb",
            subject=host,
            criticality="high",
            is_server=False,
            managed=True,
            av_installed=True,
            av_running=False,
            missing_critical_patches=6,
            groups=("workstations",),
            fetched_at=NOW,
        ),
        fido.UserContext(
            source="active_directory",
            subject=user,
            title="Director of Finance",
            department="Finance",
            groups=("CN=Staff,OU=Groups,DC=corp",),
            enabled=True,
            fetched_at=NOW,
        ),
    ]
    history = History(
        sightings={observables[0]: 2, observables[1]: 6},
        incidents=[
            PriorIncident(id="inc-0", host="ws-042", at=NOW - timedelta(hours=14), total=55)
        ],
    )
    return incident, findings, history


def run(seconds: float) -> dict[str, float]:
    incident, findings, history = realistic()
    policy = Policy.default()
    assessment = assess(incident, findings, history, policy, NOW)
    assert assessment.total == 100, assessment.explain()
    rounds: list[float] = []
    deadline = time.perf_counter() + seconds
    batch = 2000
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(batch):
            assess(incident, findings, history, policy, NOW)
        rounds.append(batch / (time.perf_counter() - start))
    return {
        "assessments_per_second_median": statistics.median(rounds),
        "assessments_per_second_best": max(rounds),
        "microseconds_per_assessment": 1e6 / statistics.median(rounds),
        "contributions": len(assessment.contributions),
        "rounds": len(rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps({"benchmark": "scoring", **run(args.seconds)}, indent=2))


if __name__ == "__main__":
    main()
