"""The allowlist: known-good indicators, hosts and accounts, and why each is allowed.

The pipeline asks it whether a whole event is allowlisted (`match_event`: the incident is
stored as suppressed, naming the entry) and which indicators are (`match_observables`:
those are not looked up). Files are TOML (`[[allow]]` tables) or CSV.
"""

from __future__ import annotations

import csv
import fnmatch
import heapq
import io
import ipaddress
import re
import tomllib
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from fido._entities import Host, User
from fido._enums import Enum
from fido._errors import ConfigurationError, shorten
from fido._hosts import canonical_ip, ip_text, parse_ip
from fido._observable import Observable, ObservableKind, host_of
from fido.scoring._toml import locate

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from fido._event import Event
    from fido._findings import Subject

__all__ = ["Allowlist", "AllowlistEntry", "EntryKind"]

_Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class EntryKind(Enum):
    """What an `AllowlistEntry` names. The value is the `type` used in TOML and CSV files."""

    HASH = "hash"
    IP = "ip"
    CIDR = "cidr"
    DOMAIN = "domain"
    URL = "url"
    EMAIL = "email"
    FILENAME = "filename"
    HOST = "host"
    USER = "user"


_KIND_NAMES: Final = ", ".join(kind.value for kind in EntryKind)
_EXPECTED: Final = {
    EntryKind.HASH: "an MD5, SHA-1 or SHA-256 hash",
    EntryKind.IP: "an IPv4 or IPv6 address",
    EntryKind.CIDR: "a network such as 10.0.0.0/8",
    EntryKind.DOMAIN: "a domain name",
    EntryKind.URL: "a URL such as https://corp.example/app/",
    EntryKind.EMAIL: "an email address",
    EntryKind.FILENAME: "a file name or a glob pattern",
    EntryKind.HOST: "a host name, an FQDN, an IP address or a glob pattern",
    EntryKind.USER: "an account name, DOMAIN\\name or a UPN",
}
_FIELDS: Final = ("type", "value", "reason", "author", "expires", "subdomains")
_REQUIRED: Final = ("type", "value", "reason", "author")
_FLAGS: Final = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_BAD_HOST: Final = re.compile(r"[\s\x00-\x1f\x7f/\\]")
_TOML_LINE: Final = re.compile(r"at line (\d+)")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _addresses(text: str) -> tuple[str, ...]:
    """An address in canonical form, and its IPv4 form when it is IPv4-mapped IPv6."""
    address = parse_ip(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return (ip_text(address), str(address.ipv4_mapped))
    return (ip_text(address),)


def _name_matches(name: str, pattern: str) -> bool:
    """Case-insensitive equality, or a glob match when the pattern has `*` or `?`."""
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(name.casefold(), pattern.casefold())
    return name.casefold() == pattern.casefold()


def _subject_addresses(subject: Subject) -> tuple[str, ...]:
    if isinstance(subject, Observable) and subject.kind.is_ip:
        return _addresses(subject.value)
    if isinstance(subject, Host) and subject.ip is not None:
        return _addresses(subject.ip)
    return ()


def _domain_of(observable: Observable) -> str | None:
    """What a domain entry is compared with: the domain, a URL's host, a mail domain."""
    if observable.kind.is_ip:
        return None
    return host_of(observable)


def _url_prefix_matches(url: str, prefix: str) -> bool:
    """Whether `url` starts with `prefix` and the prefix ends on a boundary of the URL.

    Both are normalized (dot segments removed), so `https://corp.example/app/../x` is not
    under `https://corp.example/app/`. A prefix that does not end in `/`, `?`, `&`, `=` or
    `#` ends on a segment: `https://corp.example/app` covers `/app`, `/app/x` and `/app?q`,
    not `/application`.
    """
    if not url.startswith(prefix):
        return False
    if len(url) == len(prefix) or prefix[-1] in "/?&=#":
        return True
    return url[len(prefix)] in "/?#&"


def _normalize(kind: EntryKind, text: str) -> str:
    """The normalized value; ValueError (with a detail, or an empty one) when invalid."""
    if kind in (EntryKind.DOMAIN, EntryKind.URL, EntryKind.EMAIL, EntryKind.FILENAME):
        return Observable(kind.value, text).value  # the same names as ObservableKind
    if kind is EntryKind.HASH:
        observable = Observable.parse(text)
        if not observable.kind.is_hash:
            raise ValueError(f"it reads as {observable.kind.value}")
        return observable.value
    if kind is EntryKind.IP or kind is EntryKind.CIDR:
        if kind is EntryKind.IP and "/" in text:
            raise ValueError("a network is a cidr entry")
        try:
            if kind is EntryKind.CIDR:
                network = ipaddress.ip_network(text, strict=False)
                return f"{ip_text(network.network_address)}/{network.prefixlen}"
            return canonical_ip(text.removeprefix("[").removesuffix("]"))
        except ValueError:
            raise ValueError("") from None
    value = text.casefold().rstrip(".") if kind is EntryKind.HOST else text.casefold()
    if kind is EntryKind.HOST:
        if _BAD_HOST.search(value) or not value:
            raise ValueError("no spaces, slashes or control characters")
        try:
            return canonical_ip(value)
        except ValueError:
            return value
    if "\\" not in value and (value.startswith("@") or value.endswith("@")):
        raise ValueError("a UPN has a name and a domain")
    account = User(value)  # USER: raises InvalidEvent, a ValueError
    if "\\" in value and account.domain is None:
        raise ValueError("the domain before the backslash is empty")
    return value


def _text(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{field} is required: {what}", key=field)
    return value.strip()


@attrs.frozen(kw_only=True)
class AllowlistEntry:
    """One allowlisted indicator, network, host or account, with why and by whom.

    The value is validated and normalized on construction (the allowlist guide lists
    what each kind accepts and matches). `matches` ignores the expiry; `Allowlist.match`
    never returns an expired entry.

    Args:
        kind: What the value is.
        value: The indicator, network, name, account or pattern.
        reason: Why it is allowed (required).
        author: Who allowed it (required).
        expires: When the entry stops matching; a naive time is taken as UTC.
        subdomains: For a DOMAIN entry, whether subdomains match too.

    Raises:
        ConfigurationError: A field is missing or invalid; the message names the value
            and what was expected, `key` names the field (`value`, `reason`, ...).
    """

    kind: EntryKind
    value: str
    reason: str
    author: str
    expires: datetime | None = None
    subdomains: bool = False
    _network: _Network | None = attrs.field(init=False, default=None, eq=False, repr=False)
    _account: User | None = attrs.field(init=False, default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        given: object = self.kind
        try:
            kind = EntryKind(given)
        except ValueError:
            message = f"unknown entry type {shorten(given)}; expected one of {_KIND_NAMES}"
            raise ConfigurationError(message, key="kind") from None
        text = _text(self.value, "value", _EXPECTED[kind])
        try:
            value = _normalize(kind, text)
        except ValueError as exc:
            detail = getattr(exc, "message", None) or str(exc)
            message = f"{shorten(text)} is not {_EXPECTED[kind]}" + (
                f": {detail}" if detail else ""
            )
            raise ConfigurationError(message, key="value") from None
        expires: object = self.expires
        if expires is not None and not isinstance(expires, datetime):
            message = f"expires is a datetime, not {type(expires).__name__}"
            raise ConfigurationError(message, key="expires")
        subdomains: object = self.subdomains
        if not isinstance(subdomains, bool):
            message = f"subdomains is true or false, not {shorten(subdomains)}"
            raise ConfigurationError(message, key="subdomains")
        if subdomains and kind is not EntryKind.DOMAIN:
            message = f"subdomains is for domain entries, not for {kind.value} {shorten(value)}"
            raise ConfigurationError(message, key="subdomains")
        set_ = object.__setattr__
        set_(self, "kind", kind)
        set_(self, "value", value)
        set_(self, "reason", _text(self.reason, "reason", "why this is allowed"))
        set_(self, "author", _text(self.author, "author", "who allowed it"))
        set_(self, "expires", None if expires is None else _utc(expires))
        if kind is EntryKind.CIDR:
            set_(self, "_network", ipaddress.ip_network(value))
        elif kind is EntryKind.USER:
            set_(self, "_account", User(value))

    def matches(self, subject: Subject) -> bool:
        """Whether this entry names the `Observable`, `Host` or `User` (expiry ignored)."""
        kind, value = self.kind, self.value
        if isinstance(subject, User):
            if kind is EntryKind.EMAIL:
                return value.casefold() in (subject.email, subject.upn)
            account = self._account
            if account is None:
                return False
            if account.upn is not None:
                return account.upn in (subject.upn, subject.email)
            return subject.name == account.name and account.domain in (None, subject.domain)
        if kind is EntryKind.IP:
            return not set(_subject_addresses(subject)).isdisjoint(_addresses(value))
        if kind is EntryKind.CIDR:
            network = self._network
            return network is not None and any(
                ipaddress.ip_address(address) in network for address in _subject_addresses(subject)
            )
        if isinstance(subject, Host):
            names = [name for name in (subject.name, subject.fqdn) if name is not None]
            return kind is EntryKind.HOST and (
                subject.ip == value or any(_name_matches(name, value) for name in names)
            )
        observed = subject.kind
        if kind is EntryKind.HASH:
            return observed.is_hash and subject.value == value
        if kind is EntryKind.DOMAIN:
            domain = _domain_of(subject)
            return domain is not None and (
                domain == value or (self.subdomains and domain.endswith("." + value))
            )
        if kind is EntryKind.URL:
            return observed is ObservableKind.URL and _url_prefix_matches(subject.value, value)
        if kind is EntryKind.EMAIL:
            return observed is ObservableKind.EMAIL and subject.value.casefold() == value.casefold()
        if kind is EntryKind.FILENAME:
            return observed is ObservableKind.FILENAME and _name_matches(subject.value, value)
        return False

    def expired(self, now: datetime) -> bool:
        """Whether the entry has expired at `now` (`now >= expires`); a naive `now` is UTC."""
        return self.expires is not None and _utc(now) >= self.expires

    def describe(self) -> str:
        """One line for people and records: what, why, who and until when.

        For example `domain corp.example (and subdomains): our own domain (jdoe, until
        2027-01-01)`.
        """
        scope = " (and subdomains)" if self.subdomains else ""
        until = ""
        if (moment := self.expires) is not None:
            shape = "%Y-%m-%d" if moment.time() == time() else "%Y-%m-%d %H:%M:%S UTC"
            until = f", until {moment.strftime(shape)}"
        return f"{self.kind.value} {self.value}{scope}: {self.reason} ({self.author}{until})"


class Allowlist:
    """An ordered collection of `AllowlistEntry`s, and the questions the pipeline asks it.

    The first matching entry wins. Hash entries are indexed (thousands of known-good
    hashes cost a dict look-up per observable); the others are scanned.

    Args:
        entries: The entries, in order (each an `AllowlistEntry`, else TypeError).
    """

    __slots__ = ("_entries", "_hashes", "_scan")

    def __init__(self, entries: Iterable[AllowlistEntry] = ()) -> None:
        self._entries = tuple(entries)
        self._hashes: dict[str, list[int]] = {}
        self._scan: list[int] = []
        for position, entry in enumerate(self._entries):
            if not isinstance(entry, AllowlistEntry):
                raise TypeError(f"an allowlist holds AllowlistEntry, not {type(entry).__name__}")
            if entry.kind is EntryKind.HASH:
                self._hashes.setdefault(entry.value, []).append(position)
            else:
                self._scan.append(position)

    @property
    def entries(self) -> tuple[AllowlistEntry, ...]:
        """The entries, in order."""
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[AllowlistEntry]:
        return iter(self._entries)

    def __add__(self, other: Allowlist) -> Allowlist:
        if not isinstance(other, Allowlist):
            return NotImplemented
        return Allowlist(self._entries + other.entries)

    def __repr__(self) -> str:
        count = len(self._entries)
        return f"Allowlist({count} {'entry' if count == 1 else 'entries'})"

    def match(self, subject: Subject, now: datetime) -> AllowlistEntry | None:
        """The first entry that matches the subject and has not expired at `now`.

        Args:
            subject: The `Observable`, `Host` or `User`.
            now: The current time (a naive time is UTC).

        Returns:
            The entry, or None.
        """
        hits: list[int] = []
        if isinstance(subject, Observable) and subject.kind.is_hash:
            hits = self._hashes.get(subject.value, hits)
        for position in heapq.merge(hits, self._scan):
            entry = self._entries[position]
            if not entry.expired(now) and entry.matches(subject):
                return entry
        return None

    def match_event(self, event: Event, now: datetime) -> AllowlistEntry | None:
        """The entry that suppresses the whole event, if any.

        The event is suppressed when its host matches a HOST, IP or CIDR entry, its user a
        USER or EMAIL entry, or when it has observables and every one matches some entry
        (then the first observable's entry is returned).

        Args:
            event: The event.
            now: The current time (a naive time is UTC).

        Returns:
            The entry that suppresses the event, or None.
        """
        for entity in (event.host, event.user):
            if entity is not None and (entry := self.match(entity, now)) is not None:
                return entry
        matched = [self.match(observable, now) for observable in event.observables]
        if matched and all(entry is not None for entry in matched):
            return matched[0]
        return None

    def match_observables(self, event: Event, now: datetime) -> dict[Observable, AllowlistEntry]:
        """The event's allowlisted observables, each with its entry, in the event's order.

        Args:
            event: The event.
            now: The current time (a naive time is UTC).

        Returns:
            Each observable that a non-expired entry matches, with that entry.
        """
        found = {observable: self.match(observable, now) for observable in event.observables}
        return {observable: entry for observable, entry in found.items() if entry is not None}

    def expired(self, now: datetime) -> tuple[AllowlistEntry, ...]:
        """The entries that have expired at `now`, in order (to review or remove them)."""
        return tuple(entry for entry in self._entries if entry.expired(now))

    @classmethod
    def from_toml(cls, source: str | Path) -> Allowlist:
        """Read an allowlist from TOML: an array of `[[allow]]` tables.

        Args:
            source: A `Path`, a `str` naming an existing file, or TOML text.

        Raises:
            ConfigurationError: The file cannot be read or is not TOML, a key is unknown or
                missing, or a value is bad; it names the file, the key (`allow[2].value`)
                and the line.
        """
        text, file = _read(source)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = _TOML_LINE.search(str(exc))
            line = int(found.group(1)) if found else None
            raise ConfigurationError(f"not valid TOML: {exc}", file=file, line=line) from None
        try:
            return cls(_toml_entries(data))
        except ConfigurationError as exc:
            line = None if exc.key is None else locate(text, exc.key)
            raise ConfigurationError(exc.message, file=file, key=exc.key, line=line) from None

    @classmethod
    def from_csv(cls, source: str | Path) -> Allowlist:
        """Read an allowlist from CSV: a header row, then one entry a row.

        The columns are `type`, `value`, `reason`, `author`, and optionally `expires` and
        `subdomains`. Blank lines and lines whose first cell starts with `#` are skipped.

        Args:
            source: A `Path`, a `str` naming an existing file, or CSV text.

        Raises:
            ConfigurationError: The file cannot be read, a column is unknown or missing, or
                a cell is bad; it names the file, the column (`key`) and the line.
        """
        text, file = _read(source)
        reader = csv.reader(io.StringIO(text, newline=""))
        header: list[str] | None = None
        entries: list[AllowlistEntry] = []
        line = end = 0
        try:
            for cells in reader:
                line, end = end + 1, reader.line_num
                if not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
                    continue
                if header is None:
                    header = _csv_header(cells)
                else:
                    entries.append(_csv_entry(header, cells))
        except csv.Error as exc:
            raise ConfigurationError(f"not valid CSV: {exc}", file=file, line=end + 1) from None
        except ConfigurationError as exc:
            raise ConfigurationError(exc.message, file=file, key=exc.key, line=line) from None
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path) -> Allowlist:
        """Read an allowlist file, TOML or CSV by its suffix (`.toml`, `.csv`).

        Raises:
            ConfigurationError: The suffix is neither, or reading the file failed.
        """
        location = Path(path)
        suffix = location.suffix.lower()
        if suffix in (".toml", ".csv"):
            return cls.from_toml(location) if suffix == ".toml" else cls.from_csv(location)
        message = f"an allowlist file ends in .toml or .csv, not {shorten(location.name)}"
        raise ConfigurationError(message, file=str(location))


def _read(source: str | Path) -> tuple[str, str | None]:
    """The text of the source, and the file it came from (None for text)."""
    path = _as_path(source)
    if path is None:
        return str(source).removeprefix("\ufeff"), None
    try:
        return path.read_text(encoding="utf-8-sig"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigurationError(f"cannot read the allowlist: {reason}", file=str(path)) from None


def _as_path(source: str | Path) -> Path | None:
    if isinstance(source, Path):
        return source
    text = source.strip()
    if not text or "\n" in text or len(text) > 4096:
        return None
    try:
        if Path(text).is_file():
            return Path(text)
    except (OSError, ValueError):  # not a possible file name: the text itself
        return None
    if text.lower().endswith((".toml", ".csv")):
        # One line naming a file that is not there: say so, rather than "not valid TOML".
        raise ConfigurationError("cannot read the allowlist: no such file", file=text)
    return None


def _expiry(value: object) -> datetime | None:
    """`expires` from a file: a datetime, a date (midnight UTC) or an ISO 8601 string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            message = f"expires is an ISO 8601 date or date and time, not {shorten(value)}"
            raise ConfigurationError(message, key="expires") from None
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    message = f"expires is a date or a date and time, not {shorten(value)}"
    raise ConfigurationError(message, key="expires")


def _entry(fields: Mapping[str, object], prefix: str = "") -> AllowlistEntry:
    """An entry from the fields of a file; errors name `prefix + field`."""
    for name in fields:
        if name not in _FIELDS:
            message = f"unknown key {shorten(name)}; an entry has {', '.join(_FIELDS)}"
            raise ConfigurationError(message, key=prefix + name)
    for name in _REQUIRED:
        if not isinstance(found := fields.get(name), str):
            problem = "is required" if found is None else f"is a string, not {type(found).__name__}"
            raise ConfigurationError(f"{name} {problem}", key=prefix + name)
    kind = str(fields["type"]).strip().lower()
    if kind not in EntryKind._value2member_map_:
        message = f"unknown type {shorten(fields['type'])}; expected one of {_KIND_NAMES}"
        raise ConfigurationError(message, key=prefix + "type")
    try:
        return AllowlistEntry(
            kind=EntryKind(kind),
            value=str(fields["value"]),
            reason=str(fields["reason"]),
            author=str(fields["author"]),
            expires=_expiry(fields.get("expires")),
            subdomains=fields.get("subdomains", False),  # type: ignore[arg-type]
        )
    except ConfigurationError as exc:
        field = "type" if exc.key == "kind" else exc.key or ""
        raise ConfigurationError(exc.message, key=prefix + field) from None


def _toml_entries(data: Mapping[str, object]) -> list[AllowlistEntry]:
    for key in data:
        if key != "allow":
            message = f"unknown key {shorten(key)}; an allowlist file has only [[allow]] tables"
            raise ConfigurationError(message, key=key)
    tables = data.get("allow", [])
    if not isinstance(tables, list):
        raise ConfigurationError("allow is an array of tables ([[allow]])", key="allow")
    entries = []
    for index, table in enumerate(tables):
        if not isinstance(table, dict):
            message = f"an allow entry is a table, not {type(table).__name__}"
            raise ConfigurationError(message, key=f"allow[{index}]")
        entries.append(_entry(table, f"allow[{index}]."))
    return entries


def _csv_header(cells: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    for name in names:
        if name not in _FIELDS:
            message = f"unknown column {shorten(name)}; the columns are {', '.join(_FIELDS)}"
            raise ConfigurationError(message, key=name or None)
        if names.count(name) > 1:
            raise ConfigurationError(f"the column {name} appears twice", key=name)
    for name in _REQUIRED:
        if name not in names:
            raise ConfigurationError(f"the header has no {name} column", key=name)
    return names


def _csv_entry(header: list[str], cells: list[str]) -> AllowlistEntry:
    if "".join(cells[len(header) :]).strip():
        message = f"the row has {len(cells)} cells but the header has {len(header)} columns"
        raise ConfigurationError(message)
    fields: dict[str, object] = {
        name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()
    }
    flag = str(fields.get("subdomains", "false")).lower()
    if flag not in _FLAGS:
        message = f"subdomains is true/false, yes/no or 1/0, not {shorten(fields['subdomains'])}"
        raise ConfigurationError(message, key="subdomains")
    fields["subdomains"] = _FLAGS[flag]
    return _entry(fields)
