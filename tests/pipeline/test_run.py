"""The run loop: polling, cursors, back-off, resuming, stopping."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import fido
from fido import DetectorError, Host, Pipeline, Verdict
from fido.testing import FakeDetector, RecordingResponder, StaticEnricher
from tests.factories import SHA256, event

if TYPE_CHECKING:
    from pathlib import Path


def build(*detectors: Any, **extra: Any) -> tuple[Pipeline, RecordingResponder]:
    recorder = RecordingResponder()
    pipeline = Pipeline(
        detectors=detectors,
        enrichers=[StaticEnricher({SHA256: Verdict.MALICIOUS}, name="feed")],
        responders={"notify": [recorder], "ticket": [recorder]},
        **extra,
    )
    return pipeline, recorder


def alerts(detector: str, count: int) -> list[fido.Event]:
    """Alerts of `detector` (a detector's events carry its name)."""
    return [
        event(
            detector=detector,
            id=f"{detector}-{n}",
            host=Host(name=f"{detector}-host-{n}"),
            observables=[],
        )
        for n in range(count)
    ]


def test_run_until_idle_processes_everything_and_persists_cursors() -> None:
    edr = FakeDetector(alerts("edr", 7), name="edr", batch=3)
    ids = FakeDetector(alerts("ids", 2), name="ids")
    pipeline, recorder = build(edr, ids)
    progress: list[dict[str, Any]] = []
    with pipeline:
        summary = pipeline.run(exit_when_idle=True, idle_interval=0.05, on_progress=progress.append)
        assert summary.reason == "idle"
        assert summary.stats["counters"]["processed"] == 9
        assert {d.name: (d.events, d.failed_polls) for d in summary.detectors} == {
            "edr": (7, 0),
            "ids": (2, 0),
        }
        assert pipeline.store.get_cursor("edr") == "7"
        assert pipeline.store.get_cursor("ids") == "2"
        assert len(pipeline.store.incidents()) == 9  # type: ignore[arg-type]
        assert progress[-1]["processed"] == 9
        # a second run finds nothing new
        again = pipeline.run(exit_when_idle=True, idle_interval=0.05)
        assert again.stats["counters"]["processed"] == 9
    assert len(recorder.seen) == 9  # notify for each (severity high, unknown host)
    assert "edr" in summary.table()


def test_a_failing_detector_backs_off_without_stopping_the_others() -> None:
    broken = FakeDetector(alerts("broken", 1), name="broken")
    broken.fail_polls = 1000
    healthy = FakeDetector(alerts("healthy", 3), name="healthy")
    pipeline, _ = build(broken, healthy)
    with pipeline:
        summary = _run_for(pipeline, 0.6)
    state = {d.name: d for d in summary.detectors}
    assert state["healthy"].events == 3
    assert state["broken"].failures >= 1
    assert state["broken"].last_error is not None
    assert state["broken"].backoff > 0
    assert state["broken"].polls < 10  # it waited instead of hammering


def _run_for(pipeline: Pipeline, seconds: float) -> fido.RunSummary:
    async def main() -> fido.RunSummary:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await pipeline.arun(stop=stop, idle_interval=0.05)

    return asyncio.run(main())


def test_arun_stops_on_request() -> None:
    pipeline, _ = build(FakeDetector(alerts("a", 2), name="a"))
    with pipeline:
        summary = _run_for(pipeline, 0.3)
    assert summary.reason == "stop"
    assert summary.stats["counters"]["processed"] == 2


def test_pending_events_and_unfinished_incidents_are_resumed() -> None:
    store = fido.MemoryStore()
    stored = alerts("late", 2)
    store.add_events(stored)  # a crash after storing, before processing
    half = fido.Incident(
        id="inc-half",
        created_at=stored[0].time,
        updated_at=stored[0].time,
        events=(event(id="half", host=Host(name="half")),),
    )
    store.save_incident(half, finished=False)  # a crash in the middle of processing
    pipeline, recorder = build(store=store)
    with pipeline:
        summary = pipeline.run(exit_when_idle=True, idle_interval=0.05)
        assert summary.resumed == 3
        assert store.pending_events() == []
        assert store.unfinished_incidents() == []
        finished = store.get_incident("inc-half")
        assert finished is not None
        assert finished.assessment.assessed
        assert finished.audit[-1].stage == "record"
    assert ("inc-half", "notify") in recorder.seen


def test_the_stored_cursor_is_used_after_a_restart() -> None:
    store = fido.MemoryStore()
    detector = FakeDetector(alerts("c", 4), name="c")
    store.set_cursor("c", "3")
    pipeline, _ = build(detector, store=store)
    with pipeline:
        summary = pipeline.run(exit_when_idle=True, idle_interval=0.05)
    assert summary.stats["counters"]["processed"] == 1


def test_run_stops_on_sigterm() -> None:
    detector = FakeDetector(alerts("s", 1), name="s")
    pipeline, _ = build(detector)

    def kill() -> None:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    with pipeline:
        threading.Thread(target=kill, daemon=True).start()
        summary = pipeline.run(idle_interval=0.05)
    assert summary.reason == "signal"
    assert summary.stats["counters"]["processed"] == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_run_refuses_a_closed_pipeline() -> None:
    pipeline, _ = build()
    pipeline.close()
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.run(exit_when_idle=True)


def test_detector_errors_are_reported_by_name() -> None:
    class Timid:
        name = "timid"
        interval = 0.05

        def parse(self, payload: object) -> list[fido.Event]:
            return []

        def poll(self, cursor: str | None) -> tuple[list[object], str | None]:
            raise DetectorError("the console said 503", adapter="timid")

    pipeline, _ = build(Timid())
    with pipeline:
        summary = _run_for(pipeline, 0.3)
    [state] = summary.detectors
    assert state.last_error == "the console said 503 (adapter=timid)"


def test_run_once_ends_while_a_detector_keeps_failing() -> None:
    broken = FakeDetector(alerts("broken", 1), name="broken")
    broken.fail_polls = 1000
    healthy = FakeDetector(alerts("healthy", 2), name="healthy")
    pipeline, _ = build(broken, healthy)
    with pipeline:
        summary = pipeline.run(exit_when_idle=True, idle_interval=0.05)
    assert summary.reason == "idle"
    assert summary.stats["counters"]["processed"] == 2
    assert summary.failed_detectors == ("broken",)
    assert not summary.ok
    assert "failing at the end: broken" in summary.table()


def test_a_failing_event_is_retried_with_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from fido import _run

    monkeypatch.setattr(_run, "RETRY_DELAY", 0.01)

    class Locked(fido.MemoryStore):
        """A store whose history query fails twice, as a locked database would."""

        failures = 2

        def history(self, **query: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database is locked")
            return super().history(**query)

    store = Locked()
    pipeline, recorder = build(FakeDetector(alerts("edr", 1), name="edr"), store=store)
    with pipeline:
        summary = pipeline.run(exit_when_idle=True, idle_interval=0.05)
    counters = summary.stats["counters"]
    assert (counters["processed"], counters["process_retries"]) == (1, 2)
    assert "process_failures" not in counters
    assert store.pending_events() == []
    assert len(recorder.seen) == 1


def test_an_event_that_keeps_failing_is_left_pending(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from fido import _run

    monkeypatch.setattr(_run, "RETRY_DELAY", 0.001)

    class Broken(fido.MemoryStore):
        def history(self, **query: Any) -> Any:
            raise sqlite3.OperationalError("database is locked")

    store = Broken()
    pipeline, _ = build(FakeDetector(alerts("edr", 1), name="edr"), store=store)
    with pipeline:
        summary = pipeline.run(exit_when_idle=True, idle_interval=0.05)
    counters = summary.stats["counters"]
    assert (counters["process_retries"], counters["process_failures"]) == (_run.RETRIES, 1)
    assert [e.id for e in store.pending_events()] == ["edr-0"]
    [given_up] = [r for r in caplog.records if "left pending" in r.getMessage()]
    assert given_up.event_id == "edr-0"  # type: ignore[attr-defined]
    assert "OperationalError" in given_up.getMessage()


def test_one_run_per_store(tmp_path: Path) -> None:
    path = tmp_path / "fido.sqlite3"
    first, _ = build(FakeDetector(alerts("edr", 1), name="edr"), store=fido.SQLiteStore(path))
    second, _ = build(FakeDetector(alerts("edr", 1), name="edr"), store=fido.SQLiteStore(path))
    stop = threading.Event()
    started = threading.Event()

    def progress(_: dict[str, Any]) -> None:
        started.set()

    def serve() -> None:
        async def main() -> None:
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            threading.Thread(
                target=lambda: (stop.wait(), loop.call_soon_threadsafe(done.set))
            ).start()
            await first.arun(stop=done, idle_interval=0.05, on_progress=progress)

        asyncio.run(main())

    with first, second:
        runner = threading.Thread(target=serve)
        runner.start()
        assert started.wait(10)
        with pytest.raises(fido.StoreBusy, match=r"another fido run holds .*: pid \d+ on ") as info:
            second.run(exit_when_idle=True, idle_interval=0.05)
        assert info.value.pid == os.getpid()
        assert info.value.holder == first._rt().owner
        # asked to, the second waits for the first to stop
        threading.Timer(0.3, stop.set).start()
        summary = second.run(exit_when_idle=True, idle_interval=0.05, wait_for_store=True)
        runner.join()
        assert summary.reason == "idle"
    assert summary.stats["counters"].get("processed", 0) == 0  # the first had done it


def test_a_copy_that_arrives_while_the_loop_holds_the_event_waits_for_it() -> None:
    store = fido.MemoryStore()
    same = event(
        detector="edr", id="twice", host=None, observables=[], severity=fido.Severity.CRITICAL
    )
    slow = StaticEnricher({fido.User("bdoe"): fido.UserContext(source="ad")}, delay=0.3)
    recorder = RecordingResponder()
    pipeline = Pipeline(
        detectors=[FakeDetector([same], name="edr")],
        enrichers=[slow],
        responders={"notify": [recorder], "ticket": [recorder]},
        store=store,
    )
    results: list[fido.Incident] = []

    def webhook() -> None:  # the same alert, by another way, once the loop stored it
        deadline = time.monotonic() + 10
        while not store.pending_events() and time.monotonic() < deadline:
            time.sleep(0.001)
        results.append(pipeline.process(same))

    with pipeline:
        other = threading.Thread(target=webhook)
        other.start()
        summary = pipeline.run(exit_when_idle=True, idle_interval=0.05)
        other.join()
        assert len(store.incidents()) == 1
    assert summary.stats["counters"]["duplicates"] == 1
    assert recorder.seen == [(results[0].id, "notify")]


def test_the_resume_path_leaves_events_another_live_pipeline_claims() -> None:
    store = fido.MemoryStore()
    busy, _ = build(store=store)
    with busy:
        # stored and claimed by a pipeline that is alive (working on it, say)
        store.add_event(event(id="theirs"), owner=busy._rt().owner, until=busy._rt().claim_until())
        pipeline, recorder = build(store=store)
        with pipeline:
            first = pipeline.run(exit_when_idle=True, idle_interval=0.05)
            assert first.resumed == 0
            assert [e.id for e in store.pending_events()] == ["theirs"]
    # closed now: its claim may be taken over
    pipeline, recorder = build(store=store)
    with pipeline:
        second = pipeline.run(exit_when_idle=True, idle_interval=0.05)
    assert second.resumed == 1
    assert store.pending_events() == []
    assert [action for _, action in recorder.seen] == ["notify", "ticket"]
