from __future__ import annotations

import json
import pickle
import weakref
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from fido import Action, Assessment, Contribution, Decision, Dimension, InvalidRecord
from fido._assessment import make_assessment, make_contribution, printable

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def contribution(
    dimension: str, points: int, reason: str = "why", source: str = "edr"
) -> Contribution:
    return Contribution(
        dimension=dimension,
        points=points,
        reason=reason,
        source=source,
        rule=f"{dimension}.rule",
    )


def assessment() -> Assessment:
    return Assessment(
        threat=55,
        machine=20,
        user=0,
        total=75,
        contributions=[
            contribution("threat", 30, "severity high"),
            contribution("threat", 25, "my-feed says malicious", "my-feed"),
            contribution("machine", 20, "5 or more critical patches missing", "inventory"),
        ],
        combination="threat + machine + user, capped at 100",
        policy="default",
        policy_version="1",
        assessed_at=NOW,
    )


def test_contribution() -> None:
    c = contribution("user", -5, "service account")
    assert c.dimension is Dimension.USER
    assert str(c) == "-5 user: service account [edr; user.rule]"
    with pytest.raises(InvalidRecord, match="dimension"):
        contribution("money", 1)
    with pytest.raises(InvalidRecord, match="integer"):
        Contribution(dimension=Dimension.USER, points=1.5, reason="", source="", rule="")  # type: ignore[arg-type]


def test_the_trusted_constructors_build_ordinary_frozen_records() -> None:
    """The scorer's unchecked constructors give records no one can tell from checked ones."""
    checked = assessment()
    made = make_assessment(
        checked.threat,
        checked.machine,
        checked.user,
        checked.total,
        tuple(
            make_contribution(c.dimension, c.points, c.reason, c.source, c.rule)
            for c in checked.contributions
        ),
        checked.combination,
        checked.policy,
        checked.policy_version,
        NOW,
    )
    assert type(made) is Assessment
    assert all(type(c) is Contribution for c in made.contributions)
    assert made == checked
    assert hash(made.contributions) == hash(checked.contributions)
    assert made.contributions == checked.contributions
    assert repr(made) == repr(checked)
    assert made.to_dict() == checked.to_dict()
    assert pickle.loads(pickle.dumps(made)) == checked  # noqa: S301  # our own bytes
    assert attrs.evolve(made, total=80).total == 80
    assert weakref.ref(made)() is made
    one = made.contributions[0]
    assert weakref.ref(one)() is one
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        one.points = 99  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del one.reason
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.total = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        one.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(one, "__dict__")


def test_empty_assessment() -> None:
    empty = Assessment()
    assert (empty.threat, empty.machine, empty.user, empty.total) == (0, 0, 0, 0)
    assert not empty.assessed
    assert empty.explain() == "Not assessed."


def test_scores_are_bounded() -> None:
    with pytest.raises(InvalidRecord, match="between 0 and 100"):
        Assessment(total=101)
    with pytest.raises(InvalidRecord, match="between 0 and 100"):
        Assessment(threat=-1)


def test_accessors_and_explain() -> None:
    a = assessment()
    assert a.assessed
    assert a.score("threat") == 55
    assert a.score(Dimension.MACHINE) == 20
    assert a.score("user") == 0
    assert [c.points for c in a.contributions_to("threat")] == [30, 25]
    text = a.explain()
    assert (
        text.splitlines()[0]
        == "Total 75/100 = threat + machine + user, capped at 100 (policy default 1)"
    )
    assert "Threat 55/100" in text
    assert "     +30  severity high" in text
    assert "User 0/100\n    (no contributions)" in text
    assert "inventory" in text


def test_round_trips() -> None:
    a = assessment()
    assert Assessment.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    d = Decision(
        level="contain",
        actions=[
            Action(name="notify"),
            Action(
                name="contain",
                requires_approval=True,
                approval_timeout=timedelta(hours=4),
                params={"isolate": True},
            ),
        ],
        recommendation="re-image",
        reason="total 90 reached contain (85)",
        policy="default",
        policy_version="1",
    )
    assert Decision.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert d.action_names == ("notify", "contain")
    assert d.action("contain") is d.actions[1]
    assert d.action("ticket") is None
    with pytest.raises(InvalidRecord) as info:
        Decision.from_dict({"level": 3})
    assert info.value.field == "level"
    assert info.value.record == "Decision"


def test_action_validation() -> None:
    with pytest.raises(InvalidRecord, match="name"):
        Action(name=" ")
    with pytest.raises(InvalidRecord, match="not JSON"):
        Action(name="x", params={"when": NOW})


def test_printable() -> None:
    assert printable("plain text, even ünïcode") == "plain text, even ünïcode"
    assert printable("a\nb\tc\x1b[2J\u2028\x7f") == "a\\nb\\tc\\x1b[2J\\u2028\\x7f"


def test_explain_escapes_stored_reasons() -> None:
    """A contribution loaded from a store may hold a newline: it cannot forge a row."""
    a = Assessment(
        threat=10,
        total=10,
        contributions=[contribution("threat", 10, "pulse\n    +90  forged", "otx\r")],
        assessed_at=NOW,
    )
    lines = a.explain().splitlines()
    assert "     +10  pulse\\n    +90  forged  otx\\r  threat.rule" in lines
    assert not any(line.lstrip().startswith("+90") for line in lines)
