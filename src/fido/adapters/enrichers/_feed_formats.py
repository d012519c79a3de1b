"""The feed formats of the `feeds` enricher: each reads a file's text into an `Index`.

Formats: abuse.ch MalwareBazaar (hash CSV), URLhaus (URL CSV), Feodo Tracker (IP
blocklist, CSV or plain), one indicator per line, and STIX 2.1 bundles. Malformed lines,
rows and objects are skipped and counted, never raised; only a file that is not in its
format at all (STIX that is not JSON) raises `FeedError`.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from typing import TYPE_CHECKING, Final, NamedTuple

from fido._observable import Observable, ObservableKind
from fido.adapters.enrichers import _stix
from fido.adapters.enrichers._files import MAX_LINE, physical_lines, undecodable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

__all__ = ["FORMATS", "Entry", "FeedError", "Index", "detect", "parse"]

FORMATS: Final = ("auto", "malwarebazaar", "urlhaus", "feodo", "lines", "stix")

_MB_COLUMNS: Final = (
    "first_seen_utc",
    "sha256_hash",
    "md5_hash",
    "sha1_hash",
    "reporter",
    "file_name",
    "file_type_guess",
    "mime_type",
    "signature",
    "clamav",
    "vtpercent",
    "imphash",
    "ssdeep",
    "tlsh",
)
_URLHAUS_COLUMNS: Final = (
    "id",
    "dateadded",
    "url",
    "url_status",
    "last_online",
    "threat",
    "tags",
    "urlhaus_link",
    "reporter",
)
_FEODO_COLUMNS: Final = (
    "first_seen_utc",
    "dst_ip",
    "dst_port",
    "c2_status",
    "last_online",
    "malware",
)
_HASH_KINDS: Final = {32: ObservableKind.MD5, 40: ObservableKind.SHA1, 64: ObservableKind.SHA256}
_HEX: Final = frozenset("0123456789abcdef")
_EMPTY: Final = frozenset({"", "n/a", "na", "none", "null", "-", "unknown"})
_TRAILING_COMMENT: Final = re.compile(r"\s+#\s?(.*)$")
_SNIFF: Final = 1 << 14
_QUOTED_SEPARATOR: Final = re.compile(r'"\s*,\s*"')
_CIDR: Final = re.compile(r"^[0-9A-Fa-f:.]+/\d+$")


class FeedError(ValueError):
    """A feed file that cannot be read in its format at all."""


class Entry(NamedTuple):
    """What a feed says of one indicator (shared by the keys of one row)."""

    label: str | None
    tags: tuple[str, ...]
    link: str | None
    extra: tuple[str | int, ...]
    """Further details as a flat tuple: key, value, key, value... (lighter than pairs)."""
    score: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None


class Index:
    """The indicators of one feed file, ready for look-ups, and what was left out.

    Attributes:
        exact: Kind -> normalized value -> entry.
        networks: IP version -> prefix length -> network address (int) -> entry.
        prefixes: IP version -> the prefix lengths present, longest first.
        suffixes: Domain -> entry, for entries that also match subdomains.
        format: The format the file was read as.
        loaded_at: When it was read.
        indicators: Keys indexed (values, ranges and domain suffixes).
        skipped: Lines, rows or objects left out as malformed or unsupported.
        unsupported: Of those, STIX indicators whose pattern cannot be indexed.
        expired: STIX indicators past their `valid_until`.
        revoked: STIX indicators revoked.
    """

    def __init__(self, fmt: str, loaded_at: datetime) -> None:
        self.exact: dict[ObservableKind, dict[str, Entry]] = {}
        self.networks: dict[int, dict[int, dict[int, Entry]]] = {}
        self.prefixes: dict[int, tuple[int, ...]] = {}
        self.suffixes: dict[str, Entry] = {}
        self.format = fmt
        self.loaded_at = loaded_at
        self.indicators = 0
        self.skipped = 0
        self.unsupported = 0
        self.expired = 0
        self.revoked = 0
        self._strings: dict[str, str] = {}
        self._tags: dict[tuple[str, ...], tuple[str, ...]] = {}

    @property
    def kinds(self) -> frozenset[ObservableKind]:
        """The kinds of observable a look-up can find."""
        found = {kind for kind, table in self.exact.items() if table}
        for version in self.networks:
            found.add(ObservableKind.IPV4 if version == 4 else ObservableKind.IPV6)
        if self.suffixes:
            found.add(ObservableKind.DOMAIN)
        return frozenset(found)

    # -- building ------------------------------------------------------------------------

    def text(self, value: str | None) -> str | None:
        """The value, shared with equal ones already seen (families repeat a lot)."""
        if value is None:
            return None
        return self._strings.setdefault(value, value)

    def entry(
        self,
        *,
        label: str | None,
        tags: tuple[str, ...],
        link: str | None = None,
        extra: tuple[str | int, ...] = (),
        score: int | None = None,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
    ) -> Entry:
        """A new entry; equal labels and tag tuples are shared between entries."""
        unique = tuple(dict.fromkeys(t for t in tags if t))
        return Entry(
            self.text(label),
            self._tags.setdefault(unique, unique),
            link,
            extra,
            score,
            valid_from,
            valid_until,
        )

    def add(self, kind: ObservableKind, value: str, entry: Entry) -> None:
        """Index one normalized value (a later row for the same value replaces it)."""
        self.exact.setdefault(kind, {})[value] = entry
        self.indicators += 1

    def add_network(
        self, network: ipaddress.IPv4Network | ipaddress.IPv6Network, entry: Entry
    ) -> None:
        """Index a range (a single-address range is indexed as the address)."""
        if network.prefixlen == network.max_prefixlen:
            kind = ObservableKind.IPV4 if network.version == 4 else ObservableKind.IPV6
            self.add(kind, str(network.network_address), entry)
            return
        by_prefix = self.networks.setdefault(network.version, {})
        by_prefix.setdefault(network.prefixlen, {})[int(network.network_address)] = entry
        self.indicators += 1

    def finish(self) -> None:
        """End the building: order the prefix lengths, drop the building's helpers."""
        self.prefixes = {
            version: tuple(sorted(by_prefix, reverse=True))
            for version, by_prefix in self.networks.items()
        }
        self._strings.clear()
        self._tags.clear()

    def add_suffix(self, domain: str, entry: Entry) -> None:
        """Index a domain that also matches its subdomains."""
        self.suffixes[domain] = entry
        self.indicators += 1

    def add_text(self, text: str, entry: Entry, *, subdomains: bool) -> bool:
        """Index an indicator in any form; False (nothing indexed) when it is not one.

        `*.evil.example` (or `.evil.example`) is the domain and all its subdomains; an
        address range is CIDR (`203.0.113.0/24`); anything else is read by
        `Observable.parse`, with a fast path for hashes.
        """
        found = _fast_hash(text)
        if found is not None:
            self.add(found[0], found[1], entry)
            return True
        if text.startswith(("*.", ".")):
            domain = Observable.try_parse(text.lstrip("*").lstrip("."), kind="domain")
            if domain is None:
                return False
            self.add_suffix(domain.value, entry)
            return True
        if _CIDR.match(text):
            network = _network(text)
            if network is None:
                return False
            self.add_network(network, entry)
            return True
        observable = Observable.try_parse(text)
        if observable is None:
            return False
        if subdomains and observable.kind is ObservableKind.DOMAIN:
            self.add_suffix(observable.value, entry)
        else:
            self.add(observable.kind, observable.value, entry)
        return True


def _fast_hash(text: str) -> tuple[ObservableKind, str] | None:
    kind = _HASH_KINDS.get(len(text))
    if kind is None:
        return None
    value = text.lower()
    return (kind, value) if _HEX.issuperset(value) else None


def _hash(kind: ObservableKind, text: str | None) -> str | None:
    if text is None:
        return None
    found = _fast_hash(text.strip())
    return found[1] if found is not None and found[0] is kind else None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _value(text: str | None) -> str | None:
    if text is None:
        return None
    stripped = text.strip()
    return None if stripped.lower() in _EMPTY else stripped


def _split_list(text: str | None, separators: str) -> tuple[str, ...]:
    value = _value(text)
    if value is None:
        return ()
    return tuple(part.strip() for part in re.split(f"[{separators}]", value) if part.strip())


def _extra(**items: str | int | None) -> tuple[str | int, ...]:
    """Details for `Entry.extra`: the keys and values given, leaving out the None values."""
    return tuple(part for key, value in items.items() if value is not None for part in (key, value))


# -- detection ----------------------------------------------------------------------------


def detect(text: str) -> str:
    """The format of a feed, from its first bytes: its JSON, or its header's column names."""
    head = text[:_SNIFF]
    if head.lstrip()[:1] in ("{", "["):
        return "stix"
    lowered = head.lower()
    if "sha256_hash" in lowered:
        return "malwarebazaar"
    if "urlhaus_link" in lowered or "url_status" in lowered:
        return "urlhaus"
    if "dst_ip" in lowered or "feodo" in lowered:
        return "feodo"
    return "lines"


# -- CSV ----------------------------------------------------------------------------------


def _row(line: str) -> list[str] | None:
    """The fields of one CSV line, or None when it is not well formed."""
    if len(line) > 1 and line[0] == '"' and line[-1] == '"':
        # abuse.ch writes every value quoted: split on the separators, unless a value
        # holds a quote of its own (then the csv module reads the doubled quotes).
        fields = _QUOTED_SEPARATOR.split(line[1:-1])
        if not any('"' in field for field in fields):
            return [field.strip() for field in fields]
    try:
        return [v.strip() for v in next(csv.reader((line,), skipinitialspace=True, strict=True))]
    except (csv.Error, StopIteration):
        return None


def _records(
    text: str, key: str, default: tuple[str, ...], index: Index
) -> Iterator[dict[str, str]]:
    """The rows of an abuse.ch CSV export as dicts, by the header's names or `default`.

    The header is the first line (commented, as abuse.ch writes it, or not) whose fields
    include `key`; without one, the columns are `default`. A row that is too long, not
    UTF-8, badly quoted, or of another width than the header is counted as skipped.
    """
    header: tuple[str, ...] | None = None
    for _, line in physical_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        comment = stripped.startswith("#")
        if comment and header is not None:
            continue
        if len(line) > MAX_LINE or undecodable(line):
            index.skipped += not comment
            continue
        fields = _row(stripped.lstrip("#").strip() if comment else stripped)
        if header is None and fields is not None and key in (f.lower() for f in fields):
            header = tuple(f.lower() for f in fields)
            continue
        if comment:
            continue
        columns = header or default
        if fields is None or len(fields) != len(columns):
            index.skipped += 1
            continue
        yield dict(zip(columns, fields, strict=True))


def _malwarebazaar(text: str, index: Index, feed: FeedOptions) -> None:
    kinds = (
        (ObservableKind.SHA256, "sha256_hash"),
        (ObservableKind.MD5, "md5_hash"),
        (ObservableKind.SHA1, "sha1_hash"),
    )
    for row in _records(text, "sha256_hash", _MB_COLUMNS, index):
        hashes = [(kind, _hash(kind, row.get(column))) for kind, column in kinds]
        valid = [(kind, value) for kind, value in hashes if value is not None]
        if not valid:
            index.skipped += 1
            continue
        family = index.text(_value(row.get("signature")))
        sha256 = hashes[0][1]
        entry = index.entry(
            label=family or feed.label,
            tags=(*feed.tags, *((family,) if family else ())),
            link=None if sha256 is None else f"https://bazaar.abuse.ch/sample/{sha256}/",
            extra=_extra(
                first_seen=_value(row.get("first_seen_utc")),
                file_name=_value(row.get("file_name")),
                file_type=index.text(_value(row.get("file_type_guess"))),
                reporter=index.text(_value(row.get("reporter"))),
            ),
        )
        for kind, value in valid:
            index.add(kind, value, entry)


def _urlhaus(text: str, index: Index, feed: FeedOptions) -> None:
    for row in _records(text, "urlhaus_link", _URLHAUS_COLUMNS, index):
        url = Observable.try_parse(row.get("url", ""), kind="url")
        if url is None:
            index.skipped += 1
            continue
        threat = index.text(_value(row.get("threat")))
        link = _value(row.get("urlhaus_link"))
        entry = index.entry(
            label=threat or feed.label,
            tags=(*feed.tags, *(index.text(t) or t for t in _split_list(row.get("tags"), ","))),
            link=link if link is not None and link.startswith("https://") else None,
            extra=_extra(
                urlhaus_id=_value(row.get("id")),
                date_added=_value(row.get("dateadded")),
                url_status=index.text(_value(row.get("url_status"))),
                last_online=_value(row.get("last_online")),
                reporter=index.text(_value(row.get("reporter"))),
            ),
        )
        index.add(ObservableKind.URL, url.value, entry)


def _feodo(text: str, index: Index, feed: FeedOptions) -> None:
    head = text[:_SNIFF]
    data = next(
        (ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
    )
    if "dst_ip" not in head.lower() and "," not in data:
        _lines(text, index, feed)  # the plain blocklist: one address per line
        return
    for row in _records(text, "dst_ip", _FEODO_COLUMNS, index):
        network = _network(row.get("dst_ip", ""))
        if network is None or network.prefixlen != network.max_prefixlen:
            index.skipped += 1
            continue
        address = str(network.network_address)
        family = index.text(_value(row.get("malware")))
        port = _value(row.get("dst_port"))
        entry = index.entry(
            label=family or feed.label,
            tags=(*feed.tags, *((family,) if family else ())),
            link=f"https://feodotracker.abuse.ch/browse/host/{address}/",
            extra=_extra(
                first_seen=_value(row.get("first_seen_utc")),
                port=int(port) if port is not None and port.isdigit() else None,
                c2_status=index.text(_value(row.get("c2_status"))),
                last_online=_value(row.get("last_online")),
            ),
        )
        index.add_network(network, entry)


def _lines(text: str, index: Index, feed: FeedOptions) -> None:
    plain = index.entry(label=feed.label, tags=feed.tags)
    for _, line in physical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(line) > MAX_LINE or undecodable(line):
            index.skipped += 1
            continue
        entry = plain
        comment = _TRAILING_COMMENT.search(stripped)
        if comment is not None:
            stripped = stripped[: comment.start()]
            note = comment.group(1).strip()
            if note:
                entry = plain._replace(extra=("comment", note[:200]))
        if not index.add_text(stripped, entry, subdomains=feed.subdomains):
            index.skipped += 1


def _stix_bundle(text: str, index: Index, feed: FeedOptions) -> None:
    try:
        indicators, counts = _stix.read_bundle(text, index.loaded_at)
    except _stix.StixError as exc:
        raise FeedError(str(exc)) from None
    index.unsupported = counts.unsupported
    index.skipped = counts.unsupported + counts.malformed
    index.expired = counts.expired
    index.revoked = counts.revoked
    for indicator in indicators:
        entry = index.entry(
            label=indicator.name or feed.label,
            tags=(*feed.tags, *(index.text(t) or t for t in indicator.tags)),
            link=indicator.link,
            extra=_extra(stix_id=indicator.id),
            score=indicator.confidence,
            valid_from=indicator.valid_from,
            valid_until=indicator.valid_until,
        )
        added = 0
        for kind, value in indicator.comparisons:
            if _stix_comparison(index, kind, value, entry, subdomains=feed.subdomains):
                added += 1
        if not added:
            index.skipped += 1


def _stix_comparison(
    index: Index, kind: str, value: str, entry: Entry, *, subdomains: bool
) -> bool:
    observable_kind = ObservableKind(kind)
    if observable_kind.is_hash:
        digest = _hash(observable_kind, value)
        if digest is None:
            return False
        index.add(observable_kind, digest, entry)
        return True
    if observable_kind.is_ip:
        network = _network(value)
        if network is None or (network.version == 4) != (observable_kind is ObservableKind.IPV4):
            return False
        index.add_network(network, entry)
        return True
    observable = Observable.try_parse(value, kind=observable_kind)
    if observable is None:
        return False
    if subdomains and observable_kind is ObservableKind.DOMAIN:
        index.add_suffix(observable.value, entry)
    else:
        index.add(observable_kind, observable.value, entry)
    return True


class FeedOptions(NamedTuple):
    """What a feed's configuration says that parsing needs."""

    label: str | None
    tags: tuple[str, ...]
    subdomains: bool


_PARSERS: Final[dict[str, Callable[[str, Index, FeedOptions], None]]] = {
    "malwarebazaar": _malwarebazaar,
    "urlhaus": _urlhaus,
    "feodo": _feodo,
    "lines": _lines,
    "stix": _stix_bundle,
}


def parse(text: str, fmt: str, feed: FeedOptions, now: datetime) -> Index:
    """Read a feed's text in format `fmt` (`auto`: detected) into an index made at `now`.

    Raises:
        FeedError: The file is not in the format at all, or not one indicator could be
            read from it although it has lines (or rows, or objects) that were skipped.
    """
    chosen = detect(text) if fmt == "auto" else fmt
    index = Index(chosen, now)
    _PARSERS[chosen](text, index, feed)
    index.finish()
    if index.indicators == 0 and index.skipped > index.unsupported:
        raise FeedError(
            f"not one indicator could be read as {chosen} ({index.skipped} entries skipped)"
        )
    return index
