"""`virustotal`: VirusTotal API v3 reports on files, IP addresses, domains and URLs.

```toml
[[enrichers]]
type = "virustotal"
api_key_env = "VT_API_KEY"
plan = "public"                   # 4 look-ups a minute and 500 a day; "premium": no limit
# rate = ["1000/min"]             # or the quota of your own licence (overrides the plan)
malicious = 3                     # engines saying malicious for a MALICIOUS verdict
suspicious = 1                    # engines saying malicious or suspicious for SUSPICIOUS
```

One `GET /api/v3/{files,ip_addresses,domains,urls}/{id}` per subject (URL ids are the
URL's unpadded URL-safe base64). The verdict comes from `last_analysis_stats`: files
have eight counters (with `type-unsupported`, `confirmed-timeout`, `failure`), the other
objects five; missing counters count as zero. The answer must be an object of the type
asked for (`file`, `ip_address`, `domain`, `url`): any other (an `analysis`, say) is an
error. A 404 whose body is VirusTotal's `NotFoundError` is "not known" (no finding,
cached as such); any other 404 (a wrong `base_url`) is an error. A 429
`QuotaExceededError` means a quota is spent: every look-up that shares the key is
skipped ("skipped: quota exhausted until T") until it resets: after the `Retry-After`
VirusTotal gives, else a minute (the per-minute quota), else, when the quota is still
spent after that minute, the next 00:00 UTC (the daily quota).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

from fido._errors import ConfigurationError
from fido._findings import Reputation, Verdict
from fido._observable import Observable, ObservableKind
from fido.adapters._http import HttpEnricher, retry_after

if TYPE_CHECKING:
    import httpx

    from fido._findings import Subject

__all__ = ["VirusTotal"]

_PATHS: Final = {
    ObservableKind.MD5: "files",
    ObservableKind.SHA1: "files",
    ObservableKind.SHA256: "files",
    ObservableKind.IPV4: "ip_addresses",
    ObservableKind.IPV6: "ip_addresses",
    ObservableKind.DOMAIN: "domains",
    ObservableKind.URL: "urls",
}
_GUI: Final = {"files": "file", "ip_addresses": "ip-address", "domains": "domain", "urls": "url"}
_TYPES: Final = {"files": "file", "ip_addresses": "ip_address", "domains": "domain", "urls": "url"}
"""The object type (`data.type`) each collection answers with."""
_MINUTE_QUOTA: Final = 60.0
"""Seconds a QuotaExceededError without Retry-After pauses first: the per-minute quota."""
_STATS: Final = (
    "malicious",
    "suspicious",
    "harmless",
    "undetected",
    "timeout",
    "type-unsupported",
    "confirmed-timeout",
    "failure",
)


def url_id(url: str) -> str:
    """VirusTotal's id of a URL: its unpadded URL-safe base64."""
    return base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")


class VirusTotal(HttpEnricher):
    """VirusTotal API v3 (see the module docstring for the configuration).

    Args:
        plan: `premium` (the default: no limit kept here; the service's 429 answers are
            honoured) or `public` (4 look-ups a minute and 500 a day, shared by every
            look-up with the key). A `rate` option overrides the plan.
        malicious: Engines that must say malicious for a MALICIOUS verdict (default 3).
        suspicious: Engines saying malicious or suspicious for a SUSPICIOUS verdict
            (default 1); below it, an object some engines analysed is BENIGN.
        **options: As for every HTTP enricher (`api_key`, `base_url`, `rate`, ...).

    Raises:
        ConfigurationError: No API key, an unknown plan, or a threshold below 1.
    """

    service: ClassVar[str] = "virustotal"
    default_base_url: ClassVar[str] = "https://www.virustotal.com/api/v3/"
    plans: ClassVar[dict[str, list[str] | None]] = {
        "public": ["4/min", "500/day"],
        "premium": None,
    }
    default_reliability: ClassVar[str] = "B"
    gui: ClassVar[str] = "https://www.virustotal.com/gui"

    def __init__(
        self, *, plan: str = "premium", malicious: int = 3, suspicious: int = 1, **options: Any
    ) -> None:
        if malicious < 1 or suspicious < 1:
            raise ConfigurationError("virustotal: malicious and suspicious must be at least 1")
        if plan not in self.plans:
            raise ConfigurationError(
                f"virustotal: plan must be one of {', '.join(self.plans)}, not {plan!r}"
            )
        self.malicious = malicious
        self.suspicious = suspicious
        self._quota_lock = threading.Lock()
        self._minute_pause_ends: float | None = None
        """When the last minute-long quota pause ended (`time.monotonic()`), if no
        answer came since."""
        options.setdefault("rate", self.plans[plan] or "unlimited")
        super().__init__(**options)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The `x-apikey` header."""
        return {"x-apikey": api_key, "accept": "application/json"}

    def accepts(self, subject: Subject) -> bool:
        """Hashes, public IP addresses, domains and URLs; none internal or on an internal host."""
        if not isinstance(subject, Observable) or subject.kind not in _PATHS:
            return False
        # internal indicators are not VirusTotal's business (and must not leak to it)
        return not self.is_internal(subject)

    def is_not_found(self, response: httpx.Response) -> bool:
        """A 404 is "not found" only with VirusTotal's `NotFoundError` body."""
        return _error_code(response) == "NotFoundError"

    def quota_reset(self, response: httpx.Response) -> float | None:
        """Seconds until a spent quota resets, for a `QuotaExceededError` answer.

        The `Retry-After` if VirusTotal gives one. Else the quota that is spent is not
        said: the per-minute one is assumed (a minute); a `QuotaExceededError` again for
        a request sent after that pause, within a minute and with no answer in between,
        means the daily quota: until the next 00:00 UTC, when VirusTotal resets it.
        """
        if _error_code(response) != "QuotaExceededError":
            return None
        given = retry_after(response.headers.get("retry-after"))
        if given is not None:
            return given
        now = time.monotonic()
        with self._quota_lock:
            ended = self._minute_pause_ends
            if ended is not None and ended <= now <= ended + _MINUTE_QUOTA:
                self._minute_pause_ends = None
                wall = datetime.now(UTC)
                midnight = (wall + timedelta(days=1)).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                return (midnight - wall).total_seconds()
            self._minute_pause_ends = now + _MINUTE_QUOTA
            return _MINUTE_QUOTA

    async def fetch(self, subject: Subject) -> Reputation | None:
        """The object's report, or None if VirusTotal has never seen it."""
        assert isinstance(subject, Observable)  # noqa: S101 - accepts() said so
        collection = _PATHS[subject.kind]
        ident = url_id(subject.value) if collection == "urls" else subject.value
        body = await self.http.get_json(f"{collection}/{ident}")
        with self._quota_lock:
            self._minute_pause_ends = None  # an answer: the quota was not spent for the day
        if body is None:
            return None
        return self.reputation(subject, body, collection)

    def reputation(self, subject: Observable, body: Any, collection: str) -> Reputation:
        """A `Reputation` from a v3 object response (`{"data": {...}}` or the bare object).

        Raises:
            ValueError: The answer is not an object of the collection's type (an
                `analysis` where a `file` was asked for, or no type at all).
        """
        data = body.get("data", body) if isinstance(body, dict) else {}
        if not isinstance(data, dict):
            raise ValueError("not a v3 object (no data)")
        expected = _TYPES[collection]
        if data.get("type") != expected:
            found = data.get("type")
            what = f"of type {found[:40]!r}" if isinstance(found, str) else "without a type"
            raise ValueError(f"VirusTotal answered with an object {what}, not {expected!r}")
        attributes = data.get("attributes") or {}
        raw = attributes.get("last_analysis_stats") or {}
        stats = {name: _count(raw.get(name)) for name in _STATS}
        malicious, suspicious = stats["malicious"], stats["suspicious"]
        analysed = malicious + suspicious + stats["harmless"] + stats["undetected"]
        if malicious >= self.malicious:
            verdict = Verdict.MALICIOUS
        elif malicious + suspicious >= self.suspicious:
            verdict = Verdict.SUSPICIOUS
        elif analysed:
            verdict = Verdict.BENIGN
        else:
            verdict = Verdict.UNKNOWN
        classification = attributes.get("popular_threat_classification") or {}
        label = classification.get("suggested_threat_label")
        tags = [t for t in attributes.get("tags") or () if isinstance(t, str)]
        tags += [
            f"threat:{item['value']}"
            for item in classification.get("popular_threat_category") or ()
            if isinstance(item, dict) and isinstance(item.get("value"), str)
        ]
        ident = data.get("id") or (url_id(subject.value) if collection == "urls" else subject.value)
        details: dict[str, Any] = {"stats": stats}
        for key in ("reputation", "type_description", "meaningful_name", "as_owner", "country"):
            if isinstance(attributes.get(key), str | int):
                details[key] = attributes[key]
        analysed_at = attributes.get("last_analysis_date")
        if isinstance(analysed_at, int):
            details["last_analysis"] = datetime.fromtimestamp(analysed_at, UTC).isoformat()
        return Reputation(
            source=self.name,
            subject=subject,
            verdict=verdict,
            reliability=self.reliability,
            detections=malicious,
            total=analysed,
            label=label if isinstance(label, str) else None,
            tags=tags,
            link=f"{self.gui}/{_GUI[collection]}/{ident}",
            details=details,
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _error_code(response: httpx.Response) -> str | None:
    """The `error.code` of a VirusTotal error body (`NotFoundError`, ...), if it has one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
