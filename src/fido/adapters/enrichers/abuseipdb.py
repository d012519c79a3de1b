"""`abuseipdb`: AbuseIPDB APIv2, the community's abuse reports about public IP addresses.

```toml
[[enrichers]]
type = "abuseipdb"
api_key_env = "ABUSEIPDB_API_KEY"
malicious = 75                    # abuse confidence score for a MALICIOUS verdict
suspicious = 25                   # abuse confidence score for a SUSPICIOUS verdict
max_age_days = 90                 # reports older than this are not counted (1-365)
# rate = "10000/day"              # the quota of a paid plan (default: the free 1000/day)
```

One `GET /api/v2/check?ipAddress={ip}&maxAgeInDays={days}` per public IP address, with
the `Key` header. The verdict comes from the abuse confidence score (0-100): an address
AbuseIPDB whitelists is BENIGN whatever its score; otherwise `malicious` or more makes
it MALICIOUS, `suspicious` or more SUSPICIOUS, a lower score BENIGN if the address was
reported at all, and UNKNOWN if it never was (a finding all the same, so the incident
shows it was checked). AbuseIPDB knows every address, so any 404 is an error (a wrong
`base_url`), as is a 422 (AbuseIPDB refuses the address); neither is retried. A 429 with
`X-RateLimit-Remaining: 0` is the daily limit used up: every look-up that shares the key
is skipped ("skipped: quota exhausted until T") until `X-RateLimit-Reset` (or the
`Retry-After`); another 429 waits for its `Retry-After` and retries, pausing every
look-up that shares the key.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, ClassVar, Final

from fido._errors import ConfigurationError
from fido._findings import Reputation, Verdict
from fido._observable import Observable
from fido.adapters._http import HttpEnricher, retry_after

if TYPE_CHECKING:
    import httpx

    from fido._findings import Subject

__all__ = ["AbuseIPDB"]

_MAX_HOSTNAMES: Final = 10
_FACTS: Final = {
    "countryCode": "country",
    "usageType": "usage_type",
    "isp": "isp",
    "domain": "domain",
    "lastReportedAt": "last_reported",
}
"""Text fields of a check answer kept in `details`, by their name there."""


class AbuseIPDB(HttpEnricher):
    """AbuseIPDB APIv2 `check` (see the module docstring for the configuration).

    Args:
        malicious: The abuse confidence score (0-100) for a MALICIOUS verdict (default 75).
        suspicious: The score for a SUSPICIOUS verdict (default 25); below it, BENIGN if
            the address was ever reported, else UNKNOWN.
        max_age_days: Only reports of the last so many days count (1-365, default 90).
        **options: As for every HTTP enricher (`api_key`, `base_url`, `rate`, ...).

    Raises:
        ConfigurationError: No API key, thresholds out of order, or `max_age_days` out
            of range.
    """

    service: ClassVar[str] = "abuseipdb"
    default_base_url: ClassVar[str] = "https://api.abuseipdb.com/api/v2/"
    default_rate: ClassVar[str | list[str] | None] = "1000/day"
    default_reliability: ClassVar[str] = "C"
    web: ClassVar[str] = "https://www.abuseipdb.com/check"

    def __init__(
        self,
        *,
        malicious: int = 75,
        suspicious: int = 25,
        max_age_days: int = 90,
        **options: Any,
    ) -> None:
        if not 1 <= suspicious <= malicious <= 100:
            raise ConfigurationError(
                "abuseipdb: expected 1 <= suspicious <= malicious <= 100, "
                f"not suspicious={suspicious!r}, malicious={malicious!r}"
            )
        if not 1 <= (_count(max_age_days) or 0) <= 365:
            raise ConfigurationError(
                f"abuseipdb: max_age_days is between 1 and 365, not {max_age_days!r}"
            )
        self.malicious = malicious
        self.suspicious = suspicious
        self.max_age_days = max_age_days
        super().__init__(**options)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The `Key` header (and JSON answers, which APIv2 only gives when asked)."""
        return {"key": api_key, "accept": "application/json"}

    def accepts(self, subject: Subject) -> bool:
        """Public IPv4 and IPv6 addresses."""
        # internal addresses are not AbuseIPDB's business (and must not leak to it)
        return (
            isinstance(subject, Observable) and subject.kind.is_ip and not self.is_internal(subject)
        )

    def quota_reset(self, response: httpx.Response) -> float | None:
        """Seconds until the daily limit resets, for a 429 that says it is used up.

        AbuseIPDB says so with `X-RateLimit-Remaining: 0`; `X-RateLimit-Reset` is when
        the limit resets (Unix time), else `Retry-After` says how long until then.
        """
        if response.headers.get("x-ratelimit-remaining", "").strip() != "0":
            return None
        reset = _number(response.headers.get("x-ratelimit-reset"))
        if reset is not None:
            # a Unix time (as AbuseIPDB sends it), or seconds from now if it is small
            return max(0.0, reset - time.time()) if reset > 1e9 else reset
        return retry_after(response.headers.get("retry-after"))

    async def fetch(self, subject: Subject) -> Reputation:
        """The address's check answer (AbuseIPDB knows every address: a 404 is an error)."""
        assert isinstance(subject, Observable)  # noqa: S101 - accepts() said so
        params = {"ipAddress": subject.value, "maxAgeInDays": self.max_age_days}
        body = await self.http.get_json("check", params=params)
        return self.reputation(subject, body)

    def reputation(self, subject: Observable, body: Any) -> Reputation:
        """A `Reputation` from a check answer (`{"data": {...}}`).

        Raises:
            ValueError: The body is not a check answer (no `data` with a score).
        """
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ValueError("not a check answer (no data)")
        score = _count(data.get("abuseConfidenceScore"))
        if score is None:
            raise ValueError("not a check answer (no abuseConfidenceScore)")
        score = min(score, 100)
        reports = _count(data.get("totalReports")) or 0
        whitelisted = data.get("isWhitelisted") is True
        if whitelisted:
            verdict = Verdict.BENIGN
        elif score >= self.malicious:
            verdict = Verdict.MALICIOUS
        elif score >= self.suspicious:
            verdict = Verdict.SUSPICIOUS
        elif reports:
            verdict = Verdict.BENIGN
        else:
            verdict = Verdict.UNKNOWN
        tags = ["tor"] if data.get("isTor") is True else []
        usage = data.get("usageType")
        if isinstance(usage, str) and usage.strip():
            tags.append(usage.strip())
        if whitelisted:
            tags.append("whitelisted")
        details: dict[str, Any] = {
            "total_reports": reports,
            "distinct_users": _count(data.get("numDistinctUsers")) or 0,
            "max_age_days": self.max_age_days,
        }
        for key, name in _FACTS.items():
            if isinstance(data.get(key), str) and data[key]:
                details[name] = data[key]
        hostnames = [h for h in data.get("hostnames") or () if isinstance(h, str)]
        if hostnames:
            details["hostnames"] = hostnames[:_MAX_HOSTNAMES]
        for key, name in (("isTor", "is_tor"), ("isWhitelisted", "is_whitelisted")):
            if isinstance(data.get(key), bool):
                details[name] = data[key]
        return Reputation(
            source=self.name,
            subject=subject,
            verdict=verdict,
            reliability=self.reliability,
            detections=reports,
            score=score,
            tags=tags,
            link=f"{self.web}/{subject.value}",
            details=details,
        )


def _count(value: Any) -> int | None:
    """A non-negative integer, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _number(text: str | None) -> float | None:
    """A finite, non-negative number from a header, or None."""
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
