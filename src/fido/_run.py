"""The run loop: poll every detector on its interval, process what arrives, stop cleanly.

Order of safety: a poll's events are stored (`add_events`) before its cursor advances,
and the cursor is persisted before the events are processed; so a crash loses nothing
(the events are pending, and resumed at the next start) and repeats nothing (the store
deduplicates, and responses recorded as started are never sent again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from fido import _portal
from fido._deadletter import DeadLetter
from fido._errors import FidoError
from fido._event import Event
from fido._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fido._pipeline import Pipeline
    from fido._protocols import Detector

__all__ = ["DetectorState", "RunSummary", "run_loop"]

log = get_logger("fido.run")
MAX_BACKOFF: Final = 300.0


@attrs.define
class DetectorState:
    """How one detector is doing in the run loop.

    Attributes:
        name: The detector's name.
        polls: Polls made.
        events: Events it produced.
        dead_letters: Items it could not turn into events.
        failures: Failed polls in a row (0 when the last one worked).
        failed_polls: Failed polls in all.
        last_error: The last poll error, if any.
        backoff: Seconds it waits before the next poll after failures.
        idle: Whether its last poll found nothing new.
    """

    name: str
    polls: int = 0
    events: int = 0
    dead_letters: int = 0
    failures: int = 0
    failed_polls: int = 0
    last_error: str | None = None
    backoff: float = 0.0
    idle: bool = False


@attrs.frozen(kw_only=True)
class RunSummary:
    """What a run did.

    Attributes:
        started_at: When it started.
        stopped_at: When it stopped.
        reason: Why it stopped (`signal`, `idle`, `stop`).
        resumed: Events and incidents a previous run left unfinished, finished now.
        detectors: Each detector's state at the end.
        stats: `pipeline.stats()` at the end.
    """

    started_at: datetime
    stopped_at: datetime
    reason: str
    resumed: int
    detectors: tuple[DetectorState, ...]
    stats: dict[str, Any] = attrs.field(hash=False)

    def table(self) -> str:
        """A plain-text summary table for people."""
        counters = self.stats.get("counters", {})
        seconds = (self.stopped_at - self.started_at).total_seconds()
        lines = [
            (
                f"Run of {seconds:.1f} s, stopped by {self.reason}; "
                f"{self.resumed} unfinished items resumed."
            ),
            "",
            f"{'counter':<22}{'value':>10}",
        ]
        lines += [f"{name:<22}{value:>10}" for name, value in counters.items()]
        if self.detectors:
            lines += [
                "",
                f"{'detector':<20}{'polls':>7}{'events':>8}{'dead':>6}{'failed':>8}  last error",
            ]
            lines += [
                f"{d.name:<20}{d.polls:>7}{d.events:>8}{d.dead_letters:>6}"
                f"{d.failed_polls:>8}  {d.last_error or '-'}"
                for d in self.detectors
            ]
        timings = self.stats.get("timings", {})
        if timings:
            lines += ["", f"{'timing':<28}{'count':>8}{'p50 ms':>10}{'p99 ms':>10}"]
            lines += [
                f"{name:<28}{t['count']:>8}{t['p50'] * 1000:>10.2f}{t['p99'] * 1000:>10.2f}"
                for name, t in timings.items()
            ]
        adapters = self.stats.get("adapters", {})
        for name, values in adapters.items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            lines.append(f"{name}: {shown}")
        return "\n".join(lines)


class _Loop:
    def __init__(
        self, pipeline: Pipeline, stop: asyncio.Event, *, exit_when_idle: bool, idle_interval: float
    ) -> None:
        self.pipeline = pipeline
        self.stop = stop
        self.exit_when_idle = exit_when_idle
        self.idle_interval = idle_interval
        concurrency = pipeline.limits.concurrency
        # (event, whether add_events stored it just now: then it cannot be a duplicate)
        self.queue: asyncio.Queue[tuple[Event, bool]] = asyncio.Queue(maxsize=concurrency * 4)
        self.states = {d.name: DetectorState(d.name) for d in pipeline.detectors}
        self.busy = 0
        self.reason = "stop"

    async def _store(self, detector: Detector, items: list[Any], cursor: str | None) -> int:
        store = self.pipeline.store
        state = self.states[detector.name]
        events = [i for i in items if isinstance(i, Event)]
        for item in items:
            if isinstance(item, DeadLetter):
                state.dead_letters += 1
                await self.pipeline._dead_letter(item)  # noqa: SLF001 - the loop is the pipeline's
            elif not isinstance(item, Event):
                state.dead_letters += 1
                await self.pipeline._dead_letter(  # noqa: SLF001
                    DeadLetter(
                        reason=f"poll returned {type(item).__name__}, not an Event",
                        at=datetime.now(UTC),
                        detector=detector.name,
                        payload=repr(item),
                    )
                )
        added = list(await _portal.maybe_await(store.add_events(events))) if events else []
        await _portal.maybe_await(store.set_cursor(detector.name, cursor))
        for event, new in zip(events, added, strict=True):
            await self.queue.put((event, new))
        state.events += len(events)
        return len(items)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def poller(self, detector: Detector) -> None:
        state = self.states[detector.name]
        interval = float(getattr(detector, "interval", None) or self.idle_interval)
        rt = self.pipeline._rt()  # noqa: SLF001
        while not self.stop.is_set():
            cursor = await _portal.maybe_await(self.pipeline.store.get_cursor(detector.name))
            state.polls += 1
            try:
                items, after = await _portal.call(
                    detector.poll,
                    cursor,
                    timeout=self.pipeline.limits.poll_timeout,
                    executor=rt.executor,
                )
                count = await self._store(detector, list(items), after)
            except Exception as exc:
                state.failures += 1
                state.failed_polls += 1
                state.last_error = (
                    f"timed out after {self.pipeline.limits.poll_timeout:g} s"
                    if isinstance(exc, TimeoutError)
                    else str(exc)
                    if isinstance(exc, FidoError)
                    else f"{type(exc).__name__}: {exc}"
                )[:300]
                state.backoff = min(MAX_BACKOFF, interval * 2 ** min(state.failures, 16))
                state.idle = False
                log.warning(
                    "detector %s failed (%d in a row), next poll in %.0f s: %s",
                    detector.name,
                    state.failures,
                    state.backoff,
                    state.last_error,
                )
                await self._sleep(state.backoff)
                continue
            state.failures, state.backoff = 0, 0.0
            state.idle = count == 0
            if state.idle:
                await self._sleep(interval)

    async def worker(self) -> None:
        while True:
            event, new = await self.queue.get()
            self.busy += 1
            try:
                await self.pipeline._process(event, stored=new)  # noqa: SLF001
            except FidoError as exc:
                log.warning("event %r failed: %s", event.id, exc)
            except Exception:
                log.exception("event %r failed unexpectedly", event.id)
            finally:
                self.busy -= 1
                self.queue.task_done()

    async def watch_idle(self) -> None:
        while not self.stop.is_set():
            await self._sleep(0.05)
            settled = all(s.idle for s in self.states.values()) and self.queue.empty()
            if settled and self.busy == 0:
                self.reason = "idle"
                self.stop.set()


async def run_loop(
    pipeline: Pipeline,
    stop: asyncio.Event,
    *,
    exit_when_idle: bool = False,
    idle_interval: float = 5.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    progress_every: float = 0.5,
) -> RunSummary:
    """Run on the pipeline's loop until `stop` is set (or, if asked, until idle)."""
    started = datetime.now(UTC)
    store = pipeline.store
    resumed = 0
    for incident in await _portal.maybe_await(store.unfinished_incidents()):
        await pipeline._finish(incident.id)  # noqa: SLF001
        resumed += 1
    pending: list[Event | Mapping[str, Any]] = list(
        await _portal.maybe_await(store.pending_events())
    )
    if pending:
        log.info("resuming %d events a previous run stored but did not process", len(pending))
        await pipeline._process_many(pending, return_exceptions=True)  # noqa: SLF001
        resumed += len(pending)
    loop = _Loop(pipeline, stop, exit_when_idle=exit_when_idle, idle_interval=idle_interval)
    workers = [asyncio.create_task(loop.worker()) for _ in range(pipeline.limits.concurrency)]
    pollers = [asyncio.create_task(loop.poller(d)) for d in pipeline.detectors]
    extra = [asyncio.create_task(loop.watch_idle())] if exit_when_idle else []

    async def report() -> None:
        while not stop.is_set():
            if on_progress is not None:
                on_progress(snapshot(pipeline, loop))
            await loop._sleep(progress_every)  # noqa: SLF001

    reporter = asyncio.create_task(report())
    expire_every, last_expiry = 30.0, time.monotonic()
    try:
        while not stop.is_set():
            await loop._sleep(1.0)  # noqa: SLF001
            if time.monotonic() - last_expiry >= expire_every:
                last_expiry = time.monotonic()
                await pipeline._expire()  # noqa: SLF001
    finally:
        if loop.reason == "stop" and getattr(stop, "signal", None):
            loop.reason = "signal"
        for task in (*pollers, *extra, reporter):
            task.cancel()
        await asyncio.gather(*pollers, *extra, reporter, return_exceptions=True)
        # finish what is in flight; what is still queued stays stored as pending
        while loop.busy:
            await asyncio.sleep(0.01)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if on_progress is not None:
        on_progress(snapshot(pipeline, loop))
    return RunSummary(
        started_at=started,
        stopped_at=datetime.now(UTC),
        reason=loop.reason,
        resumed=resumed,
        detectors=tuple(attrs.evolve(s) for s in loop.states.values()),
        stats=pipeline.stats(),
    )


def snapshot(pipeline: Pipeline, loop: _Loop) -> dict[str, Any]:
    """What the progress line shows."""
    counters = pipeline.stats()["counters"]
    return {
        "processed": counters.get("processed", 0),
        "duplicates": counters.get("duplicates", 0),
        "suppressed": counters.get("suppressed", 0),
        "dead_lettered": counters.get("dead_lettered", 0),
        "responses": counters.get("responses", 0),
        "queued": loop.queue.qsize(),
        "in_flight": loop.busy,
        "failing": sorted(s.name for s in loop.states.values() if s.failures),
    }
