from __future__ import annotations

import copy
import json
import math
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given

from fido import Event, Host, InvalidEvent, Observable, ObservableKind, Severity, User
from tests.strategies import events

if TYPE_CHECKING:
    from collections.abc import Callable

SHA256 = "44d88612fea8a8f36de82e1278abb02f" * 2
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def make(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "detector": "edr",
        "id": "alert-1",
        "time": NOW,
        "title": "Trojan detected",
        "severity": Severity.HIGH,
        "host": Host(name="ws-042", ip="10.1.2.3"),
        "user": User(name="bdoe"),
        "observables": [Observable.parse(SHA256)],
    }
    fields.update(overrides)
    return Event(**fields)


def test_contract_fields() -> None:
    event = make()
    assert event.detector == "edr"
    assert event.id == "alert-1"
    assert event.time == NOW
    assert event.severity is Severity.HIGH
    assert event.host == Host(name="ws-042", ip="10.1.2.3")
    assert event.user == User("bdoe")
    assert event.observables == (Observable(ObservableKind.SHA256, SHA256),)
    assert event.key == ("edr", "alert-1")
    assert event.category is None
    assert event.extra == {}
    assert event.raw is None


def test_naive_time_is_utc_and_aware_time_is_converted() -> None:
    naive = make(time=datetime(2026, 1, 1, 8, 0))
    assert naive.time == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    assert naive.time.tzinfo is UTC
    eastern = make(time=datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=-5))))
    assert eastern.time == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    assert eastern.time.tzinfo is UTC
    assert make(time="2026-01-01T08:00:00Z").time == naive.time


def test_defaults_and_conversions() -> None:
    event = Event(
        detector=" ids ", id=42, time=NOW, title=" t ", category=" Malware ", severity="Moderate"
    )
    assert event.detector == "ids"
    assert event.id == "42"
    assert event.title == "t"
    assert event.category == "malware"
    assert event.severity is Severity.MEDIUM
    assert Event(detector="d", id="1", time=NOW, title="t").severity is Severity.MEDIUM
    assert Event(detector="d", id="1", time=NOW, title="t", category="  ").category is None


def test_observables_are_deduplicated_in_order() -> None:
    event = make(
        observables=[
            "evil[.]example",
            Observable.parse("EVIL.example"),
            "203.0.113.7",
            SHA256,
            SHA256.upper(),
        ]
    )
    assert [o.value for o in event.observables] == ["evil.example", "203.0.113.7", SHA256]
    assert isinstance(event.observables, tuple)


def test_raw_is_kept_but_not_compared_or_shown() -> None:
    first = make(raw={"vendor": "payload", "n": 1})
    second = make(raw="a different payload")
    assert first == second
    assert hash(first) == hash(second)
    assert first.raw == {"vendor": "payload", "n": 1}
    assert "payload" not in repr(first)


def test_extra_is_compared_copied_and_json() -> None:
    source = {"tags": ("a", "b"), "nested": {"n": 1}}
    event = make(extra=source)
    assert event.extra == {"tags": ["a", "b"], "nested": {"n": 1}}
    source["nested"]["n"] = 2  # type: ignore[index]
    assert event.extra["nested"] == {"n": 1}
    assert make(extra={"a": 1}) != make(extra={"a": 2})
    assert hash(make(extra={"a": 1})) == hash(make(extra={"a": 2}))


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        make().title = "other"  # type: ignore[misc]


def test_extra_and_raw_are_read_only() -> None:
    event = make(extra={"a": 1, "tags": ["x"], "n": {"k": [1, {"m": 2}]}}, raw={"r": [1]})
    before = hash(event)
    extra: Any = event.extra  # typed as a Mapping: these are what a caller might try
    changes: list[Callable[[], object]] = [
        lambda: extra.__setitem__("a", 2),
        lambda: extra.update(a=2),
        lambda: extra.pop("a"),
        lambda: extra.setdefault("b", 1),
        lambda: extra.clear(),
        lambda: extra["tags"].append("y"),
        lambda: extra["tags"].__setitem__(0, "y"),
        lambda: extra["n"]["k"][1].__setitem__("m", 3),
        lambda: event.raw["r"].extend([2]),
    ]
    for change in changes:
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert event.extra == {"a": 1, "tags": ["x"], "n": {"k": [1, {"m": 2}]}}
    assert event.raw == {"r": [1]}
    assert hash(event) == before
    assert json.loads(json.dumps(event.extra)) == event.extra
    for again in (pickle.loads(pickle.dumps(event)), copy.deepcopy(event)):  # noqa: S301
        assert again == event
        with pytest.raises(TypeError):
            again.raw["r"].append(2)
    plain = event.to_dict()
    plain["extra"]["tags"].append("y")  # the dict form is a plain copy
    plain["raw"]["r"].append(2)
    assert type(plain["extra"]) is dict
    assert event.extra["tags"] == ["x"]


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(number: float) -> None:
    with pytest.raises(InvalidEvent, match="not finite") as info:
        make(extra={"score": [1.5, number]})
    assert info.value.field == "extra.score[1]"
    with pytest.raises(InvalidEvent, match="not finite") as info:
        make(raw={"n": number})
    assert info.value.field == "raw.n"
    with pytest.raises(InvalidEvent, match="not finite"):
        Event.from_dict({**make().to_dict(), "extra": {"n": number}})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("detector", "edr\nCRITICAL forged"),
        ("detector", "edr\u2028x"),
        ("detector", "edr\u202e"),
        ("id", "1\r\nforged"),
        ("id", "1\x85x"),
        ("id", "a\u200bb"),
    ],
)
def test_detector_and_id_refuse_invisible_characters(field: str, value: str) -> None:
    with pytest.raises(InvalidEvent, match="control, format") as info:
        make(**{field: value})
    assert info.value.field == field
    assert "\n" not in str(info.value)
    assert "\u2028" not in str(info.value)


def test_alert_values_in_error_messages_are_escaped() -> None:
    key = "k\nCRITICAL forged line \u202e" + "x" * 200
    with pytest.raises(InvalidEvent) as info:
        make(extra={key: object()})
    message = str(info.value)
    assert "\n" not in message
    assert "\u202e" not in message
    assert len(message) < 200
    assert info.value.field == f"extra.{key}"  # the attribute keeps it whole


def test_time_out_of_range_in_utc() -> None:
    late = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(InvalidEvent, match="out of range") as info:
        make(time=late)
    assert info.value.field == "time"
    with pytest.raises(InvalidEvent, match="out of range"):
        make(time="9999-12-31T23:00:00-05:00")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"detector": ""}, "detector", "non-empty"),
        ({"detector": "x" * 200}, "detector", "at most 128"),
        ({"id": "  "}, "id", "non-empty"),
        ({"id": None}, "id", "non-empty"),
        ({"id": True}, "id", "non-empty"),
        ({"title": ""}, "title", "non-empty"),
        ({"time": "yesterday"}, "time", "ISO 8601"),
        ({"time": 1700000000}, "time", "datetime"),
        ({"severity": "catastrophic"}, "severity", "unknown severity"),
        ({"severity": 3}, "severity", "Severity"),
        ({"category": 5}, "category", "category"),
        ({"host": "ws-042"}, "host", "Host"),
        ({"user": "bdoe"}, "user", "User"),
        ({"observables": "1.2.3.4"}, "observables", "list"),
        ({"observables": ["1.2.3.4", "not an indicator"]}, "observables[1]", "infer"),
        ({"observables": [1234]}, "observables[0]", "not int"),
        ({"extra": {"when": NOW}}, "extra.when", "not JSON"),
        ({"extra": {1: "x"}}, "extra", "keys are str"),
        ({"raw": {"blob": b"\x00"}}, "raw.blob", "not JSON"),
    ],
)
def test_invalid_events_name_the_field(overrides: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message) as info:
        make(**overrides)
    assert info.value.field == field
    assert f"field={field}" in str(info.value)


def test_error_names_detector_and_event() -> None:
    with pytest.raises(InvalidEvent) as info:
        make(time="nope")
    assert info.value.detector == "edr"
    assert info.value.event_id == "alert-1"
    assert "detector=edr" in str(info.value)
    assert "event_id='alert-1'" in str(info.value)


def test_to_dict_shape() -> None:
    data = make(category="malware", extra={"link": "https://edr.example/a/1"}).to_dict()
    assert data == {
        "schema": 1,
        "detector": "edr",
        "id": "alert-1",
        "time": "2026-11-28T12:00:00+00:00",
        "title": "Trojan detected",
        "severity": "high",
        "category": "malware",
        "host": {"name": "ws-042", "fqdn": None, "ip": "10.1.2.3", "mac": None, "os": None},
        "user": {"name": "bdoe", "domain": None, "upn": None, "email": None},
        "observables": [{"kind": "sha256", "value": SHA256}],
        "raw": None,
        "extra": {"link": "https://edr.example/a/1"},
    }


def test_round_trip_through_json() -> None:
    event = make(raw={"x": [1, 2]}, extra={"a": [1, {"b": None}]})
    again = Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert again == event
    assert again.raw == event.raw


def test_from_dict_without_schema_reads_the_current_one() -> None:
    data = make().to_dict()
    del data["schema"]
    assert Event.from_dict(data) == make()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"schema": 2}, "schema", "newer than this fido reads"),
        ({"schema": "1"}, "schema", "positive integer"),
        ({"schema": 0}, "schema", "positive integer"),
        ({"bogus": 1}, "bogus", "unknown field"),
        ({"severity": "extreme"}, "severity", "expected one of"),
        ({"time": "2026-01-01T00:00:00"}, "time", "UTC offset"),
        ({"time": "soon"}, "time", "ISO 8601"),
        ({"observables": [{"kind": "md5", "value": "xyz"}]}, "observables[0]", "32 hex"),
        ({"observables": {"kind": "md5"}}, "observables", "expected a list"),
        ({"host": {"name": "x"}}, "host.fqdn", "required"),
        ({"host": "x"}, "host", "expected an object"),
        ({"title": 5}, "title", "expected a string"),
    ],
)
def test_from_dict_errors(change: dict[str, Any], field: str, message: str) -> None:
    data = make().to_dict()
    data.update(change)
    with pytest.raises(InvalidEvent, match=message) as info:
        Event.from_dict(data)
    assert info.value.field == field
    assert info.value.detector == "edr"


def test_from_dict_missing_field_and_wrong_type() -> None:
    data = make().to_dict()
    del data["title"]
    with pytest.raises(InvalidEvent, match="required") as info:
        Event.from_dict(data)
    assert info.value.field == "title"
    with pytest.raises(InvalidEvent, match="JSON object"):
        Event.from_dict([])  # type: ignore[arg-type]


@given(events())
def test_round_trip_property(event: Event) -> None:
    data = event.to_dict()
    for again in (Event.from_dict(data), Event.from_dict(json.loads(json.dumps(data)))):
        assert again == event
        assert again.raw == event.raw  # not part of ==
        assert again.to_dict() == data
        assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(data, sort_keys=True)
