"""Approvals: the answers a person gives (approve, reject) and the expiry of the others.

Each is read, applied and saved under the incident's lock, with the incident's revision:
if another process saved the incident meanwhile, the answer is read and applied again
(`MAX_CONFLICTS` times at most), so an answer given elsewhere is refused, and ours (once
its write-ahead save landed) is kept, with its responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from fido import _portal
from fido._errors import ApprovalError, ConflictError
from fido._incident import Approval, ApprovalStatus, Incident
from fido._logging import get_logger
from fido._respond import respond
from fido._runtime import Work
from fido._stages import carry_over, record

if TYPE_CHECKING:
    from datetime import datetime

    from fido._runtime import Runtime

__all__ = ["MAX_CONFLICTS", "answer", "expire", "pending"]

log = get_logger("fido.pipeline")

MAX_CONFLICTS: Final = 8
"""Saves refused because another process saved the incident meanwhile, in one journey,
before the journey gives up with the `ConflictError`."""


async def answer(
    rt: Runtime, incident_id: str, action: str, by: str, note: str | None, *, approve: bool
) -> Incident:
    who: object = by
    if not isinstance(who, str) or not who.strip():
        raise ApprovalError(
            "an answer names who gives it (by=...)", incident_id=incident_id, action=action
        )
    async with rt.incidents.hold(incident_id):
        work = Work(None, rt.clock())
        for attempt in range(MAX_CONFLICTS + 1):
            try:
                return await _answer_once(work, rt, incident_id, action, by, note, approve)
            except ConflictError:
                # Another process saved the incident meanwhile (the run loop, another
                # answer): read it again. An answer given elsewhere is then refused,
                # ours (if our write-ahead save landed) is applied again.
                if attempt == MAX_CONFLICTS:
                    raise
                rt.counters["conflicts"] += 1
                work.audit.clear()
    raise AssertionError("unreachable")  # pragma: no cover


async def _answer_once(
    work: Work,
    rt: Runtime,
    incident_id: str,
    action: str,
    by: str,
    note: str | None,
    approve: bool,  # noqa: FBT001 - internal
) -> Incident:
    incident = await _portal.maybe_await(rt.store.get_incident(incident_id))
    if incident is None:
        raise ApprovalError("no such incident", incident_id=incident_id, action=action)
    incident = carry_over(incident, work)
    now = work.now
    index, approval = _find(incident, action, work.answer)
    stage = "approve" if approve else "reject"
    if approval != work.answer:
        if approval.expires_at is not None and now >= approval.expires_at:
            _set(
                incident,
                index,
                attrs.evolve(
                    approval, status=ApprovalStatus.EXPIRED, answered_at=approval.expires_at
                ),
            )
            with work.stage("expire", rt.clock) as note_:
                note_.outcome, note_.detail = "expired", f"{action} expired unanswered"
            await record(work, rt, incident)
            raise ApprovalError(
                f"the approval expired at {approval.expires_at:%Y-%m-%d %H:%M} UTC",
                incident_id=incident_id,
                action=action,
            )
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        work.answer = attrs.evolve(
            approval, status=status, answered_at=now, by=by.strip(), note=note
        )
        _set(incident, index, work.answer)
    answer = work.answer
    assert answer is not None  # noqa: S101 - set just above
    with work.stage(stage, rt.clock) as step:
        step.detail = f"{action} {answer.status.value} by {by.strip()}"
        if approve:
            step.detail += "; " + await respond(incident, [approval.action], rt, work)
    log.info(
        "%s %s on %s by %s",
        action,
        answer.status.value,
        incident_id,
        by,
        extra={"incident_id": incident_id},
    )
    return await record(work, rt, incident)


def _find(incident: Incident, action: str, mine: Approval | None) -> tuple[int, Approval]:
    answered = None
    for index, approval in enumerate(incident.approvals):
        if approval.action.name != action:
            continue
        if approval.status is ApprovalStatus.PENDING or approval == mine:
            return index, approval
        answered = approval
    if answered is not None:
        when = (
            "" if answered.answered_at is None else f" at {answered.answered_at:%Y-%m-%d %H:%M} UTC"
        )
        who = "" if answered.by is None else f" by {answered.by}"
        raise ApprovalError(
            f"already {answered.status.value}{who}{when}",
            incident_id=incident.id,
            action=action,
        )
    raise ApprovalError(
        "no approval pending for this action", incident_id=incident.id, action=action
    )


def _set(incident: Incident, index: int, approval: Approval) -> None:
    approvals = list(incident.approvals)
    approvals[index] = approval
    incident.approvals = tuple(approvals)


async def expire(rt: Runtime) -> int:
    now = rt.clock()
    expired = 0
    for stale in await _portal.maybe_await(rt.store.overdue_approvals(now)):
        async with rt.incidents.hold(stale.id):
            for attempt in range(MAX_CONFLICTS + 1):
                try:
                    expired += await _expire_one(rt, stale.id, now)
                    break
                except ConflictError:
                    if attempt == MAX_CONFLICTS:
                        raise
                    rt.counters["conflicts"] += 1
    return expired


async def _expire_one(rt: Runtime, incident_id: str, now: datetime) -> int:
    incident = await _portal.maybe_await(rt.store.get_incident(incident_id))
    if incident is None:
        return 0
    work = Work(None, now)
    changed = []
    for index, approval in enumerate(incident.approvals):
        overdue = approval.expires_at is not None and now >= approval.expires_at
        if approval.status is ApprovalStatus.PENDING and overdue:
            _set(
                incident,
                index,
                attrs.evolve(
                    approval, status=ApprovalStatus.EXPIRED, answered_at=approval.expires_at
                ),
            )
            changed.append(approval.action.name)
    if changed:
        with work.stage("expire", rt.clock) as note:
            note.outcome = "expired"
            note.detail = f"{', '.join(changed)} expired unanswered"
        await record(work, rt, incident)
    return len(changed)


async def pending(rt: Runtime) -> list[tuple[Incident, Approval]]:
    await expire(rt)
    pairs = [
        (incident, approval)
        for incident in await _portal.maybe_await(rt.store.pending_approvals())
        for approval in incident.approvals
        if approval.status is ApprovalStatus.PENDING
    ]
    pairs.sort(key=lambda pair: (pair[1].requested_at, pair[0].id))
    return pairs
