"""Trials as Kubernetes workloads, through the official ``kubernetes`` client.

:class:`KubernetesLauncher` creates each trial's workload (batch Job, Kubeflow training
jobs, TrainJob, any kind whose conditions are given), injects Katib's metrics collector,
watches the workload and evaluates the trial's GJSON success and failure conditions.
:class:`KubeApi` is the connection (kubeconfig or in-cluster) with request counting.
Only this package and ``katib.operator`` import ``kubernetes``.
"""

from trial_runner.kubernetes._api import (
    GoneError,
    KubeApi,
    KubeApiError,
    RequestCounter,
    UnknownKindError,
)
from trial_runner.kubernetes._conditions import (
    ConditionSyntaxError,
    Met,
    condition_met,
    gjson_get,
)
from trial_runner.kubernetes._launcher import KubernetesLauncher, LaunchHooks
from trial_runner.kubernetes._watch import ResourceWatcher
from trial_runner.kubernetes._workload import (
    DONE_FILE,
    EXPERIMENT_LABEL,
    METRICS_DIR,
    SIDECAR_NAME,
    STDOUT_FILE,
    TRIAL_LABEL,
    SidecarSettings,
    WorkloadError,
    pod_templates,
    prepare_workload,
)

__all__ = [
    "DONE_FILE",
    "EXPERIMENT_LABEL",
    "METRICS_DIR",
    "SIDECAR_NAME",
    "STDOUT_FILE",
    "TRIAL_LABEL",
    "ConditionSyntaxError",
    "GoneError",
    "KubeApi",
    "KubeApiError",
    "KubernetesLauncher",
    "LaunchHooks",
    "Met",
    "RequestCounter",
    "ResourceWatcher",
    "SidecarSettings",
    "UnknownKindError",
    "WorkloadError",
    "condition_met",
    "gjson_get",
    "pod_templates",
    "prepare_workload",
]
