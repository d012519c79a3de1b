"""The pipeline's stages: small objects with one job each, run in order by a tiny loop.

validate -> dedup -> allowlist -> correlate -> enrich -> score -> decide -> respond -> record

A stage reads and changes the `Work` it is given; it raises `Finished` when the event's
journey ends early (a duplicate, a suppression). Failures of an adapter never escape a
stage: they are recorded on the incident.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import attrs

from fido import _portal
from fido._assessment import Decision
from fido._deadletter import DeadLetter
from fido._errors import EnrichmentError, InvalidEvent, ScoringError
from fido._event import Event
from fido._findings import HostContext, Reputation, UserContext
from fido._incident import (
    ALLOWLISTED,
    Approval,
    ApprovalStatus,
    EmptyLookup,
    EnrichmentFailure,
    FailureKind,
    Incident,
    IncidentStatus,
    StageRecord,
)
from fido._logging import get_logger
from fido._respond import respond
from fido._runtime import Elsewhere, Finished, Runtime, Work, alive
from fido.scoring._context import subject_key
from fido.scoring._engine import assess
from fido.scoring._history import History

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from fido._digest import Digest
    from fido._findings import Finding, Subject
    from fido._observable import Observable
    from fido._protocols import Enricher

__all__ = ["AFTER", "BEFORE", "Stage", "carry_over", "record"]

log = get_logger("fido.pipeline")
T = TypeVar("T")
_FINDINGS: Final = (Reputation, HostContext, UserContext)
MAX_TRIES: Final = 3
"""Look-ups of one subject by one enricher that may fail (error, timeout) on one incident
before the later events of the incident stop asking."""
_FIRST_PAUSE: Final = 0.05
_LONGEST_PAUSE: Final = 1.0


class Stage(Protocol):
    """**Protocol:** one step of the pipeline."""

    name: str

    async def __call__(self, work: Work, rt: Runtime) -> str:
        """Do the step; return a few words for the audit trail."""
        ...


def _ids(work: Work) -> dict[str, str | None]:
    return {
        "event_id": None if work.event is None else work.event.id,
        "incident_id": None if work.incident is None else work.incident.id,
    }


class Validate:
    """An `Event` (or its dict form) that respects the limits; else a dead letter."""

    name = "validate"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        item = work.item
        try:
            if isinstance(item, Event):
                event = item
            elif isinstance(item, Mapping):
                event = Event.from_dict(item)
            else:
                raise InvalidEvent(f"expected an Event or its dict form, not {type(item).__name__}")
            if len(event.observables) > rt.limits.max_observables:
                raise InvalidEvent(
                    f"{len(event.observables)} observables, more than the limit of "
                    f"{rt.limits.max_observables}",
                    detector=event.detector,
                    event_id=event.id,
                    field="observables",
                )
        except InvalidEvent as error:
            detector = item.detector if isinstance(item, Event) else None
            letter = DeadLetter.from_error(
                item.to_dict() if isinstance(item, Event) else item,
                error,
                at=work.now,
                detector=detector,
            )
            await _portal.maybe_await(rt.store.add_dead_letter(letter))
            rt.counters["dead_lettered"] += 1
            log.warning("dead letter: %s", error, extra={"event_id": error.event_id})
            raise
        work.event = event
        return ""


class Dedup:
    """The same `(detector, id)` again gives the stored incident, and nothing else happens.

    A copy of an event in flight in this pipeline waits for the first. An event another
    pipeline stored and claims (another process on the same store) is waited for until its
    incident is saved, or taken over when the claim lapses or its owner is gone; one this
    pipeline claims but nobody works on (an earlier attempt failed) is processed again.
    """

    name = "dedup"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        event = _event(work)
        key = event.key
        while (waiting := rt.inflight.get(key)) is not None and waiting is not work.future:
            incident = await asyncio.shield(waiting)
            if incident is not None:
                rt.counters["duplicates"] += 1
                raise Finished(incident, "duplicate", "processed concurrently")
            # the first gave up (it failed, or it was stopped): try again
        if work.future is None:
            work.future = asyncio.get_running_loop().create_future()
            rt.inflight[key] = work.future
        if work.stored:
            return "new"
        added = await _portal.maybe_await(
            rt.store.add_event(event, owner=rt.owner, until=rt.claim_until())
        )
        if added:
            return "new"
        return await self._stored(work, rt, event)

    async def _stored(self, work: Work, rt: Runtime, event: Event) -> str:
        """The event was stored before: its incident, or its claim."""
        steal: str | None = None
        pause = _FIRST_PAUSE
        unplaced = 0
        while True:
            incident_id = await _portal.maybe_await(
                rt.store.incident_for_event(event.detector, event.id)
            )
            if incident_id is not None:
                stored = await _portal.maybe_await(rt.store.get_incident(incident_id))
                if stored is None:
                    return "new"
                rt.counters["duplicates"] += 1
                log.info(
                    "duplicate of an event in %s",
                    incident_id,
                    extra={"event_id": event.id, "incident_id": incident_id},
                )
                raise Finished(stored, "duplicate", f"already in {incident_id}")
            holder = await _portal.maybe_await(
                rt.store.claim_event(
                    event.detector,
                    event.id,
                    owner=rt.owner,
                    until=rt.claim_until(),
                    now=rt.clock(),
                    steal=steal,
                )
            )
            if holder == rt.owner:
                rt.counters["resumed_events"] += 1
                return "stored before, not yet processed: claimed"
            if holder is None:
                unplaced += 1
                if unplaced > 1:  # neither placed nor pending: not stored after all
                    return "new"
                continue
            if not alive(holder):
                steal = holder
                continue
            if work.resume:
                raise Elsewhere(holder)
            if pause == _FIRST_PAUSE:
                rt.counters["waited_elsewhere"] += 1
                log.info(
                    "event stored and claimed by %s: waiting for its incident",
                    holder,
                    extra={"event_id": event.id},
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)


class Allowlisting:
    """A known-good event becomes a suppressed incident that names the entry."""

    name = "allowlist"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        event = _event(work)
        if rt.allowlist is None:
            return "no allowlist"
        entry = rt.allowlist.match_event(event, work.now)
        if entry is not None:
            reason = f"allowlisted: {entry.describe()}"
            incident = Incident(
                id=rt.new_incident_id(work.now),
                created_at=work.now,
                updated_at=work.now,
                status=IncidentStatus.SUPPRESSED,
                events=(event,),
                suppressed_by=reason,
                decision=Decision(
                    level=ALLOWLISTED,
                    reason=reason,
                    policy=rt.policy.name,
                    policy_version=rt.policy.version,
                ),
            )
            work.incident = incident
            rt.counters["suppressed"] += 1
            log.info(
                "suppressed: %s", reason, extra={"event_id": event.id, "incident_id": incident.id}
            )
            raise Finished(incident, "suppressed", reason)
        partial = rt.allowlist.match_observables(event, work.now)
        if partial:
            shown = ", ".join(o.defanged() for o in partial)
            return f"not looked up (allowlisted): {shown}"
        return ""


class Correlate:
    """Join an incident on the same host or sharing an observable, or start one.

    The incident joined is open, or suppressed by its score (not by the allowlist): see
    `Incident.joinable`. Incidents started but not yet saved are found too (from the
    runtime's `fresh`), under the same rule, so that two events on one host processed at
    once make one incident.
    """

    name = "correlate"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        event = _event(work)
        window = rt.policy.correlation_window
        hosts = list(event.host.keys) if event.host is not None else []
        observables = list(event.observables)
        if rt.allowlist is not None:
            allowed = rt.allowlist.match_observables(event, work.now)
            observables = [o for o in observables if o not in allowed]
        start, end = event.time - window, event.time + window
        first_after = event.time - rt.policy.correlation_max_span
        async with rt.correlating:
            found = _fresh_match(rt, hosts, observables, start, end, first_after)
            if found is None:
                found = await _portal.maybe_await(
                    rt.store.find_open_incident(
                        hosts=hosts,
                        observables=observables,
                        start=start,
                        end=end,
                        first_after=first_after,
                    )
                )
            if found is None:
                incident = Incident(
                    id=rt.new_incident_id(work.now),
                    created_at=work.now,
                    updated_at=work.now,
                    events=(event,),
                )
                rt.fresh[incident.id] = incident
                work.incident_id = incident.id
                return "new incident"
        work.incident_id = found
        return f"joined {found}"


def _fresh_match(
    rt: Runtime,
    hosts: list[str],
    observables: list[Observable],
    start: datetime,
    end: datetime,
    first_after: datetime,
) -> str | None:
    best: Incident | None = None
    host_keys = set(hosts)
    observable_keys = {o.key for o in observables}
    for incident in rt.fresh.values():
        if not incident.joinable:
            continue
        events = incident.events
        if len(events) == 1:  # the usual fresh incident: its one event says it all
            only = events[0]
            first = last = only.time
            keys: tuple[str, ...] = () if only.host is None else only.host.keys
            seen: tuple[Observable, ...] = only.observables
        else:
            times = [e.time for e in events]
            first, last = min(times), max(times)
            keys = tuple(k for h in incident.hosts for k in h.keys)
            seen = incident.observables
        if last < start or first > end or first < first_after:
            continue
        shared = any(k in host_keys for k in keys) or any(o.key in observable_keys for o in seen)
        if shared and (
            best is None or (incident.updated_at, incident.id) > (best.updated_at, best.id)
        ):
            best = incident
    return None if best is None else best.id


class Enrich:
    """Every subject to every enricher that accepts it, concurrently, each within a timeout.

    A subject is not asked again of an enricher that already answered about it on this
    incident (a finding, or nothing found), nor once it failed `MAX_TRIES` times. An
    event that joins an incident brings its own subjects (its observables, its host
    unless another host of the incident describes it more fully, its user); the subjects
    of earlier events are not asked again, except those whose look-ups failed (until
    they succeed or run out of tries). An incident finished after a crash (no event) has
    all its subjects considered.
    """

    name = "enrich"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        incident = _incident(work)
        digest = rt.digests.of(incident)
        event = work.event
        retried: list[Subject] = []
        if event is None:
            subjects: tuple[Subject, ...] | list[Subject] = incident.subjects
        else:
            subjects = list(event.observables)
            if event.host is not None and digest.keeps(event.host):
                subjects.append(event.host)
            if event.user is not None:
                subjects.append(event.user)
            own = {_key(subject) for subject in subjects}
            retried = [s for s in digest.retries() if _key(s) not in own]
        pairs: list[tuple[Enricher[Any], Subject]] = []
        for subject in subjects:
            await self._pairs(subject, retry=False, digest=digest, pairs=pairs, work=work, rt=rt)
        for subject in retried:
            if not await self._pairs(
                subject, retry=True, digest=digest, pairs=pairs, work=work, rt=rt
            ):
                digest.settle(_key(subject))
        results = await _all([self._lookup(e, s, work, rt) for e, s in pairs])
        findings: list[Finding] = []
        failures: list[EnrichmentFailure] = []
        empty: list[EmptyLookup] = []
        for result in results:
            if isinstance(result, EnrichmentFailure):
                failures.append(result)
            elif isinstance(result, EmptyLookup):
                empty.append(result)
            else:
                findings.append(result)
        if findings:
            incident.findings = (*incident.findings, *findings)
        if failures:
            incident.failures = (*incident.failures, *failures)
        if empty:
            incident.empty_lookups = (*incident.empty_lookups, *empty)
        work.found += findings
        work.failed += failures
        work.empty += empty
        rt.counters["lookups"] += len(pairs)
        rt.counters["lookup_failures"] += len(failures)
        return (
            f"{len(pairs)} look-ups: {len(findings)} findings, {len(empty)} empty, "
            f"{len(failures)} failed"
        )

    async def _pairs(
        self,
        subject: Subject,
        *,
        retry: bool,
        digest: Digest,
        pairs: list[tuple[Enricher[Any], Subject]],
        work: Work,
        rt: Runtime,
    ) -> bool:
        """Add the look-ups of `subject` still to make; whether any may still be made.

        For a `retry` (a subject of an earlier event), only the enrichers that failed on
        it, or skipped it, are asked again.
        """
        if rt.allowlist is not None and rt.allowlist.match(subject, work.now) is not None:
            return False
        key = _key(subject)
        pending = False
        for enricher in rt.enrichers:
            pair = (enricher.name, key)
            tries = digest.tries.get(pair, 0)
            if (
                pair in digest.answered
                or tries >= MAX_TRIES
                or (retry and not tries and pair not in digest.skipped)
            ):
                continue
            pending = True
            try:
                answer: Any = enricher.accepts(subject)  # an async one too
                if inspect.isawaitable(answer):
                    answer = await _accepts(answer, rt)
                accepted = bool(answer)
            except (Exception, KeyboardInterrupt, SystemExit) as exc:
                log.warning(
                    "%s.accepts raised %s", enricher.name, type(exc).__name__, extra=_ids(work)
                )
                accepted = False
            if accepted:
                pairs.append((enricher, subject))
        return pending

    async def _lookup(
        self, enricher: Enricher[Any], subject: Subject, work: Work, rt: Runtime
    ) -> Finding | EnrichmentFailure | EmptyLookup:
        timeout = getattr(enricher, "timeout", None) or rt.limits.enrich_timeout
        kind, message = FailureKind.ERROR, ""
        async with rt.lookups:
            begin = time.perf_counter()
            try:
                result = await _portal.call(
                    enricher.enrich,
                    subject,
                    timeout=timeout,
                    executor=rt.executor,
                    owner=f"enrich.{enricher.name}",
                )
            except TimeoutError:
                kind, message = FailureKind.TIMEOUT, f"no answer within {timeout:g} s"
            except _portal.NoWorker as exc:
                kind, message = FailureKind.SKIPPED, f"not attempted: {exc}"
            except EnrichmentError as exc:
                kind = FailureKind.SKIPPED if exc.skipped else FailureKind.ERROR
                message = str(exc)
            except Exception as exc:
                message = _portal.describe(exc)
            else:
                rt.time(f"enrich.{enricher.name}", time.perf_counter() - begin)
                if result is None:
                    return EmptyLookup(enricher=enricher.name, subject=subject, at=work.now)
                if isinstance(result, _FINDINGS):
                    return attrs.evolve(
                        result,
                        subject=result.subject or subject,
                        fetched_at=result.fetched_at or work.now,
                    )
                message = f"returned {type(result).__name__}, not a finding"
        log.warning("%s failed on %s: %s", enricher.name, _key(subject), message, extra=_ids(work))
        return EnrichmentFailure(
            enricher=enricher.name, subject=subject, kind=kind, message=message, at=rt.clock()
        )


async def _all(coroutines: list[Coroutine[Any, Any, T]]) -> list[T]:
    """`asyncio.gather` of the coroutines; one (the usual case) is simply awaited."""
    if len(coroutines) == 1:
        return [await coroutines[0]]
    if not coroutines:
        return []
    return list(await asyncio.gather(*coroutines))


async def _accepts(answer: Any, rt: Runtime) -> Any:
    """An async `accepts`: awaited (within the look-up timeout: it should not do I/O)."""
    return await asyncio.wait_for(_portal.guarded(answer), rt.limits.enrich_timeout)


class Score:
    """The pure scorer, with the history the store knows.

    An observable's sightings are asked of the store once per incident, when the
    observable joins it (`Digest.sightings` keeps them): "seen before" means before it
    was reported here, and an incident that keeps growing asks for its new observables
    only, not for all it holds. Earlier incidents on its hosts are asked for every time
    (their ages, and a repeat within the policy's window, depend on the moment).
    """

    name = "score"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        incident = _incident(work)
        digest = rt.digests.of(incident)
        known = digest.sightings
        asked = [o for key, o in digest.observables.items() if key not in known]
        found = await _portal.maybe_await(
            rt.store.history(
                observables=asked,
                hosts=digest.host_keys(),
                since=work.now - rt.limits.history_lookback,
                exclude=incident.id,
            )
        )
        counts = found.counts
        for observable in asked:
            known[observable.key] = counts.get(observable.key, 0)
        observables = digest.observables
        work.history = History(
            sightings={observables[key]: n for key, n in known.items() if n},
            incidents=found.incidents,
        )
        try:
            incident.assessment = assess(
                incident, incident.findings, work.history, rt.policy, work.now
            )
        except ScoringError as exc:
            log.exception("scoring failed", extra=_ids(work))
            work.history = None
            work.outcome = "failed"
            return f"failed: {exc}"
        a = incident.assessment
        return f"threat {a.threat}, machine {a.machine}, user {a.user}, total {a.total}"


class Decide:
    """The policy's decision; actions that need a person become pending approvals."""

    name = "decide"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        incident = _incident(work)
        if work.history is None:
            work.outcome = "skipped"
            return "skipped: no assessment"
        decision = rt.policy.decide(incident.assessment, history=work.history)
        incident.decision = decision
        asked = {a.action.name for a in incident.approvals}
        new = [
            Approval(
                action=action,
                requested_at=work.now,
                expires_at=None
                if action.approval_timeout is None
                else work.now + action.approval_timeout,
            )
            for action in decision.actions
            if action.requires_approval and action.name not in asked
        ]
        incident.approvals = (*incident.approvals, *new)
        if incident.status is not IncidentStatus.CLOSED:
            lowest = rt.policy.decision.levels[0]
            if decision.level == lowest.name and not decision.actions:
                incident.status = IncidentStatus.SUPPRESSED
                incident.suppressed_by = f"score {incident.assessment.total}: {decision.reason}"
                rt.counters["suppressed"] += 1
            else:
                incident.status = IncidentStatus.OPEN
                incident.suppressed_by = None
        pending = f"; {len(new)} awaiting approval" if new else ""
        return f"{decision.level}: {', '.join(decision.action_names) or 'no actions'}{pending}"


class Respond:
    """Each action to its responders, once per (incident, action, responder)."""

    name = "respond"

    async def __call__(self, work: Work, rt: Runtime) -> str:
        incident = _incident(work)
        approved = {
            a.action.name for a in incident.approvals if a.status is ApprovalStatus.APPROVED
        }
        actions = [
            a for a in incident.decision.actions if not a.requires_approval or a.name in approved
        ]
        if not actions:
            return "nothing to do"
        return await respond(incident, actions, rt, work)


async def record(work: Work, rt: Runtime, incident: Incident) -> Incident:
    """The last stage: save the incident with the audit trail of this event's journey.

    Its own audit entry is written with the record, so it is not timed like the others.
    The save names the revision the incident was read at: `ConflictError` if another
    save came in between (the caller reloads and does its work again; the incident and
    the journey's audit are left as they were).
    """
    incident.updated_at = max(incident.updated_at, work.now)
    entry = StageRecord(
        stage="record",
        started_at=rt.clock(),
        duration=timedelta(0),
        outcome="ok",
        detail="saved",
        event_id=_ids(work)["event_id"],
    )
    before = incident.audit
    incident.audit = (*before, *work.audit, entry)
    try:
        revision = await rt.saver.save(incident, finished=True, expected=incident.revision)
    except BaseException:
        incident.audit = before
        raise
    if isinstance(revision, int):
        incident.revision = revision
    for step in work.audit:
        rt.time(f"stage.{step.stage}", step.duration.total_seconds())
    work.audit.clear()
    rt.fresh.pop(incident.id, None)
    return incident


def carry_over(latest: Incident, work: Work) -> Incident:
    """The stored incident as another saved it, with what this journey found and did.

    For a save that conflicted: the journey's event, its look-ups (so that they are not
    made again) and the responses it made (so that they are not sent again) join the
    latest state, and the stages after correlation run again on it.
    """
    event = work.event
    if event is not None and all(e.key != event.key for e in latest.events):
        latest.events = (*latest.events, event)
    have = {(f.source, _key(f.subject)) for f in latest.findings}
    latest.findings = (
        *latest.findings,
        *(f for f in work.found if (f.source, _key(f.subject)) not in have),
    )
    latest.failures = (*latest.failures, *(f for f in work.failed if f not in latest.failures))
    latest.empty_lookups = (
        *latest.empty_lookups,
        *(e for e in work.empty if e not in latest.empty_lookups),
    )
    if work.outcomes:
        kept = tuple(r for r in latest.responses if r.key not in work.outcomes)
        latest.responses = (*kept, *work.outcomes.values())
    return latest


def _event(work: Work) -> Event:
    assert work.event is not None, "validate runs first"  # noqa: S101 - internal invariant
    return work.event


def _incident(work: Work) -> Incident:
    assert work.incident is not None, "correlate runs first"  # noqa: S101 - internal invariant
    return work.incident


_key: Final = subject_key


BEFORE: Final[tuple[Stage, ...]] = (Validate(), Dedup(), Allowlisting(), Correlate())
"""The stages that find the event's incident."""
AFTER: Final[tuple[Stage, ...]] = (Enrich(), Score(), Decide(), Respond())
"""The stages that work on the incident, under its lock; `record` follows them."""
