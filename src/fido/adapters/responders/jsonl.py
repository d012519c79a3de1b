"""`jsonl`: append each action to a file of JSON lines (for a SIEM, an audit, a script)."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from fido import Action, Incident, ResponderError

__all__ = ["JsonlResponder"]


class JsonlResponder:
    """Writes one JSON object per action to a file, flushed and synced before returning.

    Indicators are written defanged (this file is read by people and by tools that
    should not follow links). The record carries the idempotency key
    `incident/action/responder`, so that a reader can recognise a repeat.

    Args:
        path: The file to append to (created, with its directory, if missing).
        name: The responder's name.
    """

    def __init__(self, path: str | Path, *, name: str = "jsonl") -> None:
        self.name = name
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JsonlResponder(name={self.name!r}, path={str(self.path)!r})"

    def record(self, incident: Incident, action: Action) -> dict[str, object]:
        """The JSON object written for one action."""
        assessment, decision = incident.assessment, incident.decision
        return {
            "at": datetime.now(UTC).isoformat(),
            "key": f"{incident.id}/{action.name}/{self.name}",
            "incident": incident.id,
            "action": action.name,
            "title": incident.title,
            "level": decision.level,
            "total": assessment.total,
            "threat": assessment.threat,
            "machine": assessment.machine,
            "user": assessment.user,
            "recommendation": decision.recommendation,
            "reason": decision.reason,
            "hosts": [h.key for h in incident.hosts],
            "users": [str(u) for u in incident.users],
            "observables": [o.defanged() for o in incident.observables],
            "why": [f"{c.points:+d} {c.dimension}: {c.reason}" for c in assessment.contributions],
        }

    def respond(self, incident: Incident, action: Action) -> str:
        """Append the action's record.

        Raises:
            ResponderError: The file cannot be written.
        """
        line = json.dumps(self.record(incident, action), ensure_ascii=False) + "\n"
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as stream:
                    stream.write(line)
                    stream.flush()
                    os.fsync(stream.fileno())
        except OSError as exc:
            raise ResponderError(
                f"cannot write {self.path}: {exc.strerror}",
                adapter=self.name,
                incident_id=incident.id,
                action=action.name,
            ) from None
        return f"appended to {self.path.name}"
