"""Reading a growing file of JSON lines from a cursor: the plumbing of file detectors.

The cursor is `"<device>:<inode>:<offset>"`: where the next unread line starts in which
file. A rotated file (another inode) or a truncated one (shorter than the offset) is read
from its start. A last line without its newline is left for the next poll (the writer may
not have finished it).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Final

from fido import DetectorError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Line", "read_lines", "text_lines"]

_MAX_LINE: Final = 1 << 20


class Line:
    """One line of the file: its parsed JSON (or why not), and the byte offset it starts at."""

    __slots__ = ("error", "offset", "text", "value")

    def __init__(
        self, offset: int, text: str, error: str | None = None, *, where: str = ""
    ) -> None:
        self.offset = offset
        self.text = text
        self.value: Any = None
        self.error = error
        if error is None:
            try:
                self.value = json.loads(text)
            except json.JSONDecodeError as exc:
                place = where or f"at byte {offset}"
                self.error = f"{place}, column {exc.colno}: not JSON ({exc.msg})"


def _position(cursor: str | None, stat: os.stat_result) -> int:
    if cursor is None:
        return 0
    try:
        device, inode, offset = (int(part) for part in cursor.split(":"))
    except ValueError:
        raise DetectorError(f"not a cursor of this detector: {cursor[:40]!r}") from None
    if (device, inode) != (stat.st_dev, stat.st_ino) or offset > stat.st_size:
        return 0
    return offset


def read_lines(path: Path, cursor: str | None, limit: int) -> tuple[list[Line], str | None]:
    """Up to `limit` complete lines after `cursor`, and the cursor after them.

    Blank lines are skipped. A line longer than 1 MiB is returned as an error line (and
    skipped), so that one monstrous line cannot stall the detector.

    Raises:
        DetectorError: The file cannot be read.
    """
    try:
        with path.open("rb") as stream:
            stat = os.fstat(stream.fileno())
            offset = _position(cursor, stat)
            stream.seek(offset)
            lines: list[Line] = []
            while len(lines) < limit:
                start = offset
                raw = stream.readline(_MAX_LINE + 1)
                if not raw:
                    break
                if not raw.endswith(b"\n"):
                    if len(raw) <= _MAX_LINE:
                        break  # an unfinished last line: next time
                    skipped = len(raw)
                    rest = stream.readline(_MAX_LINE)
                    while rest:
                        skipped += len(rest)
                        if rest.endswith(b"\n"):
                            break
                        rest = stream.readline(_MAX_LINE)
                    else:
                        break  # still being written: next time
                    offset += skipped
                    lines.append(
                        Line(
                            start,
                            "",
                            f"at byte {start}: a line of more than {_MAX_LINE} bytes was skipped",
                        )
                    )
                    continue
                offset += len(raw)
                text = raw.decode("utf-8", errors="replace").strip()
                if text:
                    lines.append(Line(start, text))
            return lines, f"{stat.st_dev}:{stat.st_ino}:{offset}"
    except FileNotFoundError:
        return [], cursor
    except OSError as exc:
        raise DetectorError(f"cannot read {path}: {exc.strerror}") from None


def text_lines(text: str) -> list[Line]:
    """The non-blank lines of JSON-lines text held in memory, each parsed (or why not)."""
    return [
        Line(0, line, where=f"line {number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
