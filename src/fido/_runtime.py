"""What the pipeline's stages share: the services, the limits, and one unit of work."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from fido._incident import StageRecord

if TYPE_CHECKING:
    from fido._allowlist import Allowlist
    from fido._event import Event
    from fido._incident import Incident
    from fido._protocols import Enricher, Responder
    from fido._store import Store
    from fido.scoring._history import History
    from fido.scoring._policy import Policy

__all__ = ["Finished", "KeyedLocks", "Limits", "Runtime", "Work"]


class Finished(Exception):
    """Stop the stages for this event: the incident is final (a duplicate, a suppression).

    Not part of the error tree: nothing went wrong.
    """

    def __init__(self, incident: Incident, outcome: str, detail: str = "") -> None:
        super().__init__(outcome)
        self.incident = incident
        self.outcome = outcome
        self.detail = detail


@attrs.frozen(kw_only=True)
class Limits:
    """The pipeline's limits, each with a safe default.

    Attributes:
        enrich_timeout: Seconds one look-up may take (an enricher's own `timeout`
            attribute wins).
        respond_timeout: Seconds one responder may take for one action.
        max_lookups: Look-ups in flight at once, over all incidents.
        concurrency: Events processed at once by `process_many` and the run loop.
        workers: Threads for plain (non-async) adapter methods.
        max_observables: Observables one event may carry; more makes it invalid (an alert
            is attacker-controlled: it must not buy a thousand look-ups).
        history_lookback: How far back the scorer's history reaches.
        max_events: Events one incident may hold; further correlated events start a new
            incident (keeps each stored incident small).
        poll_timeout: Seconds one detector poll may take in the run loop.
    """

    enrich_timeout: float = 10.0
    respond_timeout: float = 30.0
    max_lookups: int = 32
    concurrency: int = 16
    workers: int = 16
    max_observables: int = 200
    history_lookback: timedelta = timedelta(days=30)
    max_events: int = 500
    poll_timeout: float = 60.0


class KeyedLocks:
    """An asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of `key`."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


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
    executor: ThreadPoolExecutor
    lookups: asyncio.Semaphore
    correlating: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    incidents: KeyedLocks = attrs.field(factory=KeyedLocks)
    inflight: dict[tuple[str, str], asyncio.Future[Incident]] = attrs.field(factory=dict)
    fresh: dict[str, Incident] = attrs.field(factory=dict)
    """Incidents created and not yet saved: correlation finds them before the store does."""
    counters: Counter[str] = attrs.field(factory=Counter)
    timings: dict[str, deque[float]] = attrs.field(factory=dict)
    origin: str = attrs.field(factory=lambda: secrets.token_hex(4))
    made: int = 0

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
    stored: bool = False
    """The run loop stored the event just now: it is new, and need not be added again."""
    event: Event | None = None
    incident_id: str | None = None
    incident: Incident | None = None
    history: History | None = None
    audit: list[StageRecord] = attrs.field(factory=list)
    future: asyncio.Future[Incident] | None = None

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
