"""An enum whose members are ordered by their place in the definition."""

from __future__ import annotations

import enum

__all__ = ["OrderedEnum"]


class OrderedEnum(enum.Enum):
    """Members compare by definition order (the first is the lowest), never with other types."""

    @property
    def rank(self) -> int:
        """The member's place, from 0."""
        return type(self)._member_names_.index(self.name)

    def _rank_of(self, other: object) -> int | None:
        return other.rank if type(other) is type(self) else None

    def __lt__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self.rank < rank

    def __le__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self.rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self.rank > rank

    def __ge__(self, other: object) -> bool:
        rank = self._rank_of(other)
        return NotImplemented if rank is None else self.rank >= rank
