from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from fido import (
    Criticality,
    Host,
    HostContext,
    InvalidRecord,
    Observable,
    Reliability,
    Reputation,
    User,
    UserContext,
    Verdict,
    _serde,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SHA256 = "44d88612fea8a8f36de82e1278abb02f" * 2


def test_reputation_contract_form() -> None:
    finding = Reputation(source="my-feed", verdict=Verdict.MALICIOUS)
    assert finding.source == "my-feed"
    assert finding.verdict is Verdict.MALICIOUS
    assert finding.reliability is Reliability.C
    assert finding.subject is None
    assert finding.fetched_at is None
    assert finding.from_cache is False
    assert finding.tags == ()


def test_reputation_conversions() -> None:
    finding = Reputation(
        source="vt",
        verdict="Malicious",
        reliability="B - Usually reliable",
        detections=53,
        total=70,
        tags=["doc", "macros", "doc"],
        details={"first_seen": "2020-01-01"},
        fetched_at=datetime(2026, 1, 1),
    )
    assert finding.verdict is Verdict.MALICIOUS
    assert finding.reliability is Reliability.B
    assert finding.tags == ("doc", "macros")
    assert finding.fetched_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert Reputation(source="x", tags="one").tags == ("one",)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"source": ""}, "source"),
        ({"source": "x", "detections": -1}, "detections"),
        ({"source": "x", "detections": 5, "total": 4}, "detections"),
        ({"source": "x", "score": 101}, "score"),
        ({"source": "x", "total": True}, "total"),
        ({"source": "x", "verdict": "evil"}, "verdict"),
        ({"source": "x", "reliability": "Z"}, "reliability"),
        ({"source": "x", "details": {"t": object()}}, "details.t"),
    ],
)
def test_reputation_invalid(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        Reputation(**kwargs)
    assert info.value.field == field


def test_verdict_and_reliability() -> None:
    assert [v.score for v in Verdict] == [0, 1, 2, 3]
    assert Reliability.A.description == "Completely reliable"
    assert Reliability.F.description == "Reliability cannot be judged"
    assert Reliability.parse(" c - fairly reliable") is Reliability.C
    assert [c.rank for c in Criticality] == [0, 1, 2, 3]
    assert Criticality.LOW < Criticality.MEDIUM < Criticality.HIGH < Criticality.CRITICAL
    assert max(Criticality) is Criticality.CRITICAL


def test_provenance_and_age() -> None:
    finding = Reputation(
        source="vt", subject=Observable.parse(SHA256), fetched_at=NOW, from_cache=True
    )
    assert finding.age(NOW + timedelta(minutes=5)) == timedelta(minutes=5)
    assert Reputation(source="vt").age(NOW) is None
    evolved = attrs.evolve(Reputation(source="vt"), subject=Host(name="ws-1"), fetched_at=NOW)
    assert evolved.subject == Host(name="ws-1")


def test_host_context() -> None:
    context = HostContext(
        source="cmdb",
        subject=Host(name="srv-db-01"),
        criticality="High",
        is_server=True,
        av_installed=True,
        av_running=False,
        missing_critical_patches=6,
        groups=("pci",),
    )
    assert context.criticality is Criticality.HIGH
    assert HostContext(source="cmdb").criticality is None
    with pytest.raises(InvalidRecord):
        HostContext(source="cmdb", missing_high_patches=-3)
    with pytest.raises(InvalidRecord):
        HostContext(source="cmdb", criticality="vital")


def test_user_context() -> None:
    context = UserContext(
        source="ad",
        subject=User("CORP\\jadmin"),
        display_name="Jane Admin",
        groups=("Domain Admins", "IT"),
        enabled=True,
        last_logon=datetime(2026, 11, 27, 23, 0, tzinfo=UTC),
    )
    assert context.groups == ("Domain Admins", "IT")
    with pytest.raises(InvalidRecord, match="datetime"):
        UserContext(source="ad", last_logon="yesterday")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "finding",
    [
        Reputation(
            source="vt",
            verdict=Verdict.SUSPICIOUS,
            subject=Observable.parse("1.2.3.4"),
            fetched_at=NOW,
            detections=2,
            total=90,
            details={"k": [1]},
        ),
        HostContext(
            source="cmdb", subject=Host(name="a", ip="10.0.0.1"), criticality="low", last_seen=NOW
        ),
        UserContext(source="ad", subject=User("bdoe"), password_last_set=NOW, groups=("g",)),
    ],
)
def test_findings_round_trip(finding: Reputation | HostContext | UserContext) -> None:
    data = json.loads(json.dumps(_serde.dump(finding)))
    assert _serde.load(type(finding), data) == finding
