"""Machine rules: what the inventory knows of the host (criticality, role, posture, groups).

Several sources may describe one host (a CMDB and the directory, say). Their facts are
merged worst case first: the highest criticality, any source that says the antivirus is
missing, the most missing patches. Each contribution names the source of its fact.
"""

from __future__ import annotations

import ipaddress
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Final

from fido._assessment import Contribution, Dimension
from fido._findings import Criticality
from fido.scoring._context import Context, contribution, subject_key

if TYPE_CHECKING:
    from fido._entities import Host
    from fido._findings import HostContext
    from fido.scoring._sections import AssetGroup, MachinePolicy

__all__ = ["machine"]

MACHINE: Final = Dimension.MACHINE
_CRITICALITY: Final = {c: (c.value, f"machine.criticality.{c.value}") for c in Criticality}


class _Facts:
    """The worst-case facts of one host, each with the source that reported it."""

    __slots__ = (
        "critical",
        "criticality",
        "groups",
        "high",
        "not_installed",
        "not_running",
        "server",
        "unmanaged",
    )

    def __init__(self, contexts: list[HostContext]) -> None:
        self.criticality: tuple[Criticality, str] | None = None
        self.server: str | None = None
        self.unmanaged: str | None = None
        self.not_installed: str | None = None
        self.not_running: str | None = None
        self.critical: tuple[int, str] = (0, "")
        self.high: tuple[int, str] = (0, "")
        self.groups: dict[str, str] = {}
        for c in contexts:
            source = c.source
            if c.criticality is not None and (
                self.criticality is None or c.criticality.rank > self.criticality[0].rank
            ):
                self.criticality = (c.criticality, source)
            if c.is_server and self.server is None:
                self.server = source
            if c.managed is False and self.unmanaged is None:
                self.unmanaged = source
            if c.av_installed is False and self.not_installed is None:
                self.not_installed = source
            if c.av_running is False and self.not_running is None:
                self.not_running = source
            if (
                c.missing_critical_patches is not None
                and c.missing_critical_patches > self.critical[0]
            ):
                self.critical = (c.missing_critical_patches, source)
            if c.missing_high_patches is not None and c.missing_high_patches > self.high[0]:
                self.high = (c.missing_high_patches, source)
            for group in c.groups:
                self.groups.setdefault(group.casefold(), source)


def _posture(policy: MachinePolicy, facts: _Facts) -> list[Contribution]:
    result = []
    if facts.not_installed is not None and policy.av_not_installed:
        result.append(
            contribution(
                MACHINE,
                policy.av_not_installed,
                "antivirus not installed",
                facts.not_installed,
                "machine.posture.av_not_installed",
            )
        )
    elif facts.not_running is not None and policy.av_not_running:
        result.append(
            contribution(
                MACHINE,
                policy.av_not_running,
                "antivirus not running",
                facts.not_running,
                "machine.posture.av_not_running",
            )
        )
    for tier, (count, source), label in (
        (policy.critical_patches, facts.critical, "critical"),
        (policy.high_patches, facts.high, "high"),
    ):
        if count >= tier.min and tier.points:
            result.append(
                contribution(
                    MACHINE,
                    tier.points,
                    f"{count} missing {label} patches (>= {tier.min})",
                    source,
                    f"machine.posture.{label}_patches",
                )
            )
    return result


def _group_reason(group: AssetGroup, host: Host, groups: dict[str, str]) -> tuple[str, str] | None:
    for name in group.groups:
        if name in groups:
            return f"in inventory group {name}", groups[name]
    if host.ip is not None and group.cidrs:
        address = ipaddress.ip_address(host.ip)
        for network in group.cidrs:
            if address.version == network.version and address in network:
                return f"address in {network}", "policy"
    for pattern in group.hostnames:
        for candidate in (host.name, host.fqdn):
            if candidate is not None and fnmatchcase(candidate, pattern):
                return f"name matches {pattern}", "policy"
    return None


def _host(ctx: Context, host: Host) -> list[Contribution]:
    policy = ctx.policy.machine
    contexts = ctx.host_contexts.get(subject_key(host))
    result: list[Contribution] = []
    groups: dict[str, str] = {}
    if not contexts:
        if policy.unknown:
            result.append(
                contribution(
                    MACHINE,
                    policy.unknown,
                    f"host {host.key} is not in any inventory",
                    "policy",
                    "machine.unknown",
                )
            )
    else:
        facts = _Facts(contexts)
        groups = facts.groups
        if facts.criticality is not None:
            level, source = facts.criticality
            points = policy.criticality[level]
            if points:
                name, rule = _CRITICALITY[level]
                result.append(contribution(MACHINE, points, f"criticality {name}", source, rule))
        if facts.server is not None and policy.server:
            result.append(
                contribution(MACHINE, policy.server, "a server", facts.server, "machine.server")
            )
        if facts.unmanaged is not None and policy.unmanaged:
            result.append(
                contribution(
                    MACHINE,
                    policy.unmanaged,
                    "not managed by IT",
                    facts.unmanaged,
                    "machine.unmanaged",
                )
            )
        result.extend(_posture(policy, facts))
    for group in policy.asset_groups:
        matched = _group_reason(group, host, groups)
        if matched is not None and group.points:
            why, source = matched
            result.append(
                contribution(
                    MACHINE,
                    group.points,
                    f"asset group {group.name} ({why})",
                    source,
                    f"machine.asset_groups.{group.name}",
                )
            )
    return result


def machine(ctx: Context) -> list[Contribution]:
    """The machine score of the incident's most exposed host."""
    best: list[Contribution] = []
    best_points = -1
    for host in ctx.hosts:
        contributions = _host(ctx, host)
        points = sum(c.points for c in contributions)
        if points > best_points:
            best, best_points = contributions, points
    return best
