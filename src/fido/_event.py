"""The `Event`: one alert from one detector, typed and normalized."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from fido import _serde
from fido._entities import Host, User
from fido._errors import InvalidEvent, InvalidObservable
from fido._observable import Observable, has_invisible
from fido._severity import Severity

__all__ = ["EVENT_SCHEMA", "Event"]

EVENT_SCHEMA: Final = 1
"""The version of the dict form that `Event.to_dict` writes and `Event.from_dict` reads."""

_Fail = Callable[[str, str], InvalidEvent]
_MAX_ID: Final = 512
_MAX_TITLE: Final = 4096


@attrs.frozen(init=False)
class Event:
    """One alert from one detector.

    Every argument is keyword-only. The event is immutable and normalized on
    construction:

    - `time` must be a `datetime` (or an ISO 8601 string). An aware time is converted to
      UTC. A **naive time is taken to be UTC** (detectors that log local time without an
      offset must attach their zone before building the event).
    - `severity` takes a `Severity` or a word that `Severity.parse` understands.
    - `category` is lowercased (`"Malware"` -> `"malware"`); the scoring policy gives
      points per category.
    - `observables` takes `Observable`s or strings (parsed with `Observable.parse`); the
      result is a tuple without duplicates, in first-seen order.
    - `detector` and `id` cannot hold control, format or line-separator characters.
    - `extra` holds further JSON data (lists, objects, strings, finite numbers, booleans,
      null); it is copied, tuples becoming lists, so that a JSON round trip gives an equal
      event. NaN and infinity are refused: JSON has neither.
    - `raw` keeps the detector's original payload for audit (JSON data or a string). It
      takes part neither in equality nor in `repr`.
    - `extra` and `raw` are read-only: their objects and arrays are `dict`s and `list`s
      that refuse changes (TypeError), so a hashed event cannot change under a set or a
      dict. `event.to_dict()` gives plain, mutable copies.

    Args:
        detector: The name of the detector that raised the alert (`"crowdstrike"`).
        id: The alert's id in that detector; `(detector, id)` identifies the event.
        time: When the detector saw the activity.
        title: A one-line description.
        severity: The detector's severity (default MEDIUM, for detectors that give none).
        category: What kind of activity (`"malware"`, `"c2"`, `"phishing"`, ...).
        host: The machine the alert is about.
        user: The account the alert is about.
        observables: The indicators the alert carries.
        raw: The original payload.
        extra: Further fields, as JSON data.

    Raises:
        InvalidEvent: A field is missing or malformed; the error names the field.
    """

    detector: str
    id: str
    time: datetime
    title: str
    severity: Severity
    category: str | None
    host: Host | None
    user: User | None
    observables: tuple[Observable, ...]
    raw: Any = attrs.field(eq=False, repr=False)
    extra: Mapping[str, Any] = attrs.field(hash=False)

    def __init__(
        self,
        *,
        detector: str,
        id: str | int,  # noqa: A002
        time: datetime | str,
        title: str,
        severity: Severity | str = Severity.MEDIUM,
        category: str | None = None,
        host: Host | None = None,
        user: User | None = None,
        observables: Iterable[Observable | str] = (),
        raw: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        name = _required_text(detector, "detector", None, None, limit=128, printable=True)
        event_id = _required_text(
            str(id) if isinstance(id, int) and not isinstance(id, bool) else id,
            "id",
            name,
            None,
            limit=_MAX_ID,
            printable=True,
        )

        def fail(message: str, field: str) -> InvalidEvent:
            return InvalidEvent(message, detector=name, event_id=event_id, field=field)

        self.__attrs_init__(
            name,
            event_id,
            _time(time, fail),
            _required_text(title, "title", name, event_id, limit=_MAX_TITLE),
            _severity(severity, fail),
            _category(category, fail),
            _entity(host, Host, "host", fail),
            _entity(user, User, "user", fail),
            _observables(observables, fail),
            _json(raw, "raw", fail),
            _json({} if extra is None else extra, "extra", fail),
        )

    @property
    def key(self) -> tuple[str, str]:
        """`(detector, id)`: what identifies the event, for deduplication."""
        return (self.detector, self.id)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON data, with its schema version under `"schema"`.

        `Event.from_dict(event.to_dict()) == event`, also through `json.dumps`/`json.loads`.
        """
        return {"schema": EVENT_SCHEMA, **_serde.dump(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Build an event from the dict form that `to_dict` writes.

        Raises:
            InvalidEvent: The schema version is newer than this fido reads, a field is
                missing or unknown, or a value is malformed.
        """
        if not isinstance(data, Mapping):
            raise InvalidEvent(f"an event is a JSON object, not {type(data).__name__}")
        detector = data.get("detector") if isinstance(data.get("detector"), str) else None
        event_id = data.get("id") if isinstance(data.get("id"), str) else None
        schema = data.get("schema", EVENT_SCHEMA)
        if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
            raise InvalidEvent(
                "the schema version is a positive integer",
                detector=detector,
                event_id=event_id,
                field="schema",
            )
        if schema > EVENT_SCHEMA:
            raise InvalidEvent(
                f"schema version {schema} is newer than this fido reads ({EVENT_SCHEMA})",
                detector=detector,
                event_id=event_id,
                field="schema",
            )
        body = {k: v for k, v in data.items() if k != "schema"}
        try:
            return _serde.load(cls, body)
        except _serde.LoadError as exc:
            raise InvalidEvent(
                exc.message, detector=detector, event_id=event_id, field=exc.path or None
            ) from None


def _required_text(
    value: object,
    field: str,
    detector: str | None,
    event_id: str | None,
    *,
    limit: int,
    printable: bool = False,
) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(
            f"{field} is a non-empty string", detector=detector, event_id=event_id, field=field
        )
    if len(value) > limit:
        raise InvalidEvent(
            f"{field} has at most {limit} characters",
            detector=detector,
            event_id=event_id,
            field=field,
        )
    text = value.strip()
    if printable and has_invisible(text):
        raise InvalidEvent(
            f"{field} cannot contain control, format or line-separator characters",
            detector=detector,
            event_id=event_id,
            field=field,
        )
    return text


def _time(value: object, fail: _Fail) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise fail("time is an ISO 8601 date and time", "time") from None
    if not isinstance(value, datetime):
        raise fail(f"time is a datetime, not {type(value).__name__}", "time")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # datetime.max at UTC-5 is past year 9999 in UTC
        raise fail("time is out of range once converted to UTC", "time") from None


def _severity(value: object, fail: _Fail) -> Severity:
    if isinstance(value, Severity):
        return value
    if isinstance(value, str):
        try:
            return Severity.parse(value)
        except InvalidEvent as exc:
            raise fail(exc.message, "severity") from None
    raise fail(f"severity is a Severity, not {type(value).__name__}", "severity")


def _category(value: object, fail: _Fail) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 128:
        raise fail("category is a string of at most 128 characters", "category")
    text = value.strip().lower()
    return text or None


def _entity(value: object, cls: type[Any], field: str, fail: _Fail) -> Any:
    if value is None or isinstance(value, cls):
        return value
    raise fail(f"{field} is a {cls.__name__}, not {type(value).__name__}", field)


def _observables(values: object, fail: _Fail) -> tuple[Observable, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise fail("observables is a list of Observable or str", "observables")
    seen: dict[Observable, None] = {}
    for index, item in enumerate(values):
        field = f"observables[{index}]"
        if isinstance(item, Observable):
            seen.setdefault(item, None)
        elif isinstance(item, str):
            try:
                seen.setdefault(Observable.parse(item), None)
            except InvalidObservable as exc:
                raise fail(str(exc), field) from exc
        else:
            kind = type(item).__name__
            raise fail(f"an observable is an Observable or a str, not {kind}", field)
    return tuple(seen)


def _json(value: object, field: str, fail: _Fail) -> Any:
    try:
        return _serde.check_json(value, field, freeze=True)
    except _serde.LoadError as exc:
        raise fail(exc.message, exc.path) from None
