"""Table-driven tests: one table per rule of the default policy."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

import fido
from fido import (
    Criticality,
    Dimension,
    Host,
    InvalidRecord,
    Reliability,
    ScoringError,
    Severity,
    User,
    Verdict,
)
from fido.scoring import AssetGroup, History, Policy, PriorIncident, assess
from tests.factories import (
    NOW,
    event,
    host_context,
    incident,
    reputation,
    sha,
    user_context,
)

POLICY = Policy.default()


def points(
    inc: fido.Incident,
    findings: list[fido.Finding] | None = None,
    history: History = History.EMPTY,
    *,
    rule: str,
    policy: Policy = POLICY,
) -> int:
    """The points the contributions of rules starting with `rule` add up to."""
    assessment = assess(inc, inc.findings if findings is None else findings, history, policy, NOW)
    return sum(c.points for c in assessment.contributions if c.rule.startswith(rule))


# -- threat -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.INFO, 0),
        (Severity.LOW, 5),
        (Severity.MEDIUM, 10),
        (Severity.HIGH, 20),
        (Severity.CRITICAL, 30),
    ],
)
def test_severity(severity: Severity, expected: int) -> None:
    assert points(incident(event(severity=severity)), rule="threat.severity") == expected


def test_severity_takes_the_highest_event() -> None:
    inc = incident(event(severity=Severity.LOW), event(severity=Severity.CRITICAL, detector="ids"))
    assessment = assess(inc, [], History.EMPTY, POLICY, NOW)
    [c] = [c for c in assessment.contributions if c.rule.startswith("threat.severity")]
    assert (c.points, c.source, c.rule) == (30, "ids", "threat.severity.critical")


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        ((None,), 0),
        (("recon",), 0),
        (("phishing",), 5),
        (("malware",), 10),
        (("c2",), 15),
        (("malware", "ransomware"), 25),
        (("ransomware", "c2"), 25),
    ],
)
def test_category_counts_the_best_once(categories: tuple[str | None, ...], expected: int) -> None:
    inc = incident(*(event(category=c) for c in categories))
    assert points(inc, rule="threat.categories") == expected


@pytest.mark.parametrize(
    ("verdict", "reliability", "expected"),
    [
        (Verdict.MALICIOUS, Reliability.A, 50),
        (Verdict.MALICIOUS, Reliability.B, 40),
        (Verdict.MALICIOUS, Reliability.C, 30),
        (Verdict.MALICIOUS, Reliability.D, 20),
        (Verdict.MALICIOUS, Reliability.E, 10),
        (Verdict.MALICIOUS, Reliability.F, 15),
        (Verdict.SUSPICIOUS, Reliability.A, 20),
        (Verdict.SUSPICIOUS, Reliability.C, 12),
        (Verdict.UNKNOWN, Reliability.A, 0),
        (Verdict.BENIGN, Reliability.A, -10),
        (Verdict.BENIGN, Reliability.C, -6),
    ],
)
def test_verdict_weighted_by_reliability(
    verdict: Verdict, reliability: Reliability, expected: int
) -> None:
    inc = incident(findings=[reputation(verdict, reliability=reliability)])
    assert points(inc, rule="threat.verdicts") == expected


@pytest.mark.parametrize(
    ("reliabilities", "expected"),
    [
        # sorted by weight: 50, then 40 x 0.5 = 20, then 30 x 0.25 = 7.5, 20 x 0.125 = 2.5
        ((Reliability.A,), [50]),
        ((Reliability.A, Reliability.B), [50, 20]),
        ((Reliability.B, Reliability.A), [50, 20]),
        ((Reliability.C, Reliability.B, Reliability.A), [50, 20, 8]),
        ((Reliability.A, Reliability.B, Reliability.C, Reliability.D), [50, 20, 8, 2]),
    ],
)
def test_intel_corroboration_has_diminishing_returns(
    reliabilities: tuple[Reliability, ...], expected: list[int]
) -> None:
    findings: list[fido.Finding] = [
        reputation(source=f"feed-{r.value}", reliability=r) for r in reliabilities
    ]
    assessment = assess(incident(), findings, History.EMPTY, POLICY, NOW)
    got = [c.points for c in assessment.contributions if c.rule == "threat.verdicts.malicious"]
    assert got == expected
    assert "corroborating (x0.5)" in assessment.explain() or len(expected) == 1


def test_each_subject_counts_on_its_own() -> None:
    domain = fido.Observable.parse("evil.example")
    inc = incident(event(observables=[sha(), domain]))
    findings: list[fido.Finding] = [
        reputation(source="vt", reliability=Reliability.A),
        reputation(source="vt", reliability=Reliability.A, subject=domain),
    ]
    assert points(inc, findings, rule="threat.verdicts") == 100


def test_a_benign_verdict_is_corroboration_too() -> None:
    findings: list[fido.Finding] = [
        reputation(source="vt", reliability=Reliability.A),
        reputation(Verdict.BENIGN, source="allow", reliability=Reliability.C),
    ]
    # 50, then -6 x 0.5 = -3
    assert points(incident(), findings, rule="threat.verdicts") == 47


@pytest.mark.parametrize(("detectors", "expected"), [(1, 0), (2, 10), (3, 15), (4, 18), (5, 19)])
def test_independent_detectors(detectors: int, expected: int) -> None:
    events = [event(detector=f"det-{n}") for n in range(detectors)]
    assert points(incident(*events), rule="threat.corroboration") == expected


def test_detectors_must_share_a_host_or_observable() -> None:
    first = event(detector="edr")
    second = event(detector="ids", host=Host(name="other"), observables=["evil.example"])
    assert points(incident(first, second), rule="threat.corroboration") == 0
    third = event(detector="proxy", host=Host(name="third"), observables=["evil.example"])
    assert points(incident(first, second, third), rule="threat.corroboration") == 10


@pytest.mark.parametrize(("seen", "expected"), [(0, 0), (1, 10), (4, 10), (5, 20), (50, 20)])
def test_sightings(seen: int, expected: int) -> None:
    history = History(sightings={sha(): seen} if seen else {})
    assert points(incident(), history=history, rule="threat.sightings") == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(minutes=10), 0),
        (timedelta(hours=3, minutes=59), 0),
        (timedelta(hours=4), 15),
        (timedelta(hours=11), 15),
        (timedelta(hours=12), 25),
        (timedelta(days=5), 25),
        (timedelta(hours=-1), 0),  # in the future of `now`: not history
    ],
)
def test_host_history(age: timedelta, expected: int) -> None:
    history = History(incidents=[PriorIncident(id="old", host="ws-042", at=NOW - age, total=40)])
    assert points(incident(), history=history, rule="threat.host_history") == expected


def test_host_history_takes_the_best_tier() -> None:
    history = History(
        incidents=[
            PriorIncident(id="a", host="ws-042", at=NOW - timedelta(hours=5), total=40),
            PriorIncident(id="b", host="ws-042", at=NOW - timedelta(days=2), total=40),
        ]
    )
    assessment = assess(incident(), [], history, POLICY, NOW)
    [c] = [c for c in assessment.contributions if c.rule == "threat.host_history"]
    assert c.points == 25
    assert c.reason == "host ws-042 had incident b 2d ago"


@pytest.mark.parametrize(
    ("age", "ago"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=59), "0s"),  # whole minutes only
        (timedelta(minutes=45), "45m"),
        (timedelta(hours=14), "14h"),
        (timedelta(hours=4, minutes=5, seconds=30), "4h5m"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(days=1, minutes=1), "1d1m"),
        (timedelta(days=3, hours=1, minutes=7), "3d1h7m"),
    ],
)
def test_host_history_says_how_long_ago(age: timedelta, ago: str) -> None:
    """The age is written in whole minutes, the way policy durations are written."""
    policy = POLICY | {"threat": {"host_history": [{"after": "0s", "points": 5}]}}
    history = History(incidents=[PriorIncident(id="old", host="ws-042", at=NOW - age, total=40)])
    assessment = assess(incident(), [], history, policy, NOW)
    [c] = [c for c in assessment.contributions if c.rule == "threat.host_history"]
    assert c.reason == f"host ws-042 had incident old {ago} ago"


# -- machine ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({}, {}),
        ({"criticality": Criticality.LOW}, {}),
        ({"criticality": Criticality.MEDIUM}, {"machine.criticality.medium": 5}),
        ({"criticality": Criticality.HIGH}, {"machine.criticality.high": 15}),
        ({"criticality": Criticality.CRITICAL}, {"machine.criticality.critical": 25}),
        ({"is_server": True}, {"machine.server": 10}),
        ({"is_server": False}, {}),
        ({"managed": False}, {"machine.unmanaged": 15}),
        ({"av_installed": False}, {"machine.posture.av_not_installed": 50}),
        # the original FIDO also added "not running" here: counted once now
        ({"av_installed": False, "av_running": False}, {"machine.posture.av_not_installed": 50}),
        ({"av_installed": True, "av_running": False}, {"machine.posture.av_not_running": 50}),
        ({"missing_critical_patches": 4}, {}),
        ({"missing_critical_patches": 5}, {"machine.posture.critical_patches": 20}),
        ({"missing_high_patches": 9}, {}),
        ({"missing_high_patches": 10}, {"machine.posture.high_patches": 5}),
        ({"groups": ("PCI",)}, {"machine.asset_groups.pci": 25}),
        ({"groups": ("Domain Controllers",)}, {"machine.asset_groups.domain controllers": 30}),
    ],
)
def test_machine_facts(facts: dict[str, Any], expected: dict[str, int]) -> None:
    inc = incident(findings=[host_context(**facts)])
    assessment = assess(inc, inc.findings, History.EMPTY, POLICY, NOW)
    got = {c.rule: c.points for c in assessment.contributions_to(Dimension.MACHINE)}
    assert got == expected


def test_unknown_host() -> None:
    assessment = assess(incident(), [], History.EMPTY, POLICY, NOW)
    [c] = assessment.contributions_to(Dimension.MACHINE)
    assert (c.rule, c.points, c.reason) == (
        "machine.unknown",
        10,
        "host ws-042 is not in any inventory",
    )
    no_host = incident(event(host=None))
    assert assess(no_host, [], History.EMPTY, POLICY, NOW).machine == 0


def test_sources_merge_worst_case_first() -> None:
    findings: list[fido.Finding] = [
        host_context(
            source="cmdb",
            criticality=Criticality.MEDIUM,
            av_installed=True,
            av_running=True,
            missing_critical_patches=1,
        ),
        host_context(
            source="edr", criticality=Criticality.HIGH, av_running=False, missing_critical_patches=7
        ),
    ]
    assessment = assess(incident(findings=findings), findings, History.EMPTY, POLICY, NOW)
    got = {c.rule: (c.points, c.source) for c in assessment.contributions_to("machine")}
    assert got == {
        "machine.criticality.high": (15, "edr"),
        "machine.posture.av_not_running": (50, "edr"),
        "machine.posture.critical_patches": (20, "edr"),
    }


def test_asset_groups_by_cidr_and_hostname() -> None:
    policy = POLICY | {
        "machine": {
            "asset_groups": [
                {"name": "pos", "points": 40, "hostnames": ["pos-*"]},
                {"name": "card data", "points": 35, "cidrs": ["10.20.0.0/16", "2001:db8:cd::/48"]},
            ]
        }
    }
    pos = incident(event(host=Host(name="POS-0042.stores.example")))
    assert points(pos, rule="machine.asset_groups", policy=policy) == 40
    cde = incident(event(host=Host(name="x", ip="10.20.3.4")))
    assert points(cde, rule="machine.asset_groups", policy=policy) == 35
    v6 = incident(event(host=Host(name="x", ip="2001:db8:cd::9")))
    assert points(v6, rule="machine.asset_groups", policy=policy) == 35
    # the original FIDO matched the PCI range as a string prefix: 10.2.x is not 10.20/16
    near = incident(event(host=Host(name="x", ip="10.2.0.1")))
    assert points(near, rule="machine.asset_groups", policy=policy) == 0


def test_the_most_exposed_host_counts() -> None:
    safe = Host(name="ws-1")
    exposed = Host(name="db-1")
    inc = incident(event(host=safe), event(host=exposed, detector="ids"))
    findings: list[fido.Finding] = [
        host_context(safe, criticality=Criticality.LOW),
        host_context(exposed, criticality=Criticality.CRITICAL, is_server=True),
    ]
    assert assess(inc, findings, History.EMPTY, POLICY, NOW).machine == 35


# -- user ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({}, {}),
        ({"groups": ("CN=Domain Admins,CN=Users,DC=corp,DC=example",)}, {"user.privileged": 30}),
        ({"groups": ("Enterprise Admins", "Domain Admins")}, {"user.privileged": 30}),
        ({"groups": ("CN=Domain Admins Readers,OU=x",)}, {}),
        ({"privileged": True}, {"user.privileged": 30}),
        ({"title": "Chief Financial Officer"}, {"user.titles": 25}),
        ({"title": "Senior VP, Sales"}, {"user.titles": 25}),
        ({"title": "Supervisor"}, {}),
        # whole words and phrases: a sales "Account Executive" is not an executive
        ({"title": "Account Executive"}, {}),
        ({"title": "Executive Assistant to the CFO"}, {"user.titles": 25}),
        ({"title": "VPN Engineer"}, {}),
        ({"title": "Directory Engineer"}, {}),
        ({"department": "Finance & Accounting"}, {"user.departments": 30}),
        ({"department": "Threat Research"}, {}),
        ({"enabled": False}, {"user.disabled": 25}),
        ({"enabled": True}, {}),
        ({"locked": True}, {"user.locked": 10}),
        ({"service_account": True}, {"user.service_account": 15}),
    ],
)
def test_user_facts(facts: dict[str, Any], expected: dict[str, int]) -> None:
    inc = incident(findings=[user_context(**facts)])
    assessment = assess(inc, inc.findings, History.EMPTY, POLICY, NOW)
    got = {c.rule: c.points for c in assessment.contributions_to(Dimension.USER)}
    assert got == expected


@pytest.mark.parametrize(
    ("group", "name"),
    [
        ("Domain Admins", "domain admins"),
        ("  DOMAIN ADMINS ", "domain admins"),
        ("CN=Domain Admins,CN=Users,DC=corp,DC=example", "domain admins"),
        (" cn=Domain Admins ,OU=Groups", "domain admins"),
        ("cN=Domain Admins", "domain admins"),
        (r"CN=Domain Admins\, Tier 0,OU=Groups", "domain admins, tier 0"),
        (r"CN=Tier\=0 Admins,OU=Groups", "tier=0 admins"),
        ("OU=Domain Admins,DC=corp", "ou=domain admins,dc=corp"),
    ],
)
def test_group_names_by_name_or_by_the_cn_of_a_dn(group: str, name: str) -> None:
    """A group is matched by its name or its DN's first CN (escapes undone), ignoring case."""
    policy = POLICY | {"user": {"watch": [{"name": "w", "points": 5, "groups": [name]}]}}
    inc = incident(findings=[user_context(groups=(group,))])
    got = {c.rule for c in assess(inc, inc.findings, History.EMPTY, policy, NOW).contributions}
    assert "user.watch.w" in got


def test_watch_lists() -> None:
    policy = POLICY | {
        "user": {
            "watch": [
                {"name": "assistants", "points": 20, "groups": ["Executive Assistants"]},
                {"name": "vip", "points": 40, "users": ["CEO@corp.example"]},
            ]
        }
    }
    inc = incident(
        event(user=User("jdoe")),
        findings=[
            user_context(
                User("jdoe"), groups=("CN=Executive Assistants,OU=g",), email="ceo@corp.example"
            )
        ],
    )
    got = {
        c.rule: c.points
        for c in assess(inc, inc.findings, History.EMPTY, policy, NOW).contributions_to("user")
    }
    assert got == {"user.watch.assistants": 20, "user.watch.vip": 40}


def test_unknown_user_scores_nothing() -> None:
    assert assess(incident(), [], History.EMPTY, POLICY, NOW).user == 0


# -- one source, unnamed subjects, matching and bad input ---------------------------------


def test_a_source_does_not_corroborate_itself() -> None:
    """Two vt findings on one hash: only the stronger counts (A: 50), not 50 + 25."""
    findings: list[fido.Finding] = [
        reputation(source="vt", reliability=Reliability.A),
        reputation(Verdict.SUSPICIOUS, source="vt", reliability=Reliability.A, label="dup"),
    ]
    a = assess(incident(), findings, History.EMPTY, POLICY, NOW)
    [c] = [c for c in a.contributions if c.rule.startswith("threat.verdicts")]
    assert (c.points, c.rule) == (50, "threat.verdicts.malicious")
    assert "the strongest of its 2 findings on it" in c.reason
    # another source still corroborates: 50, then C 30 x 0.5 = 15
    more = assess(incident(), [*findings, reputation(source="otx")], History.EMPTY, POLICY, NOW)
    got = [c.points for c in more.contributions if c.rule.startswith("threat.verdicts")]
    assert got == [50, 15]


def test_the_strongest_verdict_of_a_source_counts_whatever_the_order() -> None:
    findings: list[fido.Finding] = [
        reputation(Verdict.BENIGN, source="vt", reliability=Reliability.A),
        reputation(source="vt", reliability=Reliability.A),
    ]
    for order in (findings, findings[::-1]):
        assert points(incident(), list(order), rule="threat.verdicts") == 50


def test_unnamed_subjects_do_not_corroborate_each_other() -> None:
    """Reputations without a subject each stand alone: 50 and 50, not 50 + 25."""
    findings: list[fido.Finding] = [
        fido.Reputation(source=s, verdict=Verdict.MALICIOUS, reliability=Reliability.A)
        for s in ("a", "b")
    ]
    a = assess(incident(), findings, History.EMPTY, POLICY, NOW)
    got = [c for c in a.contributions if c.rule == "threat.verdicts.malicious"]
    assert [c.points for c in got] == [50, 50]
    assert not any("corroborating" in c.reason for c in got)


def test_host_context_matches_on_any_key_of_the_host() -> None:
    """A context for 10.1.2.3 applies to the incident's ws-042 at 10.1.2.3, and back."""
    inc = incident(event(host=Host(name="ws-042", ip="10.1.2.3")))
    by_ip = [host_context(Host(ip="10.1.2.3"), av_installed=False)]
    got = {c.rule: c.points for c in assess(inc, by_ip, History.EMPTY, POLICY, NOW).contributions}
    assert got["machine.posture.av_not_installed"] == 50
    assert "machine.unknown" not in got
    ip_only = incident(event(host=Host(ip="10.1.2.3")))
    by_name: list[fido.Finding] = [host_context(Host(name="ws-042", ip="10.1.2.3"), is_server=True)]
    assert points(ip_only, by_name, rule="machine") == 10
    # two sources on the two keys merge, each found once
    both: list[fido.Finding] = [
        host_context(Host(ip="10.1.2.3"), source="scanner", missing_critical_patches=6),
        host_context(Host(name="ws-042"), source="cmdb", criticality=Criticality.HIGH),
        host_context(Host(name="ws-042", ip="10.1.2.3"), source="edr", av_running=False),
    ]
    sources = {
        c.rule: c.source for c in assess(inc, both, History.EMPTY, POLICY, NOW).contributions
    }
    assert sources["machine.posture.critical_patches"] == "scanner"
    assert sources["machine.criticality.high"] == "cmdb"
    assert sources["machine.posture.av_not_running"] == "edr"


def test_a_subclass_of_a_finding_type_is_scored() -> None:
    @attrs.frozen(kw_only=True)
    class MyReputation(fido.Reputation):
        pass

    finding = MyReputation(source="x", verdict=Verdict.MALICIOUS, subject=sha())
    assert points(incident(), [finding], rule="threat.verdicts") == 30


def test_bad_input_raises_a_scoring_error_and_nothing_else() -> None:
    with pytest.raises(ScoringError, match="not str") as info:
        assess(incident(id="inc-x"), ["oops"], History.EMPTY, POLICY, NOW)  # type: ignore[list-item]
    assert info.value.incident_id == "inc-x"
    with pytest.raises(ScoringError, match="UTC offset"):
        assess(incident(), [], History.EMPTY, POLICY, NOW.replace(tzinfo=None))
    with pytest.raises(ScoringError, match="UTC offset"):
        assess(incident(), [], History.EMPTY, POLICY, "now")  # type: ignore[arg-type]
    # a policy built by hand, past validation: its CIDR range is a str, not a network
    group = AssetGroup(name="lab", points=5, cidrs=("10.0.0.0/8",))  # type: ignore[arg-type]
    broken = attrs.evolve(POLICY, machine=attrs.evolve(POLICY.machine, asset_groups=(group,)))
    with pytest.raises(ScoringError, match="rule machine failed: AttributeError") as failed:
        assess(incident(), [], History.EMPTY, broken, NOW)
    assert failed.value.rule == "machine"


def test_naive_times_in_the_history_are_refused() -> None:
    with pytest.raises(InvalidRecord, match="UTC offset") as info:
        PriorIncident(id="x", host="ws-042", at=datetime(2026, 11, 28, 6, 0), total=10)
    assert (info.value.record, info.value.field) == ("PriorIncident", "at")
    with pytest.raises(InvalidRecord, match="0 to 100"):
        PriorIncident(id="x", host="ws-042", at=NOW, total=120)
    with pytest.raises(InvalidRecord, match="keyed by Observable"):
        History(sightings={"44d88612fea8a8f36de82e1278abb02f": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidRecord, match="PriorIncident records"):
        History(incidents=["inc-1"])  # type: ignore[list-item]


def test_deciding_on_a_naive_assessment_time_is_a_scoring_error() -> None:
    a = attrs.evolve(
        assess(incident(), [], History.EMPTY, POLICY, NOW), assessed_at=NOW.replace(tzinfo=None)
    )
    prior = PriorIncident(id="x", host="ws-042", at=NOW, total=10)
    with pytest.raises(ScoringError, match="UTC offset"):
        POLICY.decide(a, history=History(incidents=[prior]))


def test_alert_and_intel_text_cannot_forge_explanation_lines() -> None:
    """A pulse name with a newline stays on its contribution's line, escaped."""
    forged = "APT\n    +99  fake row  policy  threat.fake\x1b[2J"
    findings: list[fido.Finding] = [
        reputation(source="otx\nfake", label=forged),
        host_context(source="cmdb\r\n", criticality=Criticality.HIGH),
        user_context(source="ad\u2028x", title="VP\nSales"),
    ]
    inc = incident(event(category="malware"))
    a = assess(inc, findings, History.EMPTY, POLICY, NOW)
    for c in a.contributions:
        assert c.reason.isprintable(), c.reason
        assert c.source.isprintable(), c.source
    text = a.explain()
    assert "fake row" in text
    assert not any(line.lstrip().startswith("+99") for line in text.splitlines())
    assert "APT\\n    +99  fake row  policy  threat.fake\\x1b[2J" in text
    assert "otx\\nfake" in text
    assert "cmdb\\r\\n" in text
    assert "ad\\u2028x" in text
