"""`assess`: the pure scoring function. No I/O, no clock, no globals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from fido._assessment import Assessment, Contribution, Dimension, make_assessment
from fido._errors import ScoringError, shorten
from fido.scoring import _machine, _threat, _user
from fido.scoring._context import Context, contribution

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fido._findings import Finding
    from fido._incident import Incident
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = ["assess", "combination", "combine"]

THREAT_RULES: Final = _threat.RULES
"""The threat rules, in the order they run; each appends its contributions to a list."""
THREAT: Final = Dimension.THREAT
_OTHER_RULES: Final = ((Dimension.MACHINE, _machine.machine), (Dimension.USER, _user.user))
"""The machine and user dimensions' rules, each returning its contributions."""


def combine(policy: Policy, threat: int, machine: int, user: int) -> int:
    """The total of three dimension scores under the policy's combination.

    A weighted total is rounded with Python's `round` (halves go to the even neighbour).
    """
    if policy.combine == "sum":
        return min(100, threat + machine + user)
    if policy.combine == "max":
        return max(threat, machine, user)
    wt, wm, wu = policy.weights
    return max(0, min(100, round(wt * threat + wm * machine + wu * user)))


def combination(policy: Policy) -> str:
    """The policy's combination, in words."""
    return policy.compiled.combination


_BOUNDS: Final = {
    d: (f"{d.value} capped at 100", f"{d.value}.cap", f"{d.value} floored at 0", f"{d.value}.floor")
    for d in Dimension
}


def _bound(dimension: Dimension, points: int, found: list[Contribution]) -> int:
    """Cap or floor a dimension's `points` (outside 0-100), as a contribution of its own."""
    capped, cap, floored, floor = _BOUNDS[dimension]
    if points > 100:
        found.append(contribution(dimension, 100 - points, capped, "policy", cap))
        return 100
    found.append(contribution(dimension, -points, floored, "policy", floor))
    return 0


def assess(
    incident: Incident,
    findings: Iterable[Finding],
    history: History,
    policy: Policy,
    now: datetime,
) -> Assessment:
    """Score an incident on threat, machine and user, explaining every point.

    A pure function: the same arguments always give the same assessment, whatever the
    order of `findings`. Every point is a `Contribution` with a reason, a source and the
    policy rule; each dimension is the exact sum of its contributions (a cap at 100 or a
    floor at 0 appears as a contribution), and `total` combines the three as the policy
    says.

    Args:
        incident: The incident (its events give severity, category, hosts, users and
            observables).
        findings: What the enrichers found (usually `incident.findings`).
        history: Earlier sightings and incidents, as the store knows them.
        policy: The scoring policy.
        now: The time of the assessment (history ages are measured from it).

    Returns:
        The assessment, with the policy's name and version and `assessed_at=now`.

    Raises:
        ScoringError: `now` is not a datetime with a UTC offset, a finding is not a
            finding, or a rule failed on this input (the error names the rule; nothing
            else escapes).
    """
    moment: object = now  # checked: callers outside mypy pass anything
    if (type(moment) is not datetime or moment.tzinfo is not UTC) and (
        not isinstance(moment, datetime) or moment.utcoffset() is None
    ):  # (a plain datetime in UTC is aware: the usual case, answered without a call)
        raise ScoringError("now is a datetime with a UTC offset", incident_id=_id(incident))
    rule: object = None
    try:
        context = Context(incident, findings, history, policy, now)
        found: list[Contribution] = []  # every contribution, in order: threat, machine, user
        for rule in THREAT_RULES:
            rule(context, found)
        # The sums are loops: `c.points` is a slot read, `sum(map(attrgetter(...)))` is
        # a look-up by name per contribution.
        threat = 0
        for c in found:
            threat += c.points
        if not 0 <= threat <= 100:
            threat = _bound(THREAT, threat, found)
        scores = []
        for dimension, rule in _OTHER_RULES:
            made = rule(context)
            points = 0
            for c in made:
                points += c.points
            found += made
            if not 0 <= points <= 100:
                points = _bound(dimension, points, found)
            scores.append(points)
        machine, user = scores
    except ScoringError as exc:
        raise ScoringError(
            exc.message, rule=exc.rule or "context", incident_id=_id(incident)
        ) from exc
    except Exception as exc:  # the engine raises ScoringError and nothing else
        name = getattr(rule, "__name__", "context")
        raise ScoringError(
            f"rule {name} failed: {type(exc).__name__}: {shorten(str(exc), 200)}",
            rule=name,
            incident_id=_id(incident),
        ) from exc
    compiled = policy.compiled
    if compiled.sum:
        total = threat + machine + user
        if total > 100:
            total = 100
    else:
        total = combine(policy, threat, machine, user)
    return make_assessment(
        threat,
        machine,
        user,
        total,
        tuple(found),
        compiled.combination,
        policy.name,
        policy.version,
        now,
    )


def _id(incident: object) -> str | None:
    value = getattr(incident, "id", None)
    return value if isinstance(value, str) else None
