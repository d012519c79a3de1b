"""The `fido` commands. Each takes the parsed arguments and an output stream, returns a code.

Commands that only read the store (`incidents`, `show`, `dead-letters`, `pending`,
`replay`, `reject`) load the configuration without its adapters, so they need none of
the adapters' secrets, and never create a store: a mistyped path is "no store at PATH".
`approve` builds the responders (it carries the action out), and only them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from fido._cli.output import (
    LiveLine,
    describe_incident,
    json_text,
    print_json,
    short_time,
    table,
    warn,
    why,
)
from fido._config import Config, build_adapter, load_config
from fido._errors import ApprovalError, ConfigurationError, FidoError
from fido._incident import ApprovalStatus, Incident, IncidentStatus
from fido._logging import printable
from fido._portal import call, maybe_await, run_sync
from fido.scoring._policy import Policy
from fido.scoring._replay import replay
from fido.scoring._toml import parse_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

    from fido._pipeline import Pipeline

__all__ = ["COMMANDS", "CONFIG_ERROR", "STORE_BUSY", "positive", "when"]

OK, FAILED, CONFIG_ERROR, STORE_BUSY = 0, 1, 3, 4
SHOWN: Final = 20
"""How many of a run's incidents `fido run` prints (the rest: `fido incidents --since`)."""
PAGE: Final = 200
"""Incidents read from the store at a time, for `fido run --json`."""


# -- arguments --------------------------------------------------------------------------------


def when(text: str) -> datetime:
    """An ISO date/time (UTC unless it says), or an age such as `2h` or `7d` (that long ago).

    Raises:
        argparse.ArgumentTypeError: Neither (a usage error: exit code 2).
    """
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a time (2026-11-28T09:00) or an age (2h, 7d), not {text!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def positive(text: str) -> int:
    """A whole number of at least 1 (for `--limit`).

    Raises:
        argparse.ArgumentTypeError: Not one (exit code 2).
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def _config(args: argparse.Namespace, *, adapters: bool = False) -> Config:
    """The configuration (`-c`, else $FIDO_CONFIG, else ./fido.toml), its log level applied.

    Without `adapters`, the adapters' types, options and secrets are not resolved: the
    commands that only read the store need none of them.
    """
    path = getattr(args, "config", None) or os.environ.get("FIDO_CONFIG") or "fido.toml"
    config = load_config(path, adapters=adapters)
    if getattr(args, "verbosity", None) is None:  # no -v or -q: the file's [logging] level
        logging.getLogger("fido").setLevel(config.log_level.upper())
    return config


def _store(config: Config) -> Any:
    """The configured store, which must exist (a read-only command never creates one)."""
    return config.open_store(create=False)


@contextlib.contextmanager
def _pipeline(config: Config, *, responders: bool) -> Iterator[Pipeline]:
    """A pipeline on the existing store, without detectors and enrichers.

    `responders`: build the configured responders (to carry out an approved action);
    otherwise there are none, and no adapter secret is needed.
    """
    store = _store(config)
    try:
        extra: dict[str, Any] = {} if responders else {"responders": {}}
        pipeline = config.build(detectors=[], enrichers=[], store=store, **extra)
    except BaseException:
        store.close()
        raise
    with pipeline:
        yield pipeline


# -- run, process ---------------------------------------------------------------------------


def _progress(line: LiveLine) -> Callable[[dict[str, Any]], None]:
    def show(snapshot: dict[str, Any]) -> None:
        failing = f" | failing: {', '.join(snapshot['failing'])}" if snapshot["failing"] else ""
        line.show(
            f"processed {snapshot['processed']} | suppressed {snapshot['suppressed']} | "
            f"duplicates {snapshot['duplicates']} | dead letters "
            f"{snapshot['dead_lettered']} | responses {snapshot['responses']} | queued "
            f"{snapshot['queued']} | in flight {snapshot['in_flight']}{failing}"
        )

    return show


def _actions(incident: Incident) -> str:
    """The decided actions, each marked if it waits for (or did not get) an approval."""
    states = {a.action.name: a.status for a in incident.approvals}
    shown = []
    for name in incident.decision.action_names:
        status = states.get(name)
        if status is ApprovalStatus.PENDING:
            shown.append(f"{name} (awaiting approval)")
        elif status in (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED):
            shown.append(f"{name} ({status.value})")
        else:
            shown.append(name)
    return ", ".join(shown) or "-"


def _incident_rows(incidents: list[Incident]) -> list[list[object]]:
    return [
        [
            i.id,
            short_time(i.updated_at),
            i.status.value,
            i.assessment.total,
            i.decision.level or "-",
            _actions(i),
            i.title,
        ]
        for i in incidents
    ]


def _report(incidents: list[Incident], out: TextIO) -> None:
    if not incidents:
        print("No incidents.", file=out)
        return
    table(
        ["incident", "updated (UTC)", "status", "score", "level", "actions", "title"],
        _incident_rows(incidents),
        out,
        widths={6: 60},
    )
    print("\nWhy:", file=out)
    for incident in incidents:
        print(f"  {incident.id}: {why(incident) or '-'}", file=out)
        if incident.decision.recommendation:
            recommendation = printable(incident.decision.recommendation, newlines=False)
            print(f"      recommendation: {recommendation}", file=out)


def _incidents(store: Any, **filters: Any) -> list[Incident]:
    """`store.incidents(**filters)`, whether the store is sync or async."""
    return list(run_sync(lambda: maybe_await(store.incidents(**filters))))


def _pages(store: Any, since: datetime) -> Iterator[Incident]:
    """Every incident updated since `since`, newest first, read `PAGE` at a time.

    The store lists by `updated_at` (inclusive bounds), newest first, then by id: each
    page starts at the last one's oldest time, leaving out what was already given.
    """
    until: datetime | None = None
    given: set[str] = set()  # the ids already given whose time is `until`
    while True:
        asked = PAGE + len(given)
        batch = _incidents(store, since=since, until=until, limit=asked)
        for incident in batch:
            if incident.id not in given:
                yield incident
        if len(batch) < asked:
            return
        until = batch[-1].updated_at
        given = {i.id for i in batch if i.updated_at == until}


def _run_json(summary: Any, store: Any, started: datetime, out: TextIO) -> None:
    """One JSON object, the summary then the run's incidents, written as they are read."""
    head = json_text(
        {
            "summary": {
                "reason": summary.reason,
                "resumed": summary.resumed,
                "stats": summary.stats,
                "detectors": [vars_of(d) for d in summary.detectors],
            }
        }
    )
    out.write(head[:-1] + ', "incidents": [')
    for number, incident in enumerate(_pages(store, started)):
        out.write((", " if number else "") + json_text(incident.to_dict()))
    out.write("]}\n")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """`fido run CONFIG`."""
    config = _config(args, adapters=True)
    exit_when_idle = args.once or config.run.exit_when_idle
    started = datetime.now(UTC)
    live = LiveLine(sys.stderr) if not args.no_progress and sys.stderr.isatty() else None
    with config.build() as pipeline:
        if config.run.opentelemetry:
            pipeline.export_metrics()
        with live if live is not None else contextlib.nullcontext():
            summary = pipeline.run(
                exit_when_idle=exit_when_idle,
                idle_interval=config.run.idle_interval,
                on_progress=None if live is None else _progress(live),
                wait_for_store=args.wait_for_store,
            )
        store = pipeline.store
        if args.json:
            _run_json(summary, store, started, out)
            return _run_status(summary)
        # only what is printed is read: weeks of running may have touched many thousands
        shown = _incidents(store, since=started, limit=SHOWN + 1)
        print(printable(summary.table()), file=out)
        print("", file=out)
        _report(shown[:SHOWN], out)
        if len(shown) > SHOWN:
            print(
                f"\n... and more: fido incidents --since {started:%Y-%m-%dT%H:%M:%S} "
                "--limit N lists them",
                file=out,
            )
    return _run_status(summary)


def _run_status(summary: Any) -> int:
    """`fido run`'s exit code: 1 if detectors were failing at the end, 4 if the store was lost."""
    if summary.reason == "lost":
        warn("fido: another fido run took the store over; this one stopped")
        return STORE_BUSY
    if summary.failed_detectors:
        warn(f"fido: detectors failing at the end: {', '.join(summary.failed_detectors)}")
        return FAILED
    return OK


def vars_of(state: Any) -> dict[str, Any]:
    """A detector state as a dict."""
    import attrs

    return attrs.asdict(state)


def process(args: argparse.Namespace, out: TextIO) -> int:
    """`fido process CONFIG ALERTS.jsonl`."""
    config = _config(args, adapters=True)
    path = Path(args.alerts)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        warn(f"fido: cannot read {path}: {exc.strerror}")
        return FAILED
    with config.build() as pipeline:
        if args.detector:
            before = pipeline.stats()["counters"].get("dead_lettered", 0)
            incidents = pipeline.process_payload(args.detector, text)
            # this batch's dead letters only: the store also holds earlier runs' ones
            new = pipeline.stats()["counters"].get("dead_lettered", 0) - before
            letters = pipeline.dead_letters(limit=new) if new > 0 else []
            invalid = len(letters)
            for letter in reversed(letters):  # oldest first, as in the file
                warn(f"fido: {path}: {letter.reason}")
        else:
            items: list[Any] = []
            invalid = 0
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    invalid += 1
                    warn(f"fido: {path}:{number}: not JSON ({exc.msg})")
            results = pipeline.process_many(items, return_exceptions=True)
            incidents = []
            for result in results:
                if isinstance(result, Incident):
                    incidents.append(result)
                else:
                    invalid += 1
                    warn(f"fido: invalid alert: {result}")
        unique = list({i.id: i for i in incidents}.values())
        if args.json:
            for incident in unique:
                print_json(incident.to_dict(), out)
        else:
            _report(unique, out)
            print(
                f"\n{len(incidents)} alerts processed into {len(unique)} incidents; "
                f"{invalid} invalid.",
                file=out,
            )
    return FAILED if invalid else OK


# -- reading the store -----------------------------------------------------------------------


def incidents(args: argparse.Namespace, out: TextIO) -> int:
    """`fido incidents`."""
    store = _store(_config(args))
    try:
        status = IncidentStatus(args.status) if args.status else None
        found = _incidents(
            store,
            status=status,
            host=args.host.casefold() if args.host else None,
            since=args.since,
            until=args.until,
            min_total=args.min_score,
            limit=args.limit,
        )
    finally:
        store.close()
    if args.json:
        for incident in found:
            print_json(incident.to_dict(), out)
        return OK
    if not found:
        print("No incidents match.", file=out)
        return OK
    table(
        ["incident", "updated (UTC)", "status", "score", "level", "actions", "title"],
        _incident_rows(found),
        out,
        widths={6: 60},
    )
    return OK


def show(args: argparse.Namespace, out: TextIO) -> int:
    """`fido show ID`."""
    store = _store(_config(args))
    try:
        incident = run_sync(lambda: maybe_await(store.get_incident(args.id)))
    finally:
        store.close()
    if incident is None:
        warn(f"fido: no incident {args.id!r}")
        return FAILED
    if args.json:
        print_json(incident.to_dict(), out)
    else:
        describe_incident(incident, out)
    return OK


def pending(args: argparse.Namespace, out: TextIO) -> int:
    """`fido pending`."""
    with _pipeline(_config(args), responders=False) as pipeline:
        waiting = pipeline.pending_approvals()
    if args.json:
        for incident, approval in waiting:
            print_json(
                {
                    "incident": incident.id,
                    "action": approval.action.name,
                    "requested_at": approval.requested_at,
                    "expires_at": approval.expires_at,
                    "score": incident.assessment.total,
                    "title": incident.title,
                },
                out,
            )
        return OK
    if not waiting:
        print("No approvals are waiting.", file=out)
        return OK
    table(
        ["incident", "action", "requested (UTC)", "expires (UTC)", "score", "title"],
        [
            [
                i.id,
                a.action.name,
                short_time(a.requested_at),
                short_time(a.expires_at),
                i.assessment.total,
                i.title,
            ]
            for i, a in waiting
        ],
        out,
        widths={5: 60},
    )
    return OK


def answer(args: argparse.Namespace, out: TextIO) -> int:
    """`fido approve` and `fido reject` (only `approve` builds the responders)."""
    approving = args.command == "approve"
    with _pipeline(_config(args), responders=approving) as pipeline:
        try:
            if approving:
                incident = pipeline.approve(args.id, args.action, by=args.by, note=args.note)
            else:
                incident = pipeline.reject(args.id, args.action, by=args.by, note=args.note)
        except ApprovalError as exc:
            warn(f"fido: {exc}")
            return FAILED
    if args.json:
        print_json(incident.to_dict(), out)
        return OK
    done = "approved and carried out" if approving else "rejected"
    print(f"{args.action} on {incident.id}: {done} by {args.by}.", file=out)
    for response in incident.responses:
        if response.action == args.action:
            print(
                f"  {response.responder}: {response.status.value} {response.detail}".rstrip(),
                file=out,
            )
    return OK


def replay_command(args: argparse.Namespace, out: TextIO) -> int:
    """`fido replay --policy NEW.toml`."""
    import attrs

    config = _config(args)
    policy = Policy.from_toml(Path(args.policy), base=config.policy)
    store = _store(config)
    try:
        stored = _incidents(store, since=args.since, limit=args.limit)
    finally:
        store.close()
    # Suppressed (allowlisted) incidents are replayed too, so that the history of the
    # others is what it was; but a policy does not lift an allowlist: they stay as they are.
    suppressed = {i.id for i in stored if i.status is IncidentStatus.SUPPRESSED}
    full = replay(stored, policy, lookback=config.limits.history_lookback)
    comparison = attrs.evolve(
        full, changes=tuple(c for c in full.changes if c.incident_id not in suppressed)
    )
    if args.json:
        print_json(
            {
                "policy": comparison.policy,
                "version": comparison.policy_version,
                "incidents": len(comparison.changes),
                "suppressed": len(suppressed),
                "changed": [
                    {
                        "incident": c.incident_id,
                        "before": {
                            "level": c.before_decision.level,
                            "total": c.before.total,
                            "actions": c.before_decision.action_names,
                        },
                        "after": {
                            "level": c.after_decision.level,
                            "total": c.after.total,
                            "actions": c.after_decision.action_names,
                        },
                        "reasons": c.reasons,
                    }
                    for c in comparison.changed
                ],
            },
            out,
        )
    else:
        print(printable(comparison.summary()), file=out)
        if suppressed:
            print(
                f"{len(suppressed)} suppressed (allowlisted) incidents stay suppressed: "
                "a policy does not change an allowlist.",
                file=out,
            )
        differences = config.policy.diff(policy)
        if differences:
            print("\nPolicy changes:", file=out)
            for key, before, after in differences:
                print(printable(f"  {key}: {before!r} -> {after!r}"), file=out)
    return OK


def _check_store(config: Config) -> tuple[list[object], bool]:
    """The store's row for `fido check`, and whether it is wrong; it creates nothing."""
    kind, path = config.store
    if path is not None and not path.exists():
        folder = path.parent
        if folder.is_dir() and os.access(folder, os.W_OK):
            return ["store", kind, "ok", f"no store yet at {path} (fido run creates it)"], False
        why = "does not exist" if not folder.is_dir() else "is not writable"
        return ["store", kind, "FAILED", f"cannot create {path}: {folder} {why}"], True
    try:
        store = config.open_store()
        store.close()
    except FidoError as exc:
        return ["store", kind, "FAILED", str(exc)], True
    return ["store", kind, "ok", str(path) if path else "in memory"], False


def check(args: argparse.Namespace, out: TextIO) -> int:
    """`fido check CONFIG`.

    Exit code: 3 if the configuration is wrong (what `fido run` would refuse: the store,
    an adapter that refuses its options), 1 if a connection test failed, else 0.
    """
    config = _config(args, adapters=True)
    row, wrong = _check_store(config)
    rows: list[list[object]] = [row]
    failed = False
    rows.append(["policy", config.policy.name, "ok", f"version {config.policy.version}"])
    if config.allowlist is not None:
        expired = len(config.allowlist.expired(datetime.now(UTC)))
        rows.append(["allowlist", "-", "ok", f"{len(config.allowlist)} entries, {expired} expired"])
    for spec in (*config.detectors, *config.enrichers, *config.responders):
        try:
            adapter = build_adapter(spec, config)
        except FidoError as exc:
            wrong = wrong or isinstance(exc, ConfigurationError)
            failed = True
            rows.append([spec.kind, spec.name, "FAILED", str(exc)])
            continue
        probe = getattr(adapter, "acheck", None) or getattr(adapter, "check", None)
        if args.offline or probe is None:
            note = (
                "built; connectivity not tested"
                if probe is not None
                else "built; this adapter has no connectivity check"
            )
            rows.append([spec.kind, spec.name, "ok", note])
            probe = None
        try:
            # the probe and the close on one loop: an HTTP adapter's connections belong to it
            detail = run_sync(_probe_and_close(adapter, probe, args.timeout))
            if probe is not None:
                rows.append([spec.kind, spec.name, "ok", detail or "reachable"])
        except Exception as exc:
            failed = True
            message = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            rows.append([spec.kind, spec.name, "FAILED", message])
    if args.json:
        for r in rows:
            print_json(dict(zip(("part", "name", "status", "detail"), r, strict=True)), out)
    else:
        table(["part", "name", "status", "detail"], rows, out, widths={3: 90})
        verdict = "configuration errors" if wrong else "problems found" if failed else "ready"
        print(f"\n{config.path}: {verdict}", file=out)
    return CONFIG_ERROR if wrong else FAILED if failed else OK


def _probe_and_close(
    adapter: Any, probe: Any, timeout: float
) -> Callable[[], Coroutine[Any, Any, Any]]:
    async def invoke() -> Any:
        try:
            return None if probe is None else await call(probe, timeout=timeout)
        finally:
            closer = getattr(adapter, "aclose", None) or getattr(adapter, "close", None)
            if callable(closer):
                await call(closer, timeout=timeout)

    return invoke


def dead_letters(args: argparse.Namespace, out: TextIO) -> int:
    """`fido dead-letters`."""
    store = _store(_config(args))
    try:
        letters = list(run_sync(lambda: maybe_await(store.dead_letters(limit=args.limit))))
    finally:
        store.close()
    if args.json:
        for letter in letters:
            print_json(letter.to_dict(), out)
        return OK
    if not letters:
        print("No dead letters.", file=out)
        return OK
    table(
        ["at (UTC)", "detector", "event", "reason"],
        [[short_time(d.at), d.detector or "-", d.event_id or "-", d.reason] for d in letters],
        out,
        widths={2: 40, 3: 100},
    )
    return OK


COMMANDS = {
    "run": run,
    "process": process,
    "incidents": incidents,
    "show": show,
    "pending": pending,
    "approve": answer,
    "reject": answer,
    "replay": replay_command,
    "check": check,
    "dead-letters": dead_letters,
}
