"""`Pipeline`: from an alert to a decided, responded, recorded incident."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import signal
import statistics
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, overload

from fido import _approvals, _portal
from fido._deadletter import DeadLetter
from fido._errors import (
    ConflictError,
    DetectorError,
    FidoError,
    InvalidEvent,
)
from fido._incident import Approval, Incident
from fido._logging import EVENT_ID, INCIDENT_ID, get_logger
from fido._memory import MemoryStore
from fido._run import RunSummary, checked_item, run_loop
from fido._runtime import Finished, Limits, Runtime, Work, enlist, owner_id, retire
from fido._stages import AFTER, BEFORE, carry_over, record

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
    from pathlib import Path

    from fido._allowlist import Allowlist
    from fido._event import Event
    from fido._protocols import Detector, Enricher, Responder
    from fido._store import Store
    from fido.scoring._policy import Policy

__all__ = ["Pipeline"]

T = TypeVar("T")

log = get_logger("fido.pipeline")

MAX_CONFLICTS: Final = _approvals.MAX_CONFLICTS
DRAIN_TIMEOUT: Final = 30.0
"""Seconds `close()` waits for the work in flight to finish before cancelling it."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _release(work: Work, rt: Runtime, incident: Incident | None) -> None:
    """Resolve this event's entry in `Runtime.inflight`: its incident, or None (try again)."""
    future = work.future
    if future is None:
        return
    key = work.event.key if work.event is not None else work.item.key
    if rt.inflight.get(key) is future:
        del rt.inflight[key]
    if not future.done():
        future.set_result(incident)


class Pipeline:
    """Alerts in; enriched, scored, decided, answered and recorded incidents out.

    `process(event)` runs the stages (validate, dedup, allowlist, correlate, enrich,
    score, decide, respond, record) and returns the `Incident`. It works the same from a
    plain script and from inside a running event loop (a notebook): fido does its I/O on
    an event loop of its own, in a background thread, and never touches yours. In async
    code, `await pipeline.aprocess(event)`.

    Args:
        detectors: Detectors, for `process_payload` and the run loop.
        enrichers: Enrichers; each subject goes to every one that accepts it.
        responders: Responders by action name (`{"notify": [slack], "ticket": [jira]}`).
        policy: The scoring policy (default `Policy.default()`).
        allowlist: Known-good indicators, hosts and users.
        store: Where incidents live (default: a new `MemoryStore`).
        limits: Timeouts, concurrency and size limits (default `Limits()`).
        clock: Where "now" comes from (default: the system clock, in UTC). Tests pass a
            fake.

    Raises:
        ConfigurationError: Two adapters of one kind share a name.
    """

    def __init__(
        self,
        *,
        detectors: Iterable[Detector] = (),
        enrichers: Iterable[Enricher[Any]] = (),
        responders: Mapping[str, Sequence[Responder]] | None = None,
        policy: Policy | None = None,
        allowlist: Allowlist | None = None,
        store: Store | None = None,
        limits: Limits | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from fido._errors import ConfigurationError
        from fido.scoring._policy import Policy

        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self.enrichers: tuple[Enricher[Any], ...] = tuple(enrichers)
        self.responders: dict[str, tuple[Responder, ...]] = {
            action: tuple(items) for action, items in (responders or {}).items()
        }
        for kind, names in (
            ("detector", [d.name for d in self.detectors]),
            ("enricher", [e.name for e in self.enrichers]),
        ):
            if len(set(names)) < len(names):
                raise ConfigurationError(f"two {kind}s share a name: {sorted(names)}")
        self.policy: Policy = policy or Policy.default()
        self.allowlist = allowlist
        self.store: Store = store if store is not None else MemoryStore()
        self.limits = limits or Limits()
        self._clock = clock or _utcnow
        self._portal = _portal.Portal()
        self._runtime: Runtime | None = None
        self._pools: tuple[_portal.Workers, ...] = ()
        self._closed = False

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> Pipeline:
        """Build the pipeline a configuration file describes (see `fido.load_config`).

        Keyword arguments override what the file says (`store=`, `clock=`, ...).

        Raises:
            ConfigurationError: naming the file, the key and the line.
        """
        from fido._config import load_config  # config imports the pipeline

        pipeline: Pipeline = load_config(path).build(**overrides)
        return pipeline

    def __repr__(self) -> str:
        return (
            f"Pipeline(detectors={[d.name for d in self.detectors]}, "
            f"enrichers={[e.name for e in self.enrichers]}, "
            f"responders={ {a: [r.name for r in rs] for a, rs in self.responders.items()} }, "
            f"policy={self.policy.name!r})"
        )

    # -- plumbing -----------------------------------------------------------------------

    def _sync(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("the pipeline is closed")
        return self._portal.run(coroutine)

    async def _async(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("the pipeline is closed")
        return await self._portal.arun(coroutine)

    def _rt(self) -> Runtime:
        """The runtime, made on first use on the portal's loop (its locks belong there)."""
        if self._runtime is None:
            origin = secrets.token_hex(4)
            self._pools = (
                _portal.Workers(self.limits.workers, "fido-worker"),
                _portal.Workers(self.limits.workers, "fido-respond"),
            )
            self._runtime = Runtime(
                store=self.store,
                policy=self.policy,
                allowlist=self.allowlist,
                enrichers=self.enrichers,
                responders=self.responders,
                clock=self._clock,
                limits=self.limits,
                executor=self._pools[0],
                respond_pool=self._pools[1],
                lookups=asyncio.Semaphore(self.limits.max_lookups),
                owner=owner_id(origin),
                origin=origin,
            )
            enlist(self._runtime.owner)
        return self._runtime

    # -- processing ---------------------------------------------------------------------

    def process(self, event: Event | Mapping[str, Any]) -> Incident:
        """Process one event (or its dict form) and return its incident.

        Replaying an event already processed returns the stored incident and does
        nothing else (no second response).

        Raises:
            InvalidEvent: The event is invalid; it was kept as a dead letter.
        """
        return self._sync(self._process(event))

    async def aprocess(self, event: Event | Mapping[str, Any]) -> Incident:
        """The async twin of `process`."""
        return await self._async(self._process(event))

    @overload
    def process_many(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        return_exceptions: Literal[False] = False,
    ) -> list[Incident]: ...

    @overload
    def process_many(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        return_exceptions: Literal[True],
    ) -> list[Incident | FidoError]: ...

    def process_many(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        return_exceptions: bool = False,
    ) -> list[Incident] | list[Incident | FidoError]:
        """Process events with bounded concurrency (`limits.concurrency`).

        Results come in the order of the input. Every event is processed even when some
        are invalid: with `return_exceptions=False` the first error is raised after the
        whole batch is done; with True, errors take their event's place in the list.
        """
        items = list(events)
        return self._sync(self._process_many(items, return_exceptions=return_exceptions))

    @overload
    async def aprocess_many(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        return_exceptions: Literal[False] = False,
    ) -> list[Incident]: ...

    @overload
    async def aprocess_many(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        return_exceptions: Literal[True],
    ) -> list[Incident | FidoError]: ...

    async def aprocess_many(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        return_exceptions: bool = False,
    ) -> list[Incident] | list[Incident | FidoError]:
        """The async twin of `process_many`."""
        items = list(events)
        return await self._async(self._process_many(items, return_exceptions=return_exceptions))

    def process_payload(self, detector: str | Detector, payload: Any) -> list[Incident]:
        """Parse a payload you already hold (a webhook body) with a detector, then process it.

        Items the detector cannot parse become dead letters; the valid events are
        processed (results in the detector's order).

        Raises:
            DetectorError: The detector is unknown, or the payload as a whole is not its
                format (the payload is kept as a dead letter).
        """
        return self._sync(self._process_payload(detector, payload))

    async def aprocess_payload(self, detector: str | Detector, payload: Any) -> list[Incident]:
        """The async twin of `process_payload`."""
        return await self._async(self._process_payload(detector, payload))

    async def _process(
        self,
        item: Event | Mapping[str, Any],
        *,
        reserved: asyncio.Future[Incident | None] | None = None,
        resume: bool = False,
    ) -> Incident:
        """Process one alert.

        Args:
            item: The alert.
            reserved: The run loop stored and claimed the event just now, and made its
                entry in `Runtime.inflight` (copies that arrive meanwhile wait for it).
            resume: The resume path at the start of a run: an event another live pipeline
                claims is left to it (`Elsewhere` is raised).
        """
        rt = self._rt()
        work = Work(item, rt.clock(), future=reserved, stored=reserved is not None, resume=resume)
        event_token = None
        duplicate = False
        try:
            for stage in BEFORE:
                with work.stage(stage.name, rt.clock) as note:
                    note.detail = await stage(work, rt)
                if event_token is None and work.event is not None:
                    event_token = EVENT_ID.set(work.event.id)
            incident = await self._locked(work, rt)
        except Finished as done:
            incident = done.incident
            duplicate = done.outcome == "duplicate"
            if done.outcome == "suppressed":
                try:
                    incident = await record(work, rt, incident)
                except BaseException:
                    _release(work, rt, None)
                    raise
        except BaseException:
            if work.incident is not None:
                rt.fresh.pop(work.incident.id, None)
            # Those waiting for this event try again themselves: they never get our error
            # (a CancelledError least of all).
            _release(work, rt, None)
            raise
        finally:
            if event_token is not None:
                EVENT_ID.reset(event_token)
        _release(work, rt, incident)
        if not duplicate:
            rt.counters["processed"] += 1
        return incident

    async def _locked(self, work: Work, rt: Runtime) -> Incident:
        """The stages after correlation, under the lock of the incident they work on.

        The incident is read once its lock is held (journeys waiting for a busy incident
        hold no copy of it, and the copy read is the latest this pipeline knows). When
        the incident correlate chose is full, a new one is started, and the journey
        moves to its lock.
        """
        assert work.incident_id is not None  # noqa: S101 - correlate set it
        incident_id = work.incident_id
        while True:
            async with rt.incidents.hold(incident_id):
                incident = await self._attach(work, rt)
                if incident.id == incident_id:
                    token = INCIDENT_ID.set(incident.id)
                    try:
                        incident = await self._reload(work, rt, incident)
                        return await self._after(work, rt, incident)
                    finally:
                        INCIDENT_ID.reset(token)
            incident_id = work.incident_id = incident.id  # the new one, under its own lock

    async def _after(self, work: Work, rt: Runtime, incident: Incident) -> Incident:
        """The stages after correlation, and the record.

        Again on the latest incident when a save finds that another process saved it
        meanwhile (at most `MAX_CONFLICTS` times).
        """
        for attempt in range(MAX_CONFLICTS + 1):
            mark = len(work.audit)
            try:
                for stage in AFTER:
                    with work.stage(stage.name, rt.clock) as note:
                        note.detail = await stage(work, rt)
                return await record(work, rt, incident)
            except ConflictError as conflict:
                if attempt == MAX_CONFLICTS:
                    raise
                del work.audit[mark:]
                incident = await self._reloaded(work, rt, incident, conflict)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reloaded(
        self, work: Work, rt: Runtime, incident: Incident, conflict: ConflictError
    ) -> Incident:
        """The latest stored incident, with what this journey found and did added to it."""
        rt.counters["conflicts"] += 1
        latest = await _portal.maybe_await(rt.store.get_incident(incident.id))
        if latest is None:
            raise conflict
        rt.fresh.pop(incident.id, None)
        latest = carry_over(latest, work)
        work.incident = latest
        with work.stage("reload", rt.clock) as note:
            note.outcome = "conflict"
            note.detail = (
                f"saved elsewhere meanwhile (revision {conflict.found}, not {conflict.expected}):"
                " reloaded, and the stages after correlation run again"
            )
        log.info("%s was saved elsewhere meanwhile: reloaded", incident.id)
        return latest

    async def _finish(self, incident_id: str) -> Incident | None:
        """Finish an incident a crash left unfinished: the stages after correlation, again.

        Look-ups already made are not repeated, and responses recorded as started are not
        sent again (their outcome is unknown).
        """
        rt = self._rt()
        token = INCIDENT_ID.set(incident_id)
        try:
            async with rt.incidents.hold(incident_id):
                incident = await _portal.maybe_await(rt.store.get_incident(incident_id))
                if incident is None:
                    return None
                work = Work(None, rt.clock())
                work.incident = incident
                incident = await self._after(work, rt, incident)
                rt.counters["resumed"] += 1
                return incident
        finally:
            INCIDENT_ID.reset(token)

    async def _attach(self, work: Work, rt: Runtime) -> Incident:
        """The incident correlate chose, or a new one when that one is full."""
        assert work.incident_id is not None  # noqa: S101 - correlate set it
        assert work.event is not None  # noqa: S101 - validate set it
        incident = rt.fresh.get(work.incident_id)
        if incident is None:
            incident = await _portal.maybe_await(rt.store.get_incident(work.incident_id))
        if incident is None or len(incident.events) >= rt.limits.max_events:
            incident = Incident(
                id=rt.new_incident_id(work.now),
                created_at=work.now,
                updated_at=work.now,
                events=(work.event,),
            )
            rt.fresh[incident.id] = incident
        return incident

    async def _reload(self, work: Work, rt: Runtime, incident: Incident) -> Incident:
        """Under the incident's lock: its latest state, with this event in it.

        The latest state is the copy `_attach` read under the lock, or the incident as
        started but not yet saved. Another process's save meanwhile is caught by the
        revision, as always.
        """
        assert work.event is not None  # noqa: S101 - validate set it
        latest = rt.fresh.get(incident.id) or incident
        if all(e.key != work.event.key for e in latest.events):
            latest.events = (*latest.events, work.event)
        work.incident = latest
        return latest

    async def _process_many(
        self, items: list[Event | Mapping[str, Any]], *, return_exceptions: bool
    ) -> list[Any]:
        gate = asyncio.Semaphore(self.limits.concurrency)

        async def one(item: Event | Mapping[str, Any]) -> Incident | FidoError:
            async with gate:
                try:
                    return await self._process(item)
                except FidoError as exc:
                    return exc

        results = await asyncio.gather(*(one(item) for item in items))
        if not return_exceptions:
            for result in results:
                if isinstance(result, FidoError):
                    raise result
        return results

    async def _process_payload(self, detector: str | Detector, payload: Any) -> list[Incident]:
        rt = self._rt()
        chosen = self._detector(detector)
        try:
            items = list(await _portal.call(chosen.parse, payload, executor=rt.executor))
        except (DetectorError, InvalidEvent) as exc:
            await self._dead_letter(
                DeadLetter.from_error(payload, exc, at=rt.clock(), detector=chosen.name)
            )
            raise
        except Exception as exc:
            await self._dead_letter(
                DeadLetter.from_error(payload, exc, at=rt.clock(), detector=chosen.name)
            )
            raise DetectorError(
                f"parse failed: {type(exc).__name__}: {exc}", adapter=chosen.name
            ) from exc
        events: list[Event] = []
        for item in items:
            if isinstance(item, DeadLetter):
                await self._dead_letter(item)
            else:
                events.append(item)
        results = await self._process_many(list(events), return_exceptions=True)
        return [r for r in results if isinstance(r, Incident)]

    def _detector(self, detector: str | Detector) -> Detector:
        if not isinstance(detector, str):
            return detector
        for candidate in self.detectors:
            if candidate.name == detector:
                return candidate
        raise DetectorError("no such detector in this pipeline", adapter=detector)

    def checked(self, detector: Detector, item: object) -> Event | DeadLetter:
        """What a detector's poll gave, as an event or a dead letter (`checked_item`)."""
        return checked_item(detector, item, self._rt().clock())

    async def _dead_letter(self, letter: DeadLetter) -> None:
        rt = self._rt()
        rt.counters["dead_lettered"] += 1
        log.warning(
            "dead letter from %s: %s",
            letter.detector,
            letter.reason,
            extra={"event_id": letter.event_id},
        )
        await _portal.maybe_await(rt.store.add_dead_letter(letter))

    # -- the run loop ---------------------------------------------------------------------

    def run(
        self,
        *,
        exit_when_idle: bool = False,
        idle_interval: float = 5.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        handle_signals: bool = True,
        wait_for_store: bool = False,
    ) -> RunSummary:
        """Poll every detector on its interval and process what arrives, until stopped.

        First finishes what a previous run left unfinished (pending events, incidents cut
        off by a crash). Each detector is polled with its persisted cursor, every
        `interval` seconds while it has nothing new (its `interval` attribute, else
        `idle_interval`) and at once while it has; a detector that fails backs off
        (doubling its wait up to 5 minutes) and is reported, without stopping the others.
        Events are processed with bounded concurrency (`limits.concurrency`).

        On SIGINT or SIGTERM (when `handle_signals` and called from the main thread) the
        run stops polling, finishes the events in flight, and returns; events polled but
        not started stay stored and are processed at the next start.

        Args:
            exit_when_idle: Return once every detector has nothing new and the work is
                done (for batch jobs and demos).
            idle_interval: Seconds between polls for detectors without an `interval`.
            on_progress: Called about twice a second with counters, on fido's thread.
            handle_signals: Install SIGINT and SIGTERM handlers for the run.
            wait_for_store: When another run holds the store, wait for it to stop
                (until this run is stopped) rather than raise `StoreBusy`.

        One run per store: a second run on the same store (another process, or another
        pipeline) raises `StoreBusy` naming the first (its pid, host, and since when),
        unless `wait_for_store`. A run that crashed never blocks the next one.

        With `exit_when_idle`, a detector that keeps failing counts as settled (it is
        backing off); the summary's `failed_detectors` names it.

        Returns:
            What the run did.

        Raises:
            StoreBusy: Another run holds the store.
        """
        stop_holder: list[asyncio.Event] = []
        ready = threading.Event()

        async def main() -> RunSummary:
            stop = asyncio.Event()
            stop_holder.append(stop)
            ready.set()
            return await run_loop(
                self,
                stop,
                exit_when_idle=exit_when_idle,
                idle_interval=idle_interval,
                on_progress=on_progress,
                wait_for_store=wait_for_store,
            )

        if self._closed:
            raise RuntimeError("the pipeline is closed")
        future = self._portal.submit(main())
        ready.wait()
        stop = stop_holder[0]
        loop = self._portal.loop

        def request_stop(signum: int, _frame: object) -> None:
            setattr(stop, "signal", signum)  # noqa: B010 - tells the summary why it stopped
            loop.call_soon_threadsafe(stop.set)

        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, request_stop)
        try:
            while True:
                try:
                    return future.result(timeout=0.2)
                except concurrent.futures.TimeoutError:
                    continue
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if not future.done():
                loop.call_soon_threadsafe(stop.set)

    async def arun(
        self,
        *,
        stop: asyncio.Event | None = None,
        exit_when_idle: bool = False,
        idle_interval: float = 5.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        wait_for_store: bool = False,
    ) -> RunSummary:
        """The async twin of `run`; it stops when `stop` (an event of your loop) is set."""
        done = threading.Event()
        holder: list[asyncio.Event] = []
        caller = asyncio.get_running_loop()

        async def main() -> RunSummary:
            inner = asyncio.Event()
            holder.append(inner)
            done.set()
            return await run_loop(
                self,
                inner,
                exit_when_idle=exit_when_idle,
                idle_interval=idle_interval,
                on_progress=on_progress,
                wait_for_store=wait_for_store,
            )

        task = caller.create_task(self._async(main()))
        if stop is not None:

            async def relay() -> None:
                await stop.wait()
                await asyncio.to_thread(done.wait)
                self._portal.loop.call_soon_threadsafe(holder[0].set)

            relay_task = caller.create_task(relay())
            try:
                return await task
            finally:
                relay_task.cancel()
        return await task

    # -- approvals ------------------------------------------------------------------------

    def approve(
        self, incident_id: str, action: str, *, by: str, note: str | None = None
    ) -> Incident:
        """Approve a pending action and carry it out; return the incident.

        Raises:
            ApprovalError: No such pending approval, it was answered already, or it
                expired (the expiry is recorded).
        """
        return self._sync(self._answer(incident_id, action, by, note, approve=True))

    async def aapprove(
        self, incident_id: str, action: str, *, by: str, note: str | None = None
    ) -> Incident:
        """The async twin of `approve`."""
        return await self._async(self._answer(incident_id, action, by, note, approve=True))

    def reject(
        self, incident_id: str, action: str, *, by: str, note: str | None = None
    ) -> Incident:
        """Refuse a pending action; the refusal is recorded.

        Raises:
            ApprovalError: No such pending approval, it was answered already, or it
                expired.
        """
        return self._sync(self._answer(incident_id, action, by, note, approve=False))

    async def areject(
        self, incident_id: str, action: str, *, by: str, note: str | None = None
    ) -> Incident:
        """The async twin of `reject`."""
        return await self._async(self._answer(incident_id, action, by, note, approve=False))

    def pending_approvals(self) -> list[tuple[Incident, Approval]]:
        """Approvals still waiting, oldest first (overdue ones are expired first)."""
        return self._sync(self._pending())

    async def apending_approvals(self) -> list[tuple[Incident, Approval]]:
        """The async twin of `pending_approvals`."""
        return await self._async(self._pending())

    def expire_approvals(self) -> int:
        """Record the expiry of every overdue approval; return how many expired."""
        return self._sync(self._expire())

    async def aexpire_approvals(self) -> int:
        """The async twin of `expire_approvals`."""
        return await self._async(self._expire())

    async def _answer(
        self, incident_id: str, action: str, by: str, note: str | None, *, approve: bool
    ) -> Incident:
        return await _approvals.answer(self._rt(), incident_id, action, by, note, approve=approve)

    async def _expire(self) -> int:
        return await _approvals.expire(self._rt())

    async def _pending(self) -> list[tuple[Incident, Approval]]:
        return await _approvals.pending(self._rt())

    # -- reading ------------------------------------------------------------------------

    def incident(self, incident_id: str) -> Incident | None:
        """One stored incident, or None."""
        return self._sync(_portal.maybe_await(self.store.get_incident(incident_id)))

    def dead_letters(self, *, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, newest first."""
        return list(self._sync(_portal.maybe_await(self.store.dead_letters(limit=limit))))

    def stats(self) -> dict[str, Any]:
        """Counters and timings since the pipeline started, and what adapters report.

        `counters`: processed (events that made or joined an incident), duplicates
        (replays, answered with the stored incident), suppressed, dead_lettered, lookups,
        lookup_failures, responses, response_failures, response_unknown (responders that
        did not answer in time: they may have acted, and are not called again), resumed
        (incidents a crash left unfinished), resumed_events (events stored earlier and
        processed now), waited_elsewhere (copies of an alert another pipeline was working
        on), conflicts (saves refused because another process saved the incident first;
        the work was done again on its latest state), process_retries and
        process_failures (the run loop's attempts at events that failed). `timings`: per stage
        (`stage.enrich`), enricher (`enrich.<name>`) and responder (`respond.<name>`), the
        count and the median and 99th percentile in seconds. `adapters`: for each adapter
        that has a `stats()` method, what it returns (cache hit rate, retries, breaker
        state, ...).
        """
        rt = self._runtime
        adapters: dict[str, Any] = {}
        named: list[Detector | Enricher[Any] | Responder] = [
            *self.detectors,
            *self.enrichers,
            *(r for rs in self.responders.values() for r in rs),
        ]
        for adapter in named:
            report = getattr(adapter, "stats", None)
            if callable(report) and adapter.name not in adapters:
                try:
                    adapters[adapter.name] = report()
                except Exception:  # a broken report must not break stats
                    log.exception("stats() of %s failed", adapter.name)
        if rt is None:
            return {"counters": {}, "timings": {}, "adapters": adapters}
        timings = {}
        # Copies first: fido's loop keeps appending while another thread reads.
        for name, samples in sorted(dict(rt.timings).items()):
            ordered = sorted(samples.copy())
            timings[name] = {
                "count": len(ordered),
                "p50": statistics.median(ordered),
                "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            }
        return {
            "counters": dict(sorted(rt.counters.items())),
            "timings": timings,
            "adapters": adapters,
        }

    def export_metrics(self, meter_provider: Any = None) -> None:
        """Export `stats()` as OpenTelemetry metrics (off unless called; the `otel` extra).

        Registers observable instruments (`fido.events`, `fido.duration.p50`,
        `fido.duration.p99`, `fido.adapter`) on `meter_provider`, or on the global one
        that the application or `opentelemetry-instrument` configures; they read
        `stats()` when the SDK collects. See "Operating fido" in the docs.

        Raises:
            ConfigurationError: OpenTelemetry is not installed.
        """
        from fido._otel import export_metrics  # an optional dependency

        export_metrics(self.stats, meter_provider)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every adapter (their `aclose` or `close`), the store and fido's loop.

        Events in flight are given `DRAIN_TIMEOUT` seconds to finish first (their
        responses are not cut off halfway); what is still running then is cancelled.
        """
        if self._closed:
            return
        try:
            self._portal.run(self._shutdown())
        finally:
            self._closed = True
            self._portal.close()
            self._retire()

    async def aclose(self) -> None:
        """The async twin of `close`."""
        if self._closed:
            return
        try:
            await self._portal.arun(self._shutdown())
        finally:
            self._closed = True
            await asyncio.to_thread(self._portal.close)
            self._retire()

    def _retire(self) -> None:
        for pool in self._pools:
            pool.shutdown()
        if self._runtime is not None:
            retire(self._runtime.owner)

    async def _shutdown(self) -> None:
        rt = self._runtime
        if rt is not None:
            busy = [f for f in rt.inflight.values() if not f.done()]
            if busy:
                log.info("closing: waiting for %d events in flight", len(busy))
                await asyncio.wait(busy, timeout=DRAIN_TIMEOUT)
        await self._close_adapters()

    async def _close_adapters(self) -> None:
        seen: set[int] = set()
        owners: list[object] = [
            *self.detectors,
            *self.enrichers,
            *(r for rs in self.responders.values() for r in rs),
            self.store,
        ]
        for owner in owners:
            if id(owner) in seen:
                continue
            seen.add(id(owner))
            closer = getattr(owner, "aclose", None) or getattr(owner, "close", None)
            if callable(closer):
                try:
                    await _portal.call(closer)
                except Exception:
                    log.exception("closing %r failed", type(owner).__name__)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
