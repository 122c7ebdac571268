"""Katib-style hyperparameter tuning: run Katib v1beta1 experiments locally or on a cluster.

``report_metrics`` is importable at no cost from inside a trial; nothing heavy is imported
until it is used: ``KatibClient`` and ``search`` (the SDK) load on first access.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from katib._push import ReportError, push_observations, report_metrics

if TYPE_CHECKING:
    from katib.sdk import KatibClient, search

__all__ = ["KatibClient", "ReportError", "push_observations", "report_metrics", "search"]


def __getattr__(name: str) -> Any:
    if name == "KatibClient":
        return import_module("katib.sdk._client").KatibClient
    if name == "search":
        return import_module("katib.sdk.search")
    raise AttributeError(f"module 'katib' has no attribute {name!r}")
