"""The errors fido raises: one tree, rooted at `FidoError`.

```text
FidoError
├── InvalidObservable      (also ValueError) an indicator that cannot be parsed or normalized
├── InvalidEvent           (also ValueError) an alert that does not make a valid Event
├── InvalidRecord          (also ValueError) a finding, incident or other record that is malformed
├── ConfigurationError     a configuration or policy file that is wrong (file, key, line)
├── ApprovalError          an approval that cannot be given: unknown, answered, expired
├── ConflictError          a save that would undo another's: the incident changed since it was read
├── StoreBusy              another `fido run` holds the store (one runner per store)
├── AdapterError           an adapter failed (adapter)
│   ├── DetectorError          parsing or polling a detector
│   ├── EnrichmentError        looking up a subject (subject)
│   └── ResponderError         carrying out an action (incident_id, action)
└── ScoringError           the scoring engine or the policy could not assess an incident
```

Every error carries its context (the adapter, the event, the field, ...) both as attributes
and in its message, so a log line says where the problem came from. Values that come from an
alert are attacker-controlled: they appear in messages only through `repr` and shortened,
so they cannot forge log lines; every context value that is not short and printable (a
field path with an alert's key in it, say) is shown the same way. No error ever holds a
secret: adapters name the credential (`api_key_env="VT_API_KEY"`), never its value.

Suppressing an event (an allowlist match, a duplicate) is not an error: it is recorded on
the incident, and nothing is raised.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AdapterError",
    "ApprovalError",
    "ConfigurationError",
    "ConflictError",
    "DetectorError",
    "EnrichmentError",
    "FidoError",
    "InvalidEvent",
    "InvalidObservable",
    "InvalidRecord",
    "ResponderError",
    "ScoringError",
    "StoreBusy",
]

_MAX_VALUE = 80


def shorten(value: object, limit: int = _MAX_VALUE) -> str:
    """Render an untrusted value for a message: `repr`, cut to `limit` characters."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _rebuild(cls: type[FidoError], message: str, state: dict[str, Any]) -> FidoError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class FidoError(Exception):
    """The root of every error that fido raises.

    Args:
        message: What went wrong, in one sentence.

    Attributes:
        message: The message without its context.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def context(self) -> dict[str, str]:
        """The context of the error (adapter, event, field, ...) that is known, as strings."""
        return {}

    def __str__(self) -> str:
        context = self.context()
        if not context:
            return self.message
        details = ", ".join(f"{key}={value}" for key, value in context.items())
        return f"{self.message} ({details})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k != "message"}
        return (_rebuild, (type(self), self.message, {"message": self.message, **state}))


def _safe(value: object) -> str:
    """A context value for a message: as it is when short and printable, else `shorten`ed.

    Field paths and names can come from an alert (`extra.<key>`, a detector's name): a
    newline or a bidi control in them must not forge or garble a log line.
    """
    text = str(value)
    if len(text) <= _MAX_VALUE and text.isprintable():
        return text
    return shorten(text)


def _context(**items: object) -> dict[str, str]:
    return {key: _safe(value) for key, value in items.items() if value is not None}


class InvalidObservable(FidoError, ValueError):
    """An indicator that cannot be parsed, inferred or normalized.

    Args:
        message: What is wrong with the value.
        value: The offending input (shown shortened, through `repr`).
        kind: The kind it was parsed as, if one was given or inferred.
        field: Where the value came from, for example `observables[2]`.
    """

    def __init__(
        self,
        message: str,
        *,
        value: object = None,
        kind: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.value = value
        self.kind = kind
        self.field = field

    def context(self) -> dict[str, str]:
        value = None if self.value is None else shorten(self.value)
        return _context(kind=self.kind, field=self.field, value=value)


class InvalidEvent(FidoError, ValueError):
    """An alert that does not make a valid `Event`.

    Args:
        message: What is wrong.
        detector: The detector that produced the alert, if known.
        event_id: The alert's id, if known.
        field: The field at fault, for example `time` or `host.ip`.
    """

    def __init__(
        self,
        message: str,
        *,
        detector: str | None = None,
        event_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.detector = detector
        self.event_id = event_id
        self.field = field

    def context(self) -> dict[str, str]:
        return _context(
            detector=self.detector,
            event_id=None if self.event_id is None else shorten(self.event_id),
            field=self.field,
        )


class InvalidRecord(FidoError, ValueError):
    """A finding, an incident or another record that is malformed.

    Raised when such a record is built with a bad value, or loaded from a dict (a store,
    a JSON file) that does not fit its schema.

    Args:
        message: What is wrong.
        record: The kind of record (`"Reputation"`, `"Incident"`).
        field: The field at fault, as a dotted path (`findings[2].verdict`).
    """

    def __init__(
        self, message: str, *, record: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.record = record
        self.field = field

    def context(self) -> dict[str, str]:
        return _context(record=self.record, field=self.field)


class ConfigurationError(FidoError):
    """A configuration, policy or allowlist that is wrong.

    Args:
        message: What is wrong and what was expected.
        file: The file the setting was read from, if any.
        key: The dotted key at fault, for example `threat.verdict.malicious`.
        line: The line of `key` in `file`, where it could be found.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.key = key
        self.line = line

    def context(self) -> dict[str, str]:
        return _context(file=self.file, key=self.key, line=self.line)


class ApprovalError(FidoError):
    """An approval that cannot be given or refused.

    The incident or the action has no pending approval, the approval was answered
    already (each is answered once), or it expired.

    Args:
        message: What is wrong.
        incident_id: The incident.
        action: The action's name.
    """

    def __init__(
        self, message: str, *, incident_id: str | None = None, action: str | None = None
    ) -> None:
        super().__init__(message)
        self.incident_id = incident_id
        self.action = action

    def context(self) -> dict[str, str]:
        return _context(incident_id=self.incident_id, action=self.action)


class ConflictError(FidoError):
    """A save that would undo another's: the incident changed in the store since it was read.

    Two processes on one store (`fido run` and `fido approve`) may work on one incident at
    once; each save names the revision it started from, and the store refuses a stale one.
    The pipeline reloads the incident and does its work again; code of your own that saves
    with `expected=` does the same.

    Args:
        message: What happened.
        incident_id: The incident.
        expected: The revision the save started from.
        found: The revision in the store.
    """

    def __init__(
        self,
        message: str,
        *,
        incident_id: str | None = None,
        expected: int | None = None,
        found: int | None = None,
    ) -> None:
        super().__init__(message)
        self.incident_id = incident_id
        self.expected = expected
        self.found = found

    def context(self) -> dict[str, str]:
        return _context(incident_id=self.incident_id, expected=self.expected, found=self.found)


class StoreBusy(FidoError):
    """Another `fido run` holds the store: one run loop per store at a time.

    Args:
        message: What happened.
        holder: The other runner's id.
        host: The host it runs on.
        pid: Its process id.
        since: When it took the store (ISO 8601 UTC).
    """

    def __init__(
        self,
        message: str,
        *,
        holder: str | None = None,
        host: str | None = None,
        pid: int | None = None,
        since: str | None = None,
    ) -> None:
        super().__init__(message)
        self.holder = holder
        self.host = host
        self.pid = pid
        self.since = since

    def context(self) -> dict[str, str]:
        return _context(host=self.host, pid=self.pid, since=self.since)


class AdapterError(FidoError):
    """An adapter (detector, enricher, responder) failed.

    Args:
        message: What failed. It never contains a credential.
        adapter: The adapter's name.
        event_id: The event being handled, if any.
    """

    def __init__(
        self, message: str, *, adapter: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.adapter = adapter
        self.event_id = event_id

    def context(self) -> dict[str, str]:
        return _context(
            adapter=self.adapter,
            event_id=None if self.event_id is None else shorten(self.event_id),
        )


class DetectorError(AdapterError):
    """A detector could not parse a payload or poll its source."""


class EnrichmentError(AdapterError):
    """An enricher could not look up a subject.

    Args:
        message: What failed. It never contains a credential.
        adapter: The enricher's name.
        subject: The subject looked up, as text (for example `sha256:44d8...`).
        event_id: The event being handled, if any.
        skipped: True when the look-up was not even attempted (a circuit breaker is
            open, a quota is spent): the incident records it as skipped, not failed.
    """

    def __init__(
        self,
        message: str,
        *,
        adapter: str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
        skipped: bool = False,
    ) -> None:
        super().__init__(message, adapter=adapter, event_id=event_id)
        self.subject = subject
        self.skipped = skipped

    def context(self) -> dict[str, str]:
        subject = None if self.subject is None else shorten(self.subject)
        return {**super().context(), **_context(subject=subject)}


class ResponderError(AdapterError):
    """A responder could not carry out an action.

    Args:
        message: What failed. It never contains a credential.
        adapter: The responder's name.
        incident_id: The incident the action was for.
        action: The action's name, for example `ticket`.
    """

    def __init__(
        self,
        message: str,
        *,
        adapter: str | None = None,
        incident_id: str | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(message, adapter=adapter)
        self.incident_id = incident_id
        self.action = action

    def context(self) -> dict[str, str]:
        return {**super().context(), **_context(incident_id=self.incident_id, action=self.action)}


class ScoringError(FidoError):
    """The scoring engine or the policy could not assess an incident.

    Args:
        message: What went wrong.
        rule: The policy rule involved, for example `machine.asset_groups.pci`.
        incident_id: The incident being assessed, if known.
    """

    def __init__(
        self, message: str, *, rule: str | None = None, incident_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.incident_id = incident_id

    def context(self) -> dict[str, str]:
        return _context(rule=self.rule, incident_id=self.incident_id)
