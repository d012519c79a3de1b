"""`static`: fixed answers from the configuration (known indicators, hosts and users).

For demos, tests and small installations: the answers are written in the configuration
file. For real feeds and inventories, use the `feeds` and `inventory` enrichers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fido import (
    ConfigurationError,
    Finding,
    Host,
    HostContext,
    Observable,
    Reliability,
    Reputation,
    Subject,
    User,
    UserContext,
    Verdict,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["StaticIntel"]


class StaticIntel:
    """Answers written in the configuration.

    ```toml
    [[enrichers]]
    type = "static"
    name = "known-bad"
    reliability = "B"
    verdicts = { "44d88612fea8a8f36de82e1278abb02f" = "malicious" }
    hosts = { "ws-042" = { criticality = "high", av_running = false } }
    users = { "bdoe" = { title = "Director of Finance", department = "Finance" } }
    ```

    Args:
        name: The enricher's name (the findings' source).
        verdicts: Indicator (any form `Observable.parse` reads) -> verdict word.
        hosts: Host key (short name or IP) -> `HostContext` fields.
        users: Account name -> `UserContext` fields.
        reliability: The reliability of the verdicts (A-F).

    Raises:
        ConfigurationError: An indicator, a verdict or a field is not valid.
    """

    def __init__(
        self,
        *,
        name: str = "static",
        verdicts: Mapping[str, str] | None = None,
        hosts: Mapping[str, Mapping[str, Any]] | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        reliability: str = "C",
    ) -> None:
        self.name = name
        try:
            level = Reliability.parse(reliability)
            self._verdicts = {
                Observable.parse(text): Verdict(str(word).lower())
                for text, word in (verdicts or {}).items()
            }
            self._hosts = {
                key.casefold(): HostContext(source=name, **dict(fields))
                for key, fields in (hosts or {}).items()
            }
            self._users = {
                User(key).name: UserContext(source=name, **dict(fields))
                for key, fields in (users or {}).items()
            }
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"static answers: {exc}") from None
        self._reliability = level

    def __repr__(self) -> str:
        return (
            f"StaticIntel(name={self.name!r}, verdicts={len(self._verdicts)}, "
            f"hosts={len(self._hosts)}, users={len(self._users)})"
        )

    def _host(self, host: Host) -> HostContext | None:
        for key in (host.name, host.fqdn, host.ip):
            if key is not None and key in self._hosts:
                return self._hosts[key]
        return None

    def accepts(self, subject: Subject) -> bool:
        """Whether an answer is written for the subject."""
        if isinstance(subject, Observable):
            return subject in self._verdicts
        if isinstance(subject, Host):
            return self._host(subject) is not None
        return subject.name in self._users

    def enrich(self, subject: Subject) -> Finding | None:
        """The written answer."""
        if isinstance(subject, Observable):
            verdict = self._verdicts.get(subject)
            if verdict is None:
                return None
            return Reputation(source=self.name, verdict=verdict, reliability=self._reliability)
        if isinstance(subject, Host):
            return self._host(subject)
        return self._users.get(subject.name)
