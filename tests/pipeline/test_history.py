"""The history the pipeline gives the scorer: sightings asked once per observable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import fido
from tests.factories import event

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fido.scoring import History

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Spy(fido.MemoryStore):
    """A MemoryStore that records the observables each `history` call asks about."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def history(
        self,
        *,
        observables: Iterable[fido.Observable],
        hosts: Iterable[str],
        since: datetime,
        exclude: str | None = None,
    ) -> History:
        chosen = list(observables)
        self.asked.append(sorted(o.value for o in chosen))
        return super().history(observables=chosen, hosts=hosts, since=since, exclude=exclude)


def alert(minutes: int, host: str, *observables: str, **fields: Any) -> fido.Event:
    return event(
        time=T0 + timedelta(minutes=minutes),
        host=fido.Host(name=host),
        observables=list(observables),
        **fields,
    )


def sightings_reason(incident: fido.Incident) -> list[str]:
    return [c.reason for c in incident.assessment.contributions if c.rule == "threat.sightings"]


def test_each_observable_is_asked_about_once_per_incident() -> None:
    store = Spy()
    with fido.Pipeline(store=store, clock=lambda: T0) as pipeline:
        # An earlier incident, on another host a day before, saw a.example.
        pipeline.process(alert(-24 * 60, "ws-001", "a.example"))
        store.asked.clear()
        first = pipeline.process(alert(0, "ws-042", "a.example", "b.example"))
        assert sightings_reason(first) == ["a[.]example seen before (once)"]
        joined = pipeline.process(alert(5, "ws-042", "c.example"))
        assert joined.id == first.id
        # The joining event asked only about its own observable; the sighting of
        # a.example is still there.
        assert store.asked == [["a.example", "b.example"], ["c.example"]]
        assert sightings_reason(joined) == ["a[.]example seen before (once)"]


def test_sightings_are_those_found_when_the_observable_was_reported() -> None:
    store = Spy()
    with fido.Pipeline(store=store, clock=lambda: T0) as pipeline:
        first = pipeline.process(alert(0, "ws-042", "a.example"))
        assert sightings_reason(first) == []
        # Another host reports a.example a day later: that incident sees the first ...
        later = pipeline.process(alert(24 * 60, "ws-007", "a.example"))
        assert later.id != first.id
        assert sightings_reason(later) == ["a[.]example seen before (once)"]
        # ... while the first, joined again, keeps what was true when a.example came in:
        # it was not seen before it was reported there.
        again = pipeline.process(alert(10, "ws-042", "d.example"))
        assert again.id == first.id
        assert sightings_reason(again) == []
