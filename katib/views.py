"""The JSON shapes that the CLI's ``-o json`` (and later the REST API) print.

These shapes are a stable interface, documented in docs/cli.md: fields may be added, never
renamed or removed. Names are Katib's camelCase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from katib._time import rfc3339
from katib.records import ExperimentRecord, TrialRecord, TrialState

if TYPE_CHECKING:
    from katib.storage import EventRecord, ObservationPoint, TokenRecord


def best_trial_json(
    experiment: ExperimentRecord,
    best: TrialRecord | None,
    front: Sequence[TrialRecord] | None = None,
) -> dict[str, Any]:
    """Katib's ``currentOptimalTrial`` plus the experiment's name and condition; with several
    objectives (``front`` given), the Pareto front too (``paretoFront``)."""
    out: dict[str, Any] = {
        "experiment": experiment.name,
        "namespace": experiment.namespace,
        "condition": experiment.condition.value,
        "bestTrialName": None,
        "parameterAssignments": [],
        "observation": {"metrics": []},
    }
    if best is not None:
        out["bestTrialName"] = best.name
        out["parameterAssignments"] = assignments_json(best.assignments)
        out["observation"] = {"metrics": [m.to_json() for m in best.metrics.values()]}
    if front is not None:
        out["paretoFront"] = [pareto_trial_json(experiment, t) for t in front]
    return out


def objectives_json(experiment: ExperimentRecord) -> list[dict[str, str]]:
    """The optimized metrics with their directions, the objective metric first."""
    objective = experiment.spec.spec.objective
    if objective is None:
        return []
    return [{"name": name, "type": kind} for name, kind in objective.objectives()]


def pareto_trial_json(experiment: ExperimentRecord, trial: TrialRecord) -> dict[str, Any]:
    """One trial of a Pareto front: its name, assignments, metrics, and the value of each
    objective after its metric strategy (what a plot of the front needs)."""
    objective = experiment.spec.spec.objective
    values = []
    for item in objectives_json(experiment):
        summary = trial.metrics.get(item["name"])
        value = None
        if summary is not None and objective is not None:
            value = summary.value(objective.strategy_for(item["name"]))
        values.append({**item, "value": value})
    return {
        "trialName": trial.name,
        "parameterAssignments": assignments_json(trial.assignments),
        "observation": {"metrics": [m.to_json() for m in trial.metrics.values()]},
        "objectives": values,
    }


def pareto_front_json(
    experiment: ExperimentRecord, front: Sequence[TrialRecord]
) -> dict[str, Any]:
    """An experiment's Pareto front, as the REST API's ``/pareto`` gives it."""
    return {
        "experiment": experiment.name,
        "namespace": experiment.namespace,
        "condition": experiment.condition.value,
        "objectives": objectives_json(experiment),
        "paretoFront": [pareto_trial_json(experiment, t) for t in front],
    }


def assignments_json(assignments: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in assignments.items()]


def trial_counts_json(counts: Mapping[TrialState, int]) -> dict[str, int]:
    """Katib's status counters."""
    return {
        "trials": sum(counts.values()),
        "trialsPending": counts.get(TrialState.CREATED, 0),
        "trialsRunning": counts.get(TrialState.RUNNING, 0),
        "trialsSucceeded": counts.get(TrialState.SUCCEEDED, 0),
        "trialsFailed": counts.get(TrialState.FAILED, 0),
        "trialsKilled": counts.get(TrialState.KILLED, 0),
        "trialsEarlyStopped": counts.get(TrialState.EARLY_STOPPED, 0),
        "trialMetricsUnavailable": counts.get(TrialState.METRICS_UNAVAILABLE, 0),
    }


def experiment_json(
    experiment: ExperimentRecord,
    counts: Mapping[TrialState, int],
    best: TrialRecord | None,
) -> dict[str, Any]:
    """A Katib Experiment object with its status."""
    wire = experiment.spec.to_wire()
    metadata = dict(wire.get("metadata") or {})
    metadata.update(
        name=experiment.name,
        namespace=experiment.namespace,
        creationTimestamp=rfc3339(experiment.created_at),
    )
    optimal = best_trial_json(experiment, best)
    return {
        "apiVersion": wire.get("apiVersion", "kubeflow.org/v1beta1"),
        "kind": "Experiment",
        "metadata": metadata,
        "spec": wire.get("spec", {}),
        "status": {
            "condition": experiment.condition.value,
            "conditions": [c.to_json() for c in experiment.conditions],
            "message": experiment.message,
            "startTime": rfc3339(experiment.started_at),
            "completionTime": rfc3339(experiment.completed_at),
            "currentOptimalTrial": {
                "bestTrialName": optimal["bestTrialName"],
                "parameterAssignments": optimal["parameterAssignments"],
                "observation": optimal["observation"],
            },
            **trial_counts_json(counts),
        },
    }


def trial_json(trial: TrialRecord, experiment_name: str) -> dict[str, Any]:
    """A Katib Trial object, with the local process's exit code in its status."""
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": trial.name,
            "namespace": trial.namespace,
            "labels": {"katib.kubeflow.org/experiment": experiment_name, **trial.labels},
            "creationTimestamp": rfc3339(trial.created_at),
        },
        "spec": {"parameterAssignments": assignments_json(trial.assignments)},
        "status": {
            "condition": trial.state.value,
            "reason": trial.reason,
            "message": trial.message,
            # Milliseconds: local trials often take less than a second.
            "startTime": rfc3339(trial.started_at, timespec="milliseconds"),
            "completionTime": rfc3339(trial.completed_at, timespec="milliseconds"),
            "exitCode": trial.exit_code,
            "observation": {"metrics": [m.to_json() for m in trial.metrics.values()]},
        },
    }


def list_json(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def observation_log_json(trial: TrialRecord, points: Sequence[ObservationPoint]) -> dict[str, Any]:
    """Katib's observation log of a trial: every reported value, in order.

    Times keep milliseconds (as Katib's DB manager keeps fractions of a second): a trial
    often reports several values within one second.
    """
    return {
        "trialName": trial.name,
        "namespace": trial.namespace,
        "metricLogs": [
            {
                "timeStamp": rfc3339(p.timestamp, timespec="milliseconds"),
                "step": p.step,
                "metric": {"name": p.metric_name, "value": p.value},
            }
            for p in points
        ],
    }


def token_view(token: TokenRecord) -> dict[str, Any]:
    """An API token as the API and ``katib token list -o json`` show it (never its secret)."""
    return {
        "id": token.id,
        "name": token.name,
        "namespace": token.namespace,
        "role": token.role,
        "createdAt": rfc3339(token.created_at),
        "revokedAt": rfc3339(token.revoked_at),
        "expiresAt": rfc3339(token.expires_at),
        "lastUsedAt": rfc3339(token.last_used_at),
    }


def events_json(events: Iterable[EventRecord]) -> list[dict[str, Any]]:
    """An experiment's events as ``katib describe`` and the API show them, oldest first."""
    return [
        {
            "type": e.type,
            "reason": e.reason,
            "message": e.message,
            "trialName": e.trial_name,
            "time": rfc3339(e.created_at),
        }
        for e in events
    ]
