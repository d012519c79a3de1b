"""Handing actions to responders: once per (incident, action, responder), never twice."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from fido import _portal
from fido._errors import ResponderError, shorten
from fido._incident import ResponseRecord, ResponseStatus
from fido._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fido._assessment import Action
    from fido._incident import Incident
    from fido._protocols import Responder
    from fido._runtime import Runtime

__all__ = ["idempotency_key", "respond"]

log = get_logger("fido.respond")
_FINAL = (ResponseStatus.DONE, ResponseStatus.STARTED, ResponseStatus.SKIPPED)


def idempotency_key(incident: Incident, action: str, responder: str) -> str:
    """`incident/action/responder`: what makes a response unique."""
    return f"{incident.id}/{action}/{responder}"


def _replace(incident: Incident, record: ResponseRecord) -> None:
    kept = tuple(r for r in incident.responses if r.key != record.key)
    incident.responses = (*kept, record)


async def _one(incident: Incident, action: Action, responder: Responder, rt: Runtime) -> bool:
    key = idempotency_key(incident, action.name, responder.name)
    begin = time.perf_counter()
    try:
        detail = await _portal.call(
            responder.respond,
            incident,
            action,
            timeout=rt.limits.respond_timeout,
            executor=rt.executor,
        )
    except TimeoutError:
        status, text = ResponseStatus.FAILED, f"no answer within {rt.limits.respond_timeout:g} s"
    except ResponderError as exc:
        status, text = ResponseStatus.FAILED, str(exc)
    except Exception as exc:
        status = ResponseStatus.FAILED
        text = f"{type(exc).__name__}: {shorten(str(exc), 300)[1:-1]}"
    else:
        status = ResponseStatus.DONE
        text = "" if detail is None else shorten(str(detail), 500)[1:-1]
    rt.time(f"respond.{responder.name}", time.perf_counter() - begin)
    if status is ResponseStatus.FAILED:
        log.warning(
            "%s failed %s for %s: %s",
            responder.name,
            action.name,
            incident.id,
            text,
            extra={"incident_id": incident.id},
        )
    _replace(
        incident,
        ResponseRecord(
            action=action.name,
            responder=responder.name,
            status=status,
            at=rt.clock(),
            key=key,
            detail=text,
        ),
    )
    return status is ResponseStatus.DONE


async def respond(incident: Incident, actions: Sequence[Action], rt: Runtime) -> str:
    """Carry out `actions` in order, each with all of its responders at once.

    Before a responder is called, a STARTED record is saved with the incident (write
    ahead): if the process dies during the call, the record says so and the call is not
    repeated. Done, started and skipped keys are never called again; failed ones are
    retried the next time the incident is processed.

    Returns:
        A few words for the audit trail.
    """
    done = failed = 0
    finished = {r.key for r in incident.responses if r.status in _FINAL}
    for action in actions:
        responders = rt.responders.get(action.name, ())
        if not responders:
            key = idempotency_key(incident, action.name, "-")
            if key not in finished:
                _replace(
                    incident,
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
        for responder in due:
            _replace(
                incident,
                ResponseRecord(
                    action=action.name,
                    responder=responder.name,
                    status=ResponseStatus.STARTED,
                    at=rt.clock(),
                    key=idempotency_key(incident, action.name, responder.name),
                ),
            )
        await _portal.maybe_await(rt.store.save_incident(incident, finished=False))
        outcomes = await asyncio.gather(*(_one(incident, action, r, rt) for r in due))
        done += sum(outcomes)
        failed += len(outcomes) - sum(outcomes)
    rt.counters["responses"] += done
    rt.counters["response_failures"] += failed
    return f"{done} done, {failed} failed"
