"""The base of every HTTP enricher, `HttpEnricher`, over `HttpClient` (`_http_client`).

`HttpEnricher` is the base of the HTTP enrichers: a subclass says which subjects it
`accepts`, how to `fetch` one (with `self.http.get_json(...)`), the key a subject is
cached under, which 404 answers are its vendor's "not found" (`is_not_found`; any other
is an error: a wrong `base_url` must not pass for "unknown") and which 429 answers say a
quota is spent (`quota_reset`). The base adds the rate limit (a token bucket per adapter
type and credential, within what a look-up may wait: beyond it, or past a spent quota,
the look-up is skipped at once), the TTL cache with single flight, the circuit breaker,
the refusal of internal indicators (`is_internal`, `internal_domains`), `stats()`, and
wraps every error in an `EnrichmentError` that names the adapter and the subject, never
the credential. `HttpClient` (retries, one `httpx.AsyncClient`, secrets scrubbed) is
re-exported from here for the adapters that send requests of their own.
"""

from __future__ import annotations

import contextvars
import ipaddress
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import attrs

from fido._errors import ConfigurationError, EnrichmentError
from fido._findings import Reliability, Reputation, stamped
from fido._logging import get_logger
from fido._observable import Observable, ObservableKind
from fido.adapters._guards import (
    Breaker,
    LookupCache,
    RateLimit,
    Saturated,
    TokenBucket,
    fingerprint,
    seconds,
    shared_bucket,
)
from fido.adapters._http_client import RETRY_STATUSES, HttpClient, HttpError, retry_after

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from fido._findings import Finding, Subject

__all__ = [
    "RETRY_STATUSES",
    "HttpClient",
    "HttpEnricher",
    "HttpError",
    "indicator_host",
    "retry_after",
    "subject_text",
]

log = get_logger("fido.adapters.http")


def indicator_host(subject: Observable) -> str | None:
    """The host name an indicator names: a domain, a URL's host, an e-mail's domain.

    None for hashes, file names, IP addresses and URLs on an IP address.
    """
    if subject.kind is ObservableKind.DOMAIN:
        return subject.value
    if subject.kind is ObservableKind.EMAIL:
        return subject.value.rpartition("@")[2]
    if subject.kind is ObservableKind.URL:
        host = (urlsplit(subject.value).hostname or "").rstrip(".")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return host or None
    return None


def subject_text(subject: Subject) -> str:
    """A subject as text for errors and logs (`sha256:44d8...`, `host:ws-042`, `user:bdoe`)."""
    key = getattr(subject, "key", None)
    kind = getattr(subject, "kind", None)
    if kind is not None:
        return f"{kind.value}:{subject.value}"  # type: ignore[union-attr]
    return f"{type(subject).__name__.lower()}:{key}"


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "fido_http_lookup_deadline", default=None
)
"""When the look-up running in this task must be done (`time.monotonic()`), if it must."""


@attrs.define
class _Counters:
    lookups: int = 0
    failures: int = 0
    skipped: int = 0
    withheld: int = 0


class HttpEnricher:
    """The base of fido's HTTP enrichers (see the module docstring).

    Subclasses set `service` (the adapter type, as registered), `default_base_url`,
    `default_rate` (None: no limit), and implement `accepts`, `fetch` and `auth_headers`;
    `is_not_found` says which 404 answers (or other `absent` statuses) are the vendor's
    "not found", and `quota_reset` which 429 answers say a quota is spent.

    Internal indicators never leave: `enrich` refuses (`skipped`) any observable that
    `is_internal` finds internal (an internal address, a special-use name, a name under
    `internal_domains`, a URL or e-mail address on such a host), whatever `accepts` says;
    only an enricher whose `looks_up_internal` is true (MISP, when told) sends them.

    Args:
        name: The enricher's name (the findings' source).
        api_key: The credential (from `api_key_env` or `api_key_file` in the config).
        base_url: The service's root URL (default: the vendor's).
        rate: Look-ups allowed, as in `"4/min"` or `["4/min", "500/day"]`; `"unlimited"`.
        request_timeout: Seconds per HTTP request.
        timeout: Seconds one look-up may take in all, waiting for its turn under the rate
            limit and retrying included (the pipeline gives up after it; default 300).
        max_wait: Seconds a look-up may wait for its turn under the rate limit or for the
            end of a pause (default: its `timeout`); a longer wait is not started: the
            look-up is skipped at once ("skipped: rate limit, next slot in N s", or
            "skipped: quota exhausted until T").
        internal_domains: Domain suffixes of the organisation's own names
            (`["corp.example", "internal.example.net"]`): names under them, and URLs and
            e-mail addresses on them, are never sent to the service.
        verify: Verify TLS certificates (default True; False logs a warning).
        ca_file: A CA bundle to verify against.
        proxy: A proxy URL.
        concurrency: Requests in flight at once.
        max_attempts: Tries per request.
        max_retry_time: Seconds one look-up may spend retrying.
        cache_ttl: Seconds or durations by verdict (`malicious`, `suspicious`, `benign`,
            `unknown`, `missing` for not found, `context` for host and user context).
        cache_size: Answers kept.
        breaker_failures: Consecutive failures that open the breaker.
        breaker_cooldown: Seconds the breaker stays open.
        reliability: The Admiralty reliability (A-F) of this source's verdicts.
        transport: An `httpx` transport, for tests.
    """

    service: ClassVar[str] = "http"
    default_base_url: ClassVar[str] = ""
    default_rate: ClassVar[str | list[str] | None] = None
    default_reliability: ClassVar[str] = "C"
    requires_key: ClassVar[bool] = True
    probes: ClassVar[tuple[Subject, ...]] = (
        Observable(ObservableKind.IPV4, "8.8.8.8"),  # Google's public resolver
        Observable(ObservableKind.DOMAIN, "example.com"),  # reserved by RFC 2606
        Observable(ObservableKind.MD5, "44d88612fea8a8f36de82e1278abb02f"),  # EICAR
    )
    """Well-known subjects `acheck` looks up: the first that `accepts` takes."""
    looks_up_internal: bool = False
    """Whether internal indicators may be sent (only to the organisation's own service)."""

    def __init__(
        self,
        *,
        name: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        rate: Any = "default",
        request_timeout: Any = 10.0,
        timeout: Any = 300.0,
        max_wait: Any = None,
        internal_domains: Any = None,
        verify: bool = True,
        ca_file: str | None = None,
        proxy: str | None = None,
        concurrency: int = 64,
        max_attempts: int = 4,
        max_retry_time: Any = 30.0,
        cache_ttl: Mapping[str, Any] | None = None,
        cache_size: int = 100_000,
        breaker_failures: int = 5,
        breaker_cooldown: Any = 60.0,
        reliability: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name or self.service
        if self.requires_key and not api_key:
            raise ConfigurationError(
                f"{self.service}: an API key is needed (api_key_env or api_key_file)"
            )
        self._key = api_key
        self.timeout = seconds(timeout, "timeout")
        """The pipeline's limit per look-up (the config's `timeout` sets it too)."""
        self.max_wait = None if max_wait is None else seconds(max_wait, "max_wait")
        self.internal_domains = _suffixes(internal_domains)
        try:
            self.reliability = Reliability.parse(reliability or self.default_reliability)
        except ValueError as exc:
            raise ConfigurationError(f"reliability: {exc}") from None
        ttls = {k: seconds(v, f"cache_ttl.{k}") for k, v in (cache_ttl or {}).items()}
        unknown = set(ttls) - {"malicious", "suspicious", "benign", "unknown", "missing"}
        if unknown - {"context"}:
            raise ConfigurationError(f"cache_ttl: unknown verdict {sorted(unknown)[0]!r}")
        self.cache = LookupCache(cache_size, ttls)
        self.breaker = Breaker(breaker_failures, seconds(breaker_cooldown, "breaker_cooldown"))
        limit = RateLimit.parse(self.default_rate if rate == "default" else rate)
        # Always a bucket: with no limit it only holds back everyone after a 429.
        self.bucket: TokenBucket = shared_bucket(self.service, api_key, limit or RateLimit(()))
        self.http = HttpClient(
            base_url=base_url or self.default_base_url,
            headers=self.auth_headers(api_key) if api_key else {},
            secrets=(api_key,) if api_key else (),
            timeout=seconds(request_timeout, "request_timeout"),
            verify=verify,
            ca_file=ca_file,
            proxy=proxy,
            concurrency=concurrency,
            max_attempts=max_attempts,
            max_retry_time=seconds(max_retry_time, "max_retry_time"),
            transport=transport,
            on_retry=self._retried,
            throttle=self._throttle,
            pace=self._pace,
            not_found=self.is_not_found,
            quota=self.quota_reset,
        )
        if not verify and self.http.base_url.startswith("https:"):
            log.warning(
                "%s: TLS certificate verification is off (verify = false) for %s",
                self.name,
                self.http.base_url,
            )
        self._fingerprint = fingerprint(api_key)
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.http.base_url!r})"

    # -- what a subclass provides ---------------------------------------------------------

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the credential."""
        raise NotImplementedError

    def accepts(self, subject: Subject) -> bool:
        """Whether this service knows about such subjects."""
        raise NotImplementedError

    def cache_key(self, subject: Subject) -> str:
        """What a subject is cached under (default: its key)."""
        return str(getattr(subject, "key", subject))

    async def fetch(self, subject: Subject) -> Finding | None:
        """Look the subject up (through `self.http`); None if the service does not know it."""
        raise NotImplementedError

    def is_not_found(self, response: httpx.Response) -> bool:
        """Whether a 404 (or another `absent` status) is the vendor's "not found" answer.

        By default none is: a 404 from a wrong `base_url` (a web server's page, another
        API's error) must not pass for "the service does not know this indicator" and be
        cached as such. A subclass recognises its vendor's own not-found body.
        """
        return False

    def quota_reset(self, response: httpx.Response) -> float | None:
        """For a 429 answer: seconds until the spent quota resets; None if none is spent.

        By default a 429 is a passing congestion (its `Retry-After` is honoured). A
        subclass recognises its vendor's "quota spent" answer (a daily limit used up):
        the look-ups with the credential are then skipped until the reset, rather than
        waiting for it.
        """
        return None

    def is_internal(self, subject: Subject) -> bool:
        """Whether an observable is the organisation's own and must not leave it.

        Internal addresses and special-use names (`Observable.is_internal`), names
        under `internal_domains`, and URLs and e-mail addresses on such hosts (or on a
        single-label name, as `http://intranet/`).
        """
        if not isinstance(subject, Observable):
            return False
        if subject.is_internal:
            return True
        host = indicator_host(subject)
        if host is None:
            return False
        host = host.lower()
        if any(host == s or host.endswith(f".{s}") for s in self.internal_domains):
            return True
        if subject.kind is ObservableKind.DOMAIN:
            return False
        if "." not in host:  # a URL on a single-label name (http://intranet/): a LAN's
            return True
        named = Observable.try_parse(host, ObservableKind.DOMAIN)
        return named is not None and named.is_internal

    # -- the look-up ----------------------------------------------------------------------

    def _budget(self) -> float | None:
        """Seconds a look-up may wait for its turn: `max_wait`, else its `timeout`."""
        if self.max_wait is not None:
            return self.max_wait
        return self.timeout or None

    @staticmethod
    def _left() -> float | None:
        """Seconds left to the look-up running in this task (None: no limit)."""
        deadline = _DEADLINE.get()
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    async def _throttle(self) -> None:
        """Before a retry: a token, within the time the look-up has left."""
        await self.bucket.acquire(self._left())

    async def _pace(self) -> None:
        """Before each attempt: the end of a pause and the learned rate, within the time."""
        await self.bucket.admit(self._left())

    async def take_token(self) -> None:
        """Wait for a token for one more request of the current look-up (a second search).

        Raises:
            Saturated: Its turn lies beyond the time the look-up has left.
        """
        await self.bucket.acquire(self._left())

    def _retried(self, error: BaseException | None) -> None:
        """A 429 pauses every look-up that shares the bucket (its `Retry-After`, or 1 s).

        It lowers the rate the bucket lets requests go at, too (`TokenBucket.throttled`),
        unless it says a quota is spent: then the bucket pauses until the reset.
        """
        if getattr(error, "status", None) != 429:
            return
        after = getattr(error, "retry_after", None)
        if getattr(error, "spent", False) and after is not None:
            self.bucket.pause(after)
        else:
            self.bucket.throttled(after)

    def _withheld(self, subject: Subject) -> bool:
        return not self.looks_up_internal and self.is_internal(subject)

    async def enrich(self, subject: Subject) -> Finding | None:
        """The finding about `subject`, from the cache or the service.

        Raises:
            EnrichmentError: The look-up failed (`skipped=True` when the breaker is open,
                the rate limit or a spent quota leaves no turn in time, or the subject is
                internal).
        """
        self._counters.lookups += 1
        if self._withheld(subject):
            self._counters.withheld += 1
            raise EnrichmentError(
                f"skipped: an internal indicator is not sent to {self.service}",
                adapter=self.name,
                subject=subject_text(subject),
                skipped=True,
            )
        key = (self.service, self._fingerprint, self.cache_key(subject))
        entry = self.cache.cached(key)  # a hit costs no coroutine
        if entry is not None:
            cached = True
        else:
            try:
                entry, cached = await self.cache.get(key, self._guarded, subject)
            except EnrichmentError:
                raise
            except HttpError as exc:
                raise EnrichmentError(
                    self.http.scrub(str(exc)), adapter=self.name, subject=subject_text(subject)
                ) from None
        finding: Finding | None = entry.finding
        if finding is None:
            return None
        return stamped(finding, entry.fetched_at, from_cache=cached)

    def _skip(self, subject: Subject, reason: str) -> EnrichmentError:
        self._counters.skipped += 1
        return EnrichmentError(
            f"skipped: {reason}", adapter=self.name, subject=subject_text(subject), skipped=True
        )

    async def _guarded(self, subject: Subject) -> Finding | None:
        if not self.breaker.allow():
            raise self._skip(subject, f"circuit open for {self.breaker.retry_in():.0f} s more")
        budget = self._budget()
        deadline = _DEADLINE.set(None if budget is None else time.monotonic() + budget)
        try:
            await self.bucket.acquire(self._left())
            finding = await self.fetch(subject)
        except Saturated as exc:  # no turn in time (before the request, or a retry)
            raise self._skip(subject, exc.reason()) from None
        except HttpError as exc:
            if exc.status == 429:  # given up: the pause holds back the look-ups to come
                self._retried(exc)
                if exc.spent or (exc.retry_after or 0.0) >= self.http.max_retry_time:
                    wait = Saturated(
                        max(self.bucket.paused_for(), exc.retry_after or 0.0), paused=True
                    )
                    raise self._skip(subject, wait.reason()) from None
            if exc.breaks:
                self.breaker.failure()
            else:
                self.breaker.success()
            self._counters.failures += 1
            raise
        except EnrichmentError:
            self._counters.failures += 1
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.breaker.success()  # the service answered; its answer was odd
            self._counters.failures += 1
            raise EnrichmentError(
                self.http.scrub(f"unexpected answer: {type(exc).__name__}: {exc}")[:300],
                adapter=self.name,
                subject=subject_text(subject),
            ) from None
        except Exception as exc:
            self._counters.failures += 1
            raise EnrichmentError(
                self.http.scrub(f"failed: {type(exc).__name__}: {exc}")[:300],
                adapter=self.name,
                subject=subject_text(subject),
            ) from None
        finally:
            _DEADLINE.reset(deadline)
            # a half-open trial that ended without a verdict (cancelled by the look-up's
            # time limit, a skip, or an error that says nothing of the service) lets
            # another try
            self.breaker.release()
        self.breaker.success()
        self.bucket.answered()
        return finding

    async def acheck(self) -> str:
        """Test the connection and the credential with one look-up (`fido check`).

        Looks up the first of `probes` this service accepts, past the cache, under the
        rate limit (it uses one look-up of the plan's quota) and the breaker.

        Returns:
            What was looked up, how long it took and the answer.

        Raises:
            EnrichmentError: The service could not be reached or refused the request
                (a wrong key: 401 or 403).
        """
        subject = next((s for s in self.probes if self.accepts(s)), None)
        if subject is None:
            return "no probe subject accepted: connectivity not tested"
        started = time.monotonic()
        try:
            finding = await self._guarded(subject)
        except HttpError as exc:
            raise EnrichmentError(
                self.http.scrub(str(exc)), adapter=self.name, subject=subject_text(subject)
            ) from None
        answer = "not found" if finding is None else type(finding).__name__
        if isinstance(finding, Reputation):
            answer = finding.verdict.value
        return (
            f"looked up {subject_text(subject)} in "
            f"{(time.monotonic() - started) * 1000:.0f} ms: {answer}"
        )

    def stats(self) -> dict[str, Any]:
        """Look-ups, cache hits and hit rate, requests, retries, failures, skips, the rate.

        `skipped`: look-ups skipped by the breaker, the rate limit or a spent quota;
        `withheld`: internal indicators not sent; `rate_waits`: turns waited for,
        `rate_refused`: turns refused (beyond `max_wait`) by the bucket, shared with
        every enricher of the service and credential.
        """
        counters = self._counters
        answered = self.cache.hits + self.cache.misses + self.cache.shared
        return {
            "lookups": counters.lookups,
            "cache_hits": self.cache.hits,
            "cache_hit_rate": round(self.cache.hits / answered, 3) if answered else 0.0,
            "requests": self.http.requests,
            "retries": self.http.retries,
            "failures": counters.failures,
            "skipped": counters.skipped,
            "withheld": counters.withheld,
            "breaker": self.breaker.state,
            "rate_waits": self.bucket.waits,
            "rate_refused": self.bucket.refused,
        }

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.http.aclose()


def _suffixes(value: Any) -> tuple[str, ...]:
    """The `internal_domains` option: domain suffixes, lowercased, without dots around.

    Raises:
        ConfigurationError: Not a list of domain names.
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset):
        raise ConfigurationError(
            f"internal_domains: expected a list of domain suffixes, not {value!r}"
        )
    found = []
    for item in items:
        text = item.strip().strip(".").lower() if isinstance(item, str) else ""
        if not text or any(c.isspace() or c in "/@:" for c in text):
            raise ConfigurationError(
                f"internal_domains: expected domain suffixes such as 'corp.example', not {item!r}"
            )
        found.append(text)
    return tuple(dict.fromkeys(found))
