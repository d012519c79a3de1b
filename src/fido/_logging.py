"""fido's log records: under the `fido.` hierarchy, each carrying the event and incident ids.

fido configures no handler (a library must not); `fido run` does. Every record fido makes
with `get_logger` has the attributes `event_id` and `incident_id` (None outside an event's
journey), taken from context variables the pipeline sets, so a format such as
`LOG_FORMAT` works. `ContextFilter`, on a handler, fills them in on any other record too
(`-` where there is none), so that the format never fails. Values from alerts reach
messages only through `repr` (or after validation), and no record ever holds a secret.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import MutableMapping

__all__ = [
    "EVENT_ID",
    "INCIDENT_ID",
    "LOG_FORMAT",
    "ContextFilter",
    "SafeFormatter",
    "get_logger",
    "printable",
]

EVENT_ID: ContextVar[str | None] = ContextVar("fido_event_id", default=None)
INCIDENT_ID: ContextVar[str | None] = ContextVar("fido_incident_id", default=None)

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(event_id)s %(incident_id)s] %(message)s"
"""The documented format of fido's log lines (what `fido run` writes to standard error)."""

# Characters a terminal acts on rather than shows: C0 controls (but for the newline and
# the tab), DEL, C1 controls (0x9b is an 8-bit CSI), the bidirectional overrides and
# isolates that reorder what is shown, and the Unicode line and paragraph separators.
UNSAFE_ABOVE_ASCII: Final = (
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
"""DEL and the controls past ASCII (JSON leaves them raw: `fido --json` escapes them)."""
_CONTROLS: Final = (*(c for c in range(0x20) if c not in (0x09, 0x0A)), *UNSAFE_ABOVE_ASCII)
_PRINTABLE: Final = {c: (f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}") for c in _CONTROLS}
_ONE_LINE: Final = {**_PRINTABLE, 0x0A: "\\n", 0x09: "\\t"}


def printable(text: str, *, newlines: bool = True) -> str:
    r"""`text` with every terminal control escaped (`\x1b`, `\u202e`): safe to print.

    Alert content is attacker-controlled: an escape sequence in a title could clear the
    analyst's screen, retitle the terminal or hide what follows; a bidirectional override
    could make a command read backwards. Escaping is idempotent (the escaped form is
    plain text).

    Args:
        text: What to print.
        newlines: Keep newlines and tabs (False escapes them too: one line).
    """
    return text.translate(_PRINTABLE if newlines else _ONE_LINE)


class ContextFilter(logging.Filter):
    """A logging filter that gives every record `event_id` and `incident_id` attributes.

    Put it on a handler whose format names them: a record fido
    made keeps its ids, any other (another library's, a logger made without
    `get_logger`) gets the current event's id, or `-`, so that formatting never fails
    with a `KeyError`. It filters nothing out.

    Example:
        ```python
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(event_id)s %(incident_id)s] %(message)s"
        ))
        handler.addFilter(fido.ContextFilter())
        logging.getLogger("fido").addHandler(handler)
        ```
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Fill in the ids (never drops a record)."""
        record.event_id = getattr(record, "event_id", None) or EVENT_ID.get() or "-"
        record.incident_id = getattr(record, "incident_id", None) or INCIDENT_ID.get() or "-"
        return True


class SafeFormatter(logging.Formatter):
    """A formatter whose lines cannot carry terminal controls (they are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, escaped (a traceback keeps its newlines)."""
        return printable(super().format(record))


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
