"""The policy's numbers in the form the scorer reads fastest, worked out once per policy.

A `Policy` is immutable, so everything the rules would otherwise recompute on every
assessment (weighted verdict points, the decay of corroboration, rule names and reason
texts, compiled host name patterns, tiers in the order they are tried) is computed here
when the policy is built, and kept on it. This is data derived from the policy alone:
nothing here depends on an incident, so the scorer stays a pure function.
"""

from __future__ import annotations

import re
from fnmatch import translate
from typing import TYPE_CHECKING, Final, TypeAlias

from fido._findings import Criticality, Reliability, Verdict
from fido._severity import Severity

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from fido.scoring._policy import Policy
    from fido.scoring._sections import AssetGroup

__all__ = ["HISTORY_RULES", "Compiled", "GroupMatcher"]

HISTORY_RULES: Final = frozenset({"threat.sightings", "threat.host_history"})
"""The rules whose points come from history rather than from the incident itself."""

_PRECOMPUTED: Final = 16
Search: TypeAlias = "Callable[[str], re.Match[str] | None]"


class GroupMatcher:
    """One asset group, ready to match: folded group names, networks, compiled globs."""

    __slots__ = ("cidrs", "group", "groups", "patterns", "points", "rule")

    def __init__(self, group: AssetGroup) -> None:
        self.group = group
        self.points = group.points
        self.rule = f"machine.asset_groups.{group.name}"
        self.groups = group.groups
        self.cidrs = group.cidrs
        self.patterns = tuple((p, re.compile(translate(p)).match) for p in group.hostnames)


class Compiled:
    """Lookup tables derived from one policy (see the module's docstring)."""

    __slots__ = (
        "any_cidrs",
        "any_hostnames",
        "asset_groups",
        "categories",
        "combination",
        "corroborations",
        "criticality",
        "decay",
        "detector_points",
        "detectors",
        "group_names",
        "host_history",
        "reputation",
        "severity",
        "sightings",
        "sum",
        "watched",
    )

    def __init__(self, policy: Policy) -> None:
        threat, machine = policy.threat, policy.machine
        self.severity: dict[Severity, tuple[int, int, str, str]] = {
            s: (s.rank, threat.severity[s], f"severity {s.value}", f"threat.severity.{s.value}")
            for s in Severity
        }
        self.categories: dict[str, tuple[int, str, str]] = {
            name: (points, f"category {name}", f"threat.categories.{name}")
            for name, points in threat.categories.items()
        }
        self.reputation: dict[Verdict, dict[Reliability, tuple[float, int, str, str]]] = {
            v: {
                r: (
                    threat.verdicts[v] * threat.reliability[r],
                    round(threat.verdicts[v] * threat.reliability[r]),
                    f"is {v.value} (reliability {r.value}",
                    f"threat.verdicts.{v.value}",
                )
                for r in Reliability
            }
            for v in Verdict
        }
        """Per verdict, then reliability: weighted points, rounded, reason text, rule."""
        self.detectors = threat.detectors
        self.decay: tuple[float, ...] = tuple(threat.decay**n for n in range(_PRECOMPUTED))
        self.corroborations: tuple[str, ...] = tuple(map(_corroborating, self.decay))
        self.detector_points: tuple[int, ...] = tuple(
            _detector_points(threat.detectors, threat.decay, n) for n in range(_PRECOMPUTED)
        )
        self.sightings: tuple[tuple[int, int], ...] = tuple(
            sorted(((t.min, t.points) for t in threat.sightings), reverse=True)
        )
        self.host_history: tuple[tuple[timedelta, int], ...] = tuple(
            sorted(((t.after, t.points) for t in threat.host_history), reverse=True)
        )
        self.criticality: dict[Criticality, tuple[int, str, str]] = {
            c: (
                machine.criticality[c],
                f"criticality {c.value}",
                f"machine.criticality.{c.value}",
            )
            for c in Criticality
        }
        self.asset_groups = tuple(GroupMatcher(g) for g in machine.asset_groups if g.points)
        self.any_cidrs = any(g.cidrs for g in self.asset_groups)
        self.any_hostnames = any(g.patterns for g in self.asset_groups)
        self.group_names = frozenset(name for g in self.asset_groups for name in g.groups)
        """Every inventory group name an asset group matches: a host in none of them, and
        with no ranges or name patterns in the policy, is in no asset group."""
        self.watched: tuple[tuple[Search, int, bool, str, str], ...] = tuple(
            (words.pattern.search, words.points, title, label, f"user.{label}s")
            for words, title, label in (
                (policy.user.titles, True, "title"),
                (policy.user.departments, False, "department"),
            )
            if words.pattern is not None and words.points
        )
        """The word lists that can give points: `(search, points, on the title, label, rule)`."""
        self.combination = _combination(policy)
        self.sum = policy.combine == "sum"

    def decay_of(self, rank: int) -> float:
        """`decay ** rank`."""
        return self.decay[rank] if rank < _PRECOMPUTED else self.decay[1] ** rank

    def decays(self, count: int) -> tuple[float, ...]:
        """`decay ** rank` for each rank below `count`."""
        return tuple(map(self.decay_of, range(count)))

    def corroborating(self, rank: int) -> str:
        """What a reason says of a corroborating finding at `rank` (from 1): its decay."""
        if rank < _PRECOMPUTED:
            return self.corroborations[rank]
        return _corroborating(self.decay_of(rank))

    def detectors_for(self, count: int) -> int:
        """The corroboration points for `count` independent detectors."""
        if count < _PRECOMPUTED:
            return self.detector_points[count]
        return _detector_points(self.detectors, self.decay[1], count)


def _corroborating(decay: float) -> str:
    return f", corroborating (x{decay:g})"


def _detector_points(points: int, decay: float, count: int) -> int:
    return round(sum(points * decay**k for k in range(count - 1)))


def _combination(policy: Policy) -> str:
    if policy.combine == "sum":
        return "threat + machine + user, capped at 100"
    if policy.combine == "max":
        return "the highest of threat, machine and user"
    wt, wm, wu = policy.weights
    return f"{wt:g} x threat + {wm:g} x machine + {wu:g} x user, within 0-100"
