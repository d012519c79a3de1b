"""Machine rules: what the inventory knows of the host (criticality, role, posture, groups).

Several sources may describe one host (a CMDB and the directory, say). Their facts are
merged worst case first: the highest criticality, any source that says the antivirus is
missing, the most missing patches. Each contribution names the source of its fact.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final

from fido._assessment import Contribution, Dimension
from fido.scoring._context import Context, contribution, printable

if TYPE_CHECKING:
    from fido._entities import Host
    from fido._findings import Criticality, HostContext
    from fido.scoring._compiled import GroupMatcher

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = ["machine"]

MACHINE: Final = Dimension.MACHINE


def _inventory(
    ctx: Context, contexts: list[HostContext], result: list[Contribution]
) -> dict[str, str]:
    """Append what the inventories say of a host; return its groups (folded) and sources.

    The facts are merged worst case first (see the module's docstring), each with the
    (escaped) source that reported it.
    """
    criticality: tuple[Criticality, str] | None = None
    server: str | None = None
    unmanaged: str | None = None
    not_installed: str | None = None
    not_running: str | None = None
    critical: tuple[int, str] = (0, "")
    high: tuple[int, str] = (0, "")
    groups: dict[str, str] = {}
    for c in contexts:
        source = c.source
        if not source.isprintable():
            source = printable(source)
        level = c.criticality
        if level is not None and (criticality is None or level.rank > criticality[0].rank):
            criticality = (level, source)
        if c.is_server and server is None:
            server = source
        if c.managed is False and unmanaged is None:
            unmanaged = source
        if c.av_installed is False and not_installed is None:
            not_installed = source
        if c.av_running is False and not_running is None:
            not_running = source
        count = c.missing_critical_patches
        if count is not None and count > critical[0]:
            critical = (count, source)
        count = c.missing_high_patches
        if count is not None and count > high[0]:
            high = (count, source)
        for group in c.groups:
            groups.setdefault(group.casefold(), source)
    policy = ctx.policy.machine
    if criticality is not None:
        level, source = criticality
        points, reason, rule = ctx.compiled.criticality[level]
        if points:
            result.append(contribution(MACHINE, points, reason, source, rule))
    if server is not None and policy.server:
        result.append(contribution(MACHINE, policy.server, "a server", server, "machine.server"))
    if unmanaged is not None and policy.unmanaged:
        reason, rule = "not managed by IT", "machine.unmanaged"
        result.append(contribution(MACHINE, policy.unmanaged, reason, unmanaged, rule))
    if not_installed is not None and policy.av_not_installed:
        reason, rule = "antivirus not installed", "machine.posture.av_not_installed"
        result.append(contribution(MACHINE, policy.av_not_installed, reason, not_installed, rule))
    elif not_running is not None and policy.av_not_running:
        reason, rule = "antivirus not running", "machine.posture.av_not_running"
        result.append(contribution(MACHINE, policy.av_not_running, reason, not_running, rule))
    tier = policy.critical_patches
    count, source = critical
    if count >= tier.min and tier.points:
        reason = f"{count} missing critical patches (>= {tier.min})"
        rule = "machine.posture.critical_patches"
        result.append(contribution(MACHINE, tier.points, reason, source, rule))
    tier = policy.high_patches
    count, source = high
    if count >= tier.min and tier.points:
        reason = f"{count} missing high patches (>= {tier.min})"
        rule = "machine.posture.high_patches"
        result.append(contribution(MACHINE, tier.points, reason, source, rule))
    return groups


def _group_reason(
    group: GroupMatcher, host: Host, address: IPAddress | None, groups: dict[str, str]
) -> tuple[str, str] | None:
    if groups:
        for name in group.groups:
            if name in groups:
                return f"in inventory group {name}", groups[name]
    if address is not None:
        for network in group.cidrs:
            if address.version == network.version and address in network:
                return f"address in {network}", "policy"
    for pattern, match in group.patterns:
        if (host.name is not None and match(host.name)) or (
            host.fqdn is not None and match(host.fqdn)
        ):
            return f"name matches {pattern}", "policy"
    return None


def _host(ctx: Context, host: Host) -> list[Contribution]:
    compiled = ctx.compiled
    contexts = ctx.host_findings(host)
    result: list[Contribution] = []
    if contexts:
        groups = _inventory(ctx, contexts, result)
    else:
        groups = {}
        unknown = ctx.policy.machine.unknown
        if unknown:
            reason = f"host {printable(host.key)} is not in any inventory"
            result.append(contribution(MACHINE, unknown, reason, "policy", "machine.unknown"))
    if compiled.asset_groups and (
        compiled.any_cidrs or compiled.any_hostnames or not compiled.group_names.isdisjoint(groups)
    ):
        address = (
            ipaddress.ip_address(host.ip) if compiled.any_cidrs and host.ip is not None else None
        )
        for group in compiled.asset_groups:
            matched = _group_reason(group, host, address, groups)
            if matched is not None:
                why, source = matched
                result.append(
                    contribution(
                        MACHINE,
                        group.points,
                        f"asset group {group.group.name} ({why})",
                        source,
                        group.rule,
                    )
                )
    return result


def machine(ctx: Context) -> list[Contribution]:
    """The machine score of the incident's most exposed host (the first, among equals)."""
    hosts = ctx.hosts
    if len(hosts) == 1:
        return _host(ctx, hosts[0])
    best: list[Contribution] = []
    best_points = -1
    for host in hosts:
        contributions = _host(ctx, host)
        points = sum(c.points for c in contributions)
        if points > best_points:
            best, best_points = contributions, points
    return best
