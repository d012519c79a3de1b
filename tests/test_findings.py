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
from fido._findings import stamped

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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A", Reliability.A),
        ("f", Reliability.F),
        (" c - fairly reliable", Reliability.C),
        ("C - Fairly reliable", Reliability.C),
        ("C: Fairly Reliable", Reliability.C),
        ("c  -  fairly   reliable ", Reliability.C),
        ("D Not usually reliable", Reliability.D),
        ("F - Reliability cannot be judged", Reliability.F),
    ],
)
def test_reliability_parse(text: str, expected: Reliability) -> None:
    assert Reliability.parse(text) is expected
    assert Reputation(source="x", reliability=text).reliability is expected


@pytest.mark.parametrize(
    "text",
    [
        "Completely reliable",  # read as C before: its first letter
        "Fairly reliable",  # read as F
        "Excellent",  # read as E
        "C - Completely reliable",
        "A+ - 3rd party enrichment",
        "CC",
        "",
        "G",
        "C -",
        5,
        None,
    ],
)
def test_reliability_parse_refuses(text: object) -> None:
    with pytest.raises(InvalidRecord, match="letter from A to F") as info:
        Reliability.parse(text)  # type: ignore[arg-type]
    assert info.value.field == "reliability"


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (HostContext, {"is_server": "false"}, "is_server"),  # scored as a server before
        (HostContext, {"managed": 1}, "managed"),
        (HostContext, {"av_running": "no"}, "av_running"),
        (HostContext, {"from_cache": 0}, "from_cache"),
        (HostContext, {"from_cache": None}, "from_cache"),
        (HostContext, {"owner": 42}, "owner"),
        (HostContext, {"groups": [1]}, "groups"),
        (HostContext, {"groups": 5}, "groups"),
        (HostContext, {"groups": {"pci": True}}, "groups"),
        (HostContext, {"tags": [["a"]]}, "tags"),
        (HostContext, {"subject": "ws-1"}, "subject"),
        (UserContext, {"privileged": "true"}, "privileged"),
        (UserContext, {"enabled": 0}, "enabled"),
        (UserContext, {"display_name": b"Jane"}, "display_name"),
        (UserContext, {"groups": ("a", None)}, "groups"),
        (Reputation, {"label": 3}, "label"),
        (Reputation, {"link": ["https://x.example/"]}, "link"),
        (Reputation, {"tags": [None]}, "tags"),
    ],
)
def test_finding_types_are_checked(
    cls: type[HostContext | UserContext | Reputation], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRecord) as info:
        cls(source="src", **kwargs)
    assert info.value.field == field
    assert info.value.record == cls.__name__
    assert f"field={field}" in str(info.value)


def test_finding_lists_accept_none_and_one_string() -> None:
    assert HostContext(source="cmdb", tags=None, groups="pci").groups == ("pci",)
    assert HostContext(source="cmdb", tags=None).tags == ()
    assert UserContext(source="ad", groups=iter(["a", "b", "a"])).groups == ("a", "b")
    context = HostContext(source="cmdb", is_server=False, managed=None)
    assert _serde.load_record(HostContext, json.loads(json.dumps(_serde.dump(context)))) == context


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


@pytest.mark.parametrize(
    "finding",
    [
        Reputation(
            source="vt",
            verdict="malicious",
            reliability="B",
            subject=Observable.parse(SHA256),
            detections=40,
            total=70,
            label="trojan.x",
            tags=["a", "b"],
            link="https://vt.example/x",
            details={"stats": {"malicious": 40}},
        ),
        HostContext(source="cmdb", subject=Host(name="a"), criticality="high", groups=["pci"]),
        UserContext(source="ad", subject=User("bdoe"), fetched_at=NOW, groups=("g",)),
    ],
)
def test_stamped_is_evolve_without_checking_again(
    finding: Reputation | HostContext | UserContext,
) -> None:
    later = NOW + timedelta(minutes=5)
    for when, cached in ((later, True), (later.replace(tzinfo=None), False)):
        made = stamped(finding, when, from_cache=cached)
        expected = attrs.evolve(finding, fetched_at=when, from_cache=cached)
        assert made == expected
        assert type(made) is type(finding)
        assert made.fetched_at == later
        assert made.fetched_at.tzinfo is UTC
        assert made.details is finding.details
        assert attrs.asdict(made, recurse=False) == attrs.asdict(expected, recurse=False)
    assert finding.from_cache is False  # the original is left as it was
    with pytest.raises(InvalidRecord, match="from_cache is true or false"):
        stamped(finding, later, from_cache=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match="expected a datetime"):
        stamped(finding, "now", from_cache=True)  # type: ignore[arg-type]


def test_details_are_read_only_and_kept_by_evolve() -> None:
    stats: dict[str, Any] = {"malicious": 3}
    details: dict[str, Any] = {"stats": stats, "names": ["a.exe"]}
    finding = Reputation(source="vt", verdict=Verdict.MALICIOUS, details=details)
    stats["malicious"] = 0  # the caller's dict is copied
    assert finding.details == {"stats": {"malicious": 3}, "names": ["a.exe"]}
    kept: Any = finding.details
    with pytest.raises(TypeError):
        kept["stats"]["malicious"] = 0
    with pytest.raises(TypeError):
        kept["names"].append("b.exe")
    cached = attrs.evolve(finding, from_cache=True)
    assert cached.details is finding.details  # checked once, not again on every cache hit
    data = json.loads(json.dumps(_serde.dump(finding)))
    assert data["details"] == finding.details
    assert _serde.load(Reputation, data) == finding
