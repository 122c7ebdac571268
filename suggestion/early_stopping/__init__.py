"""Early stopping: rules that end running trials that are unlikely to beat the others."""

from suggestion.early_stopping._base import EarlyStopping, StopDecision, TrialHistory
from suggestion.early_stopping._registry import (
    ENTRY_POINT_GROUP,
    early_stopping_names,
    get_early_stopping,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EarlyStopping",
    "StopDecision",
    "TrialHistory",
    "early_stopping_names",
    "get_early_stopping",
]
