"""Findings: what enrichers learn about a subject, each with its provenance."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias, TypeVar

import attrs

from fido import _serde
from fido._entities import Host, User
from fido._enums import Enum, OrderedEnum
from fido._errors import InvalidRecord
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
        """Read a letter, or XSOAR's form `"C - Fairly reliable"`, ignoring case.

        Raises:
            InvalidRecord: The text does not start with a letter from A to F.
        """
        letter = text.strip()[:1].upper()
        try:
            return cls(letter)
        except ValueError:
            raise InvalidRecord(
                f"reliability is a letter from A to F, not {text[:40]!r}", field="reliability"
            ) from None


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
            f"{field} is one of {choices}, not {str(value)[:40]!r}", field=field
        ) from None


def _verdict(value: Verdict | str) -> Verdict:
    return _convert_enum(Verdict, "verdict", value)


def _reliability(value: Reliability | str) -> Reliability:
    if isinstance(value, str):
        return Reliability.parse(value)
    return _convert_enum(Reliability, "reliability", value)


def _criticality(value: Criticality | str | None) -> Criticality | None:
    return None if value is None else _convert_enum(Criticality, "criticality", value)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(dict.fromkeys(str(v) for v in value))


def _json(value: Mapping[str, Any] | None) -> dict[str, Any]:
    try:
        result: dict[str, Any] = _serde.check_json({} if value is None else value, "details")
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
    subject: Subject | None = None
    fetched_at: datetime | None = attrs.field(default=None, converter=_aware)
    from_cache: bool = False

    def age(self, now: datetime) -> timedelta | None:
        """How old the answer is at `now`, if it is known when it was fetched."""
        return None if self.fetched_at is None else now - self.fetched_at


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
    label: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    link: str | None = None
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

    owner: str | None = None
    os: str | None = None
    criticality: Criticality | None = attrs.field(default=None, converter=_criticality)
    is_server: bool | None = None
    managed: bool | None = None
    av_installed: bool | None = None
    av_running: bool | None = None
    missing_critical_patches: int | None = attrs.field(default=None, validator=_count)
    missing_high_patches: int | None = attrs.field(default=None, validator=_count)
    groups: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    location: str | None = None
    description: str | None = None
    dn: str | None = None
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

    display_name: str | None = None
    email: str | None = None
    title: str | None = None
    department: str | None = None
    manager: str | None = None
    manager_email: str | None = None
    employee_type: str | None = None
    location: str | None = None
    phone: str | None = None
    groups: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    privileged: bool | None = None
    enabled: bool | None = None
    locked: bool | None = None
    service_account: bool | None = None
    password_never_expires: bool | None = None
    last_logon: datetime | None = attrs.field(default=None, converter=_aware)
    password_last_set: datetime | None = attrs.field(default=None, converter=_aware)
    account_expires: datetime | None = attrs.field(default=None, converter=_aware)
    dn: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_json, hash=False)


Finding: TypeAlias = Reputation | HostContext | UserContext
"""What an enricher returns: a `Reputation`, a `HostContext` or a `UserContext`."""
