"""`feeds`: offline indicator feeds from local files, reloaded when a file changes.

```toml
[[enrichers]]
type = "feeds"
name = "abuse-ch"
feeds_dir = "feeds"                   # relative paths below start here
check_interval = "30s"

[[enrichers.feeds]]
path = "full_sha256.csv"
format = "malwarebazaar"              # auto | malwarebazaar | urlhaus | feodo | lines | stix
reliability = "B"

[[enrichers.feeds]]
path = "ipblocklist.txt"
format = "feodo"
verdict = "malicious"
```

Every feed file is read whole at construction and indexed in memory (hashes, URLs,
domains, addresses and CIDR ranges, e-mail addresses, file names); a look-up is a few
dictionary reads. See the "Feeds" page of the documentation for the formats.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fido._errors import ConfigurationError
from fido._findings import Reliability, Reputation, Verdict
from fido._logging import get_logger
from fido._observable import Observable, ObservableKind
from fido.adapters._guards import seconds
from fido.adapters.enrichers import _feed_formats as formats
from fido.adapters.enrichers._files import Reloader, Signature, read_text, signature

if TYPE_CHECKING:
    from collections.abc import Callable

    from fido._findings import Subject

__all__ = ["Feeds"]

log = get_logger("fido.adapters.feeds")

_FEED_KEYS: Final = ("path", "format", "verdict", "reliability", "tags", "label", "subdomains")
_VERDICTS: Final = ("benign", "suspicious", "malicious")
_RANKS: Final = {r: i for i, r in enumerate(Reliability)}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Feed:
    """One feed file: what its configuration says, and its latest index."""

    __slots__ = ("fmt", "index", "key", "options", "path", "reliability", "signature", "verdict")

    def __init__(
        self,
        *,
        key: str,
        path: Path,
        fmt: str,
        verdict: Verdict,
        reliability: Reliability,
        options: formats.FeedOptions,
    ) -> None:
        self.key = key
        self.path = path
        self.fmt = fmt
        self.verdict = verdict
        self.reliability = reliability
        self.options = options
        self.signature: Signature | None = None
        self.index = formats.Index(fmt, datetime.min.replace(tzinfo=UTC))

    def load(self, now: datetime) -> tuple[formats.Index, Signature | None]:
        """Read the file; returns the new index and the signature it was read at.

        An empty file replacing one that had indicators is taken for one being written
        (or truncated by mistake), and fails.

        Raises:
            OSError: The file cannot be read.
            FeedError: It is not in its format, or it is empty.
        """
        seen = signature(self.path)
        text = read_text(self.path)
        if not text.strip() and self.index.indicators:
            raise formats.FeedError("the file is empty")
        return formats.parse(text, self.fmt, self.options, now), seen


def _fail(message: str) -> ConfigurationError:
    return ConfigurationError(f"feeds: {message}")


def _choice(value: Any, key: str, choices: Iterable[str]) -> str:
    allowed = tuple(choices)
    if not isinstance(value, str) or value.lower() not in allowed:
        raise _fail(f"{key} is one of {', '.join(allowed)}, not {value!r}")
    return value.lower()


def _tags(value: Any, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise _fail(f"{key} is a list of strings, not {value!r}")
    listed = list(items)
    if not all(isinstance(t, str) for t in listed):
        raise _fail(f"{key} is a list of strings, not {value!r}")
    return tuple(t.strip() for t in listed if t.strip())


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"{key} is true or false, not {value!r}")
    return value


def _label(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"{key} is a string, not {value!r}")
    return value.strip() or None


def _folder(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"feeds_dir is the path of a folder, not {value!r}")
    return Path(value).expanduser().absolute()


def _file(value: Any, key: str, base: Path | None) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{key} is the path of a feed file, not {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = ((base or Path.cwd()) / path).absolute()
    if not path.is_file():
        raise _fail(f"{key}: no feed file at {path}")
    return path


class Feeds:
    """Offline indicator feeds read from local files (see the module docstring).

    Options given at the top level (`format`, `verdict`, `reliability`, `tags`, `label`,
    `subdomains`) are the defaults of every feed; a `[[feeds]]` table overrides them for
    its file. `path` at the top level is one more feed with those defaults.

    Args:
        name: The enricher's name (the findings' source).
        path: A feed file. Relative paths are relative to the configuration file when
            the configuration loader builds the enricher, else to the current directory.
        feeds: Feed tables: `path` (required), and any of `format`, `verdict`,
            `reliability`, `tags`, `label`, `subdomains`.
        feeds_dir: Where the relative paths of `feeds` start (the loader makes it
            relative to the configuration file); default: the current directory.
        format: `auto` (detected from the file), `malwarebazaar`, `urlhaus`, `feodo`,
            `lines` or `stix`.
        verdict: The verdict of a hit: `malicious` (default), `suspicious` or `benign`.
        reliability: The Admiralty letter of the feed (A-F, default C).
        tags: Tags added to every hit.
        label: The label of a hit whose feed entry has none (a family name, say).
        subdomains: Whether a domain entry also matches its subdomains (default: only
            a `*.domain` line does).
        check_interval: Seconds (or a duration such as `"5m"`) between checks of the
            files for changes, made on look-ups (default 30).
        reload: Whether to reload a file when it changes (default true).

    Raises:
        ConfigurationError: An option is wrong, a file is missing, or a file has lines
            but not one indicator in its format.
    """

    def __init__(
        self,
        *,
        name: str = "feeds",
        path: str | None = None,
        feeds: Iterable[Mapping[str, Any]] | None = None,
        feeds_dir: str | None = None,
        format: str = "auto",  # noqa: A002 - the option's name in the configuration
        verdict: str = "malicious",
        reliability: str = "C",
        tags: Iterable[str] = (),
        label: str | None = None,
        subdomains: bool = False,
        check_interval: float | str = 30,
        reload: bool = True,
    ) -> None:
        self.name = name
        self._clock: Callable[[], datetime] = _utcnow
        defaults = _checked(
            {
                "format": format,
                "verdict": verdict,
                "reliability": reliability,
                "tags": tags,
                "label": label,
                "subdomains": subdomains,
            },
            "",
        )
        base = None if feeds_dir is None else _folder(feeds_dir)
        tables: list[tuple[str, Mapping[str, Any], Path | None]] = []
        if path is not None:
            tables.append(("path", {"path": path}, None))
        if feeds is not None:
            if isinstance(feeds, Mapping | str) or not isinstance(feeds, Iterable):
                raise _fail("feeds is a list of tables ([[enrichers.feeds]])")
            for position, table in enumerate(feeds):
                if not isinstance(table, Mapping):
                    raise _fail(f"feeds[{position}] is a table with a path")
                tables.append((f"feeds[{position}]", table, base))
        if not tables:
            raise _fail("give a feed file: path = ..., or [[enrichers.feeds]] tables")
        self._feeds = tuple(self._feed(key, table, defaults, where) for key, table, where in tables)
        interval = seconds(check_interval, "feeds: check_interval")
        self._reloading = threading.Lock()
        self._reloads = 0
        self._reload_failures = 0
        self._lookups = 0
        self._hits = 0
        for feed in self._feeds:
            try:
                index, seen = feed.load(self._clock())
            except OSError as exc:
                raise _fail(f"cannot read {feed.path} ({feed.key}): {exc.strerror}") from None
            except formats.FeedError as exc:
                raise _fail(f"cannot read {feed.path} ({feed.key}): {exc}") from None
            feed.index, feed.signature = index, seen
            self._loaded(feed, "loaded")
        self._kinds = self._accepted()
        self._reloader = Reloader(
            what=name,
            interval=interval,
            enabled=_flag(reload, "reload"),
            changed=self._changed,
            reload=self._reload,
            log=log,
        )

    @staticmethod
    def _feed(
        key: str, table: Mapping[str, Any], defaults: Mapping[str, Any], base: Path | None
    ) -> _Feed:
        """A feed from its table; `defaults` are the checked top-level options."""
        values = dict(defaults)
        for option, value in table.items():
            if option not in _FEED_KEYS:
                raise _fail(
                    f"unknown option {key}.{option} (a feed takes: {', '.join(_FEED_KEYS)})"
                )
            if option != "path":
                values.update(_checked({option: value}, f"{key}."))
        where = "path" if key == "path" else f"{key}.path"
        return _Feed(
            key=key,
            path=_file(table.get("path"), where, base),
            fmt=values["format"],
            verdict=values["verdict"],
            reliability=values["reliability"],
            options=formats.FeedOptions(
                label=values["label"], tags=values["tags"], subdomains=values["subdomains"]
            ),
        )

    def __repr__(self) -> str:
        return f"Feeds(name={self.name!r}, feeds={[str(f.path) for f in self._feeds]})"

    # -- loading ------------------------------------------------------------------------

    def _loaded(self, feed: _Feed, verb: str) -> None:
        index = feed.index
        log.info(
            "%s: %s %d indicators from %s as %s (%d skipped, %d expired, %d revoked)",
            self.name,
            verb,
            index.indicators,
            feed.path,
            index.format,
            index.skipped,
            index.expired,
            index.revoked,
        )

    def _accepted(self) -> frozenset[ObservableKind]:
        return frozenset().union(*(feed.index.kinds for feed in self._feeds))

    def _changed(self) -> bool:
        return any(signature(feed.path) != feed.signature for feed in self._feeds)

    def _reload(self) -> None:
        """Reload the files that changed; a file that fails keeps its previous indicators."""
        with self._reloading:
            self._reload_changed()

    def _reload_changed(self) -> None:
        for feed in self._feeds:
            seen = signature(feed.path)
            if seen == feed.signature:
                continue
            if seen is None:
                self._reload_failures += 1
                log.warning(
                    "%s: the feed file %s is gone; keeping its %d indicators",
                    self.name,
                    feed.path,
                    feed.index.indicators,
                )
                feed.signature = None
                continue
            try:
                index, read_at = feed.load(self._clock())
            except (OSError, formats.FeedError) as exc:
                self._reload_failures += 1
                feed.signature = seen  # tried: wait for the next change
                log.warning(
                    "%s: reloading %s failed (%s); keeping its %d indicators",
                    self.name,
                    feed.path,
                    exc.strerror if isinstance(exc, OSError) else exc,
                    feed.index.indicators,
                )
                continue
            feed.index, feed.signature = index, read_at
            self._reloads += 1
            self._loaded(feed, "reloaded")
        self._kinds = self._accepted()

    def reload(self) -> None:
        """Check every file now and reload those that changed, in the calling thread.

        For operators (a signal handler) and tests; look-ups do it on their own every
        `check_interval` seconds. A file that fails to load keeps its indicators.
        """
        self._reload()

    # -- look-ups -----------------------------------------------------------------------

    def accepts(self, subject: Subject) -> bool:
        """Observables of a kind some feed holds (hashes, addresses, domains, ...)."""
        return isinstance(subject, Observable) and subject.kind in self._kinds

    async def enrich(self, subject: Subject) -> Reputation | None:
        """The strongest hit among the feeds (most severe verdict, then most reliable)."""
        if not isinstance(subject, Observable):
            return None
        self._reloader.poke()
        self._lookups += 1
        now = self._clock()
        hits = []
        for feed in self._feeds:
            found = _find(feed.index, subject, now)
            if found is not None:
                hits.append((feed, feed.index, *found))
        if not hits:
            return None
        self._hits += 1
        hits.sort(key=lambda hit: (-hit[0].verdict.score, _RANKS[hit[0].reliability]))
        feed, index, entry, matched = hits[0]
        details: dict[str, Any] = {"feed": str(feed.path), "format": index.format}
        if matched is not None:
            details["matched"] = matched
        extra = entry.extra
        for key, value in zip(extra[::2], extra[1::2], strict=True):
            details[str(key)] = value
        if entry.valid_until is not None:
            details["valid_until"] = entry.valid_until.isoformat()
        if len(hits) > 1:
            details["also_in"] = [str(hit[0].path) for hit in hits[1:]]
        return Reputation(
            source=self.name,
            subject=subject,
            verdict=feed.verdict,
            reliability=feed.reliability,
            score=entry.score,
            label=entry.label,
            tags=[tag for hit in hits for tag in hit[2].tags],
            link=entry.link,
            details=details,
            fetched_at=index.loaded_at,
        )

    def stats(self) -> dict[str, Any]:
        """Indicators loaded and left out, reloads, look-ups and hits; and per file."""
        indexes = [feed.index for feed in self._feeds]
        return {
            "feeds": len(self._feeds),
            "indicators": sum(i.indicators for i in indexes),
            "skipped": sum(i.skipped for i in indexes),
            "expired": sum(i.expired for i in indexes),
            "revoked": sum(i.revoked for i in indexes),
            "reloads": self._reloads,
            "reload_failures": self._reload_failures,
            "lookups": self._lookups,
            "hits": self._hits,
            "files": [
                {
                    "path": str(feed.path),
                    "format": feed.index.format,
                    "indicators": feed.index.indicators,
                    "skipped": feed.index.skipped,
                    "unsupported": feed.index.unsupported,
                    "expired": feed.index.expired,
                    "revoked": feed.index.revoked,
                    "loaded_at": feed.index.loaded_at.isoformat(),
                }
                for feed in self._feeds
            ],
        }

    async def aclose(self) -> None:
        """Stop reloading (a reload in progress is left to finish in its thread)."""
        self._reloader.close()


def _checked(options: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Feed options checked and converted; errors name `prefix` + the option."""
    checks: dict[str, Callable[[Any, str], Any]] = {
        "format": lambda v, k: _choice(v, k, formats.FORMATS),
        "verdict": lambda v, k: Verdict(_choice(v, k, _VERDICTS)),
        "reliability": _reliability,
        "tags": _tags,
        "label": _label,
        "subdomains": _flag,
    }
    return {option: checks[option](value, prefix + option) for option, value in options.items()}


def _reliability(value: Any, key: str) -> Reliability:
    if not isinstance(value, str):
        raise _fail(f"{key} is a letter from A to F, not {value!r}")
    try:
        return Reliability.parse(value)
    except ValueError:
        raise _fail(f"{key} is a letter from A to F, not {value!r}") from None


def _usable(entry: formats.Entry, now: datetime) -> bool:
    return not (
        (entry.valid_from is not None and now < entry.valid_from)
        or (entry.valid_until is not None and now >= entry.valid_until)
    )


def _find(
    index: formats.Index, subject: Observable, now: datetime
) -> tuple[formats.Entry, str | None] | None:
    """The feed's entry for the subject, and the range or domain it matched through."""
    kind = subject.kind
    table = index.exact.get(kind)
    if table is not None:
        entry = table.get(subject.value)
        if entry is not None and _usable(entry, now):
            return entry, None
    if kind.is_ip and index.networks:
        address = ipaddress.ip_address(subject.value)
        by_prefix = index.networks.get(address.version)
        if by_prefix:
            number, bits = int(address), address.max_prefixlen
            for prefix in index.prefixes[address.version]:
                shift = bits - prefix
                network = number >> shift << shift
                entry = by_prefix[prefix].get(network)
                if entry is not None and _usable(entry, now):
                    first = (
                        ipaddress.IPv4Address(network)
                        if address.version == 4
                        else ipaddress.IPv6Address(network)
                    )
                    return entry, f"{first}/{prefix}"
    if kind is ObservableKind.DOMAIN and index.suffixes:
        labels = subject.value.split(".")
        for start in range(len(labels) - 1):
            suffix = ".".join(labels[start:])
            entry = index.suffixes.get(suffix)
            if entry is not None and _usable(entry, now):
                return entry, f"*.{suffix}"
    return None
