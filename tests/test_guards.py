"""Rate limits, the token bucket, the breaker and the look-up cache, on a clock of our own."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fido import ConfigurationError, Host, HostContext, Reputation, Verdict
from fido.adapters._guards import (
    DEFAULT_TTLS,
    Booking,
    Breaker,
    CacheEntry,
    LookupCache,
    RateLimit,
    Saturated,
    TokenBucket,
    fingerprint,
    seconds,
    shared_bucket,
)

MINUTE, DAY = 60.0, 86400.0


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, by: float) -> None:
        self.now += by


def bucket(text: Any, clock: Clock) -> TokenBucket:
    limit = RateLimit.parse(text)
    assert limit is not None
    return TokenBucket(limit, clock)


def reputation(verdict: Verdict) -> Reputation:
    return Reputation(source="probe", verdict=verdict)


# -- RateLimit.parse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "limits"),
    [
        ("4/min", ((4.0, MINUTE),)),
        ("4 / Minute", ((4.0, MINUTE),)),
        ("  10/s ", ((10.0, 1.0),)),
        ("1.5/sec", ((1.5, 1.0),)),
        ("100/h", ((100.0, 3600.0),)),
        ("100/hour", ((100.0, 3600.0),)),
        ("500/day", ((500.0, DAY),)),
        ("500/d", ((500.0, DAY),)),
        ("7/m", ((7.0, MINUTE),)),
        (["4/min", "500/day"], ((4.0, MINUTE), (500.0, DAY))),
        (("4/min", "500/day"), ((4.0, MINUTE), (500.0, DAY))),
        ({"per_minute": 4, "per_day": 500}, ((4.0, MINUTE), (500.0, DAY))),
        ({"per_second": 2.5}, ((2.5, 1.0),)),
        ({"hour": 1000}, ((1000.0, 3600.0),)),
    ],
)
def test_rate_forms(value: Any, limits: tuple[tuple[float, float], ...]) -> None:
    parsed = RateLimit.parse(value)
    assert parsed is not None
    assert parsed.limits == limits
    assert RateLimit.parse(parsed) is parsed


@pytest.mark.parametrize("value", [None, "none", "unlimited", "UNLIMITED", "None", [], {}])
def test_no_rate_is_no_limit(value: Any) -> None:
    assert RateLimit.parse(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "4",
        "4/fortnight",
        "0/min",
        "-1/s",
        "four/min",
        "4/min/day",
        "",
        4,
        True,
        4.5,
        ["4/min", "lots"],
        [4],
        {"per_week": 1},
        {"per_minute": 0},
        object(),
    ],
)
def test_rate_errors_say_what_is_expected(value: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"rate: expected .*'4/min'"):
        RateLimit.parse(value)


def test_rate_as_text() -> None:
    assert str(RateLimit.parse(["4/min", "500/day"])) == "4/min, 500/day"
    assert str(RateLimit.parse("1.5/s")) == "1.5/s"
    assert str(RateLimit(((3.0, 7.0),))) == "3/7s"
    assert str(RateLimit(())) == ""


# -- seconds and fingerprint ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(30, 30.0), (0, 0.0), (1.5, 1.5), ("30s", 30.0), ("4h", 14400.0), ("250ms", 0.25)],
)
def test_seconds(value: Any, expected: float) -> None:
    assert seconds(value, "timeout") == expected


@pytest.mark.parametrize("value", [True, -1, "-5s", "soon", None, [1], math.nan, math.inf])
def test_seconds_errors_name_the_option(value: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"^breaker_cooldown: "):
        seconds(value, "breaker_cooldown")


def test_fingerprint_is_short_stable_and_one_way() -> None:
    key = "vt-0123456789abcdef0123456789abcdef"
    assert fingerprint(key) == fingerprint(key)
    assert len(fingerprint(key)) == 16
    assert int(fingerprint(key), 16) >= 0
    assert fingerprint(key) != fingerprint(key + "x")
    assert key not in fingerprint(key)
    assert fingerprint(None) == fingerprint("") == "-"
    assert fingerprint("\udc80") != "-"  # a lone surrogate (from a bytes env var) is fine


# -- the token bucket -----------------------------------------------------------------------


def test_four_a_minute_means_four_in_any_minute() -> None:
    clock = Clock()
    limiter = bucket("4/min", clock)
    assert [limiter.reserve() for _ in range(4)] == [0.0] * 4
    # every token is out: the next four wait for the first four to come back
    assert [limiter.reserve() for _ in range(5)] == [60.0] * 4 + [120.0]
    assert limiter.waits == 5
    assert limiter.waited == 60.0 * 4 + 120.0
    clock.advance(125.0)  # four went at +60 and one at +120: three tokens are back
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 55.0]
    clock.advance(3600.0)
    assert [limiter.reserve() for _ in range(4)] == [0.0] * 4


def test_a_token_comes_back_a_period_after_it_was_used() -> None:
    clock = Clock()
    limiter = bucket("2/s", clock)
    assert limiter.reserve() == 0.0
    clock.advance(0.4)
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.6)  # the first comes back at +1.0
    clock.advance(0.7)  # +1.1
    assert limiter.reserve() == pytest.approx(0.3)  # the second came back at +1.4
    clock.advance(0.3)
    assert limiter.reserve() == pytest.approx(0.6)  # the third was used at +1.0


def test_every_limit_applies() -> None:
    clock = Clock()
    limiter = bucket(["2/s", "3/min"], clock)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.reserve() == 60.0  # three a minute
    clock.advance(61.0)
    assert limiter.reserve() == 0.0


def test_a_daily_quota_is_kept_over_the_day() -> None:
    clock = Clock()
    limiter = bucket(["4/min", "500/day"], clock)
    starts = []
    for _ in range(501):
        wait = limiter.reserve()
        starts.append(clock.now + wait)
        clock.advance(wait)  # a patient caller: the next one comes when this one goes
    assert starts[499] - starts[0] == pytest.approx(124 * MINUTE)  # 4 a minute
    assert starts[500] == pytest.approx(starts[0] + DAY)  # the 501st waits for the day


def test_a_fractional_count_spreads_the_tokens() -> None:
    clock = Clock()
    limiter = bucket("1.5/s", clock)
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0.0, 2 / 3, 4 / 3])
    slow = bucket("0.5/s", clock)
    assert [slow.reserve() for _ in range(2)] == [0.0, 2.0]


def test_a_huge_count_remembers_a_bounded_number_of_tokens() -> None:
    clock = Clock()
    limiter = TokenBucket(RateLimit(((1_000_000.0, DAY),)), clock)
    assert max(limiter.reserve() for _ in range(100_000)) == 0.0
    assert limiter.reserve() == pytest.approx(DAY / 10)  # 100,000 per tenth of a day


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=60),
    count=st.integers(min_value=1, max_value=5),
    period=st.sampled_from([1.0, 2.0, 10.0]),
)
def test_no_window_ever_holds_more_than_the_count(
    gaps: list[float], count: int, period: float
) -> None:
    clock = Clock(0.0)
    limiter = TokenBucket(RateLimit(((float(count), period),)), clock)
    starts = []
    for gap in gaps:
        clock.advance(gap)
        starts.append(clock.now + limiter.reserve())
    # (`now + wait` may differ from the reserved time in the last bit)
    for earlier, later in itertools.pairwise(starts):
        assert later >= earlier - 1e-9  # callers are served in the order they came
    for first, later in zip(starts, starts[count:], strict=False):
        assert later - first >= period - 1e-9


def test_a_pause_holds_everyone_back_and_never_shortens() -> None:
    clock = Clock()
    limiter = TokenBucket(RateLimit(()), clock)  # no limit: only pauses
    assert limiter.reserve() == 0.0
    limiter.pause(5.0)
    limiter.pause(1.0)  # a shorter pause does not end the longer one
    assert limiter.reserve() == 5.0
    clock.advance(3.0)
    assert limiter.reserve() == 2.0
    clock.advance(2.5)
    assert limiter.reserve() == 0.0
    assert (limiter.waits, limiter.waited) == (2, 7.0)


def test_a_pause_comes_on_top_of_the_rate() -> None:
    clock = Clock()
    limiter = bucket("1/s", clock)
    limiter.pause(0.5)
    assert limiter.reserve() == 0.5
    assert limiter.reserve() == 1.5  # a second after the first one went


def test_reservations_from_threads_are_all_counted() -> None:
    clock = Clock()
    limiter = bucket("10/s", clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            wait = limiter.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [float(n // 10) for n in range(200)]


def test_acquire_waits_its_turn_and_never_fails() -> None:
    limiter = TokenBucket(RateLimit(((2.0, 0.1),)))  # two every tenth of a second

    async def main() -> list[float]:
        start = time.monotonic()

        async def one() -> float:
            await limiter.acquire()
            return time.monotonic() - start

        return list(await asyncio.gather(*(one() for _ in range(6))))

    done = asyncio.run(main())
    assert sorted(done)[:2] < [0.05, 0.05]
    assert 0.19 <= max(done) < 1.0  # the last pair went two tenths later
    assert limiter.waits == 4


def test_a_cancelled_wait_gives_its_token_back() -> None:
    """40 look-ups on a 4-a-minute plan, cut short after 0.2 s: 4 go, 36 give back."""
    limiter = TokenBucket(RateLimit(((4.0, 60.0),)))

    async def one() -> str:
        try:
            await asyncio.wait_for(limiter.acquire(), 0.2)
        except TimeoutError:
            return "timeout"
        return "ok"

    async def main() -> list[str]:
        return list(await asyncio.gather(*(one() for _ in range(40))))

    done = asyncio.run(main())
    assert (done.count("ok"), done.count("timeout")) == (4, 36)
    assert limiter.released == 36
    wait = limiter.reserve()
    assert 59.0 < wait <= 60.0  # the four tokens used come back in a minute: no phantom


def test_a_daily_quota_is_not_eaten_by_cancelled_waits() -> None:
    """On a simulated clock: a day of look-ups that each give up after 10 s."""
    clock = Clock()
    limiter = bucket(["4/min", "500/day"], clock)
    begin = clock.now
    served = []
    for _ in range(24 * 60 * 6):  # one look-up every 10 s for a day
        booking = limiter.book()
        if booking.wait <= 10.0:
            served.append(booking.start)
        else:
            limiter.release(booking)  # its time limit: it stopped waiting
        clock.advance(10.0)
    assert len([t for t in served if t < begin + DAY]) == 500
    assert limiter.released == 24 * 60 * 6 - len(served)
    assert limiter.reserve() < DAY  # the next token is at most a day away, not 32 days


def test_a_caller_who_may_not_wait_that_long_is_refused_and_books_nothing() -> None:
    clock = Clock()
    limiter = bucket("4/min", clock)
    assert [limiter.book(max_wait=1.0).wait for _ in range(4)] == [0.0] * 4
    with pytest.raises(Saturated) as refused:
        limiter.book(max_wait=30.0)
    assert refused.value.paused is False
    assert refused.value.wait == 60.0
    assert str(refused.value) == "rate limit, next slot in 60 s"
    assert limiter.refused == 1
    assert limiter.book(max_wait=60.0).wait == 60.0  # nothing was booked for the refused
    assert limiter.book().wait == 60.0


def test_a_pause_beyond_the_wait_allowed_says_until_when() -> None:
    clock = Clock()
    limiter = TokenBucket(RateLimit(()), clock)
    limiter.pause(DAY)
    with pytest.raises(Saturated) as refused:
        limiter.book(max_wait=300.0)
    assert refused.value.paused is True
    assert refused.value.until == pytest.approx(time.time() + DAY, abs=5)
    assert str(refused.value).startswith("quota exhausted until 20")
    assert str(refused.value).endswith("Z")


def test_admit_refuses_a_pause_beyond_the_wait_allowed() -> None:
    limiter = TokenBucket(RateLimit(()))
    limiter.pause(3600.0)

    async def main() -> None:
        await limiter.admit(max_wait=1.0)

    with pytest.raises(Saturated, match="quota exhausted until"):
        asyncio.run(main())


def test_a_released_reservation_in_the_middle_is_reused() -> None:
    clock = Clock()
    limiter = bucket("1/min", clock)
    first, second, third = (limiter.book() for _ in range(3))
    assert (first.wait, second.wait, third.wait) == (0.0, 60.0, 120.0)
    limiter.release(second)  # its caller gave up: a hole at +60
    assert limiter.book().wait == 60.0  # the hole is taken again
    assert limiter.book().wait == 180.0


@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=3.0), st.booleans()),
        min_size=1,
        max_size=60,
    ),
    count=st.integers(min_value=1, max_value=4),
    period=st.sampled_from([1.0, 5.0]),
)
def test_releases_never_let_a_window_hold_more_than_the_count(
    steps: list[tuple[float, bool]], count: int, period: float
) -> None:
    clock = Clock(0.0)
    limiter = TokenBucket(RateLimit(((float(count), period),)), clock)
    kept: list[Booking] = []
    for gap, give_up in steps:
        clock.advance(gap)
        booking = limiter.book()
        if give_up and booking.wait > 0:
            limiter.release(booking)
        else:
            kept.append(booking)
    starts = sorted(b.start for b in kept)
    for first, later in zip(starts, starts[count:], strict=False):
        assert later - first >= period - 1e-9


def test_buckets_are_shared_per_adapter_and_credential() -> None:
    four = RateLimit.parse("4/min")
    assert four is not None
    first = shared_bucket("vt-test", "key-1", four)
    assert shared_bucket("vt-test", "key-1", RateLimit(((4.0, 60.0),))) is first
    assert shared_bucket("vt-test", "key-2", four) is not first
    assert shared_bucket("otx-test", "key-1", four) is not first
    assert shared_bucket("vt-test", None, four) is shared_bucket("vt-test", "", four)
    first.pause(30.0)
    assert shared_bucket("vt-test", "key-1", four).reserve() > 29.0


def test_one_credential_with_two_rates_shares_one_bucket_and_the_strictest_limit() -> None:
    public = RateLimit.parse(["4/min", "500/day"])
    looser = RateLimit.parse("10/min")
    assert public is not None
    assert looser is not None
    first = shared_bucket("vt-strict", "one-key", looser)
    second = shared_bucket("vt-strict", "one-key", public)
    assert second is first
    assert first.limit.limits == ((10.0, 60.0), (4.0, 60.0), (500.0, 86400.0))
    # an enricher left unlimited still shares the bucket, and its limits
    assert shared_bucket("vt-strict", "one-key", RateLimit(())) is first
    assert [first.reserve() for _ in range(4)] == [0.0] * 4
    assert first.reserve() > 59.0  # 4 a minute, not 10


def test_a_bucket_nobody_holds_is_forgotten() -> None:
    limit = RateLimit(((1.0, 3600.0),))
    held = shared_bucket("vt-forget", "key", limit)
    assert held.reserve() == 0.0
    assert shared_bucket("vt-forget", "key", limit).reserve() > 3599.0  # the same one
    del held
    gc.collect()
    assert shared_bucket("vt-forget", "key", limit).reserve() == 0.0  # a new one, full


# -- the breaker ----------------------------------------------------------------------------


def test_the_breaker_opens_after_n_consecutive_failures() -> None:
    clock = Clock()
    breaker = Breaker(3, 30.0, clock)
    assert (breaker.state, breaker.allow(), breaker.retry_in()) == ("closed", True, 0.0)
    breaker.failure()
    breaker.failure()
    breaker.success()  # not consecutive: starts again
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert (breaker.state, breaker.opened) == ("open", 1)
    assert breaker.allow() is False
    clock.advance(10.0)
    assert breaker.retry_in() == 20.0
    breaker.failure()  # a late failure does not extend the cool-down
    assert breaker.retry_in() == 20.0
    assert breaker.opened == 1


def test_after_the_cooldown_one_trial_decides() -> None:
    clock = Clock()
    breaker = Breaker(1, 30.0, clock)
    breaker.failure()
    clock.advance(30.0)
    assert breaker.state == "half-open"
    assert breaker.allow() is True  # the trial
    assert breaker.allow() is False  # only one at a time
    breaker.failure()  # the trial failed: open for another cool-down
    assert (breaker.state, breaker.opened, breaker.retry_in()) == ("open", 2, 30.0)
    assert breaker.allow() is False
    clock.advance(30.0)
    assert breaker.allow() is True
    breaker.success()  # the trial worked: closed
    assert (breaker.state, breaker.retry_in()) == ("closed", 0.0)
    assert all(breaker.allow() for _ in range(3))


def test_a_trial_that_never_reports_is_released() -> None:
    clock = Clock()
    breaker = Breaker(1, 5.0, clock)
    breaker.failure()
    clock.advance(5.0)
    assert breaker.allow() is True
    assert breaker.allow() is False
    breaker.release()  # the trial was cancelled: neither success nor failure
    assert breaker.state == "half-open"
    assert breaker.allow() is True  # another trial
    breaker.success()
    breaker.release()  # after a verdict it changes nothing
    assert breaker.state == "closed"


def test_breaker_needs_at_least_one_failure() -> None:
    with pytest.raises(ConfigurationError, match="breaker_failures"):
        Breaker(0, 1.0)


# -- the cache ------------------------------------------------------------------------------


class Source:
    """A fetch that counts its calls and answers what it is told."""

    def __init__(self, answer: Any = None, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def get(cache: LookupCache, key: str, source: Source) -> tuple[CacheEntry, bool]:
    return asyncio.run(cache.get(("probe", "-", key), source))


def test_a_malicious_verdict_lives_longer_than_an_unknown_one() -> None:
    assert DEFAULT_TTLS["malicious"] > DEFAULT_TTLS["unknown"]
    clock = Clock()
    cache = LookupCache(100, {"malicious": 100.0, "unknown": 10.0}, clock)
    bad, unknown = Source(reputation(Verdict.MALICIOUS)), Source(reputation(Verdict.UNKNOWN))
    for _ in range(2):
        assert get(cache, "bad", bad)[0].finding.verdict is Verdict.MALICIOUS
        assert get(cache, "unknown", unknown)[0].finding.verdict is Verdict.UNKNOWN
    assert (bad.calls, unknown.calls) == (1, 1)
    clock.advance(10.0)
    entry, cached = get(cache, "unknown", unknown)
    assert (cached, unknown.calls) == (False, 2)  # expired, asked again
    assert get(cache, "bad", bad)[1] is True
    clock.advance(90.0)
    assert get(cache, "bad", bad)[1] is False
    assert bad.calls == 2
    assert entry.ttl == 10.0


@pytest.mark.parametrize(
    ("finding", "ttl"),
    [
        (reputation(Verdict.MALICIOUS), 1.0),
        (reputation(Verdict.SUSPICIOUS), 2.0),
        (reputation(Verdict.BENIGN), 3.0),
        (reputation(Verdict.UNKNOWN), 4.0),
        (None, 5.0),
        (HostContext(source="cmdb", subject=Host(name="ws-042")), 6.0),
    ],
)
def test_each_answer_has_its_ttl(finding: Any, ttl: float) -> None:
    names = ("malicious", "suspicious", "benign", "unknown", "missing", "context")
    cache = LookupCache(10, {name: float(n) for n, name in enumerate(names, 1)})
    assert cache.ttl_for(finding) == ttl
    assert get(cache, "k", Source(finding))[0].ttl == ttl


def test_not_found_is_cached_and_a_zero_ttl_is_not() -> None:
    clock = Clock()
    cache = LookupCache(10, {"missing": 60.0, "benign": 0.0}, clock)
    missing, benign = Source(None), Source(reputation(Verdict.BENIGN))
    for _ in range(3):
        assert get(cache, "missing", missing)[0].finding is None
        get(cache, "benign", benign)
    assert (missing.calls, benign.calls) == (1, 3)
    assert len(cache) == 1
    clock.advance(60.0)
    get(cache, "missing", missing)
    assert missing.calls == 2


def test_errors_are_not_cached() -> None:
    cache = LookupCache(10, {})
    failing = Source(RuntimeError("boom"))
    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            get(cache, "k", failing)
    assert failing.calls == 2
    failing.answer = reputation(Verdict.BENIGN)
    assert get(cache, "k", failing)[1] is False
    assert get(cache, "k", failing)[1] is True
    assert (failing.calls, cache.hits, cache.misses) == (3, 1, 3)


def test_entries_know_when_they_were_fetched() -> None:
    before = datetime.now(UTC)
    entry, _ = get(LookupCache(10, {}), "k", Source(reputation(Verdict.BENIGN)))
    assert before <= entry.fetched_at <= datetime.now(UTC)
    assert entry.fetched_at.tzinfo is UTC


def test_the_oldest_answers_make_room() -> None:
    cache = LookupCache(2, {})
    sources = {key: Source(reputation(Verdict.BENIGN)) for key in "abc"}
    for key in "abc":
        get(cache, key, sources[key])
    assert len(cache) == 2
    assert get(cache, "a", sources["a"])[1] is False  # evicted
    assert get(cache, "c", sources["c"])[1] is True


def test_twenty_concurrent_gets_make_one_fetch() -> None:
    cache = LookupCache(10, {})
    source = Source(reputation(Verdict.MALICIOUS), delay=0.02)

    async def main() -> list[tuple[CacheEntry, bool]]:
        return list(await asyncio.gather(*(cache.get(("k",), source) for _ in range(20))))

    results = asyncio.run(main())
    assert source.calls == 1
    assert len({id(entry) for entry, _ in results}) == 1  # the very same answer
    assert [cached for _, cached in results] == [False] * 20  # fresh, not from the cache
    assert (cache.misses, cache.shared, cache.hits) == (1, 19, 0)
    assert asyncio.run(cache.get(("k",), source))[1] is True


def test_an_error_reaches_every_caller_of_the_flight(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    cache = LookupCache(10, {})
    source = Source(ValueError("odd answer"), delay=0.02)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                *(cache.get(("k",), source) for _ in range(20)), return_exceptions=True
            )
        )

    results = asyncio.run(main())
    gc.collect()
    assert source.calls == 1
    assert all(isinstance(r, ValueError) and str(r) == "odd answer" for r in results)
    assert "never retrieved" not in caplog.text
    assert len(cache) == 0


def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    cache = LookupCache(10, {})
    source = Source(reputation(Verdict.MALICIOUS), delay=0.05)

    async def main() -> tuple[Any, Any, Any]:
        first = asyncio.ensure_future(cache.get(("k",), source))  # runs the fetch
        await asyncio.sleep(0)
        second = asyncio.ensure_future(cache.get(("k",), source))
        third = asyncio.ensure_future(cache.get(("k",), source))
        await asyncio.sleep(0.01)
        first.cancel()  # the time limit of the first caller, say
        results = await asyncio.gather(first, second, third, return_exceptions=True)
        return results[0], results[1], results[2]

    first, second, third = asyncio.run(main())
    assert isinstance(first, asyncio.CancelledError)
    assert isinstance(second, tuple)
    assert isinstance(third, tuple)
    assert second[0].finding.verdict is Verdict.MALICIOUS
    assert second[0] is third[0]  # one of them fetched again, for both
    assert source.calls == 2


def test_a_cancelled_waiter_leaves_the_fetch_alone() -> None:
    cache = LookupCache(10, {})
    source = Source(reputation(Verdict.BENIGN), delay=0.05)

    async def main() -> tuple[Any, Any]:
        first = asyncio.ensure_future(cache.get(("k",), source))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(cache.get(("k",), source))
        await asyncio.sleep(0.01)
        second.cancel()
        results = await asyncio.gather(first, second, return_exceptions=True)
        return results[0], results[1]

    first, second = asyncio.run(main())
    assert isinstance(second, asyncio.CancelledError)
    assert first[0].finding.verdict is Verdict.BENIGN
    assert source.calls == 1
    assert asyncio.run(cache.get(("k",), source))[1] is True
