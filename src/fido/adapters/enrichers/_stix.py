"""STIX 2.1 indicators for the `feeds` enricher: bundles, and the patterns a feed can index.

A pattern is indexable when it is one observation, or several joined by `OR`, each made
of `=` comparisons joined by `OR` on the paths in `PATH_KINDS`:

```text
[file:hashes.'SHA-256' = '...'] OR [url:value = 'http://...']
[ipv4-addr:value = '198.51.100.0/24' OR domain-name:value = 'evil.example']
```

Anything else (`AND`, `FOLLOWEDBY`, qualifiers such as `WITHIN`, other operators,
parentheses, other object paths only) cannot be reduced to a set of indicators: such an
indicator is counted as unsupported and left out. Comparisons on other paths inside an
`OR` are dropped (an `OR` matches when any of its parts does, so the rest still holds).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

__all__ = [
    "PATH_KINDS",
    "StixCounts",
    "StixError",
    "StixIndicator",
    "parse_pattern",
    "read_bundle",
    "timestamp",
]

PATH_KINDS: Final = {
    "file:hashes.md5": "md5",
    "file:hashes.sha-1": "sha1",
    "file:hashes.sha1": "sha1",
    "file:hashes.sha-256": "sha256",
    "file:hashes.sha256": "sha256",
    "file:name": "filename",
    "ipv4-addr:value": "ipv4",
    "ipv6-addr:value": "ipv6",
    "domain-name:value": "domain",
    "url:value": "url",
    "email-addr:value": "email",
}
"""Object paths (lowercased, quotes removed) -> the `ObservableKind` value they hold."""

_MAX_PATTERN: Final = 1 << 16
_TOKEN: Final = re.compile(
    r"""\s*(?:
        (?P<open>\[)
      | (?P<close>\])
      | (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<path>[a-z0-9][a-z0-9-]*:[a-z0-9_-]+(?:\.(?:[a-z0-9_-]+|'[^']*')|\[(?:\d+|\*)\])*)
      | (?P<equals>=(?!=))
      | (?P<word>[a-z_]+(?![a-z0-9_'-]))
      | (?P<other>\S)
    )""",
    re.X | re.I,
)
_ESCAPE: Final = re.compile(r"\\(.)")
_FRACTION: Final = re.compile(r"(\.\d{6})\d+")


class StixError(ValueError):
    """A file that is not a STIX bundle at all (not JSON, or no objects)."""


class StixIndicator(NamedTuple):
    """An indexable STIX indicator.

    Attributes:
        comparisons: (observable kind value, indicator text) pairs; an IP may be a CIDR.
        name: The indicator's name.
        tags: Its `labels` and `indicator_types`.
        valid_from: When it starts to hold, if given.
        valid_until: When it stops holding, if given.
        confidence: Its 0-100 confidence, if given.
        id: Its STIX id.
        link: The first URL of its external references.
    """

    comparisons: tuple[tuple[str, str], ...]
    name: str | None
    tags: tuple[str, ...]
    valid_from: datetime | None
    valid_until: datetime | None
    confidence: int | None
    id: str | None
    link: str | None


class StixCounts:
    """What a bundle held besides the indexable indicators."""

    __slots__ = ("expired", "malformed", "other_objects", "revoked", "unsupported")

    def __init__(self) -> None:
        self.expired = 0
        self.revoked = 0
        self.unsupported = 0
        self.malformed = 0
        self.other_objects = 0


def _path(text: str) -> str:
    return text.replace("'", "").lower()


def parse_pattern(pattern: str) -> list[tuple[str, str]] | None:
    """The (kind, value) comparisons of an indexable pattern, or None if it is not one.

    The list is empty when the pattern is well formed but compares only other paths.
    """
    if len(pattern) > _MAX_PATTERN:
        return None
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(pattern):
        match = _TOKEN.match(pattern, position)
        if match is None or match.lastgroup is None:  # only trailing white space is left
            break
        position = match.end()
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
    found: list[tuple[str, str]] = []
    index = 0
    expect_observation = True
    while index < len(tokens):
        kind, text = tokens[index]
        if expect_observation:
            if kind != "open":
                return None
            index = _observation(tokens, index + 1, found)
            if index < 0:
                return None
            expect_observation = False
        elif kind == "word" and text.upper() == "OR":
            index += 1
            expect_observation = True
        else:
            return None
    if expect_observation:  # empty, or a trailing OR
        return None
    return found


def _observation(tokens: list[tuple[str, str]], index: int, found: list[tuple[str, str]]) -> int:
    """Read `path = 'value' (OR path = 'value')* ]` from `index`; -1 if it is not that."""
    while True:
        if index + 3 > len(tokens):
            return -1
        (path_kind, path), (op_kind, _), (value_kind, value) = tokens[index : index + 3]
        if path_kind != "path" or op_kind != "equals" or value_kind != "string":
            return -1
        observable = PATH_KINDS.get(_path(path))
        if observable is not None:
            found.append((observable, _ESCAPE.sub(r"\1", value[1:-1])))
        index += 3
        if index >= len(tokens):
            return -1
        kind, text = tokens[index]
        if kind == "close":
            return index + 1
        if kind != "word" or text.upper() != "OR":
            return -1
        index += 1


def timestamp(value: Any) -> datetime | None:
    """A STIX timestamp (`2024-01-31T12:00:00.000Z`) as an aware datetime.

    Raises:
        ValueError: Not a timestamp.
    """
    if not isinstance(value, str):
        raise ValueError("a timestamp is a string")
    parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _objects(text: str) -> list[Any]:
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise StixError(f"not JSON: {str(exc)[:120]}") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        objects = data.get("objects")
        if isinstance(objects, list):
            return objects
        if data.get("type") == "indicator":
            return [data]
    raise StixError("not a STIX bundle: expected an object with a list of objects")


def _latest(objects: list[Any], counts: StixCounts) -> list[dict[str, Any]]:
    """The indicators, each id at its latest `modified` version (first seen order)."""
    chosen: dict[object, tuple[datetime | None, dict[str, Any]]] = {}
    for position, item in enumerate(objects):
        if not isinstance(item, dict):
            counts.malformed += 1
            continue
        if item.get("type") != "indicator":
            counts.other_objects += 1
            continue
        ident = item.get("id")
        key: object = ident if isinstance(ident, str) else position
        try:
            modified = timestamp(item["modified"]) if "modified" in item else None
        except ValueError:
            modified = None
        held = chosen.get(key)
        if held is None or held[0] is None or (modified is not None and modified >= held[0]):
            chosen[key] = (modified, item)
    return [item for _, item in chosen.values()]


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v.strip() for v in value if isinstance(v, str) and v.strip())


def _link(value: Any) -> str | None:
    """The first web address among the external references (no other scheme)."""
    if isinstance(value, list):
        for reference in value:
            url = reference.get("url") if isinstance(reference, dict) else None
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                return url
    return None


def read_bundle(text: str, now: datetime) -> tuple[list[StixIndicator], StixCounts]:
    """The indexable indicators of a bundle that still hold at `now`, and what was left out.

    Revoked and expired (`valid_until` not after `now`) indicators are left out and
    counted, as are the unsupported and the malformed ones (and other objects).

    Raises:
        StixError: The text is not a bundle (nor a list of objects, nor one indicator).
    """
    counts = StixCounts()
    result: list[StixIndicator] = []
    for item in _latest(_objects(text), counts):
        if item.get("revoked") is True:
            counts.revoked += 1
            continue
        pattern_type = item.get("pattern_type", "stix")
        pattern = item.get("pattern")
        if pattern_type != "stix" or not isinstance(pattern, str):
            counts.unsupported += 1
            continue
        try:
            valid_from = timestamp(item["valid_from"]) if "valid_from" in item else None
            valid_until = timestamp(item["valid_until"]) if "valid_until" in item else None
        except ValueError:
            counts.malformed += 1
            continue
        if valid_until is not None and valid_until <= now:
            counts.expired += 1
            continue
        comparisons = parse_pattern(pattern)
        if not comparisons:
            counts.unsupported += 1
            continue
        confidence = item.get("confidence")
        name = item.get("name")
        ident = item.get("id")
        result.append(
            StixIndicator(
                comparisons=tuple(comparisons),
                name=name.strip() or None if isinstance(name, str) else None,
                tags=tuple(
                    dict.fromkeys(
                        _strings(item.get("labels")) + _strings(item.get("indicator_types"))
                    )
                ),
                valid_from=valid_from,
                valid_until=valid_until,
                confidence=(
                    confidence
                    if isinstance(confidence, int)
                    and not isinstance(confidence, bool)
                    and 0 <= confidence <= 100
                    else None
                ),
                id=ident if isinstance(ident, str) else None,
                link=_link(item.get("external_references")),
            )
        )
    return result, counts
