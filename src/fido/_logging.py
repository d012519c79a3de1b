"""fido's log records: under the `fido.` hierarchy, each carrying the event and incident ids.

fido configures no handler (a library must not); `fido run` does. Every record fido makes
has the attributes `event_id` and `incident_id` (None outside an event's journey), taken
from context variables the pipeline sets, so a format such as
`%(asctime)s %(levelname)s %(name)s [%(event_id)s %(incident_id)s] %(message)s` works.
Values from alerts reach messages only through `repr` (or after validation), and no
record ever holds a secret.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import MutableMapping

__all__ = ["EVENT_ID", "INCIDENT_ID", "get_logger"]

EVENT_ID: ContextVar[str | None] = ContextVar("fido_event_id", default=None)
INCIDENT_ID: ContextVar[str | None] = ContextVar("fido_incident_id", default=None)


class _ContextAdapter(logging.LoggerAdapter[logging.Logger]):
    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = {"event_id": EVENT_ID.get(), "incident_id": INCIDENT_ID.get()}
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger under `fido.` whose records carry the current event and incident ids."""
    return _ContextAdapter(logging.getLogger(name), {})
