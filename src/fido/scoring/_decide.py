"""The decision: from an assessment to a level, actions and a recommendation."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from fido._assessment import Action, Assessment, Decision
from fido.scoring._toml import format_duration

if TYPE_CHECKING:
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = ["decide"]


def _recommendation(policy: Policy, assessment: Assessment) -> str:
    rules = [c.rule for c in assessment.contributions]
    for item in policy.decision.recommendations:
        if assessment.total < item.min_total or assessment.threat < item.min_threat:
            continue
        if item.rules and not any(r.startswith(p) for r in rules for p in item.rules):
            continue
        return item.text
    return ""


def _repeat(policy: Policy, assessment: Assessment, history: History | None) -> str | None:
    if history is None or assessment.assessed_at is None:
        return None
    window = policy.decision.repeat_window
    for prior in sorted(history.incidents, key=lambda p: p.at, reverse=True):
        age = assessment.assessed_at - prior.at
        if timedelta(0) <= age < window and prior.total >= assessment.total:
            ago = format_duration(timedelta(seconds=int(age.total_seconds())))
            return (
                f"repeat of incident {prior.id} on host {prior.host} {ago} ago, which "
                f"scored {prior.total} (now {assessment.total}): actions withheld"
            )
    return None


def decide(policy: Policy, assessment: Assessment, history: History | None) -> Decision:
    """See `Policy.decide`."""
    level = policy.level_for(assessment.total)
    reason = f"total {assessment.total} reached {level.name} (from {level.min})"
    actions: tuple[Action, ...] = ()
    repeat = _repeat(policy, assessment, history)
    if repeat is not None:
        reason = f"{reason}; {repeat}"
    else:
        rules = policy.decision.actions
        actions = tuple(
            Action(
                name=name,
                requires_approval=name in rules and rules[name].requires_approval,
                approval_timeout=rules[name].approval_timeout if name in rules else None,
                reason=reason,
            )
            for name in level.actions
        )
    return Decision(
        level=level.name,
        actions=actions,
        recommendation=_recommendation(policy, assessment),
        reason=reason,
        policy=policy.name,
        policy_version=policy.version,
    )
