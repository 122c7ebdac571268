"""Katib v1beta1 Experiment: models, loading, defaults, validation and trial rendering."""

from katib.spec._checks import AlgorithmChecks, algorithm_checks
from katib.spec._config_map import inline_config_map
from katib.spec._kfp_run import is_kfp_run, kfp_run_problems
from katib.spec._loader import MAX_FILE_BYTES, load_experiments, parse_experiment
from katib.spec._models import (
    API_VERSION,
    KIND,
    AdditionalObjective,
    AlgorithmSetting,
    AlgorithmSpec,
    CollectorKind,
    Experiment,
    ExperimentSpec,
    FeasibleSpace,
    MetricsCollectorSpec,
    MetricStrategy,
    Objective,
    ObjectiveType,
    ParameterSpec,
    ParameterType,
    ResumePolicy,
    TrialParameterSpec,
    TrialTemplate,
    WarmStart,
)
from katib.spec._substitution import (
    ConfigMapTemplateError,
    PrimaryContainerNotFoundError,
    TemplateError,
    primary_container,
    render_trial_spec,
)
from katib.spec._validation import validate_experiment, validate_restart, validate_warm_start

__all__ = [
    "MAX_FILE_BYTES",
    "AlgorithmChecks",
    "API_VERSION",
    "KIND",
    "AdditionalObjective",
    "AlgorithmSetting",
    "AlgorithmSpec",
    "CollectorKind",
    "ConfigMapTemplateError",
    "Experiment",
    "ExperimentSpec",
    "FeasibleSpace",
    "MetricStrategy",
    "MetricsCollectorSpec",
    "Objective",
    "ObjectiveType",
    "ParameterSpec",
    "ParameterType",
    "PrimaryContainerNotFoundError",
    "ResumePolicy",
    "TemplateError",
    "TrialParameterSpec",
    "TrialTemplate",
    "WarmStart",
    "inline_config_map",
    "is_kfp_run",
    "kfp_run_problems",
    "load_experiments",
    "parse_experiment",
    "primary_container",
    "render_trial_spec",
    "algorithm_checks",
    "validate_experiment",
    "validate_restart",
    "validate_warm_start",
]
