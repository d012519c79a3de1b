"""Golden scenarios for the default policy, every number worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import fido
from fido import Criticality, Host, Reliability, Severity, User, Verdict
from fido.scoring import History, Policy, PriorIncident, assess
from tests.factories import NOW, event, host_context, incident, reputation, sha, user_context

POLICY = Policy.default()


def rules(assessment: fido.Assessment) -> dict[str, int]:
    result: dict[str, int] = {}
    for c in assessment.contributions:
        result[c.rule] = result.get(c.rule, 0) + c.points
    return result


def test_the_contract_scenario() -> None:
    """High-severity EDR alert, one malicious verdict from a C-reliability feed, nothing else.

    threat  = severity high 20 + malicious 50 x C 0.6 = 30              -> 50
    machine = no inventory knows ws-042: unknown 10                        -> 10
    user    = no directory context                                        -> 0
    total   = 50 + 10 + 0 = 60 -> "ticket" (60): notify, ticket
    """
    inc = incident()
    findings = [reputation(source="my-feed")]
    a = assess(inc, findings, History.EMPTY, POLICY, NOW)
    assert (a.threat, a.machine, a.user, a.total) == (50, 10, 0, 60)
    assert rules(a) == {
        "threat.severity.high": 20,
        "threat.verdicts.malicious": 30,
        "machine.unknown": 10,
    }
    d = POLICY.decide(a)
    assert d.level == "ticket"
    assert d.action_names == ("notify", "ticket")
    assert d.recommendation == "scan and release"
    assert d.reason == "total 60 reached ticket (from 60)"
    assert (a.policy, a.policy_version, a.assessed_at) == ("default", "1", NOW)


def test_commodity_malware_on_a_healthy_workstation() -> None:
    """Medium malware alert, two feeds agree, a well-kept workstation and an ordinary user.

    threat  = severity medium 10 + category malware 10
              + VT malicious 50 x B 0.8 = 40 (strongest, in full)
              + OTX malicious 50 x C 0.6 = 30, corroborating x 0.5 = 15     -> 75
    machine = low criticality 0, workstation, managed, AV running, patched -> 0
    user    = analyst in engineering                                       -> 0
    total   = 75 -> "ticket" (60); no patch rule, so "scan and release"
    """
    inc = incident(event(severity=Severity.MEDIUM, category="malware"))
    findings: list[fido.Finding] = [
        reputation(source="virustotal", reliability=Reliability.B, detections=41, total=70),
        reputation(source="otx", reliability=Reliability.C),
        host_context(
            criticality=Criticality.LOW,
            is_server=False,
            managed=True,
            av_installed=True,
            av_running=True,
            missing_critical_patches=0,
            missing_high_patches=2,
        ),
        user_context(title="Security Analyst", department="Engineering", enabled=True),
    ]
    a = assess(inc, findings, History.EMPTY, POLICY, NOW)
    assert (a.threat, a.machine, a.user, a.total) == (75, 0, 0, 75)
    assert rules(a) == {
        "threat.severity.medium": 10,
        "threat.categories.malware": 10,
        "threat.verdicts.malicious": 55,
    }
    assert [c.points for c in a.contributions if c.rule == "threat.verdicts.malicious"] == [40, 15]
    d = POLICY.decide(a)
    assert (d.level, d.action_names, d.recommendation) == (
        "ticket",
        ("notify", "ticket"),
        "scan and release",
    )


def test_ransomware_on_an_unpatched_pci_server_with_an_admin() -> None:
    """Everything at once: the caps and the approval.

    threat  = critical 30 + ransomware 25 + 2 detectors 10
              + VT (A) malicious 50, then a benign E-source -10 x 0.2 = -2 x 0.5 = -1
              + hash seen 6 times 20 + host had an incident 13 hours ago 25
            = 159, capped at 100 (a -59 contribution)                      -> 100
    machine = critical 25 + server 10 + AV installed but not running 50
              + 7 critical patches missing 20 + 12 high 5 + PCI group 25
            = 135, capped at 100 (-35)                                     -> 100
    user    = Domain Admins 30 + title "Chief Financial Officer" 25
              + department Finance 30                                      -> 85
    total   = 285, capped at 100 -> "contain" (85), contain needs approval
    """
    server = Host(name="pay-db-01", ip="10.20.1.5")
    admin = User("CORP\\cfo-admin")
    inc = incident(
        event(severity=Severity.CRITICAL, category="ransomware", host=server, user=admin),
        event(detector="ids", severity=Severity.HIGH, host=server, user=admin),
    )
    findings: list[fido.Finding] = [
        reputation(source="vt", reliability=Reliability.A),
        reputation(Verdict.BENIGN, source="sketchy-allowlist", reliability=Reliability.E),
        host_context(
            server,
            criticality=Criticality.CRITICAL,
            is_server=True,
            av_installed=True,
            av_running=False,
            missing_critical_patches=7,
            missing_high_patches=12,
            groups=("PCI",),
        ),
        user_context(
            admin,
            groups=("CN=Domain Admins,CN=Users,DC=corp,DC=example",),
            title="Chief Financial Officer",
            department="Finance",
        ),
    ]
    history = History(
        sightings={sha(): 6},
        incidents=[
            PriorIncident(id="inc-old", host="pay-db-01", at=NOW - timedelta(hours=13), total=70)
        ],
    )
    a = assess(inc, findings, history, POLICY, NOW)
    assert (a.threat, a.machine, a.user, a.total) == (100, 100, 85, 100)
    assert rules(a) == {
        "threat.severity.critical": 30,
        "threat.categories.ransomware": 25,
        "threat.corroboration.detectors": 10,
        "threat.verdicts.malicious": 50,
        "threat.verdicts.benign": -1,
        "threat.sightings": 20,
        "threat.host_history": 25,
        "threat.cap": -59,
        "machine.criticality.critical": 25,
        "machine.server": 10,
        "machine.posture.av_not_running": 50,
        "machine.posture.critical_patches": 20,
        "machine.posture.high_patches": 5,
        "machine.asset_groups.pci": 25,
        "machine.cap": -35,
        "user.privileged": 30,
        "user.titles": 25,
        "user.departments": 30,
    }
    d = POLICY.decide(a, history=history)
    assert d.level == "contain"
    assert d.action_names == ("notify", "ticket", "contain")
    contain = d.action("contain")
    assert contain is not None
    assert contain.requires_approval
    assert contain.approval_timeout == timedelta(hours=4)
    assert d.recommendation == "re-image"
    text = a.explain()
    assert "Total 100/100 = threat + machine + user, capped at 100 (policy default 1)" in text
    assert "threat capped at 100" in text


def test_a_benign_low_alert_is_logged_only() -> None:
    """Low severity 5 + benign from an A source -10 = -5, floored at 0 (a +5 contribution).

    machine = unknown host 10; no user. total 10 -> "log": no actions.
    """
    inc = incident(event(severity=Severity.LOW, user=None))
    a = assess(
        inc, [reputation(Verdict.BENIGN, reliability=Reliability.A)], History.EMPTY, POLICY, NOW
    )
    assert (a.threat, a.machine, a.user, a.total) == (0, 10, 0, 10)
    assert rules(a) == {
        "threat.severity.low": 5,
        "threat.verdicts.benign": -10,
        "threat.floor": 5,
        "machine.unknown": 10,
    }
    d = POLICY.decide(a)
    assert (d.level, d.actions, d.recommendation) == ("log", (), "no action needed")


def test_patches_change_the_recommendation() -> None:
    """Suspicious (A) 20 + medium 10 = 30, machine 20 (5 critical patches): total 50, notify."""
    inc = incident(event(severity=Severity.MEDIUM))
    findings: list[fido.Finding] = [
        reputation(Verdict.SUSPICIOUS, reliability=Reliability.A),
        host_context(missing_critical_patches=5),
    ]
    a = assess(inc, findings, History.EMPTY, POLICY, NOW)
    assert (a.threat, a.machine, a.total) == (30, 20, 50)
    d = POLICY.decide(a)
    assert (d.level, d.action_names, d.recommendation) == (
        "notify",
        ("notify",),
        "scan, patch and release",
    )


def test_repeat_within_the_window_withholds_actions_unless_the_score_rose() -> None:
    """The contract scenario again, 10 minutes after an incident on the same host."""
    a = assess(incident(), [reputation(source="my-feed")], History.EMPTY, POLICY, NOW)
    same = History(
        incidents=[
            PriorIncident(id="inc-1", host="ws-042", at=NOW - timedelta(minutes=10), total=60)
        ]
    )
    d = POLICY.decide(a, history=same)
    assert d.level == "ticket"
    assert d.actions == ()
    assert "repeat of incident inc-1 on host ws-042 10m ago, which scored 60 (now 60)" in d.reason
    lower = History(
        incidents=[
            PriorIncident(id="inc-1", host="ws-042", at=NOW - timedelta(minutes=10), total=40)
        ]
    )
    assert POLICY.decide(a, history=lower).action_names == ("notify", "ticket")
    older = History(
        incidents=[
            PriorIncident(id="inc-1", host="ws-042", at=NOW - timedelta(minutes=31), total=60)
        ]
    )
    assert POLICY.decide(a, history=older).action_names == ("notify", "ticket")


def test_a_repeat_does_not_rise_on_the_sightings_its_predecessor_made() -> None:
    """The contract scenario again, 10 minutes after inc-1 saw the same hash on ws-042.

    threat  = severity high 20 + malicious 50 x C 0.6 = 30
              + the hash seen before (once, in inc-1) 10                    -> 60
    machine = unknown host 10; user 0                                       -> total 70
    Without its history points (the sighting exists only because of inc-1) the repeat
    scores 60 + 10 - 10 = 60: not above inc-1's 60, so the actions are withheld.
    """
    history = History(
        sightings={sha(): 1},
        incidents=[
            PriorIncident(id="inc-1", host="ws-042", at=NOW - timedelta(minutes=10), total=60)
        ],
    )
    a = assess(incident(), [reputation(source="my-feed")], history, POLICY, NOW)
    assert (a.threat, a.machine, a.user, a.total) == (60, 10, 0, 70)
    assert rules(a)["threat.sightings"] == 10
    d = POLICY.decide(a, history=history)
    assert (d.level, d.actions) == ("ticket", ())
    assert d.reason == (
        "total 70 reached ticket (from 60); repeat of incident inc-1 on host ws-042 10m ago, "
        "which scored 60 (now 70, 60 without history points): actions withheld"
    )
    # inc-1 scored 59: 60 without history is a real rise, and acts again
    lower = History(
        sightings={sha(): 1},
        incidents=[
            PriorIncident(id="inc-1", host="ws-042", at=NOW - timedelta(minutes=10), total=59)
        ],
    )
    assert POLICY.decide(a, history=lower).action_names == ("notify", "ticket")


def test_the_repeat_window_ends_at_exactly_30_minutes() -> None:
    """Ages from 0 up to, not including, 30 minutes are inside the window."""
    a = assess(incident(), [reputation(source="my-feed")], History.EMPTY, POLICY, NOW)  # 60

    def acts(age: timedelta) -> bool:
        prior = PriorIncident(id="inc-1", host="ws-042", at=NOW - age, total=60)
        return bool(POLICY.decide(a, history=History(incidents=[prior])).actions)

    assert not acts(timedelta(0))
    assert not acts(timedelta(minutes=29, seconds=59))
    assert acts(timedelta(minutes=30))
    assert acts(timedelta(seconds=-1))  # after `now`: not an earlier incident


def test_no_threat_evidence_never_contains_however_exposed_the_machine() -> None:
    """An INFO alert with no observables on a critical server without AV, for a Domain Admin.

    threat  = severity info 0                                               -> 0
    machine = critical 25 + server 10 + AV not installed 50                 -> 85
    user    = Domain Admins 30                                              -> 30
    total   = 0 + 85 + 30 = 115, capped at 100: reaches contain (85), but contain needs
              threat 40 (min_threat) and threat is 0 -> ticket (60): notify, ticket.
    re-image also needs threat 40; no patch rule scored -> "scan and release".
    """
    inc = incident(event(severity=Severity.INFO, observables=[]))
    findings: list[fido.Finding] = [
        host_context(criticality=Criticality.CRITICAL, is_server=True, av_installed=False),
        user_context(groups=("Domain Admins",)),
    ]
    a = assess(inc, findings, History.EMPTY, POLICY, NOW)
    assert (a.threat, a.machine, a.user, a.total) == (0, 85, 30, 100)
    d = POLICY.decide(a)
    assert (d.level, d.action_names, d.recommendation) == (
        "ticket",
        ("notify", "ticket"),
        "scan and release",
    )
    assert d.reason == (
        "total 100 reached ticket (from 60); contain (from 85) also needs threat 40, "
        "and threat is 0"
    )
    # a benign verdict from an A source changes nothing: -10, floored at 0
    benign = assess(
        incident(event(severity=Severity.INFO)),
        [*findings, reputation(Verdict.BENIGN, reliability=Reliability.A)],
        History.EMPTY,
        POLICY,
        NOW,
    )
    assert (benign.threat, benign.total) == (0, 100)
    assert POLICY.decide(benign).level == "ticket"


def test_threat_40_on_the_same_machine_contains() -> None:
    """The same server and admin, with a high alert and a C-source malicious hash.

    threat  = high 20 + malicious 50 x C 0.6 = 30                           -> 50 (>= 40)
    total   = 50 + 85 + 30, capped at 100 -> contain, with approval; "re-image".
    """
    findings: list[fido.Finding] = [
        reputation(),
        host_context(criticality=Criticality.CRITICAL, is_server=True, av_installed=False),
        user_context(groups=("Domain Admins",)),
    ]
    a = assess(incident(), findings, History.EMPTY, POLICY, NOW)
    assert (a.threat, a.machine, a.user, a.total) == (50, 85, 30, 100)
    d = POLICY.decide(a)
    assert (d.level, d.action_names, d.recommendation) == (
        "contain",
        ("notify", "ticket", "contain"),
        "re-image",
    )
    assert d.reason == "total 100 reached contain (from 85)"
