"""Crash points, for the crash test only: end the process at a chosen point of the work.

`FIDO_CRASH_AT=name` (or `name:count`) in the environment makes the process end at once
(`os._exit(CRASH_EXIT)`, as a SIGKILL would: no cleanup, no flush) the count-th time it
reaches `crash_point(name)` (the first time by default). The variable is read once, at
import; unset (always, outside that test) a crash point costs one comparison.

The points: `stored` (a poll's events are stored, its cursor not yet), `started` (a
response's STARTED record is saved, the responder not yet called), `saving` (in the middle
of an incident's final save, before its transaction commits).
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["CRASH_EXIT", "crash_point"]

CRASH_EXIT: Final = 70
"""The exit status of a process ended at a crash point."""


def _parse(spec: str | None) -> tuple[str | None, int]:
    if not spec:
        return None, 0
    name, _, count = spec.partition(":")
    return name, int(count) if count.isdigit() and int(count) > 0 else 1


_POINT, _COUNT = _parse(os.environ.get("FIDO_CRASH_AT"))
_reached = 0


def crash_point(name: str) -> None:
    """End the process here if the environment asks for it (see the module's docstring)."""
    global _reached
    if _POINT is None or name != _POINT:
        return
    _reached += 1
    if _reached >= _COUNT:
        os._exit(CRASH_EXIT)
