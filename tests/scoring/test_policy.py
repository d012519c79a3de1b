from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fido import ConfigurationError, Criticality, Reliability, Severity, Verdict
from fido.scoring import Policy, assess
from fido.scoring._toml import dumps, format_duration, locate, parse_duration
from tests.factories import NOW, incident, reputation

DOCS = Path(__file__).parents[2] / "docs"


def test_default_policy_values() -> None:
    p = Policy.default()
    assert (p.name, p.version, p.combine) == ("default", "1", "sum")
    assert p.threat.severity[Severity.HIGH] == 20
    assert p.threat.verdicts[Verdict.MALICIOUS] == 50
    assert p.threat.reliability[Reliability.A] == 1.0
    assert [(t.min, t.points) for t in p.threat.sightings] == [(1, 10), (5, 20)]
    assert [(t.after, t.points) for t in p.threat.host_history] == [
        (timedelta(hours=4), 15),
        (timedelta(hours=12), 25),
    ]
    assert p.machine.criticality[Criticality.CRITICAL] == 25
    assert (p.machine.av_not_installed, p.machine.av_not_running) == (50, 50)
    assert (p.user.titles.points, p.user.departments.points) == (25, 30)
    assert [(lv.name, lv.min) for lv in p.decision.levels] == [
        ("suppress", 0),
        ("log", 10),
        ("notify", 30),
        ("ticket", 60),
        ("contain", 85),
    ]
    assert p.decision.actions["contain"].requires_approval
    assert p.decision.repeat_window == timedelta(minutes=30)
    assert p.correlation_window == timedelta(hours=1)
    assert Policy.default() is Policy.default()


def test_toml_round_trip() -> None:
    p = Policy.default()
    text = p.to_toml()
    assert Policy.from_toml(text) == p
    assert tomllib.loads(text) == p.to_dict()
    assert Policy.from_dict(p.to_dict()) == p


def test_the_documented_default_is_the_default() -> None:
    """docs/policy-default.toml is what `Policy.default().to_toml()` writes."""
    assert (DOCS / "policy-default.toml").read_text() == Policy.default().to_toml()


def test_a_partial_file_overrides_the_default(tmp_path: Path) -> None:
    path = tmp_path / "strict.toml"
    path.write_text(
        '[policy]\nname = "strict"\nversion = 3\n\n'
        "[threat.verdicts]\nmalicious = 70\n\n"
        '[[decision.levels]]\nname = "quiet"\nmin = 0\n\n'
        '[[decision.levels]]\nname = "page"\nmin = 40\nactions = ["page"]\n'
    )
    p = Policy.from_toml(path)
    assert (p.name, p.version) == ("strict", "3")
    assert p.threat.verdicts[Verdict.MALICIOUS] == 70
    assert p.threat.verdicts[Verdict.SUSPICIOUS] == 20
    assert [lv.name for lv in p.decision.levels] == ["quiet", "page"]
    assert Policy.from_toml(str(path)) == p
    a = assess(incident(), [reputation(reliability=Reliability.A)], p_history(), p, NOW)
    assert (a.policy, a.policy_version) == ("strict", "3")


def p_history() -> Any:
    from fido.scoring import History

    return History.EMPTY


def test_merge_with_or() -> None:
    base = Policy.default()
    override = Policy.from_toml('[policy]\nname = "tuned"\n[machine]\nunknown = 0\n')
    merged = base | override
    assert merged.name == "tuned"
    assert merged.machine.unknown == 0
    assert merged.threat == base.threat
    with_mapping = base | {"user": {"locked": 0}}
    assert with_mapping.user.locked == 0
    assert with_mapping.machine.unknown == 10
    # an override of an override keeps both
    both = (base | override) | {"user": {"locked": 0}}
    assert (both.machine.unknown, both.user.locked, both.name) == (0, 0, "tuned")
    assert base.__or__(42) is NotImplemented  # type: ignore[operator]


def test_overrides_chain() -> None:
    """`base | (a | m)` applies a's settings and m's, not only the last mapping's."""
    a = Policy.from_toml("[machine]\nunknown = 0\n")
    b = a | {"user": {"locked": 0}}
    chained = Policy.default() | b
    assert (chained.machine.unknown, chained.user.locked) == (0, 0)
    assert chained == b
    c = Policy.from_toml("[user]\nlocked = 1\n", base=a)
    assert (Policy.default() | c).machine.unknown == 0
    other = Policy.default() | {"machine": {"server": 40}}
    assert (other | b).machine.server == 40  # the default's values are not re-applied
    assert (other | b).machine.unknown == 0
    assert b | Policy.default() == b
    assert Policy.default().explicit == {}


def test_from_toml_with_a_base() -> None:
    base = Policy.default() | {"machine": {"unknown": 0}}
    p = Policy.from_toml("[user]\nlocked = 1\n", base=base)
    assert (p.machine.unknown, p.user.locked) == (0, 1)


def test_diff() -> None:
    base = Policy.default()
    other = base | {"threat": {"verdicts": {"malicious": 60}}, "policy": {"version": "2"}}
    assert base.diff(other) == (
        ("policy.version", "1", "2"),
        ("threat.verdicts.malicious", 50, 60),
    )
    assert base.diff(base) == ()


def test_level_for_with_a_threat_minimum() -> None:
    p = Policy.default()
    assert p.decision.levels[-1].min_threat == 40
    assert p.level_for(90).name == "contain"
    assert p.level_for(90, 39).name == "ticket"
    assert p.level_for(90, 40).name == "contain"
    assert p.level_for(20, 0).name == "log"


def test_level_for() -> None:
    p = Policy.default()
    assert [p.level_for(t).name for t in (0, 9, 10, 29, 30, 59, 60, 84, 85, 100)] == [
        "suppress",
        "suppress",
        "log",
        "log",
        "notify",
        "notify",
        "ticket",
        "ticket",
        "contain",
        "contain",
    ]


BAD: list[tuple[str, str, str, int]] = [
    ("[threat.verdicts]\nmalicous = 50\n", "threat.verdicts.malicous", "unknown key", 2),
    ("[threat]\nverdicts = 3\n", "threat.verdicts", "expected a table", 2),
    (
        "[threat.verdicts]\nmalicious = 500\n",
        "threat.verdicts.malicious",
        "expected an integer from -100 to 100, not 500",
        2,
    ),
    (
        "[threat.verdicts]\nmalicious = 10\nsuspicious = 20\n",
        "threat.verdicts.malicious",
        "at least as many points as suspicious",
        2,
    ),
    (
        "[threat.verdicts]\nmalicious = -5\nsuspicious = -6\nunknown = -7\nbenign = -8\n",
        "threat.verdicts.malicious",
        "cannot lower",
        2,
    ),
    (
        "[threat.reliability]\nB = 0.1\n",
        "threat.reliability.B",
        "B is more reliable than C and cannot weigh less",
        2,
    ),
    ("[threat.reliability]\nA = 1.5\n", "threat.reliability.A", "from 0 to 1, not 1.5", 2),
    ("[threat.corroboration]\ndecay = true\n", "threat.corroboration.decay", "number", 2),
    ("[[threat.sightings]]\nmin = 0\npoints = 5\n", "threat.sightings[0].min", "from 1 to", 2),
    (
        '[[threat.host_history]]\nafter = "soon"\npoints = 5\n',
        "threat.host_history[0].after",
        "duration",
        2,
    ),
    ('[policy]\ncombine = "avg"\n', "policy.combine", "'sum', 'weighted' or 'max'", 2),
    ('[policy]\nname = ""\n', "policy.name", "non-empty string", 2),
    ("[policy.weights]\nthreat = -1\n", "policy.weights.threat", "from 0 to 10", 2),
    ("[correlation]\nwindow = 5\n", "correlation.window", "duration", 2),
    (
        '[[machine.asset_groups]]\nname = "x"\npoints = 5\ncidrs = ["10.0.0.0/33"]\n',
        "machine.asset_groups[0].cidrs",
        "CIDR range",
        4,
    ),
    (
        '[[machine.asset_groups]]\nname = "x"\npoints = 5\ngroups = "pci"\n',
        "machine.asset_groups[0].groups",
        "array of strings",
        4,
    ),
    ('[user]\nprivileged = "yes"\n', "user.privileged", "integer", 2),
    ("[user.titles]\npoints = 5\nwords = [1]\n", "user.titles.words", "array of strings", 3),
    ('[[decision.levels]]\nname = "a"\nmin = 5\n', "decision.levels[0].min", "start at 0", 3),
    (
        '[[decision.levels]]\nname = "a"\nmin = 0\n[[decision.levels]]\nname = "a"\nmin = 9\n',
        "decision.levels[1].name",
        "two levels are called 'a'",
        5,
    ),
    (
        '[[decision.levels]]\nname = "a"\nmin = 0\n[[decision.levels]]\nname = "b"\nmin = 0\n',
        "decision.levels[1].min",
        "clash",
        6,
    ),
    (
        (
            '[[decision.levels]]\nname = "b"\nmin = 50\n\n'
            '[[decision.levels]]\nname = "a"\nmin = 0\nmin_threat = 10\n'
        ),
        "decision.levels[1].min_threat",
        "lowest level cannot need a threat score",
        8,
    ),
    (
        '[[decision.levels]]\nname = "a"\nmin = 0\nmin_threat = 101\n',
        "decision.levels[0].min_threat",
        "from 0 to 100",
        4,
    ),
    (
        '[[decision.levels]]\nname = "a"\nmin = 0\nactions = ["notify", "notify"]\n',
        "decision.levels[0].actions",
        "each action is listed once",
        4,
    ),
    (
        "[decision.actions.contian]\nrequires_approval = true\n",
        "decision.actions.contian",
        "no level uses the action 'contian'",
        1,
    ),
    (
        "[threat.categories]\nMalware = 5\nmalware = 30\n",
        "threat.categories.Malware",
        "listed twice",
        2,
    ),
    ("[policy]\nversion = 1.10\n", "policy.version", 'write "1.1" in quotes', 2),
    (
        "[[threat.sightings]]\nmin = 5\npoints = 20\n[[threat.sightings]]\nmin = 5\npoints = 10\n",
        "threat.sightings[1].min",
        "each tier needs its own value",
        5,
    ),
    (
        (
            '[[threat.host_history]]\nafter = "4h"\npoints = 5\n'
            '[[threat.host_history]]\nafter = "240m"\npoints = 9\n'
        ),
        "threat.host_history[1].after",
        "each tier needs its own value",
        5,
    ),
    (
        '[decision.actions.contain]\napproval_timeout = "forever"\n',
        "decision.actions.contain.approval_timeout",
        "duration",
        2,
    ),
    (
        '[decision.actions.contain]\nrequires_approval = "yes"\n',
        "decision.actions.contain.requires_approval",
        "true or false",
        2,
    ),
    (
        "[[decision.recommendations]]\nmin_total = 10\n",
        "decision.recommendations[0].text",
        "required",
        1,
    ),
    ("[surprise]\nx = 1\n", "surprise", "unknown key", 1),
]


@pytest.mark.parametrize(("text", "key", "message", "line"), BAD)
def test_validation_names_key_value_and_line(
    tmp_path: Path, text: str, key: str, message: str, line: int
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message) as info:
        Policy.from_toml(path)
    error = info.value
    assert error.key == key
    assert error.file == str(path)
    assert error.line == line
    assert f"key={key}" in str(error)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML") as info:
        Policy.from_toml("[threat\n")
    assert info.value.line == 1
    with pytest.raises(ConfigurationError, match="cannot read") as missing:
        Policy.from_toml(tmp_path / "missing.toml")
    assert missing.value.file == str(tmp_path / "missing.toml")


def test_path_or_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Path is a path; a one-line str ending in .toml, or naming a file, is a path too."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="cannot read the policy") as info:
        Policy.from_toml("strict.toml")  # a missing file, not bad TOML
    assert info.value.file == "strict.toml"
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigurationError, match="cannot read the policy") as info:
        Policy.from_toml(missing)
    assert info.value.file == missing
    conf = tmp_path / "policy.conf"
    conf.write_text("[machine]\nunknown = 0\n")
    assert Policy.from_toml(str(conf)).machine.unknown == 0  # an existing file
    assert Policy.from_toml(conf).machine.unknown == 0
    assert Policy.from_toml("[machine]\nunknown = 0\n").machine.unknown == 0  # text
    assert Policy.from_toml("machine.unknown = 0").machine.unknown == 0  # one line of text
    with pytest.raises(ConfigurationError, match="not valid TOML") as bad:
        Policy.from_toml("no such thing")
    assert bad.value.file is None
    with pytest.raises(ConfigurationError, match="path or from TOML text, not bytes"):
        Policy.from_toml(b"[machine]")  # type: ignore[arg-type]


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[machine]\nunknown = 0 # caf\xe9\n")
    with pytest.raises(ConfigurationError, match="not UTF-8") as info:
        Policy.from_toml(path)
    assert (info.value.file, info.value.line) == (str(path), 2)


def test_from_dict_errors_have_no_file() -> None:
    with pytest.raises(ConfigurationError) as info:
        Policy.from_dict({"threat": {"severity": {"extreme": 1}}})
    assert (info.value.key, info.value.file, info.value.line) == (
        "threat.severity.extreme",
        None,
        None,
    )
    with pytest.raises(ConfigurationError, match="expected a table"):
        Policy.from_dict({"threat": [1]})


# -- TOML plumbing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("4h", 14400),
        ("1d12h", 129600),
        ("90s", 90),
        ("2w", 1209600),
        ("1h 30m", 5400),
        ("0s", 0),
        ("1.5h", 5400),
        ("0.2s", 0.2),
        ("250ms", 0.25),
        ("1m 30.5s", 90.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "4", "4x", "-1h", "1.5.2h", "h", ".5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_writer_handles_quoting_and_long_arrays() -> None:
    data = {
        "t": {
            "odd key": 'a "quoted"\\ value\n',
            "n": [1.5, True],
            "long": ["x" * 30, "y" * 30, "z" * 30],
            "none": None,
        }
    }
    text = dumps(data)
    assert tomllib.loads(text) == {
        "t": {
            "odd key": 'a "quoted"\\ value\n',
            "n": [1.5, True],
            "long": ["x" * 30, "y" * 30, "z" * 30],
        }
    }
    with pytest.raises(ValueError, match="finite"):
        dumps({"x": float("inf")})
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_locate() -> None:
    text = "[a]\nx = 1\n\n[[a.b]]\ny = 2\n\n[[a.b]]\ny = 3\nz = { w = 1 }\n"
    assert locate(text, "a.x") == 2
    assert locate(text, "a.b[1].y") == 8
    assert locate(text, "a.b[1].z.w") == 9
    assert locate(text, "a.b[0]") == 4
    assert locate(text, "a.missing") == 1
    assert locate(text, "nowhere") is None
