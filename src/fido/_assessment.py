"""The result of scoring (`Assessment`) and of the policy's decision (`Decision`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from fido import _serde
from fido._enums import Enum
from fido._errors import InvalidRecord

__all__ = ["Action", "Assessment", "Contribution", "Decision", "Dimension"]


class Dimension(Enum):
    """The three dimensions of an assessment, as in the original FIDO."""

    THREAT = "threat"
    MACHINE = "machine"
    USER = "user"


def _dimension(value: Dimension | str) -> Dimension:
    if type(value) is Dimension:
        return value
    try:
        return Dimension(value)
    except ValueError:
        raise InvalidRecord(
            f"dimension is threat, machine or user, not {str(value)[:40]!r}",
            record="Contribution",
            field="dimension",
        ) from None


def _points(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(
            f"{attribute.name} is an integer", record=type(instance).__name__, field=attribute.name
        )


def _score(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    _points(instance, attribute, value)
    if not 0 <= value <= 100:
        raise InvalidRecord(
            f"{attribute.name} is between 0 and 100, not {value}",
            record=type(instance).__name__,
            field=attribute.name,
        )


@attrs.frozen(kw_only=True)
class Contribution:
    """One reason for some of the points of an assessment.

    Args:
        dimension: The dimension the points count towards.
        points: How many points (negative for evidence that lowers the score).
        reason: Why, in words an analyst reads
            (`"virustotal: evil[.]example is malicious (reliability B, 53/70)"`).
        source: Who supplied the evidence: a detector, an enricher, `history` or `policy`.
        rule: The policy key that gave the points (`threat.verdicts.malicious`).
    """

    dimension: Dimension = attrs.field(converter=_dimension)
    points: int = attrs.field(validator=_points)
    reason: str
    source: str
    rule: str

    def __str__(self) -> str:
        return (
            f"{self.points:+d} {self.dimension.value}: {self.reason} [{self.source}; {self.rule}]"
        )


def _contributions(values: Iterable[Contribution]) -> tuple[Contribution, ...]:
    return tuple(values)


def _escape(char: str) -> str:
    return repr(char)[1:-1]


def printable(text: str) -> str:
    r"""`text` on one line: every character that is not printable shown as its escape.

    Alert and intelligence content (a pulse name, a detector's label) goes into
    explanations; a newline or a terminal control sequence in it must not forge lines.
    A newline becomes the two characters `\n`, an escape character `\x1b`, a line
    separator `\u2028`; printable text is returned as it is.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


@attrs.frozen(kw_only=True)
class Assessment:
    """How an incident scored, and every reason why.

    `threat`, `machine` and `user` are each the sum of their contributions (the policy's
    caps and floors appear as contributions too, so the sums are exact), and `total`
    combines the three as the policy says (`combination` names the rule). The default
    `Assessment()` is the empty assessment of an incident not yet scored.

    Args:
        threat: The threat score, 0-100.
        machine: The machine score, 0-100.
        user: The user score, 0-100.
        total: The combined score, 0-100.
        contributions: Every reason, in the order the rules ran.
        combination: How `total` was combined, in words.
        policy: The policy's name.
        policy_version: The policy's version.
        assessed_at: The time the assessment was made for (the scorer's `now`).
    """

    threat: int = attrs.field(default=0, validator=_score)
    machine: int = attrs.field(default=0, validator=_score)
    user: int = attrs.field(default=0, validator=_score)
    total: int = attrs.field(default=0, validator=_score)
    contributions: tuple[Contribution, ...] = attrs.field(default=(), converter=_contributions)
    combination: str = ""
    policy: str = ""
    policy_version: str = ""
    assessed_at: datetime | None = None

    @property
    def assessed(self) -> bool:
        """Whether this is a real assessment (False for the empty default)."""
        return self.assessed_at is not None

    def score(self, dimension: Dimension | str) -> int:
        """The score of one dimension."""
        dimension = _dimension(dimension)
        if dimension is Dimension.THREAT:
            return self.threat
        if dimension is Dimension.MACHINE:
            return self.machine
        return self.user

    def contributions_to(self, dimension: Dimension | str) -> tuple[Contribution, ...]:
        """The contributions to one dimension, in order."""
        dimension = _dimension(dimension)
        return tuple(c for c in self.contributions if c.dimension is dimension)

    def explain(self) -> str:
        """A readable account of the score: each dimension, then each contribution.

        Reasons and sources are shown with their control characters escaped, so that
        a stored contribution cannot forge lines either.

        Example:
            ```text
            Total 65/100 = threat + machine + user, capped at 100 (policy default 1)
            Threat 60/100
                 +20  severity high                                   edr  threat.severity.high
                 +10  category malware                                edr  threat.categories.malware
                 +30  otx: c2[.]example is malicious (reliability C)  otx  threat.verdicts.malicious
            Machine 5/100
                  +5  criticality medium  cmdb  machine.criticality.medium
            User 0/100
                (no contributions)
            ```
        """
        if not self.assessed:
            return "Not assessed."
        policy = f"policy {self.policy} {self.policy_version}".rstrip()
        lines = [f"Total {self.total}/100 = {self.combination} ({policy})"]
        for dimension in Dimension:
            lines.append(f"{dimension.value.capitalize()} {self.score(dimension)}/100")
            contributions = self.contributions_to(dimension)
            if not contributions:
                lines.append("    (no contributions)")
                continue
            rows = [
                (c.points, printable(c.reason), printable(c.source), printable(c.rule))
                for c in contributions
            ]
            reason_width = max(len(row[1]) for row in rows)
            source_width = max(len(row[2]) for row in rows)
            lines.extend(
                f"    {points:+4d}  {reason:<{reason_width}}  {source:<{source_width}}  {rule}"
                for points, reason, source, rule in rows
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The assessment as JSON data."""
        return _serde.dump(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        """Build an assessment from the dict form `to_dict` writes.

        Raises:
            InvalidRecord: A field is missing, unknown or malformed.
        """
        return _serde.load_record(cls, data)


def _draft(cls: type) -> Callable[[], Any]:
    """A subclass of the frozen, slotted attrs class `cls` whose instances can be filled in.

    It adds no slot, so its instances have `cls`'s layout, and it has `object`'s
    `__setattr__`, so that filling one in is a plain slot store each (the fastest store
    CPython has; `cls`'s frozen `__setattr__` would refuse). Assigning `__class__ = cls`
    then makes the instance an ordinary, frozen `cls`: CPython allows the assignment
    because the layouts are the same. Nothing else ever sees a draft.
    """
    namespace = {
        "__slots__": (),
        "__init__": object.__init__,  # `Draft()`: allocated without a Python-level call
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        "__doc__": f"A {cls.__name__} being filled in (see `_draft`).",
    }
    return type(f"_{cls.__name__}Draft", (cls,), namespace)


_CONTRIBUTION_DRAFT: Final = _draft(Contribution)
_ASSESSMENT_DRAFT: Final = _draft(Assessment)


def make_contribution(
    dimension: Dimension, points: int, reason: str, source: str, rule: str
) -> Contribution:
    """Build a `Contribution` without checking its fields (the scorer's fast path).

    Only for callers whose values are already of the right types: the scoring engine
    builds many contributions per assessment, and the checks would double its cost. The
    result is an ordinary `Contribution`, equal to `Contribution(dimension=..., ...)`.
    """
    made: Any = _CONTRIBUTION_DRAFT()
    made.dimension = dimension
    made.points = points
    made.reason = reason
    made.source = source
    made.rule = rule
    made.__class__ = Contribution
    return made  # type: ignore[no-any-return]


def make_assessment(
    threat: int,
    machine: int,
    user: int,
    total: int,
    contributions: tuple[Contribution, ...],
    combination: str,
    policy: str,
    policy_version: str,
    assessed_at: datetime,
) -> Assessment:
    """Build an `Assessment` without checking its fields (the scorer's fast path).

    Only for the scoring engine, whose scores are bounded by construction.
    """
    made: Any = _ASSESSMENT_DRAFT()
    made.threat = threat
    made.machine = machine
    made.user = user
    made.total = total
    made.contributions = contributions
    made.combination = combination
    made.policy = policy
    made.policy_version = policy_version
    made.assessed_at = assessed_at
    made.__class__ = Assessment
    return made  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True)
class Action:
    """Something the policy decided to do about an incident (`notify`, `ticket`, `contain`).

    The pipeline hands each action to the responders configured for its name.

    Args:
        name: The action's name, as the policy and the responders call it.
        requires_approval: Whether a person must approve it first (`pipeline.approve`).
        approval_timeout: How long an approval may wait before it expires.
        reason: Why the policy chose it.
        params: Further JSON data for the responders.
    """

    name: str
    requires_approval: bool = False
    approval_timeout: timedelta | None = None
    reason: str = ""
    params: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def __attrs_post_init__(self) -> None:
        name: object = self.name
        if not isinstance(name, str) or not name.strip():
            raise InvalidRecord("an action has a name", record="Action", field="name")
        try:
            _serde.check_json(self.params, "params")
        except _serde.LoadError as exc:
            raise InvalidRecord(exc.message, record="Action", field=exc.path) from None


def _actions(values: Iterable[Action]) -> tuple[Action, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class Decision:
    """What the policy decided: a level, the actions, and a recommendation.

    The default `Decision()` is the empty decision of an incident not yet decided.

    Args:
        level: The policy's level for the score (by default `suppress`, `log`, `notify`,
            `ticket` or `contain`).
        actions: The actions to carry out, in order.
        recommendation: Advice for the analyst (`"scan, patch and release"`).
        reason: Why: the threshold reached, or why actions were withheld (an allowlist
            entry, a repeat within the window).
        policy: The policy's name.
        policy_version: The policy's version.
    """

    level: str = ""
    actions: tuple[Action, ...] = attrs.field(default=(), converter=_actions)
    recommendation: str = ""
    reason: str = ""
    policy: str = ""
    policy_version: str = ""

    @property
    def action_names(self) -> tuple[str, ...]:
        """The names of the actions, in order."""
        return tuple(a.name for a in self.actions)

    def action(self, name: str) -> Action | None:
        """The action called `name`, if the decision has it."""
        return next((a for a in self.actions if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON data."""
        return _serde.dump(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Build a decision from the dict form `to_dict` writes.

        Raises:
            InvalidRecord: A field is missing, unknown or malformed.
        """
        return _serde.load_record(cls, data)
