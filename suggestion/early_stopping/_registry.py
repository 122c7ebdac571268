"""Which early-stopping class answers to which ``earlyStopping.algorithmName``.

Plugins register under the entry-point group ``katib.earlystopping``.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from suggestion._registry import UnknownAlgorithmError
from suggestion.early_stopping._base import EarlyStopping

ENTRY_POINT_GROUP = "katib.earlystopping"

_BUILTIN: dict[str, str] = {
    "medianstop": "suggestion.early_stopping.medianstop:MedianStop",
    "asha": "suggestion.early_stopping.asha:AsynchronousSuccessiveHalving",
    "percentile": "suggestion.early_stopping.percentile:PercentileStop",
    "threshold": "suggestion.early_stopping.threshold:ThresholdStop",
}


@cache
def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def early_stopping_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_plugins()))


def get_early_stopping(name: str) -> type[EarlyStopping]:
    target = _BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        known = ", ".join(early_stopping_names())
        raise UnknownAlgorithmError(
            f"unknown early stopping algorithm {name!r} (known: {known})"
        )
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UnknownAlgorithmError(f"early stopping {name!r} could not be loaded: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, EarlyStopping)):
        raise UnknownAlgorithmError(f"early stopping {name!r} ({target}) is not EarlyStopping")
    return cls
