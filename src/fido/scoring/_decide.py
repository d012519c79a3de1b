"""The decision: from an assessment to a level, actions and a recommendation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from fido._assessment import Action, Assessment, Decision, Dimension, printable
from fido._errors import ScoringError
from fido.scoring._compiled import HISTORY_RULES
from fido.scoring._engine import combine
from fido.scoring._toml import format_duration

if TYPE_CHECKING:
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = ["decide", "repeat", "without_history"]

_ZERO: Final = timedelta(0)
_BOUNDS: Final = frozenset({"threat.cap", "threat.floor"})


def _recommendation(policy: Policy, assessment: Assessment) -> str:
    rules = [c.rule for c in assessment.contributions]
    for item in policy.decision.recommendations:
        if assessment.total < item.min_total or assessment.threat < item.min_threat:
            continue
        if item.rules and not any(r.startswith(p) for r in rules for p in item.rules):
            continue
        return item.text
    return ""


def without_history(policy: Policy, assessment: Assessment) -> int:
    """The assessment's total without its history points (sightings, host history).

    The threat score is summed again without them (and without its cap or floor), bounded
    to 0-100, and combined with machine and user as the policy says.
    """
    history = 0
    threat = 0
    for c in assessment.contributions:
        if c.dimension is Dimension.THREAT:
            if c.rule in HISTORY_RULES:
                history += c.points
            elif c.rule not in _BOUNDS:
                threat += c.points
    if not history:
        return assessment.total
    bounded = max(0, min(100, threat))
    return combine(policy, bounded, assessment.machine, assessment.user)


def repeat(policy: Policy, assessment: Assessment, history: History | None) -> str | None:
    """Why the actions are withheld as a repeat of an earlier incident, or None."""
    now = assessment.assessed_at
    if history is None or now is None or not history.incidents:
        return None
    moment: object = now  # checked: an assessment built by hand may hold anything
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ScoringError("the assessment's assessed_at needs a UTC offset", rule="decide")
    window = policy.decision.repeat_window
    recent = [p for p in history.incidents if _ZERO <= now - p.at < window]
    if not recent:
        return None
    own = without_history(policy, assessment)
    for prior in sorted(recent, key=lambda p: (p.at, p.id), reverse=True):
        if prior.total >= own:
            age = now - prior.at
            ago = format_duration(timedelta(seconds=int(age.total_seconds())))
            now_text = (
                f"now {assessment.total}"
                if own == assessment.total
                else f"now {assessment.total}, {own} without history points"
            )
            return (
                f"repeat of incident {printable(prior.id)} on host {printable(prior.host)} "
                f"{ago} ago, which scored {prior.total} ({now_text}): actions withheld"
            )
    return None


def decide(policy: Policy, assessment: Assessment, history: History | None) -> Decision:
    """See `Policy.decide`."""
    total, threat = assessment.total, assessment.threat
    level = policy.level_for(total, threat)
    reason = f"total {total} reached {level.name} (from {level.min})"
    passed = policy.level_for(total)
    if passed is not level:
        reason += (
            f"; {passed.name} (from {passed.min}) also needs threat {passed.min_threat}, "
            f"and threat is {threat}"
        )
    actions: tuple[Action, ...] = ()
    withheld = repeat(policy, assessment, history)
    if withheld is not None:
        reason = f"{reason}; {withheld}"
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
