"""Findings: what enrichers learn about a subject, each with its provenance."""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias, TypeVar

import attrs

from fido import _serde
from fido._entities import Host, User
from fido._enums import Enum, OrderedEnum
from fido._errors import InvalidRecord, shorten
from fido._observable import Observable

__all__ = [
    "Criticality",
    "Finding",
    "HostContext",
    "Reliability",
    "Reputation",
    "Subject",
    "UserContext",
    "Verdict",
]

_E = TypeVar("_E", bound=enum.Enum)

Subject: TypeAlias = Observable | Host | User
"""What an enricher looks up: an `Observable`, a `Host` or a `User`."""


class Verdict(Enum):
    """A source's judgement of a subject, as XSOAR's DBotScore has it (`score` 0-3)."""

    UNKNOWN = "unknown"
    BENIGN = "benign"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"

    @property
    def score(self) -> int:
        """The DBotScore number: 0 unknown, 1 benign, 2 suspicious, 3 malicious."""
        return _VERDICT_SCORES[self]


_VERDICT_SCORES: Final = {v: i for i, v in enumerate(Verdict)}


class Reliability(Enum):
    """How reliable a source is: the Admiralty code's letters, as XSOAR's sources use them."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"

    @property
    def description(self) -> str:
        """The Admiralty code's words for the letter (`C` is "Fairly reliable")."""
        return _RELIABILITY_WORDS[self]

    @classmethod
    def parse(cls, text: str) -> Reliability:
        """Read a letter (`"C"`), or a letter with its words (`"C - Fairly reliable"`).

        Case and spacing do not matter; the separator may be `-`, `:` or a space. The
        words alone (`"Fairly reliable"`) or a letter with other words are refused: a
        source's reliability is not guessed from its first letter.

        Raises:
            InvalidRecord: The text is not a letter from A to F, or not with its words.
        """
        given: object = text
        found = _RELIABILITY.fullmatch(given) if isinstance(given, str) else None
        if found is not None:
            member = cls(found.group(1).upper())
            words = found.group(2)
            if words is None or " ".join(words.split()).lower() == member.description.lower():
                return member
        raise InvalidRecord(
            "reliability is a letter from A to F, alone or with its Admiralty words "
            f"('C - Fairly reliable'), not {shorten(text, 50)}",
            field="reliability",
        )


_RELIABILITY: Final = re.compile(r"\s*([A-Fa-f])(?:\s*[-:\s]\s*(\S.*?))?\s*", re.S)
_RELIABILITY_WORDS: Final = {
    Reliability.A: "Completely reliable",
    Reliability.B: "Usually reliable",
    Reliability.C: "Fairly reliable",
    Reliability.D: "Not usually reliable",
    Reliability.E: "Unreliable",
    Reliability.F: "Reliability cannot be judged",
}


class Criticality(OrderedEnum):
    """How much a machine matters to the business: `LOW < MEDIUM < HIGH < CRITICAL`."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


def _convert_enum(cls: type[_E], field: str, value: object) -> _E:
    if isinstance(value, cls):
        return value
    try:
        return cls(value.lower() if isinstance(value, str) else value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in cls)
        raise InvalidRecord(
            f"{field} is one of {choices}, not {shorten(value, 50)}", field=field
        ) from None


def _verdict(value: Verdict | str) -> Verdict:
    return _convert_enum(Verdict, "verdict", value)


def _reliability(value: Reliability | str) -> Reliability:
    if isinstance(value, str):
        return Reliability.parse(value)
    return _convert_enum(Reliability, "reliability", value)


def _criticality(value: Criticality | str | None) -> Criticality | None:
    return None if value is None else _convert_enum(Criticality, "criticality", value)


def _strings(value: Iterable[str] | None) -> tuple[str, ...]:
    """A tuple without repeats; a single str is one item, None none (checked by `_texts`)."""
    given: object = value
    if given is None:
        return ()
    if isinstance(given, str):
        return (given,)
    if not isinstance(given, Iterable) or isinstance(given, Mapping):
        return given  # type: ignore[return-value]  # refused by the validator
    items = tuple(given)
    if all(isinstance(item, str) for item in items):
        return tuple(dict.fromkeys(items))
    return items


def _texts(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return
    wrong = (
        value if not isinstance(value, tuple) else next(v for v in value if not isinstance(v, str))
    )
    raise InvalidRecord(
        f"{attribute.name} is a list of str, not with {type(wrong).__name__}",
        record=type(instance).__name__,
        field=attribute.name,
    )


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidRecord(
            f"{attribute.name} is a str or None, not {type(value).__name__}",
            record=type(instance).__name__,
            field=attribute.name,
        )


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidRecord(
            f"{attribute.name} is true, false or None, not {type(value).__name__}",
            record=type(instance).__name__,
            field=attribute.name,
        )


def _required_flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidRecord(
            f"{attribute.name} is true or false, not {type(value).__name__}",
            record=type(instance).__name__,
            field=attribute.name,
        )


def _subject(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Observable | Host | User):
        raise InvalidRecord(
            f"subject is an Observable, a Host, a User or None, not {type(value).__name__}",
            record=type(instance).__name__,
            field=attribute.name,
        )


def _json(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, _serde.FrozenDict):  # checked and frozen already (attrs.evolve)
        return value
    try:
        result: dict[str, Any] = _serde.check_json(
            {} if value is None else value, "details", freeze=True
        )
    except _serde.LoadError as exc:
        raise InvalidRecord(exc.message, field=exc.path) from None
    return result


def _aware(value: datetime | None) -> datetime | None:
    checked: object = value
    if value is None:
        return None
    if not isinstance(checked, datetime):
        raise InvalidRecord(f"expected a datetime, not {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidRecord(
            f"{attribute.name} is a non-negative integer",
            record=type(instance).__name__,
            field=attribute.name,
        )


def _source(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecord(
            "source names the adapter that made the finding",
            record=type(instance).__name__,
            field=attribute.name,
        )


@attrs.frozen(kw_only=True)
class _Provenance:
    """Where a finding came from: every finding has these fields.

    Attributes:
        source: The name of the enricher (or feed) that made the finding.
        subject: What was looked up. Enrichers may leave it out: the pipeline fills it in.
        fetched_at: When the source was asked (the pipeline fills it in when left out).
            For a cached answer, when it was first fetched.
        from_cache: Whether the answer came from a cache rather than from the source.
    """

    source: str = attrs.field(validator=_source)
    subject: Subject | None = attrs.field(default=None, validator=_subject)
    fetched_at: datetime | None = attrs.field(default=None, converter=_aware)
    from_cache: bool = attrs.field(default=False, validator=_required_flag)

    def age(self, now: datetime) -> timedelta | None:
        """How old the answer is at `now`, if it is known when it was fetched."""
        return None if self.fetched_at is None else now - self.fetched_at


_SETATTR: Final = object.__setattr__
_COPIERS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}
"""Per finding class: its field names, and a getter of all of them at once."""


def _copier(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    names = tuple(field.name for field in attrs.fields(cls))
    made = _COPIERS[cls] = (names, operator.attrgetter(*names))
    return made


_FROM_CACHE: Final = attrs.fields(_Provenance).from_cache
_P = TypeVar("_P", bound=_Provenance)


def stamped(finding: _P, fetched_at: datetime, *, from_cache: bool) -> _P:
    """`finding` as `attrs.evolve(finding, fetched_at=..., from_cache=...)` makes it.

    The two new values are checked as `__init__` checks them; the other fields, checked
    when the finding was made, are not checked again: a cache hands out one stamped copy
    per look-up, and this costs a few microseconds where evolve costs several times more.

    Raises:
        InvalidRecord: `fetched_at` is not a datetime, or `from_cache` not a bool.
    """
    cls = type(finding)
    _required_flag(finding, _FROM_CACHE, from_cache)
    stamp = _aware(fetched_at)
    names, read = _COPIERS.get(cls) or _copier(cls)
    clone = object.__new__(cls)
    for name, value in zip(names, read(finding), strict=True):
        _SETATTR(clone, name, value)
    _SETATTR(clone, "fetched_at", stamp)
    _SETATTR(clone, "from_cache", from_cache)
    return clone


@attrs.frozen(kw_only=True)
class Reputation(_Provenance):
    """What a threat intelligence source says about a subject.

    Args:
        source: The enricher's name.
        verdict: The source's judgement.
        reliability: How reliable the source is (Admiralty code, default C).
        detections: How many engines or analysts flagged it (VirusTotal's malicious count).
        total: Out of how many.
        score: The source's own 0-100 score where it has one (AbuseIPDB confidence,
            Threat Grid threat score).
        label: A threat name or family (`"trojan.emotet"`).
        tags: The source's tags.
        link: A link to the source's page on the subject, for analysts.
        details: Further JSON data from the source.
        subject: What was looked up (the pipeline fills it in).
        fetched_at: When the source was asked (the pipeline fills it in).
        from_cache: Whether the answer came from a cache.

    Raises:
        InvalidRecord: A value is out of range (`detections` above `total`, say).
    """

    verdict: Verdict = attrs.field(default=Verdict.UNKNOWN, converter=_verdict)
    reliability: Reliability = attrs.field(default=Reliability.C, converter=_reliability)
    detections: int | None = attrs.field(default=None, validator=_count)
    total: int | None = attrs.field(default=None, validator=_count)
    score: int | None = attrs.field(default=None, validator=_count)
    label: str | None = attrs.field(default=None, validator=_text)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_texts)
    link: str | None = attrs.field(default=None, validator=_text)
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_json, hash=False)

    def __attrs_post_init__(self) -> None:
        if self.detections is not None and self.total is not None and self.detections > self.total:
            raise InvalidRecord(
                "detections cannot exceed total", record="Reputation", field="detections"
            )
        if self.score is not None and self.score > 100:
            raise InvalidRecord("score is between 0 and 100", record="Reputation", field="score")


@attrs.frozen(kw_only=True)
class HostContext(_Provenance):
    """What an inventory, a CMDB or a directory knows about a machine.

    Unknown facts are None, never a guess: the scoring policy decides what an unknown
    means.

    Args:
        source: The enricher's name.
        owner: The person or team responsible.
        os: The operating system.
        criticality: How much the machine matters to the business.
        is_server: Whether it is a server (else a workstation or a device).
        managed: Whether it is known to and managed by IT.
        av_installed: Whether endpoint protection is installed.
        av_running: Whether endpoint protection is running.
        missing_critical_patches: How many critical patches are missing.
        missing_high_patches: How many high-severity patches are missing.
        groups: Asset groups it belongs to (`"pci"`, `"domain-controllers"`).
        tags: Further labels.
        location: Site or region.
        description: The inventory's description.
        dn: The directory's distinguished name, where it came from a directory.
        last_seen: When the inventory last saw it.
        details: Further JSON data from the source.
        subject: What was looked up (the pipeline fills it in).
        fetched_at: When the source was asked (the pipeline fills it in).
        from_cache: Whether the answer came from a cache.
    """

    owner: str | None = attrs.field(default=None, validator=_text)
    os: str | None = attrs.field(default=None, validator=_text)
    criticality: Criticality | None = attrs.field(default=None, converter=_criticality)
    is_server: bool | None = attrs.field(default=None, validator=_flag)
    managed: bool | None = attrs.field(default=None, validator=_flag)
    av_installed: bool | None = attrs.field(default=None, validator=_flag)
    av_running: bool | None = attrs.field(default=None, validator=_flag)
    missing_critical_patches: int | None = attrs.field(default=None, validator=_count)
    missing_high_patches: int | None = attrs.field(default=None, validator=_count)
    groups: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_texts)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_texts)
    location: str | None = attrs.field(default=None, validator=_text)
    description: str | None = attrs.field(default=None, validator=_text)
    dn: str | None = attrs.field(default=None, validator=_text)
    last_seen: datetime | None = attrs.field(default=None, converter=_aware)
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_json, hash=False)


@attrs.frozen(kw_only=True)
class UserContext(_Provenance):
    """What a directory (Active Directory, LDAP, an HR system) knows about an account.

    Args:
        source: The enricher's name.
        display_name: The person's name.
        email: The mail address.
        title: The job title.
        department: The department.
        manager: The manager's name.
        manager_email: The manager's mail address.
        employee_type: Employee, contractor, service, ...
        location: Office, city or region.
        phone: A phone number.
        groups: The groups the account is a member of (nested groups included where the
            directory resolves them).
        privileged: Whether the account is privileged (the source's own judgement; the
            scoring policy also matches `groups` against its own list).
        enabled: Whether the account is enabled.
        locked: Whether the account is locked out.
        service_account: Whether it is a service (non-human) account.
        password_never_expires: Whether the password is exempt from expiry.
        last_logon: The last logon the directory recorded.
        password_last_set: When the password was last set.
        account_expires: When the account expires (None: never, or unknown).
        dn: The distinguished name.
        tags: Further labels.
        details: Further JSON data from the source.
        subject: What was looked up (the pipeline fills it in).
        fetched_at: When the source was asked (the pipeline fills it in).
        from_cache: Whether the answer came from a cache.
    """

    display_name: str | None = attrs.field(default=None, validator=_text)
    email: str | None = attrs.field(default=None, validator=_text)
    title: str | None = attrs.field(default=None, validator=_text)
    department: str | None = attrs.field(default=None, validator=_text)
    manager: str | None = attrs.field(default=None, validator=_text)
    manager_email: str | None = attrs.field(default=None, validator=_text)
    employee_type: str | None = attrs.field(default=None, validator=_text)
    location: str | None = attrs.field(default=None, validator=_text)
    phone: str | None = attrs.field(default=None, validator=_text)
    groups: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_texts)
    privileged: bool | None = attrs.field(default=None, validator=_flag)
    enabled: bool | None = attrs.field(default=None, validator=_flag)
    locked: bool | None = attrs.field(default=None, validator=_flag)
    service_account: bool | None = attrs.field(default=None, validator=_flag)
    password_never_expires: bool | None = attrs.field(default=None, validator=_flag)
    last_logon: datetime | None = attrs.field(default=None, converter=_aware)
    password_last_set: datetime | None = attrs.field(default=None, converter=_aware)
    account_expires: datetime | None = attrs.field(default=None, converter=_aware)
    dn: str | None = attrs.field(default=None, validator=_text)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_texts)
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_json, hash=False)


Finding: TypeAlias = Reputation | HostContext | UserContext
"""What an enricher returns: a `Reputation`, a `HostContext` or a `UserContext`."""
