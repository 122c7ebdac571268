"""Katib Experiment custom resources, run by the one controller loop (``katib operator``).

The operator watches Experiment resources (``kubeflow.org/v1beta1``), keeps its state in the
database (trials, observation logs, algorithm state), runs trials as workloads with the
Kubernetes launcher under Trial resources, and writes Katib-compatible status. One replica
acts at a time (a ``coordination.k8s.io`` Lease). See docs/kubernetes.md.
"""

from katib.operator._lease import LeaderElector
from katib.operator._operator import Operator, OperatorObserver, OperatorSettings
from katib.operator._push import OperatorPush, load_push_key
from katib.operator._resources import TrialResources, emit_event, trial_resource
from katib.operator._source import CustomResourceExperiments, ExperimentCache, parse_resource
from katib.operator._status import StatusWriter, experiment_status, trial_status

__all__ = [
    "CustomResourceExperiments",
    "ExperimentCache",
    "LeaderElector",
    "Operator",
    "OperatorObserver",
    "OperatorPush",
    "OperatorSettings",
    "StatusWriter",
    "TrialResources",
    "emit_event",
    "experiment_status",
    "load_push_key",
    "parse_resource",
    "trial_resource",
    "trial_status",
]
