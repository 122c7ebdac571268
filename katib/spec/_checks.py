"""The small interface through which algorithms check the parts of a spec they own.

Which algorithm names exist, which settings each takes and in what range, and which search
spaces it can use are the algorithms' business (``suggestion``), not the spec's. The spec
asks an :class:`AlgorithmChecks` instead of importing them; the installed one is found
through the ``katib.spec`` entry-point group (``algorithms``), as algorithms themselves are
found through ``katib.suggestion``.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol, runtime_checkable

from katib.errors import FieldError
from katib.spec._models import AlgorithmSpec, ExperimentSpec

#: The entry-point group and name of the installed checks.
ENTRY_POINT_GROUP = "katib.spec"
ENTRY_POINT_NAME = "algorithms"


@runtime_checkable
class AlgorithmChecks(Protocol):
    """Checks of ``spec.algorithm`` and ``spec.earlyStopping``, each problem at its path."""

    def check_algorithm(self, spec: ExperimentSpec, parameters_valid: bool) -> list[FieldError]:
        """Problems with ``spec.algorithm``: its name, its settings, and (when
        ``parameters_valid``: the search space is valid) whether it can search
        ``spec.parameters``, or ``spec.nasConfig`` when the experiment has no parameters."""

    def check_early_stopping(self, early: AlgorithmSpec) -> list[FieldError]:
        """Problems with ``spec.earlyStopping``: its name and its settings."""


@cache
def algorithm_checks() -> AlgorithmChecks | None:
    """The installed checks, or None when no package provides them."""
    from importlib.metadata import entry_points  # here: it costs a zipfile import

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=ENTRY_POINT_NAME):
        checks = ep.load()
        if isinstance(checks, AlgorithmChecks):
            return checks
    return None
