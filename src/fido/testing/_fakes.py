"""In-memory adapters for tests (a detector, an enricher, a responder), and sample data.

Each fake follows its protocol exactly (it passes the conformance checks of
`fido.testing`), does no I/O, is thread-safe (the pipeline runs plain methods in worker
threads) and holds no secret.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from fido._deadletter import DeadLetter
from fido._entities import Host, User
from fido._errors import DetectorError, InvalidEvent
from fido._event import Event
from fido._findings import HostContext, Reliability, Reputation, UserContext, Verdict
from fido._incident import Incident
from fido._observable import Observable
from fido._severity import Severity

if TYPE_CHECKING:
    from fido._assessment import Action
    from fido._findings import Finding, Subject

__all__ = [
    "DEAD_LETTER_AT",
    "SAMPLE_SUBJECTS",
    "Answer",
    "FakeDetector",
    "Item",
    "RecordingResponder",
    "StaticEnricher",
    "sample_incident",
]

Item: TypeAlias = Event | Mapping[str, Any]
"""What a `FakeDetector` holds: events, or mappings in the `Event.to_dict()` form."""

Answer: TypeAlias = Reputation | HostContext | UserContext | Verdict | Exception | None
"""What a `StaticEnricher` answers for a subject."""

DEAD_LETTER_AT: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""The time a `FakeDetector` stamps on its dead letters unless told otherwise (parse is pure)."""

_FINDINGS: Final = (Reputation, HostContext, UserContext)
_SAMPLE_AT: Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_SHA256: Final = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

SAMPLE_SUBJECTS: Final[tuple[Subject, ...]] = (
    *(
        Observable.parse(text)
        for text in (
            "44d88612fea8a8f36de82e1278abb02f",  # md5
            "3395856ce81f2b7382dee72602f798b642f14140",  # sha1
            _SHA256,
            "8.8.8.8",
            "10.0.0.1",  # internal: enrichers that send subjects out should decline it
            "2001:4860:4860::8888",
            "evil.example",
            "http://evil.example/a",
            "bob@evil.example",
            "invoice.pdf.exe",
        )
    ),
    Host(name="ws-042", ip="10.1.2.3"),
    User(name="bdoe", domain="corp"),
)
"""A subject of every kind: an observable of each `ObservableKind`, a `Host`, a `User`."""


def sample_incident() -> Incident:
    """A small incident, `inc-conformance`: one event with a host, a user, two observables."""
    event = Event(
        detector="conformance",
        id="alert-conformance",
        time=_SAMPLE_AT,
        title="Trojan detected",
        severity=Severity.HIGH,
        category="malware",
        host=Host(name="ws-042", ip="10.1.2.3"),
        user=User(name="bdoe", domain="corp"),
        observables=[_SHA256, "evil.example"],
    )
    return Incident(
        id="inc-conformance", created_at=_SAMPLE_AT, updated_at=_SAMPLE_AT, events=(event,)
    )


class FakeDetector:
    """A detector that serves a list of items: to `parse`, and to `poll` by index.

    Items are `Event`s or mappings in the `Event.to_dict()` form; a mapping without a
    `"detector"` key gets this detector's name. A mapping that `Event.from_dict` refuses
    becomes a `DeadLetter` (stamped with `at`), so tests can feed bad alerts too.

    The polling cursor is the index of the next item, as a decimal string (None means 0).
    Items can be added later with `add`, and `fail_polls` makes the next polls fail, for
    tests of the pipeline's run loop.

    Args:
        items: The items `poll` serves, in order.
        name: The detector's name.
        batch: At most this many items per poll (None: all that remain).
        fail_polls: How many of the next polls raise `DetectorError`.
        at: The time stamped on dead letters.

    Raises:
        ValueError: `batch` is not a positive integer or `fail_polls` is negative.

    Example:
        >>> detector = FakeDetector([event], batch=10)
        >>> events, cursor = detector.poll(None)
    """

    def __init__(
        self,
        items: Iterable[Item] = (),
        *,
        name: str = "fake",
        batch: int | None = None,
        fail_polls: int = 0,
        at: datetime = DEAD_LETTER_AT,
    ) -> None:
        if batch is not None and (isinstance(batch, bool) or batch < 1):
            raise ValueError("batch is a positive number of items, or None for all")
        if fail_polls < 0:
            raise ValueError("fail_polls cannot be negative")
        self.name = name
        self.batch = batch
        self.at = at
        self._lock = threading.Lock()
        self._items: list[Item] = list(items)
        self._polls = 0
        self._fail_polls = fail_polls

    def __repr__(self) -> str:
        with self._lock:
            count, polls = len(self._items), self._polls
        return f"FakeDetector(name={self.name!r}, items={count}, polls={polls})"

    @property
    def items(self) -> tuple[Item, ...]:
        """The items, in order (a snapshot)."""
        with self._lock:
            return tuple(self._items)

    @property
    def polls(self) -> int:
        """How many times `poll` was called, failed polls included."""
        with self._lock:
            return self._polls

    @property
    def fail_polls(self) -> int:
        """How many of the next polls raise `DetectorError`; set it to make polls fail."""
        with self._lock:
            return self._fail_polls

    @fail_polls.setter
    def fail_polls(self, value: int) -> None:
        if value < 0:
            raise ValueError("fail_polls cannot be negative")
        with self._lock:
            self._fail_polls = value

    def add(self, *items: Item) -> None:
        """Append items, to be served by the next polls."""
        with self._lock:
            self._items.extend(items)

    def parse(self, payload: Any) -> list[Event | DeadLetter]:
        """Turn a payload into events: pure, the same payload always gives the same list.

        Args:
            payload: An `Event`, a mapping in the `Event.to_dict()` form, or a list (or
                tuple) of them.

        Returns:
            The events, with a `DeadLetter` in place of each item that is not a valid
            event.

        Raises:
            DetectorError: The payload is neither an event, a mapping nor a list.
        """
        if isinstance(payload, Event | Mapping):
            return [self._one(payload)]
        if isinstance(payload, list | tuple):
            return [self._one(item) for item in payload]
        raise DetectorError(
            f"a payload is an Event, a mapping or a list of them, not {type(payload).__name__}",
            adapter=self.name,
        )

    def poll(self, cursor: str | None) -> tuple[list[Event | DeadLetter], str]:
        """Serve the items from index `cursor` on: `batch` of them, or all that remain.

        Args:
            cursor: The index of the next item as a decimal string; None means 0.

        Returns:
            The parsed items and the index after them, as a string.

        Raises:
            DetectorError: The cursor is not a decimal index, or a failure was asked for
                with `fail_polls`.
        """
        with self._lock:
            self._polls += 1
            if self._fail_polls:
                self._fail_polls -= 1
                raise DetectorError("the fake source is down (fail_polls)", adapter=self.name)
            start = self._index(cursor)
            end = None if self.batch is None else start + self.batch
            chunk = self._items[start:end]
        return [self._one(item) for item in chunk], str(start + len(chunk))

    def _index(self, cursor: object) -> int:
        if cursor is None:
            return 0
        if not isinstance(cursor, str) or not cursor.isascii() or not cursor.isdigit():
            raise DetectorError(
                f"the cursor is a decimal index, not {str(cursor)[:40]!r}", adapter=self.name
            )
        return int(cursor)

    def _one(self, item: object) -> Event | DeadLetter:
        if isinstance(item, Event):
            return item
        data: object = item
        if isinstance(item, Mapping) and "detector" not in item:
            data = {**item, "detector": self.name}
        try:
            return Event.from_dict(data)  # type: ignore[arg-type]  # refused if not a mapping
        except InvalidEvent as error:
            return DeadLetter.from_error(item, error, at=self.at, detector=self.name)


class StaticEnricher:
    """An enricher with fixed answers, for tests.

    Keys are subjects (`Observable`, `Host`, `User`) or strings that `Observable.parse`
    accepts. Values are the answers:

    - a `Finding` (`Reputation`, `HostContext`, `UserContext`): returned as it is;
    - a `Verdict`: returned as `Reputation(source=name, verdict=..., reliability=...)`;
    - an `Exception` instance: raised (use `fido.EnrichmentError` for a conformant
      failure, anything else to test how the pipeline treats a broken adapter);
    - None: the source knows nothing of the subject.

    `accepts` is True for the subjects in the mapping, and `enrich` answers None for the
    others. Every call to `enrich` is recorded in `calls`.

    Args:
        answers: The answers, by subject.
        name: The enricher's name (the `source` of the findings it makes).
        delay: Seconds to wait (`asyncio.sleep`) before answering; a large delay
            simulates a source that hangs.
        reliability: The reliability of the reputations made from a `Verdict`.

    Raises:
        InvalidObservable: A key is a string that is not an observable.
        TypeError: A key is not a subject (an Observable, a Host, a User or a str), or a
            value is not one of the answers above.
    """

    def __init__(
        self,
        answers: Mapping[Any, Answer],
        *,
        name: str = "static",
        delay: float = 0.0,
        reliability: Reliability = Reliability.C,
    ) -> None:
        self.name = name
        self.delay = delay
        self.reliability = reliability
        self._answers: dict[Subject, Answer] = {}
        for key, answer in answers.items():
            if not isinstance(answer, (*_FINDINGS, Verdict, Exception, type(None))):
                raise TypeError(
                    "an answer is a Finding, a Verdict, an Exception or None, "
                    f"not {type(answer).__name__}"
                )
            if not isinstance(key, str | Observable | Host | User):
                raise TypeError(f"a key is a subject or a str, not {type(key).__name__}")
            subject = Observable.parse(key) if isinstance(key, str) else key
            self._answers[subject] = answer
        self._lock = threading.Lock()
        self._calls: list[Subject] = []

    def __repr__(self) -> str:
        return f"StaticEnricher(name={self.name!r}, subjects={len(self._answers)})"

    @property
    def calls(self) -> list[Subject]:
        """The subjects `enrich` was asked about, in order (a snapshot)."""
        with self._lock:
            return list(self._calls)

    @property
    def subjects(self) -> tuple[Subject, ...]:
        """The subjects this enricher has an answer for."""
        return tuple(self._answers)

    def accepts(self, subject: Subject) -> bool:
        """Whether the subject is one of the mapping's keys (never raises)."""
        try:
            return subject in self._answers
        except TypeError:  # an unhashable object is no subject of ours
            return False

    async def enrich(self, subject: Subject) -> Finding | None:
        """Answer for the subject, after `delay` seconds.

        Args:
            subject: What to look up.

        Returns:
            The configured finding (a `Verdict` made a `Reputation`), or None.

        Raises:
            Exception: The exception configured for the subject.
        """
        with self._lock:
            self._calls.append(subject)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        answer = self._answers.get(subject) if self.accepts(subject) else None
        if isinstance(answer, Exception):
            raise answer.with_traceback(None)  # no traceback piling up on a reused error
        if isinstance(answer, Verdict):
            return Reputation(source=self.name, verdict=answer, reliability=self.reliability)
        return answer


class RecordingResponder:
    """A responder that records what it is asked to do, for tests.

    `respond` is a plain method (the pipeline runs it in a worker thread): it waits
    `delay` seconds (`time.sleep`), then raises `fail` if it is set, else records the
    call in `seen` and `incidents` and returns a detail such as `"recorded 3"`.

    Args:
        name: The responder's name.
        fail: An exception to raise instead of recording (use `fido.ResponderError` for
            a conformant failure). It may be set or cleared later.
        delay: Seconds to wait before answering.
    """

    def __init__(
        self, name: str = "recorder", *, fail: Exception | None = None, delay: float = 0.0
    ) -> None:
        self.name = name
        self.fail = fail
        self.delay = delay
        self._lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []
        """`(incident.id, action.name)` for every action carried out, in order."""
        self.incidents: list[Incident] = []
        """The incident of every action carried out, in order."""
        self._attempts = 0

    def __repr__(self) -> str:
        with self._lock:
            count = len(self.seen)
        return f"RecordingResponder(name={self.name!r}, seen={count})"

    @property
    def attempts(self) -> int:
        """How many times `respond` was called, failed calls included."""
        with self._lock:
            return self._attempts

    def respond(self, incident: Incident, action: Action) -> str:
        """Record the action for the incident.

        Args:
            incident: The incident.
            action: The action to carry out.

        Returns:
            `"recorded N"`, N being how many actions are recorded now.

        Raises:
            Exception: `fail`, when it is set.
        """
        with self._lock:
            self._attempts += 1
        if self.delay > 0:
            time.sleep(self.delay)
        fail = self.fail
        if fail is not None:
            raise fail.with_traceback(None)
        with self._lock:
            self.seen.append((incident.id, action.name))
            self.incidents.append(incident)
            return f"recorded {len(self.seen)}"
