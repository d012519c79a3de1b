"""Properties of the scoring engine, over generated incidents, findings and histories."""

from __future__ import annotations

from datetime import timedelta

import attrs
from hypothesis import given
from hypothesis import strategies as st

import fido
from fido import Criticality, Dimension, Host, Reliability, Severity, User, Verdict
from fido.scoring import History, Policy, PriorIncident, assess
from tests.factories import NOW

POLICIES = [
    Policy.default(),
    Policy.default() | {"policy": {"combine": "max"}},
    Policy.default()
    | {"policy": {"combine": "weighted", "weights": {"threat": 0.6, "machine": 0.3, "user": 0.3}}},
    Policy.default() | {"threat": {"corroboration": {"decay": 1.0}}},
]
HOSTS = [Host(name="ws-1", ip="10.0.0.1"), Host(name="srv-2", ip="10.20.0.2"), Host(name="ws-3")]
USERS = [User("alice"), User("CORP\\bob"), User("carol")]
OBSERVABLES = [
    fido.Observable.parse(t)
    for t in (
        "44d88612fea8a8f36de82e1278abb02f" * 2,
        "evil.example",
        "203.0.113.7",
        "http://evil.example/a",
        "bob@evil.example",
    )
]
DETECTORS = ["edr", "ids", "proxy", "mail"]
CATEGORIES = [None, "malware", "c2", "ransomware", "recon"]

policies = st.sampled_from(POLICIES)
subjects = st.sampled_from([*OBSERVABLES, *HOSTS, *USERS])


@st.composite
def events(draw: st.DrawFn) -> fido.Event:
    return fido.Event(
        detector=draw(st.sampled_from(DETECTORS)),
        id=str(draw(st.integers(0, 10**6))),
        time=NOW,
        title="alert",
        severity=draw(st.sampled_from(list(Severity))),
        category=draw(st.sampled_from(CATEGORIES)),
        host=draw(st.one_of(st.none(), st.sampled_from(HOSTS))),
        user=draw(st.one_of(st.none(), st.sampled_from(USERS))),
        observables=draw(st.lists(st.sampled_from(OBSERVABLES), max_size=3)),
    )


reputations = st.builds(
    fido.Reputation,
    source=st.sampled_from(["vt", "otx", "misp", "feed"]),
    verdict=st.sampled_from(list(Verdict)),
    reliability=st.sampled_from(list(Reliability)),
    subject=subjects,
)
host_contexts = st.builds(
    fido.HostContext,
    source=st.sampled_from(["cmdb", "ad"]),
    subject=st.sampled_from(HOSTS),
    criticality=st.one_of(st.none(), st.sampled_from(list(Criticality))),
    is_server=st.one_of(st.none(), st.booleans()),
    managed=st.one_of(st.none(), st.booleans()),
    av_installed=st.one_of(st.none(), st.booleans()),
    av_running=st.one_of(st.none(), st.booleans()),
    missing_critical_patches=st.one_of(st.none(), st.integers(0, 20)),
    missing_high_patches=st.one_of(st.none(), st.integers(0, 20)),
    groups=st.lists(st.sampled_from(["pci", "Domain Controllers", "lab"]), max_size=2),
)
user_contexts = st.builds(
    fido.UserContext,
    source=st.sampled_from(["ad", "hr"]),
    subject=st.sampled_from(USERS),
    title=st.one_of(st.none(), st.sampled_from(["Chief of Staff", "Engineer", "VP Sales"])),
    department=st.one_of(st.none(), st.sampled_from(["Finance", "Engineering"])),
    groups=st.lists(st.sampled_from(["Domain Admins", "Staff"]), max_size=2),
    privileged=st.one_of(st.none(), st.booleans()),
    enabled=st.one_of(st.none(), st.booleans()),
    locked=st.one_of(st.none(), st.booleans()),
    service_account=st.one_of(st.none(), st.booleans()),
)
findings = st.lists(st.one_of(reputations, host_contexts, user_contexts), max_size=10)
histories = st.builds(
    History,
    sightings=st.dictionaries(st.sampled_from(OBSERVABLES), st.integers(0, 12), max_size=3),
    incidents=st.lists(
        st.builds(
            PriorIncident,
            id=st.sampled_from(["p1", "p2", "p3"]),
            host=st.sampled_from([h.key for h in HOSTS]),
            at=st.integers(-60, 60 * 48).map(lambda m: NOW - timedelta(minutes=m)),
            total=st.integers(0, 100),
        ),
        max_size=3,
    ),
)
incidents = st.lists(events(), min_size=1, max_size=4).map(
    lambda evs: fido.Incident(id="inc", created_at=NOW, updated_at=NOW, events=tuple(evs))
)


def expected_total(policy: Policy, threat: int, machine: int, user: int) -> int:
    """The total each test policy's combination gives, written out here, not the engine's."""
    if policy.combine == "max":
        return max(threat, machine, user)
    if policy.combine == "weighted":
        assert policy.weights == (0.6, 0.3, 0.3)
        return max(0, min(100, round(0.6 * threat + 0.3 * machine + 0.3 * user)))
    return min(100, threat + machine + user)


def test_weighted_and_max_totals_worked_by_hand() -> None:
    """One incident under the three combinations.

    threat  = high 20 + malicious A 50 = 70; machine = unknown host 10; user = 0
    sum      = 70 + 10 + 0 = 80
    max      = max(70, 10, 0) = 70
    weighted = 0.6 x 70 + 0.3 x 10 + 0.3 x 0 = 42 + 3 = 45
    """
    inc = fido.Incident(
        id="inc",
        created_at=NOW,
        updated_at=NOW,
        events=(
            fido.Event(
                detector="edr",
                id="1",
                time=NOW,
                title="alert",
                severity=Severity.HIGH,
                host=HOSTS[0],
                observables=[OBSERVABLES[0]],
            ),
        ),
    )
    found = [
        fido.Reputation(
            source="vt",
            verdict=Verdict.MALICIOUS,
            reliability=Reliability.A,
            subject=OBSERVABLES[0],
        )
    ]
    totals = [
        (a.threat, a.machine, a.user, a.total, a.combination)
        for a in (assess(inc, found, History.EMPTY, p, NOW) for p in POLICIES[:3])
    ]
    assert totals == [
        (70, 10, 0, 80, "threat + machine + user, capped at 100"),
        (70, 10, 0, 70, "the highest of threat, machine and user"),
        (70, 10, 0, 45, "0.6 x threat + 0.3 x machine + 0.3 x user, within 0-100"),
    ]


def test_a_weighted_total_rounds_half_to_even() -> None:
    """0.5 x 25 + 0.5 x 0 + 0.5 x 0 = 12.5 -> 12; with threat 27: 13.5 -> 14."""
    halves = Policy.default() | {
        "policy": {"combine": "weighted", "weights": {"threat": 0.5, "machine": 0.5, "user": 0.5}},
        "machine": {"unknown": 0},
        "threat": {"severity": {"high": 25}},
    }
    inc = fido.Incident(
        id="inc",
        created_at=NOW,
        updated_at=NOW,
        events=(fido.Event(detector="edr", id="1", time=NOW, title="a", severity=Severity.HIGH),),
    )
    assert assess(inc, [], History.EMPTY, halves, NOW).total == 12
    odd = halves | {"threat": {"severity": {"high": 27}}}
    assert assess(inc, [], History.EMPTY, odd, NOW).total == 14


@given(incidents, findings, histories, policies)
def test_scores_are_within_bounds_and_add_up(
    incident: fido.Incident, found: list[fido.Finding], history: History, policy: Policy
) -> None:
    a = assess(incident, found, history, policy, NOW)
    for dimension in Dimension:
        score = a.score(dimension)
        assert 0 <= score <= 100
        assert sum(c.points for c in a.contributions_to(dimension)) == score
    assert 0 <= a.total <= 100
    assert a.total == expected_total(policy, a.threat, a.machine, a.user)
    assert all(c.points != 0 for c in a.contributions)
    decision = policy.decide(a, history=history)
    assert decision.level in {level.name for level in policy.decision.levels}


@given(incidents, findings, histories, policies, st.randoms(use_true_random=False))
def test_deterministic_whatever_the_order(
    incident: fido.Incident,
    found: list[fido.Finding],
    history: History,
    policy: Policy,
    random: st.SearchStrategy[object],
) -> None:
    first = assess(incident, found, history, policy, NOW)
    shuffled = list(found)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert assess(incident, shuffled, history, policy, NOW) == first
    assert assess(incident, tuple(found), history, policy, NOW) == first


@given(incidents, findings, histories, policies, subjects, st.sampled_from(list(Reliability)))
def test_an_extra_malicious_finding_never_lowers_the_threat(
    incident: fido.Incident,
    found: list[fido.Finding],
    history: History,
    policy: Policy,
    subject: fido.Subject,
    reliability: Reliability,
) -> None:
    before = assess(incident, found, history, policy, NOW)
    extra = fido.Reputation(
        source="extra-feed", verdict=Verdict.MALICIOUS, reliability=reliability, subject=subject
    )
    after = assess(incident, [*found, extra], history, policy, NOW)
    assert after.threat >= before.threat
    assert after.total >= before.total


@given(incidents, findings, histories, policies, st.sampled_from([*DETECTORS, "new-detector"]))
def test_an_extra_corroborating_detector_never_lowers_the_threat(
    incident: fido.Incident,
    found: list[fido.Finding],
    history: History,
    policy: Policy,
    detector: str,
) -> None:
    first = incident.events[0]
    before = assess(incident, found, history, policy, NOW)
    echo = attrs.evolve(first, detector=detector, id="echo", severity=Severity.INFO, category=None)
    grown = attrs.evolve(incident, events=(*incident.events, echo))
    after = assess(grown, found, history, policy, NOW)
    assert after.threat >= before.threat


@given(
    incidents,
    findings,
    histories,
    policies,
    subjects,
    st.sampled_from(list(Reliability)[:5]),
    st.sampled_from(list(Reliability)[:5]),
)
def test_higher_reliability_never_weighs_a_malicious_verdict_less(
    incident: fido.Incident,
    found: list[fido.Finding],
    history: History,
    policy: Policy,
    subject: fido.Subject,
    first: Reliability,
    second: Reliability,
) -> None:
    better, worse = sorted([first, second], key=lambda r: r.value)  # A is better than E

    def make(reliability: Reliability) -> fido.Reputation:
        return fido.Reputation(
            source="x", verdict=Verdict.MALICIOUS, reliability=reliability, subject=subject
        )

    low = assess(incident, [*found, make(worse)], history, policy, NOW)
    high = assess(incident, [*found, make(better)], history, policy, NOW)
    assert high.threat >= low.threat
    assert policy.threat.reliability[better] >= policy.threat.reliability[worse]
