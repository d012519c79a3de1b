"""The dead-letter record: an alert that could not become an event, kept with its reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from fido import _serde
from fido._errors import FidoError, InvalidEvent, shorten

__all__ = ["DeadLetter"]


def _json(value: Any) -> Any:
    try:
        return _serde.check_json(value, "payload")
    except _serde.LoadError:
        return shorten(value, 4096)


@attrs.frozen(kw_only=True)
class DeadLetter:
    """An alert that could not become a valid `Event`: nothing is dropped silently.

    Args:
        reason: Why it was refused (the error's message, with its context).
        at: When it was refused (not part of equality: parsing the same payload twice
            gives equal dead letters).
        detector: The detector it came from, if known.
        event_id: The alert's id, if it could be read.
        field: The field at fault, if known.
        payload: The alert as it arrived (JSON data; anything else is kept as its `repr`,
            cut to 4,096 characters).
    """

    reason: str
    at: datetime = attrs.field(eq=False)
    detector: str | None = None
    event_id: str | None = None
    field: str | None = None
    payload: Any = attrs.field(default=None, converter=_json, eq=False, repr=False)

    @classmethod
    def from_error(
        cls, payload: Any, error: Exception, *, at: datetime, detector: str | None = None
    ) -> DeadLetter:
        """The dead letter for `payload`, refused with `error`.

        Detectors yield these for the items of a batch they cannot parse, so that one bad
        alert does not cost the others.
        """
        if isinstance(error, InvalidEvent):
            return cls(
                reason=str(error),
                at=at,
                detector=error.detector or detector,
                event_id=error.event_id,
                field=error.field,
                payload=payload,
            )
        reason = str(error) if isinstance(error, FidoError) else f"{type(error).__name__}: {error}"
        return cls(reason=reason, at=at, detector=detector, payload=payload)

    def to_dict(self) -> dict[str, Any]:
        """The dead letter as JSON data."""
        return _serde.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        """Build a dead letter from the dict form `to_dict` writes.

        Raises:
            InvalidRecord: A field is missing, unknown or malformed.
        """
        return _serde.load_record(cls, data)
