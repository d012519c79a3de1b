"""The command line through its real entry point (`fido`, in a subprocess) and `main()`."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fido import Observable
from fido._cli import main
from tests.factories import event

ROOT = Path(__file__).parents[1]
FIDO = str(Path(sys.executable).parent / "fido")


def quickstart(tmp_path: Path) -> Path:
    """A copy of the quickstart, so that the test writes nothing in the repository.

    The allowlist entry's expiry is moved to a year from today: the tests must not
    start failing on the day the example's date passes.
    """
    shutil.copytree(
        ROOT / "examples" / "quickstart",
        tmp_path / "quickstart",
        ignore=shutil.ignore_patterns("fido.sqlite3*", "actions.jsonl"),  # a local run's
    )
    allowlist = tmp_path / "quickstart" / "allowlist.toml"
    later = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
    text, count = re.subn(r"(?m)^expires = \S+", f"expires = {later}", allowlist.read_text())
    assert count == 1, "the quickstart allowlist shows an expiring entry"
    allowlist.write_text(text)
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
    assert "contain (awaiting approval)" in out  # the policy asks for one: not carried out
    assert "Why:" in out
    assert "recommendation: re-image" in out
    assert "allowlisted" in out
    # the suppressed incident says which entry matched, not "-"
    assert "allowlisted: host 10.9.9.9: the vulnerability scanner" in out
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
    rows = [json.loads(line) for line in fido("check", str(config), "--json").stdout.splitlines()]
    assert rows[0] == {
        "part": "store",
        "name": "sqlite",
        "status": "ok",
        "detail": f"no store yet at {tmp_path / 'quickstart' / 'fido.sqlite3'} (fido run creates it)",
    }
    assert {r["name"] for r in rows} >= {"suricata", "edr", "threat-feed", "actions-log"}
    assert not (tmp_path / "quickstart" / "fido.sqlite3").exists()  # check creates nothing


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
    for wrong in (["--since", "yesterday"], ["--until", "soon"], ["--limit", "-1"]):
        with pytest.raises(SystemExit) as info:  # a usage error, not a configuration one
            run_main("incidents", "-c", str(config), *wrong)
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert "expected a time (2026-11-28T09:00) or an age (2h, 7d), not 'yesterday'" in err
    assert "expected a whole number of at least 1, not '-1'" in err


HOSTILE = "\x1b[2J\x1b]0;pwned\x07 \x9b31m \u202eevil\u202c"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u202c")


def hostile_store(tmp_path: Path) -> tuple[Path, str]:
    """A configuration and a store holding an incident and a dead letter full of controls."""
    import fido

    config = tmp_path / "fido.toml"
    config.write_text('[store]\npath = "fido.sqlite3"\n')
    with fido.Pipeline(store=fido.SQLiteStore(tmp_path / "fido.sqlite3")) as pipeline:
        incident = pipeline.process(
            event(title=f"Trojan {HOSTILE}", host=fido.Host(name="ws-1", ip="10.0.0.1"))
        )
        with pytest.raises(fido.InvalidEvent):  # kept as a dead letter
            pipeline.process({"detector": "edr", "id": HOSTILE})
    return config, incident.id


def test_alert_content_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, incident_id = hostile_store(tmp_path)
    outputs = []
    for args in (
        ["incidents"],
        ["show", incident_id],
        ["dead-letters"],
        ["incidents", "--json"],
        ["show", incident_id, "--json"],
        ["dead-letters", "--json"],
    ):
        code, out = run_main(*args, "-c", str(config))
        assert code == 0, args
        assert not any(c in out for c in RAW), (args, out)
        outputs.append(out)
    assert "Trojan \\x1b[2J\\x1b]0;pwned\\x07 \\x9b31m \\u202eevil\\u202c" in outputs[0]
    assert "Trojan \\x1b[2J" in outputs[1]
    # JSON keeps the text, escaped the JSON way: it reads back as it was
    assert json.loads(outputs[3])["events"][0]["title"] == f"Trojan {HOSTILE}"
    assert json.loads(outputs[5])["payload"]["id"] == HOSTILE
    # and what goes to standard error (an unknown id, a batch's invalid alert)
    code, _ = run_main("show", HOSTILE, "-c", str(config))
    assert code == 1
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(json.dumps({"detector": "edr", "id": HOSTILE}) + "\n")
    config.write_text(
        '[store]\npath = "fido.sqlite3"\n[[responders]]\ntype = "jsonl"\n'
        'actions = ["notify"]\npath = "out.jsonl"\n'
    )
    code, out = run_main("process", str(config), str(alerts))
    assert code == 1
    err = capsys.readouterr().err
    assert "invalid alert" in err
    assert not any(c in out + err for c in RAW), err


UNSET = "FIDO_TEST_SURELY_UNSET_KEY"


def test_reading_the_store_needs_no_adapter_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = quickstart(tmp_path)
    assert run_main("run", str(config), "--no-progress", "--json")[0] == 0
    # an analyst's copy: the enricher's key is the service's, not theirs
    with config.open("a") as file:
        file.write(f'\n[[enrichers]]\ntype = "virustotal"\napi_key_env = "{UNSET}"\n')
    monkeypatch.delenv(UNSET, raising=False)
    policy = tmp_path / "same.toml"
    policy.write_text('[policy]\nname = "same"\n')
    code, listed = run_main("incidents", "-c", str(config), "--json")
    assert code == 0
    waiting = [
        json.loads(line)
        for line in run_main("pending", "-c", str(config), "--json")[1].splitlines()
    ]
    assert len(waiting) == 2
    for args in (
        ["show", json.loads(listed.splitlines()[0])["id"]],
        ["dead-letters"],
        ["replay", "--policy", str(policy)],
        ["reject", waiting[0]["incident"], "contain", "--by", "alice"],
        # approving builds the responders (they carry the action out), and only them
        ["approve", waiting[1]["incident"], "contain", "--by", "alice"],
    ):
        code, _ = run_main(*args, "-c", str(config))
        assert code == 0, (args, capsys.readouterr().err)
    # what polls and enriches needs it, and says which variable is missing
    for args in (["run", str(config)], ["check", str(config), "--offline"]):
        code, _ = run_main(*args)
        assert code == 3, args
        assert f"the environment variable {UNSET} is not set" in capsys.readouterr().err


def test_a_mistyped_store_path_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fido.toml"
    config.write_text('[store]\npath = "fido-typo.sqlite3"\n')
    for args in (["incidents"], ["show", "inc-1"], ["pending"], ["dead-letters"]):
        code, _ = run_main(*args, "-c", str(config))
        assert code == 3, args
        assert f"no store at {tmp_path / 'fido-typo.sqlite3'}" in capsys.readouterr().err
    code, out = run_main("check", str(config))
    assert code == 0
    assert "no store yet" in out
    assert list(tmp_path.iterdir()) == [config]
    config.write_text('[store]\npath = "missing/fido.sqlite3"\n')
    code, out = run_main("check", str(config), "--json")
    assert code == 3  # what fido run would refuse
    assert json.loads(out.splitlines()[0])["detail"].endswith("missing does not exist")


def test_run_reads_from_the_store_only_what_it_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fido
    from fido._cli import commands

    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        "".join(
            json.dumps(event(id=f"a{n}", host=fido.Host(name=f"ws-{n}"), observables=[]).to_dict())
            + "\n"
            for n in range(25)
        )
    )
    config = tmp_path / "fido.toml"
    config.write_text(
        '[store]\npath = "fido.sqlite3"\n[run]\nexit_when_idle = true\n'
        '[[detectors]]\ntype = "jsonl"\npath = "alerts.jsonl"\n'
    )
    asked: list[int | None] = []
    listing = fido.SQLiteStore.incidents

    def spy(self: fido.SQLiteStore, **filters: object) -> list[fido.Incident]:
        asked.append(filters.get("limit"))  # type: ignore[arg-type]
        return listing(self, **filters)  # type: ignore[arg-type]

    monkeypatch.setattr(fido.SQLiteStore, "incidents", spy)
    code, out = run_main("run", str(config), "--no-progress")
    assert code == 0
    assert asked == [commands.SHOWN + 1]
    assert out.count("Trojan detected") == commands.SHOWN
    assert "... and more: fido incidents --since" in out
    # --json gives them all, read a page at a time
    monkeypatch.setattr(commands, "PAGE", 7)
    with alerts.open("a") as file:
        for n in range(25):
            alert = event(id=f"b{n}", host=fido.Host(name=f"ws2-{n}"), observables=[])
            file.write(json.dumps(alert.to_dict()) + "\n")
    asked.clear()
    code, out = run_main("run", str(config), "--no-progress", "--json")
    assert code == 0
    incidents = json.loads(out)["incidents"]
    assert len({i["id"] for i in incidents}) == len(incidents) == 25
    assert all(limit is not None and limit <= 7 + 25 for limit in asked)
    assert len(asked) >= 4


def test_run_json_pages_through_incidents_updated_at_the_same_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fido
    from fido._cli import commands
    from tests.factories import NOW, incident

    store = fido.MemoryStore()
    for n in range(10):
        # runs of incidents sharing one updated_at, longer than a page
        store.save_incident(incident(id=f"inc-{n:02d}", updated_at=NOW + timedelta(n // 4)))
    monkeypatch.setattr(commands, "PAGE", 3)
    ids = [i.id for i in commands._pages(store, NOW - timedelta(1))]
    assert ids == [f"inc-{n:02d}" for n in (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)]


def test_process_reports_only_this_batchs_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = quickstart(tmp_path)
    eve = tmp_path / "quickstart" / "eve.json"
    code, _ = run_main("process", str(config), str(eve), "--detector", "suricata")
    assert code == 1  # the bundled file holds one cut-off line
    assert "not JSON" in capsys.readouterr().err
    clean = tmp_path / "clean.json"
    clean.write_text(
        "".join(line + "\n" for line in eve.read_text().splitlines() if line.endswith("}"))
    )
    code, out = run_main("process", str(config), str(clean), "--detector", "suricata")
    assert code == 0, capsys.readouterr().err
    assert "not JSON" not in capsys.readouterr().err
    assert "0 invalid" in out


def test_replay_keeps_allowlisted_incidents_and_uses_the_lookback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    config = quickstart(tmp_path)
    with config.open("a") as file:
        file.write('\n[limits]\nhistory_lookback = "3d"\n')
    assert run_main("run", str(config), "--no-progress", "--json")[0] == 0
    policy = tmp_path / "loud.toml"
    policy.write_text('[policy]\nname = "loud"\nversion = "2"\n[threat.verdicts]\nmalicious = 90\n')
    lookbacks: list[object] = []
    from fido.scoring._replay import replay as real

    def spy(*args: object, **kwargs: object) -> object:
        lookbacks.append(kwargs.get("lookback"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("fido._cli.commands.replay", spy)
    code, out = run_main("replay", "--policy", str(policy), "-c", str(config))
    assert code == 0
    assert lookbacks == [timedelta(days=3)]
    assert "allowlisted (0) ->" not in out
    assert "1 suppressed (allowlisted) incidents stay suppressed" in out
    as_json = json.loads(
        run_main("replay", "--policy", str(policy), "-c", str(config), "--json")[1]
    )
    assert as_json["suppressed"] == 1
    assert as_json["incidents"] == 3


def test_check_and_run_agree_on_a_wrong_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fido.toml"
    config.write_text('[[enrichers]]\ntype = "static"\nverdicts = { "evil.example" = "wicked" }\n')
    code, out = run_main("check", str(config))
    assert code == 3
    assert "configuration errors" in out
    code, _ = run_main("run", str(config), "--once", "--no-progress")
    assert code == 3
    assert "static answers" in capsys.readouterr().err


def test_the_logging_level_comes_from_the_configuration_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = quickstart(tmp_path)
    loaded = "threat-feed: loaded 4 indicators"
    assert run_main("check", str(config), "--offline")[0] == 0
    assert loaded in capsys.readouterr().err  # the documented default: info
    with config.open("a") as file:
        file.write('\n[logging]\nlevel = "warning"\n')
    assert run_main("check", str(config), "--offline")[0] == 0
    assert loaded not in capsys.readouterr().err
    for args in (["-v", "check", str(config)], ["check", str(config), "-v"]):
        assert run_main(*args, "--offline")[0] == 0
        assert loaded in capsys.readouterr().err, args
    assert run_main("check", str(config), "--offline", "-q")[0] == 0
    assert capsys.readouterr().err == ""


def test_a_second_run_on_one_store_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import fido

    config = quickstart(tmp_path)
    holder = fido.SQLiteStore(tmp_path / "quickstart" / "fido.sqlite3")
    try:
        assert holder.acquire_runner("the-service", datetime.now(UTC)) is None
        code, out = run_main("run", str(config), "--no-progress")
        assert code == 4
        assert out == ""
        assert "fido run" in capsys.readouterr().err
        # the analyst's commands go on meanwhile
        assert run_main("incidents", "-c", str(config))[0] == 0
    finally:
        holder.release_runner("the-service")
        holder.close()
    assert run_main("run", str(config), "--no-progress", "--json")[0] == 0


def test_a_run_that_ends_with_a_failing_detector_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "alerts").mkdir()  # a folder where the detector expects a file
    config = tmp_path / "fido.toml"
    config.write_text(
        '[store]\ntype = "memory"\n[[detectors]]\ntype = "jsonl"\nname = "edr"\n'
        'path = "alerts"\ninterval = "0.05s"\n'
    )
    code, out = run_main("run", str(config), "--once", "--no-progress")
    assert code == 1
    assert "failing at the end: edr" in out
    assert "fido: detectors failing at the end: edr" in capsys.readouterr().err
    code, out = run_main("run", str(config), "--once", "--no-progress", "--json")
    assert code == 1
    assert json.loads(out)["summary"]["detectors"][0]["failures"] >= 1
