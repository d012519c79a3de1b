r"""`active_directory`: users and computers in Active Directory, over LDAP (ldap3).

```toml
[[enrichers]]
type = "active_directory"
name = "corp-ad"
url = "ldaps://dc1.corp.example"         # or ldap:// with start_tls = true; or a list
base_dn = "DC=corp,DC=example"
bind_dn = "CN=fido,OU=Service,DC=corp,DC=example"
password_env = "FIDO_AD_PASSWORD"
ca_file = "/etc/ssl/corp-ca.pem"
```

Users are found by sAMAccountName, userPrincipalName or mail, computers by
sAMAccountName, cn or dNSHostName; see docs/adapters/active_directory.md. ldap3 blocks:
look-ups run in `pool_size` threads of our own, each with a bound connection it reuses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import attrs
from cachetools import TTLCache
from ldap3 import ANONYMOUS, BASE, NONE, SIMPLE, SUBTREE, SYNC, Connection, Server
from ldap3.core.exceptions import LDAPException

from fido._entities import Host, User
from fido._errors import EnrichmentError
from fido._logging import get_logger
from fido.adapters._guards import LookupCache, seconds
from fido.adapters._http import subject_text
from fido.adapters.enrichers import _ad_support as ad
from fido.adapters.enrichers._ad_support import DEFAULT_PRIVILEGED_GROUPS, UAC_FLAGS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fido._findings import Finding, HostContext, Subject, UserContext

__all__ = ["DEFAULT_PRIVILEGED_GROUPS", "UAC_FLAGS", "ActiveDirectory"]

log = get_logger(__name__)

_AD_CAPABILITIES: Final = frozenset({"1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1851"})
_PAGED: Final = "1.2.840.113556.1.4.319"
_MODES: Final = ("auto", "in_chain", "walk", "direct")
_URL: Final = re.compile(r"^(ldaps?)://[^/\s?#]+/?$", re.IGNORECASE)
_IDLE_LIMIT: Final = 240.0  # seconds: AD drops idle connections after 900 s by default
_MAX_MATCHES: Final = 20
_FIGURES: Final = (
    "lookups", "cache_hits", "not_found", "errors", "searches", "pages", "connections",
)  # fmt: skip


class _Failed(Exception):
    """A look-up failed; the message is safe to show (no credential)."""


# -- the enricher ---------------------------------------------------------------------------


class ActiveDirectory:
    r"""Users and computers in Active Directory (see the module docstring).

    Args:
        url: `ldaps://host[:port]` or `ldap://host[:port]`, or a list of them (tried in
            order; the first that answers is used until it fails).
        base_dn: Where to search (`DC=corp,DC=example`).
        bind_dn: Who to bind as (a DN, or `fido@corp.example`); none for anonymous.
        password: The bind password (`password_env` in the configuration).
        name: The enricher's name (the findings' source).
        start_tls: Upgrade `ldap://` connections with StartTLS.
        ca_file: PEM file of the CAs to trust (default: the system's).
        verify: Check the server's certificate and name (keep it on).
        allow_plaintext: Allow `ldap://` without StartTLS (the password in clear).
        timeout: Seconds the pipeline allows per look-up.
        connect_timeout: Seconds to open a connection.
        request_timeout: Seconds to wait for an answer.
        page_size: Entries per page of a paged search (1-10000).
        pool_size: Threads and connections at most (1-64).
        cache_ttl: Seconds answers (and "not found") are kept; 0 keeps none.
        cache_size: Answers kept at most.
        privileged_groups: Group names (or DNs) whose members are `privileged`.
        nested_groups: `auto` (in-chain on AD, else a walk over memberOf), `in_chain`,
            `walk` or `direct` (memberOf only).
        group_depth: Levels of nesting the walk follows (1-50).
        max_groups: Groups read per user at most (1-10000).
        domains: Domain names (NetBIOS or DNS) of `DOMAIN\user` accounts this directory
            holds; default the base DN's (`corp.example`, `corp`); `["*"]` for any.
        user_filter: What a user entry is.
        computer_filter: What a computer entry is.

    Raises:
        ConfigurationError: An option is missing or invalid.
    """

    def __init__(
        self,
        *,
        url: str | Sequence[str],
        base_dn: str,
        bind_dn: str | None = None,
        password: str | None = None,
        name: str = "active_directory",
        start_tls: bool = False,
        ca_file: str | None = None,
        verify: bool = True,
        allow_plaintext: bool = False,
        timeout: Any = 30.0,
        connect_timeout: Any = 5.0,
        request_timeout: Any = 10.0,
        page_size: int = 500,
        pool_size: int = 4,
        cache_ttl: Any = 900.0,
        cache_size: int = 10_000,
        privileged_groups: Sequence[str] | None = None,
        nested_groups: str = "auto",
        group_depth: int = 8,
        max_groups: int = 500,
        domains: Sequence[str] | None = None,
        user_filter: str = "(&(objectClass=user)(!(objectClass=computer)))",
        computer_filter: str = "(objectClass=computer)",
    ) -> None:
        self.name = ad.text("name", name)
        urls = ad.texts("url", url)
        if not all(_URL.match(u) for u in urls):
            raise ad.config(f"url must be ldaps://host[:port] or ldap://host[:port], not {url!r}")
        ldaps = [u.lower().startswith("ldaps:") for u in urls]
        if start_tls and any(ldaps):
            raise ad.config("start_tls is for ldap:// URLs (ldaps:// is TLS already)")
        if not start_tls and not all(ldaps) and not allow_plaintext:
            raise ad.config("ldap:// sends the password in clear: use ldaps:// or start_tls = true")
        if not ad.rdns(ad.text("base_dn", base_dn)):
            raise ad.config(f"base_dn must be a DN such as DC=corp,DC=example, not {base_dn!r}")
        if bool(bind_dn) != bool(password):
            raise ad.config("bind_dn and password (password_env) go together (neither: anonymous)")
        if nested_groups not in _MODES:
            raise ad.config(f"nested_groups is one of {', '.join(_MODES)}, not {nested_groups!r}")
        if ca_file is not None and not Path(ca_file).is_file():
            raise ad.config(f"ca_file {ca_file!r} is not a file")
        self.urls = urls
        self.base_dn = base_dn
        self.bind_dn = bind_dn or None
        self._password = password or None
        self.start_tls = start_tls
        self.page_size = ad.integer("page_size", page_size, 1, 10_000)
        self.pool_size = ad.integer("pool_size", pool_size, 1, 64)
        self.group_depth = ad.integer("group_depth", group_depth, 1, 50)
        self.max_groups = ad.integer("max_groups", max_groups, 1, 10_000)
        self.nested_groups = nested_groups
        self.user_filter = ad.ldap_filter("user_filter", user_filter)
        self.computer_filter = ad.ldap_filter("computer_filter", computer_filter)
        groups = DEFAULT_PRIVILEGED_GROUPS if privileged_groups is None else privileged_groups
        self.privileged_groups = frozenset(
            g.strip().casefold() for g in ad.texts("privileged_groups", groups)
        )
        self.domains = frozenset(
            d.casefold()
            for d in (ad.texts("domains", domains) if domains else ad.domains_of(base_dn))
        )
        self.timeout = seconds(timeout, "active_directory: timeout")
        """The pipeline's limit per look-up (the config's `timeout` sets it too)."""
        self.connect_timeout = seconds(connect_timeout, "active_directory: connect_timeout")
        self.request_timeout = seconds(request_timeout, "active_directory: request_timeout")
        ttl = seconds(cache_ttl, "active_directory: cache_ttl")
        size = ad.integer("cache_size", cache_size, 1, 10_000_000)
        # answers (and "not found") for `ttl` seconds; concurrent look-ups of one subject
        # share one search (single flight), even with no cache (ttl 0)
        self._answers = LookupCache(size, {"missing": ttl, "context": ttl})
        self._parents: TTLCache[str, tuple[str, ...]] = TTLCache(size, max(ttl, 1.0))
        tls = (
            ad.VerifiedTls(ad.tls_context(ca_file, verify=verify))
            if start_tls or any(ldaps)
            else None
        )
        self._servers = [
            Server(u, get_info=NONE, tls=tls, connect_timeout=self.connect_timeout) for u in urls
        ]
        self._server_index = 0
        self._mode = None if nested_groups == "auto" else nested_groups
        self._lock = threading.Lock()
        self._idle: list[tuple[Any, float]] = []
        self._closed = False
        self._counts = dict.fromkeys(_FIGURES, 0)
        self._executor = concurrent.futures.ThreadPoolExecutor(self.pool_size, "fido-ad")

    def __repr__(self) -> str:
        urls = self.urls[0] if len(self.urls) == 1 else list(self.urls)
        return (
            f"ActiveDirectory(name={self.name!r}, url={urls!r}, base_dn={self.base_dn!r}, "
            f"bind_dn={self.bind_dn!r})"
        )

    # -- the protocol ---------------------------------------------------------------------

    def accepts(self, subject: Subject) -> bool:
        r"""Users (a `DOMAIN\user` only of this directory's `domains`) and named hosts."""
        if isinstance(subject, User):
            domain = subject.domain
            if subject.upn is not None and subject.upn.endswith(f"@{domain}"):
                domain = None  # the UPN's suffix: looked up by UPN, whatever the suffix
            return domain is None or "*" in self.domains or domain in self.domains
        if isinstance(subject, Host):
            return bool(subject.fqdn or (subject.name and not ad.is_ip(subject.name)))
        return False

    async def enrich(self, subject: Subject) -> Finding | None:
        """The user's or the computer's entry as a finding; None if the directory has none.

        Raises:
            EnrichmentError: The directory could not be reached, refused the bind or the
                search (`skipped=True` once the enricher is closed).
        """
        if not self.accepts(subject):
            return None
        self._count("lookups")
        key = (type(subject).__name__, repr(subject))
        entry, cached = await self._answers.get(key, lambda: self._fetch(subject))
        finding = cast("Finding | None", entry.finding)
        if cached:
            self._count("cache_hits")
            return None if finding is None else attrs.evolve(finding, from_cache=True)
        return finding

    async def _fetch(self, subject: Subject) -> Finding | None:
        """One search in a worker thread (for every concurrent look-up of the subject)."""
        failure: str | None = None
        finding: Finding | None = None
        skipped = self._closed
        if skipped:
            failure = "the enricher is closed"
        else:
            try:
                loop = asyncio.get_running_loop()
                finding = await loop.run_in_executor(self._executor, self._lookup, subject)
            except _Failed as exc:
                failure = str(exc)
            except Exception as exc:  # a bug or an odd answer: still the enricher's error
                failure = self._scrub(f"unexpected error: {type(exc).__name__}: {exc}")
        if failure is not None:
            self._count("errors")
            raise EnrichmentError(
                failure, adapter=self.name, subject=subject_text(subject), skipped=skipped
            )
        log.debug("%s: %s: %s", self.name, subject_text(subject), "found" if finding else "none")
        if finding is None:
            self._count("not_found")
        return finding

    async def acheck(self) -> str:
        """Connect and bind as the configured account, as `fido check` does.

        Returns:
            Which server answered and the nested-group method in use.

        Raises:
            EnrichmentError: No server could be reached, or the bind was refused.
        """
        if self._closed:
            raise EnrichmentError("the enricher is closed", adapter=self.name, subject="-")
        loop = asyncio.get_running_loop()
        try:
            connection, _ = await loop.run_in_executor(
                self._executor, lambda: self._take(fresh=True)
            )
        except _Failed as exc:
            raise EnrichmentError(str(exc), adapter=self.name, subject="-") from None
        self._give(connection)
        return (
            f"bound to {self.urls[self._server_index]} as {self.bind_dn or 'anonymous'}; "
            f"nested groups by {self._mode}"
        )

    def stats(self) -> dict[str, Any]:
        """Look-ups, cache hits, not found, errors, searches, pages, connections opened.

        `shared`: look-ups that waited for the search another concurrent look-up of the
        same subject had started, rather than searching again.
        """
        with self._lock:
            figures: dict[str, Any] = dict(self._counts)
            figures["idle_connections"] = len(self._idle)
        figures["shared"] = self._answers.shared
        figures["nested_groups"] = self._mode or "auto"
        return figures

    def close(self) -> None:
        """Wait for running look-ups, then unbind every connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        self._executor.shutdown(wait=True, cancel_futures=True)
        for connection, _ in idle:
            _unbind(connection)

    async def aclose(self) -> None:
        """`close`, from a worker thread."""
        await asyncio.to_thread(self.close)

    # -- connections (in the worker threads) ---------------------------------------------

    def _count(self, figure: str, by: int = 1) -> None:
        with self._lock:
            self._counts[figure] += by

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return text[:300]

    def _describe(self, error: Exception) -> str:
        return self._scrub(f"{type(error).__name__}: {ad.unwrap(str(error))}")

    def _take(self, *, fresh: bool) -> tuple[Any, bool]:
        stale = []
        with self._lock:
            if self._closed:
                raise _Failed("the enricher is closed")
            while self._idle and not fresh:
                connection, since = self._idle.pop()
                if time.monotonic() - since < _IDLE_LIMIT:
                    return connection, True
                stale.append(connection)
        for connection in stale:
            _unbind(connection)
        return self._open(), False

    def _give(self, connection: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append((connection, time.monotonic()))
                return
        _unbind(connection)

    def _open(self) -> Any:
        """A bound connection to the first server that answers (the last good one first)."""
        failures = []
        start = self._server_index
        for offset in range(len(self._servers)):
            index = (start + offset) % len(self._servers)
            connection = Connection(
                self._servers[index],
                user=self.bind_dn,
                password=self._password,
                authentication=SIMPLE if self.bind_dn else ANONYMOUS,
                client_strategy=SYNC,
                read_only=True,
                receive_timeout=math.ceil(self.request_timeout),  # ldap3 packs it as an int
                auto_referrals=False,
                raise_exceptions=False,
                check_names=False,
                return_empty_attributes=False,
            )
            failure, refused = None, False
            try:
                connection.open(read_server_info=False)
                if self.start_tls and not connection.start_tls(read_server_info=False):
                    result = connection.result or {}
                    failure = self._scrub(
                        f"cannot connect to {self.urls[index]}: StartTLS refused: "
                        f"{result.get('description')} {result.get('message') or ''}".strip()
                    )
                elif not connection.bind(read_server_info=False):
                    refused, result = True, connection.result or {}
                    failure = self._scrub(
                        f"bind as {self.bind_dn or 'anonymous'} refused: "
                        f"{result.get('description')} {result.get('message') or ''}".strip()
                    )
                elif self._mode is None:
                    self._mode = self._detect(connection)
            except Exception as exc:  # ldap3 lets socket and struct errors through too
                failure = f"cannot connect to {self.urls[index]}: {self._describe(exc)}"
            if failure is None:
                log.debug("%s: connected to %s", self.name, self.urls[index])
                self._server_index = index
                self._count("connections")
                return connection
            _unbind(connection)
            if refused:  # the server answered: another would refuse too
                raise _Failed(failure)
            failures.append(failure)
        raise _Failed("; ".join(failures))

    def _detect(self, connection: Any) -> str:
        """`in_chain` when the root DSE says Active Directory (or AD LDS), else `walk`."""
        try:
            entries = self._search(connection, "", "(objectClass=*)", ["supportedCapabilities"])
        except _Failed:  # a root DSE we may not read: not AD
            return "walk"
        capabilities = set(entries[0].all("supportedCapabilities")) if entries else set()
        return "in_chain" if capabilities & _AD_CAPABILITIES else "walk"

    def _lookup(self, subject: Subject) -> Finding | None:
        """Look up with a pooled connection; once more with a fresh one if it went stale."""
        fresh = False
        while True:
            connection, reused = self._take(fresh=fresh)
            failure = None
            try:
                finding: Finding | None = None
                if isinstance(subject, User):
                    finding = self._find_user(connection, subject)
                elif isinstance(subject, Host):
                    finding = self._find_host(connection, subject)
            except LDAPException as exc:
                failure = self._describe(exc)
            except _Failed:  # the server answered: the connection is fine
                self._give(connection)
                raise
            except BaseException:
                _unbind(connection)
                raise
            if failure is None:
                self._give(connection)
                return finding
            _unbind(connection)
            if not reused:
                raise _Failed(failure)
            fresh = True

    def _search(
        self,
        connection: Any,
        base: str,
        query: str,
        attributes: list[str],
        *,
        scope: str = BASE,
        limit: int = _MAX_MATCHES,
    ) -> list[ad.Entry]:
        """The entries found: paged below `base`; [] when a base entry does not exist."""
        entries: list[ad.Entry] = []
        cookie: bytes | None = None
        paged = scope != BASE
        self._count("searches")
        while True:
            options: dict[str, Any] = {"attributes": attributes}
            if paged:
                options.update(paged_size=self.page_size, paged_cookie=cookie)
            connection.search(base, query, scope, **options)
            result = connection.result or {}
            if result.get("result") == 32 and not paged:  # noSuchObject
                return []
            if result.get("result") not in (0, 4):  # success, sizeLimitExceeded
                raise _Failed(
                    self._scrub(
                        f"search below {base!r} failed: {result.get('description')} "
                        f"{result.get('message') or ''}".strip()
                    )
                )
            self._count("pages")
            entries += [
                ad.Entry.from_response(item)
                for item in connection.response or ()
                if item.get("type") == "searchResEntry"
            ]
            control = (result.get("controls") or {}).get(_PAGED) or {}
            cookie = (control.get("value") or {}).get("cookie") or None
            if not paged or not cookie or len(entries) >= limit:
                break
        if cookie:  # tell the server to drop the rest (the same search, a page size of 0)
            connection.search(
                base, query, scope, **{**options, "paged_size": 0, "paged_cookie": cookie}
            )
        return entries[:limit]

    # -- users and computers --------------------------------------------------------------

    def _find_user(self, connection: Any, user: User) -> UserContext | None:
        principal = user.upn or user.email
        by_name = (
            principal is None or "*" in self.domains or principal.rpartition("@")[2] in self.domains
        )
        try:
            query = ad.user_filter(user, self.user_filter, by_name=by_name)
        except UnicodeEncodeError:
            return None
        entries = self._search(connection, self.base_dn, query, ad.USER_ATTRIBUTES, scope=SUBTREE)
        if not entries:
            return None

        def rank(entry: ad.Entry) -> tuple[int, str]:
            score = 4 * entry.same("userPrincipalName", user.upn)
            score += 2 * (by_name and entry.same("sAMAccountName", user.name))
            score += entry.same("mail", user.email) or entry.same("mail", user.upn)
            return -score, entry.dn.casefold()

        entry = min(entries, key=rank)
        groups, truncated = self._groups(connection, entry)
        manager = self._entry(
            connection, entry.get("manager"), ["displayName", "cn", "mail", "title"]
        )
        extra = {
            "nested_groups": self._mode,
            "groups_truncated": truncated or None,
            "matches": len(entries) if len(entries) > 1 else None,
        }
        return ad.user_context(
            self.name,
            user,
            entry,
            groups=groups,
            manager=manager,
            privileged_groups=self.privileged_groups,
            extra=extra,
        )

    def _find_host(self, connection: Any, host: Host) -> HostContext | None:
        try:
            query = ad.computer_filter(host, self.computer_filter, self.domains)
        except UnicodeEncodeError:
            return None
        entries = [
            e
            for e in self._search(
                connection, self.base_dn, query, ad.COMPUTER_ATTRIBUTES, scope=SUBTREE
            )
            if not host.fqdn or e.get("dNSHostName") is None or e.same("dNSHostName", host.fqdn)
        ]  # another domain's machine of the same name is not this one
        if not entries:
            return None
        entry = min(entries, key=lambda e: (not e.same("dNSHostName", host.fqdn), e.dn.casefold()))
        owner = self._entry(connection, entry.get("managedBy"), ["displayName", "cn"])
        return ad.host_context(self.name, host, entry, owner)

    def _entry(self, connection: Any, dn: str | None, attributes: list[str]) -> ad.Entry | None:
        """The entry at `dn` (a manager, an owner); one with no attributes if unreadable."""
        if not dn:
            return None
        found = self._search(connection, dn, "(objectClass=*)", attributes)
        return found[0] if found else ad.Entry(dn)

    def _groups(self, connection: Any, entry: ad.Entry) -> tuple[list[str], bool]:
        """The DNs of the entry's groups, nested ones included, and whether they were cut."""
        direct = list(dict.fromkeys(entry.all("memberOf")))
        if self._mode == "in_chain":
            query = ad.in_chain_filter(entry.dn)
            limit = self.max_groups + 1  # one more, to know whether there are more
            found = self._search(
                connection, self.base_dn, query, ["1.1"], scope=SUBTREE, limit=limit
            )
            groups = list(dict.fromkeys([*direct, *(e.dn for e in found)]))
            return groups[: self.max_groups], len(groups) > self.max_groups
        if self._mode == "direct":
            return direct[: self.max_groups], len(direct) > self.max_groups
        seen: dict[str, str] = {}
        level = direct
        for _ in range(self.group_depth):
            fresh = [dn for dn in dict.fromkeys(level) if dn.casefold() not in seen]
            if len(seen) + len(fresh) > self.max_groups:
                fresh = fresh[: self.max_groups - len(seen)]
                seen.update((dn.casefold(), dn) for dn in fresh)
                return list(seen.values()), True
            seen.update((dn.casefold(), dn) for dn in fresh)
            level = [parent for dn in fresh for parent in self._memberships(connection, dn)]
        cut = any(dn.casefold() not in seen for dn in level)
        return list(seen.values()), cut

    def _memberships(self, connection: Any, dn: str) -> tuple[str, ...]:
        """The memberOf of a group (cached)."""
        key = dn.casefold()
        with self._lock:
            cached = self._parents.get(key)
        if cached is not None:
            return cached
        found = self._search(connection, dn, "(objectClass=*)", ["memberOf"])
        parents = found[0].all("memberOf") if found else ()
        with self._lock:
            self._parents[key] = parents
        return parents


def _unbind(connection: Any) -> None:
    """Close a connection, whatever state it is in."""
    with contextlib.suppress(Exception):
        connection.unbind()
    socket = getattr(connection, "socket", None)
    if socket is not None:
        with contextlib.suppress(Exception):
            socket.close()
