"""The scoring policy: every number the scorer and the decision use, as typed, versioned data."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import attrs

from fido._errors import ConfigurationError
from fido.scoring import _schema as S  # noqa: N812
from fido.scoring._compiled import Compiled
from fido.scoring._decide import decide
from fido.scoring._sections import (
    DecisionPolicy,
    Level,
    MachinePolicy,
    ThreatPolicy,
    UserPolicy,
)
from fido.scoring._toml import dumps, locate

if TYPE_CHECKING:
    from fido._assessment import Assessment, Decision
    from fido.scoring._history import History

__all__ = ["Policy"]

Combine = Literal["sum", "weighted", "max"]
COMBINATIONS: Final = ("sum", "weighted", "max")


@attrs.frozen(kw_only=True)
class Policy:
    """The scoring policy: every number the scorer and the decision use.

    A policy is data. `Policy.default()` reproduces the original FIDO's rules (with its
    bugs fixed); `Policy.from_toml(path_or_text)` reads a file that changes some of them
    (everything it leaves out keeps the default); `base | override` applies an override's
    settings to a base, key by key; `policy.to_toml()` writes the whole policy;
    `policy.diff(other)` lists what differs. Every assessment records the policy's name
    and version. See the policy reference in the docs for every key.

    Attributes:
        name: The policy's name.
        version: The policy's version, recorded in every assessment.
        combine: How the total is made: `sum` (capped at 100), `weighted` or `max`.
        weights: The weights of threat, machine and user for `weighted`.
        correlation_window: How close in time events must be to join one incident.
        correlation_max_span: How long an incident may last: an event later than this
            after the incident's first one starts a new incident, so that a steady
            stream of alerts on one host does not grow one incident forever.
        threat: The threat dimension's numbers.
        machine: The machine dimension's numbers.
        user: The user dimension's numbers.
        decision: Levels, actions, recommendations and repeat suppression.
    """

    name: str
    version: str
    combine: Combine
    weights: tuple[float, float, float]
    correlation_window: timedelta
    correlation_max_span: timedelta
    threat: ThreatPolicy
    machine: MachinePolicy
    user: UserPolicy
    decision: DecisionPolicy
    explicit: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False, hash=False)
    """The settings this policy changes from the default (what `|` applies).

    They accumulate: `(a | m).explicit` holds a's settings and m's, so that
    `base | (a | m)` applies both. `Policy.default()` changes nothing.
    """
    compiled: Compiled = attrs.field(init=False, eq=False, repr=False, hash=False)
    """The policy's numbers as lookup tables for the scorer, worked out once (internal)."""

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "compiled", Compiled(self))

    DEFAULT_DATA: ClassVar[Mapping[str, Any]] = S.DEFAULT

    @classmethod
    def default(cls) -> Policy:
        """The default policy: the original FIDO's rules, with its bugs fixed.

        The original overwrote VirusTotal sub-scores instead of adding them, counted the
        antivirus points twice, and compared a 0-100 threshold after dividing by 10; here
        every finding adds its own contribution, an antivirus that is not installed is
        not also "not running", and every threshold is on the same 0-100 scale.
        """
        return _DEFAULT

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Policy | None = None) -> Policy:
        """Build a policy from plain data: the settings given override `base` (the default).

        Raises:
            ConfigurationError: A key is unknown, or a value is not what it must be; the
                error names the key and the value.
        """
        start = base or cls.default()
        merged = S.merge(start.to_dict(), data)
        policy = S.build(cls, merged)
        S.check_actions(data, policy.decision)
        return attrs.evolve(policy, explicit=S.merge(start.explicit, data))

    @classmethod
    def from_toml(cls, source: str | Path, *, base: Policy | None = None) -> Policy:
        """Read a policy from a TOML file or text; what it leaves out keeps `base` (the default).

        Path or text: a `Path` is always a path. A `str` is a path when it holds no
        newline and either ends in `.toml` or names an existing file; any other `str` is
        TOML text. So `"strict.toml"` that does not exist is a missing file, not bad TOML.

        Args:
            source: A path, or TOML text (see above).
            base: The policy the file changes (default: `Policy.default()`).

        Raises:
            ConfigurationError: The file cannot be read, is not UTF-8, is not TOML, or sets
                a key that does not exist or a value that does not fit; the error names
                the file, the key, the value and the line.
        """
        path = _path(source)
        file = None if path is None else str(path)
        if path is None:
            text = str(source)
        else:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the policy: {exc.strerror or exc}", file=file
                ) from None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigurationError(
                    f"the policy is not UTF-8 text (byte {exc.start})",
                    file=file,
                    line=raw.count(b"\n", 0, exc.start) + 1,
                ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"at line (\d+)", str(exc))
            line = int(found.group(1)) if found else None
            raise ConfigurationError(f"not valid TOML: {exc}", file=file, line=line) from None
        try:
            return cls.from_dict(data, base=base)
        except ConfigurationError as exc:
            line = None if exc.key is None else locate(text, exc.key)
            raise ConfigurationError(exc.message, file=file, key=exc.key, line=line) from None

    def to_dict(self) -> dict[str, Any]:
        """The whole policy as plain data (the form `from_dict` and the TOML file use)."""
        return S.unbuild(self)

    def to_toml(self) -> str:
        """The whole policy as TOML text; `Policy.from_toml(p.to_toml()) == p`."""
        return dumps(self.to_dict())

    def __or__(self, other: Policy | Mapping[str, Any]) -> Policy:
        """Apply `other`'s settings to this policy, key by key.

        For a `Policy`, its explicit settings (everything its files and dicts changed from
        the default, along its whole chain of `|` and `base=`) are applied; for a mapping,
        the mapping. Lists (levels, tiers, asset groups) replace the base's list whole.
        `p | Policy.default()` is `p`: the default changes nothing.
        """
        if isinstance(other, Policy):
            return Policy.from_dict(other.explicit, base=self)
        if isinstance(other, Mapping):
            return Policy.from_dict(other, base=self)
        return NotImplemented

    def diff(self, other: Policy) -> tuple[tuple[str, Any, Any], ...]:
        """What differs from `other`: `(key, value here, value there)`, keys sorted."""
        mine = S.flatten(self.to_dict())
        theirs = S.flatten(other.to_dict())
        keys = sorted(set(mine) | set(theirs))
        return tuple((k, mine.get(k), theirs.get(k)) for k in keys if mine.get(k) != theirs.get(k))

    def level_for(self, total: int, threat: int | None = None) -> Level:
        """The decision level a total reaches: the highest whose minimums are met.

        Args:
            total: The total score.
            threat: The threat score, checked against each level's `min_threat`; None
                leaves those minimums out (the level by total alone).
        """
        reached = self.decision.levels[0]
        for level in self.decision.levels:
            if total >= level.min and (threat is None or threat >= level.min_threat):
                reached = level
        return reached

    def decide(self, assessment: Assessment, *, history: History | None = None) -> Decision:
        """Turn an assessment into a decision: a level, actions, and a recommendation.

        The level is the highest whose `min` the total reaches and whose `min_threat` the
        threat score reaches.

        Repeat suppression: when an earlier incident on the same host lies within
        `decision.repeat_window` of the assessment (its age is at least 0 and less than
        the window) and scored at least as high, the decision keeps its level but
        withholds its actions (it is the same activity, and it was handled); a higher
        score acts again. The comparison leaves out the new assessment's history points
        (`threat.sightings`, `threat.host_history`): the earlier incident is itself the
        history that gives them, so counting them would make every repeat "rise".

        Args:
            assessment: The assessment to decide on (its `assessed_at` is "now").
            history: The earlier incidents on the incident's hosts.

        Raises:
            ScoringError: The assessment's `assessed_at` has no UTC offset.
        """
        return decide(self, assessment, history)


def _path(source: object) -> Path | None:
    """The path `source` names, or None when it is TOML text (see `Policy.from_toml`)."""
    if isinstance(source, Path):
        return source
    if not isinstance(source, str):
        raise ConfigurationError(
            f"a policy is read from a path or from TOML text, not {type(source).__name__}"
        )
    if "\n" in source or "\r" in source:
        return None
    if source.endswith(".toml"):
        return Path(source)
    try:
        return Path(source) if Path(source).is_file() else None
    except (OSError, ValueError):  # not a possible path (too long, a NUL): text
        return None


def _default() -> Policy:
    return S.build(Policy, S.DEFAULT)


_DEFAULT: Final = _default()
