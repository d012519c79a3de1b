"""`otx`: AlienVault OTX (Open Threat Exchange) DirectConnect API v1, pulses by indicator.

```toml
[[enrichers]]
type = "otx"
api_key_env = "OTX_API_KEY"
malicious = 3                     # pulses for a MALICIOUS verdict
suspicious = 1                    # pulses for a SUSPICIOUS verdict
# rate = ["1000/hour"]            # a budget of your own; none is kept by default
```

One `GET /api/v1/indicators/{IPv4,IPv6,domain,hostname,url,file}/{indicator}/general`
per subject, with the `X-OTX-API-KEY` header (a URL is one path segment, percent-encoded).
A registrable domain is a `domain` to OTX, a name below one a `hostname`: `evil.example`
and `evil.co.uk` are domains, `www.evil.example` and `www.evil.co.uk` host names. Which
names are registrable is read from a short list of common two-label public suffixes
(`co.uk`, `com.au`, `co.jp`, ... : `MULTI_LABEL_SUFFIXES`), not the whole Public Suffix
List: a name under a rarer one (`evil.com.bd`) is asked for as a host name.

The verdict comes from the community's pulses (threat reports) that list the indicator:
an indicator OTX validates as known good (`validation`, or an accepted `false_positive`)
is BENIGN whatever the pulses say; otherwise `malicious` pulses or more make it MALICIOUS,
`suspicious` or more SUSPICIOUS, and none UNKNOWN (a finding all the same, with
`detections=0`, so the incident shows it was checked). Listed pulses that do not hold
an indicator of the subject's type are not counted. A 404, or a 400 (OTX refuses the
indicator), with OTX's JSON `{"detail": ...}` body is "not known" (no finding); any
other 404 or 400 (a wrong `base_url`) is an error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote

from fido._errors import ConfigurationError
from fido._findings import Reputation, Verdict
from fido._observable import Observable, ObservableKind
from fido.adapters._http import HttpEnricher

if TYPE_CHECKING:
    import httpx

    from fido._findings import Subject

__all__ = ["OTX"]

_SECTIONS: Final = {
    ObservableKind.MD5: "file",
    ObservableKind.SHA1: "file",
    ObservableKind.SHA256: "file",
    ObservableKind.IPV4: "IPv4",
    ObservableKind.IPV6: "IPv6",
    ObservableKind.DOMAIN: "domain",
    ObservableKind.URL: "url",
}
_PAGES: Final = {"IPv4": "ip", "IPv6": "ip"}
"""The web pages' names for the API's sections, where they differ."""
_MAX_TAGS: Final = 20
_MAX_NAMES: Final = 10
MULTI_LABEL_SUFFIXES: Final = frozenset(
    f"{second}.{top}"
    for top, seconds in {
        "uk": ("co", "org", "me", "ltd", "plc", "net", "ac", "gov", "sch", "nhs", "police"),
        "au": ("com", "net", "org", "edu", "gov", "asn", "id"),
        "nz": ("co", "org", "net", "ac", "govt", "geek", "school"),
        "jp": ("co", "ne", "or", "ac", "go", "ad", "ed", "gr", "lg"),
        "kr": ("co", "or", "ne", "ac", "go", "re"),
        "br": ("com", "net", "org", "gov", "edu"),
        "cn": ("com", "net", "org", "gov", "edu", "ac"),
        "in": ("co", "net", "org", "gen", "firm", "ind", "ac", "edu", "gov"),
        "za": ("co", "org", "net", "gov", "ac", "web"),
        "il": ("co", "org", "net", "ac", "gov"),
        "mx": ("com", "org", "net", "gob", "edu"),
        "ar": ("com", "org", "net", "gob", "edu"),
        "tr": ("com", "net", "org", "gen", "biz", "info", "gov", "edu"),
        "tw": ("com", "net", "org", "idv", "gov", "edu"),
        "hk": ("com", "net", "org", "gov", "edu", "idv"),
        "sg": ("com", "net", "org", "gov", "edu"),
        "my": ("com", "net", "org", "gov", "edu"),
        "id": ("co", "or", "web", "ac", "go", "net"),
        "th": ("co", "or", "in", "ac", "go", "net"),
        "ua": ("com", "net", "org", "in", "kiev"),
        "ru": ("com", "net", "org", "msk", "spb"),
        "pl": ("com", "net", "org", "waw"),
        "vn": ("com", "net", "org", "gov", "edu"),
        "ph": ("com", "net", "org", "gov", "edu"),
        "pk": ("com", "net", "org", "gov", "edu"),
        "ng": ("com", "org", "net", "gov", "edu"),
        "eg": ("com", "org", "net", "gov", "edu"),
        "sa": ("com", "org", "net", "gov", "edu"),
        "ir": ("co", "org", "net", "ac", "gov", "id"),
    }.items()
    for second in seconds
)
"""Two-label public suffixes common enough to matter (`co.uk`, `com.au`, ...): under one,
a registrable domain has three labels (`evil.co.uk`). A short list, not the Public
Suffix List; what it leaves out is asked for as a host name."""


def section(subject: Observable) -> str:
    """The API's section for an observable (`IPv4`, `domain`, `hostname`, `file`, ...).

    A registrable domain is a `domain` (`evil.example`, `evil.co.uk`), a name below one
    a `hostname` (`www.evil.example`, `www.evil.co.uk`).
    """
    name = _SECTIONS[subject.kind]
    if name == "domain":
        labels = subject.value.split(".")
        registrable = 3 if ".".join(labels[-2:]) in MULTI_LABEL_SUFFIXES else 2
        if len(labels) > registrable:
            return "hostname"
    return name


class OTX(HttpEnricher):
    """AlienVault OTX DirectConnect API v1 (see the module docstring for the configuration).

    Args:
        malicious: Pulses for a MALICIOUS verdict (default 3).
        suspicious: Pulses for a SUSPICIOUS verdict (default 1); below it, UNKNOWN.
        **options: As for every HTTP enricher (`api_key`, `base_url`, `rate`, ...).

    Raises:
        ConfigurationError: No API key, or thresholds out of order.
    """

    service: ClassVar[str] = "otx"
    default_base_url: ClassVar[str] = "https://otx.alienvault.com/api/v1/"
    default_rate: ClassVar[str | list[str] | None] = None
    default_reliability: ClassVar[str] = "C"
    web: ClassVar[str] = "https://otx.alienvault.com/indicator"

    def __init__(self, *, malicious: int = 3, suspicious: int = 1, **options: Any) -> None:
        if not 1 <= suspicious <= malicious:
            raise ConfigurationError(
                "otx: expected 1 <= suspicious <= malicious, "
                f"not suspicious={suspicious!r}, malicious={malicious!r}"
            )
        self.malicious = malicious
        self.suspicious = suspicious
        super().__init__(**options)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The `X-OTX-API-KEY` header."""
        return {"x-otx-api-key": api_key, "accept": "application/json"}

    def accepts(self, subject: Subject) -> bool:
        """Hashes, public IP addresses, domains and URLs (not on internal hosts)."""
        if not isinstance(subject, Observable) or subject.kind not in _SECTIONS:
            return False
        # internal indicators are not OTX's business (and must not leak to it)
        return not self.is_internal(subject)

    def is_not_found(self, response: httpx.Response) -> bool:
        """A 404 or 400 is "not known" only with OTX's JSON `{"detail": ...}` body."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        return isinstance(body, dict) and isinstance(body.get("detail"), str)

    async def fetch(self, subject: Subject) -> Reputation | None:
        """The indicator's general section, or None if OTX does not know it."""
        assert isinstance(subject, Observable)  # noqa: S101 - accepts() said so
        kind = section(subject)
        path = f"indicators/{kind}/{quote(subject.value, safe='')}/general"
        body = await self.http.get_json(path, absent=(400, 404))
        if body is None:
            return None
        return self.reputation(subject, body, kind)

    def reputation(self, subject: Observable, body: Any, kind: str) -> Reputation:
        """A `Reputation` from a general section.

        Raises:
            ValueError: The body is not a general section (no `pulse_info`).
        """
        info = body.get("pulse_info") if isinstance(body, dict) else None
        if not isinstance(info, dict):
            raise ValueError("not an indicator's general section (no pulse_info)")
        listed = [p for p in info.get("pulses") or () if isinstance(p, dict)]
        base = body.get("base_indicator")
        base_type = base.get("type") if isinstance(base, dict) else None
        pulses = [p for p in listed if _holds(p, base_type)]
        count = max(_count(info.get("count"), len(listed)), len(listed))
        detections = count - (len(listed) - len(pulses))
        validation = [v for v in body.get("validation") or () if isinstance(v, dict)]
        accepted = any(
            isinstance(f, dict) and f.get("assessment") == "accepted"
            for f in body.get("false_positive") or ()
        )
        details: dict[str, Any] = {"pulses": _texts(p.get("name") for p in pulses)[:_MAX_NAMES]}
        adversaries = _texts(p.get("adversary") for p in pulses)
        if adversaries:
            details["adversaries"] = adversaries[:_MAX_NAMES]
        for key in ("reputation", "type_title"):
            if isinstance(body.get(key), str | int) and not isinstance(body.get(key), bool):
                details[key] = body[key]
        if len(listed) > len(pulses):
            details["pulses_ignored"] = len(listed) - len(pulses)
        label = None
        if validation or accepted:
            verdict = Verdict.BENIGN
            tags = [f"validation:{s}" for s in _texts(v.get("source") for v in validation)]
            tags += ["false-positive:accepted"] if accepted else []
            details["validation"] = _texts(v.get("name") or v.get("message") for v in validation)
        else:
            if detections >= self.malicious:
                verdict = Verdict.MALICIOUS
            elif detections >= self.suspicious:
                verdict = Verdict.SUSPICIOUS
            else:
                verdict = Verdict.UNKNOWN
            families = _texts(_family(f) for p in pulses for f in p.get("malware_families") or ())
            names = details["pulses"]
            label = families[0] if families else names[0] if names else None
            tags = _texts(t for p in pulses for t in p.get("tags") or ())[:_MAX_TAGS]
            if families:
                details["malware_families"] = families[:_MAX_NAMES]
        return Reputation(
            source=self.name,
            subject=subject,
            verdict=verdict,
            reliability=self.reliability,
            detections=detections,
            label=label,
            tags=tags,
            link=f"{self.web}/{_PAGES.get(kind, kind)}/{quote(subject.value, safe='')}",
            details=details,
        )


def _holds(pulse: dict[str, Any], base_type: Any) -> bool:
    """Whether a pulse may list the indicator (it holds indicators of its type).

    OTX lists, with an indicator, pulses that only hold related ones; a pulse that says
    which types it holds (`indicator_type_counts`) and not this one is left out.
    """
    counts = pulse.get("indicator_type_counts")
    if not isinstance(base_type, str) or not isinstance(counts, dict) or not counts:
        return True
    return base_type in counts


def _family(value: Any) -> Any:
    """A malware family's name: a string, or an object's `display_name` or `id`."""
    if isinstance(value, dict):
        return value.get("display_name") or value.get("id")
    return value


def _texts(values: Any) -> list[str]:
    """The non-empty strings among `values`, stripped, without repeats (ignoring case)."""
    seen: dict[str, str] = {}
    for value in values:
        if isinstance(value, str) and value.strip():
            seen.setdefault(value.strip().casefold(), value.strip())
    return list(seen.values())


def _count(value: Any, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )
