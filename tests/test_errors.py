from __future__ import annotations

import pickle

import pytest

import fido
from fido import (
    AdapterError,
    ApprovalError,
    ConfigurationError,
    ConflictError,
    DetectorError,
    EnrichmentError,
    FidoError,
    InvalidEvent,
    InvalidObservable,
    InvalidRecord,
    ResponderError,
    ScoringError,
    StoreBusy,
)
from fido._errors import shorten

TREE: dict[type[FidoError], type[Exception]] = {
    InvalidObservable: FidoError,
    InvalidEvent: FidoError,
    InvalidRecord: FidoError,
    ConfigurationError: FidoError,
    ApprovalError: FidoError,
    AdapterError: FidoError,
    DetectorError: AdapterError,
    EnrichmentError: AdapterError,
    ResponderError: AdapterError,
    ScoringError: FidoError,
    ConflictError: FidoError,
    StoreBusy: FidoError,
}


@pytest.mark.parametrize(("error", "parent"), TREE.items())
def test_tree(error: type[FidoError], parent: type[Exception]) -> None:
    assert issubclass(error, parent)
    assert issubclass(error, FidoError)
    assert error.__doc__


def test_value_errors() -> None:
    value_errors: tuple[type[FidoError], ...] = (InvalidObservable, InvalidEvent, InvalidRecord)
    others: tuple[type[FidoError], ...] = (
        ConfigurationError,
        ApprovalError,
        AdapterError,
        ScoringError,
    )
    assert all(issubclass(error, ValueError) for error in value_errors)
    assert not any(issubclass(error, ValueError) for error in others)


def test_every_public_error_is_in_the_tree_and_the_docstring() -> None:
    public = {
        obj
        for name in fido.__all__
        if isinstance(obj := getattr(fido, name), type) and issubclass(obj, BaseException)
    }
    assert public == {FidoError, *TREE}
    doc = fido._errors.__doc__ or ""
    for error in public:
        assert error.__name__ in doc


ERRORS: list[tuple[FidoError, str, dict[str, object]]] = [
    (FidoError("plain"), "plain", {}),
    (
        InvalidObservable("bad hash", value="zz", kind="md5", field="observables[0]"),
        "bad hash (kind=md5, field=observables[0], value='zz')",
        {"value": "zz", "kind": "md5", "field": "observables[0]"},
    ),
    (
        InvalidEvent("bad time", detector="edr", event_id="a-1", field="time"),
        "bad time (detector=edr, event_id='a-1', field=time)",
        {"detector": "edr", "event_id": "a-1", "field": "time"},
    ),
    (
        InvalidRecord("bad", record="Incident", field="status"),
        "bad (record=Incident, field=status)",
        {"record": "Incident", "field": "status"},
    ),
    (
        ConfigurationError("expected a number", file="policy.toml", key="threat.x", line=12),
        "expected a number (file=policy.toml, key=threat.x, line=12)",
        {"file": "policy.toml", "key": "threat.x", "line": 12},
    ),
    (
        ApprovalError("already approved", incident_id="inc-1", action="contain"),
        "already approved (incident_id=inc-1, action=contain)",
        {"incident_id": "inc-1", "action": "contain"},
    ),
    (
        EnrichmentError("circuit open", adapter="vt", skipped=True),
        "circuit open (adapter=vt)",
        {"adapter": "vt", "skipped": True},
    ),
    (
        DetectorError("poll failed", adapter="crowdstrike", event_id="e-9"),
        "poll failed (adapter=crowdstrike, event_id='e-9')",
        {"adapter": "crowdstrike", "event_id": "e-9"},
    ),
    (
        EnrichmentError("HTTP 500", adapter="virustotal", subject="sha256:abc"),
        "HTTP 500 (adapter=virustotal, subject='sha256:abc')",
        {"adapter": "virustotal", "subject": "sha256:abc"},
    ),
    (
        ResponderError("Jira said 400", adapter="jira", incident_id="inc-1", action="ticket"),
        "Jira said 400 (adapter=jira, incident_id=inc-1, action=ticket)",
        {"adapter": "jira", "incident_id": "inc-1", "action": "ticket"},
    ),
    (
        ScoringError("no rule", rule="machine.asset_groups", incident_id="inc-2"),
        "no rule (rule=machine.asset_groups, incident_id=inc-2)",
        {"rule": "machine.asset_groups", "incident_id": "inc-2"},
    ),
    (
        ConflictError("changed since read", incident_id="inc-3", expected=4, found=5),
        "changed since read (incident_id=inc-3, expected=4, found=5)",
        {"incident_id": "inc-3", "expected": 4, "found": 5},
    ),
    (
        StoreBusy("another run", holder="h/1/ab", host="h", pid=1, since="2026-11-28T12:00Z"),
        "another run (host=h, pid=1, since=2026-11-28T12:00Z)",
        {"holder": "h/1/ab", "host": "h", "pid": 1, "since": "2026-11-28T12:00Z"},
    ),
]


@pytest.mark.parametrize(("error", "text", "attributes"), ERRORS)
def test_context_in_attributes_and_message(
    error: FidoError, text: str, attributes: dict[str, object]
) -> None:
    assert str(error) == text
    assert repr(error) == f"{type(error).__name__}({text!r})"
    for name, value in attributes.items():
        assert getattr(error, name) == value


@pytest.mark.parametrize(("error", "text", "attributes"), ERRORS)
def test_pickle(error: FidoError, text: str, attributes: dict[str, object]) -> None:
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(again) is type(error)
    assert str(again) == text
    assert again.message == error.message


def test_untrusted_values_cannot_forge_lines() -> None:
    error = InvalidEvent("bad", event_id="x\nERROR forged line " + "y" * 200)
    text = str(error)
    assert "\n" not in text
    assert len(text) < 120
    assert shorten("a" * 100, 10) == "'aaaaaa..."


@pytest.mark.parametrize(
    "error",
    [
        InvalidEvent("bad", detector="edr\nCRITICAL forged", event_id="1", field="time"),
        InvalidEvent("bad", field="extra.k\nERROR forged \u202e" + "x" * 200),
        InvalidRecord("bad", record="HostContext", field="details.a\u2028b"),
        InvalidObservable("bad", value="v", field="observables[0]\r\nforged"),
        ConfigurationError("bad", key="allow[0].\x1b[31mred"),
        EnrichmentError("bad", adapter="vt", subject="x\ny", event_id="e\u202e"),
    ],
)
def test_every_context_value_is_escaped(error: FidoError) -> None:
    text = str(error)
    assert text.isprintable()
    assert len(text) < 300


def test_printable_context_is_shown_as_it_is() -> None:
    error = InvalidEvent("bad", detector="crowdstrike", event_id="a-1", field="observables[2]")
    assert str(error) == "bad (detector=crowdstrike, event_id='a-1', field=observables[2])"
