r"""Local source files of the offline enrichers (`feeds`, `inventory`): reading and reloading.

- `read_text`: a file's text, whatever its bytes: a UTF-8 byte order mark is dropped and
  bytes that are not UTF-8 survive as lone surrogates (`undecodable` finds them), so one
  bad line costs that line only.
- `physical_lines`: the lines of a text split on `\n` only (a stray `\x0b` or `\u2028`
  inside a value does not split it), with a trailing `\r` removed.
- `Reloader`: on look-ups, at most every `interval` seconds, asks whether the source
  changed (for files, `os.stat`: modification time, size and inode) and reloads it in a
  background thread while look-ups go on with the data already loaded.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from logging import Logger, LoggerAdapter
    from pathlib import Path

__all__ = [
    "MAX_LINE",
    "Reloader",
    "Signature",
    "physical_lines",
    "read_text",
    "signature",
    "undecodable",
]

MAX_LINE: Final = 1 << 16
"""Longest line (in characters) the feed formats read; a longer one is skipped."""

_SURROGATE: Final = re.compile("[\udc80-\udcff]")

Signature = tuple[int, int, int]
"""What tells a changed file: (modification time in ns, size, inode)."""


def read_text(path: Path) -> str:
    """The file's text: UTF-8, byte order mark dropped, other bytes as lone surrogates.

    Raises:
        OSError: The file cannot be read.
    """
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    return text.removeprefix("\ufeff")


def undecodable(text: str) -> bool:
    """Whether the text holds bytes that were not UTF-8 (see `read_text`)."""
    return _SURROGATE.search(text) is not None


def physical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, line without its line break) for each line of `text`."""
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line.removesuffix("\r")


def signature(path: Path) -> Signature | None:
    """The file's (mtime_ns, size, inode), or None when it cannot be seen."""
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino)


class Reloader:
    """Reloads a source when it changed, in a thread, checking at most every `interval` s.

    `poke()` is called on each look-up: it is cheap (a clock read, and a `changed()` call
    at most every `interval` seconds) and never raises. `reload` runs in a daemon thread,
    one at a time; it handles its own errors (keeping the data it had) and anything that
    escapes is logged, not raised.

    Args:
        what: The adapter's name, for log messages.
        interval: Seconds between checks (0: on every look-up).
        enabled: Whether to check at all.
        changed: Whether the source changed since it was last loaded.
        reload: Load the source again.
        log: Where to log an unexpected error of `reload`.
    """

    def __init__(
        self,
        *,
        what: str,
        interval: float,
        enabled: bool,
        changed: Callable[[], bool],
        reload: Callable[[], None],
        log: LoggerAdapter[Logger],
    ) -> None:
        self.what = what
        self.interval = interval
        self.enabled = enabled
        self._changed = changed
        self._reload = reload
        self._log = log
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._thread: threading.Thread | None = None
        self._closed = False

    def poke(self) -> None:
        """Start a reload in the background if the check is due and the source changed."""
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            if busy or now - self._checked < self.interval:
                return
            self._checked = now
        try:
            due = self._changed()
        except Exception:  # a broken check must not break a look-up
            self._log.exception("%s: checking the source for changes failed", self.what)
            return
        if not due:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            thread = threading.Thread(
                target=self._run, name=f"fido-reload-{self.what}", daemon=True
            )
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        try:
            self._reload()
        except Exception:
            self._log.exception("%s: reloading the source failed", self.what)

    def join(self, timeout: float | None = None) -> None:
        """Wait for a reload in progress (if any) to finish."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def close(self) -> None:
        """Start no more reloads (one in progress finishes on its own)."""
        self._closed = True
