"""fido: an embeddable SDK for automated security incident response.

An alert from a detector becomes a typed `Event`; the pipeline enriches it, a pure scoring
engine assesses it on three dimensions (threat, machine, user), a policy turns the
assessment into a decision, and responders carry the decision out. This module is the
public API: everything a user imports comes from here (or from `fido.scoring` and
`fido.testing`); modules whose names start with an underscore are private.
"""

from fido._allowlist import Allowlist, AllowlistEntry, EntryKind
from fido._assessment import Action, Assessment, Contribution, Decision, Dimension
from fido._config import Config, load_config
from fido._deadletter import DeadLetter
from fido._entities import Host, User
from fido._errors import (
    AdapterError,
    ApprovalError,
    ConfigurationError,
    ConflictError,
    DetectorError,
    EnrichmentError,
    FidoError,
    InvalidEvent,
    InvalidObservable,
    InvalidRecord,
    ResponderError,
    ScoringError,
    StoreBusy,
)
from fido._event import Event
from fido._findings import (
    Criticality,
    Finding,
    HostContext,
    Reliability,
    Reputation,
    Subject,
    UserContext,
    Verdict,
)
from fido._incident import (
    Approval,
    ApprovalStatus,
    EmptyLookup,
    EnrichmentFailure,
    FailureKind,
    Incident,
    IncidentStatus,
    ResponseRecord,
    ResponseStatus,
    StageRecord,
)
from fido._logging import ContextFilter
from fido._memory import MemoryStore
from fido._observable import Observable, ObservableKind
from fido._pipeline import Pipeline
from fido._protocols import Cursor, Detector, Enricher, PollResult, Responder
from fido._run import DetectorState, RunSummary
from fido._runtime import Limits
from fido._severity import Severity, SeverityScale
from fido._sqlite import SQLiteStore
from fido._store import Store
from fido._version import __version__

__all__ = [
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
