"""Trials as local processes: the launcher of ``katib run``, the SDK and a local server.

Everything about running a trial on this machine lives here: the primary container of the
rendered workload becomes an argv (``python`` is the interpreter that runs katib), its
``env`` and ``workingDir`` are honoured with relative paths resolved against the YAML's
folder, the trial gets its own folder where configured metrics paths and ports are mapped
(:mod:`trial_runner._collect`), its own checkpoint folder seeded from its parent's (PBT),
a share of the cores for math libraries and GPUs of its own (:mod:`trial_runner._resources`),
and a process group that is stopped as a whole (:mod:`trial_runner._process`).
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katib.errors import KatibError
from katib.spec import primary_container
from trial_runner._collect import CollectorSetupError, plan_collection
from trial_runner._launch import (
    Ending,
    EventSink,
    KillReason,
    Launcher,
    TrialEnded,
    TrialLaunch,
)
from trial_runner._process import ProcessRunner, ProcessSpec, kill_by_environment, kill_leftover
from trial_runner._resources import GpuPool, ResourceError, gpus_requested, thread_env
from trial_runner.metrics import MetricsParser

__all__ = ["LocalProcessLauncher"]


@dataclass
class _Queued:
    """A trial held back until enough GPUs are free."""

    launch: TrialLaunch
    sink: EventSink
    gpus: int


class LocalProcessLauncher(Launcher):
    """Runs trials as process groups on this machine.

    Args:
        home: The folder under which each trial gets its own folders
            (``trials/<ns>/<exp>/<trial>`` for metrics files, ``checkpoints/...`` for PBT).
        gpus: GPU ids to hand out (default: ``CUDA_VISIBLE_DEVICES`` or what nvidia-smi lists).
        grace_seconds: How long a stopped trial has between SIGTERM and SIGKILL.
    """

    def __init__(
        self, home: Path, *, gpus: list[str] | None = None, grace_seconds: float = 5.0
    ) -> None:
        self.home = home
        self.processes = ProcessRunner(grace_seconds=grace_seconds)
        self.gpu_pool = GpuPool(gpus)
        self._lock = threading.Lock()
        self._queued: deque[_Queued] = deque()
        # Parsers compile their regexes once per experiment's metrics, not once per trial.
        self._parsers: dict[
            tuple[tuple[str, ...], tuple[str, ...] | None, tuple[str, ...]], MetricsParser
        ] = {}

    # The launcher interface ------------------------------------------------------------------

    def launch(self, launch: TrialLaunch, sink: EventSink) -> None:
        try:
            container = primary_container(launch.manifest, launch.primary_container)
            gpus = gpus_requested(container)
            if gpus > self.gpu_pool.total:
                raise ResourceError(
                    f"the trial asks for {gpus} nvidia.com/gpu but this machine has "
                    f"{self.gpu_pool.total}"
                )
        except ResourceError as e:
            sink(_not_started(launch, "InsufficientResources", str(e)))
            return
        except KatibError as e:
            sink(_not_started(launch, "InvalidTrialTemplate", str(e)))
            return
        with self._lock:
            if gpus and (self._queued or not self._acquire(launch.trial, gpus)):
                self._queued.append(_Queued(launch, sink, gpus))
                return
        self._start(launch, sink, container)

    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        with self._lock:
            queued = next((q for q in self._queued if q.launch.trial == trial), None)
            if queued is not None:
                self._queued.remove(queued)
        if queued is not None:
            queued.sink(_killed_before_start(queued.launch, reason, message))
            return
        self.processes.kill(trial, reason, message)

    def kill_all(self, reason: KillReason, *, wait: float = 5.0) -> None:
        with self._lock:
            queued = list(self._queued)
            self._queued.clear()
        for q in queued:
            q.sink(_killed_before_start(q.launch, reason, ""))
        self.processes.kill_all(reason, wait=wait)

    def clean_up(self, trial: str, pid: int | None, started_at: float | None) -> None:
        if pid is not None:
            kill_leftover(pid, started_at)
        else:
            # Started by a controller that died before it recorded the pid: find it by the
            # environment every trial process carries. Names are unique per namespace; the
            # experiment name narrows it further.
            kill_by_environment({"KATIB_TRIAL_NAME": trial})

    # Folders ---------------------------------------------------------------------------------

    def trial_dir(self, launch: TrialLaunch) -> Path:
        """The trial's own folder, where configured metrics paths are mapped to."""
        return self.home / "trials" / launch.namespace / launch.experiment / launch.trial

    def checkpoint_dir(self, launch: TrialLaunch, trial: str) -> Path:
        return self.home / "checkpoints" / launch.namespace / launch.experiment / trial

    # Starting --------------------------------------------------------------------------------

    def _acquire(self, trial: str, gpus: int) -> bool:
        return self.gpu_pool.acquire(trial, gpus) is not None

    def _start(self, launch: TrialLaunch, sink: EventSink, container: Mapping[str, Any]) -> None:
        try:
            spec = self._process_spec(launch, container)
        except CollectorSetupError as e:
            self._release(launch.trial)
            sink(_not_started(launch, "MetricsCollectorError", str(e)))
            return
        except KatibError as e:
            self._release(launch.trial)
            sink(_not_started(launch, "InvalidTrialTemplate", str(e)))
            return
        self.processes.start(
            launch.trial, spec, sink, on_exit=lambda: self._release(launch.trial)
        )

    def _release(self, trial: str) -> None:
        """Free the trial's GPUs and start the trials that waited for them, oldest first."""
        ready: list[_Queued] = []
        with self._lock:
            self.gpu_pool.release(trial)
            while self._queued and self._acquire(self._queued[0].launch.trial,
                                                 self._queued[0].gpus):
                ready.append(self._queued.popleft())
        for q in ready:
            container = primary_container(q.launch.manifest, q.launch.primary_container)
            self._start(q.launch, q.sink, container)

    def _process_spec(self, launch: TrialLaunch, container: Mapping[str, Any]) -> ProcessSpec:
        command = container.get("command") or []
        args = container.get("args") or []
        argv = [str(a) for a in [*command, *args]]
        if not command:
            raise KatibError(
                f"container {launch.primary_container!r} has no command: locally the "
                "image's entrypoint is not known, so the trial needs an explicit command"
            )
        if argv[0] in ("python", "python3"):
            # Trials use the interpreter (and virtual environment) that runs katib.
            argv[0] = sys.executable
        base = Path(launch.source_dir or ".")
        working_dir = container.get("workingDir")
        cwd = base / working_dir if working_dir else base
        env = {
            "PYTHONUNBUFFERED": "1",
            "KATIB_TRIAL_NAME": launch.trial,
            "KATIB_EXPERIMENT_NAME": launch.experiment,
            "KATIB_NAMESPACE": launch.namespace,
            **launch.push_env,
        }
        for item in container.get("env") or []:
            if isinstance(item, Mapping) and "name" in item and "value" in item:
                env[str(item["name"])] = str(item["value"])
        checkpoint = self._checkpoint_mapping(launch)
        if checkpoint is not None:
            # The trial sees its own folder where the spec names the shared checkpoint path.
            shared, own = checkpoint
            argv = [a.replace(shared, own) for a in argv]
            env = {k: v.replace(shared, own) for k, v in env.items()}
        for key, value in thread_env(container, launch.parallel_trial_count).items():
            env.setdefault(key, value)
        gpus = self.gpu_pool.owned(launch.trial)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        plan = plan_collection(
            launch.collection, trial_dir=self.trial_dir(launch), cwd=str(cwd), env=env
        )
        argv = [plan.apply(a) for a in argv]
        env = {k: plan.apply(v) for k, v in env.items()} | plan.env
        parser = self._parser(launch) if plan.parse_stdout else None
        deadline = (launch.manifest.get("spec") or {}).get("activeDeadlineSeconds")
        return ProcessSpec(
            argv=argv,
            cwd=str(cwd),
            log_path=launch.log_path,
            env=env,
            parse_line=None if parser is None else parser.parse_line,
            collectors=plan.collectors,
            deadline_seconds=float(deadline) if isinstance(deadline, int | float) else None,
            append_log=launch.attempt > 0,
        )

    def _parser(self, launch: TrialLaunch) -> MetricsParser:
        collection = launch.collection
        key = (tuple(collection.metric_names), collection.metrics_format, collection.text_metrics)
        parser = self._parsers.get(key)
        if parser is None:
            formats = collection.metrics_format
            parser = MetricsParser(
                key[0], list(formats) if formats else None, text_metrics=collection.text_metrics
            )
            self._parsers[key] = parser
        return parser

    def _checkpoint_mapping(self, launch: TrialLaunch) -> tuple[str, str] | None:
        """(path in the spec, this trial's folder) for algorithms that keep checkpoints (PBT).

        On a cluster every trial mounts its own folder at the checkpoint path; locally each
        trial gets ``<home>/checkpoints/<ns>/<exp>/<trial>`` instead, seeded with a copy of
        its parent's folder when the algorithm names a parent.
        """
        checkpoint = launch.checkpoint
        if checkpoint is None or not checkpoint.path:
            return None
        own = self.checkpoint_dir(launch, launch.trial)
        parent = checkpoint.parent
        if parent and parent != launch.trial and not own.exists():
            source = self.checkpoint_dir(launch, parent)
            if source.is_dir():
                shutil.copytree(source, own, dirs_exist_ok=True)
        own.mkdir(parents=True, exist_ok=True)
        own_text = str(own)
        if checkpoint.path.endswith("/"):
            own_text += "/"
        return checkpoint.path, own_text


def _not_started(launch: TrialLaunch, reason: str, message: str) -> TrialEnded:
    launch.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(launch.log_path, "ab" if launch.attempt > 0 else "wb") as log:
        log.write(f"[katib] the trial could not start: {message}\n".encode())
    return TrialEnded(launch.trial, Ending.NOT_STARTED, message, reason=reason)


def _killed_before_start(launch: TrialLaunch, reason: KillReason, message: str) -> TrialEnded:
    return TrialEnded(
        launch.trial,
        Ending.KILLED,
        message or f"killed before it started: {reason.value}",
        kill_reason=reason,
    )
