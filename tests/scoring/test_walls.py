"""fido.scoring is pure: it imports only the model, never I/O, a clock or the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import fido.scoring

ALLOWED_FIDO = {
    "fido._assessment",
    "fido._entities",
    "fido._errors",
    "fido._event",
    "fido._findings",
    "fido._incident",
    "fido._observable",
    "fido._severity",
    "fido._serde",
    "fido._enums",
}
FORBIDDEN = {
    "httpx",
    "ldap3",
    "sqlite3",
    "asyncio",
    "socket",
    "time",
    "random",
    "threading",
    "os",
    "subprocess",
    "urllib.request",
}


def modules() -> list[Path]:
    return sorted(Path(fido.scoring.__file__).parent.glob("*.py"))


def test_scoring_imports_only_the_model() -> None:
    for path in modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
                assert name not in FORBIDDEN, f"{path.name} imports {name}"
                if name.startswith("fido") and not name.startswith("fido.scoring"):
                    assert name in ALLOWED_FIDO or name == "fido", f"{path.name} imports {name}"


def test_scoring_reads_no_clock() -> None:
    for path in modules():
        text = path.read_text()
        for call in ("datetime.now", ".now(", "utcnow", "time.time", "monotonic"):
            assert call not in text, f"{path.name} reads the clock ({call})"


def test_public_names() -> None:
    assert fido.scoring.__all__ == sorted(fido.scoring.__all__)
    assert fido.scoring.__all__ == [
        "ActionRule",
        "AgeTier",
        "AssetGroup",
        "Change",
        "Comparison",
        "DecisionPolicy",
        "History",
        "Level",
        "MachinePolicy",
        "Policy",
        "PriorIncident",
        "Recommendation",
        "ThreatPolicy",
        "Tier",
        "UserPolicy",
        "Watch",
        "WordList",
        "assess",
        "replay",
    ]
