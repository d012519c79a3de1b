"""Handing actions to responders: once per (incident, action, responder), never twice."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from fido import _portal
from fido._errors import ResponderError, shorten
from fido._faults import crash_point
from fido._incident import ResponseRecord, ResponseStatus
from fido._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fido._assessment import Action
    from fido._incident import Incident
    from fido._protocols import Responder
    from fido._runtime import Runtime, Work

__all__ = ["idempotency_key", "respond"]

log = get_logger("fido.respond")
_FINAL = (
    ResponseStatus.DONE,
    ResponseStatus.STARTED,
    ResponseStatus.SKIPPED,
    ResponseStatus.UNKNOWN,
)
"""Keys in these states are never called again: done, or perhaps done (never twice)."""


def idempotency_key(incident: Incident, action: str, responder: str) -> str:
    """`incident/action/responder`: what makes a response unique."""
    return f"{incident.id}/{action}/{responder}"


def _replace(incident: Incident, record: ResponseRecord) -> None:
    kept = tuple(r for r in incident.responses if r.key != record.key)
    incident.responses = (*kept, record)


async def _one(
    incident: Incident, action: Action, responder: Responder, rt: Runtime, work: Work
) -> ResponseStatus:
    key = idempotency_key(incident, action.name, responder.name)
    begin = time.perf_counter()
    timeout = rt.limits.respond_timeout
    try:
        detail = await _portal.call(
            responder.respond,
            incident,
            action,
            timeout=timeout,
            executor=rt.respond_pool,
            owner=f"respond.{responder.name}",
        )
    except TimeoutError:
        # It may have acted (the page may be out): calling again could send twice.
        status = ResponseStatus.UNKNOWN
        text = f"no answer within {timeout:g} s: it may have acted; not called again"
    except _portal.NoWorker as exc:
        status, text = ResponseStatus.FAILED, f"not called: {exc}"
    except ResponderError as exc:
        status, text = ResponseStatus.FAILED, str(exc)
    except Exception as exc:
        status, text = ResponseStatus.FAILED, _portal.describe(exc)
    else:
        status = ResponseStatus.DONE
        text = "" if detail is None else shorten(str(detail), 500)[1:-1]
    rt.time(f"respond.{responder.name}", time.perf_counter() - begin)
    if status is not ResponseStatus.DONE:
        log.warning(
            "%s %s %s for %s: %s",
            responder.name,
            "failed" if status is ResponseStatus.FAILED else "gave no answer to",
            action.name,
            incident.id,
            text,
            extra={"incident_id": incident.id},
        )
    _keep(
        incident,
        work,
        ResponseRecord(
            action=action.name,
            responder=responder.name,
            status=status,
            at=rt.clock(),
            key=key,
            detail=text,
        ),
    )
    return status


def _keep(incident: Incident, work: Work, record: ResponseRecord) -> None:
    _replace(incident, record)
    work.outcomes[record.key] = record


async def respond(incident: Incident, actions: Sequence[Action], rt: Runtime, work: Work) -> str:
    """Carry out `actions` in order, each with all of its responders at once.

    Before a responder is called, a STARTED record is saved with the incident (write
    ahead, with the incident's revision: `ConflictError` if another save came in between,
    and nothing was called): if the process dies during the call, the record says so and
    the call is not repeated. Done, started, unknown (timed out) and skipped keys are never
    called again; failed ones are retried the next time the incident is processed (not
    within the same journey: `work.attempted`).

    Returns:
        A few words for the audit trail.
    """
    counts = dict.fromkeys(ResponseStatus, 0)
    finished = {r.key for r in incident.responses if r.status in _FINAL} | work.attempted
    for action in actions:
        responders = rt.responders.get(action.name, ())
        if not responders:
            key = idempotency_key(incident, action.name, "-")
            if key not in finished:
                _keep(
                    incident,
                    work,
                    ResponseRecord(
                        action=action.name,
                        responder="-",
                        status=ResponseStatus.SKIPPED,
                        at=rt.clock(),
                        key=key,
                        detail=f"no responder for {action.name!r}",
                    ),
                )
            continue
        due = [
            r for r in responders if idempotency_key(incident, action.name, r.name) not in finished
        ]
        if not due:
            continue
        keys = [idempotency_key(incident, action.name, r.name) for r in due]
        for responder, key in zip(due, keys, strict=True):
            _replace(
                incident,
                ResponseRecord(
                    action=action.name,
                    responder=responder.name,
                    status=ResponseStatus.STARTED,
                    at=rt.clock(),
                    key=key,
                ),
            )
        revision = await rt.saver.save(incident, finished=False, expected=incident.revision)
        if isinstance(revision, int):
            incident.revision = revision
        work.attempted.update(keys)
        finished.update(keys)
        crash_point("started")
        calls = [_one(incident, action, r, rt, work) for r in due]
        statuses = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
        for status in statuses:
            counts[status] += 1
    done = counts[ResponseStatus.DONE]
    failed = counts[ResponseStatus.FAILED]
    unknown = counts[ResponseStatus.UNKNOWN]
    rt.counters["responses"] += done
    rt.counters["response_failures"] += failed
    if unknown:
        rt.counters["response_unknown"] += unknown
        work.outcome = "unknown"  # the stage's audit record says so
    return f"{done} done, {failed} failed" + (f", {unknown} unknown" if unknown else "")
