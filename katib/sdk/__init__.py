"""The Python SDK: ``KatibClient`` and ``search``, with Katib's names (``kubeflow.katib``).

Importing this package is cheap (trials import :mod:`katib.sdk._trial` through it); the
client and its dependencies load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from katib.sdk import search
    from katib.sdk._client import KatibClient
    from katib.sdk._errors import (
        ExperimentFailedError,
        ExperimentTimeoutError,
        InvalidArgumentError,
        NotRunningError,
        ObjectiveFunctionError,
    )
    from katib.sdk._types import (
        LoggedMetric,
        Metric,
        MetricLog,
        Observation,
        OptimalTrial,
        ParameterAssignment,
        ParetoTrial,
    )

_EXPORTS = {
    "KatibClient": "katib.sdk._client",
    "ExperimentFailedError": "katib.sdk._errors",
    "ExperimentTimeoutError": "katib.sdk._errors",
    "InvalidArgumentError": "katib.sdk._errors",
    "NotRunningError": "katib.sdk._errors",
    "ObjectiveFunctionError": "katib.sdk._errors",
    "LoggedMetric": "katib.sdk._types",
    "Metric": "katib.sdk._types",
    "MetricLog": "katib.sdk._types",
    "Observation": "katib.sdk._types",
    "OptimalTrial": "katib.sdk._types",
    "ParameterAssignment": "katib.sdk._types",
    "ParetoTrial": "katib.sdk._types",
}

__all__ = [
    "ExperimentFailedError",
    "ExperimentTimeoutError",
    "InvalidArgumentError",
    "KatibClient",
    "LoggedMetric",
    "Metric",
    "MetricLog",
    "NotRunningError",
    "Observation",
    "ObjectiveFunctionError",
    "OptimalTrial",
    "ParameterAssignment",
    "ParetoTrial",
    "search",
]


def __getattr__(name: str) -> Any:
    if name == "search":
        return import_module("katib.sdk.search")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'katib.sdk' has no attribute {name!r}")
    return getattr(import_module(module), name)
