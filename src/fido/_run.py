"""The run loop: poll every detector on its interval, process what arrives, stop cleanly.

Order of safety: a poll's events are stored (`add_events`, claimed by this pipeline)
before its cursor advances, and the cursor is persisted before the events are processed;
so a crash loses nothing (the events are pending, and resumed at the next start) and
repeats nothing (the store deduplicates, and responses recorded as started are never sent
again). One run loop per store: the loop holds the store's runner hold (`acquire_runner`,
when the store has it) for as long as it runs.
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
from fido._errors import FidoError, InvalidEvent, StoreBusy
from fido._event import Event
from fido._faults import crash_point
from fido._logging import get_logger
from fido._runtime import Elsewhere

if TYPE_CHECKING:
    from collections.abc import Callable

    from fido._incident import Incident
    from fido._pipeline import Pipeline
    from fido._protocols import Detector
    from fido._runtime import Runtime

__all__ = ["DetectorState", "RunSummary", "checked_item", "run_loop"]

log = get_logger("fido.run")
MAX_BACKOFF: Final = 300.0
RETRIES: Final = 5
"""Times the loop tries an event again after its processing failed (a locked database, a
store that went away), with back-off, before it leaves it pending for the next start."""
RETRY_DELAY: Final = 1.0
"""Seconds before the first retry of a failed event; doubled for each one after."""
RENEW_EVERY: Final = 10.0
"""Seconds between renewals of the store's runner hold."""


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
        reason: Why it stopped (`signal`, `idle`, `stop`, or `lost`: another run took
            the store over, after this one failed to renew its hold).
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

    @property
    def failed_detectors(self) -> tuple[str, ...]:
        """The detectors whose last poll failed (they were backing off when the run ended).

        Empty when every detector was healthy at the end: the command line's exit status
        goes by it.
        """
        return tuple(d.name for d in self.detectors if d.failures)

    @property
    def ok(self) -> bool:
        """Whether the run ended with every detector healthy and the store still held."""
        return not self.failed_detectors and self.reason != "lost"

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
        if self.failed_detectors:
            lines += ["", f"failing at the end: {', '.join(self.failed_detectors)}"]
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
        self.rt: Runtime = pipeline._rt()  # noqa: SLF001 - the loop is the pipeline's
        self.stop = stop
        self.exit_when_idle = exit_when_idle
        self.idle_interval = idle_interval
        concurrency = pipeline.limits.concurrency
        # (event, its reservation in rt.inflight when add_events stored it just now)
        self.queue: asyncio.Queue[tuple[Event, asyncio.Future[Incident | None] | None]] = (
            asyncio.Queue(maxsize=concurrency * 4)
        )
        self.states = {d.name: DetectorState(d.name) for d in pipeline.detectors}
        self.busy = 0
        self.reason = "stop"

    async def _store(self, detector: Detector, items: list[Any], cursor: str | None) -> int:
        rt = self.rt
        state = self.states[detector.name]
        events: list[Event] = []
        for item in items:
            checked = self.pipeline.checked(detector, item)
            if isinstance(checked, DeadLetter):
                state.dead_letters += 1
                await self.pipeline._dead_letter(checked)  # noqa: SLF001
            else:
                events.append(checked)
        added = (
            list(
                await _portal.maybe_await(
                    rt.store.add_events(events, owner=rt.owner, until=rt.claim_until())
                )
            )
            if events
            else []
        )
        # Reserve the new ones at once: a copy that arrives by `process()` waits for them.
        reserved: list[asyncio.Future[Incident | None] | None] = []
        for event, new in zip(events, added, strict=True):
            future = None
            if new and event.key not in rt.inflight:
                future = asyncio.get_running_loop().create_future()
                rt.inflight[event.key] = future
            reserved.append(future)
        crash_point("stored")
        try:
            await _portal.maybe_await(rt.store.set_cursor(detector.name, cursor))
            for event, future in zip(events, reserved, strict=True):
                await self.queue.put((event, future))
        except BaseException:
            for event, future in zip(events, reserved, strict=True):
                self.abandon(event, future)
            raise
        state.events += len(events)
        return len(items)

    def abandon(self, event: Event, future: asyncio.Future[Incident | None] | None) -> None:
        """Give up a reservation: those waiting for the event process it themselves."""
        if future is None:
            return
        if self.rt.inflight.get(event.key) is future:
            del self.rt.inflight[event.key]
        if not future.done():
            future.set_result(None)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def poller(self, detector: Detector) -> None:
        state = self.states[detector.name]
        interval = float(getattr(detector, "interval", None) or self.idle_interval)
        while not self.stop.is_set():
            state.polls += 1
            try:
                cursor = await _portal.maybe_await(self.rt.store.get_cursor(detector.name))
                items, after = await _portal.call(
                    detector.poll,
                    cursor,
                    timeout=self.pipeline.limits.poll_timeout,
                    executor=self.rt.executor,
                    owner=f"poll.{detector.name}",
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
                    else _portal.describe(exc)
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
            event, reserved = await self.queue.get()
            self.busy += 1
            try:
                await self._attempt(event, reserved)
            finally:
                self.busy -= 1
                self.queue.task_done()

    async def _attempt(
        self, event: Event, reserved: asyncio.Future[Incident | None] | None
    ) -> None:
        """Process an event; when that fails, again with back-off, then leave it pending."""
        counters = self.rt.counters
        delay = RETRY_DELAY
        for attempt in range(RETRIES + 1):
            try:
                await self.pipeline._process(event, reserved=reserved)  # noqa: SLF001
            except InvalidEvent as exc:  # kept as a dead letter
                log.warning("event %r is invalid: %s", event.id, exc, extra={"event_id": event.id})
                return
            except Exception as exc:
                reserved = None  # released by the failed attempt
                shown = str(exc) if isinstance(exc, FidoError) else _portal.describe(exc)
                if attempt == RETRIES or self.stop.is_set():
                    counters["process_failures"] += 1
                    log.error(
                        "event %r failed %d times, left pending for the next start: %s",
                        event.id,
                        attempt + 1,
                        shown,
                        extra={"event_id": event.id},
                    )
                    return
                counters["process_retries"] += 1
                log.warning(
                    "event %r failed (attempt %d of %d), again in %.1f s: %s",
                    event.id,
                    attempt + 1,
                    RETRIES + 1,
                    delay,
                    shown,
                    extra={"event_id": event.id},
                )
                await self._sleep(delay)
                if self.stop.is_set():
                    return  # left pending for the next start
                delay = min(delay * 2, MAX_BACKOFF)
            else:
                return

    async def watch_idle(self) -> None:
        while not self.stop.is_set():
            await self._sleep(0.05)
            # A detector that keeps failing is backing off: it will not bring more now.
            settled = all(s.idle or s.failures for s in self.states.values())
            if settled and self.queue.empty() and self.busy == 0:
                self.reason = "idle"
                self.stop.set()

    async def hold(self, renew: Callable[[], Any]) -> None:
        """Renew the store's runner hold; if another run has it now, stop."""
        while not self.stop.is_set():
            await self._sleep(RENEW_EVERY)
            if self.stop.is_set():
                return
            try:
                holder = await _portal.maybe_await(renew())
            except Exception as exc:  # a store that went away: the next renewal tells
                log.warning("renewing the runner hold failed: %s", exc)
                continue
            if holder is not None:
                log.error("another run took the store over (%s): stopping", holder[0])
                self.reason = "lost"
                self.stop.set()


def checked_item(detector: Detector, item: object, now: datetime) -> Event | DeadLetter:
    """What a detector's parse or poll gave: an event, or a dead letter.

    An item that is neither an `Event` nor a `DeadLetter` becomes a dead letter.
    """
    if isinstance(item, Event | DeadLetter):
        return item
    return DeadLetter(
        reason=f"{detector.name} returned {type(item).__name__}, not an Event",
        at=now,
        detector=detector.name,
        payload=repr(item),
    )


def _busy(store: object, holder: tuple[str, datetime]) -> StoreBusy:
    owner, since = holder
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    pid = int(pid_text) if pid_text.isdigit() else None
    who = f"pid {pid} on {host}" if pid is not None else owner
    return StoreBusy(
        f"another fido run holds {store!r}: {who}, since {since:%Y-%m-%d %H:%M:%S} UTC;"
        " stop it first, or ask this run to wait for it",
        holder=owner,
        host=host or None,
        pid=pid,
        since=since.isoformat(),
    )


async def _acquire(
    pipeline: Pipeline, stop: asyncio.Event, started: datetime, *, wait: bool
) -> Callable[[], Any] | None:
    """Take the store's runner hold (if the store has one): the renewal, or None.

    Raises:
        StoreBusy: Another run holds the store, and `wait` is False.
    """
    store = pipeline.store
    acquire = getattr(store, "acquire_runner", None)
    if not callable(acquire):
        return None
    owner = pipeline._rt().owner  # noqa: SLF001

    def renew() -> Any:
        return acquire(owner, started)

    told = False
    while True:
        holder = await _portal.maybe_await(renew())
        if holder is None:
            return renew
        if not wait:
            raise _busy(store, holder)
        if not told:
            log.warning("%s; waiting", _busy(store, holder).message)
            told = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if stop.is_set():
            return None


async def _release(pipeline: Pipeline) -> None:
    release = getattr(pipeline.store, "release_runner", None)
    if callable(release):
        try:
            await _portal.maybe_await(release(pipeline._rt().owner))  # noqa: SLF001
        except Exception as exc:
            log.warning("releasing the runner hold failed: %s", exc)


async def _resume(pipeline: Pipeline) -> int:
    """Finish what a previous run left: unfinished incidents, then pending events.

    Events another live pipeline claims (a webhook service on the same store, working on
    them now) are left to it.
    """
    store = pipeline.store
    resumed = 0
    for incident in await _portal.maybe_await(store.unfinished_incidents()):
        await pipeline._finish(incident.id)  # noqa: SLF001
        resumed += 1
    pending = list(await _portal.maybe_await(store.pending_events()))
    if not pending:
        return resumed
    log.info("resuming %d events a previous run stored but did not process", len(pending))
    gate = asyncio.Semaphore(pipeline.limits.concurrency)

    async def one(event: Event) -> int:
        async with gate:
            try:
                await pipeline._process(event, resume=True)  # noqa: SLF001
            except Elsewhere as elsewhere:
                log.info("event %r is in the hands of %s", event.id, elsewhere)
                return 0
            except Exception as exc:
                shown = str(exc) if isinstance(exc, FidoError) else _portal.describe(exc)
                log.warning(
                    "resuming event %r failed: %s", event.id, shown, extra={"event_id": event.id}
                )
                return 0
            return 1

    return resumed + sum(await asyncio.gather(*(one(e) for e in pending)))


async def run_loop(
    pipeline: Pipeline,
    stop: asyncio.Event,
    *,
    exit_when_idle: bool = False,
    idle_interval: float = 5.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    progress_every: float = 0.5,
    wait_for_store: bool = False,
) -> RunSummary:
    """Run on the pipeline's loop until `stop` is set (or, if asked, until idle).

    Raises:
        StoreBusy: Another run holds the store (and `wait_for_store` is False).
    """
    started = datetime.now(UTC)
    loop = _Loop(pipeline, stop, exit_when_idle=exit_when_idle, idle_interval=idle_interval)
    renew = await _acquire(pipeline, stop, started, wait=wait_for_store)
    resumed = 0
    try:
        if not stop.is_set():
            resumed = await _resume(pipeline)
            await _serve(pipeline, loop, renew, on_progress, progress_every)
    finally:
        if renew is not None:
            await _release(pipeline)
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


async def _serve(
    pipeline: Pipeline,
    loop: _Loop,
    renew: Callable[[], Any] | None,
    on_progress: Callable[[dict[str, Any]], None] | None,
    progress_every: float,
) -> None:
    stop = loop.stop
    workers = [asyncio.create_task(loop.worker()) for _ in range(pipeline.limits.concurrency)]
    pollers = [asyncio.create_task(loop.poller(d)) for d in pipeline.detectors]
    extra = [asyncio.create_task(loop.watch_idle())] if loop.exit_when_idle else []
    if renew is not None:
        extra.append(asyncio.create_task(loop.hold(renew)))

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
                try:
                    await pipeline._expire()  # noqa: SLF001
                except Exception as exc:  # the next pass tries again
                    log.warning("expiring approvals failed: %s", exc)
    finally:
        if loop.reason == "stop" and getattr(stop, "signal", None):
            loop.reason = "signal"
        for task in (*pollers, *extra, reporter):
            task.cancel()
        await asyncio.gather(*pollers, *extra, reporter, return_exceptions=True)
        # finish what is in flight; what is still queued stays stored as pending
        while not loop.queue.empty():
            event, future = loop.queue.get_nowait()
            loop.abandon(event, future)
            loop.queue.task_done()
        while loop.busy:
            await asyncio.sleep(0.01)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def snapshot(pipeline: Pipeline, loop: _Loop) -> dict[str, Any]:
    """What the progress line shows (the counters only: `stats()` sorts every timing)."""
    counters = pipeline._rt().counters  # noqa: SLF001 - on fido's loop, like the run loop
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
