"""Turning a Python function into a Katib experiment whose trials call it.

As Katib's SDK does, ``tune()`` ships the function's *source*, not a pickle: the function is
written into a script that each trial runs as its own process, with the trial's parameters as
arguments (``${trialParameters.<name>}`` placeholders in the trial template). Embedded, the
script is a file (``$KATIB_HOME/functions/<namespace>/<experiment>/objective.py``); through a
server it travels inside the experiment, as ``python -c <script>``. So the function must be
self-contained: imports inside it, no names from the notebook around it. This module checks
that up front, so that a mistake shows as one clear error instead of N failed trials.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import json
import symtable
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katib.sdk import _trial
from katib.sdk._errors import InvalidArgumentError, ObjectiveFunctionError
from katib.sdk._search import Parameter
from katib.spec import API_VERSION, KIND
from katib.storage import katib_home
from trial_runner.local import EXECUTOR_ANNOTATION
from trial_runner.local import POOL_ENTRY_POINT as ENTRY_POINT

PRIMARY_CONTAINER = "training-container"
SCRIPT_NAME = "objective.py"
GPU_RESOURCE = "nvidia.com/gpu"
#: Names a module defines by itself; the script may use them.
_MODULE_NAMES = frozenset(
    {"__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__", "__builtins__"}
)
EXECUTORS = ("pool", "process")
#: Linux's MAX_ARG_STRLEN: the most bytes one argument of a command may have, NUL included.
MAX_ARG_BYTES = 131072


@dataclass(frozen=True)
class ObjectiveSource:
    """A function's source, ready to be written into a trial script."""

    name: str
    source: str


def function_source(objective: object) -> ObjectiveSource:
    """The dedented source of ``objective`` without decorators, after checking it can run alone.

    Raises:
        ObjectiveFunctionError: ``objective`` is not a plain function of one argument, its
            source cannot be found, or it uses names defined outside it.
    """
    if not callable(objective):
        raise ObjectiveFunctionError(f"objective must be a function, got {objective!r}")
    if not inspect.isfunction(objective):
        raise ObjectiveFunctionError(
            f"objective must be a plain function defined with def, got {objective!r} "
            "(methods, functools.partial and callable objects cannot be shipped as source)"
        )
    name = objective.__name__
    if name == "<lambda>":
        raise ObjectiveFunctionError(
            "objective cannot be a lambda: tune() runs the function's source in each trial, "
            "so define it with def"
        )
    if inspect.iscoroutinefunction(objective) or inspect.isasyncgenfunction(objective):
        raise ObjectiveFunctionError(f"objective {name} is async: define it with plain def")
    if inspect.isgeneratorfunction(objective):
        raise ObjectiveFunctionError(
            f"objective {name} is a generator: return the metrics (or print them, or call "
            "katib.report_metrics) instead of yielding them"
        )
    try:
        inspect.signature(objective).bind({})
    except TypeError as e:
        raise ObjectiveFunctionError(
            f"objective {name} must take exactly one argument, the dict of parameters ({e})"
        ) from e
    try:
        raw = inspect.getsource(objective)
    except (OSError, TypeError) as e:
        raise ObjectiveFunctionError(
            f"the source of objective {name} cannot be found ({e}); define it in a file or a "
            "notebook cell, not with exec() or in an interactive interpreter"
        ) from e
    source = _strip_decorators(textwrap.dedent(raw), name)
    if objective.__code__.co_freevars:
        names = ", ".join(objective.__code__.co_freevars)
        raise ObjectiveFunctionError(
            f"objective {name} uses variables of the function around it ({names}); each trial "
            "runs only the function's own source, so pass them as parameters or define them "
            "inside it"
        )
    outside = _outside_names(source, name)
    if outside:
        raise ObjectiveFunctionError(
            f"objective {name} uses names defined outside it: {', '.join(outside)}. Each trial "
            "runs only the function's own source: put imports and helpers inside the "
            "function, and pass values as parameters"
        )
    return ObjectiveSource(name, source)


def _strip_decorators(source: str, name: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ObjectiveFunctionError(f"the source of objective {name} does not parse: {e}") from e
    node = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(node, ast.FunctionDef) or node.name != name:
        raise ObjectiveFunctionError(
            f"the source found for objective {name} is not a single def statement"
        )
    lines = source.splitlines()
    assert node.end_lineno is not None
    return "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"


def _outside_names(source: str, name: str) -> list[str]:
    """Global names the function (or its defaults) reads that a fresh module will not have.

    ``symtable`` tells a global name apart from an attribute (``np`` vs ``x.np``) and from a
    name of an enclosing function; annotations are skipped (the script never evaluates them).
    """
    table = symtable.symtable("from __future__ import annotations\n" + source, "objective", "exec")
    known = set(dir(builtins)) | _MODULE_NAMES | {name}
    found: set[str] = set()
    for symbol in table.get_symbols():  # default values are evaluated in the module
        if symbol.is_referenced() and not symbol.is_assigned():
            found.add(symbol.get_name())

    def walk(scope: symtable.SymbolTable) -> None:
        for symbol in scope.get_symbols():
            if symbol.is_global() and symbol.is_referenced() and not symbol.is_assigned():
                found.add(symbol.get_name())
        for child in scope.get_children():
            walk(child)

    for child in table.get_children():
        walk(child)
    return sorted(found - known)


# The script ------------------------------------------------------------------------------


def functions_dir(namespace: str, experiment: str) -> Path:
    return katib_home() / "functions" / namespace / experiment


def script_text(
    objective: ObjectiveSource,
    spec: Mapping[str, Any],
    namespace: str,
    experiment: str,
    *,
    inline: bool = False,
    packages: Sequence[str] = (),
) -> str:
    """The trial script: the function, then a call with the trial's parameters.

    Args:
        objective: The function's source.
        spec: :func:`trial_call_spec` of the parameters.
        namespace: The experiment's namespace (for the header).
        experiment: The experiment's name (for the header).
        inline: The script runs as ``python -c`` (through a server), not from a file.
        packages: Requirements the trial checks are installed before it calls the function.
    """
    how = "-c <this script>" if inline else SCRIPT_NAME
    check = (
        f"    _katib_trial.require_packages({json.dumps(list(packages))})\n" if packages else ""
    )
    return (
        f"# Generated by KatibClient.tune() for experiment {namespace}/{experiment}.\n"
        f"# Each trial runs: python -u {how} <one value per tuned parameter>\n"
        f"# (or a pool worker that imported this script once calls {ENTRY_POINT}(argv, False)\n"
        "# and takes the metrics it returns).\n"
        "from __future__ import annotations\n\n\n"
        f"{objective.source}\n\n"
        f"def {ENTRY_POINT}(argv, report=True):\n"
        "    import katib.sdk._trial as _katib_trial\n\n"
        f"{check}"
        f"    return _katib_trial.run_trial(\n"
        f"        {objective.name}, {json.dumps(spec, sort_keys=True)!r}, argv, "
        "report_result=report\n    )\n\n\n"
        'if __name__ == "__main__":\n'
        "    import sys\n\n"
        f"    {ENTRY_POINT}(sys.argv[1:])\n"
    )


def inline_command(script: str) -> list[str]:
    """The trial command that runs ``script`` given inline (``python -u -c SCRIPT``).

    Raises:
        InvalidArgumentError: the script is too long for one argument of a command.
    """
    size = len(script.encode())
    if size + 1 > MAX_ARG_BYTES:
        raise InvalidArgumentError(
            f"the objective function's trial script is {size} bytes: through a server each "
            f"trial runs it as `python -c SCRIPT`, and one argument of a command holds at most "
            f"{MAX_ARG_BYTES - 1} bytes; make the function smaller (read large data from files "
            "on the server instead of writing it into the source)"
        )
    return ["python", "-u", "-c", script]


def trial_call_spec(
    parameters: Mapping[str, Any], objective_metric_name: str | None
) -> dict[str, Any]:
    """What the trial script needs to rebuild the parameters dict from its arguments.

    Tuned parameters arrive as arguments in ``tuned`` order; fixed values are stored here.
    """
    tuned: list[dict[str, Any]] = []
    fixed: dict[str, Any] = {}
    for name, value in parameters.items():
        if isinstance(value, Parameter):
            entry: dict[str, Any] = {"name": name, "type": value.parameter_type}
            if value.choices:
                pairs = zip(value.values, value.choices, strict=True)
                entry["choices"] = [[text, choice] for text, choice in pairs]
            tuned.append(entry)
        else:
            fixed[name] = value
    try:
        json.dumps(fixed, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(
            f"parameters: fixed values must be JSON data (numbers, strings, lists, dicts): {e}"
        ) from e
    return {
        "order": list(parameters),
        "tuned": tuned,
        "fixed": fixed,
        "objectiveMetricName": objective_metric_name,
    }


# The experiment --------------------------------------------------------------------------


def check_parameters(parameters: object) -> dict[str, Any]:
    if not isinstance(parameters, Mapping) or not parameters:
        raise InvalidArgumentError(
            "parameters must be a non-empty dict such as {'lr': search.double(0.01, 0.1)}"
        )
    for key in parameters:
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"parameters: {key!r} is not a parameter name")
    if not any(isinstance(v, Parameter) for v in parameters.values()):
        raise InvalidArgumentError(
            "parameters: none is tuned; give at least one search space such as "
            "search.double(0.01, 0.1)"
        )
    return dict(parameters)


def build_experiment(
    *,
    name: str,
    namespace: str,
    parameters: Mapping[str, Any],
    command: Sequence[str],
    base_image: str | None,
    env_per_trial: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    algorithm_name: str,
    algorithm_settings: Mapping[str, Any] | Sequence[Any] | None,
    objective_metric_name: str | None,
    additional_metric_names: Sequence[str] | None,
    objective_type: str,
    objective_goal: float | None,
    max_trial_count: int | None,
    parallel_trial_count: int | None,
    max_failed_trial_count: int | None,
    resources_per_trial: Mapping[str, Any] | None,
    retain_trials: bool,
    metrics_collector_config: Mapping[str, Any] | None,
    resume_policy: str | None = None,
    executor: str = "process",
) -> dict[str, Any]:
    """The Katib Experiment document (camelCase) whose trials run ``command``, with one
    argument per tuned parameter; ``executor="pool"`` marks the pod template for the local
    launcher's worker pool."""
    tuned = [(n, p) for n, p in parameters.items() if isinstance(p, Parameter)]
    container: dict[str, Any] = {
        "name": PRIMARY_CONTAINER,
        "image": base_image or default_image(),
        "command": list(command),
        "args": [f"${{trialParameters.{n}}}" for n, _ in tuned],
    }
    env = _env(env_per_trial)
    if env:
        container["env"] = env
    resources = _resources(resources_per_trial)
    if resources:
        container["resources"] = resources
    annotations = {"sidecar.istio.io/inject": "false"}
    if executor == "pool":
        annotations[EXECUTOR_ANNOTATION] = "pool"
    objective: dict[str, Any] = {
        "type": objective_type,
        "objectiveMetricName": objective_metric_name,
        "additionalMetricNames": list(additional_metric_names or []),
    }
    if objective_goal is not None:
        objective["goal"] = objective_goal
    spec: dict[str, Any] = {
        "objective": objective,
        "algorithm": {
            "algorithmName": algorithm_name,
            "algorithmSettings": _settings(algorithm_settings),
        },
        "parameters": [p.to_wire(n) for n, p in tuned],
        "metricsCollectorSpec": {"collector": {"kind": _collector_kind(metrics_collector_config)}},
        "trialTemplate": {
            "primaryContainerName": PRIMARY_CONTAINER,
            "retain": retain_trials,
            "trialParameters": [
                {"name": n, "description": f"{p.parameter_type} parameter {n}", "reference": n}
                for n, p in tuned
            ],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "metadata": {"annotations": annotations},
                        "spec": {"restartPolicy": "Never", "containers": [container]},
                    }
                },
            },
        },
    }
    for key, value in (
        ("maxTrialCount", max_trial_count),
        ("parallelTrialCount", parallel_trial_count),
        ("maxFailedTrialCount", max_failed_trial_count),
    ):
        if value is not None:
            spec[key] = value
    if resume_policy is not None:
        spec["resumePolicy"] = resume_policy
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def stored_executor(experiment: Mapping[str, Any]) -> str:
    """The executor a stored experiment (Katib JSON) was created with: ``pool`` when its pod
    template carries the annotation, else ``process`` (also for experiments older than it)."""
    template = ((experiment.get("spec") or {}).get("trialTemplate") or {}).get("trialSpec") or {}
    pod = (template.get("spec") or {}).get("template") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return "pool" if annotations.get(EXECUTOR_ANNOTATION) == "pool" else "process"


def default_image() -> str:
    """An image with this Python version (used on a cluster; local trials use this Python)."""
    return f"docker.io/library/python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def _settings(settings: Mapping[str, Any] | Sequence[Any] | None) -> list[dict[str, str]]:
    if settings is None:
        return []
    if isinstance(settings, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in settings.items()]
    out = []
    for item in settings:
        if isinstance(item, Mapping) and "name" in item:
            out.append({"name": str(item["name"]), "value": str(item.get("value", ""))})
        elif hasattr(item, "name") and hasattr(item, "value"):
            out.append({"name": str(item.name), "value": str(item.value)})
        else:
            raise InvalidArgumentError(
                f"algorithm_settings: {item!r} is not a setting; use a dict {{name: value}}"
            )
    return out


def _env(env: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    if env is None:
        return []
    if isinstance(env, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in env.items()]
    out = []
    for item in env:
        if not isinstance(item, Mapping) or "name" not in item or "value" not in item:
            raise InvalidArgumentError(
                f"env_per_trial: {item!r} is not {{'name': ..., 'value': ...}}; "
                "or give a dict {name: value}"
            )
        out.append({"name": str(item["name"]), "value": str(item["value"])})
    return out


def _resources(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Katib's shorthand ``{"cpu", "memory", "gpu"}`` as requests and limits."""
    if not resources:
        return {}
    if not isinstance(resources, Mapping):
        raise InvalidArgumentError(
            f"resources_per_trial: expected a dict such as {{'cpu': '2'}}, got {resources!r}"
        )
    if set(resources) <= {"requests", "limits", "claims"}:
        return dict(resources)  # already a ResourceRequirements document
    amounts = {(GPU_RESOURCE if k == "gpu" else str(k)): str(v) for k, v in resources.items()}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _collector_kind(config: Mapping[str, Any] | None) -> str:
    if config is None:
        return "StdOut"
    if not isinstance(config, Mapping) or not isinstance(config.get("kind"), str):
        raise InvalidArgumentError(
            f"metrics_collector_config: expected {{'kind': 'StdOut'}} or {{'kind': 'Push'}}, "
            f"got {config!r}"
        )
    return str(config["kind"])


def check_requirements(requirements: Sequence[str]) -> list[str]:
    """``packages_to_install`` as a list, each naming a package.

    Raises:
        InvalidArgumentError: one does not start with a package name.
    """
    if isinstance(requirements, str):
        requirements = [requirements]
    out = [str(r) for r in requirements]
    for requirement in out:
        if _trial.requirement_name(requirement) is None:
            raise InvalidArgumentError(f"packages_to_install: {requirement!r} is not a package")
    return out


def missing_packages(requirements: Sequence[str]) -> list[str]:
    """Requirements (``pkg``, ``pkg>=1.2``, ``pkg[extra]``) not installed in this Python."""
    return _trial.missing_packages(check_requirements(requirements))
