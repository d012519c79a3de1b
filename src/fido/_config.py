"""Configuration from TOML: `load_config(path)` and `Pipeline.from_config(path)`.

Adapters are named by entry points in the groups `fido.detectors`, `fido.enrichers` and
`fido.responders` (fido's own register the same way), so a third-party package plugs in
with no change to fido. Secrets are never written in the file: an option `api_key` is
given as `api_key_env = "VT_API_KEY"` (an environment variable) or `api_key_file =
"/run/secrets/vt"` (a file); a missing one is a `ConfigurationError` naming it.
"""

from __future__ import annotations

import inspect
import os
import re
import tomllib
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Mapping,
    MutableMapping,
    MutableSequence,
    Sequence,
)
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path, PurePath
from types import UnionType
from typing import Any, Final, Literal, Union, get_args, get_origin

import attrs

from fido._allowlist import Allowlist
from fido._errors import ConfigurationError
from fido._runtime import Limits
from fido.scoring._policy import Policy
from fido.scoring._toml import locate, parse_duration

__all__ = ["AdapterSpec", "Config", "RunOptions", "load_config"]

Kind = Literal["detector", "enricher", "responder"]
GROUPS: Final = {
    "detector": "fido.detectors",
    "enricher": "fido.enrichers",
    "responder": "fido.responders",
}
_RESERVED: Final = {
    "detector": {"type", "name", "interval"},
    "enricher": {"type", "name", "timeout"},
    "responder": {"type", "name", "actions"},
}
_SECRET: Final = re.compile(
    r"(password|passwd|secret|token|api_?key|credential|private_key)$|"
    r"(^|_)key$",
    re.I,
)
_PATHLIKE: Final = re.compile(r"(^path$|_path$|_file$|_dir$|^directory$)")


@attrs.frozen(kw_only=True)
class AdapterSpec:
    """One adapter as the configuration describes it (not built yet).

    Attributes:
        kind: detector, enricher or responder.
        type: The entry-point name (`virustotal`).
        name: The adapter's name (default: its type).
        options: The options for its factory; secrets as `<option>_env`/`<option>_file`.
        key: Where it stands in the file (`enrichers[1]`).
        actions: For responders, the actions it carries out.
        interval: For detectors, seconds between polls (None: the adapter's default).
        timeout: For enrichers, seconds per look-up (None: the pipeline's limit).
    """

    kind: Kind
    type: str
    name: str
    options: Mapping[str, Any] = attrs.field(hash=False)
    key: str
    actions: tuple[str, ...] = ()
    interval: float | None = None
    timeout: float | None = None
    named: bool = False


@attrs.frozen(kw_only=True)
class RunOptions:
    """How `fido run` behaves (the `[run]` table).

    Attributes:
        exit_when_idle: Stop once every detector has nothing new and the work is done
            (for batch jobs and demos); by default the run goes on until a signal.
        idle_interval: Seconds between polls of a detector that has nothing new (its
            own `interval` wins).
        opentelemetry: Export `pipeline.stats()` as OpenTelemetry metrics through the
            global meter provider (needs the `otel` extra; off by default).
    """

    exit_when_idle: bool = False
    idle_interval: float = 5.0
    opentelemetry: bool = False


@attrs.frozen(kw_only=True)
class Config:
    """A loaded, validated configuration. `build()` makes the pipeline.

    Attributes:
        path: The file it came from (relative paths in it are relative to its folder).
        store: `("memory", None)` or `("sqlite", path)`.
        policy: The scoring policy.
        allowlist: The allowlist, if one is configured.
        detectors: The detectors to build.
        enrichers: The enrichers to build.
        responders: The responders to build.
        limits: The pipeline's limits.
        run: How `fido run` behaves.
        log_level: The level for fido's loggers (`info` by default).
    """

    path: Path | None
    store: tuple[str, Path | None]
    policy: Policy
    allowlist: Allowlist | None
    detectors: tuple[AdapterSpec, ...]
    enrichers: tuple[AdapterSpec, ...]
    responders: tuple[AdapterSpec, ...]
    limits: Limits
    run: RunOptions
    log_level: str = "info"

    def open_store(self, *, create: bool = True) -> Any:
        """A new store as configured (the caller closes it).

        Args:
            create: Create the SQLite file if there is none. False (for commands that
                only read the store) makes a missing file an error rather than an
                empty new store beside a mistyped path.

        Raises:
            ConfigurationError: `create` is False and there is no store at the path.
        """
        kind, path = self.store
        if kind == "memory":
            from fido._memory import MemoryStore

            return MemoryStore()
        from fido._sqlite import SQLiteStore

        assert path is not None  # noqa: S101 - validated at load
        if not create and not path.is_file():
            raise ConfigurationError(
                f"no store at {path} (fido run creates it)",
                file=None if self.path is None else str(self.path),
                key="store.path",
            )
        return SQLiteStore(path)

    def build(self, **overrides: Any) -> Any:
        """Build every adapter and the store, and return the `Pipeline`.

        Args:
            **overrides: `Pipeline` arguments that replace the configured ones; an
                adapter list given here is not built from the configuration (so
                `build(detectors=[], enrichers=[])` needs only the responders' secrets).

        Raises:
            ConfigurationError: A secret is missing, or an adapter refuses its options.
        """
        from fido._pipeline import Pipeline

        fields: dict[str, Any] = dict(overrides)
        # what the caller gives is not built (its options and secrets are not needed)
        if "responders" not in fields:
            responders: dict[str, list[Any]] = {}
            for spec in self.responders:
                built = build_adapter(spec, self)
                for action in spec.actions:
                    responders.setdefault(action, []).append(built)
            fields["responders"] = responders
        if "detectors" not in fields:
            fields["detectors"] = [build_adapter(spec, self) for spec in self.detectors]
        if "enrichers" not in fields:
            fields["enrichers"] = [build_adapter(spec, self) for spec in self.enrichers]
        fields.setdefault("policy", self.policy)
        fields.setdefault("allowlist", self.allowlist)
        fields.setdefault("limits", self.limits)
        if "store" not in fields:
            fields["store"] = self.open_store()
        return Pipeline(**fields)


# -- loading ------------------------------------------------------------------------------


class _Reader:
    """Checked access to the TOML data; every error names the file, the key and the line."""

    def __init__(self, text: str, path: Path | None) -> None:
        self.text = text
        self.path = path

    def fail(self, key: str, message: str) -> ConfigurationError:
        return ConfigurationError(
            message,
            file=None if self.path is None else str(self.path),
            key=key or None,
            line=locate(self.text, key) if key else None,
        )

    def relative(self, value: str) -> Path:
        path = Path(value).expanduser()
        if not path.is_absolute() and self.path is not None:
            path = self.path.parent / path
        return path

    def seconds(self, key: str, value: Any) -> float:
        if isinstance(value, bool):
            raise self.fail(key, f"expected seconds or a duration such as '30s', not {value!r}")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value).total_seconds()
            except ValueError:
                raise self.fail(
                    key, f"expected seconds or a duration such as '30s', not {value!r}"
                ) from None
        else:
            raise self.fail(key, f"expected seconds or a duration, not {type(value).__name__}")
        if seconds <= 0:
            raise self.fail(key, f"expected a positive duration, not {value!r}")
        return seconds

    def table(self, data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            raise self.fail(_join(key, name), f"expected a table, not {type(value).__name__}")
        return value


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def load_config(path: str | Path, *, adapters: bool = True) -> Config:
    """Read and check a configuration file; adapters are resolved but not built.

    Checks: the file is TOML; every key is known; the policy, the allowlist and the store
    are valid; each responder's actions are actions of the policy; every adapter type is
    installed, every option is one its factory takes, of the type it expects, every
    option it requires is given, and every secret's environment variable or file exists.

    Args:
        path: The configuration file.
        adapters: Resolve the adapters (their types, options and secrets). False checks
            only the file's structure and the store, policy and allowlist: what a
            command that only reads the store needs, without the adapters' secrets
            (`build()` still resolves each adapter, and fails as it would have here).

    Raises:
        ConfigurationError: naming the file, the key, the line, and what was expected.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the configuration: {exc.strerror}", file=str(file)
        ) from None
    return _load(text, file, adapters=adapters)


def _load(text: str, path: Path | None, *, adapters: bool = True) -> Config:
    reader = _Reader(text, path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        raise ConfigurationError(
            f"not valid TOML: {exc}",
            file=None if path is None else str(path),
            line=int(found.group(1)) if found else None,
        ) from None
    known = {
        "store",
        "policy",
        "allowlist",
        "detectors",
        "enrichers",
        "responders",
        "limits",
        "run",
        "logging",
    }
    for name in data:
        if name not in known:
            raise reader.fail(
                name, f"unknown key {name!r} (expected one of: {', '.join(sorted(known))})"
            )
    specs = {
        kind: _adapters(reader, data, f"{kind}s", kind)
        for kind in ("detector", "enricher", "responder")
    }
    for kind, items in specs.items():
        seen: set[str] = set()
        for spec in items:
            if spec.name in seen:
                raise reader.fail(
                    f"{spec.key}.name", f"two {kind}s are called {spec.name!r}; give each a name"
                )
            seen.add(spec.name)
    logging_table = reader.table(data, "", "logging")
    for name in logging_table:
        if name != "level":
            raise reader.fail(f"logging.{name}", f"unknown key {name!r} (expected level)")
    level = logging_table.get("level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise reader.fail("logging.level", f"expected debug, info, warning or error, not {level!r}")
    config = Config(
        path=path,
        store=_store(reader, data),
        policy=_policy(reader, data),
        allowlist=_allowlist(reader, data),
        detectors=specs["detector"],
        enrichers=specs["enricher"],
        responders=specs["responder"],
        limits=_limits(reader, data),
        run=_run(reader, data),
        log_level=str(level),
    )
    _check_actions(reader, config)
    if adapters:
        for spec in (*config.detectors, *config.enrichers, *config.responders):
            check_adapter(spec, config, reader)
    return config


def _check_actions(reader: _Reader, config: Config) -> None:
    """Each responder's actions must be actions the policy can decide (else never used)."""
    decision = config.policy.decision
    known = {a for level in decision.levels for a in level.actions} | set(decision.actions)
    for spec in config.responders:
        for index, action in enumerate(spec.actions):
            if action not in known:
                raise reader.fail(
                    f"{spec.key}.actions",
                    f"actions[{index}]: the policy has no action {action!r} "
                    f"(its actions: {', '.join(sorted(known)) or 'none'})",
                )


def _store(reader: _Reader, data: Mapping[str, Any]) -> tuple[str, Path | None]:
    table = reader.table(data, "", "store")
    for name in table:
        if name not in ("type", "path"):
            raise reader.fail(f"store.{name}", f"unknown key {name!r} (expected type, path)")
    kind = table.get("type", "sqlite")
    if kind == "memory":
        return ("memory", None)
    if kind != "sqlite":
        raise reader.fail("store.type", f"expected 'sqlite' or 'memory', not {kind!r}")
    location = table.get("path", "fido.sqlite3")
    if not isinstance(location, str) or not location:
        raise reader.fail("store.path", "expected the path of the SQLite file")
    return ("sqlite", reader.relative(location))


def _policy(reader: _Reader, data: Mapping[str, Any]) -> Policy:
    value = data.get("policy")
    if value is None:
        return Policy.default()
    if isinstance(value, str):
        location = reader.relative(value)
        if not location.is_file():
            raise reader.fail("policy", f"no policy file at {location}")
        return Policy.from_toml(location)
    if isinstance(value, Mapping):
        try:
            return Policy.from_dict(value)
        except ConfigurationError as exc:
            key = _join("policy", exc.key or "")
            raise reader.fail(key, exc.message) from None
    raise reader.fail("policy", "expected the path of a policy file, or a [policy] table")


def _allowlist(reader: _Reader, data: Mapping[str, Any]) -> Allowlist | None:
    value = data.get("allowlist")
    if value is None:
        return None
    files = [value] if isinstance(value, str) else value
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise reader.fail("allowlist", "expected a file name or a list of file names")
    combined = Allowlist()
    for name in files:
        location = reader.relative(name)
        if not location.is_file():
            raise reader.fail("allowlist", f"no allowlist file at {location}")
        combined = combined + Allowlist.load(location)
    return combined


def _limits(reader: _Reader, data: Mapping[str, Any]) -> Limits:
    table = reader.table(data, "", "limits")
    fields = {f.name: f for f in attrs.fields(Limits)}
    values: dict[str, Any] = {}
    for name, value in table.items():
        key = f"limits.{name}"
        field = fields.get(name)
        if field is None:
            raise reader.fail(
                key, f"unknown key {name!r} (expected one of: {', '.join(sorted(fields))})"
            )
        if field.type in ("timedelta", timedelta):
            values[name] = timedelta(seconds=reader.seconds(key, value))
        elif field.type in ("float", float):
            values[name] = reader.seconds(key, value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise reader.fail(key, f"expected a positive integer, not {value!r}")
            values[name] = value
    return Limits(**values)


def _run(reader: _Reader, data: Mapping[str, Any]) -> RunOptions:
    table = reader.table(data, "", "run")
    values: dict[str, Any] = {}
    for name, value in table.items():
        key = f"run.{name}"
        if name in ("exit_when_idle", "opentelemetry"):
            if not isinstance(value, bool):
                raise reader.fail(key, f"expected true or false, not {value!r}")
            values[name] = value
        elif name == "idle_interval":
            values[name] = reader.seconds(key, value)
        else:
            raise reader.fail(
                key,
                f"unknown key {name!r} (expected exit_when_idle, idle_interval, opentelemetry)",
            )
    return RunOptions(**values)


def _adapters(
    reader: _Reader, data: Mapping[str, Any], section: str, kind: Kind
) -> tuple[AdapterSpec, ...]:
    items = data.get(section, [])
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise reader.fail(section, f"expected [[{section}]] tables")
    specs = []
    for index, item in enumerate(items):
        key = f"{section}[{index}]"
        kind_name = item.get("type")
        if not isinstance(kind_name, str) or not kind_name:
            raise reader.fail(
                f"{key}.type", f"each of [[{section}]] names its type (an installed {kind})"
            )
        name = item.get("name", kind_name)
        if not isinstance(name, str) or not name.strip():
            raise reader.fail(f"{key}.name", "expected a non-empty string")
        actions: tuple[str, ...] = ()
        if kind == "responder":
            raw = item.get("actions")
            if (
                not isinstance(raw, list)
                or not raw
                or not all(isinstance(a, str) and a for a in raw)
            ):
                raise reader.fail(
                    f"{key}.actions",
                    'a responder lists the actions it carries out, such as actions = ["notify"]',
                )
            actions = tuple(raw)
        interval = (
            reader.seconds(f"{key}.interval", item["interval"]) if "interval" in item else None
        )
        timeout = reader.seconds(f"{key}.timeout", item["timeout"]) if "timeout" in item else None
        options = {k: v for k, v in item.items() if k not in _RESERVED[kind]}
        specs.append(
            AdapterSpec(
                kind=kind,
                type=kind_name,
                name=name.strip(),
                options=options,
                key=key,
                actions=actions,
                interval=interval,
                timeout=timeout,
                named="name" in item,
            )
        )
    return tuple(specs)


# -- adapters -----------------------------------------------------------------------------


def factory(kind: Kind, name: str) -> Callable[..., Any]:
    """The installed factory (a class, usually) registered as `name` for `kind`.

    Raises:
        ConfigurationError: None is installed under that name, or several are.
    """
    found = list(entry_points(group=GROUPS[kind], name=name))
    if not found:
        available = sorted({e.name for e in entry_points(group=GROUPS[kind])})
        raise ConfigurationError(
            f"no {kind} called {name!r} is installed (installed: {', '.join(available) or 'none'})"
        )
    if len({e.value for e in found}) > 1:
        sources = ", ".join(sorted(e.value for e in found))
        raise ConfigurationError(f"several {kind}s are installed as {name!r}: {sources}")
    try:
        loaded = found[0].load()
    except Exception as exc:
        raise ConfigurationError(
            f"the {kind} {name!r} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(loaded):
        raise ConfigurationError(f"the {kind} {name!r} is not a class or a function")
    return loaded  # type: ignore[no-any-return]


@attrs.frozen
class _Signature:
    """What an adapter factory takes.

    Attributes:
        names: The keyword parameters it takes.
        open_ended: Whether it takes others too (`**options` that go nowhere known).
        hints: The expected type of each parameter whose annotation could be read.
        required: The parameters without a default (of the factory itself).
    """

    names: frozenset[str]
    open_ended: bool
    hints: Mapping[str, Any]
    required: tuple[str, ...]


def _parameters(target: Callable[..., Any]) -> _Signature:
    """The keyword parameters `target` takes, their types, and whether it takes others.

    A class whose `__init__` passes `**options` on to its base's is followed up its MRO,
    so that the base's parameters count as named (`ca_file` is an option, not the
    secret file of an option `ca`).
    """
    callables: list[Callable[..., Any]] = [target]
    if isinstance(target, type):
        callables = [vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)]
    names: set[str] = set()
    hints: dict[str, Any] = {}
    required: list[str] = []
    open_ended = True
    for depth, candidate in enumerate(callables):
        try:
            signature = inspect.signature(candidate)
        except (TypeError, ValueError):
            return _Signature(frozenset(names), True, hints, tuple(required))
        for p in signature.parameters.values():
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or p.name == "self":
                continue
            if p.name not in names:
                hint = _hint(candidate, p.annotation)
                if hint is not _UNKNOWN:
                    hints[p.name] = hint
            names.add(p.name)
            if depth == 0 and p.default is p.empty:
                required.append(p.name)
        open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        if not open_ended:
            break
    return _Signature(frozenset(names), open_ended, hints, tuple(required))


_UNKNOWN: Final = object()
_NAMESPACE: Final = {
    "Any": Any,
    "Path": Path,
    "Mapping": Mapping,
    "Sequence": Sequence,
    "Iterable": Iterable,
    "Collection": Collection,
    "MutableMapping": MutableMapping,
    "timedelta": timedelta,
}


def _hint(function: Callable[..., Any], annotation: Any) -> Any:
    """The type an annotation names (`_UNKNOWN` where it cannot be read)."""
    if annotation is inspect.Parameter.empty:
        return _UNKNOWN
    if not isinstance(annotation, str):
        return annotation
    scope = {**_NAMESPACE, **getattr(function, "__globals__", {})}
    try:
        return eval(annotation, scope)  # noqa: S307 - the adapter's own annotation
    except Exception:  # a name imported only for type checkers, say: check nothing
        return _UNKNOWN


_PATHS: Final = (Path, PurePath, os.PathLike)
_LISTS: Final = (list, tuple, set, frozenset, Sequence, Iterable, Collection, MutableSequence)
_TABLES: Final = (dict, Mapping, MutableMapping)


def _accepts(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits the type (unknown types accept anything)."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return False
    origin = get_origin(hint)
    if origin is Union or origin is UnionType:
        return any(_accepts(value, arg) for arg in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str or hint in _PATHS or origin in _PATHS:
        return isinstance(value, str)
    if hint in _LISTS or origin in _LISTS:
        if not isinstance(value, list):
            return False
        items = [a for a in get_args(hint) if a is not Ellipsis]
        return len(items) != 1 or all(_accepts(item, items[0]) for item in value)
    if hint in _TABLES or origin in _TABLES:
        if not isinstance(value, Mapping):
            return False
        args = get_args(hint)
        return len(args) != 2 or all(_accepts(item, args[1]) for item in value.values())
    return True  # a type fido does not know how to check: the factory judges


def _describe(hint: Any) -> str:
    """The type in words: `an integer`, `a string or a list of strings`."""
    origin = get_origin(hint)
    if origin is Union or origin is UnionType:
        words = [_describe(a) for a in get_args(hint) if a is not type(None)]
        if "a path (a string)" in words:  # `str | Path`: a path
            words = [w for w in words if w != "a string"]
        return " or ".join(dict.fromkeys(words))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if hint in _PATHS or origin in _PATHS:
        return "a path (a string)"
    if hint in _LISTS or origin in _LISTS:
        args = [a for a in get_args(hint) if a is not Ellipsis]
        return f"a list of {_plural(_describe(args[0]))}" if len(args) == 1 else "a list"
    if hint in _TABLES or origin in _TABLES:
        return "a table"
    return getattr(hint, "__name__", str(hint))


def _plural(words: str) -> str:
    """`a string` -> `strings` (good enough for the few types options have)."""
    for article in ("an ", "a "):
        if words.startswith(article):
            return words.removeprefix(article) + "s"
    return words


def _shown(value: Any) -> str:
    """A wrong value, short, for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve(
    spec: AdapterSpec, config: Config, reader: _Reader | None, target: Callable[..., Any]
) -> dict[str, Any]:
    """The factory's keyword arguments: options checked, paths made absolute, secrets read."""
    signature = _parameters(target)
    names, open_ended = signature.names, signature.open_ended
    fail: Callable[[str, str], ConfigurationError] = (
        reader.fail
        if reader is not None
        else (
            lambda key, message: ConfigurationError(
                message, file=None if config.path is None else str(config.path), key=key
            )
        )
    )
    relative = reader.relative if reader is not None else _Reader("", config.path).relative
    kwargs: dict[str, Any] = {}
    for option, value in spec.options.items():
        key = f"{spec.key}.{option}"
        base = option.removesuffix("_env") if option.endswith("_env") else None
        base_file = option.removesuffix("_file") if option.endswith("_file") else None
        if option in names or (open_ended and base is None and base_file is None):
            if _SECRET.search(option):
                raise fail(
                    key,
                    f"secrets are never written in the configuration: use "
                    f"{option}_env (an environment variable) or {option}_file",
                )
            hint = signature.hints.get(option, Any)
            if not _accepts(value, hint):
                raise fail(key, f"expected {_describe(hint)}, not {_shown(value)}")
            if isinstance(value, str) and _PATHLIKE.search(option):
                value = str(relative(value))
            kwargs[option] = value
        elif base is not None and (base in names or open_ended):
            if not isinstance(value, str) or not value:
                raise fail(key, "expected the name of an environment variable")
            secret = os.environ.get(value)
            if secret is None:
                raise fail(key, f"the environment variable {value} is not set")
            kwargs[base] = secret
        elif base_file is not None and (base_file in names or open_ended):
            if not isinstance(value, str) or not value:
                raise fail(key, "expected the path of a file that holds the secret")
            location = relative(value)
            try:
                kwargs[base_file] = location.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise fail(key, f"cannot read the secret file {location}: {exc.strerror}") from None
        else:
            accepted = sorted(n for n in names if n not in ("self", "name", "interval", "timeout"))
            raise fail(
                key,
                f"unknown option {option!r} for the {spec.kind} {spec.type!r} "
                f"(it takes: {', '.join(accepted) or 'no options'})",
            )
    if "name" in names or open_ended:
        kwargs["name"] = spec.name
    for option in signature.required:
        if option not in kwargs and option not in ("interval", "timeout"):
            secret = " (or its _env or _file form)" if _SECRET.search(option) else ""
            raise fail(
                spec.key,
                f"the {spec.kind} {spec.type!r} needs the option {option!r}{secret}",
            )
    return kwargs


def check_adapter(spec: AdapterSpec, config: Config, reader: _Reader | None = None) -> None:
    """Resolve an adapter's factory and options without building it.

    Raises:
        ConfigurationError: The type is not installed, an option is unknown, or a
            secret is missing.
    """
    try:
        target = factory(spec.kind, spec.type)
    except ConfigurationError as exc:
        if reader is not None:
            raise reader.fail(f"{spec.key}.type", exc.message) from None
        raise
    _resolve(spec, config, reader, target)


def build_adapter(spec: AdapterSpec, config: Config) -> Any:
    """Build one adapter from its spec.

    Raises:
        ConfigurationError: The adapter refuses its options (the error says which).
    """
    target = factory(spec.kind, spec.type)
    kwargs = _resolve(spec, config, None, target)
    where: dict[str, Any] = {
        "file": None if config.path is None else str(config.path),
        "key": spec.key,
    }
    try:
        adapter = target(**kwargs)
    except ConfigurationError as exc:
        raise ConfigurationError(exc.message, **where) from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"the {spec.kind} {spec.type!r} refused its options: {exc}", **where
        ) from None
    for attribute, value in (("interval", spec.interval), ("timeout", spec.timeout)):
        if value is not None:
            setattr(adapter, attribute, value)
    if spec.named and getattr(adapter, "name", None) != spec.name:
        raise ConfigurationError(
            f"the {spec.kind} {spec.type!r} does not take a name; leave out name = {spec.name!r}",
            **where,
        )
    return adapter
