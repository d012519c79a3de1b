"""The run loop: polling, cursors, back-off, resuming, stopping."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import pytest

import fido
from fido import DetectorError, Host, Pipeline, Verdict
from fido.testing import FakeDetector, RecordingResponder, StaticEnricher
from tests.factories import SHA256, event


def build(*detectors: Any, **extra: Any) -> tuple[Pipeline, RecordingResponder]:
    recorder = RecordingResponder()
    pipeline = Pipeline(
        detectors=detectors,
        enrichers=[StaticEnricher({SHA256: Verdict.MALICIOUS}, name="feed")],
        responders={"notify": [recorder], "ticket": [recorder]},
        **extra,
    )
    return pipeline, recorder


def alerts(prefix: str, count: int) -> list[fido.Event]:
    return [
        event(id=f"{prefix}-{n}", host=Host(name=f"{prefix}-host-{n}"), observables=[])
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
    broken = FakeDetector(alerts("bad", 1), name="broken")
    broken.fail_polls = 1000
    healthy = FakeDetector(alerts("ok", 3), name="healthy")
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
