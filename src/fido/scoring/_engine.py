"""`assess`: the pure scoring function. No I/O, no clock, no globals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fido._assessment import Assessment, Contribution, Dimension
from fido._errors import ScoringError
from fido.scoring import _machine, _threat, _user
from fido.scoring._context import Context, contribution

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from fido._findings import Finding
    from fido._incident import Incident
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = ["assess", "combination", "combine"]

RULES: Final = (
    (Dimension.THREAT, _threat.RULES),
    (Dimension.MACHINE, (_machine.machine,)),
    (Dimension.USER, (_user.user,)),
)


def combine(policy: Policy, threat: int, machine: int, user: int) -> int:
    """The total of three dimension scores under the policy's combination."""
    if policy.combine == "sum":
        return min(100, threat + machine + user)
    if policy.combine == "max":
        return max(threat, machine, user)
    wt, wm, wu = policy.weights
    return max(0, min(100, round(wt * threat + wm * machine + wu * user)))


def combination(policy: Policy) -> str:
    """The policy's combination, in words."""
    if policy.combine == "sum":
        return "threat + machine + user, capped at 100"
    if policy.combine == "max":
        return "the highest of threat, machine and user"
    wt, wm, wu = policy.weights
    return f"{wt:g} x threat + {wm:g} x machine + {wu:g} x user, within 0-100"


def _bounded(dimension: Dimension, contributions: list[Contribution]) -> int:
    """Sum one dimension's contributions; add a cap or floor as a contribution of its own."""
    points = sum(c.points for c in contributions)
    name = dimension.value
    if points > 100:
        contributions.append(
            contribution(dimension, 100 - points, f"{name} capped at 100", "policy", f"{name}.cap")
        )
        return 100
    if points < 0:
        contributions.append(
            contribution(dimension, -points, f"{name} floored at 0", "policy", f"{name}.floor")
        )
        return 0
    return points


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
        ScoringError: `now` has no UTC offset, or a rule failed on this input.
    """
    if now.tzinfo is None:
        raise ScoringError("now needs a UTC offset", incident_id=incident.id)
    context = Context(incident, findings, history, policy, now)
    contributions: list[Contribution] = []
    scores: list[int] = []
    rule = None
    try:
        for dimension, rules in RULES:
            found: list[Contribution] = []
            for rule in rules:
                found += rule(context)
            scores.append(_bounded(dimension, found))
            contributions += found
    except (KeyError, ValueError, TypeError) as exc:
        name = getattr(rule, "__name__", "context")
        raise ScoringError(
            f"rule {name} failed: {exc}", rule=name, incident_id=incident.id
        ) from exc
    threat, machine, user = scores
    return Assessment(
        threat=threat,
        machine=machine,
        user=user,
        total=combine(policy, threat, machine, user),
        contributions=contributions,
        combination=combination(policy),
        policy=policy.name,
        policy_version=policy.version,
        assessed_at=now,
    )
