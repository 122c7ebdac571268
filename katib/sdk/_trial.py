"""Inside a trial of ``KatibClient.tune()``: call the function, report what it returns.

The generated script calls :func:`run_trial` with the function and a small JSON description
of the parameters. The trial's arguments are the tuned values as text, in order; they are
turned back into the Python types the search space was given with (float, int, or the list's
own values). This module runs at every trial start, so it imports only the standard library
and :mod:`katib._push`.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from katib._push import ReportError, report_metrics

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def run_trial(
    function: Callable[[dict[str, Any]], Any],
    spec_json: str,
    argv: Sequence[str] | None = None,
    *,
    report_result: bool = True,
) -> dict[str, float]:
    """Call ``function`` with this trial's parameters and report what it returns.

    The function may print ``name=value`` lines (the StdOut collector reads them), call
    ``katib.report_metrics``, or return a dict of metrics or one number (the objective).

    Returns:
        The metrics the function returned. With ``report_result`` False they are not
        reported here: a pool worker hands them to its launcher with the trial's end.
    """
    spec = json.loads(spec_json)
    try:
        parameters = parse_parameters(spec, sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        sys.exit(f"katib: {e}")
    # The trial runs in the folder tune() was called from: let the function import the
    # modules beside it, as it could in the notebook or script that defined it.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    result = function(parameters)
    try:
        metrics = result_metrics(result, spec.get("objectiveMetricName"))
    except ValueError as e:
        sys.exit(f"katib: {e}")
    if metrics and report_result:
        try:
            report(metrics)
        except ReportError as e:
            sys.exit(f"katib: {e}")
    return metrics


def parse_parameters(spec: Mapping[str, Any], argv: Sequence[str]) -> dict[str, Any]:
    """The parameters dict the function receives, in the order tune() was given them."""
    tuned = spec["tuned"]
    if len(argv) != len(tuned):
        names = ", ".join(t["name"] for t in tuned)
        raise ValueError(f"expected {len(tuned)} argument(s) ({names}), got {len(argv)}")
    values = {t["name"]: _convert(t, text) for t, text in zip(tuned, argv, strict=True)}
    fixed = spec.get("fixed") or {}
    return {name: values[name] if name in values else fixed[name] for name in spec["order"]}


def _convert(entry: Mapping[str, Any], text: str) -> Any:
    kind = entry["type"]
    try:
        if kind == "double":
            return float(text)
        if kind == "int":
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
    except ValueError:
        raise ValueError(f"parameter {entry['name']}: {text!r} is not a {kind}") from None
    choices = {str(t): v for t, v in entry.get("choices") or []}
    return choices.get(text, text)


def result_metrics(result: Any, objective_metric_name: str | None) -> dict[str, float]:
    """The metrics a function's return value stands for: a dict, one number, or nothing."""
    if result is None:
        return {}
    if isinstance(result, bool):
        raise ValueError(f"the objective function returned {result!r}, not a metric value")
    if isinstance(result, int | float):
        if not objective_metric_name:
            raise ValueError("the objective function returned a number but no metric is named")
        return {objective_metric_name: _finite(objective_metric_name, result)}
    if isinstance(result, Mapping):
        return {str(k): _finite(str(k), v) for k, v in result.items()}
    raise ValueError(
        f"the objective function returned {type(result).__name__}: return a dict of metrics "
        "({'loss': 0.1}), the objective value, or None (and print or report the metrics)"
    )


def _finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric {name}: {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"metric {name}: {value!r} is not a finite number")
    return number


def report(metrics: Mapping[str, float]) -> None:
    """Push to the trial's endpoint; print ``name=value`` when run by hand, outside katib."""
    if os.environ.get("KATIB_API_URL") and os.environ.get("KATIB_TRIAL_NAME"):
        report_metrics(metrics)
        return
    for name, value in metrics.items():
        print(f"{name}={value!r}")


def requirement_name(requirement: str) -> str | None:
    """The distribution a requirement (``pkg``, ``pkg>=1.2``, ``pkg[extra]``) names."""
    match = _REQUIREMENT_NAME.match(requirement)
    return match.group(1) if match else None


def missing_packages(requirements: Sequence[str]) -> list[str]:
    """The requirements whose distribution is not installed in this Python."""
    from importlib import metadata  # only trials that name packages pay for it

    missing = []
    for requirement in requirements:
        name = requirement_name(requirement)
        try:
            if name is None:
                raise metadata.PackageNotFoundError(requirement)
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def require_packages(requirements: Sequence[str]) -> None:
    """End the trial with a message naming ``packages_to_install`` this Python lacks.

    Through a server, the client cannot see the Python that runs the trials, so the trial
    checks for itself before calling the function.
    """
    missing = missing_packages(requirements)
    if missing:
        sys.exit(
            f"katib: packages_to_install: {', '.join(missing)} not installed in the Python "
            f"that runs the trials ({sys.executable}); install them there (pip install ...), "
            "then run the experiment again"
        )
