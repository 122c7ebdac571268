"""Request and response models of the REST API, for validation and the OpenAPI schema.

Field names are snake_case in Python and Katib's camelCase on the wire (pydantic aliases).
Katib objects (experiments, trials) are open models: the typed fields are documented, and
anything else the object carries passes through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Open(_Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class _Input(_Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# Errors ------------------------------------------------------------------------------------


class FieldErrorPublic(BaseModel):
    path: str = Field(description="The field path, as `spec.parameters[1].feasibleSpace.min`.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldErrorPublic] | None = None


# Katib objects -----------------------------------------------------------------------------


class ParameterAssignment(BaseModel):
    name: str
    value: str


class MetricPublic(BaseModel):
    """A metric reduced three ways; one reported as text (DARTS' ``Best-Genotype``) has only
    its latest value, the text, and null min and max."""

    name: str
    min: float | None
    max: float | None
    latest: float | str


class Observation(BaseModel):
    metrics: list[MetricPublic]


class OptimalTrial(_Camel):
    best_trial_name: str | None
    parameter_assignments: list[ParameterAssignment]
    observation: Observation


class ListMeta(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    continue_: str | None = Field(
        default=None,
        alias="continue",
        description=(
            "The cursor to pass as `after` for the items that follow (the id of this page's "
            "last item); a page shorter than its limit means there is nothing more for now."
        ),
    )


class ExperimentStatus(_Open):
    condition: str
    conditions: list[dict[str, Any]]
    message: str
    start_time: str | None
    completion_time: str | None
    current_optimal_trial: OptimalTrial
    trials: int
    trials_pending: int
    trials_running: int
    trials_succeeded: int
    trials_failed: int
    trials_killed: int
    trials_early_stopped: int
    trial_metrics_unavailable: int
    archived: bool
    #: Started, unfinished, and nothing drives it (its controller is gone): run it again to
    #: resume it.
    interrupted: bool = False


class ExperimentPublic(_Open):
    """A Katib Experiment (``kubeflow.org/v1beta1``) with its status."""

    api_version: str
    kind: str
    metadata: dict[str, Any]
    spec: dict[str, Any]
    status: ExperimentStatus


class ExperimentList(_Camel):
    api_version: str
    kind: str
    metadata: ListMeta
    items: list[ExperimentPublic]


class TrialStatus(_Open):
    condition: str
    reason: str
    message: str
    start_time: str | None
    completion_time: str | None
    exit_code: int | None
    observation: Observation


class TrialSpec(_Open):
    parameter_assignments: list[ParameterAssignment]


class TrialPublic(_Open):
    """A Katib Trial, with the local process's exit code in its status."""

    api_version: str
    kind: str
    metadata: dict[str, Any]
    spec: TrialSpec
    status: TrialStatus


class TrialList(_Camel):
    api_version: str
    kind: str
    metadata: ListMeta
    items: list[TrialPublic]


class EventPublic(_Camel):
    """Something the controller did or saw (trial created, early stopped, experiment done)."""

    type: str = Field(description="Normal or Warning.")
    reason: str
    message: str
    trial_name: str | None
    time: str


class EventList(BaseModel):
    items: list[EventPublic]


class ObjectiveValue(BaseModel):
    name: str
    type: str
    value: float | None


class ObjectivePublic(BaseModel):
    name: str
    type: str


class ParetoTrial(_Camel):
    """One trial of a Pareto front, with each objective's value after its metric strategy."""

    trial_name: str
    parameter_assignments: list[ParameterAssignment]
    observation: Observation
    objectives: list[ObjectiveValue]


class BestTrial(_Camel):
    """Katib's ``currentOptimalTrial`` plus the experiment's name and condition; with several
    objectives (``objective.additionalObjectives``) also ``paretoFront``."""

    experiment: str
    namespace: str
    condition: str
    best_trial_name: str | None
    parameter_assignments: list[ParameterAssignment]
    observation: Observation
    pareto_front: list[ParetoTrial] | None = Field(
        default=None,
        description="Only with several objectives: the trials no other trial dominates.",
    )


class ParetoFront(_Camel):
    """An experiment's optimized metrics and the trials no other trial dominates (with one
    objective: the trials with the best value)."""

    experiment: str
    namespace: str
    condition: str
    objectives: list[ObjectivePublic]
    pareto_front: list[ParetoTrial]


# Budgets -----------------------------------------------------------------------------------


class BudgetUpdate(_Input):
    """New trial counts; fields left out keep their value."""

    max_trial_count: int | None = Field(default=None, ge=1)
    parallel_trial_count: int | None = Field(default=None, ge=1)
    max_failed_trial_count: int | None = Field(default=None, ge=0)


class RestartRequest(BudgetUpdate):
    """The budget of the restarted experiment; maxTrialCount must exceed the trials run."""


# Observations ------------------------------------------------------------------------------


class MetricValue(BaseModel):
    name: str
    value: float


class MetricLog(_Camel):
    time_stamp: str | None
    step: int | None
    metric: MetricValue


class ObservationLog(_Camel):
    trial_name: str
    namespace: str
    metric_logs: list[MetricLog]


class ObservationPush(BaseModel):
    """Documentation of the push body (the endpoint parses it itself)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"observations": [{"name": "loss", "value": 0.25, "step": 3}]}
        }
    )

    observations: list[dict[str, Any]] | None = None
    metrics: dict[str, float] | None = None


class PushResult(BaseModel):
    accepted: int


# Algorithms and validation -----------------------------------------------------------------


class SettingPublic(BaseModel):
    name: str
    default: str | None
    description: str


class AlgorithmPublic(BaseModel):
    name: str
    description: str
    settings: list[SettingPublic]


class AlgorithmCatalogue(_Camel):
    algorithms: list[AlgorithmPublic]
    early_stopping: list[AlgorithmPublic]


class ValidationResult(BaseModel):
    valid: bool
    errors: list[FieldErrorPublic]


# Tokens ------------------------------------------------------------------------------------


class TokenCreate(_Input):
    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$",
        description="The namespace the role applies to; `*` for admin tokens.",
    )
    role: Literal["viewer", "editor", "owner", "admin"]
    expires_at: datetime | None = Field(
        default=None,
        description="When the token stops working (RFC 3339, in the future); "
        "absent: when it is revoked.",
    )


class TokenPublic(_Camel):
    id: int
    name: str
    namespace: str
    role: str
    created_at: str | None
    revoked_at: str | None
    expires_at: str | None = None
    last_used_at: str | None = Field(
        default=None, description="The last request made with it (to the minute)."
    )


class TokenCreated(TokenPublic):
    token: str = Field(description="The token itself: shown this once, stored only hashed.")


class TokenList(BaseModel):
    items: list[TokenPublic]


class WhoAmI(TokenPublic):
    """The token of the request."""


# Namespaces and audit ----------------------------------------------------------------------


class NamespaceCreate(_Input):
    name: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )


class NamespacePublic(_Camel):
    name: str
    created_at: str | None = Field(description="None for a namespace no admin created.")
    created_by: str | None
    experiments: int
    tokens: int = Field(description="Live tokens with a role in it.")
    role: str = Field(description="The role of the request's token in it.")
    max_running_trials: int | None = Field(
        None, description="At most this many of its trials run at once on a server (admins set it)."
    )
    running_trials: int = Field(0, description="Its trials running now.")


class NamespaceLimit(_Camel):
    max_running_trials: int | None = Field(
        description="At most this many trials of the namespace run at once; null: no limit.",
        ge=1,
        le=100_000,
    )


class NamespaceList(BaseModel):
    items: list[NamespacePublic]


class Principal(BaseModel):
    id: int | None
    name: str


class AuditPublic(BaseModel):
    id: int
    time: str
    namespace: str
    action: str = Field(description="experiment.create, experiment.stop, token.revoke, ...")
    target: str
    principal: Principal
    detail: dict[str, Any]


class AuditList(BaseModel):
    metadata: ListMeta
    items: list[AuditPublic]


# Dashboard reads ---------------------------------------------------------------------------


class TrialColumns(BaseModel):
    """Arrays of equal length, one entry per trial."""

    id: list[int]
    name: list[str]
    state: list[str]
    objective: list[float | None]
    created: list[int | None] = Field(description="Milliseconds since `origin`.")
    started: list[int | None]
    completed: list[int | None]
    params: dict[str, list[float | str | None]]
    metrics: dict[str, list[float | None]] = Field(
        description="Each metric but the objective, reduced by its strategy (min, max, latest)."
    )


class ParameterColumn(BaseModel):
    name: str
    numeric: bool


class TableEvent(EventPublic):
    id: int


class TrialTable(BaseModel):
    experiment: str
    namespace: str
    origin: float = Field(description="The experiment's creation (unix seconds).")
    parameters: list[ParameterColumn]
    cursor: str | None = Field(description="Pass as `after` to get only newer trials.")
    complete: bool = Field(description="False: more trials follow; ask again with `after`.")
    trials: TrialColumns
    refreshed: TrialColumns = Field(description="The trials asked for with `refresh`.")
    status: ExperimentStatus
    events: list[TableEvent]
    events_cursor: str | None = Field(alias="eventsCursor")


class Curves(BaseModel):
    metric: str
    curves: dict[str, list[list[float | None]]]


class ImportancePublic(BaseModel):
    name: str
    importance: float


class Importance(BaseModel):
    method: str
    trials: int
    importances: list[ImportancePublic]
    detail: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str = ""
