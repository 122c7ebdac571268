"""Suggestion algorithms: the interface, the registry and the built-in algorithms."""

from suggestion._base import (
    EARLY_STOPPED,
    FAILED,
    KILLED,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    Algorithm,
    SettingSpec,
    TrialRecord,
    check_choice,
    check_float,
    check_int,
)
from suggestion._nas import NasOperation, NasSpace
from suggestion._registry import (
    ENTRY_POINT_GROUP,
    UnknownAlgorithmError,
    algorithm_names,
    get_algorithm,
)
from suggestion._space import Parameter, SearchSpace, format_float, grid_size
from suggestion._spec_checks import NAS_ALGORITHMS, SPEC_CHECKS, SpecChecks

__all__ = [
    "EARLY_STOPPED",
    "ENTRY_POINT_GROUP",
    "FAILED",
    "NAS_ALGORITHMS",
    "KILLED",
    "METRICS_UNAVAILABLE",
    "RUNNING",
    "SPEC_CHECKS",
    "SUCCEEDED",
    "Algorithm",
    "NasOperation",
    "NasSpace",
    "Parameter",
    "SearchSpace",
    "SettingSpec",
    "SpecChecks",
    "TrialRecord",
    "UnknownAlgorithmError",
    "algorithm_names",
    "check_choice",
    "check_float",
    "check_int",
    "format_float",
    "get_algorithm",
    "grid_size",
]
