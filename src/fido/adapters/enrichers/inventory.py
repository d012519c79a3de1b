"""`inventory`: host context from a CMDB export (CSV or JSON) or a JSON REST inventory.

```toml
[[enrichers]]
type = "inventory"
name = "cmdb"
path = "exports/cmdb-hosts.csv"      # relative to this file
format = "auto"                      # auto | csv | json
check_interval = "1m"
fields = { hostname = "Name", ip = "IP Address", owner = "Assigned to" }

[[enrichers]]
type = "inventory"
name = "assets-api"
url = "https://assets.corp.example/api/v1/hosts?limit=500"
api_key_env = "ASSETS_TOKEN"         # sent as "Authorization: Bearer <token>"
records_field = "results"
next_field = "next"                  # the next page's URL, if the API pages
check_interval = "15m"               # fetched again this often
fields = { hostname = "name", ip = "primary_ip.address", owner = "tenant.name" }
```

The export is read whole at construction and indexed by short name, fully qualified
name and IP address; a look-up is a few dictionary reads. See the "Inventory" page of the
documentation for the columns, the value spellings read and the matching rules.

The records come from `_load_records()` as raw rows (dicts of column or JSON key to
value); the field mapping is applied afterwards by `_index()`. A source of another kind
(a REST inventory answering JSON) adds its branch to `_load_records()` and `_changed()`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import attrs

from fido._entities import Host
from fido._errors import ConfigurationError, InvalidEvent, InvalidRecord
from fido._findings import HostContext
from fido._logging import get_logger
from fido.adapters._guards import seconds
from fido.adapters.enrichers import _inventory_rows as rows
from fido.adapters.enrichers._files import Reloader, Signature, signature
from fido.adapters.enrichers._inventory_rest import RestSource

if TYPE_CHECKING:
    from collections.abc import Callable

    from fido._findings import Subject

__all__ = ["FIELDS", "Inventory"]

log = get_logger("fido.adapters.inventory")

FIELDS: Final = (
    "hostname",
    "fqdn",
    "ip",
    "owner",
    "os",
    "criticality",
    "is_server",
    "managed",
    "av_installed",
    "av_running",
    "missing_critical_patches",
    "missing_high_patches",
    "groups",
    "tags",
    "location",
    "description",
    "last_seen",
)
"""The fields a row maps to; by default each is read from the column of the same name."""


class _Match(NamedTuple):
    fqdn: str | None
    name: str | None
    context: HostContext


class _Hosts:
    """The hosts of one load, by fully qualified name, short name and IP address."""

    def __init__(self, loaded_at: datetime) -> None:
        self.by_fqdn: dict[str, _Match] = {}
        self.by_name: dict[str, _Match] = {}
        self.by_ip: dict[str, _Match] = {}
        self.loaded_at = loaded_at
        self.rows = 0
        self.hosts = 0
        self.skipped = 0
        self.bad_values = 0
        self.truncated = False

    def find(self, host: Host) -> tuple[_Match, str] | None:
        """The row for the host: by fqdn, else short name, else IP; and which it was.

        A short-name match is refused when both sides have different fully qualified
        names, and an IP match when both sides have different short names: those are
        two machines.
        """
        if host.fqdn is not None:
            found = self.by_fqdn.get(host.fqdn)
            if found is not None:
                return found, "fqdn"
        if host.name is not None:
            found = self.by_name.get(host.name)
            if found is not None and not (host.fqdn and found.fqdn and found.fqdn != host.fqdn):
                return found, "name"
        if host.ip is not None:
            found = self.by_ip.get(host.ip)
            if found is not None and not (host.name and found.name and found.name != host.name):
                return found, "ip"
        return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _fail(message: str) -> ConfigurationError:
    return ConfigurationError(f"inventory: {message}")


class Inventory:
    """Host context from a CMDB export (see the module docstring).

    Args:
        name: The enricher's name (the findings' source).
        path: The export file. Relative paths are relative to the configuration file
            when the configuration loader builds the enricher, else to the current
            directory.
        url: Instead of `path`: a JSON REST inventory, fetched whole (every page) at
            construction and again every `check_interval` (default 15 minutes).
        api_key: For `url`: the credential (from `api_key_env` or `api_key_file`).
        auth_header: For `url`: the header that carries it (default `Authorization`).
        auth_scheme: For `url`: its scheme (default `Bearer`; `""` for the bare key).
        next_field: For `url`: the dotted key of the next page's URL in a page.
        max_pages: For `url`: pages read at most (default 100).
        verify: For `url`: verify TLS certificates (default true).
        ca_file: For `url`: a CA bundle to verify against.
        proxy: For `url`: a proxy URL.
        request_timeout: For `url`: seconds per request (default 30).
        format: `auto` (by the file's extension, else its first character), `csv` or
            `json`.
        fields: fido field -> column name (CSV) or key, dotted for nested JSON objects
            (`"os.name"`). Fields left out are read from the column of their own name.
        records_field: In a JSON object, the (dotted) key of the list of hosts; by
            default the first of hosts, items, data, results, result, records that holds
            a list.
        delimiter: The CSV delimiter; by default the most frequent of `,` `;` tab `|`
            in the header line.
        encoding: The file's encoding (default UTF-8); bytes that do not decode become
            U+FFFD.
        criticality_values: Further spellings of criticality (`{"gold" = "critical"}`),
            tried before the built-in ones.
        check_interval: Seconds (or a duration such as `"5m"`) between checks of the
            file for changes, made on look-ups (default 30); for `url`, between fetches
            (default 15 minutes).
        reload: Whether to reload the file when it changes (default true).

    Raises:
        ConfigurationError: An option is wrong, the file is missing or unreadable (the
            inventory cannot be fetched), or it has rows but not one usable host.
    """

    def __init__(
        self,
        *,
        name: str = "inventory",
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer",
        next_field: str | None = None,
        max_pages: int = 100,
        verify: bool = True,
        ca_file: str | None = None,
        proxy: str | None = None,
        request_timeout: float | str = 30.0,
        format: str = "auto",  # noqa: A002 - the option's name in the configuration
        fields: Mapping[str, str] | None = None,
        records_field: str | None = None,
        delimiter: str | None = None,
        encoding: str = "utf-8",
        criticality_values: Mapping[str, str] | None = None,
        check_interval: float | str | None = None,
        reload: bool = True,
    ) -> None:
        self.name = name
        self._clock: Callable[[], datetime] = _utcnow
        if (path is None) == (url is None):
            raise _fail("give either path (an export file) or url (a REST inventory)")
        self._rest: RestSource | None = None
        if url is not None:
            if not _is_text(url):
                raise _fail(f"url is the inventory's URL, not {url!r}")
            self._rest = RestSource(
                url=url,
                api_key=api_key,
                auth_header=auth_header,
                auth_scheme=auth_scheme or None,
                records_field=records_field,
                next_field=next_field,
                max_pages=max_pages,
                verify=verify,
                ca_file=ca_file,
                proxy=proxy,
                request_timeout=seconds(request_timeout, "inventory: request_timeout"),
            )
            self._path = Path(url)  # shown in logs only
            self._format = "json"
        else:
            if not _is_text(path):
                raise _fail(f"path is the path of the export file, not {path!r}")
            self._path = Path(path).expanduser().absolute()  # type: ignore[arg-type]
            if not self._path.is_file():
                raise _fail(f"path: no inventory file at {self._path}")
        if format not in ("auto", "csv", "json"):
            raise _fail(f"format is one of auto, csv, json, not {format!r}")
        if self._rest is None:
            self._format = _format(self._path) if format == "auto" else format
        self._fields = _mapping(fields)
        if records_field is not None and not _is_text(records_field):
            raise _fail(f"records_field is a key such as 'hosts', not {records_field!r}")
        self._records_field = records_field
        if delimiter is not None and not _is_char(delimiter):
            raise _fail(f"delimiter is one character, not {delimiter!r}")
        self._delimiter = delimiter
        try:
            "".encode(encoding)
        except (LookupError, TypeError):
            raise _fail(f"encoding: unknown encoding {encoding!r}") from None
        self._encoding = "utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding
        self._levels = rows.levels(criticality_values, _fail)
        if not isinstance(reload, bool):
            raise _fail(f"reload is true or false, not {reload!r}")
        if check_interval is None:
            check_interval = 30 if self._rest is None else 900
        interval = seconds(check_interval, "inventory: check_interval")
        self._reloading = threading.Lock()
        self._reloads = 0
        self._reload_failures = 0
        self._lookups = 0
        self._hits = 0
        self._signature: Signature | None = None
        try:
            self._hosts = self._load()
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read {self._where()}: {_reason(exc)}") from None
        self._loaded("loaded")
        self._reloader = Reloader(
            what=name,
            interval=interval,
            enabled=reload,
            changed=self._changed,
            reload=self._reload,
            log=log,
        )

    def __repr__(self) -> str:
        return f"Inventory(name={self.name!r}, {self._where()!r})"

    def _where(self) -> str:
        return str(self._path) if self._rest is None else self._rest.url

    # -- the source ---------------------------------------------------------------------

    def _changed(self) -> bool:
        """Whether the source changed since it was last loaded (a REST one: always)."""
        return self._rest is not None or signature(self._path) != self._signature

    def _load_records(self) -> rows.Records:
        """The raw rows of the export (the file is read here, and its signature kept).

        Raises:
            OSError: The file cannot be read.
            ValueError: The file is not CSV or JSON as configured.
        """
        if self._rest is not None:
            return self._rest.fetch()
        self._signature = signature(self._path)
        text = self._path.read_bytes().decode(self._encoding, "replace")
        if self._format == "json":
            return rows.json_records(text, self._records_field)
        return rows.csv_records(text, self._delimiter)

    # -- indexing -----------------------------------------------------------------------

    def _load(self, before: _Hosts | None = None) -> _Hosts:
        """Load and index the source; `before` is what a reload would replace.

        Raises:
            OSError: The source cannot be read.
            ValueError: It is not in its format, not one of its rows is a host, or it
                has no host at all where `before` had some (a file being written).
        """
        records = self._load_records()
        hosts = self._index(records, self._clock())
        if hosts.hosts == 0 and hosts.skipped:
            raise ValueError(
                f"not one host could be read ({hosts.skipped} rows skipped): "
                "check the format and the fields mapping"
            )
        if hosts.hosts == 0 and before is not None and before.hosts:
            raise ValueError("it lists no host at all")
        return hosts

    def _index(self, records: rows.Records, now: datetime) -> _Hosts:
        """Apply the field mapping to the rows; later rows win for a name or an address."""
        hosts = _Hosts(now)
        hosts.skipped = records.unreadable
        hosts.truncated = records.truncated
        hosts.rows = len(records.rows) + records.unreadable
        for row in records.rows:
            made = self._host(row, hosts)
            if made is None:
                hosts.skipped += 1
                continue
            match, ips = made
            hosts.hosts += 1
            if match.fqdn is not None:
                hosts.by_fqdn[match.fqdn] = match
            if match.name is not None:
                hosts.by_name[match.name] = match
            for ip in ips:
                hosts.by_ip[ip] = match
        return hosts

    def _host(self, row: Mapping[str, Any], hosts: _Hosts) -> tuple[_Match, list[str]] | None:
        used: set[str] = set()
        raw: dict[str, Any] = {}
        for field in FIELDS:
            top, value = rows.get(row, self._fields.get(field, field))
            if top is not None:
                used.add(top)
            raw[field] = value
        read = rows.Reader(self._levels)
        name, fqdn = read.text(raw["hostname"]), read.text(raw["fqdn"])
        ips = read.addresses(raw["ip"])
        try:
            host = Host(name, fqdn=fqdn) if name or fqdn else None
        except InvalidEvent:
            return None
        if host is None and not ips:
            return None
        details = {
            key: value
            for key, value in row.items()
            if key not in used and value not in (None, "", [], {})
        }
        details["record"] = {
            "hostname": None if host is None else host.name,
            "fqdn": None if host is None else host.fqdn,
            "ip": ips,
        }
        try:
            context = HostContext(
                source=self.name,
                owner=read.text(raw["owner"]),
                os=read.text(raw["os"]),
                criticality=read.criticality(raw["criticality"]),
                is_server=read.flag(raw["is_server"]),
                managed=read.flag(raw["managed"]),
                av_installed=read.flag(raw["av_installed"]),
                av_running=read.flag(raw["av_running"]),
                missing_critical_patches=read.count(raw["missing_critical_patches"]),
                missing_high_patches=read.count(raw["missing_high_patches"]),
                groups=read.names(raw["groups"]),
                tags=read.names(raw["tags"]),
                location=read.text(raw["location"]),
                description=read.text(raw["description"]),
                last_seen=read.time(raw["last_seen"]),
                details=details,
                fetched_at=hosts.loaded_at,
            )
        except InvalidRecord:
            return None
        hosts.bad_values += read.bad
        match = _Match(
            fqdn=None if host is None else host.fqdn,
            name=None if host is None else host.name,
            context=context,
        )
        return match, ips

    # -- reloading ----------------------------------------------------------------------

    def _loaded(self, verb: str) -> None:
        hosts = self._hosts
        log.info(
            "%s: %s %d hosts from %s (%d rows skipped, %d values not understood)",
            self.name,
            verb,
            hosts.hosts,
            self._where(),
            hosts.skipped,
            hosts.bad_values,
        )

    def _reload(self) -> None:
        """Load the source again; if that fails, keep the hosts loaded before."""
        with self._reloading:
            if self._changed():  # another reload may have read it meanwhile
                self._reload_now()

    def _reload_now(self) -> None:
        try:
            hosts = self._load(self._hosts)
        except (OSError, ValueError) as exc:
            self._reload_failures += 1  # the signature is the new one: wait for a change
            log.warning(
                "%s: reloading %s failed (%s); keeping its %d hosts",
                self.name,
                self._where(),
                _reason(exc),
                self._hosts.hosts,
            )
            return
        self._hosts = hosts
        self._reloads += 1
        self._loaded("reloaded")

    def reload(self) -> None:
        """Reload the source now, in the calling thread, if it changed.

        For operators (a signal handler) and tests; look-ups do it on their own every
        `check_interval` seconds. A source that fails to load keeps the hosts it had.
        """
        self._reload()

    # -- look-ups -----------------------------------------------------------------------

    def accepts(self, subject: Subject) -> bool:
        """Hosts."""
        return isinstance(subject, Host)

    async def enrich(self, subject: Subject) -> HostContext | None:
        """What the inventory says of the host, or None when it does not list it."""
        if not isinstance(subject, Host):
            return None
        self._reloader.poke()
        self._lookups += 1
        found = self._hosts.find(subject)
        if found is None:
            return None
        self._hits += 1
        match, matched_by = found
        context = match.context
        return attrs.evolve(
            context, subject=subject, details={**context.details, "matched_by": matched_by}
        )

    def stats(self) -> dict[str, Any]:
        """Rows read, hosts indexed, rows skipped, values not understood, reloads, hits.

        `truncated`: a paged REST inventory had more pages than `max_pages`; the hosts
        of the pages left unread are missing.
        """
        hosts = self._hosts
        return {
            "rows": hosts.rows,
            "truncated": hosts.truncated,
            "hosts": hosts.hosts,
            "skipped": hosts.skipped,
            "bad_values": hosts.bad_values,
            "reloads": self._reloads,
            "reload_failures": self._reload_failures,
            "lookups": self._lookups,
            "hits": self._hits,
            "loaded_at": hosts.loaded_at.isoformat(),
        }

    async def aclose(self) -> None:
        """Stop reloading (a reload in progress is left to finish in its thread)."""
        self._reloader.close()


def _is_text(value: object) -> bool:
    """Whether an option read from the configuration is a non-blank string."""
    return isinstance(value, str) and bool(value.strip())


def _is_char(value: object) -> bool:
    return isinstance(value, str) and len(value) == 1


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return str(exc)[:200]


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    try:
        with path.open("rb") as file:
            head = file.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return "csv"  # reading it again will say why it cannot be read
    return "json" if head[:1] in (b"{", b"[") else "csv"


def _mapping(fields: Mapping[str, str] | None) -> dict[str, str]:
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise _fail("fields is a table of fido field = column name")
    for field, column in fields.items():
        given: object = column
        if field not in FIELDS:
            raise _fail(f"fields.{field} is not a field (the fields: {', '.join(FIELDS)})")
        if not isinstance(given, str) or not given.strip():
            raise _fail(f"fields.{field} is a column name or a dotted key, not {column!r}")
    return {field: column.strip() for field, column in fields.items()}
