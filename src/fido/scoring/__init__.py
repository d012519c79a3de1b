"""The pure scoring engine and the policy.

`assess(incident, findings, history, policy, now)` scores an incident on three dimensions
(threat, machine, user) and explains every point; `policy.decide(assessment)` turns the
assessment into a decision; `replay(incidents, policy)` shows what a new policy would
change. Nothing here does I/O, reads a clock or keeps global state, and nothing imports the
pipeline, the store or an adapter: only the model types.
"""

from fido.scoring._engine import assess
from fido.scoring._history import History, PriorIncident
from fido.scoring._policy import Policy
from fido.scoring._replay import Change, Comparison, replay
from fido.scoring._sections import (
    ActionRule,
    AgeTier,
    AssetGroup,
    DecisionPolicy,
    Level,
    MachinePolicy,
    Recommendation,
    ThreatPolicy,
    Tier,
    UserPolicy,
    Watch,
    WordList,
)

__all__ = [
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
