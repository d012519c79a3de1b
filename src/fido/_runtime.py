"""What the pipeline's stages share: the services, the limits, and one unit of work."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from fido._digest import Digests
from fido._errors import ConfigurationError
from fido._incident import StageRecord

if TYPE_CHECKING:
    from fido._allowlist import Allowlist
    from fido._event import Event
    from fido._findings import Finding
    from fido._incident import (
        Approval,
        EmptyLookup,
        EnrichmentFailure,
        Incident,
        ResponseRecord,
    )
    from fido._portal import Workers
    from fido._protocols import Enricher, Responder
    from fido._store import Store
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = [
    "Elsewhere",
    "Finished",
    "KeyedLocks",
    "Limits",
    "Runtime",
    "Saver",
    "Work",
    "alive",
    "enlist",
    "owner_id",
    "retire",
]

_HOST: Final = socket.gethostname()
_LIVE: set[str] = set()
"""The owner ids of this process's pipelines that are not closed."""


def owner_id(token: str) -> str:
    """A pipeline's id in claims and runner holds: `host/pid/token`."""
    return f"{_HOST}/{os.getpid()}/{token}"


def enlist(owner: str) -> None:
    """A pipeline of this process is at work under `owner`."""
    _LIVE.add(owner)


def retire(owner: str) -> None:
    """The pipeline `owner` of this process is closed: its claims may be taken over."""
    _LIVE.discard(owner)


def alive(owner: str) -> bool:
    """Whether the pipeline `owner` may still be at work (False only when known gone).

    Known gone: a pipeline of this process that was closed, or a process of this host
    that no longer exists. A pipeline on another host is taken to be alive (its claims
    lapse with time).
    """
    host, _, rest = owner.partition("/")
    pid_text, _, _ = rest.partition("/")
    if host != _HOST or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return owner in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and is someone else's
        return True
    return True


class Elsewhere(Exception):
    """The event is claimed by another live pipeline: for the resume path, not ours to do."""


class Finished(Exception):
    """Stop the stages for this event: the incident is final (a duplicate, a suppression).

    Not part of the error tree: nothing went wrong.
    """

    def __init__(self, incident: Incident, outcome: str, detail: str = "") -> None:
        super().__init__(outcome)
        self.incident = incident
        self.outcome = outcome
        self.detail = detail


def _positive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A limit is a positive number (an integer where one is expected): else it hangs."""
    kind = str(attribute.type)  # the annotation's text (postponed annotations)
    if kind == "timedelta":
        good = isinstance(value, timedelta) and value >= timedelta(0)
        expected = "a duration of zero or more"
    else:
        kinds: tuple[type, ...] = (int,) if kind == "int" else (int, float)
        good = (
            isinstance(value, kinds)
            and not isinstance(value, bool)
            and 0 < float(value) < float("inf")  # type: ignore[arg-type] # refuses NaN too
        )
        expected = "a positive integer" if kind == "int" else "a positive number of seconds"
    if not good:
        raise ConfigurationError(
            f"limits.{attribute.name} must be {expected}, not {value!r}",
            key=f"limits.{attribute.name}",
        )


@attrs.frozen(kw_only=True)
class Limits:
    """The pipeline's limits, each with a safe default.

    Every limit is checked when `Limits` is made: a zero, negative or non-numeric limit
    would hang or break the pipeline later, so it raises `ConfigurationError` at once.

    Attributes:
        enrich_timeout: Seconds one look-up may take once it runs (an enricher's own
            `timeout` attribute wins). A plain enricher waits at most as long again for a
            free worker thread, else the look-up is recorded as skipped.
        respond_timeout: Seconds one responder may take for one action once it runs. A
            responder that does not answer in time is recorded as `unknown` (it may have
            acted) and is not called again.
        max_lookups: Look-ups in flight at once, over all incidents.
        concurrency: Events processed at once by `process_many` and the run loop.
        workers: Threads for plain (non-async) adapter methods, in each of two pools: one
            for enrichers and detectors, one for responders (so a hung enricher cannot
            delay a response). One adapter may hold at most half of a pool's threads.
        max_observables: Observables one event may carry; more makes it invalid (an alert
            is attacker-controlled: it must not buy a thousand look-ups).
        history_lookback: How far back the scorer's history reaches.
        max_events: Events one incident may hold; further correlated events start a new
            incident (keeps each stored incident small).
        poll_timeout: Seconds one detector poll may take in the run loop.
        claim_timeout: Seconds an event stays claimed by the pipeline that stored it.
            Another pipeline (another process on the same store) that gets the same alert
            meanwhile waits for its incident; after a crash, the claim lapses after this
            long (at once when the claimant's process is known to be gone).
    """

    enrich_timeout: float = attrs.field(default=10.0, validator=_positive)
    respond_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_lookups: int = attrs.field(default=32, validator=_positive)
    concurrency: int = attrs.field(default=16, validator=_positive)
    workers: int = attrs.field(default=16, validator=_positive)
    max_observables: int = attrs.field(default=200, validator=_positive)
    history_lookback: timedelta = attrs.field(default=timedelta(days=30), validator=_positive)
    max_events: int = attrs.field(default=500, validator=_positive)
    poll_timeout: float = attrs.field(default=60.0, validator=_positive)
    claim_timeout: float = attrs.field(default=300.0, validator=_positive)


class KeyedLocks:
    """An asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        """Hold the lock of `key`; the value says whether it had to wait for it.

        One that did not wait got it without letting the loop run anything else.
        """
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        waited = lock.locked()
        try:
            async with lock:
                yield waited
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


_Save = tuple["Incident", bool, "int | None", "asyncio.Future[int | None]"]


class Saver:
    """Incident saves, committed together when the store can (a group commit).

    A store with `save_incidents` (see `BatchStore`) gets every save asked for in one
    turn of the event loop in one transaction: each journey still waits until its save is
    committed (an event's incident is durable before the event is reported done, and a
    STARTED record before its responder is called), but several journeys share the cost
    of a commit. With any other store, each save is its own call.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        batch = getattr(store, "save_incidents", None)
        self._batch: Callable[..., Any] | None = batch if callable(batch) else None
        self._queue: list[_Save] = []
        self._scheduled = False
        self.batches = 0
        """Transactions made (for the benchmarks: saves per commit)."""

    async def save(self, incident: Incident, *, finished: bool, expected: int | None) -> Any:
        """Save `incident` (as `Store.save_incident`); return what the store returns.

        Raises:
            ConflictError: The stored revision is not `expected`; nothing was written.
        """
        if self._batch is None:
            result = self.store.save_incident(incident, finished=finished, expected=expected)
            return await result if inspect.isawaitable(result) else result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self._queue.append((incident, finished, expected, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._later)
        return await future

    def _later(self) -> None:
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        # A journey cancelled before its save was made is not saved (as before a call).
        queue = [item for item in self._queue if not item[3].done()]
        self._queue = []
        if not queue:
            return
        assert self._batch is not None  # noqa: S101 - only queued with a batch method
        try:
            results = self._batch([(i, f, e) for i, f, e, _ in queue])
        except Exception as exc:
            self._one_by_one(queue, exc)
            return
        if inspect.isawaitable(results):
            task = asyncio.ensure_future(self._settle(queue, results))
            task.add_done_callback(_retrieved)
            return
        self._resolve(queue, results)

    async def _settle(self, queue: list[_Save], results: Any) -> None:
        try:
            done = await results
        except Exception as exc:
            self._one_by_one(queue, exc)
            return
        self._resolve(queue, done)

    def _resolve(self, queue: list[_Save], results: Sequence[Any]) -> None:
        self.batches += 1
        for (_, _, _, future), result in zip(queue, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _one_by_one(self, queue: list[_Save], error: Exception) -> None:
        """A batch failed as a whole: each save alone, so that one bad save fails alone."""
        if len(queue) == 1:
            if not queue[0][3].done():
                queue[0][3].set_exception(error)
            return
        for incident, finished, expected, future in queue:
            task = asyncio.ensure_future(
                self._alone(incident, finished=finished, expected=expected), loop=future.get_loop()
            )
            task.add_done_callback(functools.partial(_relay, future=future))

    async def _alone(self, incident: Incident, *, finished: bool, expected: int | None) -> Any:
        self.batches += 1
        result = self.store.save_incident(incident, finished=finished, expected=expected)
        return await result if inspect.isawaitable(result) else result


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _relay(done: asyncio.Future[Any], *, future: asyncio.Future[Any]) -> None:
    if future.done():
        _retrieved(done)
    elif done.cancelled():
        future.cancel()
    elif done.exception() is not None:
        future.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        future.set_result(done.result())


@attrs.define(kw_only=True)
class Runtime:
    """The services every stage may use. One per pipeline; lives on the portal's loop."""

    store: Store
    policy: Policy
    allowlist: Allowlist | None
    enrichers: Sequence[Enricher[Any]]
    responders: Mapping[str, Sequence[Responder]]
    clock: Callable[[], datetime]
    limits: Limits
    executor: Workers
    """Threads for plain enricher, detector and store-closing methods."""
    respond_pool: Workers
    """Threads for plain responders: a hung enricher never delays a response."""
    lookups: asyncio.Semaphore
    owner: str
    """This pipeline's id in claims and runner holds (`owner_id`)."""
    correlating: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    incidents: KeyedLocks = attrs.field(factory=KeyedLocks)
    inflight: dict[tuple[str, str], asyncio.Future[Incident | None]] = attrs.field(factory=dict)
    """Events being processed: a copy waits for the first (None: it gave up, try again)."""
    fresh: dict[str, Incident] = attrs.field(factory=dict)
    """Incidents created and not yet saved: correlation finds them before the store does."""
    saver: Saver = attrs.field(
        default=attrs.Factory(lambda self: Saver(self.store), takes_self=True)
    )
    """Where the stages save incidents (a group commit, where the store has one)."""
    digests: Digests = attrs.field(factory=Digests)
    """The indexed state of recent incidents (see `fido._digest`)."""
    counters: Counter[str] = attrs.field(factory=Counter)
    timings: dict[str, deque[float]] = attrs.field(factory=dict)
    origin: str = attrs.field(factory=lambda: secrets.token_hex(4))
    made: int = 0

    def claim_until(self) -> datetime:
        """Until when a claim made now lasts."""
        return self.clock() + timedelta(seconds=self.limits.claim_timeout)

    def new_incident_id(self, now: datetime) -> str:
        """A new incident id: by day, unique (`inc-20261128-3f9a1c-000007`).

        A random part drawn once per pipeline keeps processes apart; a counter keeps the
        incidents of one pipeline apart (and is cheaper than drawing each time).
        """
        self.made += 1
        return f"inc-{now:%Y%m%d}-{self.origin}-{self.made:06d}"

    def time(self, name: str, seconds: float) -> None:
        """Keep a timing (the last 10,000 per name) for `pipeline.stats()`."""
        samples = self.timings.get(name)
        if samples is None:
            samples = self.timings[name] = deque(maxlen=10_000)
        samples.append(seconds)


@attrs.define
class Work:
    """One event on its way through the stages."""

    item: Any
    now: datetime
    future: asyncio.Future[Incident | None] | None = None
    """This event's entry in `Runtime.inflight` once dedup made it (or the run loop did)."""
    stored: bool = False
    """The run loop stored and claimed the event just now, and made `future`."""
    resume: bool = False
    """The resume path: an event another live pipeline claims is left to it (`Elsewhere`)."""
    event: Event | None = None
    incident_id: str | None = None
    incident: Incident | None = None
    history: History | None = None
    audit: list[StageRecord] = attrs.field(factory=list)
    outcome: str | None = None
    """Set by a stage to give its audit record another outcome than `ok`."""
    found: list[Finding] = attrs.field(factory=list)
    failed: list[EnrichmentFailure] = attrs.field(factory=list)
    empty: list[EmptyLookup] = attrs.field(factory=list)
    """What this journey's look-ups gave: carried over if the incident must be reloaded."""
    outcomes: dict[str, ResponseRecord] = attrs.field(factory=dict)
    """The responses this journey made, by key: carried over likewise."""
    attempted: set[str] = attrs.field(factory=set)
    """The response keys this journey called (or decided not to): never twice in one."""
    answer: Approval | None = None
    """The answer an approval journey gave (applied again if the incident is reloaded)."""

    def stage(self, name: str, clock: Callable[[], datetime]) -> _Timed:
        """Time a stage and add its audit record; the body sets `.outcome` and `.detail`."""
        return _Timed(self, name, clock)


class _Timed:
    """The context manager of `Work.stage` (a class: cheaper than a generator)."""

    __slots__ = ("begin", "clock", "detail", "name", "outcome", "started", "work")

    def __init__(self, work: Work, name: str, clock: Callable[[], datetime]) -> None:
        self.work = work
        self.name = name
        self.clock = clock
        self.outcome = "ok"
        self.detail = ""

    def __enter__(self) -> _Timed:
        self.started = self.clock()
        self.begin = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, Finished):
            self.outcome, self.detail = exc.outcome, exc.detail
        elif exc is not None:
            self.outcome, self.detail = "failed", f"{type(exc).__name__}: {exc}"[:500]
        elif self.work.outcome is not None:
            self.outcome, self.work.outcome = self.work.outcome, None
        event = self.work.event
        self.work.audit.append(
            StageRecord(
                stage=self.name,
                started_at=self.started,
                duration=timedelta(seconds=time.perf_counter() - self.begin),
                outcome=self.outcome,
                detail=self.detail,
                event_id=None if event is None else event.id,
            )
        )
