"""What the scorer knows of the past: earlier sightings and earlier incidents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

import attrs

from fido._errors import InvalidRecord
from fido._observable import Observable

__all__ = ["History", "PriorIncident"]


def _text(instance: PriorIncident, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRecord(
            f"{attribute.name} is a non-empty str", record="PriorIncident", field=attribute.name
        )


def _aware(instance: PriorIncident, attribute: attrs.Attribute[datetime], value: object) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidRecord(
            "at is a datetime with a UTC offset (a naive time cannot be compared with now)",
            record="PriorIncident",
            field="at",
        )


def _total(instance: PriorIncident, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidRecord(
            "total is an integer from 0 to 100", record="PriorIncident", field="total"
        )


@attrs.frozen(kw_only=True)
class PriorIncident:
    """An earlier incident on one of the incident's hosts.

    Args:
        id: The earlier incident's id.
        host: The host key (`Host.key`) the two incidents share.
        at: When the earlier incident was last updated (with a UTC offset).
        total: Its total score.
        level: Its decision level.

    Raises:
        InvalidRecord: A field is malformed, for example a naive `at`.
    """

    id: str = attrs.field(validator=_text)
    host: str = attrs.field(validator=_text)
    at: datetime = attrs.field(validator=_aware)
    total: int = attrs.field(validator=_total)
    level: str = ""


def _sightings(value: Mapping[Observable, int]) -> dict[Observable, int]:
    checked: object = value  # callers outside mypy pass anything
    if not isinstance(checked, Mapping):
        raise InvalidRecord("sightings map observables to counts", record="History")
    for observable, count in checked.items():
        if not isinstance(observable, Observable):
            raise InvalidRecord(
                f"sightings are keyed by Observable, not {type(observable).__name__}",
                record="History",
                field="sightings",
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidRecord(
                "a sighting count is an integer of at least 0",
                record="History",
                field="sightings",
            )
    return dict(value)


def _incidents(value: tuple[PriorIncident, ...] | list[PriorIncident]) -> tuple[PriorIncident, ...]:
    incidents = tuple(value)
    for prior in incidents:
        if not isinstance(prior, PriorIncident):
            raise InvalidRecord(
                f"incidents are PriorIncident records, not {type(prior).__name__}",
                record="History",
                field="incidents",
            )
    return incidents


@attrs.frozen(kw_only=True)
class History:
    """The past, as the store knows it, given to the scorer (which never reads a store itself).

    Args:
        sightings: For each observable of the incident, in how many earlier incidents it
            was seen (observables never seen may be left out).
        incidents: Earlier incidents on the incident's hosts, within the store's look-back.

    Attributes:
        EMPTY: No history at all (a first incident, or no store).

    Raises:
        InvalidRecord: A sighting is not keyed by an `Observable` or its count is not a
            count, or an incident is not a `PriorIncident`.
    """

    sightings: Mapping[Observable, int] = attrs.field(
        factory=dict, converter=_sightings, hash=False
    )
    incidents: tuple[PriorIncident, ...] = attrs.field(default=(), converter=_incidents)
    counts: Mapping[str, int] = attrs.field(init=False, eq=False, repr=False, hash=False)
    """The sightings by observable key (`Observable.key`), for the scorer's look-ups."""

    EMPTY: ClassVar[History]

    def __attrs_post_init__(self) -> None:
        counts = {o.key: n for o, n in self.sightings.items() if n}
        object.__setattr__(self, "counts", counts)


History.EMPTY = History()
