"""fido.testing: the fakes behave as documented, and the conformance kit catches broken adapters."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest

import fido
import fido.testing
from fido._deadletter import DeadLetter
from fido.testing import (
    FakeDetector,
    RecordingResponder,
    StaticEnricher,
    check_detector,
    check_enricher,
    check_responder,
)
from fido.testing._fakes import DEAD_LETTER_AT, SAMPLE_SUBJECTS, sample_incident
from tests import factories

SECRET = "s3cr3t-Tok3n-0042"
SHA = fido.Observable.parse(factories.SHA256)
HOST = fido.Host(name="ws-042", ip="10.1.2.3")
USER = fido.User("bdoe")


def fake_event(number: int, detector: str = "fake") -> fido.Event:
    return factories.event(detector=detector, id=f"alert-{number}")


def problems(error: pytest.ExceptionInfo[AssertionError]) -> list[str]:
    return str(error.value).splitlines()


# -- the public surface -------------------------------------------------------------------


def test_public_names_are_curated() -> None:
    assert fido.testing.__all__ == [
        "FakeDetector",
        "RecordingResponder",
        "StaticEnricher",
        "check_detector",
        "check_enricher",
        "check_responder",
    ]
    for name in fido.testing.__all__:
        assert getattr(fido.testing, name).__doc__, name


def test_fakes_satisfy_the_protocols() -> None:
    from fido._protocols import Detector, Enricher, Responder

    assert isinstance(FakeDetector(), Detector)
    assert isinstance(StaticEnricher({}), Enricher)
    assert isinstance(RecordingResponder(), Responder)


def test_samples_cover_every_kind_of_subject() -> None:
    kinds = {s.kind for s in SAMPLE_SUBJECTS if isinstance(s, fido.Observable)}
    assert kinds == set(fido.ObservableKind)
    assert any(isinstance(s, fido.Host) for s in SAMPLE_SUBJECTS)
    assert any(isinstance(s, fido.User) for s in SAMPLE_SUBJECTS)
    incident = sample_incident()
    assert incident.id == "inc-conformance"
    assert incident.hosts
    assert incident.users
    assert len(incident.observables) == 2


# -- FakeDetector -------------------------------------------------------------------------


def test_detector_parses_events_mappings_and_lists() -> None:
    detector = FakeDetector()
    event = fake_event(1)
    assert detector.parse(event) == [event]
    assert detector.parse(event.to_dict()) == [event]
    assert detector.parse([event, event.to_dict()]) == [event, event]
    assert detector.parse((event,)) == [event]


def test_detector_names_mappings_without_a_detector() -> None:
    data = fake_event(1).to_dict()
    del data["detector"]
    (parsed,) = FakeDetector(name="edr-x").parse(data)
    assert isinstance(parsed, fido.Event)
    assert parsed.detector == "edr-x"


def test_detector_turns_bad_items_into_dead_letters() -> None:
    good = fake_event(1)
    bad = {**good.to_dict(), "id": "alert-2", "time": "yesterday"}
    parsed = FakeDetector().parse([good, bad, 42])
    assert parsed[0] == good
    letter = parsed[1]
    assert isinstance(letter, DeadLetter)
    assert letter.field == "time"
    assert letter.event_id == "alert-2"
    assert letter.at == DEAD_LETTER_AT
    assert letter.payload == bad
    other = parsed[2]
    assert isinstance(other, DeadLetter)
    assert other.detector == "fake"
    assert "not int" in other.reason


def test_detector_stamps_dead_letters_with_the_given_time() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    (letter,) = FakeDetector(at=at).parse({"title": "no id"})
    assert isinstance(letter, DeadLetter)
    assert letter.at == at


def test_detector_parse_is_pure() -> None:
    detector = FakeDetector()
    payload = [fake_event(1).to_dict(), {"bad": True}]
    assert detector.parse(payload) == detector.parse(payload)


def test_detector_refuses_a_payload_it_cannot_read() -> None:
    with pytest.raises(fido.DetectorError) as caught:
        FakeDetector(name="edr-x").parse("a line of text")
    assert caught.value.adapter == "edr-x"
    assert "not str" in str(caught.value)


def test_detector_polls_in_batches_with_decimal_cursors() -> None:
    events = [fake_event(n) for n in range(5)]
    detector = FakeDetector(events, batch=2)
    assert detector.poll(None) == (events[0:2], "2")
    assert detector.poll("2") == (events[2:4], "4")
    assert detector.poll("4") == (events[4:], "5")
    assert detector.poll("5") == ([], "5")
    assert detector.polls == 4


def test_detector_polls_everything_without_a_batch_and_serves_added_items() -> None:
    detector = FakeDetector([fake_event(1)])
    items, cursor = detector.poll(None)
    assert len(items) == 1
    assert cursor == "1"
    detector.add(fake_event(2), fake_event(3).to_dict(), {"id": "broken"})
    items, cursor = detector.poll(cursor)
    assert cursor == "4"
    assert [type(i).__name__ for i in items] == ["Event", "Event", "DeadLetter"]
    assert len(detector.items) == 4


def test_detector_polls_can_fail() -> None:
    detector = FakeDetector([fake_event(1)], fail_polls=2, name="edr-x")
    for _ in range(2):
        with pytest.raises(fido.DetectorError) as caught:
            detector.poll(None)
        assert caught.value.adapter == "edr-x"
    assert detector.poll(None)[1] == "1"
    assert detector.polls == 3
    detector.fail_polls = 1
    with pytest.raises(fido.DetectorError):
        detector.poll("1")
    assert detector.fail_polls == 0


@pytest.mark.parametrize("cursor", ["-1", "abc", "1.5", "٣"])
def test_detector_refuses_a_bad_cursor(cursor: str) -> None:
    with pytest.raises(fido.DetectorError, match="cursor"):
        FakeDetector().poll(cursor)


def test_detector_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="batch"):
        FakeDetector(batch=0)
    with pytest.raises(ValueError, match="fail_polls"):
        FakeDetector(fail_polls=-1)
    with pytest.raises(ValueError, match="fail_polls"):
        FakeDetector().fail_polls = -1


def test_detector_repr_is_short() -> None:
    assert repr(FakeDetector([fake_event(1)])) == "FakeDetector(name='fake', items=1, polls=0)"


def test_detector_is_thread_safe() -> None:
    detector = FakeDetector(batch=1)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: detector.add(fake_event(n)), range(200)))
        list(pool.map(lambda _: detector.poll(None), range(50)))
    assert len(detector.items) == 200
    assert detector.polls == 50


# -- StaticEnricher -----------------------------------------------------------------------


def test_enricher_answers_as_configured() -> None:
    context = fido.HostContext(source="static", owner="it")
    failure = fido.EnrichmentError("down", adapter="static")
    enricher = StaticEnricher(
        {SHA: fido.Verdict.MALICIOUS, HOST: context, "evil[.]example": failure, USER: None},
        reliability=fido.Reliability.B,
    )
    reputation = asyncio.run(enricher.enrich(SHA))
    assert reputation == fido.Reputation(
        source="static", verdict=fido.Verdict.MALICIOUS, reliability=fido.Reliability.B
    )
    assert asyncio.run(enricher.enrich(HOST)) is context
    assert asyncio.run(enricher.enrich(USER)) is None
    domain = fido.Observable.parse("evil.example")
    for _ in range(2):
        with pytest.raises(fido.EnrichmentError) as caught:
            asyncio.run(enricher.enrich(domain))
        assert caught.value is failure
    assert enricher.calls == [SHA, HOST, USER, domain, domain]


def test_enricher_accepts_only_its_subjects() -> None:
    enricher = StaticEnricher({"8.8.8.8": fido.Verdict.BENIGN})
    assert enricher.accepts(fido.Observable.parse("8.8.8.8"))
    assert not enricher.accepts(fido.Observable.parse("8.8.4.4"))
    assert not enricher.accepts(HOST)
    assert not enricher.accepts([])  # type: ignore[arg-type]
    assert asyncio.run(enricher.enrich(HOST)) is None
    assert enricher.subjects == (fido.Observable.parse("8.8.8.8"),)


def test_enricher_refuses_bad_answers_and_keys() -> None:
    with pytest.raises(TypeError, match="answer"):
        StaticEnricher({SHA: "malicious"})  # type: ignore[dict-item]
    with pytest.raises(fido.InvalidObservable):
        StaticEnricher({"not an indicator!": None})


def test_enricher_delay_simulates_a_hang() -> None:
    enricher = StaticEnricher({SHA: fido.Verdict.BENIGN}, delay=5.0)

    async def ask() -> None:
        await asyncio.wait_for(enricher.enrich(SHA), 0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(ask())
    slow = StaticEnricher({SHA: fido.Verdict.BENIGN}, delay=0.05)
    started = time.monotonic()
    assert asyncio.run(slow.enrich(SHA)) is not None
    assert time.monotonic() - started >= 0.05


def test_enricher_repr_is_short() -> None:
    enricher = StaticEnricher({SHA: fido.Verdict.BENIGN, HOST: None}, name="intel")
    assert repr(enricher) == "StaticEnricher(name='intel', subjects=2)"


# -- RecordingResponder -------------------------------------------------------------------


def test_responder_records_what_it_is_asked() -> None:
    responder = RecordingResponder()
    incident = factories.incident(id="inc-1")
    assert responder.respond(incident, fido.Action(name="notify")) == "recorded 1"
    assert responder.respond(incident, fido.Action(name="ticket")) == "recorded 2"
    assert responder.seen == [("inc-1", "notify"), ("inc-1", "ticket")]
    assert responder.incidents == [incident, incident]
    assert responder.attempts == 2
    assert repr(responder) == "RecordingResponder(name='recorder', seen=2)"


def test_responder_fails_when_told() -> None:
    failure = fido.ResponderError("no ticket", adapter="recorder")
    responder = RecordingResponder(fail=failure)
    with pytest.raises(fido.ResponderError) as caught:
        responder.respond(factories.incident(), fido.Action(name="ticket"))
    assert caught.value is failure
    assert responder.seen == []
    assert responder.attempts == 1
    responder.fail = None
    assert responder.respond(factories.incident(id="inc-2"), fido.Action(name="ticket"))
    assert responder.seen == [("inc-2", "ticket")]


def test_responder_waits_and_is_thread_safe() -> None:
    responder = RecordingResponder(delay=0.01)
    incident = factories.incident()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        details = list(
            pool.map(lambda _: responder.respond(incident, fido.Action(name="n")), range(64))
        )
    assert len(responder.seen) == 64
    assert sorted(details, key=lambda d: int(d.split()[1])) == [
        f"recorded {n}" for n in range(1, 65)
    ]


# -- the conformance kit: the fakes pass --------------------------------------------------


def test_fake_detector_is_conformant() -> None:
    events = [fake_event(n) for n in range(3)]
    detector = FakeDetector(events, batch=2)
    check_detector(
        detector,
        [events[0].to_dict(), [e.to_dict() for e in events], {"id": "broken"}, 42],
        secrets=[SECRET],
    )
    assert detector.polls == 2


def test_failing_fake_detector_is_still_conformant() -> None:
    check_detector(FakeDetector(fail_polls=1), [])


def conformant_enricher(**options: Any) -> StaticEnricher:
    return StaticEnricher(
        {
            SHA: fido.Verdict.MALICIOUS,
            "8.8.8.8": fido.Reputation(source="static", subject=fido.Observable.parse("8.8.8.8")),
            HOST: fido.HostContext(source="static", owner="it"),
            USER: fido.UserContext(source="static", subject=USER, enabled=True),
            "evil.example": fido.EnrichmentError("the source is down", adapter="static"),
            "bob@evil.example": None,
        },
        **options,
    )


def test_static_enricher_is_conformant() -> None:
    check_enricher(conformant_enricher(), [SHA, HOST, USER, *SAMPLE_SUBJECTS], secrets=[SECRET])
    check_enricher(conformant_enricher(delay=0.01), [SHA], timeout=2.0)


def test_recording_responder_is_conformant() -> None:
    responder = RecordingResponder()
    check_responder(responder, secrets=[SECRET])
    assert responder.seen == [("inc-conformance", "notify")]
    incident = factories.incident(id="inc-7")
    check_responder(responder, incident=incident, action=fido.Action(name="contain"))
    assert responder.seen[-1] == ("inc-7", "contain")
    check_responder(RecordingResponder(fail=fido.ResponderError("down", adapter="recorder")))


# -- the conformance kit: broken adapters fail, precisely ---------------------------------


class Nameless:
    def accepts(self, subject: fido.Subject) -> bool:
        return True

    def enrich(self, subject: fido.Subject) -> None:
        return None


def test_a_nameless_adapter_fails() -> None:
    with pytest.raises(AssertionError) as caught:
        check_enricher(Nameless(), [SHA])
    assert problems(caught) == [
        "<Nameless without a name>: `name` must be a non-empty str, not None"
    ]
    blank = Nameless()
    blank.name = "  "  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="non-empty str, not '  '"):
        check_enricher(blank, [SHA])


def test_missing_methods_are_reported() -> None:
    class NoEnrich:
        name = "half"

        def accepts(self, subject: fido.Subject) -> bool:
            return True

    with pytest.raises(AssertionError) as caught:
        check_enricher(NoEnrich(), [SHA])
    assert problems(caught) == ["half: `enrich` is missing or not callable"]
    with pytest.raises(AssertionError, match=r"`poll` is missing"):
        check_detector(NoEnrich(), [])
    with pytest.raises(AssertionError, match=r"`respond` is missing"):
        check_responder(NoEnrich())


def test_unwrapped_errors_fail() -> None:
    class Raw:
        name = "raw"

        def accepts(self, subject: fido.Subject) -> bool:
            return True

        def enrich(self, subject: fido.Subject) -> None:
            raise KeyError("data")

    with pytest.raises(AssertionError) as caught:
        check_enricher(Raw(), [SHA])
    assert problems(caught) == [
        f"raw: enrich({SHA!r}) raised KeyError: 'data': not wrapped (raise EnrichmentError)"
    ]


def test_errors_of_the_wrong_kind_fail() -> None:
    responder = RecordingResponder(fail=fido.EnrichmentError("wrong tree", adapter="recorder"))
    with pytest.raises(AssertionError) as caught:
        check_responder(responder)
    assert problems(caught) == [
        (
            "recorder: respond('inc-conformance', 'notify') raised EnrichmentError: wrong tree "
            "(adapter=recorder), expected ResponderError"
        )
    ]


class Leaky:
    """An enricher that leaks its key where told to."""

    def __init__(self, key: str, *, where: str) -> None:
        self.name = "leaky"
        self._key = key
        self._where = where

    def __repr__(self) -> str:
        shown = self._key if self._where == "repr" else "***"
        return f"Leaky(key={shown})"

    def accepts(self, subject: fido.Subject) -> bool:
        return True

    async def enrich(self, subject: fido.Subject) -> fido.Reputation | None:
        if self._where == "log":
            logging.getLogger("tests.leaky").debug("calling with token=%s", self._key)
        if self._where == "error":
            raise fido.EnrichmentError(f"401 for token {self._key}", adapter=self.name)
        if self._where == "cause":
            try:
                raise ValueError(f"https://api.example/?key={self._key}")
            except ValueError as error:
                raise fido.EnrichmentError("request failed", adapter=self.name) from error
        if self._where == "finding":
            return fido.Reputation(source=self.name, details={"url": f"/?key={self._key}"})
        return None


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("repr", "leaky: secret #1 appears in repr(adapter)"),
        ("log", "leaky: secret #1 appears in a log record from logger 'tests.leaky'"),
        ("error", f"leaky: secret #1 appears in the EnrichmentError raised by enrich({SHA!r})"),
        ("cause", f"leaky: secret #1 appears in the ValueError raised by enrich({SHA!r})"),
        ("finding", f"leaky: secret #1 appears in the finding from enrich({SHA!r})"),
    ],
)
def test_secrets_must_not_show(where: str, expected: str) -> None:
    with pytest.raises(AssertionError) as caught:
        check_enricher(Leaky(SECRET, where=where), [SHA], secrets=["unused", SECRET])
    assert problems(caught) == [expected.replace("#1", "#2")]
    assert SECRET not in str(caught.value)


def test_a_secret_in_a_problem_line_is_masked() -> None:
    failure = KeyError(f"token {SECRET}")
    with pytest.raises(AssertionError) as caught:
        check_responder(RecordingResponder(fail=failure), secrets=[SECRET])
    text = str(caught.value)
    assert SECRET not in text
    assert "<secret #1>" in text
    assert "secret #1 appears in the KeyError raised by respond" in text


def test_logs_are_captured_at_debug_and_the_root_level_is_restored() -> None:
    root = logging.getLogger()
    before = root.level
    with pytest.raises(AssertionError, match="log record"):
        check_enricher(Leaky(SECRET, where="log"), [SHA], secrets=[SECRET])
    assert root.level == before


def test_a_hanging_async_method_fails() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError) as caught:
        check_enricher(StaticEnricher({SHA: None}, delay=30), [SHA], timeout=0.2)
    assert problems(caught) == [f"static: enrich({SHA!r}) did not finish within 0.2 s"]
    assert time.monotonic() - started < 2


def test_a_hanging_plain_method_fails() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError) as caught:
        check_responder(RecordingResponder(delay=0.6), timeout=0.1)
    assert problems(caught) == [
        "recorder: respond('inc-conformance', 'notify') did not finish within 0.1 s"
    ]
    assert time.monotonic() - started < 0.5


def test_an_adapter_raising_timeout_error_is_not_wrapped() -> None:
    responder = RecordingResponder(fail=TimeoutError("slow upstream"))
    with pytest.raises(AssertionError, match="raised TimeoutError: slow upstream: not wrapped"):
        check_responder(responder, timeout=5)


class WrongTypes:
    name = "wrong"

    def accepts(self, subject: fido.Subject) -> Any:
        return "yes" if isinstance(subject, fido.Host) else True

    def enrich(self, subject: fido.Subject) -> Any:
        if isinstance(subject, fido.User):
            return fido.Reputation(source="someone-else", subject=SHA)
        return {"verdict": "malicious"}

    def respond(self, incident: fido.Incident, action: fido.Action) -> Any:
        return 42


def test_wrong_return_types_fail() -> None:
    with pytest.raises(AssertionError) as caught:
        check_enricher(WrongTypes(), [SHA, HOST, USER])
    assert problems(caught) == [
        f"wrong: accepts({HOST!r}) returned str, not bool",
        f"wrong: enrich({SHA!r}) returned dict, not None, Reputation, HostContext or UserContext",
        (
            f"wrong: enrich({USER!r}) made a finding whose source is 'someone-else', "
            "not the enricher's name 'wrong'"
        ),
        f"wrong: enrich({USER!r}) made a finding about another subject: {SHA!r}",
    ]
    with pytest.raises(AssertionError) as caught:
        check_responder(WrongTypes())
    assert problems(caught) == [
        "wrong: respond('inc-conformance', 'notify') returned int, not None or str"
    ]


def test_accepts_must_be_plain_and_never_raise() -> None:
    class Odd:
        name = "odd"

        async def accepts(self, subject: fido.Subject) -> bool:
            return True

        def enrich(self, subject: fido.Subject) -> None:
            return None

    with pytest.raises(AssertionError) as caught:
        check_enricher(Odd(), [SHA])
    assert problems(caught) == [
        f"odd: accepts({SHA!r}) returned coroutine, not bool",
        "odd: accepts none of the 1 subjects: enrich was not checked",
    ]

    class Raising(Odd):
        def accepts(self, subject: fido.Subject) -> bool:  # type: ignore[override]
            raise fido.EnrichmentError("no", adapter="odd")

    with pytest.raises(
        AssertionError, match=r"raised EnrichmentError: no \(adapter=odd\): it must never raise"
    ):
        check_enricher(Raising(), [SHA])


class ImpureDetector:
    name = "impure"

    def __init__(self) -> None:
        self._ids = itertools.count()

    def parse(self, payload: Any) -> list[fido.Event]:
        return [fake_event(next(self._ids), detector="impure")]

    def poll(self, cursor: str | None) -> tuple[list[fido.Event], str | None]:
        return [], cursor


def test_an_impure_parse_fails() -> None:
    with pytest.raises(AssertionError) as caught:
        check_detector(ImpureDetector(), ["line"])
    assert problems(caught) == [
        "impure: parse(payloads[0]) is not pure: a second call gave a different result"
    ]


def test_a_detector_that_stamps_another_name_fails() -> None:
    detector = FakeDetector([fake_event(1, detector="edr")], name="mine")
    with pytest.raises(AssertionError) as caught:
        check_detector(detector, [fake_event(2, detector="edr")])
    assert problems(caught) == [
        (
            "mine: parse(payloads[0]) made an event whose detector is 'edr', "
            "not the detector's name 'mine'"
        ),
        "mine: poll(None) made an event whose detector is 'edr', not the detector's name 'mine'",
    ]


def test_a_detector_returning_wrong_shapes_fails() -> None:
    class Shapeless:
        name = "shapeless"

        def parse(self, payload: Any) -> Any:
            if payload == "one":
                return {"id": "1"}
            return (item for item in [fake_event(1, detector="shapeless"), "junk"])

        def poll(self, cursor: str | None) -> Any:
            return [[], 5]

    with pytest.raises(AssertionError) as caught:
        check_detector(Shapeless(), ["one", "two"])
    assert problems(caught) == [
        "shapeless: parse(payloads[0]) returned dict, not an iterable of Event or DeadLetter",
        (
            "shapeless: parse(payloads[1]) returned an item of type str at [1], "
            "not Event or DeadLetter"
        ),
        "shapeless: poll(None) returned list, not a tuple (items, cursor)",
    ]


def test_a_detector_poll_cursor_must_be_a_str() -> None:
    class BadCursor(ImpureDetector):
        def poll(self, cursor: str | None) -> Any:
            return ((), 7)

    with pytest.raises(AssertionError) as caught:
        check_detector(BadCursor(), [], secrets=[SECRET])
    assert problems(caught) == ["impure: poll(None) returned a cursor of type int, not str or None"]


def test_every_problem_is_reported() -> None:
    class Broken(Leaky):
        def accepts(self, subject: fido.Subject) -> bool:
            return not isinstance(subject, fido.User)

        async def enrich(self, subject: fido.Subject) -> Any:
            if isinstance(subject, fido.Host):
                raise RuntimeError("boom")
            return await super().enrich(subject)

    with pytest.raises(AssertionError) as caught:
        check_enricher(Broken(SECRET, where="repr"), secrets=[SECRET])
    lines = problems(caught)
    assert len(lines) == 2
    assert lines[0].startswith("leaky: enrich(Host(name='ws-042'")
    assert lines[0].endswith("raised RuntimeError: boom: not wrapped (raise EnrichmentError)")
    assert lines[1] == "leaky: secret #1 appears in repr(adapter)"


def test_check_detector_needs_something_to_check() -> None:
    with pytest.raises(ValueError, match="nothing to check"):
        check_detector(FakeDetector(), [], poll=False)
    check_detector(FakeDetector(), [fake_event(1)], poll=False)


# -- the conformance kit inside a running event loop --------------------------------------


def test_checks_work_inside_a_running_loop() -> None:
    async def main() -> None:
        asyncio.get_running_loop()
        check_detector(FakeDetector([fake_event(1)]), [fake_event(2)])
        check_enricher(conformant_enricher(), [SHA, HOST, USER])
        check_responder(RecordingResponder())
        with pytest.raises(AssertionError, match=r"did not finish within 0\.1 s"):
            check_enricher(StaticEnricher({SHA: None}, delay=30), [SHA], timeout=0.1)

    asyncio.run(main())


def test_checks_run_async_adapter_methods() -> None:
    class AsyncDetector:
        name = "async-edr"

        async def parse(self, payload: Any) -> list[fido.Event]:
            await asyncio.sleep(0)
            return [fake_event(1, detector="async-edr")]

        async def poll(self, cursor: str | None) -> tuple[list[fido.Event], str]:
            return [], "0"

    class AsyncResponder:
        name = "async-responder"

        async def respond(self, incident: fido.Incident, action: fido.Action) -> str:
            await asyncio.sleep(0)
            return "ok"

    check_detector(AsyncDetector(), ["x"])
    check_responder(AsyncResponder())


def test_checks_can_run_in_parallel_threads() -> None:
    root = logging.getLogger()
    before = root.level

    def check(number: int) -> None:
        check_enricher(conformant_enricher(delay=0.01), [SHA, HOST])
        check_responder(RecordingResponder(name=f"recorder-{number}"))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(check, range(8)))
    assert root.level == before


def test_static_enricher_refuses_keys_that_are_not_subjects() -> None:
    with pytest.raises(TypeError, match="a key is a subject or a str, not int"):
        StaticEnricher({42: None})
