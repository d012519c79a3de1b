"""The policy's data form: the defaults, validation into typed objects, and back.

Every check names the dotted key (`decision.levels[2].min`) and the value at fault, so
that `Policy.from_toml` can add the file and the line.
"""

from __future__ import annotations

import copy as _copy
import ipaddress
import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from fido._errors import ConfigurationError
from fido._findings import Criticality, Reliability, Verdict
from fido._severity import Severity
from fido.scoring._sections import (
    ActionRule,
    AgeTier,
    AssetGroup,
    DecisionPolicy,
    Level,
    MachinePolicy,
    Recommendation,
    ThreatPolicy,
    Tier,
    UserPolicy,
    Watch,
    WordList,
)
from fido.scoring._toml import format_duration, parse_duration

if TYPE_CHECKING:
    from datetime import timedelta

    from fido.scoring._policy import Policy

__all__ = ["DEFAULT", "build", "check_actions", "copy", "flatten", "merge", "unbuild"]

T = TypeVar("T")

DEFAULT: Final[Mapping[str, Any]] = {
    "policy": {
        "name": "default",
        "version": "1",
        "combine": "sum",
        "weights": {"threat": 1.0, "machine": 1.0, "user": 1.0},
    },
    "correlation": {"window": "1h", "max_span": "1d"},
    "threat": {
        "severity": {"info": 0, "low": 5, "medium": 10, "high": 20, "critical": 30},
        "categories": {
            "ransomware": 25,
            "exfiltration": 20,
            "c2": 15,
            "credential-access": 15,
            "lateral-movement": 15,
            "malware": 10,
            "exploit": 10,
            "persistence": 10,
            "phishing": 5,
        },
        "verdicts": {"malicious": 50, "suspicious": 20, "unknown": 0, "benign": -10},
        "reliability": {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.3},
        "corroboration": {"decay": 0.5, "detectors": 10},
        "sightings": [{"min": 1, "points": 10}, {"min": 5, "points": 20}],
        "host_history": [{"after": "4h", "points": 15}, {"after": "12h", "points": 25}],
    },
    "machine": {
        "unknown": 10,
        "unmanaged": 15,
        "server": 10,
        "criticality": {"low": 0, "medium": 5, "high": 15, "critical": 25},
        "posture": {
            "av_not_installed": 50,
            "av_not_running": 50,
            "critical_patches": {"min": 5, "points": 20},
            "high_patches": {"min": 10, "points": 5},
        },
        "asset_groups": [
            {"name": "pci", "points": 25, "groups": ["pci"], "cidrs": [], "hostnames": []},
            {
                "name": "domain controllers",
                "points": 30,
                "groups": ["domain controllers", "domain-controllers"],
                "cidrs": [],
                "hostnames": [],
            },
        ],
    },
    "user": {
        "privileged": 30,
        "privileged_groups": [
            "Account Operators",
            "Administrators",
            "Backup Operators",
            "DnsAdmins",
            "Domain Admins",
            "Enterprise Admins",
            "Enterprise Key Admins",
            "Group Policy Creator Owners",
            "Key Admins",
            "Schema Admins",
            "Server Operators",
        ],
        "titles": {
            "points": 25,
            "words": [
                "chief",
                "ceo",
                "cfo",
                "cio",
                "ciso",
                "coo",
                "cto",
                "president",
                "vice president",
                "vp",
                "svp",
                "evp",
                "director",
                "executive assistant",
                "general counsel",
                "treasurer",
                "controller",
            ],
        },
        "departments": {
            "points": 30,
            "words": ["executive", "finance", "legal", "human resources", "hr", "treasury"],
        },
        "disabled": 25,
        "locked": 10,
        "service_account": 15,
        "watch": [],
    },
    "decision": {
        "repeat_window": "30m",
        "levels": [
            {"name": "suppress", "min": 0, "actions": []},
            {"name": "log", "min": 10, "actions": []},
            {"name": "notify", "min": 30, "actions": ["notify"]},
            {"name": "ticket", "min": 60, "actions": ["notify", "ticket"]},
            {
                "name": "contain",
                "min": 85,
                "min_threat": 40,
                "actions": ["notify", "ticket", "contain"],
            },
        ],
        "actions": {"contain": {"requires_approval": True, "approval_timeout": "4h"}},
        "recommendations": [
            {"text": "re-image", "min_total": 85, "min_threat": 40},
            {
                "text": "scan, patch and release",
                "min_total": 30,
                "rules": ["machine.posture.critical_patches", "machine.posture.high_patches"],
            },
            {"text": "scan and release", "min_total": 30},
            {"text": "no action needed"},
        ],
    },
}

_POINTS: Final = (-100, 100)


def copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy as plain dicts and lists."""
    return _copy.deepcopy(dict(data))


def merge(base: Mapping[str, Any], override: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Apply `override` to `base`: tables merge key by key, everything else replaces."""
    if not isinstance(override, Mapping):
        raise ConfigurationError(f"expected a table, not {_kind(override)}", key=path or None)
    result = copy(base)
    for key, value in override.items():
        dotted = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value, dotted)
        else:
            result[key] = _copy.deepcopy(value)
    return result


def flatten(data: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values (lists of tables indexed: `levels[2].min`)."""
    result: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else key
        if isinstance(value, Mapping):
            result.update(flatten(value, dotted))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                result.update(flatten(item, f"{dotted}[{index}]"))
        else:
            result[dotted] = value
    return result


def _kind(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


class _Table:
    """One table of policy data, with checked accessors that name the dotted key."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"expected a table, not {_kind(data)}", key=path or None)
        self.data: Mapping[str, Any] = data
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> ConfigurationError:
        value = self.data.get(name)
        shown = repr(value) if not isinstance(value, Mapping | list) else _kind(value)
        return ConfigurationError(f"{message}, not {shown}", key=self.key(name))

    def only(self, *names: str) -> None:
        for name in self.data:
            if name not in names:
                expected = ", ".join(names)
                raise ConfigurationError(
                    f"unknown key {name!r} (expected one of: {expected})", key=self.key(name)
                )

    def get(self, name: str) -> Any:
        if name not in self.data:
            raise ConfigurationError("a value is required", key=self.key(name))
        return self.data[name]

    def table(self, name: str) -> _Table:
        return _Table(self.get(name), self.key(name))

    def int(self, name: str, low: int = _POINTS[0], high: int = _POINTS[1]) -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"expected an integer from {low} to {high}")
        return value

    def number(self, name: str, low: float, high: float) -> float:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"expected a number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise self.fail(name, f"expected a number from {low:g} to {high:g}")
        return float(value)

    def bool(self, name: str, default: bool | None = None) -> bool:
        if default is not None and name not in self.data:
            return default
        value = self.get(name)
        if not isinstance(value, bool):
            raise self.fail(name, "expected true or false")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        if default is not None and name not in self.data:
            return default
        value = self.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and name == "version":
            return str(value)
        if isinstance(value, float) and name == "version":
            raise self.fail(name, f'expected a string (write "{value}" in quotes)')
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, "expected a non-empty string")
        return value.strip()

    def strings(self, name: str) -> tuple[str, ...]:
        if name not in self.data:
            return ()
        value = self.data[name]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(name, "expected an array of strings")
        return tuple(value)

    def duration(self, name: str) -> timedelta:
        value = self.get(name)
        if not isinstance(value, str):
            raise self.fail(name, "expected a duration such as '30m', '4h' or '1d'")
        try:
            return parse_duration(value)
        except ValueError:
            raise self.fail(name, "expected a duration such as '30m', '4h' or '1d'") from None

    def tables(self, name: str) -> list[_Table]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.fail(name, "expected an array of tables")
        return [_Table(item, f"{self.key(name)}[{i}]") for i, item in enumerate(value)]

    def enum_map(self, name: str, cls: type[Any], read: Callable[[_Table, str], T]) -> dict[Any, T]:
        table = self.table(name)
        table.only(*(m.value for m in cls))
        return {member: read(table, member.value) for member in cls}


def _tier(table: _Table) -> Tier:
    table.only("min", "points")
    return Tier(table.int("min", 1, 1_000_000), table.int("points"))


def _threat(table: _Table) -> ThreatPolicy:
    table.only(
        "severity",
        "categories",
        "verdicts",
        "reliability",
        "corroboration",
        "sightings",
        "host_history",
    )
    verdicts = table.enum_map("verdicts", Verdict, _Table.int)
    order = [Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.UNKNOWN, Verdict.BENIGN]
    for higher, lower in itertools.pairwise(order):
        if verdicts[higher] < verdicts[lower]:
            raise ConfigurationError(
                f"{higher.value} must give at least as many points as {lower.value} "
                f"({verdicts[higher]} < {verdicts[lower]})",
                key=f"{table.key('verdicts')}.{higher.value}",
            )
    if verdicts[Verdict.MALICIOUS] < 0:
        raise ConfigurationError(
            "malicious cannot lower the score", key=f"{table.key('verdicts')}.malicious"
        )
    reliability = table.enum_map("reliability", Reliability, lambda t, k: t.number(k, 0, 1))
    letters = [Reliability.A, Reliability.B, Reliability.C, Reliability.D, Reliability.E]
    for better, worse in itertools.pairwise(letters):
        if reliability[better] < reliability[worse]:
            raise ConfigurationError(
                f"{better.value} is more reliable than {worse.value} and cannot weigh less "
                f"({reliability[better]:g} < {reliability[worse]:g})",
                key=f"{table.key('reliability')}.{better.value}",
            )
    categories = table.table("categories")
    folded: dict[str, int] = {}
    for name in categories.data:
        if name.lower() in folded:
            raise ConfigurationError(
                f"category {name!r} is listed twice (names ignore case)",
                key=categories.key(name),
            )
        folded[name.lower()] = categories.int(name)
    corroboration = table.table("corroboration")
    corroboration.only("decay", "detectors")
    host_history: list[AgeTier] = []
    for item in table.tables("host_history"):
        item.only("after", "points")
        age = AgeTier(item.duration("after"), item.int("points"))
        if any(t.after == age.after for t in host_history):
            raise item.fail("after", "each tier needs its own value")
        host_history.append(age)
    sightings: list[Tier] = []
    for item in table.tables("sightings"):
        tier = _tier(item)
        if any(t.min == tier.min for t in sightings):
            raise item.fail("min", "each tier needs its own value")
        sightings.append(tier)
    return ThreatPolicy(
        severity=table.enum_map("severity", Severity, _Table.int),
        categories=folded,
        verdicts=verdicts,
        reliability=reliability,
        decay=corroboration.number("decay", 0.0, 1.0),
        detectors=corroboration.int("detectors"),
        sightings=tuple(sorted(sightings, key=lambda t: t.min)),
        host_history=tuple(sorted(host_history, key=lambda t: t.after)),
    )


def _network(table: _Table, text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigurationError(
            f"expected a CIDR range such as 10.20.0.0/16, not {text!r}", key=table.key("cidrs")
        ) from None


def _fold(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.casefold() for v in values)


def _machine(table: _Table) -> MachinePolicy:
    table.only("unknown", "unmanaged", "server", "criticality", "posture", "asset_groups")
    posture = table.table("posture")
    posture.only("av_not_installed", "av_not_running", "critical_patches", "high_patches")
    groups = []
    for item in table.tables("asset_groups"):
        item.only("name", "points", "groups", "cidrs", "hostnames")
        groups.append(
            AssetGroup(
                name=item.string("name"),
                points=item.int("points"),
                groups=tuple(sorted(_fold(item.strings("groups")))),
                cidrs=tuple(_network(item, c) for c in item.strings("cidrs")),
                hostnames=tuple(h.casefold() for h in item.strings("hostnames")),
            )
        )
    return MachinePolicy(
        unknown=table.int("unknown"),
        unmanaged=table.int("unmanaged"),
        server=table.int("server"),
        criticality=table.enum_map("criticality", Criticality, _Table.int),
        av_not_installed=posture.int("av_not_installed"),
        av_not_running=posture.int("av_not_running"),
        critical_patches=_tier(posture.table("critical_patches")),
        high_patches=_tier(posture.table("high_patches")),
        asset_groups=tuple(groups),
    )


def _words(table: _Table) -> WordList:
    table.only("points", "words")
    return WordList.of(table.int("points"), table.strings("words"))


def _user(table: _Table) -> UserPolicy:
    table.only(
        "privileged",
        "privileged_groups",
        "titles",
        "departments",
        "disabled",
        "locked",
        "service_account",
        "watch",
    )
    watch = []
    for item in table.tables("watch"):
        item.only("name", "points", "users", "groups")
        watch.append(
            Watch(
                item.string("name"),
                item.int("points"),
                _fold(item.strings("users")),
                _fold(item.strings("groups")),
            )
        )
    return UserPolicy(
        privileged=table.int("privileged"),
        privileged_groups=_fold(table.strings("privileged_groups")),
        titles=_words(table.table("titles")),
        departments=_words(table.table("departments")),
        disabled=table.int("disabled"),
        locked=table.int("locked"),
        service_account=table.int("service_account"),
        watch=tuple(watch),
    )


def _decision(table: _Table) -> DecisionPolicy:
    table.only("repeat_window", "levels", "actions", "recommendations")
    levels: list[tuple[Level, _Table]] = []
    for item in table.tables("levels"):
        item.only("name", "min", "min_threat", "actions")
        names = item.strings("actions")
        if len(set(names)) < len(names):
            raise ConfigurationError("each action is listed once", key=item.key("actions"))
        level = Level(
            item.string("name"),
            item.int("min", 0, 100),
            names,
            item.int("min_threat", 0, 100) if "min_threat" in item.data else 0,
        )
        levels.append((level, item))
    if not levels:
        raise ConfigurationError("at least one level is required", key=table.key("levels"))
    levels.sort(key=lambda pair: pair[0].min)
    lowest, where = levels[0]
    if lowest.min != 0:
        raise ConfigurationError(
            f"the lowest level must start at 0, so that every total has one (not {lowest.min})",
            key=where.key("min"),
        )
    if lowest.min_threat != 0:
        raise ConfigurationError(
            "the lowest level cannot need a threat score, so that every total has one",
            key=where.key("min_threat"),
        )
    for (first, _), (second, item) in itertools.pairwise(levels):
        if first.min == second.min:
            raise ConfigurationError(
                f"levels {first.name!r} and {second.name!r} clash: each needs its own min",
                key=item.key("min"),
            )
    named: set[str] = set()
    for level, item in levels:
        if level.name in named:
            raise ConfigurationError(
                f"two levels are called {level.name!r}: each needs its own name",
                key=item.key("name"),
            )
        named.add(level.name)
    actions = {}
    action_table = table.table("actions")
    for name in action_table.data:
        rule = action_table.table(name)
        rule.only("requires_approval", "approval_timeout")
        timeout = rule.duration("approval_timeout") if "approval_timeout" in rule.data else None
        actions[name] = ActionRule(rule.bool("requires_approval", False), timeout)
    recommendations = []
    for item in table.tables("recommendations"):
        item.only("text", "min_total", "min_threat", "rules")
        recommendations.append(
            Recommendation(
                item.string("text"),
                item.int("min_total", 0, 100) if "min_total" in item.data else 0,
                item.int("min_threat", 0, 100) if "min_threat" in item.data else 0,
                item.strings("rules"),
            )
        )
    return DecisionPolicy(
        levels=tuple(level for level, _ in levels),
        actions=actions,
        recommendations=tuple(recommendations),
        repeat_window=table.duration("repeat_window"),
    )


def check_actions(data: Mapping[str, Any], decision: DecisionPolicy) -> None:
    """Refuse an action rule that `data` sets for an action no level uses (a typo).

    Only the rules `data` itself sets are checked: a base's rule for a level an override
    removed is left alone.

    Raises:
        ConfigurationError: Naming the action's key.
    """
    table = data.get("decision")
    actions = table.get("actions") if isinstance(table, Mapping) else None
    if not isinstance(actions, Mapping):
        return
    used = {name for level in decision.levels for name in level.actions}
    for name in actions:
        if name not in used:
            listed = ", ".join(sorted(used)) or "none"
            raise ConfigurationError(
                f"no level uses the action {name!r} (the levels use: {listed})",
                key=f"decision.actions.{name}",
            )


def build(cls: type[Policy], data: Mapping[str, Any]) -> Policy:
    """Validate complete policy data into a `Policy`.

    Raises:
        ConfigurationError: naming the dotted key and the value at fault.
    """
    root = _Table(data, "")
    root.only("policy", "correlation", "threat", "machine", "user", "decision")
    meta = root.table("policy")
    meta.only("name", "version", "combine", "weights")
    combine = meta.string("combine")
    if combine not in ("sum", "weighted", "max"):
        raise meta.fail("combine", "expected 'sum', 'weighted' or 'max'")
    weights = meta.table("weights")
    weights.only("threat", "machine", "user")
    correlation = root.table("correlation")
    correlation.only("window", "max_span")
    return cls(
        name=meta.string("name"),
        version=meta.string("version"),
        combine=combine,  # type: ignore[arg-type]
        weights=(
            weights.number("threat", 0, 10),
            weights.number("machine", 0, 10),
            weights.number("user", 0, 10),
        ),
        correlation_window=correlation.duration("window"),
        correlation_max_span=correlation.duration("max_span"),
        threat=_threat(root.table("threat")),
        machine=_machine(root.table("machine")),
        user=_user(root.table("user")),
        decision=_decision(root.table("decision")),
    )


def unbuild(policy: Policy) -> dict[str, Any]:
    """The plain data of a policy (what `build` reads)."""
    t, m, u, d = policy.threat, policy.machine, policy.user, policy.decision
    return {
        "policy": {
            "name": policy.name,
            "version": policy.version,
            "combine": policy.combine,
            "weights": dict(zip(("threat", "machine", "user"), policy.weights, strict=True)),
        },
        "correlation": {
            "window": format_duration(policy.correlation_window),
            "max_span": format_duration(policy.correlation_max_span),
        },
        "threat": {
            "severity": {s.value: p for s, p in t.severity.items()},
            "categories": dict(t.categories),
            "verdicts": {v.value: p for v, p in t.verdicts.items()},
            "reliability": {r.value: w for r, w in t.reliability.items()},
            "corroboration": {"decay": t.decay, "detectors": t.detectors},
            "sightings": [{"min": x.min, "points": x.points} for x in t.sightings],
            "host_history": [
                {"after": format_duration(x.after), "points": x.points} for x in t.host_history
            ],
        },
        "machine": {
            "unknown": m.unknown,
            "unmanaged": m.unmanaged,
            "server": m.server,
            "criticality": {c.value: p for c, p in m.criticality.items()},
            "posture": {
                "av_not_installed": m.av_not_installed,
                "av_not_running": m.av_not_running,
                "critical_patches": {
                    "min": m.critical_patches.min,
                    "points": m.critical_patches.points,
                },
                "high_patches": {"min": m.high_patches.min, "points": m.high_patches.points},
            },
            "asset_groups": [
                {
                    "name": g.name,
                    "points": g.points,
                    "groups": list(g.groups),
                    "cidrs": [str(c) for c in g.cidrs],
                    "hostnames": list(g.hostnames),
                }
                for g in m.asset_groups
            ],
        },
        "user": {
            "privileged": u.privileged,
            "privileged_groups": sorted(u.privileged_groups),
            "titles": {"points": u.titles.points, "words": list(u.titles.words)},
            "departments": {"points": u.departments.points, "words": list(u.departments.words)},
            "disabled": u.disabled,
            "locked": u.locked,
            "service_account": u.service_account,
            "watch": [
                {
                    "name": w.name,
                    "points": w.points,
                    "users": sorted(w.users),
                    "groups": sorted(w.groups),
                }
                for w in u.watch
            ],
        },
        "decision": {
            "repeat_window": format_duration(d.repeat_window),
            "levels": [
                {
                    "name": x.name,
                    "min": x.min,
                    "min_threat": x.min_threat,
                    "actions": list(x.actions),
                }
                for x in d.levels
            ],
            "actions": {
                name: {
                    "requires_approval": rule.requires_approval,
                    **(
                        {"approval_timeout": format_duration(rule.approval_timeout)}
                        if rule.approval_timeout is not None
                        else {}
                    ),
                }
                for name, rule in d.actions.items()
            },
            "recommendations": [
                {
                    "text": r.text,
                    "min_total": r.min_total,
                    "min_threat": r.min_threat,
                    "rules": list(r.rules),
                }
                for r in d.recommendations
            ],
        },
    }
