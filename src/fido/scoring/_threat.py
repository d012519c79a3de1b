"""Threat rules: the detectors' severity and category, intelligence, corroboration, history."""

from __future__ import annotations

from datetime import timedelta
from math import floor
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from fido._assessment import Contribution, Dimension
from fido._findings import Reliability, Reputation, Verdict
from fido.scoring._context import Context, apportion, canonical, contribution, printable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fido._event import Event
    from fido._observable import Observable
    from fido.scoring._compiled import Compiled

__all__ = ["RULES"]

THREAT: Final = Dimension.THREAT
_ZERO: Final = timedelta(0)
_MINUTE: Final = timedelta(minutes=1)
_KEY: Final = attrgetter("key")


def severity(ctx: Context, out: list[Contribution]) -> None:
    """The highest severity among the events (the first such event's), as reported."""
    top = ctx.top
    if top is None:
        return
    _, points, reason, rule = ctx.compiled.severity[top.severity]
    if points:
        detector = top.detector
        if not detector.isprintable():
            detector = printable(detector)
        out.append(contribution(THREAT, points, reason, detector, rule))


def category(ctx: Context, out: list[Contribution]) -> None:
    """The category worth the most points, once (the first event's, among equals)."""
    best = ctx.category
    if best is None or not best[0]:
        return
    points, reason, rule, detector = best
    if not detector.isprintable():
        detector = printable(detector)
    out.append(contribution(THREAT, points, reason, detector, rule))


Weights = dict[Verdict, dict[Reliability, tuple[float, int, str, str]]]


def _strongest(findings: list[Reputation], weights: Weights) -> list[list[Any]]:
    """Per source, its strongest finding: a source does not corroborate itself.

    Returns `[-weighted points, source, finding, how many findings the source gave,
    the finding's weights entry]`, strongest first, sources in name order among equals.
    When one source gave two equally strong findings, the one first in canonical order
    (by content) counts, so that the arrival order does not matter.
    """
    if len(findings) == 2:  # the usual case: two sources agree (or not)
        one, two = findings
        if one.source != two.source:
            weighted = weights[one.verdict][one.reliability]
            first = [-weighted[0], one.source, one, 1, weighted]
            weighted = weights[two.verdict][two.reliability]
            second = [-weighted[0], two.source, two, 1, weighted]
            return [first, second] if first < second else [second, first]
    ranked: list[list[Any]] = []
    by_source: dict[str, list[Any]] = {}
    for finding in findings:
        weighted = weights[finding.verdict][finding.reliability]
        weight = -weighted[0]
        source = finding.source
        seen = by_source.get(source)
        if seen is None:
            by_source[source] = entry = [weight, source, finding, 1, weighted]
            ranked.append(entry)
            continue
        seen[3] += 1
        if weight < seen[0] or (weight == seen[0] and canonical([seen[2], finding])[0] is finding):
            seen[0], seen[2], seen[4] = weight, finding, weighted
    ranked.sort()  # sources differ: the findings themselves are never compared
    return ranked


def _corroborated(compiled: Compiled, findings: list[Reputation]) -> list[list[Any]]:
    """Several findings on one subject: `[points, source, finding, alike, weights]` each.

    Strongest first (see `_strongest`). The strongest source counts in full and the one
    at rank `n` for `decay ** n` of its weighted points, apportioned so that the points
    add up to the rounded sum.
    """
    ranked = _strongest(findings, compiled.reputation)
    count = len(ranked)
    factors = compiled.decay if count <= len(compiled.decay) else compiled.decays(count)
    if count == 2:  # the usual case, without a comprehension (a function object per call)
        first, second = ranked
        one, two = -first[0] * factors[0], -second[0] * factors[1]
        if round(one + two) == floor(one) + floor(two):  # what `apportion` gives then
            first[0], second[0] = floor(one), floor(two)
            return ranked
        values = [one, two]
    else:
        values = [-entry[0] * factor for entry, factor in zip(ranked, factors, strict=False)]
    for entry, share in zip(ranked, apportion(values), strict=True):
        entry[0] = share
    return ranked


def reputation(ctx: Context, out: list[Contribution]) -> None:
    """Every source's verdict on each subject, weighted by verdict and reliability.

    Per subject each source counts once, with its strongest finding. The strongest
    source counts in full and each further one for `decay ** n` of its points:
    agreement raises the score, with diminishing returns. Subjects come in key order.
    Each reason reads `source: subject is verdict (reliability X, details)`.
    """
    table = ctx.reputations
    if not table:
        return
    compiled = ctx.compiled
    weights = compiled.reputation
    for key in sorted(table) if len(table) > 1 else table:
        findings = table[key]
        if len(findings) == 1:
            finding = findings[0]
            weighted = weights[finding.verdict][finding.reliability]
            if not weighted[1]:
                continue
            counted: Sequence[Sequence[Any]] = ((weighted[1], None, finding, 1, weighted),)
        else:
            counted = _corroborated(compiled, findings)
        described = None  # the first finding that counts names the subject
        for rank, (points, _, finding, alike, weighted) in enumerate(counted):
            if not points:
                continue
            if described is None:
                described = ctx.describe(key, finding.subject)
            _, _, details, rule = weighted
            source = finding.source
            if not source.isprintable():
                source = printable(source)
            if finding.detections is not None and finding.total is not None:
                details = f"{details}, {finding.detections}/{finding.total}"
            elif finding.score is not None:
                details = f"{details}, score {finding.score}"
            label = finding.label
            if label:
                details = f"{details}, {label if label.isprintable() else printable(label)}"
            if alike > 1:
                details = f"{details}, the strongest of its {alike} findings on it"
            reason = f"{source}: {described} {details})"
            if rank:
                texts = compiled.corroborations
                reason += texts[rank] if rank < len(texts) else compiled.corroborating(rank)
            out.append(contribution(THREAT, points, reason, source, rule))


def _shared(ctx: Context, first: Event, second: Event) -> bool:
    """Whether two events name a common observable or host key."""
    one, two = first.host, second.host
    mine = set(map(_KEY, first.observables))
    if one is not None:
        mine.update(ctx.keys_of(one))
    if not mine.isdisjoint(map(_KEY, second.observables)):
        return True
    return two is not None and not mine.isdisjoint(ctx.keys_of(two))


def detectors(ctx: Context, out: list[Contribution]) -> None:
    """The same observable or host reported by several independent detectors."""
    events = ctx.events
    if len(events) < 2:
        return
    if len(events) == 2:  # the usual case: two events, and no sets to build
        first, second = events
        if first.detector == second.detector:
            return
        host = first.host  # usually both events' host, which answers at once
        if (
            host is None
            or host is not second.host
            or not (ctx.host_keys if host is ctx.last_host else host.keys)
        ) and not _shared(ctx, first, second):
            return
        chosen = [first.detector, second.detector]
        if chosen[1] < chosen[0]:
            chosen.reverse()
        most = 2
    else:
        # Each detector's observable keys ("kind:value") and host keys (names, addresses)
        # in one set: a key in common corroborates, whichever kind it is.
        reported: dict[str, set[str]] = {}
        host, keys = ctx.last_host, ctx.host_keys
        for event in events:
            items = reported.get(event.detector)
            if items is None:
                items = reported[event.detector] = set()
            items.update(map(_KEY, event.observables))
            if event.host is not None:
                if event.host is not host:  # events usually share one Host object
                    host, keys = event.host, event.host.keys
                items.update(keys)
        if len(reported) < 2:
            return
        if len(reported) == 2:
            first_name, second_name = sorted(reported)
            if reported[first_name].isdisjoint(reported[second_name]):
                return
            chosen, most = [first_name, second_name], 2
        else:
            seen: dict[str, list[str]] = {}
            for name in sorted(reported):
                for item in reported[name]:
                    names = seen.get(item)
                    if names is None:
                        seen[item] = [name]
                    else:
                        names.append(name)
            most = max(map(len, seen.values()), default=0)
            if most < 2:
                return
            chosen = min(names for names in seen.values() if len(names) == most)
    compiled = ctx.compiled
    table = compiled.detector_points
    points = table[most] if most < len(table) else compiled.detectors_for(most)
    if not points:
        return
    listed = ", ".join(chosen)
    if not listed.isprintable():
        listed = printable(listed)
    out.append(
        contribution(
            THREAT,
            points,
            f"reported by {most} independent detectors ({listed})",
            "correlation",
            "threat.corroboration.detectors",
        )
    )


def sightings(ctx: Context, out: list[Contribution]) -> None:
    """An observable seen in earlier incidents (the most-seen one, the first among equals)."""
    tiers = ctx.compiled.sightings
    counts = ctx.history.counts
    if not tiers or not counts:
        return
    best_count = 0
    best: Observable | None = None
    for event in ctx.events:
        for observable in event.observables:
            count = counts.get(observable.key, 0)
            if count > best_count:
                best_count, best = count, observable
    if best is None:
        return
    points = 0
    for least, tier_points in tiers:  # the highest tier first
        if best_count >= least:
            points = tier_points
            break
    if not points:
        return
    times = "once" if best_count == 1 else f"{best_count} times"
    out.append(
        contribution(
            THREAT,
            points,
            f"{ctx.describe(best.key, best)} seen before ({times})",
            "history",
            "threat.sightings",
        )
    )


def host_history(ctx: Context, out: list[Contribution]) -> None:
    """An earlier incident on the same host, some hours ago: the intruder came back."""
    tiers = ctx.compiled.host_history
    if not tiers:
        return
    now, own = ctx.now, ctx.incident.id
    best: tuple[int, timedelta, str, str] | None = None
    for prior in ctx.history.incidents:
        age = now - prior.at
        if age < _ZERO or prior.id == own:
            continue
        for after, points in tiers:
            if age >= after:
                if best is None or points > best[0]:
                    best = (points, age, prior.id, prior.host)
                break
    if best is None or not best[0]:
        return
    points, age, prior_id, host = best
    text = f"host {host} had incident {prior_id} {_ago(age // _MINUTE)} ago"
    out.append(
        contribution(
            THREAT,
            points,
            text if text.isprintable() else printable(text),
            "history",
            "threat.host_history",
        )
    )


def _ago(minutes: int) -> str:
    """Whole minutes as `format_duration` writes them (`2d3h`, `14h`, `45m`, `0s`)."""
    if not minutes:
        return "0s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:  # no days: the usual case, in one f-string
        if not hours:
            return f"{minutes}m"
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d" + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")


RULES: Final = (severity, category, reputation, detectors, sightings, host_history)
