"""Plain-data (JSON) conversion of the model's attrs classes, driven by their type hints.

Every model class turns into a dict of JSON values and back without loss: enums by value,
datetimes as ISO 8601 with their offset, timedeltas as seconds, tuples as lists, nested
model objects as dicts. Where a field may hold one of several model classes (a finding's
subject: an Observable, a Host or a User), the dict carries a `"type"` tag.
"""

from __future__ import annotations

import enum
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Final, NoReturn, TypeVar

import attrs

from fido._errors import InvalidRecord

__all__ = [
    "FrozenDict",
    "FrozenList",
    "LoadError",
    "check_json",
    "dump",
    "field_dumper",
    "load",
    "load_record",
    "thaw",
    "type_tag",
]

T = TypeVar("T")
Dumper = Callable[[Any], Any]
Loader = Callable[[Any, str], Any]

_JSON_SCALARS = (str, int, float, bool, type(None))


class LoadError(Exception):
    """Internal: a value that does not fit its field; callers wrap it in a fido error."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _read_only(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(f"this {type(self).__name__} is read-only: copy it to change it")


class FrozenDict(dict[str, Any]):
    """A JSON object that refuses changes: what `Event.extra` (and `raw`) hold.

    It is a `dict` (equal to a plain dict with the same items, and `json.dumps` writes
    it). `thaw` gives a plain, mutable copy; pickling and copying keep it read-only.
    """

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenList(list[Any]):
    """A JSON array that refuses changes (see `FrozenDict`)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


def check_json(value: Any, path: str = "", *, freeze: bool = False) -> Any:
    """Check that `value` is JSON data; return a copy with tuples made lists.

    Numbers must be finite: JSON has no NaN or infinity (`json.dumps` would write a text
    that other readers refuse, and NaN is not even equal to itself).

    Args:
        value: The data.
        path: Where it is, for the error.
        freeze: Return read-only containers (`FrozenDict`, `FrozenList`).

    Raises:
        LoadError: A value that JSON cannot hold (or a key that is not a str).
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LoadError(path, "not JSON data: a number that is not finite (NaN, infinity)")
        return value
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise LoadError(path, f"JSON object keys are str, not {type(key).__name__}")
            result[key] = check_json(item, _join(path, key), freeze=freeze)
        return FrozenDict(result) if freeze else result
    if isinstance(value, list | tuple):
        items = [check_json(item, _join(path, i), freeze=freeze) for i, item in enumerate(value)]
        return FrozenList(items) if freeze else items
    raise LoadError(path, f"not JSON data: {type(value).__name__}")


def thaw(value: Any) -> Any:
    """Plain (mutable) copies of the read-only containers in `value`."""
    if isinstance(value, FrozenDict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, FrozenList):
        return [thaw(item) for item in value]
    return value


def type_tag(cls: type) -> str:
    """The `"type"` tag of a model class: its name in snake case (`HostContext` -> host_context)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


def _dump_datetime(value: datetime) -> str:
    return value.isoformat()


def _dump_timedelta(value: timedelta) -> float:
    return value.total_seconds()


def _dump_enum(value: enum.Enum) -> Any:
    return value.value


def _identity(value: Any) -> Any:
    return value


def _dump_any(value: Any) -> Any:
    return thaw(value) if isinstance(value, FrozenDict | FrozenList) else value


def _args(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


@cache
def _dumper(hint: Any) -> Dumper:
    if hint is Any:
        return _dump_any
    if hint in _JSON_SCALARS:
        return _identity
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _dump_enum
    if hint is datetime:
        return _dump_datetime
    if hint is timedelta:
        return _dump_timedelta
    if isinstance(hint, type) and attrs.has(hint):
        return dump
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = _dumper(_args(hint)[0])
        return lambda value: [item(v) for v in value]
    if origin in (Mapping, dict):
        value_dumper = _dumper(_args(hint)[1])
        return lambda value: {k: value_dumper(v) for k, v in value.items()}
    if _is_union(hint):
        return _union_dumper(hint)
    raise TypeError(f"no JSON form for {hint!r}")  # pragma: no cover - a model bug


def _union_dumper(hint: Any) -> Dumper:
    members = [m for m in _args(hint) if m is not type(None)]
    models = [m for m in members if isinstance(m, type) and attrs.has(m)]
    if len(models) > 1:

        def tagged(value: Any) -> Any:
            if value is None:
                return None
            return {"type": type_tag(type(value)), **dump(value)}

        return tagged
    inner = _dumper(members[0]) if len(members) == 1 else _identity

    def optional(value: Any) -> Any:
        return None if value is None else inner(value)

    return optional


_DUMP_PLANS: dict[type, tuple[tuple[str, Dumper], ...]] = {}
_LOAD_PLANS: dict[type, tuple[tuple[str, str, Loader, bool], ...]] = {}


def _derived(field: attrs.Attribute[Any]) -> bool:
    """Fields computed from the others (a cached key or hash) are not part of the data."""
    return bool(field.metadata.get("derived"))


def _fields(cls: type) -> tuple[tuple[str, Dumper], ...]:
    plan = _DUMP_PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple((f.name, _dumper(hints[f.name])) for f in attrs.fields(cls) if not _derived(f))
        _DUMP_PLANS[cls] = plan
    return plan


_COMPILED: dict[tuple[type, frozenset[str]], Callable[[Any], dict[str, Any]]] = {}
_INLINE: Final[dict[Any, str]] = {
    _identity: "obj.{name}",
    _dump_datetime: "obj.{name}.isoformat()",
    _dump_timedelta: "obj.{name}.total_seconds()",
    _dump_enum: "obj.{name}.value",
}
"""Dumpers written in line in a compiled dump function (no call per field)."""


def _compile(cls: type, without: frozenset[str]) -> Callable[[Any], dict[str, Any]]:
    """A dump function for one model class: one dict display, fields read as attributes.

    What `dump` does field by field through its plan, in one expression that Python
    runs several times faster; the output is the same.
    """
    env: dict[str, Any] = {}
    items = []
    for number, (name, dumper) in enumerate(_fields(cls)):
        if name in without:
            continue
        if not name.isidentifier():  # pragma: no cover - attrs field names are identifiers
            raise TypeError(f"field name {name!r}")
        inline = _INLINE.get(dumper)
        if inline is None:
            env[f"dump_{number}"] = dumper
            inline = f"dump_{number}(obj.{{name}})"
        items.append(f"{name!r}: {inline.format(name=name)}")
    source = f"def dump_{cls.__name__}(obj):\n    return {{{', '.join(items)}}}\n"
    exec(compile(source, f"<fido dump of {cls.__name__}>", "exec"), env)  # noqa: S102
    function: Callable[[Any], dict[str, Any]] = env[f"dump_{cls.__name__}"]
    _COMPILED[(cls, without)] = function
    return function


_NOTHING: Final[frozenset[str]] = frozenset()


def dump(obj: Any, without: frozenset[str] = _NOTHING) -> dict[str, Any]:
    """Turn an instance of a model class into a dict of JSON values.

    Args:
        obj: The instance.
        without: Fields to leave out (a store that keeps them apart).
    """
    function = _COMPILED.get((type(obj), without))
    if function is None:
        function = _compile(type(obj), without)
    return function(obj)


def field_dumper(cls: type, name: str) -> Dumper:
    """What turns a value of the field `name` of the model class `cls` into JSON values."""
    for field, dumper in _fields(cls):
        if field == name:
            return dumper
    raise KeyError(name)


# -- loading ----------------------------------------------------------------------------


def _load_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise LoadError(path, f"expected a string, not {type(value).__name__}")
    return value


def _load_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LoadError(path, f"expected an integer, not {type(value).__name__}")
    return value


def _load_float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LoadError(path, f"expected a number, not {type(value).__name__}")
    return float(value)


def _load_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise LoadError(path, f"expected true or false, not {type(value).__name__}")
    return value


def _load_datetime(value: Any, path: str) -> datetime:
    if isinstance(value, datetime):
        result = value
    else:
        try:
            result = datetime.fromisoformat(_load_str(value, path))
        except ValueError:
            raise LoadError(path, "expected an ISO 8601 date and time") from None
    if result.tzinfo is None:
        raise LoadError(path, "expected a time with a UTC offset")
    return result


def _load_timedelta(value: Any, path: str) -> timedelta:
    return timedelta(seconds=_load_float(value, path))


def _load_any(value: Any, path: str) -> Any:
    return check_json(value, path)


_SCALAR_LOADERS: dict[Any, Loader] = {
    str: _load_str,
    int: _load_int,
    float: _load_float,
    bool: _load_bool,
    datetime: _load_datetime,
    timedelta: _load_timedelta,
    Any: _load_any,
}


def _enum_loader(cls: type[enum.Enum]) -> Loader:
    def load_enum(value: Any, path: str) -> enum.Enum:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in cls)
            raise LoadError(path, f"expected one of {choices}") from None

    return load_enum


def _model_loader(cls: type) -> Loader:
    return lambda value, path: load(cls, value, path)


@cache
def _loader(hint: Any) -> Loader:
    if hint in _SCALAR_LOADERS:
        return _SCALAR_LOADERS[hint]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_loader(hint)
    if isinstance(hint, type) and attrs.has(hint):
        return _model_loader(hint)
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = _loader(_args(hint)[0])

        def load_tuple(value: Any, path: str) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise LoadError(path, f"expected a list, not {type(value).__name__}")
            return tuple(item(v, _join(path, i)) for i, v in enumerate(value))

        return load_tuple
    if origin in (Mapping, dict):
        value_loader = _loader(_args(hint)[1])

        def load_mapping(value: Any, path: str) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise LoadError(path, f"expected an object, not {type(value).__name__}")
            return {_load_str(k, path): value_loader(v, _join(path, k)) for k, v in value.items()}

        return load_mapping
    if _is_union(hint):
        return _union_loader(hint)
    raise TypeError(f"cannot load {hint!r}")  # pragma: no cover - a model bug


def _union_loader(hint: Any) -> Loader:
    members = [m for m in _args(hint) if m is not type(None)]
    nullable = len(members) < len(_args(hint))
    models = {type_tag(m): m for m in members if isinstance(m, type) and attrs.has(m)}
    if len(models) > 1:

        def load_tagged(value: Any, path: str) -> Any:
            if value is None and nullable:
                return None
            if not isinstance(value, Mapping):
                raise LoadError(path, f"expected an object, not {type(value).__name__}")
            tag = value.get("type")
            if tag not in models:
                raise LoadError(_join(path, "type"), f"expected one of {sorted(models)}")
            return load(models[tag], {k: v for k, v in value.items() if k != "type"}, path)

        return load_tagged
    inner = _loader(members[0]) if len(members) == 1 else _load_any

    def load_optional(value: Any, path: str) -> Any:
        if value is None:
            if nullable:
                return None
            raise LoadError(path, "a value is required")
        return inner(value, path)

    return load_optional


def _field_loaders(cls: type) -> tuple[tuple[str, str, Loader, bool], ...]:
    plan = _LOAD_PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(
            (f.name, f.alias or f.name, _loader(hints[f.name]), f.default is attrs.NOTHING)
            for f in attrs.fields(cls)
            if not _derived(f)
        )
        _LOAD_PLANS[cls] = plan
    return plan


def load(cls: type[T], data: Any, path: str = "") -> T:
    """Build an instance of a model class from the dict `dump` made.

    Unknown keys are refused, missing keys with a default take it.

    Raises:
        LoadError: A value or a key that does not fit; `path` says where.
    """
    if not isinstance(data, Mapping):
        raise LoadError(path, f"expected an object, not {type(data).__name__}")
    loaders = _field_loaders(cls)
    known = {name for name, _, _, _ in loaders}
    for key in data:
        if key not in known:
            raise LoadError(_join(path, str(key)), "unknown field")
    kwargs: dict[str, Any] = {}
    for name, alias, loader, required in loaders:
        if name in data:
            kwargs[alias] = loader(data[name], _join(path, name))
        elif required:
            raise LoadError(_join(path, name), "a value is required")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise LoadError(path, str(exc)) from None


def load_record(cls: type[T], data: Any) -> T:
    """`load`, raising `InvalidRecord` (naming the class and the field) on bad data."""
    try:
        return load(cls, data)
    except LoadError as exc:
        raise InvalidRecord(exc.message, record=cls.__name__, field=exc.path or None) from None
