"""Errors that only the SDK raises.

Each also derives from the built-in exception that Katib's own SDK raises in the same
situation (``ValueError``, ``TimeoutError``, ``RuntimeError``), so code written for Katib's
``kubeflow.katib`` keeps catching them.
"""

from __future__ import annotations

from katib.errors import KatibError


class InvalidArgumentError(KatibError, ValueError):
    """An argument of an SDK call is unusable (wrong type, nothing to change, ...)."""


class ObjectiveFunctionError(KatibError, ValueError):
    """``tune()`` cannot run this function as trials (a lambda, no source, free names, ...)."""


class ExperimentTimeoutError(KatibError, TimeoutError):
    """The experiment did not reach the expected condition in time."""


class ExperimentFailedError(KatibError, RuntimeError):
    """The experiment Failed while we waited for another condition."""


class NotRunningError(KatibError):
    """Nothing runs the experiment, so waiting for it would never end.

    Embedded mode has no background controller: an experiment runs while ``run_experiment()``
    or ``tune()`` (or ``katib run`` in another process) drives it.
    """

