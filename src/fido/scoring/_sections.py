"""The sections of a policy: typed, validated, immutable values (see `Policy`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import timedelta

import attrs

from fido._findings import Criticality, Reliability, Verdict
from fido._severity import Severity

__all__ = [
    "ActionRule",
    "AgeTier",
    "AssetGroup",
    "DecisionPolicy",
    "Level",
    "MachinePolicy",
    "Recommendation",
    "ThreatPolicy",
    "Tier",
    "UserPolicy",
    "Watch",
    "WordList",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class Tier:
    """`points` once a count reaches `min` (the highest tier reached counts)."""

    min: int
    points: int


@attrs.frozen
class AgeTier:
    """`points` once an earlier incident is at least `after` old (the highest tier counts)."""

    after: timedelta
    points: int


@attrs.frozen
class WordList:
    """`points` when a text contains one of `words` as whole words, ignoring case.

    A word or phrase matches only as whole words: `vp` matches "Senior VP, Sales" but not
    "VPN Engineer", and `vice president` matches "Vice President of Sales". A word matches
    wherever it stands in the text, so list phrases for words that are ambiguous alone
    (the default titles list `executive assistant`, not `executive`, which would also
    match "Account Executive").
    """

    points: int
    words: tuple[str, ...]
    pattern: re.Pattern[str] | None = attrs.field(eq=False, repr=False)

    @classmethod
    def of(cls, points: int, words: tuple[str, ...]) -> WordList:
        """Build the list and compile its pattern once."""
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        pattern = re.compile(rf"\b(?:{alternatives})\b", re.I) if words else None
        return cls(points, words, pattern)

    def search(self, text: str | None) -> str | None:
        """The first listed word found in `text`, if any."""
        if text is None or self.pattern is None:
            return None
        match = self.pattern.search(text)
        return match.group(0) if match else None


@attrs.frozen
class AssetGroup:
    """Machines that matter more: matched by inventory group, CIDR range or host name glob.

    Args:
        name: The group's name, for explanations.
        points: Machine points when a host belongs to it.
        groups: Inventory group names (`HostContext.groups`), case-folded and sorted.
        cidrs: Address ranges (`10.20.0.0/16`); a host matches when its IP is inside.
        hostnames: Glob patterns (`pos-*`, `*.pci.corp.example`) on the name and the fqdn.
    """

    name: str
    points: int
    groups: tuple[str, ...] = ()
    cidrs: tuple[Network, ...] = ()
    hostnames: tuple[str, ...] = ()


@attrs.frozen
class Watch:
    """Accounts that matter more: listed by name or email, or by group.

    Args:
        name: The watch list's name, for explanations.
        points: User points when an account is on it.
        users: Account names, UPNs or mail addresses, compared case-insensitively.
        groups: Group names, compared case-insensitively.
    """

    name: str
    points: int
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


@attrs.frozen
class Level:
    """A decision level: reached at `min` total points, with its actions in order.

    Args:
        name: The level's name (`"ticket"`).
        min: The lowest total that reaches it.
        actions: Its actions, in order.
        min_threat: The lowest threat score it also needs: a level whose `min_threat` the
            threat does not reach is passed over for the highest level below it whose
            minimums are met (by default `contain` needs threat 40, so that a critical,
            exposed machine alone never leads to containment).
    """

    name: str
    min: int
    actions: tuple[str, ...] = ()
    min_threat: int = 0


@attrs.frozen
class ActionRule:
    """How an action is carried out: directly, or after a person approves it."""

    requires_approval: bool = False
    approval_timeout: timedelta | None = None


@attrs.frozen
class Recommendation:
    """Advice for the analyst; the first recommendation whose conditions hold is given.

    Args:
        text: The advice (`"scan, patch and release"`).
        min_total: The lowest total it applies to.
        min_threat: The lowest threat score it applies to.
        rules: If given, a contribution's rule must start with one of these
            (`machine.posture` matches `machine.posture.critical_patches`).
    """

    text: str
    min_total: int = 0
    min_threat: int = 0
    rules: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ThreatPolicy:
    """The threat dimension's numbers (the `[threat]` table)."""

    severity: Mapping[Severity, int] = attrs.field(hash=False)
    categories: Mapping[str, int] = attrs.field(hash=False)
    verdicts: Mapping[Verdict, int] = attrs.field(hash=False)
    reliability: Mapping[Reliability, float] = attrs.field(hash=False)
    decay: float
    detectors: int
    sightings: tuple[Tier, ...]
    host_history: tuple[AgeTier, ...]


@attrs.frozen(kw_only=True)
class MachinePolicy:
    """The machine dimension's numbers (the `[machine]` table)."""

    unknown: int
    unmanaged: int
    server: int
    criticality: Mapping[Criticality, int] = attrs.field(hash=False)
    av_not_installed: int
    av_not_running: int
    critical_patches: Tier
    high_patches: Tier
    asset_groups: tuple[AssetGroup, ...]


@attrs.frozen(kw_only=True)
class UserPolicy:
    """The user dimension's numbers (the `[user]` table)."""

    privileged: int
    privileged_groups: frozenset[str]
    titles: WordList
    departments: WordList
    disabled: int
    locked: int
    service_account: int
    watch: tuple[Watch, ...]


@attrs.frozen(kw_only=True)
class DecisionPolicy:
    """Levels, actions, recommendations and repeat suppression (the `[decision]` table)."""

    levels: tuple[Level, ...]
    actions: Mapping[str, ActionRule] = attrs.field(hash=False)
    recommendations: tuple[Recommendation, ...]
    repeat_window: timedelta
