"""Score an incident by hand and read why it scored as it did (the docs' worked example).

Run it with `python examples/explain_a_score.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fido
from fido.scoring import History, Policy, PriorIncident, assess

now = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
host = fido.Host(name="ws-042", ip="10.1.2.3")
user = fido.User("CORP\\bdoe")
payload = fido.Observable.parse("44d88612fea8a8f36de82e1278abb02f")  # an MD5

incident = fido.Incident(
    id="inc-7",
    created_at=now,
    updated_at=now,
    events=(
        fido.Event(
            detector="edr",
            id="a-1",
            time=now,
            title="Trojan detected",
            severity="medium",
            category="malware",
            host=host,
            user=user,
            observables=[payload],
        ),
    ),
)
findings: list[fido.Finding] = [
    fido.Reputation(
        source="virustotal",
        verdict=fido.Verdict.SUSPICIOUS,
        reliability=fido.Reliability.B,
        detections=3,
        total=70,
        subject=payload,
    ),
    fido.Reputation(source="otx", verdict=fido.Verdict.MALICIOUS, subject=payload),
    fido.HostContext(source="cmdb", subject=host, criticality="medium", missing_critical_patches=2),
    fido.UserContext(source="ad", subject=user, title="Engineer", department="Platform"),
]
history = History(
    incidents=[
        PriorIncident(id="inc-3", host="ws-042", at=now - timedelta(hours=2), total=45),
    ]
)

policy = Policy.default()
assessment = assess(incident, findings, history, policy, now)
decision = policy.decide(assessment, history=history)

print(assessment.explain())
print()
print(f"Decision: {decision.level}; actions: {', '.join(decision.action_names) or 'none'}")
print(f"Recommendation: {decision.recommendation}")
