"""`misp`: a MISP instance's attributes (indicators) and the events they belong to.

```toml
[[enrichers]]
type = "misp"
base_url = "https://misp.example.org/"
api_key_env = "MISP_API_KEY"
ca_file = "/etc/fido/misp-ca.pem"   # the instance's CA, if its certificate is not public
malicious_levels = [1, 2]           # event threat levels (1 high .. 4 undefined) for MALICIOUS
# ids_only = true                   # only attributes flagged for detection (to_ids)
# published_only = true             # only attributes of published events
```

One `POST {base_url}/attributes/restSearch` per subject, with the key in the
`Authorization` header and a JSON body asking for the attributes whose value is one of
the subject's spellings (`value`, a list, which restSearch reads as "any of them"),
`limit`, `includeContext` for each event's threat level and tags, `includeEventTags`,
`enforceWarninglist`, and `to_ids` / `published` when asked. MISP matches values as they
were stored, so a URL is asked for as fido normalized it (`http://evil.example/`), as
the alert wrote it if the observable keeps that text, and without its trailing slash
(`http://evil.example`). The answer's attributes are matched against the subject again,
each part of a composite value (`filename|sha256`, `ip-dst|port`, `domain|ip`) on its
own, after normalizing it as the subject was. The verdict is the strongest any matching
attribute gives:

- MALICIOUS: flagged for detection (`to_ids`) in an event whose threat level is one of
  `malicious_levels` (default high and medium);
- SUSPICIOUS: flagged for detection in an event of another threat level (low, undefined),
  or not flagged but an indicator all the same (not a `link`, `comment`, `text`,
  `other` or `attachment` attribute);
- UNKNOWN: only mentioned in references (those five types): a finding all the same.

No matching attribute (or a 404 "No matches.", which older MISP versions answer) is "not
known": no finding, cached as such; any other 404 (a wrong `base_url`) is an error.

Internal indicators (private addresses, special-use names such as `*.internal`, names
under `internal_domains`, URLs and e-mail addresses on them) are not looked up unless
`lookup_internal = true`: a MISP instance is often the organisation's own, but it may be
a community's or a vendor's, where every search is seen by others; turn it on for an
instance you run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote

from fido._errors import ConfigurationError
from fido._findings import Reputation, Verdict
from fido._observable import Observable, ObservableKind
from fido.adapters._http import HttpEnricher

if TYPE_CHECKING:
    from collections.abc import Iterable

    import httpx

    from fido._findings import Subject

__all__ = ["MISP"]

_REFERENCES: Final = frozenset({"link", "comment", "text", "other", "attachment"})
"""Attribute types that refer to an indicator rather than assert it (reports, notes)."""
_LEVELS: Final = {"1": "high", "2": "medium", "3": "low", "4": "undefined"}
_MAX_TAGS: Final = 30
_MAX_EVENTS: Final = 10


class MISP(HttpEnricher):
    """A MISP instance's `attributes/restSearch` (see the module docstring).

    Args:
        base_url: The instance's URL (required: there is no default instance).
        ca_file: A CA bundle to verify the instance's certificate against (a private
            CA, or the self-signed certificate itself), rather than `verify = false`.
            Named here so that the configuration passes it as a path, not as the
            secret file of an option `ca`.
        limit: Attributes asked for per look-up (1-1000, default 50).
        malicious_levels: Event threat levels (1 high, 2 medium, 3 low, 4 undefined)
            whose detection attributes make a MALICIOUS verdict (default 1 and 2).
        ids_only: Only attributes flagged for detection (`to_ids`) count.
        published_only: Only attributes of published events count.
        enforce_warninglist: Leave out attributes on the instance's enabled warninglists
            (known good and common values; default True).
        lookup_internal: Look up internal indicators too (default False): for an
            instance the organisation runs itself.
        **options: As for every HTTP enricher (`api_key`, `verify`, `rate`, ...).

    Raises:
        ConfigurationError: No base URL, no API key, or an option out of range.
    """

    service: ClassVar[str] = "misp"
    default_base_url: ClassVar[str] = ""
    default_rate: ClassVar[str | list[str] | None] = None
    default_reliability: ClassVar[str] = "C"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        ca_file: str | None = None,
        limit: int = 50,
        malicious_levels: Iterable[int] = (1, 2),
        ids_only: bool = False,
        published_only: bool = False,
        enforce_warninglist: bool = True,
        lookup_internal: bool = False,
        **options: Any,
    ) -> None:
        if not base_url:
            raise ConfigurationError(
                "misp: base_url is needed (the instance's URL, as https://misp.example.org/)"
            )
        checked: object = limit
        if not isinstance(checked, int) or isinstance(checked, bool) or not 1 <= checked <= 1000:
            raise ConfigurationError(f"misp: limit is between 1 and 1000, not {limit!r}")
        given: object = malicious_levels  # a TOML string would iterate as digits
        levels = [given] if isinstance(given, str) else list(malicious_levels)
        if any(str(level) not in _LEVELS for level in levels):
            raise ConfigurationError(
                f"misp: malicious_levels are threat levels from 1 to 4, not {levels!r}"
            )
        self.limit = limit
        self.malicious_levels = frozenset(str(level) for level in levels)
        self.ids_only = ids_only
        self.published_only = published_only
        self.enforce_warninglist = enforce_warninglist
        if not isinstance(lookup_internal, bool):
            raise ConfigurationError(
                f"misp: lookup_internal is true or false, not {lookup_internal!r}"
            )
        self.lookup_internal = lookup_internal
        self.looks_up_internal = lookup_internal
        super().__init__(base_url=base_url, ca_file=ca_file, **options)
        self.web = self.http.base_url.rstrip("/")

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The `Authorization` header (the key itself, as MISP wants it)."""
        return {
            "authorization": api_key,
            "accept": "application/json",
            "content-type": "application/json",
        }

    def accepts(self, subject: Subject) -> bool:
        """Every observable kind: hashes, addresses, domains, URLs, emails, file names.

        Internal ones only with `lookup_internal`.
        """
        if not isinstance(subject, Observable):
            return False
        return self.lookup_internal or not self.is_internal(subject)

    def is_not_found(self, response: httpx.Response) -> bool:
        """A 404 is "not found" only as older MISP versions say it (`No matches.`)."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        if not isinstance(body, dict):
            return False
        said = f"{body.get('name')} {body.get('message')}".casefold()
        return "no matches" in said

    def query(self, subject: Observable) -> dict[str, Any]:
        """The restSearch body for a subject."""
        body: dict[str, Any] = {
            "returnFormat": "json",
            "value": spellings(subject),
            "limit": self.limit,
            "page": 1,
            "includeContext": True,
            "includeEventTags": True,
            "enforceWarninglist": self.enforce_warninglist,
        }
        if self.ids_only:
            body["to_ids"] = True
        if self.published_only:
            body["published"] = True
        return body

    async def fetch(self, subject: Subject) -> Reputation | None:
        """What the instance holds about the subject, or None if it holds nothing."""
        assert isinstance(subject, Observable)  # noqa: S101 - accepts() said so
        body = await self.http.get_json(
            "attributes/restSearch", method="POST", json_body=self.query(subject)
        )
        if body is None:
            return None
        return self.reputation(subject, body)

    def reputation(self, subject: Observable, body: Any) -> Reputation | None:
        """A `Reputation` from a restSearch answer, or None if no attribute matches.

        Raises:
            ValueError: The body is not a restSearch answer (no `response`).
        """
        if not isinstance(body, dict) or "response" not in body:
            raise ValueError("not a restSearch answer (no response)")
        found = _attributes(body["response"])
        matched = [a for a in found if _matches(subject, a)]
        if not matched:
            return None
        ranked = sorted(matched, key=self._rank, reverse=True)
        top = ranked[0]
        event = _event(top)
        events: dict[str, dict[str, Any]] = {}
        flagged: set[str] = set()
        for attribute in ranked:
            key = _event_id(attribute) or f"attribute:{attribute.get('id')}"
            events.setdefault(key, _event(attribute))
            if _ids(attribute):
                flagged.add(key)
        details: dict[str, Any] = {
            "attributes": len(matched),
            "to_ids": sum(1 for a in matched if _ids(a)),
            "events": [_summary(key, e) for key, e in list(events.items())[:_MAX_EVENTS]],
            "types": sorted({str(a["type"]) for a in matched if a.get("type")}),
            "categories": sorted({str(a["category"]) for a in matched if a.get("category")}),
        }
        stamps = [int(a["timestamp"]) for a in matched if str(a.get("timestamp")).isdigit()]
        if stamps:
            details["last_change"] = datetime.fromtimestamp(max(stamps), UTC).isoformat()
        if len(found) >= self.limit:
            details["truncated"] = True
        top_event = _event_id(top)
        info = event.get("info")
        return Reputation(
            source=self.name,
            subject=subject,
            verdict=self._verdict(top),
            reliability=self.reliability,
            detections=len(flagged),
            total=len(events),
            label=info.strip() if isinstance(info, str) and info.strip() else None,
            tags=_tags(ranked),
            link=f"{self.web}/events/view/{quote(top_event, safe='')}" if top_event else None,
            details=details,
        )

    def _verdict(self, attribute: dict[str, Any]) -> Verdict:
        """What one matching attribute says (see the module docstring)."""
        if _ids(attribute):
            if _level(attribute) in self.malicious_levels:
                return Verdict.MALICIOUS
            return Verdict.SUSPICIOUS
        if attribute.get("type") in _REFERENCES:
            return Verdict.UNKNOWN
        return Verdict.SUSPICIOUS

    def _rank(self, attribute: dict[str, Any]) -> tuple[int, int, int]:
        """Strongest verdict first, then the highest threat level, then the newest."""
        level = _level(attribute)
        stamp = str(attribute.get("timestamp"))
        return (
            self._verdict(attribute).score,
            -int(level) if level in _LEVELS else -5,
            int(stamp) if stamp.isdigit() else 0,
        )


def spellings(subject: Observable) -> list[str]:
    """The values to ask MISP for: restSearch matches a value as it was stored.

    The normalized value; the text the alert had, if the observable keeps it; and, for a
    URL, each of those without its trailing slash (`http://evil.example/` is stored as
    `http://evil.example` as often as not).
    """
    found = [subject.value]
    original = getattr(subject, "original", None)
    if isinstance(original, str) and original.strip():
        found.append(original.strip())
    if subject.kind is ObservableKind.URL:
        found += [v.rstrip("/") for v in found if v.endswith("/") and v.rstrip("/")]
    return list(dict.fromkeys(found))


def _attributes(response: Any) -> list[dict[str, Any]]:
    """The attributes of a restSearch `response` (an object, or a list when empty)."""
    items = response.get("Attribute") if isinstance(response, dict) else response
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError("not a restSearch answer (Attribute is not a list)")
    found = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("Attribute"), dict):
            item = item["Attribute"]  # older versions: [{"Attribute": {...}}, ...]
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            found.append(item)
    return found


def _matches(subject: Observable, attribute: dict[str, Any]) -> bool:
    """Whether the attribute's value, or a part of a composite value, is the subject."""
    value: str = attribute["value"]
    parts = value.split("|") if "|" in str(attribute.get("type")) else [value]
    for part in parts:
        parsed = Observable.try_parse(part, subject.kind)
        if parsed is None:  # not a value of the subject's kind (a port, a registry key)
            continue
        if subject.kind is ObservableKind.FILENAME:  # file systems mostly ignore case
            if parsed.value.casefold() == subject.value.casefold():
                return True
        elif parsed.value == subject.value:
            return True
    return False


def _event(attribute: dict[str, Any]) -> dict[str, Any]:
    event = attribute.get("Event")
    return event if isinstance(event, dict) else {}


def _event_id(attribute: dict[str, Any]) -> str:
    value = attribute.get("event_id") or _event(attribute).get("id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _level(attribute: dict[str, Any]) -> str:
    """The event's threat level id (`"1"` .. `"4"`), or "" if the answer has none."""
    level = _event(attribute).get("threat_level_id")
    return str(level) if isinstance(level, str | int) and not isinstance(level, bool) else ""


def _ids(attribute: dict[str, Any]) -> bool:
    """Whether the attribute is flagged for detection (`to_ids`: true, 1 or "1")."""
    flag = attribute.get("to_ids")
    return flag is True or (not isinstance(flag, bool) and str(flag) == "1")


def _summary(key: str, event: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"id": key}
    for name in ("info", "date", "uuid"):
        if isinstance(event.get(name), str) and event[name]:
            summary[name] = event[name]
    level = str(event.get("threat_level_id"))
    if level in _LEVELS:
        summary["threat_level"] = _LEVELS[level]
    return summary


def _tags(attributes: list[dict[str, Any]]) -> list[str]:
    """The attributes' and their events' tag names, without repeats, at most 30."""
    seen: dict[str, str] = {}
    for attribute in attributes:
        for tag in [*(attribute.get("Tag") or ()), *(_event(attribute).get("Tag") or ())]:
            name = tag.get("name") if isinstance(tag, dict) else None
            if isinstance(name, str) and name.strip():
                seen.setdefault(name.strip().casefold(), name.strip())
    return list(seen.values())[:_MAX_TAGS]
