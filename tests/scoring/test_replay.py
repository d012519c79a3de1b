from __future__ import annotations

from datetime import timedelta

import attrs

import fido
from fido import Reliability, Severity
from fido.scoring import Change, Comparison, History, Policy, PriorIncident, assess, replay
from tests.factories import NOW, SHA256, event, host_context, incident, reputation

POLICY = Policy.default()


def stored(
    inc: fido.Incident, policy: Policy = POLICY, history: History = History.EMPTY
) -> fido.Incident:
    """An incident as the pipeline stores it: assessed and decided under `policy`."""
    a = assess(inc, inc.findings, history, policy, inc.updated_at)
    return attrs.evolve(inc, assessment=a, decision=policy.decide(a, history=history))


def test_replay_under_the_same_policy_changes_nothing() -> None:
    incidents = [
        stored(incident(findings=[reputation(source="my-feed")])),
        stored(incident(event(severity=Severity.LOW, host=fido.Host(name="other")))),
    ]
    comparison = replay(incidents, POLICY)
    assert isinstance(comparison, Comparison)
    assert len(comparison.changes) == 2
    assert comparison.changed == ()
    assert comparison.summary().startswith(
        "Replayed 2 incidents under policy default 1: 0 decisions would change."
    )


def test_replay_reports_what_changes_and_why() -> None:
    inc = stored(incident(findings=[reputation(source="my-feed")]))  # total 60: ticket
    stricter = POLICY | {
        "policy": {"name": "quiet", "version": "2"},
        "threat": {"reliability": {"C": 0.2, "D": 0.1, "E": 0.1, "F": 0.1}},
    }
    comparison = replay([inc], stricter)
    [change] = comparison.changed
    assert isinstance(change, Change)
    assert change.before.total == 60
    assert change.after.total == 40  # 20 + 50 x 0.2 + unknown 10
    assert (change.before_decision.level, change.after_decision.level) == ("ticket", "notify")
    assert change.reasons == (
        "threat.verdicts.malicious: +30 -> +10",
        "total: 60 -> 40",
        "level: ticket -> notify (from 30)",
    )
    assert comparison.transitions() == {("ticket", "notify"): 1}
    text = comparison.summary()
    assert "policy quiet 2: 1 decisions would change" in text
    assert "  ticket -> notify: 1" in text
    assert f"{inc.id}: ticket (60) -> notify (40)" in text
    assert "    threat.verdicts.malicious: +30 -> +10" in text


def test_replay_rebuilds_history_from_the_incidents() -> None:
    first = stored(
        incident(created_at=NOW - timedelta(hours=13), updated_at=NOW - timedelta(hours=13))
    )
    # severity high 20; the inventory knows the host (no unknown-host points): total 20
    second = stored(incident(findings=[host_context()]))  # stored without history
    comparison = replay([second, first], POLICY)
    assert [c.incident_id for c in comparison.changes] == [first.id, second.id]
    after = comparison.changes[1].after
    by_rule = {c.rule: c.points for c in after.contributions}
    # SHA256 was seen in one earlier incident (+10); the host had one 13 hours ago (+25)
    assert by_rule["threat.sightings"] == 10
    assert by_rule["threat.host_history"] == 25
    assert comparison.changes[1].reasons == (
        "threat.host_history: +0 -> +25",
        "threat.sightings: +0 -> +10",
        "total: 20 -> 55",
        "level: log -> notify (from 30)",
    )


def test_replay_with_a_history_provider_and_repeat_suppression() -> None:
    inc = stored(incident(findings=[reputation(reliability=Reliability.C)]))
    recent = History(
        incidents=[PriorIncident(id="x", host="ws-042", at=NOW - timedelta(minutes=5), total=90)]
    )
    comparison = replay([inc], POLICY, history=lambda _: recent)
    [change] = comparison.changes
    assert change.after_decision.actions == ()
    assert change.changed  # same level, but the actions are withheld now
    assert "repeat of incident x" in change.after_decision.reason
    assert change.reasons == (
        "repeat of incident x on host ws-042 5m ago, which scored 90 (now 60): actions withheld",
    )
    # and back: replayed without that history, the actions are no longer withheld
    suppressed = attrs.evolve(inc, decision=change.after_decision)
    [back] = replay([suppressed], POLICY).changes
    assert back.after_decision.action_names == ("notify", "ticket")
    assert back.reasons == ("no longer a repeat within the window: actions not withheld",)


def test_replay_says_why_when_only_a_threshold_moves() -> None:
    """Total 20 stays 20; notify now starts at 15, so log becomes notify."""
    inc = stored(incident(findings=[host_context()]))  # high 20, a known host: 20, log
    lower = POLICY | {
        "decision": {
            "levels": [
                {"name": "suppress", "min": 0},
                {"name": "log", "min": 10},
                {"name": "notify", "min": 15, "actions": ["notify"]},
            ]
        }
    }
    [change] = replay([inc], lower).changed
    assert change.reasons == ("level: log -> notify (from 15)",)
    gated = POLICY | {
        "decision": {
            "levels": [
                {"name": "quiet", "min": 0},
                {"name": "notify", "min": 15, "min_threat": 30, "actions": ["notify"]},
            ]
        }
    }
    [held] = replay([inc], gated).changed
    assert held.after_decision.level == "quiet"
    assert held.reasons == ("level: log -> quiet (from 0; notify also needs threat 30)",)


def test_replay_sees_approval_changes() -> None:
    """Same level and actions; ticket now needs approval, contain's timeout changes."""
    inc = stored(incident(findings=[reputation(reliability=Reliability.A)]))  # 80: ticket
    assert inc.decision.action_names == ("notify", "ticket")
    approve = POLICY | {"decision": {"actions": {"ticket": {"requires_approval": True}}}}
    [change] = replay([inc], approve).changed
    assert change.after_decision.action_names == ("notify", "ticket")
    assert change.reasons == ("ticket: requires approval",)
    timed = approve | {"decision": {"actions": {"ticket": {"approval_timeout": "1h"}}}}
    before = stored(incident(findings=[reputation(reliability=Reliability.A)]), approve)
    [later] = replay([before], timed).changed
    assert later.reasons == ("ticket: approval timeout none -> 1h",)
    released = replay([before], POLICY).changed
    assert [c.reasons for c in released] == [("ticket: no longer requires approval",)]
    assert replay([before], approve).changed == ()


def test_replay_of_an_unassessed_incident() -> None:
    comparison = replay([incident()], POLICY)
    [change] = comparison.changes
    assert change.before.assessed is False
    assert change.before_decision.level == ""
    assert change.changed
    assert str(change).startswith(f"{change.incident_id}: - (0) -> notify (30)")
    assert SHA256  # the default event carries it
