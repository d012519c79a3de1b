"""`jsonl`: events in fido's own JSON form, one per line, from a file that grows.

Each line is what `Event.to_dict()` writes (the `schema` key may be left out). Useful to
feed fido from any tool that can write JSON lines, and for replaying exported events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fido import DeadLetter, DetectorError, Event, InvalidEvent
from fido.adapters._tail import Line, read_lines, text_lines

__all__ = ["JsonlDetector"]


class JsonlDetector:
    """Events in fido's JSON form, one per line, from a file; polled from a byte offset.

    Args:
        path: The file to read. It may not exist yet; it may be rotated or truncated.
        name: The detector's name. Events whose `detector` is missing get this name.
        interval: Seconds between polls in the run loop.
        batch: The most lines one poll returns.
    """

    def __init__(
        self, path: str | Path, *, name: str = "jsonl", interval: float = 5.0, batch: int = 1000
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.interval = float(interval)
        self.batch = int(batch)

    def __repr__(self) -> str:
        return f"JsonlDetector(name={self.name!r}, path={str(self.path)!r})"

    def _event(self, item: Any) -> Event | DeadLetter:
        if not isinstance(item, Mapping):
            return DeadLetter.from_error(
                item,
                InvalidEvent(f"expected a JSON object, not {type(item).__name__}"),
                at=datetime.now(UTC),
                detector=self.name,
            )
        data = dict(item)
        data.setdefault("detector", self.name)
        try:
            return Event.from_dict(data)
        except InvalidEvent as error:
            return DeadLetter.from_error(item, error, at=datetime.now(UTC), detector=self.name)

    def parse(self, payload: Any) -> list[Event | DeadLetter]:
        """Events from one JSON object, a list of them, or JSON text (one object per line).

        Raises:
            DetectorError: The payload is none of those. (A line of text that is not
                JSON comes back as a `DeadLetter` with the line number, not an error.)
        """
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", errors="replace")
        if isinstance(payload, str):
            return self._lines(text_lines(payload))
        if isinstance(payload, Mapping):
            return [self._event(payload)]
        if isinstance(payload, list):
            return [self._event(item) for item in payload]
        raise DetectorError(
            f"expected JSON text, an object or a list, not {type(payload).__name__}",
            adapter=self.name,
        )

    def poll(self, cursor: str | None) -> tuple[list[Event | DeadLetter], str | None]:
        """The lines written since `cursor`.

        Raises:
            DetectorError: The file cannot be read.
        """
        lines, after = read_lines(self.path, cursor, self.batch)
        return self._lines(lines), after

    def _lines(self, lines: list[Line]) -> list[Event | DeadLetter]:
        """An event, or a dead letter with the reason, for each line."""
        results: list[Event | DeadLetter] = []
        for line in lines:
            if line.error is not None:
                results.append(
                    DeadLetter(
                        reason=line.error,
                        at=datetime.now(UTC),
                        detector=self.name,
                        payload=line.text,
                    )
                )
            else:
                results.append(self._event(line.value))
        return results
