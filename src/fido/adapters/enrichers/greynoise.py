"""`greynoise`: the GreyNoise Community API, internet background noise and known services.

```toml
[[enrichers]]
type = "greynoise"
api_key_env = "GREYNOISE_API_KEY"  # optional: without a key, GreyNoise allows fewer look-ups
noise = "suspicious"               # the verdict on unclassified scanners (or "unknown", "benign")
# rate = "50/day"                  # the budget of your plan; none is kept by default
```

One `GET /v3/community/{ip}` per public IPv4 address, with the `key` header when there
is a key (the Community API answers without one, at a lower limit). GreyNoise says
whether an address scans the internet (`noise`), whether it belongs to a known benign
service such as a CDN or a public resolver (`riot`, "rule it out") and how it classifies
it. The verdict: `malicious` is MALICIOUS; a RIOT service, or a `benign` classification,
is BENIGN; a `suspicious` classification is SUSPICIOUS; an unclassified scanner gets the
`noise` option's verdict (SUSPICIOUS by default); anything else UNKNOWN. A 404 whose
body is GreyNoise's answer about the address (`ip` and `message`: "IP not observed
scanning the internet or contained in RIOT data set") is "not known": no finding, cached
as such; any other 404 (a wrong `base_url`) is an error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Final

from fido._errors import ConfigurationError
from fido._findings import Reputation, Verdict
from fido._observable import Observable, ObservableKind
from fido.adapters._http import HttpEnricher

if TYPE_CHECKING:
    import httpx

    from fido._findings import Subject

__all__ = ["GreyNoise"]

_CLASSIFICATIONS: Final = {
    "malicious": Verdict.MALICIOUS,
    "suspicious": Verdict.SUSPICIOUS,
    "benign": Verdict.BENIGN,
}
_NOISE: Final = ("suspicious", "unknown", "benign")
_FACTS: Final = ("classification", "last_seen", "message")


class GreyNoise(HttpEnricher):
    """GreyNoise Community API v3 (see the module docstring for the configuration).

    Args:
        noise: The verdict on an address seen scanning the internet that GreyNoise does
            not classify: `suspicious` (the default), `unknown` or `benign`.
        **options: As for every HTTP enricher (`api_key`, `base_url`, `rate`, ...); the
            API key is optional.

    Raises:
        ConfigurationError: An unknown `noise` verdict.
    """

    service: ClassVar[str] = "greynoise"
    default_base_url: ClassVar[str] = "https://api.greynoise.io/v3/"
    default_rate: ClassVar[str | list[str] | None] = None
    default_reliability: ClassVar[str] = "B"
    requires_key: ClassVar[bool] = False
    web: ClassVar[str] = "https://viz.greynoise.io/ip"

    def __init__(self, *, noise: str = "suspicious", **options: Any) -> None:
        if noise not in _NOISE:
            raise ConfigurationError(
                f"greynoise: noise must be one of {', '.join(_NOISE)}, not {noise!r}"
            )
        self.noise = Verdict(noise)
        super().__init__(**options)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The `key` header (only sent when there is a key)."""
        return {"key": api_key, "accept": "application/json"}

    def accepts(self, subject: Subject) -> bool:
        """Public IPv4 addresses (the Community API refuses IPv6 ones)."""
        # internal addresses are not GreyNoise's business (and must not leak to it)
        return (
            isinstance(subject, Observable)
            and subject.kind is ObservableKind.IPV4
            and not self.is_internal(subject)
        )

    def is_not_found(self, response: httpx.Response) -> bool:
        """A 404 is "not found" only as GreyNoise's answer about the address (ip, message)."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        return (
            isinstance(body, dict)
            and isinstance(body.get("ip"), str)
            and isinstance(body.get("message"), str)
        )

    async def fetch(self, subject: Subject) -> Reputation | None:
        """What GreyNoise says of the address, or None if it has never seen it."""
        assert isinstance(subject, Observable)  # noqa: S101 - accepts() said so
        body = await self.http.get_json(f"community/{subject.value}")
        if body is None:
            return None
        return self.reputation(subject, body)

    def reputation(self, subject: Observable, body: Any) -> Reputation:
        """A `Reputation` from a Community API answer.

        Raises:
            ValueError: The body is not a Community API answer (no `noise` nor `riot`).
        """
        if not isinstance(body, dict) or not ("noise" in body or "riot" in body):
            raise ValueError("not a Community API answer (no noise nor riot)")
        noise = body.get("noise") is True
        riot = body.get("riot") is True
        classification = body.get("classification")
        classified = _CLASSIFICATIONS.get(str(classification).lower())
        if classified is Verdict.MALICIOUS:
            verdict = Verdict.MALICIOUS
        elif riot:
            verdict = Verdict.BENIGN
        elif classified is not None:
            verdict = classified
        elif noise:
            verdict = self.noise
        else:
            verdict = Verdict.UNKNOWN
        name = body.get("name")
        label = name.strip() if isinstance(name, str) and name.strip() else None
        if label is not None and label.lower() == "unknown":
            label = None
        link = body.get("link")
        if not (isinstance(link, str) and link.startswith("https://")):
            link = f"{self.web}/{subject.value}"
        details: dict[str, Any] = {"noise": noise, "riot": riot}
        for key in _FACTS:
            if isinstance(body.get(key), str) and body[key]:
                details[key] = body[key]
        return Reputation(
            source=self.name,
            subject=subject,
            verdict=verdict,
            reliability=self.reliability,
            label=label,
            tags=[tag for tag, on in (("noise", noise), ("riot", riot)) if on],
            link=link,
            details=details,
        )
