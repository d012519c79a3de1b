"""The command line through its real entry point (`fido`, in a subprocess) and `main()`."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fido import Observable
from fido._cli import main
from tests.factories import event

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).parents[1]
FIDO = str(Path(sys.executable).parent / "fido")


def quickstart(tmp_path: Path) -> Path:
    """A copy of the quickstart, so that the test writes nothing in the repository."""
    shutil.copytree(
        ROOT / "examples" / "quickstart",
        tmp_path / "quickstart",
        ignore=shutil.ignore_patterns("fido.sqlite3*", "actions.jsonl"),  # a local run's
    )
    config = tmp_path / "quickstart.toml"
    shutil.copy(ROOT / "examples" / "quickstart.toml", config)
    return config


def fido(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command
        [FIDO, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=cwd,
    )


def run_main(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_run_the_quickstart_prints_what_was_decided_and_why(tmp_path: Path) -> None:
    config = quickstart(tmp_path)
    result = fido("run", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "stopped by idle" in out
    # The EDR alert on ws-042 and the Suricata alert on its address 10.1.2.3 make one
    # incident, titled after whichever of the two detectors was polled first.
    titles = ("ET MALWARE Observed Malicious SSL Cert (Loader CnC)", "Malicious file executed")
    assert sum(title in out for title in titles) == 1
    assert "contain" in out
    assert "Why:" in out
    assert "recommendation: re-image" in out
    assert "allowlisted" in out
    actions = (tmp_path / "quickstart" / "actions.jsonl").read_text().splitlines()
    assert actions
    # Every indicator is written defanged. Which observables an incident holds when it is
    # notified depends on which detector was polled first (the EDR alert alone has only a
    # hash and a file name, which have nothing to defang), so check each one.
    observables = [o for line in actions for o in json.loads(line)["observables"]]
    assert any("[.]" in o for o in observables)
    assert all(Observable.parse(o).defanged() == o for o in observables)
    # a second run finds nothing new, and sends nothing again
    again = fido("run", str(config), "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["incidents"] == []
    assert (tmp_path / "quickstart" / "actions.jsonl").read_text().splitlines() == actions


def test_query_commands_on_the_quickstart_store(tmp_path: Path) -> None:
    config = str(quickstart(tmp_path))
    assert fido("run", config, "--no-progress").returncode == 0
    listed = fido("incidents", "-c", config, "--json")
    assert listed.returncode == 0, listed.stderr
    incidents = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(incidents) == 4
    edr = next(i for i in incidents if any(e["id"] == "edr-7f3c2a" for e in i["events"]))
    assert {e["detector"] for e in edr["events"]} == {"edr", "suricata"}
    contain = next(i for i in incidents if i["decision"]["level"] == "contain")
    shown = fido("show", contain["id"], "-c", config)
    assert shown.returncode == 0
    assert f"Incident {contain['id']}" in shown.stdout
    assert "Total 100/100" in shown.stdout
    assert "Audit trail:" in shown.stdout
    table = fido("incidents", "-c", config, "--min-score", "60", "--status", "open")
    assert "contain" in table.stdout
    assert "allowlisted" not in table.stdout
    pending = fido("pending", "-c", config, "--json")
    waiting = [json.loads(line) for line in pending.stdout.splitlines()]
    assert {w["action"] for w in waiting} == {"contain"}
    target = waiting[0]["incident"]
    approved = fido(
        "approve", target, "contain", "--by", "alice", "--note", "confirmed", "-c", config
    )
    assert approved.returncode == 0, approved.stderr
    assert "approved and carried out by alice" in approved.stdout
    twice = fido("approve", target, "contain", "--by", "bob", "-c", config)
    assert twice.returncode == 1
    assert "already approved by alice" in twice.stderr
    letters = fido("dead-letters", "-c", config)
    assert "not JSON" in letters.stdout
    missing = fido("show", "inc-nope", "-c", config)
    assert missing.returncode == 1


def test_replay_with_a_new_policy(tmp_path: Path) -> None:
    config = str(quickstart(tmp_path))
    assert fido("run", config, "--no-progress").returncode == 0
    policy = tmp_path / "quiet.toml"
    policy.write_text(
        '[policy]\nname = "quiet"\nversion = "2"\n[threat.verdicts]\nmalicious = 20\n'
    )
    result = fido("replay", "--policy", str(policy), "-c", config)
    assert result.returncode == 0, result.stderr
    assert "under policy quiet 2:" in result.stdout
    assert "threat.verdicts.malicious: 50 -> 20" in result.stdout
    as_json = json.loads(fido("replay", "--policy", str(policy), "-c", config, "--json").stdout)
    assert as_json["policy"] == "quiet"


def test_process_a_batch(tmp_path: Path) -> None:
    config = quickstart(tmp_path)
    alerts = tmp_path / "batch.jsonl"
    alerts.write_text(
        json.dumps(event(id="b1").to_dict()) + "\n{broken\n" + json.dumps({"detector": "x"}) + "\n"
    )
    result = fido("process", str(config), str(alerts))
    assert result.returncode == 1
    assert "1 alerts processed into 1 incidents; 2 invalid." in result.stdout
    eve = tmp_path / "quickstart" / "eve.json"
    parsed = fido("process", str(config), str(eve), "--detector", "suricata", "--json")
    assert parsed.returncode == 1, parsed.stderr  # the bundled file holds one cut-off line
    assert "eve.json: line 7, column 71: not JSON" in parsed.stderr
    assert len(parsed.stdout.splitlines()) >= 3


def test_check(tmp_path: Path) -> None:
    config = quickstart(tmp_path)
    result = fido("check", str(config))
    assert result.returncode == 0, result.stderr
    assert "ready" in result.stdout
    assert "threat-feed" in result.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text('[[enrichers]]\ntype = "virus-total"\n')
    failed = fido("check", str(broken))
    assert failed.returncode == 3
    assert "no enricher called 'virus-total' is installed" in failed.stderr
    assert "line=2" in failed.stderr


def test_usage_and_configuration_errors(tmp_path: Path) -> None:
    assert fido("incidents", "--status", "weird").returncode == 2
    missing = fido("incidents", "-c", str(tmp_path / "nope.toml"))
    assert missing.returncode == 3
    assert "cannot read the configuration" in missing.stderr
    for command in (
        "run",
        "process",
        "incidents",
        "show",
        "pending",
        "approve",
        "reject",
        "replay",
        "check",
        "dead-letters",
        "version",
        "observable",
    ):
        helped = fido(command, "--help")
        assert helped.returncode == 0, command
        assert "usage: fido" in helped.stdout


def test_main_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = quickstart(tmp_path)
    code, out = run_main("run", str(config), "--no-progress", "--json")
    assert code == 0
    assert json.loads(out)["summary"]["reason"] == "idle"
    code, _ = run_main("-q", "incidents", "-c", str(config), "--since", "1h")
    assert code == 0
    code, _ = run_main("incidents", "-c", str(config), "--since", "yesterday-ish")
    assert code == 3
    assert "expected a time" in capsys.readouterr().err
