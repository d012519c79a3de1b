"""Threat rules: the detectors' severity and category, intelligence, corroboration, history."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Final

from fido._assessment import Contribution, Dimension
from fido._findings import Reliability, Reputation, Verdict
from fido._severity import Severity
from fido.scoring._context import VERDICT_NAMES, Context, apportion, contribution
from fido.scoring._toml import format_duration

if TYPE_CHECKING:
    from fido._observable import Observable

__all__ = ["RULES"]

THREAT: Final = Dimension.THREAT
_SEVERITY: Final = {s: (s.value, f"threat.severity.{s.value}") for s in Severity}
_VERDICT_RULES: Final = {v: f"threat.verdicts.{v.value}" for v in Verdict}
_LETTERS: Final = {r: r.value for r in Reliability}


def severity(ctx: Context) -> list[Contribution]:
    """The highest severity among the events, as the detector reported it."""
    events = ctx.incident.events
    if not events:
        return []
    top = max(events, key=lambda e: e.severity.rank)
    points = ctx.policy.threat.severity[top.severity]
    if not points:
        return []
    name, rule = _SEVERITY[top.severity]
    return [contribution(THREAT, points, f"severity {name}", top.detector, rule)]


def category(ctx: Context) -> list[Contribution]:
    """The category worth the most points, once."""
    table = ctx.policy.threat.categories
    best: tuple[int, str, str] | None = None
    for event in ctx.incident.events:
        if event.category is not None and event.category in table:
            points = table[event.category]
            if best is None or points > best[0]:
                best = (points, event.category, event.detector)
    if best is None or not best[0]:
        return []
    points, name, detector = best
    return [contribution(THREAT, points, f"category {name}", detector, f"threat.categories.{name}")]


def _reason(ctx: Context, key: str, finding: Reputation, rank: int, factor: float) -> str:
    details = f"reliability {_LETTERS[finding.reliability]}"
    if finding.detections is not None and finding.total is not None:
        details += f", {finding.detections}/{finding.total}"
    elif finding.score is not None:
        details += f", score {finding.score}"
    if finding.label:
        details += f", {finding.label}"
    reason = (
        f"{finding.source}: {ctx.describe(key, finding.subject)} is "
        f"{VERDICT_NAMES[finding.verdict]} ({details})"
    )
    if rank:
        reason += f", corroborating (x{factor:g})"
    return reason


def reputation(ctx: Context) -> list[Contribution]:
    """Every reputation, weighted by verdict and reliability.

    Per subject the strongest finding counts in full and each further one for
    `decay ** n` of its points: agreement raises the score, with diminishing returns.
    """
    policy = ctx.policy.threat
    verdicts, weights = policy.verdicts, policy.reliability
    result: list[Contribution] = []
    for key, findings in ctx.reputations.items():
        if len(findings) == 1:
            finding = findings[0]
            points = round(verdicts[finding.verdict] * weights[finding.reliability])
            if points:
                result.append(
                    contribution(
                        THREAT,
                        points,
                        _reason(ctx, key, finding, 0, 1.0),
                        finding.source,
                        _VERDICT_RULES[finding.verdict],
                    )
                )
            continue
        weighted = sorted(
            ((verdicts[f.verdict] * weights[f.reliability], f) for f in findings),
            key=lambda pair: (-pair[0], pair[1].source),
        )
        factors = [policy.decay**rank for rank in range(len(weighted))]
        shares = apportion([v * factor for (v, _), factor in zip(weighted, factors, strict=True)])
        for rank, ((_, finding), factor, share) in enumerate(
            zip(weighted, factors, shares, strict=True)
        ):
            if share:
                result.append(
                    contribution(
                        THREAT,
                        share,
                        _reason(ctx, key, finding, rank, factor),
                        finding.source,
                        _VERDICT_RULES[finding.verdict],
                    )
                )
    return result


def detectors(ctx: Context) -> list[Contribution]:
    """The same observable or host reported by several independent detectors."""
    events = ctx.incident.events
    if len({e.detector for e in events}) < 2:
        return []
    seen: dict[object, set[str]] = {}
    for event in events:
        for observable in event.observables:
            seen.setdefault(observable, set()).add(event.detector)
        if event.host is not None:
            for key in event.host.keys:
                seen.setdefault(("host", key), set()).add(event.detector)
    most = max((len(s) for s in seen.values()), default=0)
    if most < 2:
        return []
    names = min(sorted(s) for s in seen.values() if len(s) == most)
    policy = ctx.policy.threat
    points = round(sum(policy.detectors * policy.decay**k for k in range(len(names) - 1)))
    if not points:
        return []
    listed = ", ".join(names)
    return [
        contribution(
            THREAT,
            points,
            f"reported by {len(names)} independent detectors ({listed})",
            "correlation",
            "threat.corroboration.detectors",
        )
    ]


def sightings(ctx: Context) -> list[Contribution]:
    """An observable seen in earlier incidents (the most-seen one, once)."""
    tiers = ctx.policy.threat.sightings
    known = ctx.history.sightings
    if not tiers or not known:
        return []
    best: tuple[int, Observable] | None = None
    for observable in ctx.observables:
        count = known.get(observable, 0)
        if count and (best is None or count > best[0]):
            best = (count, observable)
    if best is None:
        return []
    count, observable = best
    reached = [t for t in tiers if count >= t.min]
    if not reached or not reached[-1].points:
        return []
    times = "once" if count == 1 else f"{count} times"
    return [
        contribution(
            THREAT,
            reached[-1].points,
            f"{ctx.describe(observable.key, observable)} seen before ({times})",
            "history",
            "threat.sightings",
        )
    ]


def host_history(ctx: Context) -> list[Contribution]:
    """An earlier incident on the same host, some hours ago: the intruder came back."""
    tiers = ctx.policy.threat.host_history
    best: tuple[int, str, str, timedelta] | None = None
    for prior in ctx.history.incidents:
        age = ctx.now - prior.at
        if age < timedelta(0) or prior.id == ctx.incident.id:
            continue
        reached = [t for t in tiers if age >= t.after]
        if reached and (best is None or reached[-1].points > best[0]):
            best = (reached[-1].points, prior.id, prior.host, age)
    if best is None or not best[0]:
        return []
    points, prior_id, host, age = best
    ago = format_duration(timedelta(minutes=int(age.total_seconds()) // 60))
    return [
        contribution(
            THREAT,
            points,
            f"host {host} had incident {prior_id} {ago} ago",
            "history",
            "threat.host_history",
        )
    ]


RULES: Final = (severity, category, reputation, detectors, sightings, host_history)
