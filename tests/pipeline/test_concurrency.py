"""Several callers, pipelines and processes at once: no double sends, no losses."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

import fido
from fido import Host, Limits, Pipeline, ResponseStatus, Severity, User, Verdict
from fido._portal import Portal
from fido.scoring import Policy
from fido.testing import RecordingResponder, StaticEnricher
from tests.factories import SHA256
from tests.pipeline.test_pipeline import T0, Clock, alert

if TYPE_CHECKING:
    from pathlib import Path

BAD = fido.Observable.parse(SHA256)


def lone(event_id: str = "lone", **extra: Any) -> fido.Event:
    """An alert that nothing but its key can tie to another: no host, no observable."""
    return alert(id=event_id, host=None, observables=[], severity=Severity.CRITICAL, **extra)


def directory(delay: float = 0.0) -> StaticEnricher:
    return StaticEnricher({User("bdoe"): fido.UserContext(source="ad")}, name="ad", delay=delay)


def pipeline_on(store: fido.Store, **extra: Any) -> tuple[Pipeline, RecordingResponder]:
    recorder = RecordingResponder()
    extra.setdefault("enrichers", [directory()])
    made = Pipeline(
        responders={"notify": [recorder], "ticket": [recorder], "contain": [recorder]},
        store=store,
        **extra,
    )
    return made, recorder


# -- claims: one alert, two pipelines on one store ---------------------------------------


def test_a_copy_another_pipeline_works_on_waits_for_its_incident(tmp_path: Path) -> None:
    path = tmp_path / "fido.sqlite3"
    first, first_seen = pipeline_on(fido.SQLiteStore(path), enrichers=[directory(delay=0.3)])
    second, second_seen = pipeline_on(fido.SQLiteStore(path))
    results: dict[str, fido.Incident] = {}
    with first, second:
        worker = threading.Thread(target=lambda: results.update(a=first.process(lone())))
        worker.start()
        deadline = time.monotonic() + 10
        while not second.store.pending_events() and time.monotonic() < deadline:
            time.sleep(0.01)  # the first has not stored it yet
        results["b"] = second.process(lone())  # stored, claimed, no incident yet: it waits
        worker.join()
        assert results["a"].id == results["b"].id
        assert len(second.store.incidents()) == 1  # type: ignore[arg-type]
        assert second.stats()["counters"]["waited_elsewhere"] == 1
    assert first_seen.seen == [(results["a"].id, "notify")]
    assert second_seen.seen == []


def test_the_claim_of_a_closed_pipeline_is_taken_over_at_once() -> None:
    store = fido.MemoryStore()
    gone, _ = pipeline_on(store)
    with gone:
        gone_owner = gone._rt().owner
    assert store.add_event(lone(), owner=gone_owner, until=T0 + timedelta(days=1))
    survivor, seen = pipeline_on(store, clock=Clock(T0))
    with survivor:
        incident = survivor.process(lone())  # a crash left it: no waiting for the claim
        assert survivor.stats()["counters"]["resumed_events"] == 1
    assert seen.seen == [(incident.id, "notify")]


def test_a_claim_that_lapsed_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "fido.sqlite3"
    store = fido.SQLiteStore(path)
    clock = Clock(T0)
    # another host's pipeline stored it and went silent: only time tells
    assert store.add_event(lone(), owner="elsewhere/1/x", until=T0 + timedelta(seconds=300))
    waiting, seen = pipeline_on(store, clock=clock)
    with waiting:
        result: list[fido.Incident] = []
        worker = threading.Thread(target=lambda: result.append(waiting.process(lone())))
        worker.start()
        time.sleep(0.3)
        assert not result, "it waits while the claim holds"
        clock.advance(seconds=301)
        worker.join(timeout=10)
        assert result
    assert seen.seen == [(result[0].id, "notify")]


# -- cancellation ---------------------------------------------------------------------------


class SlowPager:
    name = "pager"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def respond(self, incident: fido.Incident, action: fido.Action) -> None:
        await asyncio.sleep(0.3)
        self.sent.append(action.name)


def test_a_caller_that_stops_waiting_does_not_stop_the_work() -> None:
    pager = SlowPager()
    pipeline = Pipeline(
        enrichers=[StaticEnricher({BAD: Verdict.MALICIOUS})],
        responders={"notify": [pager], "ticket": [pager]},
        clock=Clock(T0),
    )

    async def main() -> fido.Incident:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pipeline.aprocess(alert(id="c-1")), 0.1)
        await asyncio.sleep(1.0)
        return await pipeline.aprocess(alert(id="c-1"))

    with pipeline:
        incident = asyncio.run(main())
        assert {r.action: r.status for r in incident.responses} == {
            "notify": ResponseStatus.DONE,
            "ticket": ResponseStatus.DONE,
        }
        assert pipeline.store.unfinished_incidents() == []
    assert pager.sent == ["notify", "ticket"]


def test_waiters_never_get_the_first_caller_s_cancellation() -> None:
    recorder = RecordingResponder()
    slow = StaticEnricher({BAD: Verdict.MALICIOUS}, delay=0.3)
    pipeline = Pipeline(enrichers=[slow], responders={"notify": [recorder], "ticket": [recorder]})

    async def main() -> fido.Incident:
        impatient = asyncio.create_task(asyncio.wait_for(pipeline.aprocess(alert(id="w")), 0.1))
        await asyncio.sleep(0.02)
        patient = asyncio.create_task(pipeline.aprocess(alert(id="w")))
        with pytest.raises(TimeoutError):
            await impatient
        return await patient

    with pipeline:
        incident = asyncio.run(main())
    assert sorted(recorder.seen) == [(incident.id, "notify"), (incident.id, "ticket")]


# -- revisions: another process saved the incident meanwhile -----------------------------

CONTAIN = Policy.default() | {
    "decision": {
        "levels": [
            {"name": "suppress", "min": 0, "actions": []},
            {"name": "contain", "min": 30, "actions": ["notify", "contain"]},
        ]
    }
}


def test_an_approval_given_meanwhile_is_never_undone(tmp_path: Path) -> None:
    path = tmp_path / "fido.sqlite3"
    recorder = RecordingResponder()
    responders = {"notify": [recorder], "contain": [recorder]}
    slow = StaticEnricher({BAD: Verdict.MALICIOUS, "evil.example": None}, delay=0.4)
    run = Pipeline(
        enrichers=[slow], responders=responders, policy=CONTAIN, store=fido.SQLiteStore(path)
    )
    cli = Pipeline(responders=responders, policy=CONTAIN, store=fido.SQLiteStore(path))
    with run, cli:
        incident = run.process(alert(id="1"))
        later = alert(id="2", observables=[SHA256, "evil.example"], time=T0 + timedelta(minutes=1))
        worker = threading.Thread(target=run.process, args=(later,))
        worker.start()
        time.sleep(0.15)  # the run is enriching the second event, on its copy of the incident
        cli.approve(incident.id, "contain", by="alice")
        worker.join()
        final = cli.incident(incident.id)
        assert final is not None
        assert [(a.action.name, a.status, a.by) for a in final.approvals] == [
            ("contain", fido.ApprovalStatus.APPROVED, "alice")
        ]
        assert [e.id for e in final.events] == ["1", "2"]
        assert cli.pending_approvals() == []
        assert run.stats()["counters"]["conflicts"] >= 1
        assert any(a.stage == "reload" and a.outcome == "conflict" for a in final.audit)
        with pytest.raises(fido.ApprovalError, match="already approved by alice"):
            cli.approve(incident.id, "contain", by="bob")
    assert recorder.seen.count((incident.id, "contain")) == 1
    assert recorder.seen.count((incident.id, "notify")) == 1


def test_two_answers_from_two_processes_make_one(tmp_path: Path) -> None:
    path = tmp_path / "fido.sqlite3"
    recorder = RecordingResponder(delay=0.2)
    responders = {"notify": [recorder], "contain": [recorder]}
    first = Pipeline(responders=responders, policy=CONTAIN, store=fido.SQLiteStore(path))
    second = Pipeline(responders=responders, policy=CONTAIN, store=fido.SQLiteStore(path))
    outcomes: list[object] = []

    def answer(pipeline: Pipeline, who: str) -> None:
        try:
            outcomes.append(pipeline.approve(incident.id, "contain", by=who))
        except fido.ApprovalError as exc:
            outcomes.append(exc)

    with first, second:
        incident = first.process(alert(id="1"))
        threads = [
            threading.Thread(target=answer, args=(first, "alice")),
            threading.Thread(target=answer, args=(second, "bob")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["ApprovalError", "Incident"]
    assert recorder.seen.count((incident.id, "contain")) == 1


# -- worker threads -----------------------------------------------------------------------


class Sleepy:
    """A plain enricher that sleeps (a blocking library)."""

    def __init__(self, name: str, seconds: float, timeout: float) -> None:
        self.name, self.seconds, self.timeout = name, seconds, timeout

    def accepts(self, subject: object) -> bool:
        return isinstance(subject, fido.Observable)

    def enrich(self, subject: object) -> None:
        time.sleep(self.seconds)


def test_the_timeout_starts_when_the_call_runs() -> None:
    # One thread: the second look-up waits 0.6 s for it, then runs 0.6 s; each part is
    # within its 1 s timeout, the whole is not.
    enrichers = [Sleepy("first", 0.6, 1.0), Sleepy("second", 0.6, 1.0)]
    pipeline, _ = pipeline_on(fido.MemoryStore(), enrichers=enrichers, limits=Limits(workers=1))
    with pipeline:
        incident = pipeline.process(alert())
    assert incident.failures == ()
    assert sorted(e.enricher for e in incident.empty_lookups) == ["first", "second"]


def test_a_hung_enricher_neither_delays_responders_nor_starves_other_enrichers() -> None:
    hung = Sleepy("hung", 1.5, 0.1)
    pipeline, recorder = pipeline_on(
        fido.MemoryStore(),
        enrichers=[hung, Sleepy("healthy", 0.0, 1.0)],
        limits=Limits(workers=2, respond_timeout=0.5),
    )
    with pipeline:
        one = pipeline.process(alert(id="1", observables=[SHA256]))
        two = pipeline.process(alert(id="2", host=Host(name="ws-2"), observables=["b" * 64]))
    failures = {(f.enricher, f.kind) for i in (one, two) for f in i.failures}
    assert failures == {("hung", fido.FailureKind.TIMEOUT), ("hung", fido.FailureKind.SKIPPED)}
    skipped = next(f for f in two.failures if f.kind is fido.FailureKind.SKIPPED)
    assert skipped.message.startswith("not attempted: no worker thread within 0.1 s")
    assert {e.enricher for i in (one, two) for e in i.empty_lookups} == {"healthy"}
    assert [r.status for i in (one, two) for r in i.responses] == [ResponseStatus.DONE] * 2
    assert len(recorder.seen) == 2


# -- fido's loop ----------------------------------------------------------------------------


def test_a_dead_loop_is_reported_not_waited_for() -> None:
    portal = Portal()

    def die() -> None:
        raise SystemExit(3)

    portal.loop.call_soon_threadsafe(die)
    with pytest.raises(RuntimeError, match=r"event loop thread died \(SystemExit\)"):
        portal.run(asyncio.sleep(30))
    with pytest.raises(RuntimeError, match="died"):
        portal.run(asyncio.sleep(0))
    portal.close()
