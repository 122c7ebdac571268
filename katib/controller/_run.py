"""One experiment while a controller drives it: its state, and the actions that change it.

:class:`ExperimentRun` claims the experiment in the database (so two controllers never drive
the same one), cleans up after an interrupted run, feeds the algorithm, hands trials to the
launcher as :class:`~trial_runner.TrialLaunch` and turns the launcher's typed events into
stored trial states. What to do is decided by pure functions (:func:`reconcile`,
:func:`~katib.controller._decisions.trial_outcome`, ``should_retry``, ``early_stop``); this
class only carries their answers out. It holds counts and the incumbent in memory, so the
per-trial work is a handful of single-row writes, however long the history.

Nothing here knows where trials run: that is the launcher's business.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from katib._faults import fault_point
from katib._time import now
from katib.controller._decisions import (
    Outcome,
    backoff_limit,
    early_stop,
    retry_message,
    should_retry,
    trial_outcome,
)
from katib.controller._optimal import (
    OPTIMAL_CANDIDATE_STATES,
    MetricAccumulator,
    directions,
    is_better_trial,
    objective_values,
    optimal_trial,
)
from katib.controller._owner import new_owner_id, owner_alive
from katib.controller._reconcile import (
    Complete,
    ExperimentState,
    Launch,
    Suggest,
    reconcile,
)
from katib.controller._warm_start import load_warm_start, source_ids
from katib.errors import ConflictError, KatibError
from katib.records import (
    REASON_INTERRUPTED,
    Condition,
    ExperimentCondition,
    ExperimentRecord,
    TrialRecord,
    TrialResult,
    TrialState,
)
from katib.spec import Experiment, inline_config_map, render_trial_spec
from katib.storage import NewEvent, ObservationPoint, Storage
from suggestion import Algorithm, SearchSpace, get_algorithm
from suggestion import TrialRecord as AlgorithmTrial
from suggestion.early_stopping import EarlyStopping, TrialHistory, get_early_stopping
from trial_runner import (
    Checkpoint,
    CollectionPlan,
    EventSink,
    KillReason,
    Launcher,
    MetricsReported,
    Observation,
    TrialEnded,
    TrialEvent,
    TrialLaunch,
    TrialStarted,
)

#: Trial ends recorded as events (`katib describe`): the ones a user wants explained.
NOTEWORTHY_STATES = frozenset(
    {TrialState.FAILED, TrialState.METRICS_UNAVAILABLE, TrialState.EARLY_STOPPED}
)
#: Label naming the trial whose checkpoint a new trial starts from (Katib's PBT).
PARENT_LABEL = "pbt.suggestion.katib.kubeflow.org/parent"
#: How many finished trials a run keeps in memory for progress displays.
RECENT = 50


class RunObserver:
    """Callbacks for progress displays; every method is optional."""

    def experiment_started(self, run: ExperimentRun) -> None:
        pass

    def trial_started(self, run: ExperimentRun, trial: TrialRecord) -> None:
        pass

    def trial_finished(self, run: ExperimentRun, trial: TrialRecord) -> None:
        pass

    def experiment_finished(self, run: ExperimentRun) -> None:
        pass


class ExperimentRun:
    """Drives one experiment: claim, resume, launch, collect, complete.

    Call order: :meth:`start` once, then :meth:`step`, :meth:`handle` (each launcher event)
    and :meth:`heartbeat` in any order from one thread, until :attr:`done`; or
    :meth:`interrupt` to leave it resumable.
    """

    def __init__(
        self,
        storage: Storage,
        record: ExperimentRecord,
        launcher: Launcher,
        *,
        sink: EventSink,
        logs_root: Path,
        owner: str | None = None,
        observer: RunObserver | None = None,
        push_env: dict[str, str] | None = None,
        capacity: Callable[[str], int | None] | None = None,
    ) -> None:
        self.storage = storage
        self.record = record
        self.spec = record.spec
        self.launcher = launcher
        self.sink = sink
        self.logs_root = logs_root
        self.owner = owner or new_owner_id()
        self.observer = observer or RunObserver()
        #: Where trials push metrics (``KATIB_API_URL``, ``KATIB_API_TOKEN``).
        self.push_env = dict(push_env or {})
        #: How many more trials may start in a namespace (its fair share), None: no limit.
        self.capacity = capacity
        objective = self.spec.spec.objective
        assert objective is not None
        self.objective = objective
        self.metric_names = objective.all_metric_names()
        #: The objective is kept as text where the algorithm's trials report text (DARTS).
        self.text_metrics: tuple[str, ...] = (
            (objective.objective_metric_name or "",) if _reports_text(self.spec) else ()
        )
        self.trials: dict[str, TrialRecord] = {}  # active trials by name
        self.accumulators: dict[str, MetricAccumulator] = {}
        self.counts: Counter[TrialState] = Counter()
        self.pending: list[str] = []  # Created, not handed to the launcher yet
        self.best: TrialRecord | None = None
        self.exhausted = False
        self.completing: Complete | None = None
        self.done = False
        self.last_heartbeat = 0.0
        self.algorithm: Algorithm | None = None
        self.early_stopping: EarlyStopping | None = None
        self.recent: list[TrialRecord] = []  # finished trials, newest last, for displays
        #: trial → (retries done, the Job's backoffLimit) while it runs
        self._retries: dict[str, tuple[int, int]] = {}
        self._stopping: set[str] = set()  # trials being killed by early stopping
        self._relaunch: dict[str, int] = {}  # retries (backoffLimit) still to launch: attempt
        self._claimed = False

    # Start -------------------------------------------------------------------------------

    def start(self) -> None:
        """Claim the experiment, clean up after an interrupted run, build the algorithm.

        The claim is taken only from no owner or from one that is gone, as the record read
        says: a record read after another controller claimed the experiment names that live
        controller, whose running trials are not this one's to stop. If anything fails after
        the claim, the claim is released, so that the experiment is not left to a controller
        that does not drive it.

        Raises:
            ConflictError: another controller drives it.
        """
        record = self.record
        taken = record.owner not in (None, self.owner) and owner_alive(
            record.owner, record.owner_heartbeat
        )
        if taken or not self.storage.claim(record.id, self.owner, expected=record.owner):
            raise ConflictError(
                f"experiment {record.namespace}/{record.name} is being run by another process"
            )
        self._claimed = True
        try:
            self._resume()
        except BaseException:
            with contextlib.suppress(Exception):  # the error that stopped the start matters
                self._release()
            raise

    def _resume(self) -> None:
        """What :meth:`start` does once the experiment is claimed."""
        record = self.record
        self._inline_config_map()
        finished: list[TrialRecord] = []
        orphans: list[str] = []
        for trial in self.storage.list_trials(record.id):
            if trial.state == TrialState.RUNNING and self._adopt(trial):
                # Its workload outlived the controller that started it: watch it again.
                self.trials[trial.name] = trial
                self.counts[trial.state] += 1
                continue
            if trial.state == TrialState.RUNNING or (
                trial.state == TrialState.KILLED and trial.reason == REASON_INTERRUPTED
            ):
                # Left behind by a controller that stopped or died: run it again.
                if trial.state == TrialState.RUNNING:
                    orphans.append(trial.name)
                self.launcher.clean_up(trial.name, trial.pid, trial.started_at)
                self.storage.reset_trial(trial.id)
                trial.state = TrialState.CREATED
            if trial.state == TrialState.CREATED:
                # Its launch may have happened just before a crash, unrecorded.
                self.launcher.clean_up(trial.name, None, None)
                self.pending.append(trial.name)
                self.trials[trial.name] = trial
            else:
                finished.append(trial)
            self.counts[trial.state] += 1
        if orphans:
            gone = record.owner or "a controller"
            self.storage.add_event(
                record.id,
                "ControllerGone",
                f"{gone} stopped without recording the end of {len(orphans)} running "
                f"trial(s) ({', '.join(orphans)}); they were stopped and run again",
                type="Warning",
            )
        self.best = optimal_trial(finished, self.objective)
        self.recent = finished[-RECENT:]
        self.algorithm = self._restored_algorithm(finished)
        # Warm-start trials first: the earlier experiments' history comes before this one's.
        warm = load_warm_start(self.storage, record)
        if self.spec.spec.warm_start is not None and (
            record.started_at is None or warm.problems
        ):
            self.storage.add_event(
                record.id,
                "WarmStarted",
                warm.summary(),
                type="Warning" if warm.problems else "Normal",
            )
        self.algorithm.update(
            [self._for_algorithm(t) for t in (*warm.trials, *finished)],
            [self._for_algorithm(t) for t in self.trials.values()],
        )
        self.early_stopping = self._build_early_stopping()
        if self.early_stopping is not None:
            metric = self.early_stopping.metric
            histories = self.storage.metric_histories(record.id, metric)
            for source_id in source_ids(warm):
                histories.update(self.storage.metric_histories(source_id, metric))
            self.early_stopping.observe(
                [
                    TrialHistory(t.name, tuple(histories.get(t.name, ())), t.state.value)
                    for t in (*warm.trials, *finished)
                ]
            )
        if record.condition != ExperimentCondition.RUNNING:
            self._set_condition(
                ExperimentCondition.RUNNING, "ExperimentRunning", "Experiment is running"
            )
        if record.started_at is None:
            record.started_at = now()
            self.storage.update_experiment(record.id, started_at=record.started_at)
        self.storage.update_experiment(record.id, message="")
        self.last_heartbeat = time.monotonic()

    def _restored_algorithm(self, finished: Sequence[TrialRecord]) -> Algorithm:
        """The algorithm with its stored state, or rebuilt from the history (with an event)
        when the state is missing or does not load. A state is data: loading it runs no code
        of the database's choosing."""
        algorithm = self._build_algorithm()
        stored = self.storage.load_algorithm_state(self.record.id)
        problem = None
        if stored is None:
            if finished:
                problem = "no stored state"
        elif stored[0] != algorithm.name:
            problem = f"the stored state belongs to algorithm {stored[0]!r}"
        else:
            try:
                algorithm.load_state(stored[1])
            except Exception as e:  # noqa: BLE001 - any state that does not load is rebuilt
                problem = f"the stored state does not load ({type(e).__name__}: {e})"
                algorithm = self._build_algorithm()
        if problem is not None:
            self.storage.add_event(
                self.record.id,
                "AlgorithmStateRebuilt",
                f"algorithm {algorithm.name}: {problem}; rebuilt from the history of "
                f"{len(finished)} finished trials",
                type="Warning",
            )
        return algorithm

    def _inline_config_map(self) -> None:
        """Read a ``trialTemplate.configMap`` template through the launcher, when it can
        (a cluster's); otherwise trials fail to render with a message that says why."""
        template = self.spec.spec.trial_template
        if template is None or template.trial_spec is not None or template.config_map is None:
            return
        cm = template.config_map
        text = self.launcher.read_config_map(
            cm.config_map_namespace or self.record.namespace,
            cm.config_map_name or "",
            cm.template_path or "",
        )
        if text is not None:
            self.spec = inline_config_map(self.spec, text)

    def _adopt(self, trial: TrialRecord) -> bool:
        """Have the launcher watch a Running trial's workload again (False: it cannot)."""
        if not self.launcher.workloads_outlive_controller:
            return False
        try:
            launch = self.trial_launch(trial)
        except KatibError:
            return False
        accumulator = self._accumulator()
        for point in self.storage.get_observations(trial.id):
            accumulator.add(point.metric_name, point.value)
        self.accumulators[trial.name] = accumulator
        self._retries[trial.name] = (0, 0)
        if self.launcher.adopt(launch, self.sink):
            return True
        self.accumulators.pop(trial.name, None)
        self._retries.pop(trial.name, None)
        return False

    def _build_algorithm(self) -> Algorithm:
        spec = self.spec.spec
        assert spec.algorithm is not None and spec.algorithm.algorithm_name
        cls = get_algorithm(spec.algorithm.algorithm_name)
        # ``directions`` only with several objectives: a plugin written before they existed
        # may not take the argument, and it is refused for them anyway.
        extra = (
            {"directions": directions(self.objective)}
            if self.objective.is_multi_objective
            else {}
        )
        return cls(
            SearchSpace.from_spec(
                spec.parameters, nas_config=None if spec.parameters else spec.nas_config
            ),
            maximize=self.objective.type == "maximize",
            settings=spec.algorithm.settings_dict(),
            max_trial_count=spec.max_trial_count,
            parallel_trial_count=spec.parallel_trial_count or 1,
            **extra,
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

    def _for_algorithm(self, trial: TrialRecord) -> AlgorithmTrial:
        multi = self.objective.is_multi_objective
        return AlgorithmTrial(
            name=trial.name,
            assignments=trial.assignments,
            state=str(trial.state),
            objective=trial.objective,
            metrics={k: v.latest for k, v in trial.metrics.items()},
            labels=trial.labels,
            values=objective_values(trial.metrics, self.objective) if multi else None,
        )

    # Decisions ---------------------------------------------------------------------------

    def state(self) -> ExperimentState:
        spec = self.spec.spec
        parallel = spec.parallel_trial_count or 1
        left = None if self.capacity is None else self.capacity(self.record.namespace)
        if left is not None:
            # The namespace's limit on this server: no more than its free slots start now.
            parallel = min(parallel, self.counts[TrialState.RUNNING] + max(left, 0))
        return ExperimentState(
            counts=dict(self.counts),
            pending=tuple(self.pending),
            max_trial_count=spec.max_trial_count,
            parallel_trial_count=parallel,
            max_failed_trial_count=spec.max_failed_trial_count,
            maximize=self.objective.type == "maximize",
            goal=self.objective.goal,
            best_objective=None if self.best is None else self.best.objective,
            exhausted=self.exhausted,
            stop_requested=self.record.stop_requested,
        )

    def _retry_launches(self) -> None:
        for name, attempt in list(self._relaunch.items()):
            trial = self.trials.get(name)
            if trial is not None and self.completing is None:
                self._launch(trial, attempt=attempt)
            self._relaunch.pop(name, None)

    def step(self) -> None:
        """Reconcile until nothing more can be done without waiting for an event."""
        self._retry_launches()
        while not self.done and self.completing is None:
            decision = reconcile(self.state())
            progressed = False
            for action in decision.actions:
                if isinstance(action, Complete):
                    self._complete(action)
                    return
                if isinstance(action, Launch):
                    self._launch_pending(action.trial_names)
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
        fault_point("after-suggest")
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
        # Recorded Running with the state that produced them, before their workloads start
        # (one transaction): a controller that dies from here on leaves them Running, and the
        # next one stops what is left of them and runs them again.
        created = self.storage.create_trials(
            self.record, new, algorithm_state=state, started_at=now()
        )
        fault_point("after-trial-row")
        for trial in created:
            self.counts[TrialState.RUNNING] += 1
            self.trials[trial.name] = trial
        for i, trial in enumerate(created):
            try:
                self._launch(trial, recorded=True)
            except BaseException:
                # The rest were never handed to the launcher: they wait as Created ones do
                # (the database says Running, which a crash turns into a rerun anyway).
                for rest in created[i + 1 :]:
                    self.counts[TrialState.RUNNING] -= 1
                    self.counts[TrialState.CREATED] += 1
                    rest.state = TrialState.CREATED
                    self.pending.append(rest.name)
                raise
        return True

    def _launch_pending(self, names: Sequence[str]) -> None:
        """Launch pending trials in order; one the database refuses stays pending."""
        for name in names:
            self._launch(self.trials[name])
            if name in self.pending:
                self.pending.remove(name)

    # Trials ------------------------------------------------------------------------------

    def log_path(self, trial_name: str) -> Path:
        return self.logs_root / self.record.namespace / self.record.name / f"{trial_name}.log"

    def trial_launch(self, trial: TrialRecord, *, attempt: int = 0) -> TrialLaunch:
        """What the launcher gets for ``trial``: the rendered workload and where things go.

        Raises:
            KatibError: the trial template cannot be rendered for this trial.
        """
        spec = self.spec.spec
        template = spec.trial_template
        assert template is not None
        manifest = render_trial_spec(
            self.spec,
            trial.assignments,
            trial_name=trial.name,
            namespace=self.record.namespace,
            labels=trial.labels,
        )
        collector = spec.metrics_collector_spec
        formats = None
        if collector and collector.source and collector.source.filter:
            formats = tuple(collector.source.filter.metrics_format or ()) or None
        checkpoint = None
        settings = spec.algorithm.settings_dict() if spec.algorithm else {}
        shared = settings.get("suggestion_trial_dir")
        if shared:
            checkpoint = Checkpoint(shared, trial.labels.get(PARENT_LABEL))
        return TrialLaunch(
            namespace=self.record.namespace,
            experiment=self.record.name,
            trial=trial.name,
            manifest=manifest,
            primary_container=template.primary_container_name or "",
            assignments=dict(trial.assignments),
            labels=dict(trial.labels),
            push_env=dict(self.push_env),
            collection=CollectionPlan(
                tuple(self.metric_names), collector, formats, self.text_metrics
            ),
            log_path=self.log_path(trial.name),
            checkpoint=checkpoint,
            source_dir=self.record.source_dir or ".",
            parallel_trial_count=spec.parallel_trial_count or 1,
            attempt=attempt,
            success_condition=template.success_condition or "",
            failure_condition=template.failure_condition or "",
            primary_pod_labels=dict(template.primary_pod_labels or {}),
            retain=template.retain,
        )

    def _accumulator(self) -> MetricAccumulator:
        rule = self.early_stopping
        return MetricAccumulator(None if rule is None else rule.metric)

    def _launch(self, trial: TrialRecord, *, attempt: int = 0, recorded: bool = False) -> None:
        """Hand ``trial`` to the launcher; it counts as running from now on.

        ``recorded``: the trial was stored Running already (created and launched at once).
        Otherwise raises StorageError (the database is away) before anything changed: the
        caller keeps the trial pending and tries again later.
        """
        try:
            launch = self.trial_launch(trial, attempt=attempt)
        except KatibError as e:
            self._finish(trial, Outcome(TrialState.FAILED, "InvalidTrialTemplate", str(e)))
            return
        if not recorded:
            started_at = trial.started_at if attempt and trial.started_at else now()
            message = trial.message if attempt else "Trial is running"
            # Recorded before the workload starts: a controller that dies from here on leaves
            # the trial Running, and the next one stops its workload and reports it (never an
            # unrecorded second run). The pid, known later, stays in memory.
            self.storage.start_trial(trial.id, started_at=started_at, message=message)
            trial.started_at, trial.reason, trial.message = started_at, "TrialRunning", message
            if attempt == 0:
                self.counts[trial.state] -= 1
                self.counts[TrialState.RUNNING] += 1
                trial.state = TrialState.RUNNING
        self.accumulators[trial.name] = self._accumulator()
        if attempt == 0:
            limit = 0 if self.launcher.retries_failures else backoff_limit(launch.manifest)
            self._retries[trial.name] = (0, limit)
        try:
            self.launcher.launch(launch, self.sink)
            fault_point("after-launch")
        except Exception as e:
            # No event will come for it: record its end here, then let the caller know.
            message = f"{type(e).__name__}: {e}"
            self._finish(trial, Outcome(TrialState.FAILED, "LaunchError", message))
            raise

    def handle(self, event: TrialEvent) -> None:
        """Carry out what a launcher reported about one of this experiment's trials."""
        trial = self.trials.get(event.trial)
        if trial is None:
            return
        if isinstance(event, TrialStarted):
            self._started(trial, event)
            return
        # Storage first, memory after: an event whose write fails (the database is away) is
        # handed in again later and must find the run as it was.
        points = _points(event.observations)
        accumulator = (self.accumulators.get(trial.name) or self._accumulator()).copy()
        for point in points:
            accumulator.add(point.metric_name, point.value)
        for text in event.observations:
            if text.text is not None and text.name in self.text_metrics:
                accumulator.add_text(text.name, text.text)
        if isinstance(event, MetricsReported):
            self.storage.add_observations(trial.id, points)
            self.accumulators[trial.name] = accumulator
            self._check_early_stopping(trial, accumulator)
            return
        assert isinstance(event, TrialEnded)
        name = self.objective.objective_metric_name or ""
        value: float | str | None = accumulator.objective(self.objective)
        if value is None:
            value = accumulator.text_objective(self.objective)
        outcome = trial_outcome(event, value, name)
        retries, limit = self._retries.get(trial.name, (0, 0))
        if should_retry(outcome, retries, limit) and self.completing is None:
            # The Job's backoffLimit: run the trial again, as Kubernetes would start a new pod.
            self.storage.add_observations(trial.id, points)
            self.accumulators[trial.name] = accumulator
            self._retries[trial.name] = (retries + 1, limit)
            trial.message = f"{outcome.message}; retry {retries + 1} of {limit} (backoffLimit)"
            self._relaunch[trial.name] = retries + 1
            self._retry_launches()
            return
        final = Outcome(outcome.state, outcome.reason, retry_message(outcome, retries, limit))
        self._finish(trial, final, event.exit_code, points, accumulator)

    def _started(self, trial: TrialRecord, event: TrialStarted) -> None:
        trial.pid = event.pid
        if self._retries.get(trial.name, (0, 0))[0] == 0:
            self.observer.trial_started(self, trial)

    def _check_early_stopping(self, trial: TrialRecord, acc: MetricAccumulator) -> None:
        rule = self.early_stopping
        if rule is None or trial.name in self._stopping or self.completing is not None:
            return
        if not acc.history:
            return
        why = early_stop(rule, TrialHistory(trial.name, tuple(acc.history)))
        if why is not None:
            self._stopping.add(trial.name)
            self.launcher.kill(trial.name, KillReason.EARLY_STOPPED, why)

    def _finish(
        self,
        trial: TrialRecord,
        outcome: Outcome,
        exit_code: int | None = None,
        points: Sequence[ObservationPoint] = (),
        accumulator: MetricAccumulator | None = None,
    ) -> None:
        if accumulator is None:
            accumulator = self.accumulators.get(trial.name) or self._accumulator()
        previous = trial.state
        result = TrialResult(
            state=outcome.state,
            reason=outcome.reason,
            message=outcome.message,
            completed_at=now(),
            exit_code=exit_code,
            metrics=dict(accumulator.summaries),
            objective=accumulator.objective(self.objective),
            pid=trial.pid,
        )
        ended = replace(
            trial,
            state=result.state,
            reason=result.reason,
            message=result.message,
            exit_code=result.exit_code,
            completed_at=result.completed_at,
            metrics=result.metrics,
            objective=result.objective,
        )
        # The end, its points, its event and a new optimal trial: one transaction.
        events: list[NewEvent] = []
        if result.state in NOTEWORTHY_STATES:
            events.append(
                NewEvent(
                    result.reason or result.state.value,
                    f"trial {trial.name} {result.state.value}: {result.message}",
                    trial_name=trial.name,
                    type="Normal" if result.state == TrialState.EARLY_STOPPED else "Warning",
                )
            )
        better = ended.state in OPTIMAL_CANDIDATE_STATES and is_better_trial(
            ended, self.best, self.objective
        )
        if better:
            summary = ended.metrics.get(self.objective.objective_metric_name or "")
            value = (
                f"{ended.objective:.6g}"
                if ended.objective is not None
                else (summary.text if summary is not None and summary.text is not None else "")
            )
            events.append(
                NewEvent(
                    "NewOptimalTrial",
                    f"trial {trial.name} is the best so far "
                    f"({self.objective.objective_metric_name}={value[:200]})",
                    trial_name=trial.name,
                )
            )
        self.storage.finish_trial(
            trial.id,
            result,
            points,
            experiment_id=self.record.id,
            optimal_trial_name=trial.name if better else None,
            events=events,
        )
        self.accumulators.pop(trial.name, None)
        trial.state, trial.reason, trial.message = result.state, result.reason, result.message
        trial.exit_code, trial.completed_at = result.exit_code, result.completed_at
        trial.metrics, trial.objective = result.metrics, result.objective
        self.counts[previous] -= 1
        self.counts[result.state] += 1
        self._stopping.discard(trial.name)
        self._retries.pop(trial.name, None)
        if self.early_stopping is not None and result.reason != REASON_INTERRUPTED:
            self.early_stopping.observe(
                [TrialHistory(trial.name, tuple(accumulator.history), result.state.value)]
            )
        self.trials.pop(trial.name, None)
        if trial.name in self.pending:
            self.pending.remove(trial.name)
        self.recent.append(trial)
        del self.recent[:-RECENT]
        if result.state != TrialState.KILLED or result.reason != REASON_INTERRUPTED:
            self.exhausted = False  # new information: the algorithm may have more to say
            if self.algorithm is not None:
                self.algorithm.update(
                    [self._for_algorithm(trial)],
                    [self._for_algorithm(t) for t in self.trials.values()],
                )
        if better:
            self.best = trial
            self.record.optimal_trial_name = trial.name
        self.observer.trial_finished(self, trial)
        if self.completing is not None and not self.trials:
            self._close()

    def kill_trial(self, trial_name: str) -> bool:
        """Have a running trial killed at a user's request; False if it is not running."""
        trial = self.trials.get(trial_name)
        if trial is None or trial.state != TrialState.RUNNING:
            return False
        self.launcher.kill(trial_name, KillReason.USER)
        return True

    # End ---------------------------------------------------------------------------------

    def _complete(self, action: Complete) -> None:
        # The end is recorded by _close, once every trial is: whoever sees the experiment
        # Succeeded or Failed sees no trial of it still Running.
        self.completing = action
        for name in list(self.pending):
            self._finish(
                self.trials[name],
                Outcome(
                    TrialState.KILLED,
                    "ExperimentCompleted",
                    "Trial was not run: the experiment completed",
                ),
            )
        for name in list(self._relaunch):
            # Failed, and waiting to run again: it ends as it is.
            self._relaunch.pop(name)
            self._finish(
                self.trials[name],
                Outcome(TrialState.FAILED, "Error", self.trials[name].message),
            )
        for name in list(self.trials):
            self.launcher.kill(name, KillReason.EXPERIMENT_DONE)
        if not self.trials:
            self._close()

    def fail(self, reason: str, message: str) -> None:
        """End the experiment as Failed (the controller cannot go on with it)."""
        if self.completing is None and not self.done:
            self._complete(Complete(ExperimentCondition.FAILED, reason, message))

    def _close(self) -> None:
        if self.done:
            return
        action = self.completing
        if action is not None:
            conditions = self._conditions_with(action.condition, action.reason, action.message)
            self.record.completed_at = now()
            self.storage.complete_experiment(
                self.record.id,
                self.owner,
                condition=action.condition,
                conditions=conditions,
                message=action.message,
                completed_at=self.record.completed_at,
            )
            self._claimed = False
            kind = "Warning" if action.condition == ExperimentCondition.FAILED else "Normal"
            self.storage.add_event(self.record.id, action.reason, action.message, type=kind)
        self.done = True
        self._release()
        self.observer.experiment_finished(self)

    def interrupt(self, message: str) -> None:
        """Leave the experiment resumable after the trials were killed by an interruption.

        Trials whose end never arrived are recorded as interrupted; they run again on resume.
        Where workloads outlive the controller, running trials stay Running instead, for the
        next controller to adopt.
        """
        keep = self.launcher.workloads_outlive_controller
        for trial in list(self.trials.values()):
            if trial.state == TrialState.RUNNING and not keep:
                self._finish(
                    trial,
                    Outcome(
                        TrialState.KILLED,
                        REASON_INTERRUPTED,
                        "Trial was killed by an interruption",
                    ),
                )
        if self.completing is None:
            self.storage.update_experiment(self.record.id, message=message)
        self._release()

    def _release(self) -> None:
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

    def _conditions_with(
        self, condition: ExperimentCondition, reason: str, message: str
    ) -> list[Condition]:
        """The record's conditions with ``condition`` now True (Running no longer)."""
        t = now()
        conditions = [c for c in self.record.conditions if c.type != condition.value]
        for c in conditions:
            if c.type == ExperimentCondition.RUNNING.value and c.status == "True":
                c.status, c.last_transition_time = "False", t
        conditions.append(Condition(condition.value, "True", reason, message, t))
        self.record.conditions = conditions
        self.record.condition = condition
        self.record.message = message
        return conditions

    def _set_condition(self, condition: ExperimentCondition, reason: str, message: str) -> None:
        conditions = self._conditions_with(condition, reason, message)
        self.storage.update_experiment(
            self.record.id, condition=condition, conditions=conditions, message=message
        )
        kind = "Warning" if condition == ExperimentCondition.FAILED else "Normal"
        self.storage.add_event(self.record.id, reason, message, type=kind)


def _reports_text(exp: Experiment) -> bool:
    algorithm = exp.spec.algorithm
    if algorithm is None or not algorithm.algorithm_name:
        return False
    try:
        return get_algorithm(algorithm.algorithm_name).reports_text
    except KatibError:
        return False


def _points(observations: Sequence[Observation]) -> list[ObservationPoint]:
    t = now()
    out: list[ObservationPoint] = []
    for o in observations:
        value = float(o.value)
        if math.isnan(value) or math.isinf(value):
            continue
        out.append(ObservationPoint(o.name, value, o.step, o.timestamp or t))
    return out



