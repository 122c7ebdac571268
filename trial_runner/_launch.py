"""The trial-launch boundary: what the controller hands a launcher, and what comes back.

The controller decides *which* trial runs with *which* parameters; a launcher owns *where*
and *how* it runs (local processes and their folders, GPUs and checkpoints; a cluster's
workloads, watches and conditions). The controller hands over a :class:`TrialLaunch` and
receives typed events from the launcher's own threads: :class:`TrialStarted`, any number of
:class:`MetricsReported`, and exactly one :class:`TrialEnded` whose :class:`Ending` says how
the workload ended. Whether that makes the trial Succeeded, Failed or MetricsUnavailable is
the controller's decision, not the launcher's.

A new launcher implements :class:`Launcher` and needs no change to the controller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from katib.spec import MetricsCollectorSpec
from trial_runner.metrics import Observation


class KillReason(StrEnum):
    """Why the controller stops a running trial."""

    #: The controller itself is stopping (Ctrl-C, SIGTERM); the trial runs again on resume.
    INTERRUPTED = "Interrupted"
    #: The early-stopping rule judged it behind the others.
    EARLY_STOPPED = "EarlyStopped"
    #: The experiment ended (goal reached, budget spent, stopped by the user).
    EXPERIMENT_DONE = "ExperimentCompleted"
    #: A user killed this one trial.
    USER = "KilledByUser"


class Ending(StrEnum):
    """How a trial's workload ended, as the launcher saw it."""

    #: It ran to its end and succeeded (exit status 0; the success condition held).
    COMPLETED = "Completed"
    #: It ran and failed (a non-zero exit status, a signal; the failure condition held).
    FAILED = "Failed"
    #: It ran longer than its deadline (a Job's ``activeDeadlineSeconds``) and was stopped.
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    #: The controller had it stopped (:meth:`Launcher.kill`); ``kill_reason`` says why.
    KILLED = "Killed"
    #: It never started: its command, metrics collector or resources could not be set up.
    NOT_STARTED = "NotStarted"


@dataclass(frozen=True)
class CollectionPlan:
    """How the trial's metrics are collected: the experiment's ``metricsCollectorSpec``.

    ``spec`` None means Katib's default (StdOut with Katib's regex).
    """

    metric_names: tuple[str, ...]
    spec: MetricsCollectorSpec | None = None
    #: The ``metricsFormat`` filters (regexes), or None for Katib's default.
    metrics_format: tuple[str, ...] | None = None
    #: Metrics whose values may be text (the objective of an algorithm whose trials report
    #: text, DARTS' genotype); see :class:`~trial_runner.metrics.MetricsParser`.
    text_metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder the trial writes and its descendants start from (Katib's PBT).

    ``path`` is where the spec says checkpoints live (the same for every trial on a cluster,
    where each trial mounts its own volume there); ``parent`` is the trial whose folder this
    one starts from, if any.
    """

    path: str
    parent: str | None = None


@dataclass(frozen=True)
class TrialLaunch:
    """Everything a launcher needs to run one trial."""

    namespace: str
    experiment: str
    trial: str
    #: The rendered workload (a batch Job, a training job, ...), every placeholder substituted.
    manifest: Mapping[str, Any]
    #: The container that runs the training code and reports metrics.
    primary_container: str
    #: The trial's parameters as substituted into the manifest.
    assignments: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Environment for pushing metrics (``KATIB_API_URL``, ``KATIB_API_TOKEN``, ...).
    push_env: Mapping[str, str] = field(default_factory=dict)
    collection: CollectionPlan = field(default_factory=lambda: CollectionPlan(()))
    #: Where the trial's output goes.
    log_path: Path = Path("trial.log")
    checkpoint: Checkpoint | None = None
    #: The folder relative paths of the workload resolve against (the YAML's folder).
    source_dir: str = "."
    #: How many trials of the experiment run at once (a local launcher shares the cores).
    parallel_trial_count: int = 1
    #: 0 for the first run of the trial, then 1, 2, ... for each retry (a Job's backoffLimit).
    attempt: int = 0
    #: Katib's ``trialTemplate`` settings for launchers that watch a workload's status (a
    #: cluster's): when it succeeded or failed (GJSON paths over the object), which of its
    #: pods is the primary one, and whether it is kept once the trial ended.
    success_condition: str = ""
    failure_condition: str = ""
    primary_pod_labels: Mapping[str, str] = field(default_factory=dict)
    retain: bool = False


@dataclass(frozen=True)
class TrialStarted:
    """The trial's workload runs. ``pid`` is its process, where it is one on this machine."""

    trial: str
    started_at: float
    pid: int | None = None


@dataclass(frozen=True)
class MetricsReported:
    """Observations a running trial reported since the last event."""

    trial: str
    observations: Sequence[Observation]


@dataclass(frozen=True)
class TrialEnded:
    """The trial's workload ended; the last event of a launch.

    ``exit_code`` is the primary container's status where there is one (negative: the signal
    that ended it); ``message`` says what happened in the launcher's words.
    """

    trial: str
    ending: Ending
    message: str = ""
    exit_code: int | None = None
    kill_reason: KillReason | None = None
    #: Why it could not start (NotStarted): a short machine-readable reason.
    reason: str = ""
    observations: Sequence[Observation] = ()


TrialEvent = TrialStarted | MetricsReported | TrialEnded
EventSink = Callable[[TrialEvent], None]


class Launcher(ABC):
    """Starts and stops trials; reports what they do through an event sink.

    Contract:

    * :meth:`launch` returns quickly; the trial's events arrive later, from any thread, in
      order for one trial: at most one :class:`TrialStarted`, then :class:`MetricsReported`
      events, then exactly one :class:`TrialEnded` (also when it could not start, or was
      killed before it started).
    * :meth:`kill` of a trial that already ended, or that this launcher does not know, does
      nothing. The trial's :class:`TrialEnded` then carries the first reason it was given.
    * A launcher may hold a trial back until it can run (free GPUs); it is started when it
      is, and reports :class:`TrialStarted` then.
    """

    #: True when the workload retries failures itself (a cluster's Job controller honours
    #: ``backoffLimit``); False when the controller should launch a failed trial again.
    retries_failures: bool = False
    #: True when workloads outlive the controller (a cluster's): a controller that stops
    #: leaves its running trials running, and the next one adopts them (:meth:`adopt`)
    #: instead of killing them and running them again.
    workloads_outlive_controller: bool = False

    @abstractmethod
    def launch(self, launch: TrialLaunch, sink: EventSink) -> None:
        """Start a trial (or queue it until it can start)."""

    @abstractmethod
    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        """Stop a trial; its :class:`TrialEnded` carries ``reason``."""

    @abstractmethod
    def kill_all(self, reason: KillReason, *, wait: float = 5.0) -> None:
        """Stop every trial this launcher runs, waiting up to ``wait`` s for them to end."""

    def adopt(self, launch: TrialLaunch, sink: EventSink) -> bool:
        """Watch the workload of a trial that a controller which stopped or died left
        running, instead of starting it again; its events then arrive as if launched here.

        Returns:
            False when there is nothing to adopt (the default): the controller cleans up
            (:meth:`clean_up`) and runs the trial again.
        """
        return False

    def read_config_map(self, namespace: str, name: str, key: str) -> str | None:
        """The text under ``key`` of a ConfigMap (a ``trialTemplate.configMap`` template).

        Returns:
            None when this launcher has no cluster to read it from (the default).

        Raises:
            KatibError: the ConfigMap or the key does not exist, or cannot be read.
        """
        return None

    def clean_up(self, trial: str, pid: int | None, started_at: float | None) -> None:  # noqa: B027
        """Stop what a controller that died left running of ``trial`` (before it runs again).

        The default does nothing; a launcher whose workloads outlive the controller (local
        process groups, cluster workloads) removes them here.
        """
