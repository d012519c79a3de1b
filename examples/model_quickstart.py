"""The model in one page: build an event from an alert, inspect its indicators, store it.

Run it with `python examples/model_quickstart.py`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import fido

# A Suricata EVE alert as the IDS writes it (trimmed to the fields we use).
eve = {
    "timestamp": "2026-11-28T09:14:03.512345+0000",
    "event_type": "alert",
    "src_ip": "10.1.2.3",
    "dest_ip": "45.33.32.156",
    "alert": {
        "signature_id": 2024897,
        "signature": "ET MALWARE Observed Malicious SSL Cert (Loader C2)",
        "category": "A Network Trojan was detected",
        "severity": 1,
    },
    "tls": {"sni": "update-check[.]example"},
}

event = fido.Event(
    detector="suricata",
    id=f"{eve['alert']['signature_id']}:{eve['timestamp']}",
    time=datetime.strptime(eve["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z"),
    title=eve["alert"]["signature"],
    severity=fido.Severity.from_scale(eve["alert"]["severity"], fido.SeverityScale.SURICATA),
    category="c2",
    host=fido.Host(ip=eve["src_ip"]),
    observables=[eve["dest_ip"], eve["tls"]["sni"]],  # strings are parsed and refanged
    raw=eve,
)

print(f"{event.severity.value.upper()} from {event.detector}: {event.title}")
for observable in event.observables:
    where = "internal: no external look-up" if observable.is_internal else "external"
    print(f"  {observable.kind.value:<7} {observable.defanged():<28} ({where})")

# A finding, as an enricher would return it, with its provenance.
reputation = fido.Reputation(
    source="my-feed",
    verdict=fido.Verdict.MALICIOUS,
    reliability=fido.Reliability.B,
    subject=event.observables[1],
    fetched_at=datetime.now(UTC),
    tags=("loader", "c2"),
)
print(
    f"  {reputation.source} says {reputation.verdict.value} "
    f"({reputation.reliability.value}: {reputation.reliability.description})"
)

# Events are plain data: a lossless JSON round trip, with a schema version.
stored = json.dumps(event.to_dict())
assert fido.Event.from_dict(json.loads(stored)) == event
print(f"  stored as {len(stored)} bytes of JSON (schema {event.to_dict()['schema']})")
