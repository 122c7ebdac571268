"""Pydantic models of Katib's ``kubeflow.org/v1beta1`` Experiment, with Katib's defaults.

Field names are snake_case in Python and Katib's camelCase on the wire (YAML/JSON), mapped with
aliases. The models check only the *shape* of a document; the admission rules live in
``katib.spec._validation`` so that every problem can be reported at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"

DEFAULT_PARALLEL_TRIAL_COUNT = 3
DEFAULT_PRIMARY_CONTAINER_NAME = "training-container"
JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
TRAINJOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
TRAINJOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_JOB_PRIMARY_POD_LABELS = {"training.kubeflow.org/job-role": "master"}
TRAINJOB_PRIMARY_POD_LABELS = {"batch.kubernetes.io/job-completion-index": "0"}
#: A Kubeflow Pipelines run (trial_runner.pipelines.KfpLauncher): the launcher follows the
#: run's ``state`` itself; these defaults say the same in Katib's GJSON, for readers of the
#: stored spec, and a KFP run has no containers to name.
KFP_RUN_GROUP = "pipelines.kubeflow.org"
KFP_RUN_SUCCESS_CONDITION = '[@this].#(state=="SUCCEEDED")#'
KFP_RUN_FAILURE_CONDITION = '[@this].#(state=="FAILED")#'
KFP_RUN_PRIMARY_CONTAINER_NAME = "pipeline"
KUBEFLOW_JOB_KINDS = frozenset(
    {"TFJob", "PyTorchJob", "XGBoostJob", "MXJob", "MPIJob", "PaddleJob", "JAXJob"}
)
DEFAULT_STDOUT_METRICS_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
DEFAULT_FILE_PATH = "/var/log/katib/metrics.log"
DEFAULT_TFEVENT_DIR = "/var/log/katib/tfevent/"
DEFAULT_PROMETHEUS_PATH = "/metrics"
DEFAULT_PROMETHEUS_PORT = 8080


class _Wire(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The Katib (camelCase) form, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _scalar_to_str(value: Any) -> Any:
    """Katib writes numbers in feasibleSpace as strings; accept plain YAML numbers too."""
    if isinstance(value, bool):
        return value  # left for pydantic to reject: true is not a number
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return value


class ObjectiveType(StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class MetricStrategyType(StrEnum):
    MIN = "min"
    MAX = "max"
    LATEST = "latest"


class ParameterType(StrEnum):
    DOUBLE = "double"
    INT = "int"
    DISCRETE = "discrete"
    CATEGORICAL = "categorical"


class Distribution(StrEnum):
    UNIFORM = "uniform"
    LOG_UNIFORM = "logUniform"
    NORMAL = "normal"
    LOG_NORMAL = "logNormal"


class ResumePolicy(StrEnum):
    NEVER = "Never"
    LONG_RUNNING = "LongRunning"
    FROM_VOLUME = "FromVolume"


class CollectorKind(StrEnum):
    STDOUT = "StdOut"
    FILE = "File"
    TENSORFLOW_EVENT = "TensorFlowEvent"
    PROMETHEUS = "PrometheusMetric"
    CUSTOM = "Custom"
    PUSH = "Push"
    NONE = "None"


class FileSystemKind(StrEnum):
    FILE = "File"
    DIRECTORY = "Directory"


class FileFormat(StrEnum):
    TEXT = "TEXT"
    JSON = "JSON"


class MetricStrategy(_Wire):
    name: str
    value: str


class AdditionalObjective(_Wire):
    """One more metric to optimize, with its own direction (an extension of Katib's spec:
    ``objective.additionalObjectives``)."""

    name: str | None = None
    type: str | None = None


class Objective(_Wire):
    type: str | None = None
    goal: float | None = None
    objective_metric_name: str | None = None
    additional_metric_names: list[str] = Field(default_factory=list)
    metric_strategies: list[MetricStrategy] = Field(default_factory=list)
    #: Further objectives, optimized together with the objective metric (multi-objective
    #: tuning; the result is a Pareto front). None in every plain Katib experiment.
    additional_objectives: list[AdditionalObjective] | None = None

    @field_validator("additional_metric_names", "metric_strategies", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    def objectives(self) -> list[tuple[str, str]]:
        """Every optimized metric with its direction (``minimize``/``maximize``), the
        objective metric first."""
        out = [(self.objective_metric_name, self.type or "")] if self.objective_metric_name \
            else []
        for extra in self.additional_objectives or []:
            if extra.name:
                out.append((extra.name, extra.type or ""))
        return out

    @property
    def is_multi_objective(self) -> bool:
        return bool(self.additional_objectives)

    def all_metric_names(self) -> list[str]:
        names = [name for name, _ in self.objectives()]
        names = list(dict.fromkeys(names))
        return names + [m for m in self.additional_metric_names if m not in names]

    def strategy_for(self, metric: str) -> str:
        """The metric strategy (min/max/latest) that reduces ``metric`` to one value."""
        for strategy in self.metric_strategies:
            if strategy.name == metric:
                return strategy.value
        direction = self.type
        for extra in self.additional_objectives or []:
            if extra.name == metric and metric != self.objective_metric_name:
                direction = extra.type
        if direction == ObjectiveType.MINIMIZE:
            return MetricStrategyType.MIN
        if direction == ObjectiveType.MAXIMIZE:
            return MetricStrategyType.MAX
        return MetricStrategyType.LATEST


class AlgorithmSetting(_Wire):
    name: str
    value: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return _scalar_to_str(value)


class AlgorithmSpec(_Wire):
    algorithm_name: str | None = None
    algorithm_settings: list[AlgorithmSetting] = Field(default_factory=list)

    @field_validator("algorithm_settings", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    def settings_dict(self) -> dict[str, str]:
        return {s.name: s.value or "" for s in self.algorithm_settings}


class FeasibleSpace(_Wire):
    max: str | None = None
    min: str | None = None
    # ``list`` on the wire; a field named list would shadow the builtin in this class body.
    values: list[str] | None = Field(default=None, alias="list")
    step: str | None = None
    distribution: str | None = None

    @field_validator("max", "min", "step", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return _scalar_to_str(value)

    @field_validator("values", mode="before")
    @classmethod
    def _coerce_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_scalar_to_str(v) for v in value]
        return value


class ParameterSpec(_Wire):
    name: str | None = None
    parameter_type: str | None = None
    feasible_space: FeasibleSpace | None = None


class TrialParameterSpec(_Wire):
    name: str | None = None
    description: str | None = None
    reference: str | None = None


class ConfigMapSource(_Wire):
    config_map_name: str | None = None
    config_map_namespace: str | None = None
    template_path: str | None = None


class TrialTemplate(_Wire):
    retain: bool = False
    primary_container_name: str | None = None
    primary_pod_labels: dict[str, str] | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    trial_parameters: list[TrialParameterSpec] = Field(default_factory=list)
    trial_spec: dict[str, Any] | None = None
    config_map: ConfigMapSource | None = None

    @field_validator("trial_parameters", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def kind(self) -> str | None:
        if self.trial_spec is not None:
            kind = self.trial_spec.get("kind")
            return kind if isinstance(kind, str) else None
        return None


class FileSystemPath(_Wire):
    path: str | None = None
    kind: str | None = None
    format: str | None = None


class FilterSpec(_Wire):
    metrics_format: list[str] = Field(default_factory=list)

    @field_validator("metrics_format", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class HttpGet(_Wire):
    """A Kubernetes HTTPGetAction, as the PrometheusMetric collector uses it."""

    path: str | None = None
    port: int | str | None = None
    host: str | None = None
    scheme: str | None = None
    http_headers: list[dict[str, Any]] | None = None


class SourceSpec(_Wire):
    http_get: HttpGet | None = None
    file_system_path: FileSystemPath | None = None
    filter: FilterSpec | None = None


class CollectorSpec(_Wire):
    kind: str | None = None
    custom_collector: dict[str, Any] | None = None


class MetricsCollectorSpec(_Wire):
    source: SourceSpec | None = None
    collector: CollectorSpec | None = None


class GraphConfig(_Wire):
    num_layers: int | None = None
    input_sizes: list[int] = Field(default_factory=list)
    output_sizes: list[int] = Field(default_factory=list)


class Operation(_Wire):
    operation_type: str | None = None
    parameters: list[ParameterSpec] = Field(default_factory=list)


class NasConfig(_Wire):
    graph_config: GraphConfig | None = None
    operations: list[Operation] = Field(default_factory=list)


class WarmStart(_Wire):
    """An extension of Katib's spec (``spec.warmStart``): start from the finished trials of
    earlier experiments in the same namespace, whose search spaces are compatible. Plain
    Katib experiments never carry it."""

    experiments: list[str] = Field(default_factory=list)

    @field_validator("experiments", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class ExperimentSpec(_Wire):
    parameters: list[ParameterSpec] = Field(default_factory=list)
    objective: Objective | None = None
    algorithm: AlgorithmSpec | None = None
    early_stopping: AlgorithmSpec | None = None
    trial_template: TrialTemplate | None = None
    parallel_trial_count: int | None = None
    max_trial_count: int | None = None
    max_failed_trial_count: int | None = None
    metrics_collector_spec: MetricsCollectorSpec | None = None
    nas_config: NasConfig | None = None
    resume_policy: str | None = None
    warm_start: WarmStart | None = None

    @field_validator("parameters", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class ObjectMeta(BaseModel):
    """Kubernetes metadata; unknown keys (uid, resourceVersion, ...) are kept as they are."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Experiment(_Wire):
    """One Katib Experiment document. ``status`` of a dumped object is accepted and ignored."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ExperimentSpec = Field(default_factory=ExperimentSpec)
    status: dict[str, Any] | None = Field(default=None, exclude=True)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    def with_defaults(self) -> Experiment:
        """A copy with Katib's defaults applied (what Katib's defaulting webhook does)."""
        exp = self.model_copy(deep=True)
        spec = exp.spec
        if spec.parallel_trial_count is None:
            spec.parallel_trial_count = DEFAULT_PARALLEL_TRIAL_COUNT
        if not spec.resume_policy:
            spec.resume_policy = ResumePolicy.NEVER.value
        if spec.objective is not None:
            _default_metric_strategies(spec.objective)
        if spec.trial_template is not None:
            _default_trial_template(spec.trial_template)
        spec.metrics_collector_spec = _default_collector(spec.metrics_collector_spec)
        for param in spec.parameters:
            if param.feasible_space is not None and not param.feasible_space.distribution:
                param.feasible_space.distribution = Distribution.UNIFORM.value
        return exp


def _default_metric_strategies(objective: Objective) -> None:
    present = {s.name for s in objective.metric_strategies}
    for metric in objective.all_metric_names():
        if metric not in present:
            objective.metric_strategies.append(
                MetricStrategy(name=metric, value=objective.strategy_for(metric))
            )


def _api_group(manifest: dict[str, Any]) -> str:
    return str(manifest.get("apiVersion") or "").split("/")[0]


def _default_trial_template(template: TrialTemplate) -> None:
    kind = template.kind
    if template.trial_spec is None:
        return
    if kind == "Job":
        template.success_condition = template.success_condition or JOB_SUCCESS_CONDITION
        template.failure_condition = template.failure_condition or JOB_FAILURE_CONDITION
    elif kind in KUBEFLOW_JOB_KINDS:
        template.success_condition = template.success_condition or KUBEFLOW_JOB_SUCCESS_CONDITION
        template.failure_condition = template.failure_condition or KUBEFLOW_JOB_FAILURE_CONDITION
        template.primary_pod_labels = template.primary_pod_labels or dict(
            KUBEFLOW_JOB_PRIMARY_POD_LABELS
        )
    elif kind == "Run" and _api_group(template.trial_spec) == KFP_RUN_GROUP:
        template.success_condition = template.success_condition or KFP_RUN_SUCCESS_CONDITION
        template.failure_condition = template.failure_condition or KFP_RUN_FAILURE_CONDITION
        template.primary_container_name = (
            template.primary_container_name or KFP_RUN_PRIMARY_CONTAINER_NAME
        )
    elif kind == "TrainJob":
        template.success_condition = template.success_condition or TRAINJOB_SUCCESS_CONDITION
        template.failure_condition = template.failure_condition or TRAINJOB_FAILURE_CONDITION
        template.primary_pod_labels = template.primary_pod_labels or dict(
            TRAINJOB_PRIMARY_POD_LABELS
        )


def _default_collector(spec: MetricsCollectorSpec | None) -> MetricsCollectorSpec:
    spec = spec or MetricsCollectorSpec()
    if spec.collector is None:
        spec.collector = CollectorSpec(kind=CollectorKind.STDOUT.value)
    kind = spec.collector.kind
    if kind == CollectorKind.PROMETHEUS:
        spec.source = spec.source or SourceSpec()
        spec.source.http_get = spec.source.http_get or HttpGet()
        spec.source.http_get.path = spec.source.http_get.path or DEFAULT_PROMETHEUS_PATH
        if spec.source.http_get.port in (None, 0, "0", ""):
            spec.source.http_get.port = DEFAULT_PROMETHEUS_PORT
    elif kind in (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT):
        is_file = kind == CollectorKind.FILE
        spec.source = spec.source or SourceSpec()
        fs = spec.source.file_system_path = spec.source.file_system_path or FileSystemPath()
        fs.kind = fs.kind or (FileSystemKind.FILE if is_file else FileSystemKind.DIRECTORY).value
        fs.path = fs.path or (DEFAULT_FILE_PATH if is_file else DEFAULT_TFEVENT_DIR)
        if is_file:
            fs.format = fs.format or FileFormat.TEXT.value
    return spec
