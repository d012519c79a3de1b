"""fido: an embeddable SDK for automated security incident response.

An alert from a detector becomes a typed `Event`; the pipeline enriches it, a pure scoring
engine assesses it on three dimensions (threat, machine, user), a policy turns the
assessment into a decision, and responders carry the decision out. This module is the
public API: everything a user imports comes from here (or from `fido.scoring` and
`fido.testing`); modules whose names start with an underscore are private.
"""

from fido._assessment import Action, Assessment, Contribution, Decision, Dimension
from fido._entities import Host, User
from fido._errors import (
    AdapterError,
    ConfigurationError,
    DetectorError,
    EnrichmentError,
    FidoError,
    InvalidEvent,
    InvalidObservable,
    InvalidRecord,
    ResponderError,
    ScoringError,
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
    EnrichmentFailure,
    FailureKind,
    Incident,
    IncidentStatus,
    ResponseRecord,
    ResponseStatus,
    StageRecord,
)
from fido._observable import Observable, ObservableKind
from fido._severity import Severity, SeverityScale
from fido._version import __version__

__all__ = [
    "Action",
    "AdapterError",
    "Approval",
    "ApprovalStatus",
    "Assessment",
    "ConfigurationError",
    "Contribution",
    "Criticality",
    "Decision",
    "DetectorError",
    "Dimension",
    "EnrichmentError",
    "EnrichmentFailure",
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
    "Observable",
    "ObservableKind",
    "Reliability",
    "Reputation",
    "ResponderError",
    "ResponseRecord",
    "ResponseStatus",
    "ScoringError",
    "Severity",
    "SeverityScale",
    "StageRecord",
    "Subject",
    "User",
    "UserContext",
    "Verdict",
    "__version__",
]
