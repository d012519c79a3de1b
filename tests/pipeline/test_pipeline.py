"""The pipeline, stage by stage, through its public API."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import fido
from fido import (
    Allowlist,
    AllowlistEntry,
    ApprovalError,
    ApprovalStatus,
    EnrichmentError,
    EntryKind,
    FailureKind,
    Host,
    IncidentStatus,
    InvalidEvent,
    Limits,
    Pipeline,
    ResponderError,
    ResponseStatus,
    Severity,
    User,
    Verdict,
)
from fido.scoring import Policy
from fido.testing import FakeDetector, RecordingResponder, StaticEnricher
from tests.factories import SHA256, event

BAD = fido.Observable.parse(SHA256)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += timedelta(**delta)


T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def build(**overrides: Any) -> tuple[Pipeline, RecordingResponder, Clock]:
    recorder = RecordingResponder()
    clock = Clock(T0)
    fields: dict[str, Any] = {
        "enrichers": [StaticEnricher({BAD: Verdict.MALICIOUS}, name="feed")],
        "responders": {"notify": [recorder], "ticket": [recorder], "contain": [recorder]},
        "clock": clock,
    }
    fields.update(overrides)
    return Pipeline(**fields), recorder, clock


def alert(**overrides: Any) -> fido.Event:
    overrides.setdefault("time", T0)
    return event(**overrides)


# -- validate ----------------------------------------------------------------------------


def test_invalid_input_goes_to_dead_letters_and_raises() -> None:
    pipeline, _, _ = build()
    with pipeline:
        with pytest.raises(InvalidEvent, match="expected an Event"):
            pipeline.process(42)  # type: ignore[arg-type]
        bad = alert().to_dict()
        bad["time"] = "not a time"
        with pytest.raises(InvalidEvent) as info:
            pipeline.process(bad)
        assert info.value.field == "time"
        letters = pipeline.dead_letters()
        assert [d.field for d in letters] == ["time", None]
        assert letters[0].payload["time"] == "not a time"
        assert letters[0].detector == "edr"
        assert pipeline.stats()["counters"]["dead_lettered"] == 2


def test_dict_form_is_accepted() -> None:
    pipeline, recorder, _ = build()
    with pipeline:
        incident = pipeline.process(alert().to_dict())
    assert incident.decision.action_names == ("notify", "ticket")
    assert len(recorder.seen) == 2


def test_too_many_observables_is_invalid() -> None:
    pipeline, _, _ = build(limits=Limits(max_observables=2))
    with pipeline:
        with pytest.raises(InvalidEvent, match="more than the limit of 2") as info:
            pipeline.process(alert(observables=["a.example", "b.example", "c.example"]))
        assert info.value.field == "observables"
        assert len(pipeline.dead_letters()) == 1


# -- dedup --------------------------------------------------------------------------------


def test_replaying_an_alert_gives_one_incident_and_one_response() -> None:
    pipeline, recorder, _ = build()
    first_alert = alert(id="a-1")
    with pipeline:
        first = pipeline.process(first_alert)
        again = pipeline.process(first_alert)
        third = pipeline.process(first_alert.to_dict())
        assert again.id == first.id == third.id
        assert recorder.seen == [(first.id, "notify"), (first.id, "ticket")]
        assert len(pipeline.store.incidents()) == 1  # type: ignore[arg-type]
        assert pipeline.stats()["counters"]["duplicates"] == 2


class SlowStore(fido.MemoryStore):
    """A store whose every call yields to the loop first, as an async store's would."""

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name.startswith("_") or not callable(found):
            return found

        async def later(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.001)
            return found(*args, **kwargs)

        return later


@pytest.mark.parametrize("store", [fido.MemoryStore, SlowStore])
def test_concurrent_duplicates_wait_for_the_first(store: type[fido.MemoryStore]) -> None:
    # No host and no observable: nothing but dedup can bring the copies together.
    directory = StaticEnricher({User("bdoe"): fido.UserContext(source="ad")}, delay=0.05)
    pipeline, recorder, _ = build(enrichers=[directory], store=store())
    same = alert(id="dup", host=None, observables=[], severity=Severity.CRITICAL)
    with pipeline:
        results = pipeline.process_many([same, same, same])
        assert len({r.id for r in results}) == 1
        assert directory.calls == [User("bdoe")]
        assert recorder.seen == [(results[0].id, "notify")]
        counters = pipeline.stats()["counters"]
        assert (counters["processed"], counters["duplicates"]) == (1, 2)


def test_concurrent_events_of_one_incident_through_an_async_store_never_conflict() -> None:
    # Each journey reads the incident while others run (an async store yields), and
    # saves on the latest copy: none is refused for a stale revision.
    pipeline, _, _ = build(store=SlowStore())
    events = [alert(id=f"c-{n}", time=T0 + timedelta(seconds=n)) for n in range(12)]
    with pipeline:
        results = pipeline.process_many(events)
        counters = pipeline.stats()["counters"]
        assert len({r.id for r in results}) == 1
        stored = pipeline.incident(results[0].id)
    assert stored is not None
    assert sorted(e.id for e in stored.events) == sorted(e.id for e in events)
    assert counters["processed"] == 12
    assert counters.get("conflicts", 0) == 0


# -- allowlist ----------------------------------------------------------------------------


def entry(kind: EntryKind, value: str, **extra: Any) -> AllowlistEntry:
    return AllowlistEntry(kind=kind, value=value, reason="known good", author="soc", **extra)


def test_allowlisted_event_becomes_a_suppressed_incident() -> None:
    allowlist = Allowlist([entry(EntryKind.HOST, "scanner-*")])
    pipeline, recorder, _ = build(allowlist=allowlist)
    with pipeline:
        incident = pipeline.process(alert(host=Host(name="scanner-01")))
        assert incident.status is IncidentStatus.SUPPRESSED
        assert incident.suppressed_by is not None
        assert "allowlisted: host scanner-*" in incident.suppressed_by
        assert recorder.seen == []
        stored = pipeline.incident(incident.id)
        assert stored is not None
        assert [a.stage for a in stored.audit] == ["validate", "dedup", "allowlist", "record"]
        assert stored.audit[2].outcome == "suppressed"


def test_partially_allowlisted_event_skips_those_lookups() -> None:
    good = fido.Observable.parse("update.corp.example")
    feed = StaticEnricher({BAD: Verdict.MALICIOUS, good: Verdict.MALICIOUS}, name="feed")
    allowlist = Allowlist([entry(EntryKind.DOMAIN, "corp.example", subdomains=True)])
    pipeline, _, _ = build(allowlist=allowlist, enrichers=[feed])
    with pipeline:
        incident = pipeline.process(alert(observables=[SHA256, "update.corp.example"]))
    assert incident.status is IncidentStatus.OPEN
    assert feed.calls == [BAD]
    allow_step = next(a for a in incident.audit if a.stage == "allowlist")
    assert allow_step.detail == "not looked up (allowlisted): update[.]corp[.]example"


def test_expired_allowlist_entries_do_not_suppress() -> None:
    allowlist = Allowlist([entry(EntryKind.HOST, "ws-042", expires=T0 - timedelta(days=1))])
    pipeline, recorder, _ = build(allowlist=allowlist)
    with pipeline:
        incident = pipeline.process(alert())
    assert incident.status is IncidentStatus.OPEN
    assert recorder.seen


# -- correlate ----------------------------------------------------------------------------


def test_events_on_one_host_within_the_window_join_one_incident() -> None:
    pipeline, recorder, clock = build()
    with pipeline:
        first = pipeline.process(alert(detector="edr", id="1", observables=[]))
        clock.advance(minutes=10)
        second = pipeline.process(
            alert(detector="ids", id="2", time=T0 + timedelta(minutes=10), observables=[SHA256])
        )
        later = pipeline.process(
            alert(detector="ids", id="3", time=T0 + timedelta(hours=3), observables=[])
        )
    assert second.id == first.id
    assert [e.id for e in second.events] == ["1", "2"]
    assert later.id != first.id
    by_rule = {c.rule: c.points for c in second.assessment.contributions}
    assert by_rule["threat.corroboration.detectors"] == 10
    # the first event (no indicator: 20 + unknown host 10 = 30) notified; the second raised
    # the score to ticket: notify is not sent twice, ticket is sent once
    assert recorder.seen.count((first.id, "notify")) == 1
    assert recorder.seen.count((first.id, "ticket")) == 1


def test_events_sharing_an_observable_join_across_hosts() -> None:
    pipeline, _, _ = build()
    with pipeline:
        one = pipeline.process(alert(id="1", host=Host(name="ws-1")))
        two = pipeline.process(alert(id="2", host=Host(name="ws-2")))
    assert one.id == two.id
    assert [h.key for h in two.hosts] == ["ws-1", "ws-2"]


def test_concurrent_events_on_one_host_make_one_incident() -> None:
    pipeline, _, _ = build(
        enrichers=[StaticEnricher({BAD: Verdict.MALICIOUS}, name="feed", delay=0.02)]
    )
    events = [alert(id=f"e-{n}", detector=f"d{n % 3}", observables=[]) for n in range(12)]
    with pipeline:
        results = pipeline.process_many(events)
        assert len({r.id for r in results}) == 1
        stored = pipeline.incident(results[0].id)
    assert stored is not None
    assert sorted(e.id for e in stored.events) == sorted(e.id for e in events)


def test_an_incident_suppressed_by_its_score_is_joined_later() -> None:
    # Two quiet alerts sharing an indicator: the first alone is suppressed by its score;
    # the second joins it (and the corroboration may reopen it), one after the other as
    # when processed at once.
    def quiet(n: int) -> fido.Event:
        return alert(
            id=f"q-{n}",
            detector=f"d{n}",
            host=None,
            user=None,
            severity=Severity.INFO,
            observables=["evil.example"],
            time=T0 + timedelta(minutes=n),
        )

    for together in (False, True):
        pipeline, _, _ = build(enrichers=[])
        with pipeline:
            if together:
                first, second = pipeline.process_many([quiet(0), quiet(1)])
            else:
                first, second = pipeline.process(quiet(0)), pipeline.process(quiet(1))
            assert first.status is IncidentStatus.SUPPRESSED
            assert second.id == first.id, f"together={together}"
            assert [e.id for e in second.events] == ["q-0", "q-1"]


def test_an_allowlisted_incident_is_not_joined() -> None:
    allowlist = Allowlist([entry(EntryKind.HOST, "scanner-*")])
    pipeline, _, _ = build(allowlist=allowlist)
    with pipeline:
        quiet = pipeline.process(alert(id="1", host=Host(name="scanner-01")))
        later = pipeline.process(alert(id="2", host=Host(name="ws-9")))  # shares the hash
    assert quiet.status is IncidentStatus.SUPPRESSED
    assert later.id != quiet.id


# -- enrich -------------------------------------------------------------------------------


def test_lookups_that_found_nothing_are_not_repeated() -> None:
    feed = StaticEnricher({BAD: Verdict.MALICIOUS, "8.8.8.8": None}, name="feed")
    pipeline, _, _ = build(enrichers=[feed])
    with pipeline:
        for n in range(5):
            incident = pipeline.process(
                alert(id=f"e-{n}", observables=[SHA256, "8.8.8.8"], time=T0 + timedelta(minutes=n))
            )
    assert len(incident.events) == 5
    assert feed.calls == [BAD, fido.Observable.parse("8.8.8.8")]
    [empty] = incident.empty_lookups
    assert (empty.enricher, empty.subject) == ("feed", fido.Observable.parse("8.8.8.8"))
    details = [a.detail for a in incident.audit if a.stage == "enrich"]
    assert details[0] == "2 look-ups: 1 findings, 1 empty, 0 failed"
    assert set(details[1:]) == {"0 look-ups: 0 findings, 0 empty, 0 failed"}


def test_failing_lookups_are_retried_a_few_times_only() -> None:
    broken = StaticEnricher({BAD: EnrichmentError("HTTP 500", adapter="broken")}, name="broken")
    tripped = StaticEnricher({BAD: EnrichmentError("circuit open", skipped=True)}, name="tripped")
    pipeline, _, _ = build(enrichers=[broken, tripped])
    with pipeline:
        for n in range(6):
            incident = pipeline.process(alert(id=f"f-{n}", time=T0 + timedelta(minutes=n)))
    assert len(broken.calls) == 3  # MAX_TRIES: a later event may find it back up
    assert len(tripped.calls) == 6  # not attempted: it does not count
    assert len(incident.failures) == 9


def test_lookups_of_earlier_events_are_made_again_only_after_a_failure_or_a_skip() -> None:
    # The later events carry none of the first event's subjects: the failed and the
    # skipped look-ups of those are made again when they join, the answered one is not.
    feed = StaticEnricher({BAD: Verdict.MALICIOUS}, name="feed")
    broken = StaticEnricher({BAD: EnrichmentError("HTTP 500", adapter="broken")}, name="broken")
    tripped = StaticEnricher({BAD: EnrichmentError("circuit open", skipped=True)}, name="tripped")
    pipeline, _, _ = build(enrichers=[feed, broken, tripped])
    with pipeline:
        pipeline.process(alert(id="g-0"))
        for n in range(1, 5):
            incident = pipeline.process(
                alert(id=f"g-{n}", observables=[], time=T0 + timedelta(minutes=n))
            )
    assert len(incident.events) == 5
    assert feed.calls == [BAD]
    assert broken.calls == [BAD] * 3  # MAX_TRIES
    assert tripped.calls == [BAD] * 5  # a skip is no try: asked on every event


def test_an_async_accepts_is_awaited() -> None:
    asked: list[object] = []

    class AsyncAccepts:
        name = "async-accepts"

        def __init__(self, answer: bool) -> None:
            self.answer = answer
            self.name = f"async-{answer}"

        async def accepts(self, subject: object) -> bool:
            return self.answer and isinstance(subject, fido.Observable)

        async def enrich(self, subject: object) -> None:
            asked.append((self.name, subject))

    pipeline, _, _ = build(enrichers=[AsyncAccepts(answer=False), AsyncAccepts(answer=True)])
    with pipeline:
        incident = pipeline.process(alert())
    assert asked == [("async-True", BAD)]  # the coroutine of False was not taken for True
    assert [e.enricher for e in incident.empty_lookups] == ["async-True"]


def test_adapters_raising_base_exceptions_are_ordinary_failures() -> None:
    class Exits:
        def __init__(self, name: str, error: BaseException, *, asynchronous: bool) -> None:
            self.name, self.error, self.asynchronous = name, error, asynchronous

        def accepts(self, subject: object) -> bool:
            return isinstance(subject, fido.Observable)

        def enrich(self, subject: object) -> Any:
            if not self.asynchronous:
                raise self.error

            async def later() -> None:
                raise self.error

            return later()

    class BadResponder:
        name = "bad"

        def respond(self, incident: object, action: object) -> None:
            raise SystemExit(3)

    enrichers = [
        Exits("sync-exit", SystemExit(3), asynchronous=False),
        Exits("sync-interrupt", KeyboardInterrupt(), asynchronous=False),
        Exits("async-exit", SystemExit(3), asynchronous=True),
        Exits("async-cancel", asyncio.CancelledError(), asynchronous=True),
        StaticEnricher({BAD: Verdict.MALICIOUS}, name="good"),
    ]
    pipeline, _, _ = build(enrichers=enrichers, responders={"notify": [BadResponder()]})
    with pipeline:
        incident = pipeline.process(alert())
        assert pipeline.process(alert(id="after")).id == incident.id  # fido's loop lives on
    assert {f.enricher: f.message.split(" ")[0] for f in incident.failures} == {
        "sync-exit": "SystemExit",
        "sync-interrupt": "KeyboardInterrupt",
        "async-exit": "SystemExit",
        "async-cancel": "CancelledError",
    }
    assert [(r.responder, r.status) for r in incident.responses if r.action == "notify"] == [
        ("bad", ResponseStatus.FAILED)
    ]


def test_failing_and_hanging_enrichers_are_recorded_and_the_decision_still_comes() -> None:
    enrichers = [
        StaticEnricher({BAD: Verdict.MALICIOUS}, name="good"),
        StaticEnricher({BAD: EnrichmentError("HTTP 500", adapter="broken")}, name="broken"),
        StaticEnricher({BAD: RuntimeError("bug at https://x.example/?token=s3cret")}, name="buggy"),
        StaticEnricher({BAD: Verdict.MALICIOUS}, name="hangs", delay=30),
        StaticEnricher({BAD: EnrichmentError("circuit open", skipped=True)}, name="tripped"),
    ]
    pipeline, recorder, _ = build(enrichers=enrichers, limits=Limits(enrich_timeout=0.2))
    with pipeline:
        incident = pipeline.process(alert())
    failures = {f.enricher: (f.kind, f.message) for f in incident.failures}
    assert failures == {
        "broken": (FailureKind.ERROR, "HTTP 500 (adapter=broken)"),
        # not an EnrichmentError: its message may hold a secret, only its type is kept
        "buggy": (
            FailureKind.ERROR,
            "RuntimeError (its message is not kept: it may hold a secret)",
        ),
        "hangs": (FailureKind.TIMEOUT, "no answer within 0.2 s"),
        "tripped": (FailureKind.SKIPPED, "circuit open"),
    }
    assert [f.source for f in incident.findings] == ["good"]
    assert incident.decision.action_names == ("notify", "ticket")
    assert recorder.seen
    step = next(a for a in incident.audit if a.stage == "enrich")
    assert step.detail == "5 look-ups: 1 findings, 0 empty, 4 failed"


def test_findings_get_subject_and_time_and_wrong_types_are_failures() -> None:
    class Weird:
        name = "weird"

        def accepts(self, subject: object) -> bool:
            return True

        def enrich(self, subject: object) -> object:
            return {"verdict": "malicious"}

    class Picky:
        name = "picky"

        def accepts(self, subject: object) -> bool:
            raise ValueError("bug in accepts")

        def enrich(self, subject: object) -> None:
            raise AssertionError("never called")

    pipeline, _, _ = build(
        enrichers=[StaticEnricher({BAD: Verdict.MALICIOUS}, name="feed"), Weird(), Picky()]
    )
    with pipeline:
        incident = pipeline.process(alert(user=None))
    [finding] = incident.findings
    assert finding.subject == BAD
    assert finding.fetched_at == T0
    assert {f.message for f in incident.failures} == {"returned dict, not a finding"}


def test_sync_enrichers_run_in_worker_threads() -> None:
    threads: list[str] = []

    class Blocking:
        name = "blocking"

        def accepts(self, subject: object) -> bool:
            return isinstance(subject, fido.Observable)

        def enrich(self, subject: fido.Observable) -> fido.Reputation:
            threads.append(threading.current_thread().name)
            return fido.Reputation(source=self.name, verdict=Verdict.SUSPICIOUS)

    pipeline, _, _ = build(enrichers=[Blocking()])
    with pipeline:
        pipeline.process(alert())
    assert threads
    assert all(name.startswith("fido-worker") for name in threads)


def test_joining_event_only_looks_up_new_subjects() -> None:
    feed = StaticEnricher({BAD: Verdict.MALICIOUS, "evil.example": Verdict.SUSPICIOUS}, name="feed")
    pipeline, _, _ = build(enrichers=[feed])
    with pipeline:
        pipeline.process(alert(id="1"))
        pipeline.process(alert(id="2", observables=[SHA256, "evil.example"]))
    assert feed.calls == [BAD, fido.Observable.parse("evil.example")]


# -- decide, respond ----------------------------------------------------------------------


def test_low_scores_are_suppressed_by_the_policy() -> None:
    pipeline, recorder, _ = build(enrichers=[])
    with pipeline:
        incident = pipeline.process(alert(severity=Severity.INFO, observables=[], host=None))
    assert incident.assessment.total == 0
    assert incident.decision.level == "suppress"
    assert incident.status is IncidentStatus.SUPPRESSED
    assert incident.suppressed_by == "score 0: total 0 reached suppress (from 0)"
    assert recorder.seen == []


def test_failing_responders_are_recorded_and_retried_next_time() -> None:
    flaky = RecordingResponder(name="jira", fail=ResponderError("Jira said 503", adapter="jira"))
    recorder = RecordingResponder()
    pipeline, _, _ = build(responders={"notify": [recorder], "ticket": [flaky]})
    with pipeline:
        incident = pipeline.process(alert(id="1"))
        statuses = {r.key: r.status for r in incident.responses}
        assert statuses == {
            f"{incident.id}/notify/recorder": ResponseStatus.DONE,
            f"{incident.id}/ticket/jira": ResponseStatus.FAILED,
        }
        failed = next(r for r in incident.responses if r.responder == "jira")
        assert failed.detail == "Jira said 503 (adapter=jira)"
        flaky.fail = None
        again = pipeline.process(alert(id="2"))
    assert again.id == incident.id
    assert {r.key: r.status for r in again.responses}[
        f"{incident.id}/ticket/jira"
    ] is ResponseStatus.DONE
    assert flaky.attempts == 2
    assert recorder.seen == [(incident.id, "notify")]


def test_actions_without_responders_are_recorded_as_skipped() -> None:
    pipeline, _, _ = build(responders={})
    with pipeline:
        incident = pipeline.process(alert())
    assert {(r.action, r.status) for r in incident.responses} == {
        ("notify", ResponseStatus.SKIPPED),
        ("ticket", ResponseStatus.SKIPPED),
    }
    assert all(r.detail.startswith("no responder for") for r in incident.responses)


def test_a_started_response_is_never_repeated() -> None:
    pipeline, recorder, _ = build()
    with pipeline:
        incident = pipeline.process(alert(id="1"))
        stored = pipeline.incident(incident.id)
        assert stored is not None
        stored.responses = tuple(
            fido.ResponseRecord(
                action=r.action,
                responder=r.responder,
                status=ResponseStatus.STARTED,
                at=r.at,
                key=r.key,
            )
            for r in stored.responses
        )
        pipeline.store.save_incident(stored)
        recorder.seen.clear()
        pipeline.process(alert(id="2"))
    assert recorder.seen == []


def test_a_responder_that_times_out_is_unknown_and_never_called_again() -> None:
    # It may have acted (the page may be out): calling it again could send twice.
    slow = RecordingResponder(name="slow", delay=0.5)
    pipeline, _, _ = build(responders={"notify": [slow]}, limits=Limits(respond_timeout=0.1))
    with pipeline:
        incident = pipeline.process(alert(id="1"))
        [record] = [r for r in incident.responses if r.responder == "slow"]
        assert record.status is ResponseStatus.UNKNOWN
        assert record.detail == "no answer within 0.1 s: it may have acted; not called again"
        step = next(a for a in incident.audit if a.stage == "respond")
        assert (step.outcome, step.detail) == ("unknown", "0 done, 0 failed, 1 unknown")
        again = pipeline.process(alert(id="2", time=T0 + timedelta(minutes=1)))
        assert again.id == incident.id
        assert {r.key: r.status for r in again.responses}[record.key] is ResponseStatus.UNKNOWN
        assert pipeline.stats()["counters"]["response_unknown"] == 1
    assert slow.attempts == 1


# -- approvals ----------------------------------------------------------------------------


def containable() -> fido.Event:
    return alert(severity=Severity.CRITICAL, category="ransomware")


def test_approval_runs_the_action_once() -> None:
    pipeline, recorder, clock = build()
    with pipeline:
        incident = pipeline.process(containable())
        assert incident.decision.level == "contain"
        assert (incident.id, "contain") not in recorder.seen
        [(pending, approval)] = pipeline.pending_approvals()
        assert pending.id == incident.id
        assert approval.action.name == "contain"
        assert approval.expires_at == T0 + timedelta(hours=4)
        clock.advance(minutes=5)
        approved = pipeline.approve(incident.id, "contain", by="alice", note="confirmed")
        assert recorder.seen.count((incident.id, "contain")) == 1
        answer = approved.approvals[0]
        assert (answer.status, answer.by, answer.note) == (
            ApprovalStatus.APPROVED,
            "alice",
            "confirmed",
        )
        assert answer.answered_at == T0 + timedelta(minutes=5)
        assert approved.audit[-2].stage == "approve"
        with pytest.raises(ApprovalError, match="already approved by alice"):
            pipeline.approve(incident.id, "contain", by="bob")
        with pytest.raises(ApprovalError, match="already approved"):
            pipeline.reject(incident.id, "contain", by="bob")
        assert pipeline.pending_approvals() == []
        # a new event on the incident does not run contain again
        pipeline.process(alert(id="later", severity=Severity.CRITICAL, category="ransomware"))
    assert recorder.seen.count((incident.id, "contain")) == 1


def test_rejection_is_recorded_and_nothing_runs() -> None:
    pipeline, recorder, _ = build()
    with pipeline:
        incident = pipeline.process(containable())
        rejected = pipeline.reject(incident.id, "contain", by="alice", note="false positive")
    assert rejected.approvals[0].status is ApprovalStatus.REJECTED
    assert (incident.id, "contain") not in recorder.seen


def test_approvals_expire_and_the_expiry_is_recorded() -> None:
    other_hash = "3395856ce81f2b7382dee72602f798b642f14140"
    feed = StaticEnricher({BAD: Verdict.MALICIOUS, other_hash: Verdict.MALICIOUS}, name="feed")
    pipeline, recorder, clock = build(enrichers=[feed])
    with pipeline:
        incident = pipeline.process(containable())
        clock.advance(hours=5)
        with pytest.raises(ApprovalError, match="expired"):
            pipeline.approve(incident.id, "contain", by="alice")
        stored = pipeline.incident(incident.id)
        assert stored is not None
        assert stored.approvals[0].status is ApprovalStatus.EXPIRED
        assert stored.audit[-2].stage == "expire"
        other = pipeline.process(
            alert(
                id="x",
                host=Host(name="srv-9"),
                severity=Severity.CRITICAL,
                category="ransomware",
                observables=[other_hash],
            )
        )
        clock.advance(hours=5)
        assert pipeline.pending_approvals() == []
        stored_other = pipeline.incident(other.id)
        assert stored_other is not None
        assert stored_other.approvals[0].status is ApprovalStatus.EXPIRED
        assert pipeline.expire_approvals() == 0
    assert (incident.id, "contain") not in recorder.seen


def test_approval_errors() -> None:
    pipeline, _, _ = build()
    with pipeline:
        incident = pipeline.process(alert())
        with pytest.raises(ApprovalError, match="no such incident"):
            pipeline.approve("inc-nope", "contain", by="alice")
        with pytest.raises(ApprovalError, match="no approval pending"):
            pipeline.approve(incident.id, "contain", by="alice")
        with pytest.raises(ApprovalError, match="names who"):
            pipeline.approve(incident.id, "contain", by=" ")


# -- API shape ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"concurrency": 0},
        {"workers": 0},
        {"max_lookups": 0},
        {"max_events": -1},
        {"concurrency": 2.5},
        {"workers": True},
        {"enrich_timeout": 0},
        {"respond_timeout": float("nan")},
        {"poll_timeout": float("inf")},
        {"claim_timeout": -1},
        {"history_lookback": 30},
        {"history_lookback": timedelta(days=-1)},
    ],
)
def test_limits_that_would_hang_are_refused(bad: dict[str, Any]) -> None:
    [(name, value)] = bad.items()
    with pytest.raises(fido.ConfigurationError, match=f"limits.{name} must be") as info:
        Limits(**bad)
    assert info.value.key == f"limits.{name}"
    assert repr(value) in str(info.value)


def test_process_many_keeps_input_order_and_reports_errors() -> None:
    pipeline, _, _ = build()
    items: list[Any] = [
        alert(id="1", host=Host(name="a")),
        "junk",
        alert(id="2", host=Host(name="b"), observables=[]),
    ]
    with pipeline:
        results = pipeline.process_many(items, return_exceptions=True)
        assert isinstance(results[0], fido.Incident)
        assert isinstance(results[1], InvalidEvent)
        assert isinstance(results[2], fido.Incident)
        with pytest.raises(InvalidEvent):
            pipeline.process_many(items)


def test_process_payload_with_a_detector() -> None:
    detector = FakeDetector(name="edr")
    pipeline, recorder, _ = build(detectors=[detector])
    payload = [alert(id="p1").to_dict(), {"detector": "edr", "id": "bad"}]
    with pipeline:
        incidents = pipeline.process_payload("edr", payload)
        assert len(incidents) == 1
        assert [d.event_id for d in pipeline.dead_letters()] == ["bad"]
        with pytest.raises(fido.DetectorError, match="no such detector"):
            pipeline.process_payload("nope", payload)
        with pytest.raises(fido.DetectorError):
            pipeline.process_payload("edr", 42)
    assert recorder.seen


def test_async_twins_inside_a_running_loop() -> None:
    async def main() -> fido.Incident:
        pipeline, _, _ = build()
        async with pipeline:
            incident = await pipeline.aprocess(alert())
            many = await pipeline.aprocess_many(
                [alert(id="b", host=Host(name="other"), observables=[])]
            )
            assert many[0].id != incident.id
            sync_inside = pipeline.process(alert(id="c", host=Host(name="third"), observables=[]))
            assert sync_inside.events[0].id == "c"
            assert await pipeline.apending_approvals() == []
            assert await pipeline.aexpire_approvals() == 0
            return incident

    incident = asyncio.run(main())
    assert incident.decision.action_names == ("notify", "ticket")


def test_closed_pipeline_refuses_work_and_closes_adapters() -> None:
    closed: list[str] = []

    class Closable:
        name = "closable"

        def accepts(self, subject: object) -> bool:
            return False

        def enrich(self, subject: object) -> None:
            return None

        async def aclose(self) -> None:
            closed.append("enricher")

    pipeline, _, _ = build(enrichers=[Closable()])
    pipeline.process(alert())
    pipeline.close()
    pipeline.close()
    assert closed == ["enricher"]
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.process(alert())


def test_duplicate_adapter_names_are_refused() -> None:
    with pytest.raises(fido.ConfigurationError, match="share a name"):
        Pipeline(enrichers=[StaticEnricher({}, name="x"), StaticEnricher({}, name="x")])


def test_repr_and_stats() -> None:
    pipeline, _, _ = build()
    assert "enrichers=['feed']" in repr(pipeline)
    assert pipeline.stats() == {"counters": {}, "timings": {}, "adapters": {}}
    with pipeline:
        pipeline.process(alert())
        stats = pipeline.stats()
    assert stats["counters"]["processed"] == 1
    assert stats["timings"]["enrich.feed"]["count"] == 1
    assert set(stats["timings"]["respond.recorder"]) == {"count", "p50", "p99"}


def test_every_stage_is_in_the_audit_trail() -> None:
    pipeline, _, _ = build(policy=Policy.default())
    with pipeline:
        incident = pipeline.process(alert())
    assert [a.stage for a in incident.audit] == [
        "validate",
        "dedup",
        "allowlist",
        "correlate",
        "enrich",
        "score",
        "decide",
        "respond",
        "record",
    ]
    assert all(a.event_id == incident.events[0].id for a in incident.audit)
    assert all(a.outcome == "ok" for a in incident.audit)
    score = next(a for a in incident.audit if a.stage == "score")
    assert score.detail == "threat 50, machine 10, user 0, total 60"


def test_user_is_enriched_too() -> None:
    directory = StaticEnricher(
        {User("bdoe"): fido.UserContext(source="ad", title="CFO", department="Finance")}, name="ad"
    )
    pipeline, _, _ = build(enrichers=[directory])
    with pipeline:
        incident = pipeline.process(alert())
    assert incident.assessment.user == 55


def test_a_scoring_failure_is_audited_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from fido import _stages

    def broken(*args: object) -> None:
        raise fido.ScoringError("no rule for this", rule="threat.x")

    monkeypatch.setattr(_stages, "assess", broken)
    pipeline, recorder, _ = build()
    with pipeline:
        incident = pipeline.process(alert())
    steps = {a.stage: (a.outcome, a.detail) for a in incident.audit}
    assert steps["score"] == ("failed", "failed: no rule for this (rule=threat.x)")
    assert steps["decide"] == ("skipped", "skipped: no assessment")
    assert recorder.seen == []


def test_close_lets_the_work_in_flight_finish() -> None:
    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.sent: list[str] = []
            self.begun = threading.Event()

        async def respond(self, incident: fido.Incident, action: fido.Action) -> None:
            self.begun.set()
            await asyncio.sleep(0.3)
            self.sent.append(action.name)

    slow = Slow()
    pipeline, _, _ = build(responders={"notify": [slow], "ticket": [slow]})
    outcome: list[object] = []

    def work() -> None:
        try:
            outcome.append(pipeline.process(alert()))
        except BaseException as exc:  # the test reports it
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert slow.begun.wait(10)
    pipeline.close()  # while the first response is on its way
    worker.join()
    [incident] = outcome
    assert isinstance(incident, fido.Incident)
    assert slow.sent == ["notify", "ticket"]
