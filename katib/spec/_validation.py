"""Katib's admission rules for an Experiment, reporting every problem with its field path.

This module owns the semantic checks that Katib's validating webhook makes (and a few more
that users would otherwise only discover when a trial fails): a defaulted
:class:`~katib.spec.Experiment` goes in, a list of :class:`~katib.errors.FieldError` comes
out, never an exception. Shape problems (wrong types, unknown fields) are the loader's job.
Messages follow Katib's webhook wording where Katib has one.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Sequence
from typing import Any

from katib.errors import FieldError
from katib.spec._checks import AlgorithmChecks, algorithm_checks
from katib.spec._kfp_run import is_kfp_run, kfp_run_problems
from katib.spec._models import (
    API_VERSION,
    KIND,
    KUBEFLOW_JOB_KINDS,
    CollectorKind,
    Distribution,
    Experiment,
    ExperimentSpec,
    FileFormat,
    FileSystemKind,
    MetricsCollectorSpec,
    MetricStrategyType,
    NasConfig,
    Objective,
    ObjectiveType,
    ParameterSpec,
    ParameterType,
    ResumePolicy,
    TrialTemplate,
)
from katib.spec._substitution import (
    META_KEYS,
    META_MAP_KEYS,
    PLACEHOLDER_RE,
    iter_pod_containers,
    iter_strings,
    parse_meta_reference,
)

#: Longest experiment name: Katib derives trial, suggestion and service names from it.
MAX_NAME_LENGTH = 40

_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_EDITABLE_ON_RESTART = ("max_trial_count", "parallel_trial_count", "max_failed_trial_count")
_LOG_DISTRIBUTIONS = (Distribution.LOG_UNIFORM.value, Distribution.LOG_NORMAL.value)


class _Errors:
    """Collects field errors; ``add(path, message)`` keeps the call sites short."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldError(path, message))


def validate_experiment(exp: Experiment, checks: AlgorithmChecks | None = None) -> list[FieldError]:
    """Every admission-rule violation in an experiment.

    Args:
        exp: The experiment after :meth:`Experiment.with_defaults` (conditions, collector
            and metric strategies defaulted), as :func:`load_experiments` produces it.
        checks: The algorithm-specific rules (known names, settings, search spaces); by
            default the installed ones (:func:`~katib.spec.algorithm_checks`).

    Returns:
        One :class:`FieldError` per problem, in field order; empty when the experiment is
        valid.
    """
    errors = _Errors()
    spec = exp.spec
    _check_header(exp, errors)
    _check_counts(spec, errors)
    _check_objective(spec.objective, errors)
    _check_multi_objective(spec, errors)
    _check_resume_policy(spec.resume_policy, errors)
    parameters_valid = _check_search_space(spec, errors)
    _check_algorithms(spec, parameters_valid, checks or algorithm_checks(), errors)
    _check_trial_template(spec, errors)
    _check_metrics_collector(spec.metrics_collector_spec, errors)
    _check_kfp_run_collector(spec, errors)
    _check_warm_start(exp, errors)
    return errors.items


def validate_restart(old: Experiment, new: Experiment, trials_run: int) -> list[FieldError]:
    """Problems with restarting (or resubmitting) ``old`` as ``new``.

    Only the three trial counts may change; every other changed spec field is reported by
    its path. Whether ``resumePolicy`` allows a restart at all is the caller's decision (it
    depends on how the experiment ended). ``new`` is not validated as a whole here: use
    :func:`validate_experiment` for that.

    Args:
        old: The stored experiment (defaulted).
        new: The experiment as resubmitted (defaulted the same way).
        trials_run: How many trials the experiment has created so far.

    Returns:
        One :class:`FieldError` per problem; empty when the restart is allowed.
    """
    errors = _Errors()
    old_spec = old.spec.model_dump(mode="json")
    new_spec = new.spec.model_dump(mode="json")
    for name, info in ExperimentSpec.model_fields.items():
        if name in _EDITABLE_ON_RESTART:
            continue
        if old_spec.get(name) != new_spec.get(name):
            errors.add(
                f"spec.{info.alias or name}",
                "only spec.parallelTrialCount, spec.maxTrialCount and "
                "spec.maxFailedTrialCount are editable",
            )
    max_trials = new.spec.max_trial_count
    if max_trials is not None and max_trials <= trials_run:
        errors.add(
            "spec.maxTrialCount",
            f"must be greater than status.trials count ({trials_run} trials already run),"
            f" got {max_trials}",
        )
    return errors.items


# --- warm start (an extension of Katib's spec) ---------------------------------------------


def _check_warm_start(exp: Experiment, errors: _Errors) -> None:
    warm = exp.spec.warm_start
    if warm is None:
        return
    path = "spec.warmStart.experiments"
    if not warm.experiments:
        errors.add(path, "must name at least one experiment to start from")
    if exp.spec.nas_config is not None:
        errors.add("spec.warmStart", "a neural architecture search cannot be warm-started")
    seen: set[str] = set()
    for i, name in enumerate(warm.experiments):
        item = f"{path}[{i}]"
        if not name or not _NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
            errors.add(item, f"{name!r} is not an experiment name")
        elif name == exp.metadata.name:
            errors.add(item, "an experiment cannot warm-start from itself")
        elif name in seen:
            errors.add(item, f"duplicate experiment {name!r}")
        seen.add(name)


def validate_warm_start(
    exp: Experiment, sources: Sequence[tuple[str, Experiment | None]]
) -> list[FieldError]:
    """Whether ``exp`` can start from the trials of ``sources`` (name, stored experiment or
    None when there is none of that name), in the order of ``spec.warmStart.experiments``.

    A source is compatible when it has exactly the same parameters, each of the same type,
    and collected every metric ``exp`` optimizes. Ranges and lists may differ: trials outside
    ``exp``'s feasible space are not used.
    """
    errors = _Errors()
    objective = exp.spec.objective
    wanted = [name for name, _ in objective.objectives()] if objective else []
    mine = {p.name: p.parameter_type for p in exp.spec.parameters if p.name}
    for i, (name, source) in enumerate(sources):
        item = f"spec.warmStart.experiments[{i}]"
        if source is None:
            errors.add(item, f"experiment {exp.namespace}/{name} not found")
            continue
        if source.spec.nas_config is not None or not source.spec.parameters:
            errors.add(item, f"experiment {name} searched neural architectures, not parameters")
            continue
        theirs = {p.name: p.parameter_type for p in source.spec.parameters if p.name}
        for param, kind in mine.items():
            if param not in theirs:
                errors.add(
                    item,
                    f"incompatible search space: experiment {name} has no parameter {param!r}",
                )
            elif theirs[param] != kind:
                errors.add(
                    item,
                    f"incompatible search space: parameter {param!r} is {kind} here and"
                    f" {theirs[param]} in experiment {name}",
                )
        for param in theirs:
            if param not in mine:
                errors.add(
                    item,
                    f"incompatible search space: experiment {name} has parameter {param!r},"
                    " which this experiment does not",
                )
        collected = source.spec.objective.all_metric_names() if source.spec.objective else []
        for metric in wanted:
            if metric not in collected:
                errors.add(
                    item,
                    f"experiment {name} did not collect metric {metric!r}"
                    f" (it collected {', '.join(collected) or 'none'})",
                )
    return errors.items


# --- metadata and counts ------------------------------------------------------------------


def _check_header(exp: Experiment, errors: _Errors) -> None:
    for path, value, expected in (
        ("apiVersion", exp.api_version, API_VERSION),
        ("kind", exp.kind, KIND),
    ):
        if not value:
            errors.add(path, f"must be specified ({expected})")
        elif value != expected:
            errors.add(path, f"must be {expected}, got {value!r}")
    name = exp.metadata.name
    if not name:
        errors.add("metadata.name", "must be specified")
    else:
        if not _NAME_RE.match(name):
            errors.add(
                "metadata.name",
                f"{name!r}: name must consist of lower case alphanumeric characters or '-',"
                " start with an alphabetic character, and end with an alphanumeric character"
                " (e.g. 'my-name', or 'abc-123')",
            )
        if len(name) > MAX_NAME_LENGTH:
            errors.add(
                "metadata.name",
                f"must be no more than {MAX_NAME_LENGTH} characters, got {len(name)}",
            )
    namespace = exp.metadata.namespace
    if namespace is not None and (len(namespace) > 63 or not _DNS_LABEL_RE.match(namespace)):
        errors.add(
            "metadata.namespace",
            f"{namespace!r}: a namespace must be a lower case RFC 1123 label (at most 63"
            " alphanumeric characters or '-', starting and ending with an alphanumeric one)",
        )


def _check_counts(spec: ExperimentSpec, errors: _Errors) -> None:
    max_trials = spec.max_trial_count
    if spec.max_failed_trial_count is not None and spec.max_failed_trial_count < 0:
        errors.add("spec.maxFailedTrialCount", "should not be less than 0")
    if max_trials is not None and max_trials <= 0:
        errors.add("spec.maxTrialCount", "must be greater than 0")
    if spec.parallel_trial_count is not None and spec.parallel_trial_count <= 0:
        errors.add("spec.parallelTrialCount", "must be greater than 0")
    if max_trials is not None and max_trials > 0:
        failed = spec.max_failed_trial_count
        if failed is not None and failed > max_trials:
            errors.add(
                "spec.maxFailedTrialCount", "should be less than or equal to spec.maxTrialCount"
            )
        parallel = spec.parallel_trial_count
        if parallel is not None and parallel > max_trials:
            errors.add(
                "spec.parallelTrialCount", "should be less than or equal to spec.maxTrialCount"
            )


def _check_resume_policy(policy: str | None, errors: _Errors) -> None:
    allowed = [p.value for p in ResumePolicy]
    if policy and policy not in allowed:
        errors.add(
            "spec.resumePolicy",
            f"invalid ResumePolicyType {policy!r}: must be {_one_of(allowed)}",
        )


# --- objective ----------------------------------------------------------------------------


def _check_objective(objective: Objective | None, errors: _Errors) -> None:
    path = "spec.objective"
    if objective is None:
        errors.add(path, "must be specified")
        return
    types = [t.value for t in ObjectiveType]
    if not objective.type:
        errors.add(f"{path}.type", f"must be specified ({_one_of(types)})")
    elif objective.type not in types:
        errors.add(f"{path}.type", f"must be {_one_of(types)}, got {objective.type!r}")
    if objective.goal is not None and not math.isfinite(objective.goal):
        errors.add(f"{path}.goal", f"must be a finite number, got {objective.goal}")
    if not objective.objective_metric_name:
        errors.add(f"{path}.objectiveMetricName", "must be specified")
    seen: set[str] = set()
    for i, metric in enumerate(objective.additional_metric_names):
        item = f"{path}.additionalMetricNames[{i}]"
        if not metric:
            errors.add(item, "must not be empty")
        elif metric == objective.objective_metric_name:
            errors.add(item, "should not contain spec.objective.objectiveMetricName")
        elif metric in seen:
            errors.add(item, f"duplicate metric name {metric!r}")
        seen.add(metric)
    _check_additional_objectives(objective, errors)
    metrics = objective.all_metric_names()
    strategies = [s.value for s in MetricStrategyType]
    chosen: dict[str, str] = {}
    for i, strategy in enumerate(objective.metric_strategies):
        item = f"{path}.metricStrategies[{i}]"
        if strategy.name not in metrics:
            known = ", ".join(metrics) or "none"
            errors.add(
                f"{item}.name",
                f"metric {strategy.name!r} is neither the objective metric nor an additional"
                f" metric (metrics: {known})",
            )
        elif chosen.setdefault(strategy.name, strategy.value) != strategy.value:
            # Repeating the same strategy is harmless (defaulting can do it); two differ.
            errors.add(
                f"{item}.name",
                f"conflicting strategies for metric {strategy.name!r}:"
                f" {chosen[strategy.name]} and {strategy.value}",
            )
        if strategy.value not in strategies:
            errors.add(f"{item}.value", f"must be {_one_of(strategies)}, got {strategy.value!r}")


def _check_additional_objectives(objective: Objective, errors: _Errors) -> None:
    """``objective.additionalObjectives``: an extension of Katib's spec (multi-objective)."""
    extras = objective.additional_objectives
    if extras is None:
        return
    path = "spec.objective.additionalObjectives"
    if not extras:
        errors.add(path, "must list at least one objective (or be left out)")
    types = [t.value for t in ObjectiveType]
    seen: set[str] = set()
    for i, extra in enumerate(extras):
        item = f"{path}[{i}]"
        if not extra.name:
            errors.add(f"{item}.name", "must be specified")
        elif extra.name == objective.objective_metric_name:
            errors.add(f"{item}.name", "should not repeat spec.objective.objectiveMetricName")
        elif extra.name in seen:
            errors.add(f"{item}.name", f"duplicate objective {extra.name!r}")
        elif extra.name in objective.additional_metric_names:
            errors.add(
                f"{item}.name",
                f"{extra.name!r} is also in spec.objective.additionalMetricNames; an objective"
                " is collected anyway, list it once",
            )
        if extra.name:
            seen.add(extra.name)
        if not extra.type:
            errors.add(f"{item}.type", f"must be specified ({_one_of(types)})")
        elif extra.type not in types:
            errors.add(f"{item}.type", f"must be {_one_of(types)}, got {extra.type!r}")
    if extras and objective.goal is not None:
        errors.add(
            "spec.objective.goal",
            "is not supported with spec.objective.additionalObjectives: several objectives"
            " have no single goal",
        )


def _check_multi_objective(spec: ExperimentSpec, errors: _Errors) -> None:
    if spec.objective is None or not spec.objective.is_multi_objective:
        return
    if spec.early_stopping is not None:
        errors.add(
            "spec.earlyStopping",
            "early stopping judges one objective; it cannot be used with"
            " spec.objective.additionalObjectives",
        )


# --- search space ---------------------------------------------------------------------------


def _check_search_space(spec: ExperimentSpec, errors: _Errors) -> bool:
    """Check parameters or nasConfig; True when the search space (the parameters, or the
    nasConfig of an experiment without parameters) is there and valid."""
    if not spec.parameters and spec.nas_config is None:
        errors.add("spec", "spec.parameters or spec.nasConfig must be specified")
    if spec.parameters and spec.nas_config is not None:
        errors.add("spec", "only one of spec.parameters and spec.nasConfig can be specified")
    before = len(errors.items)
    if spec.nas_config is not None:
        _check_nas_config(spec.nas_config, errors)
    valid = _check_parameters(spec.parameters, "spec.parameters", errors)
    if spec.nas_config is not None and not spec.parameters:
        return len(errors.items) == before
    return valid and bool(spec.parameters)


def _check_algorithms(
    spec: ExperimentSpec, parameters_valid: bool, checks: AlgorithmChecks | None, errors: _Errors
) -> None:
    """The algorithm and early-stopping rules, which the algorithms themselves own."""
    if checks is None:
        errors.add(
            "spec.algorithm.algorithmName",
            "no algorithm catalogue is installed, so algorithms cannot be checked "
            "(reinstall the package: pip install -e .)",
        )
        return
    try:
        problems = checks.check_algorithm(spec, parameters_valid)
        if spec.early_stopping is not None:
            problems += checks.check_early_stopping(spec.early_stopping)
    except Exception as e:  # noqa: BLE001 - plugin code must not turn a check into a crash
        problems = [FieldError("spec.algorithm", f"the algorithm checks failed: {e}")]
    errors.items.extend(problems)


def _check_parameters(parameters: Sequence[ParameterSpec], path: str, errors: _Errors) -> bool:
    before = len(errors.items)
    names: set[str] = set()
    for i, param in enumerate(parameters):
        item = f"{path}[{i}]"
        if not param.name:
            errors.add(f"{item}.name", "must be specified")
        elif param.name in names:
            errors.add(f"{item}.name", f"duplicate parameter name {param.name!r}")
        else:
            names.add(param.name)
        _check_parameter(param, item, errors)
    return len(errors.items) == before


def _check_parameter(param: ParameterSpec, path: str, errors: _Errors) -> None:
    types = [t.value for t in ParameterType]
    ptype = param.parameter_type
    if not ptype:
        errors.add(f"{path}.parameterType", f"must be specified ({_one_of(types)})")
    elif ptype not in types:
        errors.add(
            f"{path}.parameterType",
            f"parameterType: {ptype} is not supported (must be {_one_of(types)})",
        )
    fs = param.feasible_space
    fs_path = f"{path}.feasibleSpace"
    # Defaulting fills in the distribution, so an empty feasibleSpace is one without values.
    if fs is None or (fs.min is None and fs.max is None and fs.step is None and fs.values is None):
        errors.add(fs_path, "feasibleSpace must be specified")
        return
    distributions = [d.value for d in Distribution]
    if fs.distribution and fs.distribution not in distributions:
        errors.add(
            f"{fs_path}.distribution",
            f"distribution: {fs.distribution} is not supported (must be {_one_of(distributions)})",
        )
    if ptype in (ParameterType.DOUBLE, ParameterType.INT):
        _check_numeric_space(param, fs_path, errors)
    elif ptype in (ParameterType.DISCRETE, ParameterType.CATEGORICAL):
        if fs.min is not None or fs.max is not None or fs.step is not None:
            errors.add(
                fs_path,
                f"feasibleSpace .max, .min and .step is not supported for parameterType: {ptype}",
            )
        if not fs.values:
            errors.add(f"{fs_path}.list", f"must be a non-empty list for parameterType: {ptype}")
            return
        seen: set[str] = set()
        for j, value in enumerate(fs.values):
            if value in seen:
                errors.add(f"{fs_path}.list[{j}]", f"duplicate value {value!r}")
            seen.add(value)
            if ptype == ParameterType.DISCRETE and _number(value) is None:
                errors.add(
                    f"{fs_path}.list[{j}]",
                    f"must be a number for parameterType: discrete, got {value!r}",
                )


def _check_numeric_space(param: ParameterSpec, fs_path: str, errors: _Errors) -> None:
    fs = param.feasible_space
    assert fs is not None
    ptype = param.parameter_type
    is_int = ptype == ParameterType.INT
    if fs.values is not None:
        errors.add(
            f"{fs_path}.list", f"feasibleSpace.list is not supported for parameterType: {ptype}"
        )
    bounds: dict[str, float] = {}
    for field in ("min", "max"):
        text = getattr(fs, field)
        if text is None or text == "":
            errors.add(f"{fs_path}.{field}", f"must be specified for parameterType: {ptype}")
            continue
        value = _bound(text, is_int, f"{fs_path}.{field}", errors)
        if value is not None:
            bounds[field] = value
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and high is not None and high < low:
        errors.add(f"{fs_path}.max", f"must not be less than min ({fs.min}), got {fs.max}")
    if fs.distribution in _LOG_DISTRIBUTIONS and low is not None and low <= 0:
        errors.add(
            f"{fs_path}.min",
            f"must be greater than 0 for distribution {fs.distribution}, got {fs.min}",
        )
    if fs.step is None or fs.step == "":
        return
    step = _bound(fs.step, is_int, f"{fs_path}.step", errors)
    if step is None:
        return
    if step <= 0:
        errors.add(f"{fs_path}.step", f"must be greater than 0, got {fs.step}")
    elif low is not None and high is not None and high > low and step > high - low:
        errors.add(
            f"{fs_path}.step",
            f"must not be larger than the range max - min ({fs.max} - {fs.min}), got {fs.step}",
        )


def _bound(text: str, is_int: bool, path: str, errors: _Errors) -> float | None:
    """The number in a feasibleSpace field, or None after reporting why it is not one."""
    if is_int:
        if not _INT_RE.match(text.strip()):
            errors.add(path, f"must be an integer for parameterType: int, got {text!r}")
            return None
        return float(int(text))
    value = _number(text)
    if value is None:
        errors.add(path, f"must be a finite number, got {text!r}")
    return value


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_nas_config(nas: NasConfig, errors: _Errors) -> None:
    path = "spec.nasConfig"
    graph = nas.graph_config
    if graph is None:
        errors.add(f"{path}.graphConfig", "must be specified")
    else:
        if graph.num_layers is None or graph.num_layers <= 0:
            errors.add(f"{path}.graphConfig.numLayers", "must be greater than 0")
        for field, sizes in (
            ("inputSizes", graph.input_sizes),
            ("outputSizes", graph.output_sizes),
        ):
            for i, size in enumerate(sizes):
                if size <= 0:
                    errors.add(f"{path}.graphConfig.{field}[{i}]", "must be greater than 0")
    if not nas.operations:
        errors.add(f"{path}.operations", "must be a non-empty list of operations")
    for i, operation in enumerate(nas.operations):
        item = f"{path}.operations[{i}]"
        if not operation.operation_type:
            errors.add(f"{item}.operationType", "must be specified")
        # Parameters may be absent: Katib's darts-gpu.yaml lists `skip_connection` bare.
        _check_parameters(operation.parameters, f"{item}.parameters", errors)


# --- trial template -------------------------------------------------------------------------


def _check_trial_template(spec: ExperimentSpec, errors: _Errors) -> None:
    path = "spec.trialTemplate"
    template = spec.trial_template
    if template is None:
        errors.add(path, "must be specified")
        return
    if not template.primary_container_name:
        errors.add(f"{path}.primaryContainerName", "must be specified")
    if template.kind is not None or (template.trial_spec is None and template.config_map):
        # Without a kind there is nothing to default conditions for; that is reported.
        _check_conditions(template, errors)
    if not template.trial_parameters:
        errors.add(f"{path}.trialParameters", "must be specified")
    if template.trial_spec is None and template.config_map is None:
        errors.add(
            path, "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified"
        )
    if template.trial_spec is not None and template.config_map is not None:
        errors.add(
            path,
            "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can"
            " be specified",
        )
    if template.config_map is not None:
        cm = template.config_map
        for field, value in (
            ("configMapName", cm.config_map_name),
            ("configMapNamespace", cm.config_map_namespace),
            ("templatePath", cm.template_path),
        ):
            if not value:
                errors.add(f"{path}.configMap.{field}", "must be specified")
    # Katib checks references only against hyperparameters: NAS trial parameters refer to
    # what the NAS algorithm produces (architecture, nn_config, ...). A reference may also
    # mean a parameter whose name is missing, which is reported already.
    parameter_names = [p.name for p in spec.parameters if p.name]
    if len(parameter_names) < len(spec.parameters):
        parameter_names = []
    _check_trial_parameters(template, parameter_names, errors)
    if template.trial_spec is not None:
        _check_trial_spec(template, template.trial_spec, errors)


def _check_conditions(template: TrialTemplate, errors: _Errors) -> None:
    kind = template.kind or "configMap template"
    for field, value in (
        ("successCondition", template.success_condition),
        ("failureCondition", template.failure_condition),
    ):
        if not value:
            errors.add(
                f"spec.trialTemplate.{field}",
                f"must be specified for a trial of kind {kind}: only Job, TrainJob, Kubeflow"
                " training jobs and Kubeflow Pipelines runs get a default",
            )


def _check_trial_parameters(
    template: TrialTemplate, parameter_names: Sequence[str], errors: _Errors
) -> None:
    path = "spec.trialTemplate.trialParameters"
    names: set[str] = set()
    references: set[str] = set()
    for i, param in enumerate(template.trial_parameters):
        item = f"{path}[{i}]"
        if not param.name:
            errors.add(f"{item}.name", "must be specified")
        elif "{" in param.name or "}" in param.name:
            errors.add(f"{item}.name", f"must not contain '{{' or '}}', got {param.name!r}")
        elif param.name in names:
            errors.add(
                f"{item}.name",
                f"parameter name {param.name} can't be duplicated in"
                " spec.trialTemplate.trialParameters",
            )
        names.add(param.name or "")
        ref = param.reference
        if not ref:
            errors.add(f"{item}.reference", "must be specified")
            continue
        if ref in references:
            errors.add(
                f"{item}.reference",
                f"parameter reference {ref} can't be duplicated in"
                " spec.trialTemplate.trialParameters",
            )
        references.add(ref)
        if parameter_names and parse_meta_reference(ref) is None and ref not in parameter_names:
            meta = "|".join([*META_KEYS, *(f"{key}[key]" for key in META_MAP_KEYS)])
            errors.add(
                f"{item}.reference",
                f"parameter reference {ref} does not exist in spec.parameters"
                f" ({', '.join(dict.fromkeys(parameter_names))}) and is not trial metadata"
                f" (${{trialSpec.<{meta}>}})",
            )


def _check_trial_spec(template: TrialTemplate, trial_spec: dict[str, Any], errors: _Errors) -> None:
    path = "spec.trialTemplate"
    spec_path = f"{path}.trialSpec"
    declared = {p.name for p in template.trial_parameters if p.name}
    used: set[str] = set()
    for text in iter_strings(trial_spec):
        used.update(PLACEHOLDER_RE.findall(text))
    for i, param in enumerate(template.trial_parameters):
        if (
            param.name
            and param.name not in used
            and "{" not in param.name
            and "}" not in param.name
        ):
            errors.add(
                f"{path}.trialParameters[{i}].name",
                f"parameter name: {param.name} in spec.trialParameters not found in"
                " spec.trialTemplate.trialSpec (expected ${trialParameters."
                f"{param.name}}})",
            )
    for name in sorted(used - declared):
        errors.add(
            spec_path,
            f"parameter ${{trialParameters.{name}}} in spec.trialTemplate not found in"
            " spec.trialTemplate.trialParameters",
        )
    for field in ("apiVersion", "kind"):
        value = trial_spec.get(field)
        if value is None or value == "":
            errors.add(f"{spec_path}.{field}", "must be specified")
        elif not isinstance(value, str):
            errors.add(f"{spec_path}.{field}", "must be a string")
    metadata = trial_spec.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        errors.add(f"{spec_path}.metadata", "must be a mapping")
    elif isinstance(metadata, dict):
        for field in ("name", "namespace"):
            if metadata.get(field):
                errors.add(
                    f"{spec_path}.metadata.{field}",
                    "metadata.name and metadata.namespace in spec.trialTemplate must be omitted:"
                    " each trial sets them",
                )
    _check_primary_container(template, trial_spec, errors)
    if is_kfp_run(trial_spec):
        for field, message in kfp_run_problems(trial_spec):
            errors.add(f"{spec_path}.{field}", message)


def _check_primary_container(
    template: TrialTemplate, trial_spec: dict[str, Any], errors: _Errors
) -> None:
    name = template.primary_container_name
    kind = template.kind  # None unless the trialSpec's kind is a string
    if not name:
        return
    if kind == "Job" and trial_spec.get("apiVersion") == "batch/v1":
        containers = _dig(trial_spec, "spec", "template", "spec", "containers")
        if not isinstance(containers, list) or not containers:
            errors.add(
                "spec.trialTemplate.trialSpec.spec.template.spec.containers",
                "must be a non-empty list of containers",
            )
            return
        names = [c.get("name") for c in containers if isinstance(c, dict)]
    elif kind in KUBEFLOW_JOB_KINDS:
        names = [c.get("name") for c in iter_pod_containers(trial_spec)]
        if not names:
            return  # a layout we do not know: leave it to the training operator
    else:
        return
    if name not in names:
        listed = ", ".join(str(n) for n in names)
        errors.add(
            "spec.trialTemplate.primaryContainerName",
            f"container {name!r} not found in the pod template of the {kind} trialSpec"
            f" (containers: {listed})",
        )


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# --- metrics collector ------------------------------------------------------------------------


def _check_kfp_run_collector(spec: ExperimentSpec, errors: _Errors) -> None:
    """A KFP run exposes no container: its metrics come from its metrics artifacts or a push."""
    template = spec.trial_template
    mc = spec.metrics_collector_spec
    if template is None or template.trial_spec is None or not is_kfp_run(template.trial_spec):
        return
    kind = mc.collector.kind if mc is not None and mc.collector is not None else None
    if kind and kind not in (
        CollectorKind.STDOUT.value, CollectorKind.PUSH.value, CollectorKind.NONE.value
    ):
        errors.add(
            "spec.metricsCollectorSpec.collector.kind",
            f"{kind} reads a trial's container, which a Kubeflow Pipelines run does not expose:"
            " leave the default (the run's metrics artifacts) or use Push"
            " (katib.report_metrics from a step)",
        )


def _check_metrics_collector(mc: MetricsCollectorSpec | None, errors: _Errors) -> None:
    if mc is None:
        return
    path = "spec.metricsCollectorSpec"
    src = f"{path}.source"
    kinds = [k.value for k in CollectorKind]
    kind = mc.collector.kind if mc.collector is not None else None
    fs = mc.source.file_system_path if mc.source is not None else None
    http = mc.source.http_get if mc.source is not None else None
    metrics_filter = mc.source.filter if mc.source is not None else None
    if not kind:
        errors.add(f"{path}.collector.kind", f"must be specified ({_one_of(kinds)})")
    elif kind not in kinds:
        errors.add(
            f"{path}.collector.kind",
            f"invalid metrics collector kind: {kind} (must be {_one_of(kinds)})",
        )
    elif kind == CollectorKind.FILE:
        if fs is None:
            errors.add(
                f"{src}.fileSystemPath.path", "file path where metrics file exists is required"
            )
        else:
            _check_fs_path(fs.path, fs.kind, [FileSystemKind.FILE.value], kind, errors)
            formats = [f.value for f in FileFormat]
            if fs.format not in formats:
                errors.add(
                    f"{src}.fileSystemPath.format",
                    f"must be {_one_of(formats)} for metrics collector kind File,"
                    f" got {fs.format!r}",
                )
            if fs.format == FileFormat.JSON and metrics_filter is not None:
                errors.add(
                    f"{src}.filter", "filter must be nil when format of metrics file is JSON"
                )
    elif kind == CollectorKind.TENSORFLOW_EVENT:
        if fs is None:
            errors.add(
                f"{src}.fileSystemPath.path",
                "directory path where tensorflow event files exist is required",
            )
        else:
            _check_fs_path(fs.path, fs.kind, [FileSystemKind.DIRECTORY.value], kind, errors)
            if fs.format:
                errors.add(
                    f"{src}.fileSystemPath.format",
                    f"must be empty for metrics collector kind {kind}, got {fs.format!r}",
                )
    elif kind == CollectorKind.PROMETHEUS:
        _check_http_get(http.port if http else None, http.path if http else None, errors)
    elif kind == CollectorKind.CUSTOM:
        if mc.collector is None or mc.collector.custom_collector is None:
            errors.add(
                f"{path}.collector.customCollector",
                "a container is required for metrics collector kind: Custom",
            )
        if fs is not None:
            kinds_ok = [FileSystemKind.FILE.value, FileSystemKind.DIRECTORY.value]
            _check_fs_path(fs.path, fs.kind, kinds_ok, kind, errors)
    if metrics_filter is not None:
        for i, pattern in enumerate(metrics_filter.metrics_format):
            message = _metrics_format_problem(pattern)
            if message:
                errors.add(f"{src}.filter.metricsFormat[{i}]", message)


def _check_fs_path(
    path: str | None, kind: str | None, kinds: list[str], collector: str, errors: _Errors
) -> None:
    where = "spec.metricsCollectorSpec.source.fileSystemPath"
    nouns = {FileSystemKind.FILE.value: "file", FileSystemKind.DIRECTORY.value: "directory"}
    noun = " or ".join(nouns[k] for k in kinds)
    if not path or not posixpath.isabs(path):
        errors.add(
            f"{where}.path",
            f"must be an absolute {noun} path for metrics collector kind {collector}, got {path!r}",
        )
    elif ".." in path.split("/"):
        # Locally the path is mapped into the trial's own folder: it must not climb out.
        errors.add(f"{where}.path", f"must not contain '..' segments, got {path!r}")
    if kind not in kinds:
        errors.add(
            f"{where}.kind",
            f"must be {_one_of(kinds)} for metrics collector kind {collector}, got {kind!r}",
        )


def _check_http_get(port: int | str | None, path: str | None, errors: _Errors) -> None:
    where = "spec.metricsCollectorSpec.source.httpGet"
    number: int | None = None
    if isinstance(port, int) and not isinstance(port, bool):
        number = port
    elif isinstance(port, str) and _INT_RE.match(port):
        number = int(port)
    if number is None or not 1 <= number <= 65535:
        errors.add(
            f"{where}.port",
            f"must be a port number between 1 and 65535 for metrics collector kind"
            f" PrometheusMetric, got {port!r}",
        )
    if not path or not path.startswith("/"):
        errors.add(
            f"{where}.path",
            f"path is invalid for metrics collector kind PrometheusMetric: must start with '/',"
            f" got {path!r}",
        )


def _metrics_format_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot extract (name, value) pairs, or None if it can."""
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as e:
        return f"invalid filter {pattern!r}: {e}"
    groups = _top_level_groups(pattern)
    if groups != 2:
        return (
            f"two top subexpressions are required (the metric name and the metric value),"
            f" {pattern!r} has {groups}"
        )
    return None


def _top_level_groups(pattern: str) -> int:
    """Capturing groups of ``pattern`` that are not nested in another group.

    Only called on patterns that compile, so brackets and parentheses are balanced.
    """
    count = 0
    depth = 0
    i = 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a literal member of the class.
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif char == "(":
            rest = pattern[i + 1 : i + 4]
            capturing = not rest.startswith("?") or rest.startswith("?P<")
            if depth == 0 and capturing:
                count += 1
            depth += 1
        elif char == ")":
            depth -= 1
        i += 1
    return count


def _one_of(words: Sequence[str]) -> str:
    """``a, b or c``, the way Katib's messages list allowed values."""
    words = list(words)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]
