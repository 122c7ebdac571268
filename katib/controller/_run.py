"""The thin loop that carries out :func:`reconcile`'s decisions for one experiment.

:class:`ExperimentRun` owns one experiment while it runs: it claims it in the database (so two
controllers never drive the same experiment), feeds the algorithm, launches trials, turns
launcher events into stored trial states, and keeps the optimal trial. It holds counts and the
incumbent in memory, so the per-trial work is a handful of single-row writes, however long the
history.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from katib._time import now
from katib.controller._collect import CollectorSetupError, plan_collection
from katib.controller._optimal import (
    OPTIMAL_CANDIDATE_STATES,
    MetricAccumulator,
    is_better,
    optimal_trial,
)
from katib.controller._reconcile import (
    Complete,
    ExperimentState,
    Launch,
    Suggest,
    reconcile,
)
from katib.controller._resources import (
    GpuPool,
    ResourceError,
    backoff_limit,
    gpus_requested,
    thread_env,
)
from katib.errors import ConflictError, KatibError
from katib.records import (
    REASON_INTERRUPTED,
    Condition,
    ExperimentCondition,
    ExperimentRecord,
    TrialRecord,
    TrialState,
)
from katib.spec import primary_container, render_trial_spec
from katib.storage import ObservationPoint, Storage
from suggestion import Algorithm, SearchSpace, get_algorithm
from suggestion import TrialRecord as AlgorithmTrial
from suggestion.early_stopping import EarlyStopping, get_early_stopping
from trial_runner._events import Event, Launcher, MetricsReported, TrialExited
from trial_runner.local import ProcessSpec, kill_leftover
from trial_runner.metrics import MetricsParser

#: A controller whose heartbeat is older than this is presumed gone (other hosts only: on
#: this host the owner's pid is checked directly).
OWNER_TIMEOUT = 30.0
HEARTBEAT_INTERVAL = 2.0

REASON_EXPERIMENT_DONE = "ExperimentCompleted"
#: Trial ends recorded as events (`katib describe`): the ones a user wants explained.
NOTEWORTHY_STATES = frozenset(
    {TrialState.FAILED, TrialState.METRICS_UNAVAILABLE, TrialState.EARLY_STOPPED}
)
REASON_EARLY_STOPPED = "EarlyStopped"
#: Label naming the trial whose checkpoint a new trial starts from (Katib's PBT).
PARENT_LABEL = "pbt.suggestion.katib.kubeflow.org/parent"


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str | None, heartbeat: float | None) -> bool:
    """Whether the controller named ``owner`` still drives its experiment."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        return pid != os.getpid() and psutil.pid_exists(pid)
    return heartbeat is not None and now() - heartbeat < OWNER_TIMEOUT


class RunObserver:
    """Callbacks for progress displays; every method is optional."""

    def trial_started(self, run: ExperimentRun, trial: TrialRecord) -> None:
        pass

    def trial_finished(self, run: ExperimentRun, trial: TrialRecord) -> None:
        pass

    def experiment_finished(self, run: ExperimentRun) -> None:
        pass

    def message(self, run: ExperimentRun, text: str) -> None:
        pass


class ExperimentRun:
    """Drives one experiment: claim, resume, launch, collect, complete."""

    def __init__(
        self,
        storage: Storage,
        record: ExperimentRecord,
        launcher: Launcher,
        *,
        sink: Callable[[Event], None],
        logs_root: Path,
        owner: str | None = None,
        observer: RunObserver | None = None,
        gpu_pool: GpuPool | None = None,
    ) -> None:
        self.storage = storage
        self.gpu_pool = gpu_pool or GpuPool()
        self._retries: dict[str, tuple[int, int]] = {}  # trial → (retries done, backoffLimit)
        #: Where trials push metrics (set by the runner once its endpoint is up).
        self.push_env: dict[str, str] = {}
        self.record = record
        self.spec = record.spec
        self.launcher = launcher
        self.sink = sink
        self.logs_root = logs_root
        self.owner = owner or new_owner_id()
        self.observer = observer or RunObserver()
        objective = self.spec.spec.objective
        assert objective is not None
        self.objective = objective
        self.metric_names = objective.all_metric_names()
        self.trials: dict[str, TrialRecord] = {}  # active trials by name
        self.accumulators: dict[str, MetricAccumulator] = {}
        self.counts: Counter[TrialState] = Counter()
        self.pending: list[str] = []
        self.best: TrialRecord | None = None
        self.exhausted = False
        self.completing: Complete | None = None
        self.done = False
        self.last_heartbeat = 0.0
        self.algorithm: Algorithm | None = None
        self.early_stopping: EarlyStopping | None = None
        self._stopping: set[str] = set()  # trials being killed by early stopping
        self.recent: list[TrialRecord] = []  # finished trials, newest last, for displays
        self._claimed = False

    # Start -------------------------------------------------------------------------------

    def start(self) -> None:
        """Claim the experiment, clean up after an interrupted run, build the algorithm."""
        record = self.record
        if not self.storage.claim(record.id, self.owner, expected=record.owner):
            raise ConflictError(
                f"experiment {record.namespace}/{record.name} is being run by another process"
            )
        self._claimed = True
        history = self.storage.list_trials(record.id)
        finished: list[TrialRecord] = []
        for trial in history:
            if trial.state == TrialState.RUNNING or (
                trial.state == TrialState.KILLED and trial.reason == REASON_INTERRUPTED
            ):
                if trial.pid is not None:
                    kill_leftover(trial.pid, trial.started_at)
                self.storage.reset_trial(trial.id)
                trial.state = TrialState.CREATED
            if trial.state == TrialState.CREATED:
                self.pending.append(trial.name)
                self.trials[trial.name] = trial
            else:
                finished.append(trial)
            self.counts[trial.state] += 1
        self.best = optimal_trial(finished, self.objective)
        self.recent = finished[-50:]
        self.algorithm = self._build_algorithm()
        stored = self.storage.load_algorithm_state(record.id)
        if stored is not None and stored[0] == self.algorithm.name:
            self.algorithm.load_state(stored[1])
        self.algorithm.update(
            [_for_algorithm(t) for t in finished],
            [_for_algorithm(t) for t in self.trials.values()],
        )
        self.early_stopping = self._build_early_stopping()
        if self.early_stopping is not None:
            self.early_stopping.update(
                self.storage.objective_means(record.id, self.early_stopping.metric)
            )
        if record.condition != ExperimentCondition.RUNNING:
            self._set_condition(
                ExperimentCondition.RUNNING, "ExperimentRunning", "Experiment is running"
            )
        if record.started_at is None:
            self.storage.update_experiment(record.id, started_at=now())
        self.storage.update_experiment(record.id, message="")
        self.last_heartbeat = time.monotonic()

    def _build_algorithm(self) -> Algorithm:
        spec = self.spec.spec
        assert spec.algorithm is not None and spec.algorithm.algorithm_name
        cls = get_algorithm(spec.algorithm.algorithm_name)
        return cls(
            SearchSpace.from_spec(spec.parameters),
            maximize=self.objective.type == "maximize",
            settings=spec.algorithm.settings_dict(),
            max_trial_count=spec.max_trial_count,
            parallel_trial_count=spec.parallel_trial_count or 1,
        )

    def _build_early_stopping(self) -> EarlyStopping | None:
        early = self.spec.spec.early_stopping
        if early is None or not early.algorithm_name:
            return None
        cls = get_early_stopping(early.algorithm_name)
        return cls(
            metric=self.objective.objective_metric_name or "",
            maximize=self.objective.type == "maximize",
            settings=early.settings_dict(),
        )

    # Decisions ---------------------------------------------------------------------------

    def state(self) -> ExperimentState:
        spec = self.spec.spec
        return ExperimentState(
            counts=dict(self.counts),
            pending=tuple(self.pending),
            max_trial_count=spec.max_trial_count,
            parallel_trial_count=spec.parallel_trial_count or 1,
            max_failed_trial_count=spec.max_failed_trial_count,
            maximize=self.objective.type == "maximize",
            goal=self.objective.goal,
            best_objective=None if self.best is None else self.best.objective,
            exhausted=self.exhausted,
            stop_requested=self.record.stop_requested,
        )

    def step(self) -> None:
        """Reconcile until nothing more can be done without waiting for an event."""
        while not self.done and self.completing is None:
            decision = reconcile(self.state())
            progressed = False
            for action in decision.actions:
                if isinstance(action, Complete):
                    self._complete(action)
                    return
                if isinstance(action, Launch):
                    for name in action.trial_names:
                        self.pending.remove(name)
                        if not self._launch(self.trials[name]):
                            self.pending.insert(0, name)
                            return  # waits for GPUs: a finishing trial frees them
                    progressed = True
                elif isinstance(action, Suggest):
                    progressed = self._suggest(action.count) or progressed
            if not progressed:
                return

    def _suggest(self, count: int) -> bool:
        """Ask for ``count`` trials; True if anything changed (trials or exhaustion)."""
        assert self.algorithm is not None
        try:
            suggestions = self.algorithm.suggest(count)
        except Exception as e:  # noqa: BLE001 - an algorithm bug fails the experiment cleanly
            self._complete(
                Complete(
                    ExperimentCondition.FAILED,
                    "SuggestionFailed",
                    f"algorithm {self.algorithm.name} failed: {type(e).__name__}: {e}",
                )
            )
            return False
        state = (self.algorithm.name, self.algorithm.dump_state())
        if not suggestions:
            self.storage.save_algorithm_state(self.record.id, *state)
            self.exhausted = True
            return True
        new = [
            (
                assignments,
                {
                    "katib.kubeflow.org/experiment": self.record.name,
                    **self.algorithm.labels_for(assignments),
                },
            )
            for assignments in suggestions
        ]
        for trial in self.storage.create_trials(self.record, new, algorithm_state=state):
            self.counts[TrialState.CREATED] += 1
            self.trials[trial.name] = trial
            if not self._launch(trial):
                self.pending.append(trial.name)
        return True

    # Trials ------------------------------------------------------------------------------

    def log_path(self, trial_name: str) -> Path:
        return self.logs_root / self.record.namespace / self.record.name / f"{trial_name}.log"

    def _launch(self, trial: TrialRecord, *, retry: bool = False) -> bool:
        """Start ``trial``; False when it must wait (for GPUs) and stays pending."""
        self.accumulators[trial.name] = MetricAccumulator()
        try:
            process = self._process_spec(trial, retry=retry)
        except ResourceError as e:
            self._finish(trial, TrialState.FAILED, "InsufficientResources", str(e), None, [])
            return True
        except CollectorSetupError as e:
            self._finish(trial, TrialState.FAILED, "MetricsCollectorError", str(e), None, [])
            return True
        except KatibError as e:
            self._finish(trial, TrialState.FAILED, "InvalidTrialTemplate", str(e), None, [])
            return True
        if process is None:
            return False
        started = now()
        pid = self.launcher.launch(trial.name, process, self.sink)
        if pid is None:
            return True  # the launcher already reported TrialExited with the reason
        if retry:
            trial.pid = pid
            self.storage.update_trial(trial.id, pid=pid, message=trial.message)
            return True
        self.counts[TrialState.CREATED] -= 1
        self.counts[TrialState.RUNNING] += 1
        trial.state, trial.pid, trial.started_at = TrialState.RUNNING, pid, started
        trial.reason, trial.message = "TrialRunning", "Trial is running"
        self.storage.update_trial(
            trial.id,
            state=TrialState.RUNNING,
            pid=pid,
            started_at=started,
            reason=trial.reason,
            message=trial.message,
        )
        self.observer.trial_started(self, trial)
        return True

    def _process_spec(self, trial: TrialRecord, *, retry: bool = False) -> ProcessSpec | None:
        template = self.spec.spec.trial_template
        assert template is not None
        manifest = render_trial_spec(
            self.spec,
            trial.assignments,
            trial_name=trial.name,
            namespace=self.record.namespace,
            labels=trial.labels,
        )
        container = primary_container(manifest, template.primary_container_name or "")
        command = container.get("command") or []
        args = container.get("args") or []
        argv = [str(a) for a in [*command, *args]]
        if not command:
            raise KatibError(
                f"container {template.primary_container_name!r} has no command: locally the "
                "image's entrypoint is not known, so the trial needs an explicit command"
            )
        if argv[0] in ("python", "python3"):
            # Trials use the interpreter (and virtual environment) that runs katib.
            argv[0] = sys.executable
        base = Path(self.record.source_dir or ".")
        working_dir = container.get("workingDir")
        cwd = base / working_dir if working_dir else base
        env = {
            "PYTHONUNBUFFERED": "1",
            "KATIB_TRIAL_NAME": trial.name,
            "KATIB_EXPERIMENT_NAME": self.record.name,
            "KATIB_NAMESPACE": self.record.namespace,
            **self.push_env,
        }
        for item in container.get("env") or []:
            if isinstance(item, Mapping) and "name" in item and "value" in item:
                env[str(item["name"])] = str(item["value"])
        checkpoint = self._checkpoint_mapping(trial)
        if checkpoint is not None:
            # The trial sees its own folder where the spec names the shared checkpoint path.
            shared, own = checkpoint
            argv = [a.replace(shared, own) for a in argv]
            env = {k: v.replace(shared, own) for k, v in env.items()}
        for key, value in thread_env(container, self.spec.spec.parallel_trial_count or 1).items():
            env.setdefault(key, value)
        gpus = gpus_requested(container)
        if gpus:
            ids = self.gpu_pool.acquire(trial.name, gpus)
            if ids is None:
                return None
            env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
        try:
            plan = plan_collection(
                self.spec.spec.metrics_collector_spec, self.metric_names,
                trial_dir=self.trial_dir(trial.name), cwd=str(cwd), env=env,
            )
        except KatibError:
            self.gpu_pool.release(trial.name)
            raise
        argv = [plan.apply(a) for a in argv]
        env = {k: plan.apply(v) for k, v in env.items()} | plan.env
        if trial.name not in self._retries:
            self._retries[trial.name] = (0, backoff_limit(manifest))
        deadline = (manifest.get("spec") or {}).get("activeDeadlineSeconds")
        return ProcessSpec(
            argv=argv,
            cwd=str(cwd),
            log_path=self.log_path(trial.name),
            env=env,
            parse_line=self._parser().parse_line if plan.parse_stdout else None,
            collectors=plan.collectors,
            deadline_seconds=float(deadline) if isinstance(deadline, int | float) else None,
            append_log=retry,
        )

    def trial_dir(self, trial_name: str) -> Path:
        """The trial's own folder, where configured metrics paths are mapped to."""
        root = self.logs_root.parent / "trials"
        return root / self.record.namespace / self.record.name / trial_name

    def checkpoint_dir(self, trial_name: str) -> Path:
        root = self.logs_root.parent / "checkpoints"
        return root / self.record.namespace / self.record.name / trial_name

    def _checkpoint_mapping(self, trial: TrialRecord) -> tuple[str, str] | None:
        """(path in the spec, this trial's folder) for algorithms that keep checkpoints (PBT).

        On a cluster every trial mounts its own folder at ``suggestion_trial_dir``; locally each
        trial gets ``$KATIB_HOME/checkpoints/<ns>/<exp>/<trial>`` instead, seeded with a copy of
        its parent's folder when the algorithm names a parent.
        """
        algorithm = self.spec.spec.algorithm
        shared = algorithm.settings_dict().get("suggestion_trial_dir") if algorithm else None
        if not shared:
            return None
        own = self.checkpoint_dir(trial.name)
        parent = trial.labels.get(PARENT_LABEL)
        if parent and parent != trial.name and not own.exists():
            source = self.checkpoint_dir(parent)
            if source.is_dir():
                shutil.copytree(source, own, dirs_exist_ok=True)
        own.mkdir(parents=True, exist_ok=True)
        own_text = str(own)
        if shared.endswith("/"):
            own_text += "/"
        return shared, own_text

    def _parser(self) -> MetricsParser:
        parser = getattr(self, "_metrics_parser", None)
        if parser is None:
            collector = self.spec.spec.metrics_collector_spec
            formats = None
            if collector and collector.source and collector.source.filter:
                formats = collector.source.filter.metrics_format or None
            parser = MetricsParser(self.metric_names, formats)
            self._metrics_parser = parser
        return parser

    def handle(self, event: Event) -> None:
        trial = self.trials.get(event.trial)
        if trial is None:
            return
        points = _points(event.observations)
        accumulator = self.accumulators.setdefault(trial.name, MetricAccumulator())
        for point in points:
            accumulator.add(point.metric_name, point.value)
        if isinstance(event, MetricsReported):
            self.storage.add_observations(trial.id, points)
            self._check_early_stopping(trial, accumulator)
            return
        assert isinstance(event, TrialExited)
        state, reason, message = self._outcome(trial, event, accumulator)
        done, limit = self._retries.get(trial.name, (0, 0))
        if state == TrialState.FAILED and reason == "Error" and done < limit:
            # The Job's backoffLimit: run the trial again, as Kubernetes would start a new pod.
            self.storage.add_observations(trial.id, points)
            self._retries[trial.name] = (done + 1, limit)
            self.gpu_pool.release(trial.name)
            trial.message = f"{message}; retry {done + 1} of {limit} (backoffLimit)"
            self._launch(trial, retry=True)
            return
        if limit and state == TrialState.FAILED and reason == "Error":
            message = f"{message} (failed {done + 1} times; backoffLimit {limit})"
        self._finish(trial, state, reason, message, event.exit_code, points)

    def _check_early_stopping(self, trial: TrialRecord, acc: MetricAccumulator) -> None:
        es = self.early_stopping
        if es is None or trial.name in self._stopping or self.completing is not None:
            return
        latest = acc.summaries.get(es.metric)
        if latest is None:
            return
        decision = es.should_stop(acc.counts.get(es.metric, 0), latest.latest)
        if decision is not None:
            self._stopping.add(trial.name)
            self.launcher.kill(trial.name, f"{REASON_EARLY_STOPPED}: {decision}")

    def _outcome(
        self, trial: TrialRecord, event: TrialExited, acc: MetricAccumulator
    ) -> tuple[TrialState, str, str]:
        if event.error:
            return TrialState.FAILED, "StartError", event.error
        killed = event.killed_reason
        if killed == REASON_INTERRUPTED:
            return TrialState.KILLED, REASON_INTERRUPTED, "Trial was killed by an interruption"
        if killed is not None and killed.startswith(REASON_EARLY_STOPPED):
            return TrialState.EARLY_STOPPED, REASON_EARLY_STOPPED, killed.partition(": ")[2]
        if killed is not None and killed.startswith("DeadlineExceeded"):
            return TrialState.FAILED, "DeadlineExceeded", killed.partition(": ")[2]
        if killed is not None:
            return TrialState.KILLED, killed, f"Trial was killed: {killed}"
        code = event.exit_code
        if code != 0:
            return TrialState.FAILED, "Error", _describe_exit(code)
        if acc.objective(self.objective) is None:
            name = self.objective.objective_metric_name
            return (
                TrialState.METRICS_UNAVAILABLE,
                "MetricsUnavailable",
                f"objective metric {name} was never reported",
            )
        return TrialState.SUCCEEDED, "TrialSucceeded", "Trial has succeeded"

    def _finish(
        self,
        trial: TrialRecord,
        state: TrialState,
        reason: str,
        message: str,
        exit_code: int | None,
        points: list[ObservationPoint],
    ) -> None:
        accumulator = self.accumulators.pop(trial.name, MetricAccumulator())
        previous = trial.state
        trial.state, trial.reason, trial.message = state, reason, message
        trial.exit_code, trial.completed_at = exit_code, now()
        trial.metrics = dict(accumulator.summaries)
        trial.objective = accumulator.objective(self.objective)
        self.storage.finish_trial(
            trial.id,
            points,
            state=state,
            reason=reason,
            message=message,
            exit_code=exit_code,
            completed_at=trial.completed_at,
            metrics=trial.metrics,
            objective=trial.objective,
        )
        self.counts[previous] -= 1
        self.counts[state] += 1
        self._stopping.discard(trial.name)
        self._retries.pop(trial.name, None)
        self.gpu_pool.release(trial.name)
        if self.early_stopping is not None and state == TrialState.SUCCEEDED:
            mean = accumulator.mean(self.early_stopping.metric)
            if mean is not None:
                self.early_stopping.update({trial.name: mean})
        self.trials.pop(trial.name, None)
        if trial.name in self.pending:
            self.pending.remove(trial.name)
        self.recent.append(trial)
        del self.recent[:-50]
        if state in NOTEWORTHY_STATES:
            self.storage.add_event(
                self.record.id,
                reason or state.value,
                f"trial {trial.name} {state.value}: {message}",
                trial_name=trial.name,
                type="Normal" if state == TrialState.EARLY_STOPPED else "Warning",
            )
        if state != TrialState.KILLED or reason != REASON_INTERRUPTED:
            self.exhausted = False  # new information: the algorithm may have more to say
            if self.algorithm is not None:
                self.algorithm.update(
                    [_for_algorithm(trial)], [_for_algorithm(t) for t in self.trials.values()]
                )
        if (
            state in OPTIMAL_CANDIDATE_STATES
            and trial.objective is not None
            and is_better(
                trial.objective, None if self.best is None else self.best.objective, self.objective
            )
        ):
            self.best = trial
            self.storage.update_experiment(self.record.id, optimal_trial_name=trial.name)
            self.storage.add_event(
                self.record.id,
                "NewOptimalTrial",
                f"trial {trial.name} is the best so far "
                f"({self.objective.objective_metric_name}={trial.objective:.6g})",
                trial_name=trial.name,
            )
        self.observer.trial_finished(self, trial)
        if self.completing is not None and not self.trials:
            self._close()

    # End ---------------------------------------------------------------------------------

    def _complete(self, action: Complete) -> None:
        # The end is recorded by _close, once every trial is: whoever sees the experiment
        # Succeeded or Failed sees no trial of it still Running.
        self.completing = action
        for name in list(self.pending):
            trial = self.trials[name]
            self._finish(
                trial,
                TrialState.KILLED,
                REASON_EXPERIMENT_DONE,
                "Trial was not run: the experiment completed",
                None,
                [],
            )
        for name in list(self.trials):
            self.launcher.kill(name, REASON_EXPERIMENT_DONE)
        if not self.trials:
            self._close()

    def _close(self) -> None:
        if self.done:
            return
        action = self.completing
        if action is not None:
            self._set_condition(action.condition, action.reason, action.message)
            self.storage.update_experiment(self.record.id, completed_at=now())
        self.done = True
        self.storage.release(self.record.id, self.owner)
        self._claimed = False
        self.observer.experiment_finished(self)

    def interrupt(self) -> None:
        """Leave the experiment resumable after the trials were killed by an interruption."""
        for trial in list(self.trials.values()):
            # Trials whose exit event never arrived: record them as interrupted anyway.
            if trial.state == TrialState.RUNNING:
                self._finish(
                    trial,
                    TrialState.KILLED,
                    REASON_INTERRUPTED,
                    "Trial was killed by an interruption",
                    None,
                    [],
                )
        if self.completing is None:
            self.storage.update_experiment(
                self.record.id,
                message="Interrupted: run the same file again to resume",
            )
        if self._claimed:
            self.storage.release(self.record.id, self.owner)
            self._claimed = False

    def heartbeat(self) -> None:
        """Renew the claim; pick up stop requests and budget edits made by other commands."""
        self.last_heartbeat = time.monotonic()
        fresh = self.storage.get_experiment_by_id(self.record.id)
        if fresh.owner != self.owner:
            return
        self.storage.update_experiment(self.record.id, owner_heartbeat=now())
        if fresh.stop_requested and not self.record.stop_requested:
            self.record.stop_requested = True
        spec, new = self.spec.spec, fresh.spec.spec
        spec.max_trial_count = new.max_trial_count
        spec.parallel_trial_count = new.parallel_trial_count
        spec.max_failed_trial_count = new.max_failed_trial_count

    def _set_condition(self, condition: ExperimentCondition, reason: str, message: str) -> None:
        t = now()
        conditions = [c for c in self.record.conditions if c.type != condition.value]
        for c in conditions:
            if c.type == ExperimentCondition.RUNNING.value and c.status == "True":
                c.status, c.last_transition_time = "False", t
        conditions.append(Condition(condition.value, "True", reason, message, t))
        self.record.conditions = conditions
        self.record.condition = condition
        self.record.message = message
        self.storage.update_experiment(
            self.record.id, condition=condition, conditions=conditions, message=message
        )
        kind = "Warning" if condition == ExperimentCondition.FAILED else "Normal"
        self.storage.add_event(self.record.id, reason, message, type=kind)


def _points(observations: Any) -> list[ObservationPoint]:
    t = now()
    out: list[ObservationPoint] = []
    for o in observations or ():
        value = float(o.value)
        if math.isnan(value) or math.isinf(value):
            continue
        out.append(ObservationPoint(o.name, value, o.step, o.timestamp or t))
    return out


def _for_algorithm(trial: TrialRecord) -> AlgorithmTrial:
    return AlgorithmTrial(
        name=trial.name,
        assignments=trial.assignments,
        state=str(trial.state),
        objective=trial.objective,
        metrics={k: v.latest for k, v in trial.metrics.items()},
        labels=trial.labels,
    )


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the process ended without an exit status"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"
