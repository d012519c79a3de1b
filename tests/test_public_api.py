"""The public API is curated: this test locks it. Change it on purpose, with the changelog."""

from __future__ import annotations

import importlib
import pkgutil

import fido

PUBLIC = [
    "Action",
    "AdapterError",
    "Allowlist",
    "AllowlistEntry",
    "Approval",
    "ApprovalError",
    "ApprovalStatus",
    "Assessment",
    "Config",
    "ConfigurationError",
    "ConflictError",
    "ContextFilter",
    "Contribution",
    "Criticality",
    "Cursor",
    "DeadLetter",
    "Decision",
    "Detector",
    "DetectorError",
    "DetectorState",
    "Dimension",
    "EmptyLookup",
    "Enricher",
    "EnrichmentError",
    "EnrichmentFailure",
    "EntryKind",
    "Event",
    "FailureKind",
    "FidoError",
    "Finding",
    "Host",
    "HostContext",
    "Incident",
    "IncidentStatus",
    "InvalidEvent",
    "InvalidObservable",
    "InvalidRecord",
    "Limits",
    "MemoryStore",
    "Observable",
    "ObservableKind",
    "Pipeline",
    "PollResult",
    "Reliability",
    "Reputation",
    "Responder",
    "ResponderError",
    "ResponseRecord",
    "ResponseStatus",
    "RunSummary",
    "SQLiteStore",
    "ScoringError",
    "Severity",
    "SeverityScale",
    "StageRecord",
    "Store",
    "StoreBusy",
    "Subject",
    "User",
    "UserContext",
    "Verdict",
    "__version__",
    "load_config",
]


def test_all_is_locked_and_sorted() -> None:
    assert fido.__all__ == PUBLIC
    assert fido.__all__ == sorted(fido.__all__)


def test_every_name_is_importable_and_documented() -> None:
    for name in fido.__all__:
        obj = getattr(fido, name)
        if name != "__version__" and isinstance(obj, type):
            assert obj.__doc__, name
            assert obj.__module__.startswith("fido._"), name


def test_no_other_public_names() -> None:
    names = {n for n in vars(fido) if not n.startswith("_")}
    modules = {n for n, _ in vars(fido).items() if n in {"scoring", "testing", "adapters"}}
    assert names - modules == set(PUBLIC) - {"__version__"}


def test_private_modules_are_private() -> None:
    public_modules = {"fido.scoring", "fido.testing", "fido.adapters"}
    for info in pkgutil.walk_packages(fido.__path__, "fido."):
        parts = info.name.split(".")[1:]
        if info.name in public_modules or info.name.startswith("fido.adapters."):
            continue
        assert any(part.startswith("_") for part in parts), (
            f"{info.name} should be private (a name starting with _)"
        )


def test_version() -> None:
    assert isinstance(fido.__version__, str)
    assert importlib.metadata.version("fido-ir") == fido.__version__
