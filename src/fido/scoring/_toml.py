"""TOML plumbing for policies: durations, a small writer, and finding the line of a key.

The standard library reads TOML (`tomllib`) but does not write it, and it does not say on
which line a key stands. Policies need both: `policy.to_toml()` and errors that name the
line. The writer covers what policy data holds (tables, arrays of tables, strings, numbers,
booleans, arrays of scalars); the locator follows table headers and `key =` lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

__all__ = ["dumps", "format_duration", "locate", "parse_duration"]

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)")
_UNITS: Final = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_HEADER: Final = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_LINE: Final = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_.\-]+)\s*=""")
_INDEX: Final = re.compile(r"\[(\d+)\]")


def parse_duration(text: str) -> timedelta:
    """Read `"30m"`, `"4h"`, `"1d12h"`, `"90s"`, `"2w"`, `"0.5s"` or `"250ms"`.

    Units: weeks, days, hours, minutes, seconds and milliseconds; numbers may have a
    fractional part.

    Raises:
        ValueError: The text is not such a duration.
    """
    compact = text.replace(" ", "").lower()
    if not compact or _DURATION.sub("", compact):
        raise ValueError(f"expected a duration such as '30m', '4h' or '1d12h', not {text!r}")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Write a duration the way `parse_duration` reads it (`timedelta(hours=4)` -> `"4h"`)."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    seconds, milliseconds = divmod(milliseconds, 1000)
    parts = []
    for unit in "dhms":
        amount, seconds = divmod(seconds, int(_UNITS[unit]))
        if amount:
            parts.append(f"{amount}{unit}")
    if milliseconds:
        parts.append(f"{milliseconds}ms")
    return "".join(parts)


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else _string(name)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " or c == "\t" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML policies hold finite numbers, not {value}")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        items = [_scalar(v) for v in value]
        flat = "[" + ", ".join(items) + "]"
        if len(flat) <= 80:
            return flat
        return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _has_scalars(table: Mapping[str, Any]) -> bool:
    return any(
        not isinstance(v, Mapping) and not _is_table_array(v) and v is not None
        for v in table.values()
    )


def _table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    scalars = [
        (k, v)
        for k, v in table.items()
        if not isinstance(v, Mapping) and not _is_table_array(v) and v is not None
    ]
    for key, value in scalars:
        lines.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in table.items():
        dotted = ".".join(_key(p) for p in [*path, key])
        if isinstance(value, Mapping):
            if _has_scalars(value) or not value:
                if lines:
                    lines.append("")
                lines.append(f"[{dotted}]")
            _table(lines, [*path, key], value)
        elif _is_table_array(value):
            for item in value:
                lines.append("")
                lines.append(f"[[{dotted}]]")
                _table(lines, [*path, key], item)


def dumps(data: Mapping[str, Any]) -> str:
    """Write nested dicts as TOML: scalars first, then sub-tables and arrays of tables.

    `None` values are left out (TOML has no null).
    """
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip() + "\n"


def _split_header(text: str) -> list[str]:
    return [p.strip().strip('"').strip("'") for p in text.split(".")]


def locate(text: str, key: str) -> int | None:
    """The 1-based line on which the dotted `key` (`decision.levels[2].min`) is set in `text`.

    Falls back to the line of the innermost table that holds the key, or None.
    """
    parts = [p for p in _INDEX.sub(lambda m: f".#{m.group(1)}", key).split(".") if p]
    best: int | None = None
    best_depth = -1
    counters: dict[tuple[str, ...], int] = {}
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = _split_header(header.group(2))
            if header.group(1) == "[[":
                index = counters.get(tuple(names), -1) + 1
                counters[tuple(names)] = index
                names = [*names, f"#{index}"]
            current = names
            depth = _match_depth(current, parts)
            if depth == len(current) and depth > best_depth:
                best, best_depth = number, depth
            continue
        assignment = _KEY_LINE.match(line)
        if not assignment:
            continue
        names = [*current, *_split_header(assignment.group(1))]
        depth = _match_depth(names, parts)
        if depth == len(names) and depth > best_depth:
            best, best_depth = number, depth
    return best


def _match_depth(names: list[str], parts: list[str]) -> int:
    depth = 0
    for name, part in zip(names, parts, strict=False):
        if name != part:
            break
        depth += 1
    return depth
