"""Repeat suppression through the public API: a steady stream of alerts on one host."""

from __future__ import annotations

from datetime import datetime, timedelta

import fido
from fido.scoring import Policy
from tests.factories import NOW, event


class Feed:
    name = "my-feed"

    def accepts(self, subject: object) -> bool:
        return isinstance(subject, fido.Observable)

    def enrich(self, subject: fido.Observable) -> fido.Reputation:
        return fido.Reputation(source=self.name, verdict=fido.Verdict.MALICIOUS)


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def respond(self, incident: fido.Incident, action: fido.Action) -> None:
        self.seen.append((incident.id, action.name))


def test_the_same_callback_ten_minutes_later_is_not_handled_twice() -> None:
    """Two alerts 10 minutes apart make two incidents (max_span 5m), on the same host.

    The first scores 60 (high 20 + malicious C 30 + unknown host 10) and is ticketed. The
    second also gets +10 because its hash was seen in the first: 70, but 60 without that
    history point, so it is a repeat within 30 minutes and its responders are not called.
    """
    now = [NOW]

    def clock() -> datetime:
        return now[0]

    collect = Collect()
    pipeline = fido.Pipeline(
        enrichers=[Feed()],
        responders={"notify": [collect], "ticket": [collect]},
        policy=Policy.default() | {"correlation": {"window": "1h", "max_span": "5m"}},
        clock=clock,
    )
    first = pipeline.process(event(id="a-0", time=now[0]))
    now[0] = NOW + timedelta(minutes=10)
    second = pipeline.process(event(id="a-1", time=now[0]))
    assert first.id != second.id
    assert (first.assessment.total, second.assessment.total) == (60, 70)
    assert first.decision.action_names == ("notify", "ticket")
    assert second.decision.level == "ticket"
    assert second.decision.actions == ()
    assert "60 without history points): actions withheld" in second.decision.reason
    assert collect.seen == [(first.id, "notify"), (first.id, "ticket")]
