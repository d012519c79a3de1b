"""What the scorer knows of the past: earlier sightings and earlier incidents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

import attrs

from fido._observable import Observable

__all__ = ["History", "PriorIncident"]


@attrs.frozen(kw_only=True)
class PriorIncident:
    """An earlier incident on one of the incident's hosts.

    Args:
        id: The earlier incident's id.
        host: The host key (`Host.key`) the two incidents share.
        at: When the earlier incident was last updated.
        total: Its total score.
        level: Its decision level.
    """

    id: str
    host: str
    at: datetime
    total: int
    level: str = ""


def _sightings(value: Mapping[Observable, int]) -> dict[Observable, int]:
    return dict(value)


def _incidents(value: tuple[PriorIncident, ...] | list[PriorIncident]) -> tuple[PriorIncident, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class History:
    """The past, as the store knows it, given to the scorer (which never reads a store itself).

    Args:
        sightings: For each observable of the incident, in how many earlier incidents it
            was seen (observables never seen may be left out).
        incidents: Earlier incidents on the incident's hosts, within the store's look-back.

    Attributes:
        EMPTY: No history at all (a first incident, or no store).
    """

    sightings: Mapping[Observable, int] = attrs.field(
        factory=dict, converter=_sightings, hash=False
    )
    incidents: tuple[PriorIncident, ...] = attrs.field(default=(), converter=_incidents)

    EMPTY: ClassVar[History]


History.EMPTY = History()
