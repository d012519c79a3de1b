"""Replay: re-score stored incidents under another policy and say what would change, and why."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs

from fido._assessment import Assessment, Decision
from fido.scoring._decide import repeat
from fido.scoring._engine import assess
from fido.scoring._history import History, PriorIncident
from fido.scoring._toml import format_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from fido._incident import Incident
    from fido._observable import Observable
    from fido.scoring._policy import Policy

__all__ = ["Change", "Comparison", "replay"]


@attrs.frozen(kw_only=True)
class Change:
    """One incident before and after the replay.

    Attributes:
        incident_id: The incident.
        before: The stored assessment.
        after: The assessment under the new policy.
        before_decision: The stored decision.
        after_decision: The decision under the new policy.
        reasons: What made the difference, as text: each rule whose points changed, the
            total, the level (and the threshold that placed it), actions withheld or
            released by repeat suppression, and approval changes per action.
    """

    incident_id: str
    before: Assessment
    after: Assessment
    before_decision: Decision
    after_decision: Decision
    reasons: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether the decision changed: another level, other actions, or other approvals."""
        return self.before_decision.level != self.after_decision.level or _actions(
            self.before_decision
        ) != _actions(self.after_decision)

    def __str__(self) -> str:
        before, after = self.before_decision, self.after_decision
        head = (
            f"{self.incident_id}: {before.level or '-'} ({self.before.total}) -> "
            f"{after.level} ({self.after.total})"
        )
        return "\n".join([head, *(f"    {r}" for r in self.reasons)])


@attrs.frozen(kw_only=True)
class Comparison:
    """The outcome of a replay: every incident, before and after.

    Attributes:
        policy: The name of the policy replayed.
        policy_version: Its version.
        changes: One entry per incident, in the order the incidents were created.
    """

    policy: str
    policy_version: str
    changes: tuple[Change, ...]

    @property
    def changed(self) -> tuple[Change, ...]:
        """The incidents whose decision would change."""
        return tuple(c for c in self.changes if c.changed)

    def transitions(self) -> dict[tuple[str, str], int]:
        """How many incidents move from one level to another (unchanged ones included)."""
        return dict(
            Counter((c.before_decision.level, c.after_decision.level) for c in self.changes)
        )

    def summary(self) -> str:
        """A readable account: the counts, then each changed incident with its reasons."""
        lines = [
            (
                f"Replayed {len(self.changes)} incidents under policy {self.policy} "
                f"{self.policy_version}: {len(self.changed)} decisions would change."
            )
        ]
        for (before, after), count in sorted(self.transitions().items()):
            if before != after:
                lines.append(f"  {before or '-'} -> {after}: {count}")
        lines.extend(str(change) for change in self.changed)
        return "\n".join(lines)


def _actions(decision: Decision) -> tuple[tuple[str, bool, timedelta | None], ...]:
    return tuple((a.name, a.requires_approval, a.approval_timeout) for a in decision.actions)


def _points_by_rule(assessment: Assessment) -> dict[str, int]:
    points: dict[str, int] = {}
    for c in assessment.contributions:
        points[c.rule] = points.get(c.rule, 0) + c.points
    return points


def _timeout(value: timedelta | None) -> str:
    return "none" if value is None else format_duration(value)


def _approvals(before: Decision, after: Decision) -> list[str]:
    old = {a.name: a for a in before.actions}
    reasons = []
    for action in after.actions:
        was = old.get(action.name)
        if was is None:
            continue
        if was.requires_approval != action.requires_approval:
            now = "requires approval" if action.requires_approval else "no longer requires approval"
            reasons.append(f"{action.name}: {now}")
        elif action.requires_approval and was.approval_timeout != action.approval_timeout:
            reasons.append(
                f"{action.name}: approval timeout {_timeout(was.approval_timeout)} -> "
                f"{_timeout(action.approval_timeout)}"
            )
    return reasons


def _reasons(
    policy: Policy,
    change: tuple[Assessment, Assessment, Decision, Decision],
    withheld: str | None,
) -> tuple[str, ...]:
    before, after, before_decision, after_decision = change
    old, new = _points_by_rule(before), _points_by_rule(after)
    reasons = [
        f"{rule}: {old.get(rule, 0):+d} -> {new.get(rule, 0):+d}"
        for rule in sorted(set(old) | set(new))
        if old.get(rule, 0) != new.get(rule, 0)
    ]
    if before.total != after.total:
        reasons.append(f"total: {before.total} -> {after.total}")
    if before_decision.level != after_decision.level:
        level = policy.level_for(after.total, after.threat)
        why = f"from {level.min}"
        if level.min_threat:
            why += f", threat from {level.min_threat}"
        passed = policy.level_for(after.total)
        if passed is not level:
            why += f"; {passed.name} also needs threat {passed.min_threat}"
        reasons.append(f"level: {before_decision.level or '-'} -> {level.name} ({why})")
    was_withheld = "actions withheld" in before_decision.reason
    if withheld is not None and not was_withheld:
        reasons.append(withheld)
    elif withheld is None and was_withheld:
        reasons.append("no longer a repeat within the window: actions not withheld")
    reasons.extend(_approvals(before_decision, after_decision))
    if not reasons and _actions(before_decision) != _actions(after_decision):
        names = ", ".join(after_decision.action_names) or "none"
        reasons.append(f"actions: {names} under this policy's level {after_decision.level}")
    return tuple(reasons)


def replay(
    incidents: Iterable[Incident],
    policy: Policy,
    *,
    history: Callable[[Incident], History] | None = None,
    lookback: timedelta = timedelta(days=30),
) -> Comparison:
    """Re-score stored incidents under `policy` and report which decisions change, and why.

    Pure: the caller (the store, or a notebook) supplies the incidents. Each incident is
    re-assessed at the time it was last assessed (or updated), with its stored findings.
    Its history is `history(incident)` if given; otherwise it is rebuilt from the
    incidents replayed before it (earlier sightings of its observables, and earlier
    incidents on its hosts within `lookback`, with their replayed scores).

    Args:
        incidents: The stored incidents.
        policy: The policy to replay them under.
        history: Where each incident's history comes from (default: the replayed set).
        lookback: How far back earlier incidents count, when history is rebuilt.

    Returns:
        A `Comparison` with one `Change` per incident, in creation order.
    """
    ordered = sorted(incidents, key=lambda i: (i.created_at, i.id))
    changes: list[Change] = []
    seen: Counter[Observable] = Counter()
    priors: list[PriorIncident] = []
    for incident in ordered:
        now = incident.assessment.assessed_at or incident.updated_at
        if history is not None:
            past = history(incident)
        else:
            hosts = {k for h in incident.hosts for k in h.keys}
            past = History(
                sightings={o: seen[o] for o in incident.observables if seen[o]},
                incidents=[
                    p for p in priors if p.host in hosts and timedelta(0) <= now - p.at <= lookback
                ],
            )
        after = assess(incident, incident.findings, past, policy, now)
        decision = policy.decide(after, history=past)
        pair = (incident.assessment, after, incident.decision, decision)
        changes.append(
            Change(
                incident_id=incident.id,
                before=incident.assessment,
                after=after,
                before_decision=incident.decision,
                after_decision=decision,
                reasons=_reasons(policy, pair, repeat(policy, after, past)),
            )
        )
        seen.update(set(incident.observables))
        priors.extend(
            PriorIncident(id=incident.id, host=k, at=now, total=after.total, level=decision.level)
            for h in incident.hosts
            for k in h.keys
        )
    return Comparison(policy=policy.name, policy_version=policy.version, changes=tuple(changes))
