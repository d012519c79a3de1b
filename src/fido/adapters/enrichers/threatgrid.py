"""`threatgrid`: Cisco Secure Malware Analytics (Threat Grid) sandbox verdicts, API v2.

```toml
[[enrichers]]
type = "threatgrid"
api_key_env = "THREATGRID_API_KEY"
# base_url = "https://panacea.threatgrid.eu/api/v2/"   # the EU cloud, or an appliance
# auth = "query"                  # send the key as ?api_key= (older appliances)
malicious = 75                    # threat score for a MALICIOUS verdict
suspicious = 50                   # threat score for SUSPICIOUS; below it, BENIGN
associated = "suspicious"         # the strongest verdict from samples that only touched it
samples = 25                      # submissions read per look-up, highest score first
# kinds = ["md5", "sha1", "sha256"]   # look up hashes only
# related = false                 # no entity searches (one request per look-up)
```

One `GET /api/v2/search/submissions?q=<indicator>&state=succ&sort_by=threat_score&
sort_order=desc&limit=<samples>` per subject: finished analyses that match the indicator,
the most threatening first. For a hash, the submissions of that very file are the
evidence (their top `threat_score`, 0-100, gives the verdict); a hash seen only inside
other samples, and every IP address, domain and URL, is judged by the samples that
contacted or contained it, which proves less: that verdict is capped at `associated`.

With `related` (the default), the entity searches add what Threat Grid saw around the
subject, one more request each (under the rate limit too):

- an IP address: `GET /api/v2/search/domains?term=ip&query=<ip>`, the domains seen
  resolving to it (`details["domains"]`), alongside the submission search;
- a domain: `GET /api/v2/search/ips?term=domain&query=<domain>`, the addresses it was
  seen resolving to (`details["ips"]`), alongside the submission search;
- a hash no submission matches: `GET /api/v2/search/artifacts?term=<md5|sha1|sha256>&
  query=<hash>`, the artifacts (files seen during analyses) with that checksum
  (`details["artifacts"]`, their SHA-256).

No submission and no entity is "not known" (no finding); entities without a submission
make an UNKNOWN finding whose `relation` is `observed`. Any 404 is an error (the search
API answers an empty list for an unknown indicator: a 404 is a wrong `base_url`). A 429
waits and retries; the key travels in an `Authorization: Bearer` header, or as the
`api_key` query parameter with `auth = "query"` (then redacted from httpx's request log
lines).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote, urlsplit

from fido._errors import ConfigurationError
from fido._findings import Reputation, Verdict
from fido._observable import Observable, ObservableKind
from fido.adapters._http import HttpEnricher

if TYPE_CHECKING:
    from fido._findings import Subject

__all__ = ["ThreatGrid"]

_KINDS: Final = (
    ObservableKind.MD5,
    ObservableKind.SHA1,
    ObservableKind.SHA256,
    ObservableKind.IPV4,
    ObservableKind.IPV6,
    ObservableKind.DOMAIN,
    ObservableKind.URL,
)
_MAX_TAGS: Final = 10
_MAX_RELATED: Final = 20
_ENTITIES: Final = {
    ObservableKind.IPV4: ("domains", "ip"),
    ObservableKind.IPV6: ("domains", "ip"),
    ObservableKind.DOMAIN: ("ips", "domain"),
    ObservableKind.MD5: ("artifacts", "md5"),
    ObservableKind.SHA1: ("artifacts", "sha1"),
    ObservableKind.SHA256: ("artifacts", "sha256"),
}
"""The entity search for each kind: (what is searched for, the term the subject is)."""
_AUTH: Final = ("header", "query")
_QUERY_KEY: Final = re.compile(r"([?&]api_key=)[^&#\s\"']*", re.IGNORECASE)


class _RedactQueryKey(logging.Filter):
    """Redact `api_key=...` from the URLs httpx logs for each request (`auth = "query"`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message.lower():
            record.msg, record.args = _QUERY_KEY.sub(r"\1***", message), ()
        return True


_REDACT: Final = _RedactQueryKey()


class ThreatGrid(HttpEnricher):
    """Secure Malware Analytics API v2 (see the module docstring for the configuration).

    Args:
        auth: `header` (the default: `Authorization: Bearer <key>`) or `query` (the key
            as the `api_key` query parameter, as v2 documents it).
        malicious: Threat score (0-100) for a MALICIOUS verdict (default 75).
        suspicious: Threat score for a SUSPICIOUS verdict (default 50); below it, an
            indicator with finished analyses is BENIGN.
        associated: The strongest verdict given on the strength of samples that only
            contacted or contained the subject (`suspicious` by default; `malicious`,
            `benign` or `unknown`): IP addresses, domains, URLs, and hashes never
            submitted themselves.
        samples: Submissions read per look-up (1-100, default 25), highest score first.
        kinds: The observable kinds to look up (default: md5, sha1, sha256, ipv4, ipv6,
            domain, url).
        portal_url: The web portal the findings link to (default: the API's host).
        related: Ask the entity searches too (default True): the domains seen resolving
            to an IP address, the addresses a domain resolved to, the artifacts with a
            checksum no submission matches.
        **options: As for every HTTP enricher (`api_key`, `base_url`, `rate`, ...).

    Raises:
        ConfigurationError: No API key, or an option out of range.
    """

    service: ClassVar[str] = "threatgrid"
    default_base_url: ClassVar[str] = "https://panacea.threatgrid.com/api/v2/"
    default_rate: ClassVar[str | list[str] | None] = None
    default_reliability: ClassVar[str] = "B"

    def __init__(
        self,
        *,
        auth: str = "header",
        malicious: int = 75,
        suspicious: int = 50,
        associated: str = "suspicious",
        samples: int = 25,
        kinds: list[str] | tuple[str, ...] | None = None,
        portal_url: str | None = None,
        related: bool = True,
        **options: Any,
    ) -> None:
        if auth not in _AUTH:
            raise ConfigurationError(f"threatgrid: auth must be header or query, not {auth!r}")
        if not 1 <= suspicious <= malicious <= 100:
            raise ConfigurationError(
                "threatgrid: expected 1 <= suspicious <= malicious <= 100, "
                f"not suspicious={suspicious!r}, malicious={malicious!r}"
            )
        if not 1 <= samples <= 100:
            raise ConfigurationError(f"threatgrid: samples must be 1 to 100, not {samples!r}")
        try:
            self.associated = Verdict(associated)
        except ValueError:
            choices = ", ".join(v.value for v in Verdict)
            raise ConfigurationError(
                f"threatgrid: associated must be one of {choices}, not {associated!r}"
            ) from None
        names = [k.value for k in _KINDS] if kinds is None else list(kinds)
        unknown = [k for k in names if k not in {k.value for k in _KINDS}]
        if unknown:
            raise ConfigurationError(f"threatgrid: kinds: cannot look up {unknown[0]!r}")
        self.kinds = frozenset(ObservableKind(k) for k in names)
        if not isinstance(related, bool):
            raise ConfigurationError(f"threatgrid: related is true or false, not {related!r}")
        self.related = related
        self.auth = auth
        self.malicious = malicious
        self.suspicious = suspicious
        self.samples = samples
        super().__init__(**options)
        if portal_url is None:
            parts = urlsplit(self.http.base_url)
            portal_url = f"{parts.scheme}://{parts.netloc}"
        self.portal_url = portal_url.rstrip("/")
        if auth == "query":
            httpx_log = logging.getLogger("httpx")
            if _REDACT not in httpx_log.filters:
                httpx_log.addFilter(_REDACT)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The `Authorization: Bearer` header (none with `auth = "query"`)."""
        headers = {"accept": "application/json"}
        if self.auth == "header":
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    def accepts(self, subject: Subject) -> bool:
        """Hashes, public IP addresses, domains and URLs (those in `kinds`)."""
        if not isinstance(subject, Observable) or subject.kind not in self.kinds:
            return False
        # internal indicators are not the service's business (and must not leak to it)
        return not self.is_internal(subject)

    def _params(self, **params: Any) -> dict[str, Any]:
        if self.auth == "query":
            params["api_key"] = self._key
        return params

    async def fetch(self, subject: Subject) -> Reputation | None:
        """The verdict of the matching submissions (and the related entities), if any."""
        assert isinstance(subject, Observable)  # noqa: S101 - accepts() said so
        search = self._params(
            q=subject.value,
            state="succ",
            sort_by="threat_score",
            sort_order="desc",
            limit=self.samples,
        )
        entities: list[str] | None = None
        if self.related and not subject.kind.is_hash and subject.kind in _ENTITIES:
            try:  # both searches at once; the first error ends both
                async with asyncio.TaskGroup() as group:
                    submissions = group.create_task(
                        self.http.get_json("search/submissions", params=search)
                    )
                    related = group.create_task(self.entities(subject))
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None
            body, entities = submissions.result(), related.result()
        else:
            body = await self.http.get_json("search/submissions", params=search)
        found = self.reputation(subject, body, entities)
        if found is None and self.related and subject.kind.is_hash:
            entities = await self.entities(subject)  # a file never submitted, seen inside?
            found = self.reputation(subject, body, entities)
        return found

    async def entities(self, subject: Observable) -> list[str]:
        """The entity search for the subject: the `result` of each item, at most 20.

        Takes a token of its own first (one more request of the look-up).

        Raises:
            ValueError: The answer is not an entity search answer.
        """
        what, term = _ENTITIES[subject.kind]
        await self.take_token()
        params = self._params(term=term, query=subject.value)
        body = await self.http.get_json(f"search/{what}", params=params)
        data = body.get("data") if isinstance(body, dict) else None
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ValueError(f"not an entity search answer (search/{what}: no data.items list)")
        results = [i.get("result") for i in items if isinstance(i, dict)]
        if len(results) != len(items) or not all(isinstance(r, str) and r for r in results):
            raise ValueError(f"not an entity search answer (search/{what}: items without result)")
        return list(dict.fromkeys(str(r) for r in results))[:_MAX_RELATED]

    def reputation(
        self, subject: Observable, body: Any, entities: list[str] | None = None
    ) -> Reputation | None:
        """A `Reputation` from a submission search answer and the related entities.

        None if it lists no submission and no entity was found.

        Raises:
            ValueError: The body is not a submission search answer.
        """
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise ValueError("not a submission search answer (no data.items list)")
        items = data["items"]
        found = [
            e["item"] for e in items if isinstance(e, dict) and isinstance(e.get("item"), dict)
        ]
        related = {_ENTITIES[subject.kind][0]: entities} if entities else {}
        if not found:
            if items:
                raise ValueError("not a submission search answer (items without an item)")
            if not related:
                return None
            return Reputation(  # seen by the sandbox, never in a finished submission
                source=self.name,
                subject=subject,
                verdict=Verdict.UNKNOWN,
                reliability=self.reliability,
                details={"relation": "observed", "submissions": 0, **related},
            )
        own = [s for s in found if _is_sample(subject, s)]
        top = max(own or found, key=lambda s: -1 if (n := _score(s)) is None else n)
        score = _score(top)
        verdict = self._verdict(score)
        if not own:  # the subject was only seen in other samples: a weaker sign
            verdict = min(verdict, self.associated, key=lambda v: v.score)
        behaviors = _behaviors(top)
        sample = top.get("sample") if isinstance(top.get("sample"), str) else None
        details: dict[str, Any] = {
            "relation": "sample" if own else "associated",
            "submissions": _count(data.get("total"), len(found)),
        }
        for key in ("sample", "filename", "sha256", "submitted_at"):
            if isinstance(top.get(key), str):
                details[key] = top[key]
        details.update(related)
        return Reputation(
            source=self.name,
            subject=subject,
            verdict=verdict,
            reliability=self.reliability,
            score=score,
            label=behaviors[0].get("title") if behaviors else None,
            tags=[b["name"] for b in behaviors][:_MAX_TAGS],
            link=f"{self.portal_url}/mask/samples/{quote(sample, safe='')}" if sample else None,
            details=details,
        )

    def _verdict(self, score: int | None) -> Verdict:
        if score is None:
            return Verdict.UNKNOWN
        if score >= self.malicious:
            return Verdict.MALICIOUS
        if score >= self.suspicious:
            return Verdict.SUSPICIOUS
        return Verdict.BENIGN


def _is_sample(subject: Observable, item: dict[str, Any]) -> bool:
    """Whether the submission is the file the subject (a hash) names."""
    if not subject.kind.is_hash:
        return False
    value = item.get(subject.kind.value)
    return isinstance(value, str) and value.lower() == subject.value.lower()


def _score(item: dict[str, Any]) -> int | None:
    analysis = item.get("analysis")
    score = analysis.get("threat_score") if isinstance(analysis, dict) else None
    if isinstance(score, bool) or not isinstance(score, int | float) or score < 0:
        return None
    return min(100, int(score))


def _behaviors(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample's behaviours that have a name, the most threatening first."""
    analysis = item.get("analysis")
    found = analysis.get("behaviors") if isinstance(analysis, dict) else None
    named = [
        b
        for b in found or ()
        if isinstance(b, dict) and isinstance(b.get("name"), str) and b["name"]
    ]

    def threat(behavior: dict[str, Any]) -> float:
        value = behavior.get("threat")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return 0.0
        return float(value)

    return [
        {**b, "title": b["title"] if isinstance(b.get("title"), str) else None}
        for b in sorted(named, key=threat, reverse=True)
    ]


def _count(value: Any, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )
