"""The `fido` commands. Each takes the parsed arguments and an output stream, returns a code."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fido._cli.output import describe_incident, print_json, short_time, table, why
from fido._config import Config, build_adapter, load_config
from fido._errors import ApprovalError, ConfigurationError, FidoError
from fido._incident import Incident, IncidentStatus
from fido._portal import call, maybe_await, run_sync
from fido.scoring._policy import Policy
from fido.scoring._replay import replay
from fido.scoring._toml import parse_duration

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Coroutine

    from fido._pipeline import Pipeline

__all__ = ["COMMANDS"]

OK, FAILED = 0, 1


def _config(args: argparse.Namespace) -> Config:
    path = getattr(args, "config", None) or os.environ.get("FIDO_CONFIG") or "fido.toml"
    return load_config(path)


def _time(text: str | None) -> datetime | None:
    """An ISO date/time, or an age such as `2h` or `7d` (that long ago)."""
    if text is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"expected a time (2026-11-28T09:00) or an age (2h, 7d), not {text!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# -- run, process ---------------------------------------------------------------------------


class _Progress:
    """The live line of `fido run` (only on a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, snapshot: dict[str, Any]) -> None:
        if not self.live:
            return
        failing = f" | failing: {', '.join(snapshot['failing'])}" if snapshot["failing"] else ""
        line = (
            f"processed {snapshot['processed']} | suppressed {snapshot['suppressed']} | "
            f"duplicates {snapshot['duplicates']} | dead letters "
            f"{snapshot['dead_lettered']} | responses {snapshot['responses']} | queued "
            f"{snapshot['queued']} | in flight {snapshot['in_flight']}{failing}"
        )
        self.stream.write("\r" + line[:160].ljust(160))
        self.stream.flush()

    def end(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def _incident_rows(incidents: list[Incident]) -> list[list[object]]:
    return [
        [
            i.id,
            short_time(i.updated_at),
            i.status.value,
            i.assessment.total,
            i.decision.level or "-",
            ", ".join(i.decision.action_names) or "-",
            i.title,
        ]
        for i in incidents
    ]


def _report(pipeline: Pipeline, incidents: list[Incident], out: TextIO) -> None:
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
            print(f"      recommendation: {incident.decision.recommendation}", file=out)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """`fido run CONFIG`."""
    config = load_config(args.config)
    exit_when_idle = args.once or config.run.exit_when_idle
    started = datetime.now(UTC)
    progress = _Progress(sys.stderr) if not args.no_progress else None
    with config.build() as pipeline:
        if config.run.opentelemetry:
            pipeline.export_metrics()
        summary = pipeline.run(
            exit_when_idle=exit_when_idle,
            idle_interval=config.run.idle_interval,
            on_progress=progress,
        )
        if progress is not None:
            progress.end()
        touched = list(run_sync(lambda: maybe_await(pipeline.store.incidents(since=started))))
        if args.json:
            print_json(
                {
                    "summary": {
                        "reason": summary.reason,
                        "resumed": summary.resumed,
                        "stats": summary.stats,
                        "detectors": [vars_of(d) for d in summary.detectors],
                    },
                    "incidents": [i.to_dict() for i in touched],
                },
                out,
            )
            return OK
        print(summary.table(), file=out)
        print("", file=out)
        _report(pipeline, touched[:20], out)
        if len(touched) > 20:
            print(f"\n... and {len(touched) - 20} more (fido incidents --since ...)", file=out)
    return OK


def vars_of(state: Any) -> dict[str, Any]:
    """A detector state as a dict."""
    import attrs

    return attrs.asdict(state)


def process(args: argparse.Namespace, out: TextIO) -> int:
    """`fido process CONFIG ALERTS.jsonl`."""
    config = load_config(args.config)
    path = Path(args.alerts)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"fido: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return FAILED
    with config.build() as pipeline:
        if args.detector:
            incidents = pipeline.process_payload(args.detector, text)
            letters = pipeline.dead_letters()
            invalid = len(letters)
            for letter in reversed(letters):  # oldest first, as in the file
                print(f"fido: {path}: {letter.reason}", file=sys.stderr)
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
                    print(f"fido: {path}:{number}: not JSON ({exc.msg})", file=sys.stderr)
            results = pipeline.process_many(items, return_exceptions=True)
            incidents = []
            for result in results:
                if isinstance(result, Incident):
                    incidents.append(result)
                else:
                    invalid += 1
                    print(f"fido: invalid alert: {result}", file=sys.stderr)
        unique = list({i.id: i for i in incidents}.values())
        if args.json:
            for incident in unique:
                print_json(incident.to_dict(), out)
        else:
            _report(pipeline, unique, out)
            print(
                f"\n{len(incidents)} alerts processed into {len(unique)} incidents; "
                f"{invalid} invalid.",
                file=out,
            )
    return FAILED if invalid else OK


# -- reading the store -----------------------------------------------------------------------


def incidents(args: argparse.Namespace, out: TextIO) -> int:
    """`fido incidents`."""
    config = _config(args)
    store = config.open_store()
    try:
        status = IncidentStatus(args.status) if args.status else None
        found = list(
            run_sync(
                lambda: maybe_await(
                    store.incidents(
                        status=status,
                        host=args.host.casefold() if args.host else None,
                        since=_time(args.since),
                        until=_time(args.until),
                        min_total=args.min_score,
                        limit=args.limit,
                    )
                )
            )
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
    config = _config(args)
    store = config.open_store()
    try:
        incident = run_sync(lambda: maybe_await(store.get_incident(args.id)))
    finally:
        store.close()
    if incident is None:
        print(f"fido: no incident {args.id!r}", file=sys.stderr)
        return FAILED
    if args.json:
        print_json(incident.to_dict(), out)
    else:
        describe_incident(incident, out)
    return OK


def pending(args: argparse.Namespace, out: TextIO) -> int:
    """`fido pending`."""
    with _config(args).build() as pipeline:
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
    """`fido approve` and `fido reject`."""
    with _config(args).build() as pipeline:
        try:
            if args.command == "approve":
                incident = pipeline.approve(args.id, args.action, by=args.by, note=args.note)
            else:
                incident = pipeline.reject(args.id, args.action, by=args.by, note=args.note)
        except ApprovalError as exc:
            print(f"fido: {exc}", file=sys.stderr)
            return FAILED
    if args.json:
        print_json(incident.to_dict(), out)
        return OK
    done = "approved and carried out" if args.command == "approve" else "rejected"
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
    config = _config(args)
    policy = Policy.from_toml(Path(args.policy), base=config.policy)
    store = config.open_store()
    try:
        stored = list(
            run_sync(
                lambda: maybe_await(store.incidents(since=_time(args.since), limit=args.limit))
            )
        )
    finally:
        store.close()
    comparison = replay(stored, policy, lookback=timedelta(days=30))
    if args.json:
        print_json(
            {
                "policy": comparison.policy,
                "version": comparison.policy_version,
                "incidents": len(comparison.changes),
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
        print(comparison.summary(), file=out)
        differences = config.policy.diff(policy)
        if differences:
            print("\nPolicy changes:", file=out)
            for key, before, after in differences:
                print(f"  {key}: {before!r} -> {after!r}", file=out)
    return OK


def check(args: argparse.Namespace, out: TextIO) -> int:
    """`fido check CONFIG`."""
    config = load_config(args.config)
    rows: list[list[object]] = []
    failed = False
    kind, path = config.store
    try:
        store = config.open_store()
        store.close()
        rows.append(["store", kind, "ok", str(path) if path else "in memory"])
    except FidoError as exc:
        failed = True
        rows.append(["store", kind, "FAILED", str(exc)])
    rows.append(["policy", config.policy.name, "ok", f"version {config.policy.version}"])
    if config.allowlist is not None:
        expired = len(config.allowlist.expired(datetime.now(UTC)))
        rows.append(["allowlist", "-", "ok", f"{len(config.allowlist)} entries, {expired} expired"])
    for spec in (*config.detectors, *config.enrichers, *config.responders):
        try:
            adapter = build_adapter(spec, config)
        except FidoError as exc:
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
        print_json(
            [dict(zip(("part", "name", "status", "detail"), r, strict=True)) for r in rows], out
        )
    else:
        table(["part", "name", "status", "detail"], rows, out, widths={3: 90})
        print(f"\n{config.path}: {'problems found' if failed else 'ready'}", file=out)
    return FAILED if failed else OK


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
    config = _config(args)
    store = config.open_store()
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
