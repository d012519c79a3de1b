"""Configuration from TOML: loading, validation errors, secrets, entry points, building."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import certifi
import pytest

import fido
from fido import ConfigurationError, load_config
from fido._config import factory
from fido.adapters.detectors.jsonl import JsonlDetector
from fido.adapters.enrichers.static import StaticIntel
from fido.adapters.responders.jsonl import JsonlResponder

ROOT = Path(__file__).parents[1]


def write(tmp_path: Path, text: str, name: str = "fido.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = """
[store]
type = "memory"

[[detectors]]
type = "jsonl"
path = "alerts.jsonl"
interval = "2s"

[[enrichers]]
type = "static"
name = "feed"
timeout = 3
verdicts = { "evil.example" = "malicious" }

[[responders]]
type = "jsonl"
name = "log"
actions = ["notify", "ticket"]
path = "out/actions.jsonl"
"""


def test_minimal_config_builds_a_pipeline(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.store == ("memory", None)
    assert config.policy == fido.scoring.Policy.default()
    assert config.allowlist is None
    assert [(s.kind, s.type, s.name) for s in config.detectors] == [("detector", "jsonl", "jsonl")]
    assert config.detectors[0].interval == 2.0
    assert config.enrichers[0].timeout == 3.0
    assert config.responders[0].actions == ("notify", "ticket")
    with config.build() as pipeline:
        [detector] = pipeline.detectors
        assert isinstance(detector, JsonlDetector)
        assert detector.path == tmp_path / "alerts.jsonl"
        assert detector.interval == 2.0
        [enricher] = pipeline.enrichers
        assert isinstance(enricher, StaticIntel)
        assert enricher.name == "feed"
        assert getattr(enricher, "timeout", None) == 3.0
        notify = pipeline.responders["notify"]
        assert notify == pipeline.responders["ticket"]
        assert isinstance(notify[0], JsonlResponder)
        assert notify[0].path == tmp_path / "out" / "actions.jsonl"
        assert isinstance(pipeline.store, fido.MemoryStore)


def test_pipeline_from_config(tmp_path: Path) -> None:
    store = fido.MemoryStore()
    with fido.Pipeline.from_config(write(tmp_path, MINIMAL), store=store) as pipeline:
        assert pipeline.store is store


def test_policy_file_inline_and_allowlist(tmp_path: Path) -> None:
    write(tmp_path, '[policy]\nname = "strict"\n[threat.verdicts]\nmalicious = 70\n', "policy.toml")
    write(
        tmp_path,
        '[[allow]]\ntype = "host"\nvalue = "scanner-*"\nreason = "scans"\nauthor = "soc"\n',
        "allow.toml",
    )
    write(
        tmp_path,
        "type,value,reason,author\nhash,44d88612fea8a8f36de82e1278abb02f,eicar,soc\n",
        "allow.csv",
    )
    config = load_config(
        write(tmp_path, 'policy = "policy.toml"\nallowlist = ["allow.toml", "allow.csv"]\n')
    )
    assert config.policy.name == "strict"
    assert config.allowlist is not None
    assert len(config.allowlist) == 2
    inline = load_config(write(tmp_path, "[policy.user]\nlocked = 0\n", "inline.toml"))
    assert inline.policy.user.locked == 0
    assert config.store == ("sqlite", tmp_path / "fido.sqlite3")


def test_limits_and_run_options(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[limits]\nenrich_timeout = "5s"\nconcurrency = 4\n'
            'history_lookback = "7d"\n[run]\nexit_when_idle = true\n'
            'idle_interval = 1.5\n[logging]\nlevel = "debug"\n',
        )
    )
    assert config.limits.enrich_timeout == 5.0
    assert config.limits.concurrency == 4
    assert config.limits.history_lookback == timedelta(days=7)
    assert config.run.exit_when_idle
    assert config.run.idle_interval == 1.5
    assert config.log_level == "debug"


SECRET_ADAPTER = """
[[enrichers]]
type = "static"
name = "feed"
{line}
"""


def test_secrets_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: dict[str, Any] = {}

    class Needy:
        def __init__(self, *, name: str = "needy", api_key: str, base_url: str = "x") -> None:
            captured.update(api_key=api_key, base_url=base_url)
            self.name = name

        def __repr__(self) -> str:
            return "Needy()"

        def accepts(self, subject: object) -> bool:
            return False

        def enrich(self, subject: object) -> None:
            return None

    monkeypatch.setattr("fido._config.factory", lambda kind, name: Needy)
    monkeypatch.setenv("NEEDY_KEY", "k-from-env")
    config = load_config(
        write(
            tmp_path,
            '[[enrichers]]\ntype = "needy"\napi_key_env = '
            '"NEEDY_KEY"\nbase_url = "https://intel.example"\n',
        )
    )
    with config.build(store=fido.MemoryStore()):
        assert captured == {"api_key": "k-from-env", "base_url": "https://intel.example"}
    (tmp_path / "key.txt").write_text("k-from-file\n")
    config = load_config(
        write(tmp_path, '[[enrichers]]\ntype = "needy"\napi_key_file = "key.txt"\n')
    )
    with config.build(store=fido.MemoryStore()):
        assert captured["api_key"] == "k-from-file"
    with pytest.raises(ConfigurationError, match="never written in the configuration") as info:
        load_config(write(tmp_path, '[[enrichers]]\ntype = "needy"\napi_key = "inline"\n'))
    assert "inline" not in str(info.value)
    assert info.value.key == "enrichers[0].api_key"
    assert info.value.line == 3
    with pytest.raises(ConfigurationError, match="MISSING_KEY is not set") as missing:
        load_config(write(tmp_path, '[[enrichers]]\ntype = "needy"\napi_key_env = "MISSING_KEY"\n'))
    assert missing.value.key == "enrichers[0].api_key_env"
    with pytest.raises(ConfigurationError, match="cannot read the secret file"):
        load_config(write(tmp_path, '[[enrichers]]\ntype = "needy"\napi_key_file = "nope"\n'))


BAD: list[tuple[str, str, str, int | None]] = [
    ("surprise = 1\n", "surprise", "unknown key", 1),
    ('[store]\ntype = "redis"\n', "store.type", "'sqlite' or 'memory'", 2),
    ("[store]\nbogus = 1\n", "store.bogus", "unknown key", 2),
    ('policy = "missing.toml"\n', "policy", "no policy file", 1),
    ("policy = 3\n", "policy", "policy file, or a [policy] table", 1),
    (
        "[policy.threat.verdicts]\nmalicous = 5\n",
        "policy.threat.verdicts.malicous",
        "unknown key",
        2,
    ),
    ('allowlist = "missing.csv"\n', "allowlist", "no allowlist file", 1),
    ("allowlist = 3\n", "allowlist", "a file name or a list", 1),
    ("[limits]\nconcurrency = 0\n", "limits.concurrency", "positive integer", 2),
    ('[limits]\nenrich_timeout = "soon"\n', "limits.enrich_timeout", "duration", 2),
    ("[limits]\nspeed = 1\n", "limits.speed", "unknown key", 2),
    ("[run]\nexit_when_idle = 1\n", "run.exit_when_idle", "true or false", 2),
    ("[run]\nforever = true\n", "run.forever", "unknown key", 2),
    ('[logging]\nlevel = "loud"\n', "logging.level", "expected debug", 2),
    ('[[detectors]]\npath = "x"\n', "detectors[0].type", "names its type", 1),
    (
        '[[detectors]]\ntype = "nonesuch"\n',
        "detectors[0].type",
        "no detector called 'nonesuch' is installed (installed: jsonl, suricata",
        2,
    ),
    (
        '[[detectors]]\ntype = "jsonl"\npath = "a"\ncolour = "red"\n',
        "detectors[0].colour",
        "unknown option 'colour' for the detector 'jsonl' (it takes: batch, path)",
        4,
    ),
    (
        '[[detectors]]\ntype = "jsonl"\npath = "a"\ninterval = -1\n',
        "detectors[0].interval",
        "positive duration",
        4,
    ),
    (
        '[[detectors]]\ntype = "jsonl"\npath = "a"\n[[detectors]]\ntype = "jsonl"\npath = "b"\n',
        "detectors[1].name",
        "two detectors are called 'jsonl'",
        None,
    ),
    (
        '[[responders]]\ntype = "jsonl"\npath = "a"\n',
        "responders[0].actions",
        "lists the actions",
        1,
    ),
    ("detectors = 3\n", "detectors", "[[detectors]] tables", 1),
    ('[logging]\nlevel = "info"\nlvl = "debug"\n', "logging.lvl", "unknown key 'lvl'", 3),
    # option types and required options, checked against the factory's signature
    (
        '[[detectors]]\ntype = "jsonl"\npath = "a.jsonl"\nbatch = "lots"\n',
        "detectors[0].batch",
        "expected an integer, not 'lots'",
        4,
    ),
    (
        '[[detectors]]\ntype = "jsonl"\npath = 42\n',
        "detectors[0].path",
        "expected a path (a string), not 42",
        3,
    ),
    ('[[detectors]]\ntype = "jsonl"\n', "detectors[0]", "needs the option 'path'", 1),
    (
        '[[enrichers]]\ntype = "static"\nverdicts = ["evil.example"]\n',
        "enrichers[0].verdicts",
        "expected a table, not ['evil.example']",
        3,
    ),
    (
        '[[enrichers]]\ntype = "static"\nverdicts = { "evil.example" = 3 }\n',
        "enrichers[0].verdicts",
        "expected a table",
        3,
    ),
    (
        '[[enrichers]]\ntype = "feeds"\nsubdomains = "yes"\n',
        "enrichers[0].subdomains",
        "expected true or false, not 'yes'",
        3,
    ),
    # a responder's actions must be the policy's
    (
        '[[responders]]\ntype = "jsonl"\npath = "a"\nactions = ["notify", "notfy"]\n',
        "responders[0].actions",
        "actions[1]: the policy has no action 'notfy' (its actions: contain, notify, ticket)",
        4,
    ),
]


@pytest.mark.parametrize(("text", "key", "message", "line"), BAD)
def test_errors_name_file_key_and_line(
    tmp_path: Path, text: str, key: str, message: str, line: int | None
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(
        ConfigurationError,
        match=message.replace("(", r"\(")
        .replace(")", r"\)")
        .replace("[", r"\[")
        .replace("]", r"\]"),
    ) as info:
        load_config(path)
    assert info.value.key == key
    assert info.value.file == str(path)
    if line is not None:
        assert info.value.line == line


def test_not_toml_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML") as info:
        load_config(write(tmp_path, "[store\n"))
    assert info.value.line == 1
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_adapter_that_refuses_its_options(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path, '[[enrichers]]\ntype = "static"\nverdicts = { "evil.example" = "wicked" }\n'
        )
    )
    with pytest.raises(ConfigurationError, match="static answers") as info:
        config.build(store=fido.MemoryStore())
    assert info.value.key == "enrichers[0]"


def test_entry_points_resolve_the_built_ins() -> None:
    assert factory("detector", "jsonl") is JsonlDetector
    assert factory("enricher", "static") is StaticIntel
    assert factory("responder", "jsonl") is JsonlResponder
    with pytest.raises(ConfigurationError, match="no responder called 'pager'"):
        factory("responder", "pager")


def test_the_quickstart_configuration_loads() -> None:
    config = load_config(ROOT / "examples" / "quickstart.toml")
    assert [s.name for s in config.detectors] == ["suricata", "edr"]
    assert [s.name for s in config.enrichers] == ["threat-feed", "inventory", "directory"]
    assert config.run.exit_when_idle


def test_options_of_a_base_class_are_options_not_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ca_file` reaches an adapter that takes it through `**options` (HttpEnricher's)."""
    (tmp_path / "ca.pem").write_bytes(Path(certifi.where()).read_bytes())
    path = tmp_path / "fido.toml"
    path.write_text(
        '[[enrichers]]\ntype = "virustotal"\napi_key_env = "FIDO_TEST_VT"\nca_file = "ca.pem"\n'
    )
    monkeypatch.setenv("FIDO_TEST_VT", "not-a-real-key")
    with fido.load_config(path).build() as pipeline:
        [enricher] = pipeline.enrichers
        assert enricher.name == "virustotal"


def test_actions_of_a_custom_policy_are_known(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[policy]\nname = "paging"\n[[decision.levels]]\nname = "quiet"\nmin = 0\n'
        '[[decision.levels]]\nname = "page"\nmin = 50\nactions = ["page"]\n',
        "policy.toml",
    )
    config = load_config(
        write(
            tmp_path,
            'policy = "policy.toml"\n[[responders]]\ntype = "jsonl"\npath = "a"\n'
            'actions = ["page"]\n',
        )
    )
    assert config.responders[0].actions == ("page",)
    with pytest.raises(
        ConfigurationError, match=r"no action 'notify' \(its actions: contain, page\)"
    ):
        load_config(
            write(
                tmp_path,
                'policy = "policy.toml"\n[[responders]]\ntype = "jsonl"\npath = "a"\n'
                'actions = ["notify"]\n',
                "other.toml",
            )
        )


UNSET = "FIDO_TEST_SURELY_UNSET_KEY"
NEEDS_A_SECRET = f"""
[store]
path = "fido.sqlite3"

[[enrichers]]
type = "virustotal"
api_key_env = "{UNSET}"

[[responders]]
type = "jsonl"
actions = ["notify"]
path = "actions.jsonl"
"""


def test_without_adapters_no_secret_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    path = write(tmp_path, NEEDS_A_SECRET)
    with pytest.raises(ConfigurationError, match=f"{UNSET} is not set"):
        load_config(path)
    config = load_config(path, adapters=False)
    assert config.store == ("sqlite", tmp_path / "fido.sqlite3")
    # what is given is not built: only the responders (which need no secret here)
    store = fido.MemoryStore()
    with config.build(detectors=[], enrichers=[], store=store) as pipeline:
        assert [r.name for r in pipeline.responders["notify"]] == ["jsonl"]
    # building the rest still fails as loading would have
    with pytest.raises(ConfigurationError, match=f"{UNSET} is not set") as info:
        config.build(store=fido.MemoryStore())
    assert info.value.key == "enrichers[0].api_key_env"
    # the structure is still checked without the adapters
    with pytest.raises(ConfigurationError, match="unknown key"):
        load_config(write(tmp_path, "[store]\npaht = 'x'\n", "typo.toml"), adapters=False)


def test_a_store_that_must_exist_is_not_created(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[store]\npath = "fido-typo.sqlite3"\n'))
    with pytest.raises(ConfigurationError, match=r"no store at .*fido-typo\.sqlite3") as info:
        config.open_store(create=False)
    assert info.value.key == "store.path"
    assert not (tmp_path / "fido-typo.sqlite3").exists()
    config.open_store().close()  # `fido run` creates it
    config.open_store(create=False).close()


def test_option_types_follow_the_annotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Typed:
        def __init__(
            self,
            *,
            name: str = "typed",
            ratio: float = 1.0,
            kinds: list[str] | None = None,
            mode: Literal["fast", "slow"] = "fast",
            anything: Any = None,
            unknown: NotImportable = None,  # type: ignore[name-defined]  # noqa: F821
        ) -> None:
            self.name = name

    monkeypatch.setattr("fido._config.factory", lambda kind, name: Typed)
    table = '[[enrichers]]\ntype = "typed"\n'
    config = load_config(
        write(
            tmp_path,
            table + 'ratio = 2\nkinds = ["a"]\nmode = "slow"\nanything = [1]\nunknown = 3\n',
        )
    )
    assert dict(config.enrichers[0].options)["ratio"] == 2
    for line, expected in (
        ("ratio = true", "expected a number, not True"),
        ('kinds = "a"', "expected a list of strings, not 'a'"),
        ("kinds = [1]", "expected a list of strings, not [1]"),
        ('mode = "medium"', "expected one of 'fast', 'slow', not 'medium'"),
    ):
        with pytest.raises(ConfigurationError, match=re.escape(expected)) as info:
            load_config(write(tmp_path, table + line + "\n"))
        assert info.value.line == 3
