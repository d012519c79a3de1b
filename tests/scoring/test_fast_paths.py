"""The scorer's fast paths agree with its general paths.

The engine answers the usual incident without its general machinery: one Host object on
every event, two events, two sources on one subject, findings of the exact finding
types, `now` in UTC. These tests give the same facts in forms that take the general
paths (equal copies instead of shared objects, subclasses of the finding types, an
event that changes nothing, another time zone) and check that the assessment is the
same, on generated input with unusual text (control and format characters, no-break
spaces), findings without a subject, several hosts and users, and any finding order.
"""

from __future__ import annotations

import copy
import math
from datetime import timedelta, timezone
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

import fido
from fido import Criticality, Host, Reliability, Severity, User, Verdict
from fido.scoring import History, Policy, PriorIncident, assess
from fido.scoring._context import apportion, canonical
from fido.scoring._threat import _ago, _corroborated, _strongest
from fido.scoring._toml import format_duration
from tests.factories import NOW

POLICIES = [
    Policy.default(),
    Policy.default() | {"policy": {"combine": "max"}},
    Policy.default() | {"threat": {"corroboration": {"decay": 0.37, "detectors": 33}}},
    Policy.default()
    | {
        "machine": {
            "asset_groups": [
                {"name": "net", "points": 12, "groups": [], "cidrs": ["10.0.0.0/8"]},
                {"name": "pos", "points": 9, "groups": ["lab"], "hostnames": ["ws-*"]},
            ]
        },
        "user": {"watch": [{"name": "vip", "points": 20, "users": ["alice"], "groups": []}]},
    },
]
HOSTS = [
    Host(name="ws-1", ip="10.0.0.1"),
    Host(name="ws-1"),
    Host(ip="10.0.0.1"),
    Host(name="srv-2", ip="10.20.0.2"),
    Host(mac="aa-bb-cc-dd-ee-ff"),
    Host(name="md5:44d88612fea8a8f36de82e1278abb02f"),  # a name that reads as an observable key
]
USERS = [User("alice"), User("CORP\\bob"), User("bob@corp.example"), User("bob", domain="corp")]
OBSERVABLES = [
    fido.Observable.parse(text)
    for text in (
        "44d88612fea8a8f36de82e1278abb02f",
        "evil.example",
        "203.0.113.7",
        "2001:db8::1",
        "hxxps://user:pw@evil[.]example/x",
        "bob@evil.example",
    )
] + [
    fido.Observable("filename", "in\u202evoice\u2028.exe"),
    fido.Observable("filename", "caf\u00e9\u00a0report.exe"),
]
DETECTORS = ["edr", "ids", "proxy", "n\u00a0b"]
SOURCES = ["vt", "otx", "misp", "x\x1b[31my", "line\nbreak", "nb\u00a0sp"]
TEXTS = [None, "Director of Finance", "VP\nSales", "Engineer", "Finance", "HR\u00a0ops"]


@st.composite
def events(draw: st.DrawFn, index: int = 0) -> fido.Event:
    return fido.Event(
        detector=draw(st.sampled_from(DETECTORS)),
        id=f"e{draw(st.integers(0, 10**6))}",
        time=NOW,
        title="alert",
        severity=draw(st.sampled_from(list(Severity))),
        category=draw(st.sampled_from([None, "malware", "c2"])),
        host=draw(st.one_of(st.none(), st.sampled_from(HOSTS))),
        user=draw(st.one_of(st.none(), st.sampled_from(USERS))),
        observables=draw(st.lists(st.sampled_from(OBSERVABLES), max_size=3)),
    )


subjects = st.one_of(
    st.none(), st.sampled_from(OBSERVABLES), st.sampled_from(HOSTS), st.sampled_from(USERS)
)
reputations = st.builds(
    fido.Reputation,
    source=st.sampled_from(SOURCES),
    verdict=st.sampled_from(list(Verdict)),
    reliability=st.sampled_from(list(Reliability)),
    subject=subjects,
    label=st.sampled_from([None, "trojan", "evil\nlabel", "bidi\u202e"]),
    score=st.one_of(st.none(), st.integers(0, 100)),
)
host_contexts = st.builds(
    fido.HostContext,
    source=st.sampled_from(["cmdb", "c\nmdb", "scanner"]),
    subject=st.one_of(st.sampled_from(HOSTS), st.none(), st.sampled_from(OBSERVABLES)),
    criticality=st.one_of(st.none(), st.sampled_from(list(Criticality))),
    is_server=st.one_of(st.none(), st.booleans()),
    managed=st.one_of(st.none(), st.booleans()),
    av_installed=st.one_of(st.none(), st.booleans()),
    av_running=st.one_of(st.none(), st.booleans()),
    missing_critical_patches=st.one_of(st.none(), st.integers(0, 20)),
    groups=st.lists(st.sampled_from(["pci", "Lab", "Domain Controllers"]), max_size=2),
)
user_contexts = st.builds(
    fido.UserContext,
    source=st.sampled_from(["ad", "a\x07d"]),
    subject=st.one_of(st.sampled_from(USERS), st.none(), st.sampled_from(HOSTS)),
    title=st.sampled_from(TEXTS),
    department=st.sampled_from(TEXTS),
    groups=st.lists(st.sampled_from(["CN=Domain Admins,DC=corp", "Staff"]), max_size=2),
    enabled=st.one_of(st.none(), st.booleans()),
    locked=st.one_of(st.none(), st.booleans()),
)
findings = st.lists(st.one_of(reputations, host_contexts, user_contexts), max_size=8)
histories = st.builds(
    History,
    sightings=st.dictionaries(st.sampled_from(OBSERVABLES), st.integers(0, 9), max_size=3),
    incidents=st.lists(
        st.builds(
            PriorIncident,
            id=st.sampled_from(["p1", "p\n2", "inc"]),
            host=st.sampled_from(["ws-1", "10.0.0.1"]),
            at=st.integers(-60, 60 * 72).map(lambda m: NOW - timedelta(minutes=m)),
            total=st.integers(0, 100),
        ),
        max_size=2,
    ),
)
policies = st.sampled_from(POLICIES)


def incident_of(*evs: fido.Event) -> fido.Incident:
    return fido.Incident(id="inc", created_at=NOW, updated_at=NOW, events=evs)


incidents = st.lists(events(), min_size=1, max_size=4).map(lambda evs: incident_of(*evs))


def _event_with_own_objects(event: fido.Event) -> fido.Event:
    return fido.Event(
        detector=event.detector,
        id=event.id,
        time=event.time,
        title=event.title,
        severity=event.severity,
        category=event.category,
        host=copy.copy(event.host),
        user=copy.copy(event.user),
        observables=[copy.copy(o) for o in event.observables],
    )


@given(incidents, findings, histories, policies)
def test_equal_copies_score_like_shared_objects(
    incident: fido.Incident, found: list[fido.Finding], history: History, policy: Policy
) -> None:
    """Fast paths test object identity (one Host on every event); copies take the others."""
    copied = incident_of(*map(_event_with_own_objects, incident.events))
    own = [attrs.evolve(f, subject=copy.copy(f.subject)) for f in found]
    for event, original in zip(copied.events, incident.events, strict=True):
        assert event.host is None or event.host is not original.host
    assert assess(copied, own, history, policy, NOW) == assess(
        incident, found, history, policy, NOW
    )


@attrs.frozen(kw_only=True)
class _MyReputation(fido.Reputation):
    pass


@attrs.frozen(kw_only=True)
class _MyHostContext(fido.HostContext):
    pass


@attrs.frozen(kw_only=True)
class _MyUserContext(fido.UserContext):
    pass


_SUBCLASSES: dict[type, type] = {
    fido.Reputation: _MyReputation,
    fido.HostContext: _MyHostContext,
    fido.UserContext: _MyUserContext,
}


def _as_subclass(finding: fido.Finding) -> fido.Finding:
    fields: dict[str, Any] = {
        a.name: getattr(finding, a.name) for a in attrs.fields(type(finding)) if a.init
    }
    made: fido.Finding = _SUBCLASSES[type(finding)](**fields)
    return made


@given(incidents, findings, histories, policies, st.data())
def test_subclasses_of_the_finding_types_score_like_the_types(
    incident: fido.Incident,
    found: list[fido.Finding],
    history: History,
    policy: Policy,
    data: st.DataObject,
) -> None:
    mixed = [f if data.draw(st.booleans()) else _as_subclass(f) for f in found]
    assert assess(incident, mixed, history, policy, NOW) == assess(
        incident, found, history, policy, NOW
    )


@given(events(), events(), findings, histories, policies, st.booleans())
def test_a_silent_event_changes_nothing(
    first: fido.Event,
    second: fido.Event,
    found: list[fido.Finding],
    history: History,
    policy: Policy,
    same_host: bool,
) -> None:
    """Two events take the corroboration shortcut; a third, silent one, the general path."""
    if same_host:
        second = attrs.evolve(second, host=first.host)
    silent = fido.Event(
        detector=first.detector, id="silent", time=NOW, title="t", severity=Severity.INFO
    )
    two = incident_of(first, second)
    three = incident_of(first, second, silent)
    assert assess(three, found, history, policy, NOW) == assess(two, found, history, policy, NOW)


def test_a_host_name_that_reads_as_an_observable_key_corroborates() -> None:
    """Detectors corroborate on any common key, a host's and an observable's alike."""
    named = Host(name="md5:44d88612fea8a8f36de82e1278abb02f")
    edr = fido.Event(detector="edr", id="1", time=NOW, title="t", host=named)
    ids = fido.Event(
        detector="ids",
        id="2",
        time=NOW,
        title="t",
        observables=["44d88612fea8a8f36de82e1278abb02f"],
    )
    for pair in ((edr, ids), (ids, edr)):
        a = assess(incident_of(*pair), [], History.EMPTY, POLICIES[0], NOW)
        [c] = [c for c in a.contributions if c.rule == "threat.corroboration.detectors"]
        assert c.reason == "reported by 2 independent detectors (edr, ids)"


def test_a_host_context_on_another_host_does_not_count() -> None:
    """The one-context shortcut holds for the incident's own Host object only."""
    event = fido.Event(detector="edr", id="1", time=NOW, title="t", host=HOSTS[0])
    elsewhere = fido.HostContext(source="cmdb", subject=HOSTS[3], criticality=Criticality.HIGH)
    same = fido.HostContext(source="cmdb", subject=HOSTS[2], criticality=Criticality.HIGH)
    score = {
        name: [
            (c.rule, c.points)
            for c in assess(
                incident_of(event), [f], History.EMPTY, POLICIES[0], NOW
            ).contributions_to("machine")
        ]
        for name, f in (("elsewhere", elsewhere), ("same", same))
    }
    assert score == {
        "elsewhere": [("machine.unknown", 10)],
        "same": [("machine.criticality.high", 15)],  # HOSTS[2] shares the address
    }


def test_a_host_name_pattern_matches_whatever_the_inventory_groups() -> None:
    """Asset groups are skipped at once only when no group could match."""
    policy = Policy.default() | {
        "machine": {"asset_groups": [{"name": "pos", "points": 9, "hostnames": ["ws-*"]}]}
    }
    event = fido.Event(detector="edr", id="1", time=NOW, title="t", host=HOSTS[0])
    known = fido.HostContext(source="cmdb", subject=HOSTS[0], groups=("office",))
    a = assess(incident_of(event), [known], History.EMPTY, policy, NOW)
    [c] = a.contributions_to("machine")
    assert (c.points, c.reason, c.rule) == (
        9,
        "asset group pos (name matches ws-*)",
        "machine.asset_groups.pos",
    )


@given(incidents, findings, histories, policies)
def test_now_in_another_time_zone_scores_the_same(
    incident: fido.Incident, found: list[fido.Finding], history: History, policy: Policy
) -> None:
    """A UTC `now` is checked without a call; another offset takes the general check."""
    elsewhere = NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert assess(incident, found, history, policy, elsewhere) == assess(
        incident, found, history, policy, NOW
    )


@given(st.floats(-200, 200), st.floats(-200, 200))
def test_two_shares_without_a_missing_point_are_the_floors(one: float, two: float) -> None:
    """The two-source shortcut: when no point is missing, `apportion` gives the floors."""
    if round(one + two) == math.floor(one) + math.floor(two):
        assert apportion([one, two]) == [math.floor(one), math.floor(two)]


def _ranked_by_the_book(found: list[fido.Reputation], policy: Policy) -> list[list[Any]]:
    """Per source its strongest finding (canonical order among equals), strongest first."""
    weights = policy.compiled.reputation
    entries = []
    for source in sorted({f.source for f in found}):
        mine = canonical([f for f in found if f.source == source])
        best = max(mine, key=lambda f: weights[f.verdict][f.reliability][0])  # first of equals
        weighted = weights[best.verdict][best.reliability]
        entries.append([-weighted[0], source, best, len(mine), weighted])
    return sorted(entries, key=lambda e: (e[0], e[1]))


@given(st.lists(reputations, min_size=1, max_size=5), policies)
def test_the_strongest_finding_per_source(found: list[fido.Reputation], policy: Policy) -> None:
    """Two sources take a shortcut; any other number, the general grouping."""
    assert _strongest(found, policy.compiled.reputation) == _ranked_by_the_book(found, policy)


FRACTIONAL = Policy.default() | {
    "threat": {
        "verdicts": {"malicious": 53, "suspicious": 21, "benign": -11},
        "reliability": {"A": 0.95, "B": 0.85, "C": 0.65, "D": 0.45, "E": 0.25, "F": 0.35},
        "corroboration": {"decay": 0.37},
    }
}


@given(st.lists(reputations, min_size=2, max_size=5), st.sampled_from([*POLICIES, FRACTIONAL]))
def test_corroborating_shares_are_apportioned(found: list[fido.Reputation], policy: Policy) -> None:
    """The two-source shortcut gives what `apportion` gives, with fractional weights too."""
    ranked = _ranked_by_the_book(found, policy)
    decay = policy.threat.decay
    expected = apportion([-entry[0] * decay**rank for rank, entry in enumerate(ranked)])
    got = _corroborated(policy.compiled, found)
    assert [entry[0] for entry in got] == expected
    assert [entry[1:] for entry in got] == [entry[1:] for entry in ranked]


def test_ages_are_written_as_durations_are() -> None:
    for minutes in [*range(3 * 1440 + 5), 10**6 + 7]:
        assert _ago(minutes) == format_duration(timedelta(minutes=minutes)), minutes


def test_two_sources_at_a_half_point_round_to_even() -> None:
    """15 + 15 x 0.5 = 22.5 -> 22: the shortcut keeps `apportion`'s floors (15 and 7)."""
    weak = [
        fido.Reputation(
            source=source,
            verdict=Verdict.MALICIOUS,
            reliability=Reliability.F,
            subject=OBSERVABLES[1],
        )
        for source in ("otx", "vt")
    ]
    a = assess(incident_of(_plain()), weak, History.EMPTY, POLICIES[0], NOW)
    assert [c.points for c in a.contributions if c.rule == "threat.verdicts.malicious"] == [15, 7]


def _plain() -> fido.Event:
    return fido.Event(detector="edr", id="1", time=NOW, title="t")


@given(incidents, findings, histories, policies)
def test_every_reason_and_source_is_printable(
    incident: fido.Incident, found: list[fido.Finding], history: History, policy: Policy
) -> None:
    """Alert and intelligence text is escaped on every path (see `printable`)."""
    for c in assess(incident, found, history, policy, NOW).contributions:
        assert c.reason.isprintable(), c.reason
        assert c.source.isprintable(), c.source


def test_an_observable_with_a_no_break_space_is_escaped_in_reasons() -> None:
    found = [fido.Reputation(source="vt", verdict=Verdict.MALICIOUS, subject=OBSERVABLES[-1])]
    a = assess(incident_of(_plain()), found, History.EMPTY, POLICIES[0], NOW)
    [c] = [c for c in a.contributions if c.rule == "threat.verdicts.malicious"]
    assert c.reason == "vt: caf\u00e9\\xa0report.exe is malicious (reliability C)"
