"""What stands between a look-up and a remote service: rate limits, a breaker, a cache.

- `RateLimit` and `TokenBucket`: look-ups per second, minute or day, as the plan allows.
  Callers wait for a token, within what they may wait (beyond it they are refused at
  once, `Saturated`); a caller that stops waiting gives its token back. A bucket is
  shared by every enricher of one (adapter, credential) in the process (`shared_bucket`),
  with the strictest of their limits, so two pipelines with one VirusTotal key stay
  within its quota together. A server's `Retry-After` pauses the
  whole bucket, and its 429 answers teach the bucket a rate (`TokenBucket.admit`):
  lowered on each 429, raised slowly while requests succeed, so that a quota the plan
  does not state is kept without look-ups running out of retries.
- `Breaker`: after `failures` consecutive failures, look-ups fail fast for `cooldown`
  seconds (the incident records "skipped: circuit open"); then one trial look-up decides.
- `LookupCache`: answers (findings, and "not found") kept for a time that depends on the
  verdict, keyed by (adapter, a fingerprint of the credential, subject); concurrent
  look-ups of one subject share one request (single flight).

All three are safe to use from several threads and event loops: their state is guarded
by a `threading.Lock`, and waiting is `asyncio.sleep` in the caller's loop.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs
from cachetools import TLRUCache

from fido._errors import ConfigurationError
from fido._findings import Reputation
from fido.scoring._toml import parse_duration

__all__ = [
    "DEFAULT_TTLS",
    "Booking",
    "Breaker",
    "CacheEntry",
    "LookupCache",
    "RateLimit",
    "Saturated",
    "TokenBucket",
    "fingerprint",
    "seconds",
    "shared_bucket",
]

_PER: Final = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


def seconds(value: Any, what: str) -> float:
    """Seconds from a number or a duration text (`"30s"`, `"4h"`).

    Raises:
        ConfigurationError: Neither, or negative.
    """
    if isinstance(value, bool):
        raise ConfigurationError(f"{what}: expected seconds or a duration, not {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = parse_duration(value).total_seconds()
        except ValueError as exc:
            raise ConfigurationError(f"{what}: {exc}") from None
    else:
        raise ConfigurationError(f"{what}: expected seconds or a duration, not {value!r}")
    if number < 0 or math.isnan(number) or math.isinf(number):
        raise ConfigurationError(f"{what}: expected a positive duration, not {value!r}")
    return number


def fingerprint(secret: str | None) -> str:
    """A short, one-way fingerprint of a credential (cache and bucket keys; never the key)."""
    if not secret:
        return "-"
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# -- rate limits ---------------------------------------------------------------------------


@attrs.frozen
class RateLimit:
    """Look-ups allowed per period, for example 4 a minute and 500 a day.

    Attributes:
        limits: (count, period in seconds) pairs; every one of them applies.
    """

    limits: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, value: Any) -> RateLimit | None:
        """From `"4/min"`, `["4/min", "500/day"]`, or `{per_minute = 4, per_day = 500}`.

        `None`, `"none"` and `"unlimited"` give None (no limit).

        Raises:
            ConfigurationError: Something else.
        """
        if value is None or (isinstance(value, str) and value.lower() in ("none", "unlimited")):
            return None
        if isinstance(value, RateLimit):
            return value
        texts: list[tuple[float, float]] = []
        items: list[Any]
        if isinstance(value, Mapping):
            items = [f"{count}/{key.removeprefix('per_')}" for key, count in value.items()]
        elif isinstance(value, str):
            items = [value]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ConfigurationError(f"rate: expected such as '4/min', not {value!r}")
        for item in items:
            match = _RATE.match(str(item).lower())
            if match is None or match.group(2) not in _PER or float(match.group(1)) <= 0:
                raise ConfigurationError(
                    f"rate: expected a count per second, minute, hour or day such as "
                    f"'4/min' or '500/day', not {item!r}"
                )
            texts.append((float(match.group(1)), _PER[match.group(2)]))
        return cls(tuple(texts)) if texts else None

    def __str__(self) -> str:
        names = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "day"}
        return ", ".join(f"{c:g}/{names.get(p, f'{p:g}s')}" for c, p in self.limits)


class Saturated(Exception):
    """A wait for the rate limit (or a pause) longer than the caller may wait.

    Attributes:
        wait: Seconds until the caller's turn would have come.
        paused: Whether a pause (a server's `Retry-After`, a spent quota) is the reason,
            rather than the limit's own pace.
        until: When the turn would have come (Unix time, for messages).
    """

    def __init__(self, wait: float, *, paused: bool) -> None:
        self.wait = wait
        self.paused = paused
        self.until = time.time() + wait
        super().__init__(self.reason())

    def reason(self) -> str:
        """`quota exhausted until T` (a pause) or `rate limit, next slot in N s`."""
        if self.paused:
            moment = datetime.fromtimestamp(self.until, UTC).replace(microsecond=0)
            return f"quota exhausted until {moment.isoformat().replace('+00:00', 'Z')}"
        return f"rate limit, next slot in {math.ceil(self.wait)} s"


@attrs.frozen
class Booking:
    """A token reserved by `TokenBucket.book`: when it may be used, and the wait till then."""

    start: float
    wait: float


class TokenBucket:
    """`count` tokens per `period` for each limit; a caller takes one or waits its turn.

    A token taken at `t` comes back at `t + period`, so no window of `period` seconds
    ever holds more than `count` look-ups: 4 a minute means 4 in any minute, and 500 a
    day at most 500 in any day. (A bucket that refills continuously would let up to
    `2 * count - 1` through in one period: 7 in the first minute of a 4-a-minute plan,
    and the service would answer 429.) A fractional count (`"1.5/s"`) becomes one token
    per `period / count`. Reservations may lie in the future: each caller is told how
    long to wait, so waiting callers are served in the order they came, at the allowed
    rate. A caller that gives up waiting (cancelled by its time limit) gives its
    reservation back (`release`), and one that may not wait as long as its turn would
    take is refused at once (`Saturated`), booking nothing.
    """

    _MAX_TOKENS: Final = 100_000
    """Tokens remembered per limit; above it the period shrinks in proportion."""
    _GAP_TRIALS: Final = 256
    """Earlier times tried for a reservation where released ones left gaps."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = RateLimit(())
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: list[tuple[int, float]] = []
        """Per limit: (tokens, the period in which they may all be used)."""
        self._horizon = 0.0
        """The longest period: older uses no longer matter."""
        self._booked: list[float] = []
        """When tokens were, or will be, used (sorted), the last `_horizon` seconds'."""
        self._gaps = False
        """Whether a released reservation left a hole among those still to come."""
        self.tighten(limit)
        self._paused_until = 0.0
        self.waits = 0
        self.waited = 0.0
        self.refused = 0
        """Callers refused because their turn lay beyond what they could wait."""
        self.released = 0
        """Reservations given back by callers that stopped waiting."""
        # what the service's 429 answers taught (see `admit`)
        self.learned: float | None = None
        """Requests a second learned from the service's 429 answers (None: none yet)."""
        self._step = 0.0  # requests a second the learned rate gains each second
        self._next = 0.0  # when the next request may be sent at the learned rate
        self._calm_until = -math.inf  # no other decrease before: one a congestion
        self._answered: deque[float] = deque()  # when answers came, the last second's
        self._sent: deque[float] = deque()  # when requests went, the last second's
        self._pauses = 0
        self.throttles = 0
        """429 answers reported (`throttled`)."""
        self.slowdowns = 0
        """Times the learned rate was lowered."""

    def tighten(self, limit: RateLimit) -> None:
        """Keep `limit` too, on top of the limits kept already (every one applies).

        Two enrichers with one credential and different rates share a bucket that keeps
        both: the strictest of them decides in every window.
        """
        with self._lock:
            pairs = list(self.limit.limits)
            pairs += [pair for pair in limit.limits if pair not in pairs]
            self.limit = RateLimit(tuple(pairs))
            self._windows = []
            for count, period in pairs:
                tokens = min(max(1, math.floor(count)), self._MAX_TOKENS)
                self._windows.append((tokens, period * tokens / count))
            self._horizon = max((period for _, period in self._windows), default=0.0)

    def reserve(self) -> float:
        """Take a token now; return the seconds to wait before using it."""
        return self.book().wait

    def book(self, max_wait: float | None = None) -> Booking:
        """Take a token; say when it may be used.

        Args:
            max_wait: Seconds the caller may wait at most (None: any).

        Raises:
            Saturated: The turn would come later than `max_wait`; nothing is booked.
        """
        with self._lock:
            now = self._clock()
            booked = self._booked
            self._forget(now)
            earliest = max(now, self._paused_until)
            start = earliest
            for tokens, period in self._windows:
                if len(booked) >= tokens:  # the tokens-th latest use must be a period ago
                    start = max(start, booked[-tokens] + period)
            if self._gaps:
                start = self._fill(earliest, start)
            wait = start - now
            if max_wait is not None and wait > max_wait:
                self.refused += 1
                paused = self._paused_until - now >= wait - 1e-9 and self._paused_until > now
                raise Saturated(wait, paused=paused)
            if not booked or start >= booked[-1]:
                booked.append(start)
            else:
                bisect.insort(booked, start)
            if wait > 0:
                self.waits += 1
                self.waited += wait
            return Booking(start, wait)

    def release(self, booking: Booking) -> None:
        """Give back a reservation that will not be used (its caller stopped waiting)."""
        with self._lock:
            booked = self._booked
            index = bisect.bisect_left(booked, booking.start)
            if index == len(booked) or booked[index] != booking.start:
                return  # forgotten already
            del booked[index]
            self.released += 1
            if index < len(booked):  # reservations after it: a hole they will not fill
                self._gaps = True

    def _forget(self, now: float) -> None:
        """Drop the uses that no window can see any more (in batches: cheap)."""
        booked = self._booked
        old = bisect.bisect_right(booked, now - self._horizon)
        if old and (old >= 1024 or 2 * old >= len(booked)):
            del booked[:old]
        if self._gaps and (not booked or booked[-1] <= now):
            self._gaps = False  # every reservation is in the past: no hole to come

    def _fill(self, earliest: float, latest: float) -> float:
        """The first time from `earliest` a token is free, before `latest` if a hole is."""
        booked = self._booked
        candidates = {earliest}
        for _, period in self._windows:
            low = bisect.bisect_right(booked, earliest - period)
            candidates.update(t + period for t in booked[low:] if earliest < t + period < latest)
        for trial, moment in enumerate(sorted(candidates)):
            if trial >= self._GAP_TRIALS or moment >= latest:
                break
            if self._fits(moment):
                return moment
        return latest

    def _fits(self, moment: float) -> bool:
        """Whether one more use at `moment` keeps every window within its count."""
        booked = self._booked
        for tokens, period in self._windows:
            low = bisect.bisect_right(booked, moment - period)
            high = bisect.bisect_left(booked, moment + period)
            starts = [t for t in booked[low:high] if t <= moment]
            for begin in [*starts, moment]:  # each window [begin, begin + period) with it
                inside = bisect.bisect_left(booked, begin + period, low, high)
                if inside - bisect.bisect_left(booked, begin, low, high) >= tokens:
                    return False
        return True

    def pause(self, seconds: float) -> None:
        """Let nobody through for `seconds` (a server's `Retry-After`)."""
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                # requests waiting in `admit` start again after the pause, at the rate
                self._pauses += 1
                self._next = until

    def _admission(self, deadline: float | None) -> tuple[float, int]:
        with self._lock:
            now = self._clock()
            start = max(now, self._paused_until)
            if deadline is not None and start > max(now, deadline):
                self.refused += 1
                raise Saturated(start - now, paused=True)
            if self.learned is not None:
                start = max(start, self._next)
                self._next = start + 1.0 / self.learned
            return start - now, self._pauses

    def _send(self) -> float:
        """Seconds until a request may go without `learned` in one second; 0: it goes."""
        with self._lock:
            rate = self.learned
            if rate is None:
                return 0.0
            now = self._clock()
            sent = self._sent
            while sent and sent[0] <= now - 1.0:
                sent.popleft()
            if len(sent) >= max(1, math.floor(rate)):
                return sent[0] + 1.0 - now
            sent.append(now)
            return 0.0

    async def admit(self, max_wait: float | None = None) -> None:
        """Wait until one more request may be sent to the service (each attempt, retries too).

        Not before a pause (`Retry-After`) ends, and once a 429 taught a rate, one request
        per `1 / learned` seconds, in the order they came, and never more than `learned`
        in any second (turns that fell due together, after the event loop was busy, do
        not go as a burst). A request already waiting when a pause begins waits for its
        end and takes its turn again. Free until the first 429.

        Args:
            max_wait: Seconds the caller may wait at most (None: as long as it takes).

        Raises:
            Saturated: A pause lasts beyond `max_wait`.
        """
        deadline = None if max_wait is None else self._clock() + max_wait
        while True:
            wait, pauses = self._admission(deadline)
            if wait > 0:
                await asyncio.sleep(wait)
                if self._pauses != pauses:  # a pause began meanwhile: a new turn after it
                    continue
            while (wait := self._send()) > 0 and self._pauses == pauses:
                await asyncio.sleep(wait)
            if self._pauses == pauses:
                return

    def answered(self) -> None:
        """The service answered (not a 429): count it, and raise the learned rate a little.

        The rate grows by a straight line (additive increase): each second it is in use,
        by `_FASTER` of the rate set at the last 429 (`_SLOWEST_STEP` at least); not while
        requests come slower than it.
        """
        with self._lock:
            now = self._clock()
            answered = self._answered
            answered.append(now)
            while answered[0] <= now - 1.0:
                answered.popleft()
            rate = self.learned
            if rate is not None and now - self._next < 1.0:
                self.learned = rate + self._step / rate

    def throttled(self, retry_after: float | None = None) -> None:
        """The service answered 429: pause everyone and lower the learned rate.

        The pause lasts `retry_after` seconds (one if the service did not say). The rate
        becomes `_SLOWER` times the lower of the rate learned so far and the answers of
        the last second (multiplicative decrease; never below `_SLOWEST`), once per
        congestion: the other 429s until the pause ends answer requests sent before it.
        """
        seconds = 1.0 if retry_after is None else retry_after
        with self._lock:
            now = self._clock()
            self.throttles += 1
            lower = now >= self._calm_until
            if lower:
                answered = self._answered
                while answered and answered[0] <= now - 1.0:
                    answered.popleft()
                rates = [r for r in (self.learned, float(len(answered))) if r]
                self.learned = max(_SLOWEST, _SLOWER * min(rates, default=_SLOWEST))
                self._step = max(_FASTER * self.learned, _SLOWEST_STEP)
                self._calm_until = now + max(seconds, 1.0)
                self.slowdowns += 1
        self.pause(seconds)

    async def acquire(self, max_wait: float | None = None) -> None:
        """Wait for a token; give it back if the wait is cancelled.

        Args:
            max_wait: Seconds the caller may wait at most (None: as long as it takes).

        Raises:
            Saturated: The turn lies beyond `max_wait` (at once, booking nothing).
        """
        booking = self.book(max_wait)
        if booking.wait > 0:
            try:
                await asyncio.sleep(booking.wait)
            except BaseException:  # cancelled (a time limit): the token goes unused
                self.release(booking)
                raise

    def paused_for(self) -> float:
        """Seconds the current pause (a `Retry-After`, a spent quota) still lasts."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())


_SLOWER: Final = 0.9
"""On a 429 the learned rate becomes this share of what the service was answering."""
_FASTER: Final = 0.005
"""Then it grows by this share of itself (as learned then) each second: from 90 % back to
the rate of the 429 in 20 s. Slower growth means rarer 429s, each of which costs a pause
of everyone (its `Retry-After`); faster growth means less time below the service's rate."""
_SLOWEST: Final = 1.0
"""Requests a second below which the learned rate never goes."""
_SLOWEST_STEP: Final = 0.1
"""Requests a second the learned rate gains each second at least (back up from the floor)."""

_BUCKETS: weakref.WeakValueDictionary[tuple[str, str], TokenBucket] = weakref.WeakValueDictionary()
_BUCKETS_LOCK: Final = threading.Lock()


def shared_bucket(adapter: str, credential: str | None, limit: RateLimit) -> TokenBucket:
    """The bucket of (adapter type, credential), shared while anyone holds it.

    Every enricher of one type with one credential shares one bucket, whatever rate each
    was given: the bucket keeps all of their limits (`TokenBucket.tighten`), so the
    strictest applies to all of them, and the service's quota (which is per credential)
    is kept together.
    """
    key = (adapter, fingerprint(credential))
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            bucket = _BUCKETS[key] = TokenBucket(limit)
        else:
            bucket.tighten(limit)
        return bucket


# -- the breaker ---------------------------------------------------------------------------


class Breaker:
    """Closed (calls pass), open (calls fail fast) or half-open (one trial call passes)."""

    def __init__(
        self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1:
            raise ConfigurationError(f"breaker_failures: expected at least 1, not {failures!r}")
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial = False
        self.opened = 0

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go ahead now (half-open: only the first, as the trial)."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._trial:
                self._trial = True
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until the breaker lets a trial through."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial = False

    def release(self) -> None:
        """End a call that says nothing either way (cancelled, say): a trial may go again.

        Without it, a half-open trial that never reported would hold the breaker open
        for good. After `success` or `failure` it does nothing.
        """
        with self._lock:
            self._trial = False

    def failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._trial:  # the trial failed: open again for a cool-down
                self._trial = False
                self._opened_at = self._clock()
                self.opened += 1
            elif self._opened_at is None and self._consecutive >= self.failures:
                self._opened_at = self._clock()
                self.opened += 1


# -- the cache -----------------------------------------------------------------------------

DEFAULT_TTLS: Final[Mapping[str, float]] = {
    "malicious": 24 * 3600.0,
    "suspicious": 6 * 3600.0,
    "benign": 12 * 3600.0,
    "unknown": 3600.0,
    "missing": 3600.0,
    "context": 3600.0,
}
"""Seconds an answer is kept, by verdict (`missing`: not found; `context`: host and user
context)."""


@attrs.frozen
class CacheEntry:
    """A cached answer: the finding (None: not found) and when it was fetched."""

    finding: Any
    fetched_at: datetime
    ttl: float


class LookupCache:
    """Answers by key with per-verdict lifetimes, and one request per key at a time."""

    def __init__(
        self,
        maxsize: int,
        ttls: Mapping[str, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttls = {**DEFAULT_TTLS, **ttls}
        self._lock = threading.Lock()
        self._entries: TLRUCache[tuple[str, ...], CacheEntry] = TLRUCache(
            maxsize=maxsize, ttu=lambda _key, entry, now: now + entry.ttl, timer=clock
        )
        self._flights: dict[tuple[str, ...], _Flight] = {}
        self.hits = 0
        self.misses = 0
        self.shared = 0

    def ttl_for(self, finding: Any) -> float:
        """How long to keep an answer."""
        if finding is None:
            return self.ttls["missing"]
        if isinstance(finding, Reputation):
            return self.ttls[finding.verdict.value]
        return self.ttls["context"]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def cached(self, key: tuple[str, ...]) -> CacheEntry | None:
        """The entry of `key` if the cache holds it (a hit, counted), without waiting."""
        with self._lock:
            try:
                entry = self._entries[key]  # one look, one clock reading
            except KeyError:
                return None
            self.hits += 1
            return entry

    async def get(
        self, key: tuple[str, ...], fetch: Callable[..., Awaitable[Any]], *args: Any
    ) -> tuple[CacheEntry, bool]:
        """The entry of `key` and whether it came from the cache; else `fetch(*args)` it once.

        Concurrent callers for one key (in one event loop) await the same fetch; its
        error reaches each of them. Errors are not cached. If the caller whose task runs
        the fetch is cancelled (its own time limit), the others are not: one of them
        fetches again. A waiting caller that is cancelled leaves the fetch alone.
        """
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                try:
                    entry = self._entries[key]  # one look, one clock reading
                except KeyError:
                    pass
                else:
                    self.hits += 1
                    return entry, True
                flight = self._flights.get(key)
                if flight is None or flight.loop is not loop:
                    flight = self._flights[key] = _Flight(loop)
                    self.misses += 1
                    break
                self.shared += 1
                # a future of its own: cancelling this caller cancels it, not the fetch
                waiter: asyncio.Future[CacheEntry | None] = loop.create_future()
                flight.waiters.append(waiter)
            answer = await waiter
            if answer is not None:  # else the fetch was cancelled: one fetches again
                return answer, False
        try:  # a fresh answer, fetched once for all who asked
            finding = await fetch(*args)
            entry = CacheEntry(finding, datetime.now(UTC), self.ttl_for(finding))
            if entry.ttl > 0:
                with self._lock:
                    self._entries[key] = entry
        except asyncio.CancelledError:
            self._land(key, flight, None)  # the waiters try again rather than see it
            raise
        except BaseException as exc:
            self._land(key, flight, exc)
            raise
        self._land(key, flight, entry)
        return entry, False

    def _land(self, key: tuple[str, ...], flight: _Flight, outcome: Any) -> None:
        """End a flight: its waiters get the entry, the error, or None (try again)."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            waiters, flight.waiters = flight.waiters, []
        for waiter in waiters:
            if waiter.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
                waiter.exception()  # retrieved: no "never retrieved" log if not awaited
            else:
                waiter.set_result(outcome)


class _Flight:
    """A fetch under way in one event loop, and the futures of the callers waiting for it."""

    __slots__ = ("loop", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: list[asyncio.Future[CacheEntry | None]] = []
