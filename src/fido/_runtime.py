"""What the pipeline's stages share: the services, the limits, and one unit of work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

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
