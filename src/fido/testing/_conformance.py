"""The conformance kit: check that an adapter keeps its protocol, from an ordinary test.

Each check calls the adapter the way the pipeline does (plain or async methods, within a
timeout), collects every problem it finds, and raises one `AssertionError` listing them,
one per line. The checks work from sync tests and from async ones (an event loop already
running in the calling thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from fido import _serde
from fido._assessment import Action
from fido._deadletter import DeadLetter
from fido._errors import (
    DetectorError,
    EnrichmentError,
    FidoError,
    InvalidEvent,
    ResponderError,
    shorten,
)
from fido._event import Event
from fido._findings import HostContext, Reputation, UserContext
from fido._portal import call, run_sync
from fido.testing._fakes import SAMPLE_SUBJECTS, sample_incident

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from fido._findings import Subject
    from fido._incident import Incident

__all__ = ["check_detector", "check_enricher", "check_responder"]

_FINDINGS: Final = (Reputation, HostContext, UserContext)
_MAX_SHOWN: Final = 200

_STANDARD_RECORD_KEYS: Final = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}
)


class _CapturedLogs(logging.Handler):
    """While in its block, keep the full text of every record (root logger, DEBUG).

    The root logger's level is lowered to DEBUG while at least one capture runs.
    """

    _lock: Final = threading.Lock()
    _users = 0
    _saved = logging.WARNING

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []

    def __enter__(self) -> list[tuple[str, str]]:
        root, cls = logging.getLogger(), type(self)
        with cls._lock:
            if cls._users == 0:
                cls._saved = root.level
                root.setLevel(logging.DEBUG)
            cls._users += 1
            root.addHandler(self)
        return self.records

    def __exit__(self, *exc_info: object) -> None:
        root, cls = logging.getLogger(), type(self)
        with cls._lock:
            root.removeHandler(self)
            cls._users -= 1
            if cls._users == 0:
                root.setLevel(cls._saved)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [record.getMessage()]
        except Exception:
            parts = [str(record.msg), repr(record.args)]
        parts.extend(
            f"{key}={value!r}"
            for key, value in vars(record).items()
            if key not in _STANDARD_RECORD_KEYS
        )
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        self.records.append((f"a log record from logger {record.name!r}", "\n".join(parts)))


def _one_line(text: str) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _describe(error: BaseException) -> str:
    return _one_line(f"{type(error).__name__}: {error}")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend((current.__cause__, current.__context__))


@attrs.define(eq=False)
class _Outcome:
    """What one call gave: a value, an error, or nothing in time."""

    value: Any = None
    error: Exception | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


class _Session:
    """Calls one adapter within a timeout and collects the problems found."""

    def __init__(
        self,
        adapter: object,
        secrets: Iterable[str],
        timeout: float,
        allowed: tuple[type[FidoError], ...],
        methods: tuple[str, ...],
    ) -> None:
        self.adapter = adapter
        self.secrets = tuple(s for s in secrets if s)
        self.timeout = timeout
        self.allowed = allowed
        self.problems: list[str] = []
        self.errors: list[tuple[str, Exception]] = []
        self.outputs: list[tuple[str, str]] = []
        self.executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="fido-check")
        self.name = self._check_name()
        self.methods = {m: self._check_method(m) for m in methods}

    @property
    def expected(self) -> str:
        return " or ".join(cls.__name__ for cls in self.allowed)

    def mask(self, text: str) -> str:
        """`text` with the secrets replaced by `<secret #N>`."""
        for index, secret in enumerate(self.secrets, 1):
            text = text.replace(secret, f"<secret #{index}>")
        return text

    def problem(self, text: str) -> None:
        """Record a problem, with the secrets masked (before the line is cut)."""
        self.problems.append(_one_line(self.mask(text)))

    def _check_name(self) -> str | None:
        try:
            name: object = getattr(self.adapter, "name", None)
        except Exception as error:
            name = error
        if not isinstance(name, str) or not name.strip():
            self.problem(f"`name` must be a non-empty str, not {shorten(name, 60)}")
            return None
        return name

    def _check_method(self, method: str) -> Callable[..., Any] | None:
        try:
            found: Callable[..., Any] | None = getattr(self.adapter, method, None)
        except Exception:
            found = None
        if not callable(found):
            self.problem(f"`{method}` is missing or not callable")
            return None
        return found

    async def call(
        self, what: str, fn: Callable[..., Any], *args: Any, may_raise: bool = True
    ) -> _Outcome:
        """Call `fn(*args)` within the timeout; record a timeout or an error as problems."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            value = await call(fn, *args, timeout=self.timeout, executor=self.executor)
        except TimeoutError as error:
            ours = isinstance(error.__cause__, asyncio.CancelledError)
            if ours or loop.time() - started >= self.timeout:
                self.problem(f"{what} did not finish within {self.timeout:g} s")
                return _Outcome(timed_out=True)
            return self._failed(what, error, may_raise=may_raise)
        except Exception as error:
            return self._failed(what, error, may_raise=may_raise)
        return _Outcome(value=value)

    def _failed(self, what: str, error: Exception, *, may_raise: bool) -> _Outcome:
        self.errors.append((what, error))
        if not may_raise:
            self.problem(f"{what} raised {_describe(error)}: it must never raise")
        elif not isinstance(error, FidoError):
            self.problem(f"{what} raised {_describe(error)}: not wrapped (raise {self.expected})")
        elif not isinstance(error, self.allowed):
            self.problem(f"{what} raised {_describe(error)}, expected {self.expected}")
        return _Outcome(error=error)

    def output(self, where: str, data: Any) -> None:
        """Keep what the adapter returned, to look for secrets in it."""
        self.outputs.append((where, json.dumps(data, ensure_ascii=False, default=repr)))

    def check_secrets(self, logs: Sequence[tuple[str, str]]) -> None:
        if not self.secrets:
            return
        texts: list[tuple[str, str]] = []
        for label, render in (("repr(adapter)", repr), ("str(adapter)", str)):
            try:
                text = render(self.adapter)
            except Exception as broken:
                self.problem(f"{label} raised {_describe(broken)}")
                continue
            if not texts or text != texts[0][1]:  # str is often repr: report it once
                texts.append((label, text))
        for what, error in self.errors:
            for link in _chain(error):
                where = f"the {type(link).__name__} raised by {what}"
                texts.append((where, f"{link}\n{link!r}\n{link.args!r}"))
        texts.extend(logs)
        texts.extend(self.outputs)
        for where, text in texts:
            for index, secret in enumerate(self.secrets, 1):
                escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
                if secret in text or escaped in text:
                    self.problem(f"secret #{index} appears in {where}")

    def verdict(self) -> None:
        """Raise the problems found, if any."""
        if self.problems:
            label = self.mask(self.name or f"<{type(self.adapter).__name__} without a name>")
            lines = (f"{label}: {text}" for text in dict.fromkeys(self.problems))
            raise AssertionError("\n".join(lines))

    def run(self, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run the async `body` of a check with the logs captured, then judge."""
        try:
            with _CapturedLogs() as logs:
                run_sync(body)
            self.check_secrets(list(logs))
        finally:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.verdict()


def _materialized(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, listing an iterator it returns in the worker thread (within the timeout)."""

    def run(*args: Any) -> Any:
        result = fn(*args)
        return list(result) if isinstance(result, Iterator) else result

    return run


def _boxed(fn: Callable[..., Any]) -> Callable[..., tuple[Any]]:
    """`fn`, handing back what it returns as it is (an awaitable is not awaited)."""
    return lambda *args: (fn(*args),)


# -- detectors ----------------------------------------------------------------------------


def check_detector(
    detector: object,
    payloads: Iterable[Any],
    *,
    secrets: Iterable[str] = (),
    poll: bool = True,
    timeout: float = 5.0,
) -> None:
    """Check that `detector` keeps the `Detector` protocol.

    Parses each payload twice (the results must be equal: parsing is pure), and with
    `poll` polls from None and then from the cursor it got. Every item must be an `Event`
    or a `DeadLetter`, every event must carry the detector's name, every error must be a
    `DetectorError` (or `InvalidEvent`), every call must end within `timeout` seconds, and
    no secret may appear in the detector's repr, its errors, its log records or its events.

    Args:
        detector: The detector to check.
        payloads: Payloads in the product's format, as `parse` receives them.
        secrets: Strings that must never show (API keys, passwords).
        poll: Whether to check `poll` too (set False for parse-only tests).
        timeout: Seconds each call may take.

    Raises:
        AssertionError: The problems found, one per line.
        ValueError: There is nothing to check (no payloads and `poll=False`).
    """
    given = list(payloads)
    if not given and not poll:
        raise ValueError("nothing to check: give payloads, or poll=True")
    methods = ("parse", "poll") if poll else ("parse",)
    session = _Session(detector, secrets, timeout, (DetectorError, InvalidEvent), methods)

    async def body() -> None:
        parse = session.methods["parse"]
        if parse is not None:
            for index, payload in enumerate(given):
                what = f"parse(payloads[{index}])"
                await _check_parse(session, _materialized(parse), what, payload)
        poll_method = session.methods.get("poll")
        if poll_method is not None:
            poll_fn = _materialized(poll_method)
            cursor = await _check_poll(session, poll_fn, None)
            if cursor is not _STOP:
                await _check_poll(session, poll_fn, cursor)

    session.run(body)


_STOP: Final = object()


def _comparable(outcome: _Outcome) -> object:
    error = outcome.error
    return outcome.value if error is None else (type(error), str(error))


async def _check_parse(
    session: _Session, parse: Callable[..., Any], what: str, payload: Any
) -> None:
    first = await session.call(what, parse, payload)
    if first.timed_out:
        return
    if first.ok:
        items = _check_items(session, what, first.value)
        if items is None:
            return
        first = _Outcome(value=items)
    second = await session.call(f"{what} (again)", parse, payload)
    if second.timed_out:
        return
    if second.ok and _iterable(second.value):
        second = _Outcome(value=list(second.value))
    if _comparable(first) != _comparable(second):
        session.problem(f"{what} is not pure: a second call gave a different result")


def _iterable(value: object) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def _check_items(session: _Session, what: str, value: Any) -> list[Any] | None:
    if not _iterable(value):
        session.problem(
            f"{what} returned {type(value).__name__}, not an iterable of Event or DeadLetter"
        )
        return None
    items = list(value)
    for position, item in enumerate(items):
        if isinstance(item, Event):
            if item.detector != session.name:
                session.problem(
                    f"{what} made an event whose detector is {shorten(item.detector, 40)}, "
                    f"not the detector's name {shorten(session.name, 40)}"
                )
            session.output(f"the events from {what}", item.to_dict())
        elif isinstance(item, DeadLetter):
            session.output(f"the dead letters from {what}", item.to_dict())
        else:
            session.problem(
                f"{what} returned an item of type {type(item).__name__} at [{position}], "
                "not Event or DeadLetter"
            )
    return items


async def _check_poll(session: _Session, poll: Callable[..., Any], cursor: Any) -> Any:
    what = f"poll({cursor!r})"
    outcome = await session.call(what, poll, cursor)
    if not outcome.ok:
        return _STOP
    result = outcome.value
    if not isinstance(result, tuple) or len(result) != 2:
        session.problem(f"{what} returned {type(result).__name__}, not a tuple (items, cursor)")
        return _STOP
    items, new = result
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        session.problem(f"{what} returned items of type {type(items).__name__}, not a sequence")
    else:
        _check_items(session, what, items)
    if new is not None and not isinstance(new, str):
        session.problem(f"{what} returned a cursor of type {type(new).__name__}, not str or None")
        return _STOP
    session.output(f"the cursor from {what}", new)
    return new


# -- enrichers ----------------------------------------------------------------------------


def check_enricher(
    enricher: object,
    subjects: Iterable[Subject] | None = None,
    *,
    secrets: Iterable[str] = (),
    timeout: float = 10.0,
) -> None:
    """Check that `enricher` keeps the `Enricher` protocol.

    Asks `accepts` about every subject (it must return a bool and never raise), and
    `enrich` about each accepted one: the answer must be None or a finding
    (`Reputation`, `HostContext`, `UserContext`) whose `source` is the enricher's name and
    whose `subject` is None or the subject asked. Every error must be an
    `EnrichmentError`, every call must end within `timeout` seconds, and no secret may
    appear in the enricher's repr, its errors, its log records or its findings.

    Args:
        enricher: The enricher to check.
        subjects: What to ask about; by default an observable of every kind (public and
            internal addresses among them), a `Host` and a `User`.
        secrets: Strings that must never show (API keys, passwords).
        timeout: Seconds each call may take.

    Raises:
        AssertionError: The problems found, one per line.
    """
    asked = SAMPLE_SUBJECTS if subjects is None else tuple(subjects)
    session = _Session(enricher, secrets, timeout, (EnrichmentError,), ("accepts", "enrich"))

    async def body() -> None:
        accepts = session.methods["accepts"]
        if accepts is None:
            return
        accepted = [s for s in asked if await _check_accepts(session, _boxed(accepts), s)]
        if not accepted and asked:
            session.problem(f"accepts none of the {len(asked)} subjects: enrich was not checked")
        enrich = session.methods["enrich"]
        if enrich is not None:
            for subject in accepted:
                await _check_enrich(session, enrich, subject)

    session.run(body)


async def _check_accepts(session: _Session, accepts: Callable[..., Any], subject: Any) -> bool:
    what = f"accepts({subject!r})"
    outcome = await session.call(what, accepts, subject, may_raise=False)
    if not outcome.ok:
        return False
    (value,) = outcome.value
    if inspect.iscoroutine(value):
        value.close()
    if not isinstance(value, bool):
        session.problem(f"{what} returned {type(value).__name__}, not bool")
        return False
    return value


async def _check_enrich(session: _Session, enrich: Callable[..., Any], subject: Any) -> None:
    what = f"enrich({subject!r})"
    outcome = await session.call(what, enrich, subject)
    if not outcome.ok or outcome.value is None:
        return
    finding = outcome.value
    if not isinstance(finding, _FINDINGS):
        session.problem(
            f"{what} returned {type(finding).__name__}, "
            "not None, Reputation, HostContext or UserContext"
        )
        return
    session.output(f"the finding from {what}", _serde.dump(finding))
    if finding.source != session.name:
        session.problem(
            f"{what} made a finding whose source is {shorten(finding.source, 40)}, "
            f"not the enricher's name {shorten(session.name, 40)}"
        )
    if finding.subject is not None and finding.subject != subject:
        session.problem(f"{what} made a finding about another subject: {finding.subject!r}")


# -- responders ---------------------------------------------------------------------------


def check_responder(
    responder: object,
    *,
    incident: Incident | None = None,
    action: Action | None = None,
    secrets: Iterable[str] = (),
    timeout: float = 10.0,
) -> None:
    """Check that `responder` keeps the `Responder` protocol.

    Calls `respond` once (a responder acts: it is not called twice). It must return None
    or a str, raise only `ResponderError`, end within `timeout` seconds, and no secret may
    appear in the responder's repr, its errors, its log records or the detail it returns.

    Args:
        responder: The responder to check.
        incident: The incident to respond to; by default a small one built here
            (`inc-conformance`: one event with a host, a user and two observables).
        action: The action; by default `Action(name="notify")`.
        secrets: Strings that must never show (API keys, passwords, webhook URLs).
        timeout: Seconds the call may take.

    Raises:
        AssertionError: The problems found, one per line.
    """
    chosen = sample_incident() if incident is None else incident
    act = Action(name="notify") if action is None else action
    session = _Session(responder, secrets, timeout, (ResponderError,), ("respond",))

    async def body() -> None:
        respond = session.methods["respond"]
        if respond is None:
            return
        what = f"respond({chosen.id!r}, {act.name!r})"
        outcome = await session.call(what, respond, chosen, act)
        if not outcome.ok:
            return
        if outcome.value is not None and not isinstance(outcome.value, str):
            session.problem(f"{what} returned {type(outcome.value).__name__}, not None or str")
        session.output(f"the detail returned by {what}", outcome.value)

    session.run(body)
