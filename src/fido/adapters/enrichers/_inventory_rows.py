"""The rows of an inventory: read from CSV or JSON, and their values in CMDB spellings.

`csv_records` and `json_records` read an export into raw rows; `get` finds a field in a
row by column name or dotted JSON path; `Reader` reads the values. A value that cannot be
read is None (unknown, never a guess) and counted as bad; the row is kept.

- yes/no: `yes y true t on 1` and `no n false f off 0`, in any case; JSON booleans.
- counts: non-negative integers (`3`, `"3"`, `3.0`).
- criticality: `low`, `medium` (or `moderate`), `high`, `critical` (or `very high`,
  `mission critical`, `business critical`), and numbers or tiers where 1 is the most
  critical (ServiceNow's "1 - most critical", "tier 1"): 0 and 1 are critical, 2 high,
  3 medium, 4 low. A `criticality_values` table adds spellings of one's own.
- times: ISO 8601 (a time without an offset is UTC), or seconds since 1970 (or
  milliseconds, when the number is that large).
- lists (groups, tags): a JSON list, or a text split on `;` and `|`.
- addresses: one or more IP addresses, split on `;`, `|`, `,` or white space.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from fido._findings import Criticality
from fido.adapters.enrichers._stix import timestamp

if TYPE_CHECKING:
    from fido._errors import ConfigurationError

__all__ = [
    "MAX_TEXT",
    "Reader",
    "Records",
    "csv_records",
    "get",
    "json_records",
    "levels",
]

_RECORD_KEYS: Final = ("hosts", "items", "data", "results", "result", "records")
_DELIMITERS: Final = (",", ";", "\t", "|")

MAX_TEXT: Final = 1024
"""Longest text value kept (owner, location, ...); a longer one is a bad value."""

_TRUE: Final = frozenset({"yes", "y", "true", "t", "on", "1"})
_FALSE: Final = frozenset({"no", "n", "false", "f", "off", "0"})
_WORDS: Final = {
    "low": Criticality.LOW,
    "medium": Criticality.MEDIUM,
    "moderate": Criticality.MEDIUM,
    "high": Criticality.HIGH,
    "critical": Criticality.CRITICAL,
    "very high": Criticality.CRITICAL,
    "mission critical": Criticality.CRITICAL,
    "business critical": Criticality.CRITICAL,
}
_NUMBERS: Final = {
    0: Criticality.CRITICAL,
    1: Criticality.CRITICAL,
    2: Criticality.HIGH,
    3: Criticality.MEDIUM,
    4: Criticality.LOW,
}
_LEVELS: Final = frozenset(c.value for c in Criticality)
_TIER: Final = re.compile(r"^(?:tier\s*[-_]?\s*)?([0-4])(?![\d.])")
_LIST: Final = re.compile(r"[;|]")
_ADDRESSES: Final = re.compile(r"[;|,\s]+")
_MILLISECONDS: Final = 1e11  # later than the year 5138 in seconds: it is milliseconds


def levels(
    spellings: Mapping[str, str] | None, fail: Callable[[str], ConfigurationError]
) -> dict[str, Criticality]:
    """The `criticality_values` option checked: spelling (case-folded) -> criticality.

    Raises:
        ConfigurationError: (made by `fail`) The option is not a table of spellings to
            low, medium, high or critical.
    """
    if spellings is None:
        return {}
    if not isinstance(spellings, Mapping):
        raise fail("criticality_values is a table of spelling = low, medium, high or critical")
    result = {}
    for spelling, level in spellings.items():
        given: object = level
        if not isinstance(given, str) or level.lower() not in _LEVELS:
            raise fail(
                f"criticality_values.{spelling} is low, medium, high or critical, not {level!r}"
            )
        result[str(spelling).strip().casefold()] = Criticality(level.lower())
    return result


class Reader:
    """Reads the values of one row, counting those it cannot read in `bad`."""

    __slots__ = ("bad", "levels")

    def __init__(self, levels: Mapping[str, Criticality]) -> None:
        self.levels = levels
        self.bad = 0

    def _bad(self) -> None:
        self.bad += 1

    def text(self, value: Any) -> str | None:
        """A text value: stripped, empty as None; numbers as their text."""
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self._bad()
            return None
        text = value.strip()
        if len(text) > MAX_TEXT:
            self._bad()
            return None
        return text or None

    def flag(self, value: Any) -> bool | None:
        """Yes or no."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            word = value.strip().lower()
            if not word:
                return None
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        self._bad()
        return None

    def count(self, value: Any) -> int | None:
        """A non-negative integer."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number) or number < 0 or number != int(number):
            self._bad()
            return None
        return int(number)

    def criticality(self, value: Any) -> Criticality | None:
        """A criticality (see the module docstring for the spellings)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value in _NUMBERS:
            return _NUMBERS[value]
        if isinstance(value, str):
            word = " ".join(value.split()).casefold()
            found = self.levels.get(word) or _WORDS.get(word)
            if found is not None:
                return found
            tier = _TIER.match(word)
            if tier is not None:
                return _NUMBERS[int(tier.group(1))]
        self._bad()
        return None

    def time(self, value: Any) -> datetime | None:
        """An ISO 8601 time, or seconds (or milliseconds) since 1970."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            if isinstance(value, str) and not value.strip().isdigit():
                return timestamp(value)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                number = float(value)
                if number > _MILLISECONDS:
                    number /= 1000
                return datetime.fromtimestamp(number, UTC)
        except (ValueError, OverflowError, OSError):
            pass
        self._bad()
        return None

    def names(self, value: Any) -> tuple[str, ...]:
        """A list of names: a JSON list, or a text split on `;` and `|`."""
        if value is None:
            return ()
        if isinstance(value, str):
            parts: list[Any] = _LIST.split(value)
        elif isinstance(value, list):
            parts = value
        else:
            self._bad()
            return ()
        found = []
        for part in parts:
            text = self.text(part)
            if text is not None:
                found.append(text)
        return tuple(dict.fromkeys(found))

    def addresses(self, value: Any) -> list[str]:
        """IP addresses, canonical; those that are not addresses are bad values."""
        if value is None:
            return []
        parts: list[Any]
        if isinstance(value, str):
            parts = [p for p in _ADDRESSES.split(value) if p]
        elif isinstance(value, list):
            parts = value
        else:
            self._bad()
            return []
        found = []
        for part in parts:
            try:
                found.append(
                    str(ipaddress.ip_address(part.strip() if isinstance(part, str) else ""))
                )
            except ValueError:
                self._bad()
        return list(dict.fromkeys(found))


class Records(NamedTuple):
    """What a source gave: its rows, and how many items were not rows at all.

    `truncated`: the source had more than was read (a paged inventory cut at `max_pages`).
    """

    rows: list[Mapping[str, Any]]
    unreadable: int
    truncated: bool = False


def get(row: Mapping[str, Any], path: str) -> tuple[str | None, Any]:
    """(the top-level key used, the value) for a column name or a dotted JSON path.

    The whole path is tried as a key first (CSV columns may hold dots), then segment by
    segment; keys match ignoring case when they do not match exactly.
    """
    key = _key(row, path)
    if key is not None:
        return key, row[key]
    head, dot, rest = path.partition(".")
    top = _key(row, head) if dot else None
    if top is None:
        return None, None
    value: Any = row[top]
    while rest:
        if not isinstance(value, Mapping):
            return top, None
        head, _, rest = rest.partition(".")
        inner = _key(value, head)
        if inner is None:
            return top, None
        value = value[inner]
    return top, value


def _key(row: Mapping[str, Any], name: str) -> str | None:
    if name in row:
        return name
    folded = name.casefold()
    for key in row:
        if key.casefold() == folded:
            return key
    return None


# -- file formats -------------------------------------------------------------------------


def csv_records(text: str, delimiter: str | None) -> Records:
    """The rows of a CSV export, keyed by the header's names (the first line)."""
    header_line = text.split("\n", 1)[0]
    chosen = delimiter or max(_DELIMITERS, key=lambda d: (header_line.count(d), d == ","))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=chosen)
    header: list[str] | None = None
    rows: list[Mapping[str, Any]] = []
    unreadable = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error:  # a field above the size limit: that row goes
            unreadable += 1
            continue
        if not any(f.strip() for f in fields):
            continue
        if header is None:
            header = [f.strip() or f"column_{i + 1}" for i, f in enumerate(fields)]
            continue
        if len(fields) > len(header):
            unreadable += 1  # a delimiter inside an unquoted value shifted the columns
            continue
        rows.append(dict(zip(header, [f.strip() for f in fields], strict=False)))
    if header is None:
        raise ValueError("the CSV file has no header line")
    return Records(rows, unreadable)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_records(text: str, records_field: str | None) -> Records:
    """The rows of a JSON export: a list of objects, or an object holding one."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {str(exc)[:120]}") from None
    items: Any = data
    if isinstance(data, Mapping):
        if records_field is not None:
            _, items = get(data, records_field)
        else:
            items = next(
                (data[k] for k in _RECORD_KEYS if isinstance(data.get(k), list)),
                None,
            )
    if not isinstance(items, list):
        where = records_field or " or ".join(_RECORD_KEYS)
        raise ValueError(f"no list of hosts (expected a list, or one under {where})")
    rows = [item for item in items if isinstance(item, Mapping)]
    return Records(rows, len(items) - len(rows))
