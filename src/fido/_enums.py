"""fido's enum bases: identity-hashed (fast as dict keys) and, where it matters, ordered."""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["Enum", "OrderedEnum"]


class Enum(enum.Enum):
    """An enum whose members hash by identity.

    Members are singletons that compare by identity, so hashing them by identity is
    consistent with equality; it spares the Python-level `hash(self._name_)` that the
    standard `Enum` runs on every dict look-up (the scorer does many). `str(member)` is
    its value (`str(Dimension.THREAT) == "threat"`), for printing.
    """

    __hash__ = object.__hash__

    def __str__(self) -> str:
        return str(self.value)


class OrderedEnum(Enum):
    """Members compare by definition order (the first is the lowest), never with other types."""

    _rank: int

    def __init__(self, *args: Any) -> None:
        self._rank = len(type(self)._member_names_)

    @property
    def rank(self) -> int:
        """The member's place, from 0."""
        return self._rank

    def _rank_of(self, other: object) -> int | None:
        return other.rank if type(other) is type(self) else None

    def __lt__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self._rank < rank

    def __le__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self._rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self._rank > rank

    def __ge__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self._rank >= rank
