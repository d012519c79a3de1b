"""The built-in adapters: file detectors (jsonl, suricata), the static enricher, the jsonl
responder; each also passes the conformance kit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fido
from fido import DeadLetter, DetectorError, Event, Host, Observable, Severity, Verdict
from fido.adapters.detectors.jsonl import JsonlDetector
from fido.adapters.detectors.suricata import SuricataDetector
from fido.adapters.enrichers.static import StaticIntel
from fido.adapters.responders.jsonl import JsonlResponder
from fido.testing import check_detector, check_enricher, check_responder
from tests.factories import event, incident

ROOT = Path(__file__).parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
SHARED_EVE = (
    ROOT.parent / "shared" / "samples" / "detectors" / "suricata_eve_alert_and_flow_docs.ndjson"
)


# -- jsonl detector ---------------------------------------------------------------------------


def test_jsonl_polls_from_a_cursor_and_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    detector = JsonlDetector(path, name="edr", batch=2)
    assert detector.poll(None) == ([], None)  # no file yet
    lines = [json.dumps(event(id=f"e{n}").to_dict()) for n in range(3)]
    path.write_text("\n".join(lines) + "\n" + '{"partial": ')
    first, cursor = detector.poll(None)
    assert [e.id for e in first if isinstance(e, Event)] == ["e0", "e1"]
    second, cursor2 = detector.poll(cursor)
    assert [e.id for e in second if isinstance(e, Event)] == ["e2"]
    assert detector.poll(cursor2) == ([], cursor2)  # the unfinished line waits
    with path.open("a") as stream:
        stream.write('"x"}\n\n')
    [letter], cursor3 = detector.poll(cursor2)
    assert isinstance(letter, DeadLetter)
    assert letter.detector == "edr"
    path.unlink()
    path.write_text(lines[0] + "\n")  # rotated: a new file
    again, _ = detector.poll(cursor3)
    assert [e.id for e in again if isinstance(e, Event)] == ["e0"]
    with pytest.raises(DetectorError, match="not a cursor"):
        detector.poll("garbage")


def test_jsonl_parse_forms() -> None:
    detector = JsonlDetector("unused", name="edr")
    one = event(id="p1").to_dict()
    del one["detector"]
    [parsed] = detector.parse(one)
    assert isinstance(parsed, Event)
    assert parsed.detector == "edr"
    assert len(detector.parse([one, one])) == 2
    text = json.dumps(one) + "\n\n" + json.dumps({"id": "bad"}) + "\n"
    results = detector.parse(text.encode())
    assert isinstance(results[0], Event)
    assert isinstance(results[1], DeadLetter)
    assert isinstance(detector.parse([3])[0], DeadLetter)
    good = json.dumps(event(id="p2").to_dict())
    parsed_text = detector.parse(f"{good}\n\n{{nope\n")
    assert isinstance(parsed_text[0], Event)
    assert isinstance(parsed_text[1], DeadLetter)
    assert parsed_text[1].reason.startswith("line 3, column 2: not JSON")
    assert parsed_text[1].payload == "{nope"
    with pytest.raises(DetectorError, match="expected JSON text"):
        detector.parse(3.5)


def test_a_monstrous_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text("x" * (1 << 20) + "yy\n" + json.dumps(event(id="after").to_dict()) + "\n")
    results, _ = JsonlDetector(path).poll(None)
    assert isinstance(results[0], DeadLetter)
    assert "more than" in results[0].reason
    assert isinstance(results[1], Event)


def test_jsonl_detector_is_conformant(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text(json.dumps(event(id="c1", detector="jsonl").to_dict()) + "\n")
    check_detector(JsonlDetector(path), [event(detector="jsonl").to_dict(), [], "{}"])


# -- suricata ------------------------------------------------------------------------------


def test_suricata_alerts_from_the_quickstart_file() -> None:
    detector = SuricataDetector(QUICKSTART / "eve.json")
    results, cursor = detector.poll(None)
    events = [r for r in results if isinstance(r, Event)]
    letters = [r for r in results if isinstance(r, DeadLetter)]
    assert len(events) == 5  # the flow record is not an alert
    assert len(letters) == 1  # the line cut short
    first = events[0]
    assert first.title == "ET MALWARE Observed Malicious SSL Cert (Loader CnC)"
    assert first.severity is Severity.HIGH
    assert first.category == "malware"
    assert first.host == Host(ip="10.1.2.3")
    assert [o.value for o in first.observables] == ["203.0.113.9", "cdn.update-check.example"]
    assert first.extra["signature_id"] == 2047051
    assert first.raw["flow_id"] == 1843402107511001
    checkin = events[1]
    assert checkin.category == "c2"
    assert [o.value for o in checkin.observables] == [
        "203.0.113.9",
        "update-check.example",
        "http://update-check.example/gate.php?id=ws-042",
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
    ]
    sqli = events[2]
    assert sqli.host == Host(ip="10.20.1.5")  # the private end, although it is the target
    assert sqli.observables[0].value == "198.51.100.77"
    assert events[4].severity is Severity.LOW
    assert detector.poll(cursor) == ([], cursor)


@pytest.mark.skipif(not SHARED_EVE.exists(), reason="the shared samples are beside the repo")
def test_suricata_reads_the_documentation_samples() -> None:
    events = [r for r in SuricataDetector(SHARED_EVE).poll(None)[0] if isinstance(r, Event)]
    assert [e.extra["signature_id"] for e in events] == [2018358, 2045001]
    assert events[1].host == Host(ip="192.168.100.237")
    assert events[1].severity is Severity.HIGH


def test_suricata_parse_and_bad_records() -> None:
    detector = SuricataDetector()
    record = {
        "timestamp": "2026-11-28T10:00:00+0000",
        "event_type": "alert",
        "src_ip": "10.0.0.9",
        "dest_ip": "8.8.8.8",
        "flow_id": 7,
        "alert": {"signature_id": 1, "signature": "Test", "severity": 9},
    }
    [parsed] = detector.parse(record)
    assert isinstance(parsed, Event)
    assert parsed.severity is Severity.MEDIUM  # out-of-scale severities fall back
    assert detector.parse({"event_type": "flow"}) == []
    [bad] = detector.parse({"event_type": "alert", "alert": "nope"})
    assert isinstance(bad, DeadLetter)
    assert bad.field == "alert"
    [late] = detector.parse({"event_type": "alert", "alert": {}, "timestamp": "yesterday"})
    assert isinstance(late, DeadLetter)
    assert detector.poll("anything") == ([], "anything")  # no path: nothing to poll
    with pytest.raises(DetectorError):
        detector.parse(42)


def test_suricata_is_conformant() -> None:
    check_detector(
        SuricataDetector(QUICKSTART / "eve.json"),
        [(QUICKSTART / "eve.json").read_text().splitlines()[0]],
    )


# -- static enricher ---------------------------------------------------------------------------


def test_static_answers() -> None:
    intel = StaticIntel(
        name="feed",
        reliability="A",
        verdicts={"evil[.]example": "Malicious"},
        hosts={"ws-042": {"criticality": "high"}, "10.0.0.5": {"owner": "it"}},
        users={"CORP\\bdoe": {"title": "CFO"}},
    )
    evil = Observable.parse("evil.example")
    assert intel.accepts(evil)
    assert not intel.accepts(Observable.parse("good.example"))
    reputation = intel.enrich(evil)
    assert isinstance(reputation, fido.Reputation)
    assert (reputation.verdict, reputation.reliability) == (Verdict.MALICIOUS, fido.Reliability.A)
    assert intel.enrich(Observable.parse("good.example")) is None
    assert isinstance(intel.enrich(Host(name="WS-042")), fido.HostContext)
    assert intel.accepts(Host(ip="10.0.0.5"))
    assert not intel.accepts(Host(name="other"))
    user = intel.enrich(fido.User("bdoe"))
    assert isinstance(user, fido.UserContext)
    assert user.title == "CFO"
    assert "verdicts=1" in repr(intel)
    check_enricher(
        intel, [evil, Host(name="ws-042"), fido.User("bdoe"), Observable.parse("1.2.3.4")]
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verdicts": {"not an indicator": "malicious"}},
        {"verdicts": {"evil.example": "bad"}},
        {"hosts": {"x": {"colour": "red"}}},
        {"reliability": "Z"},
    ],
)
def test_static_refuses_bad_answers(kwargs: dict[str, object]) -> None:
    with pytest.raises(fido.ConfigurationError, match="static answers"):
        StaticIntel(**kwargs)  # type: ignore[arg-type]


# -- jsonl responder ---------------------------------------------------------------------------


def test_jsonl_responder_appends_defanged_records(tmp_path: Path) -> None:
    path = tmp_path / "out" / "actions.jsonl"
    responder = JsonlResponder(path, name="log")
    inc = incident(event(observables=["http://evil.example/x", "10.9.8.7"]))
    detail = responder.respond(inc, fido.Action(name="notify"))
    assert detail == "appended to actions.jsonl"
    [line] = path.read_text().splitlines()
    record = json.loads(line)
    assert record["key"] == f"{inc.id}/notify/log"
    assert record["observables"] == ["hxxp://evil[.]example/x", "10[.]9[.]8[.]7"]
    assert record["hosts"] == ["ws-042"]
    check_responder(JsonlResponder(tmp_path / "conformance.jsonl"))


def test_jsonl_responder_reports_write_errors(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    responder = JsonlResponder(blocked / "actions.jsonl")
    with pytest.raises(fido.ResponderError, match="cannot write") as info:
        responder.respond(incident(), fido.Action(name="notify"))
    assert info.value.action == "notify"
    assert blocked.exists()
