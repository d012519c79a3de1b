# The public contract of DESIGN.md, verbatim: tests/pipeline/test_contract.py runs it.

from datetime import UTC, datetime

import fido
from fido.scoring import Policy

BAD = "44d88612fea8a8f36de82e1278abb02f" * 2  # any 64-hex string: a sha256


class MyFeed:
    """A custom enricher: any object with these members (sync or async methods)."""

    name = "my-feed"

    def accepts(self, subject: object) -> bool:
        return isinstance(subject, fido.Observable) and subject.kind is fido.ObservableKind.SHA256

    async def enrich(self, subject: fido.Observable) -> fido.Reputation | None:
        if subject.value == BAD:
            return fido.Reputation(source=self.name, verdict=fido.Verdict.MALICIOUS)
        return None


class Collect:
    """A custom responder."""

    name = "collect"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def respond(self, incident: fido.Incident, action: fido.Action) -> None:
        self.seen.append((incident.id, action.name))


event = fido.Event(
    detector="edr",
    id="alert-1",
    time=datetime.now(UTC),
    title="Trojan detected",
    severity=fido.Severity.HIGH,
    host=fido.Host(name="ws-042", ip="10.1.2.3"),
    user=fido.User(name="bdoe"),
    observables=[fido.Observable.parse(BAD)],
)
collect = Collect()
pipeline = fido.Pipeline(
    enrichers=[MyFeed()],
    responders={"notify": [collect], "ticket": [collect]},
    policy=Policy.default(),
)
incident = pipeline.process(event)  # in async code and notebooks: await pipeline.aprocess(event)

assert 0 <= incident.assessment.total <= 100
print(incident.assessment.threat, incident.assessment.machine, incident.assessment.user)
for c in incident.assessment.contributions:  # why it scored as it did
    print(c.dimension, c.points, c.reason, c.source)
print([a.name for a in incident.decision.actions], collect.seen)
assert incident.decision.actions, "a known-malicious hash in a high-severity alert must lead to action"
assert collect.seen, "and the responders for those actions must have been called"
