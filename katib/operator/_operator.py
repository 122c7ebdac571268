"""``katib operator``: Experiment custom resources run by the one controller loop.

Start-up: connect (kubeconfig or in-cluster ServiceAccount), open the database (the state
store: trials, observation logs, algorithm state; SQLite or PostgreSQL), serve the push
endpoint, then wait for the leader Lease. Only the leader watches Experiments and acts:
a :class:`~katib.controller.ControllerLoop` over :class:`CustomResourceExperiments` with
the :class:`~trial_runner.kubernetes.KubernetesLauncher`, Trial resources made by
:class:`TrialResources`, status written by :class:`StatusWriter`.

SIGTERM or Ctrl-C stops it cleanly: trial workloads keep running (the next leader adopts
them), pending status is written, the Lease is released. Losing the Lease ends the process
at once (exit status 1), so that two replicas never act together.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from katib.controller import ControllerLoop, ExperimentRun, Interrupted, RunObserver
from katib.operator._lease import LeaderElector
from katib.operator._push import OperatorPush, load_push_key
from katib.operator._resources import TrialResources
from katib.operator._source import CustomResourceExperiments, ExperimentCache
from katib.operator._status import StatusWriter
from katib.records import TrialRecord
from katib.storage import Storage, katib_home
from trial_runner.kubernetes import KubeApi, KubernetesLauncher, SidecarSettings
from trial_runner.pipelines import KfpLauncher, KindDispatcher, with_pipeline_runs

log = logging.getLogger("katib.operator")

INTERRUPTED_MESSAGE = "Interrupted: the operator stopped; its trials keep running"


@dataclass(frozen=True)
class OperatorSettings:
    """How ``katib operator`` runs (its command-line options)."""

    #: Only Experiments of this namespace (None: every namespace).
    namespace: str | None = None
    db_url: str | None = None
    kubeconfig: str | None = None
    #: Where the Lease and the push key live (the operator's own namespace).
    lease_namespace: str = "katib-system"
    lease_name: str = "katib-operator"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    #: The push endpoint: where it listens, and the URL trials use (its Service).
    push_host: str = "0.0.0.0"
    push_port: int = 8080
    push_url: str | None = None
    sidecar_image: str = "katib-local:latest"
    status_interval: float = 1.0
    identity: str | None = None


class OperatorObserver(RunObserver):
    """Keeps Trial and Experiment status up to date with what the loop does."""

    def __init__(self, status: StatusWriter) -> None:
        self.status = status

    def _mark(self, run: ExperimentRun) -> None:
        self.status.mark(run.record.namespace, run.record.name, run.record.id)

    def experiment_started(self, run: ExperimentRun) -> None:
        self._mark(run)

    def trial_started(self, run: ExperimentRun, trial: TrialRecord) -> None:
        self.status.trial(trial)
        self._mark(run)

    def trial_finished(self, run: ExperimentRun, trial: TrialRecord) -> None:
        self.status.trial(trial)
        self._mark(run)

    def experiment_finished(self, run: ExperimentRun) -> None:
        self._mark(run)


class Operator:
    """One replica of the operator. :meth:`run` blocks until it stops."""

    def __init__(self, settings: OperatorSettings, *, api: KubeApi | None = None,
                 storage: Storage | None = None) -> None:
        self.settings = settings
        self.api = api or KubeApi.connect(settings.kubeconfig)
        self.storage = storage or Storage.open(settings.db_url)
        identity = settings.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self.elector = LeaderElector(
            self.api,
            namespace=settings.lease_namespace,
            name=settings.lease_name,
            identity=identity,
            lease_duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
        )
        self.loop: ControllerLoop | None = None
        self.launcher: KindDispatcher | None = None
        self.push: OperatorPush | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask a waiting or running operator to stop (from another thread)."""
        self._stop.set()
        if self.loop is not None:
            self.loop.stop()

    def run(self, *, handle_signals: bool = True) -> None:
        """Wait for the Lease, then drive Experiments until stopped.

        Raises:
            Interrupted: stopped by SIGTERM or Ctrl-C (after a clean stop).
        """
        settings = self.settings
        key = load_push_key(self.api, settings.lease_namespace)
        push = self.push = OperatorPush(
            key, host=settings.push_host, port=settings.push_port, url=settings.push_url
        )
        try:
            with _stop_on_signals(self._stop):
                if not self.elector.acquire(self._stop):
                    return
            self.elector.keep(on_lost=_lost)
            # Only the leader listens: a Service sends trials' pushes to whoever is ready.
            push.listen()
            log.info("push endpoint on %s:%d (trials use %s)", settings.push_host, push.port,
                     push.url)
            self._lead(push, handle_signals=handle_signals)
        finally:
            push.close()
            self.elector.release()

    def _lead(self, push: OperatorPush, *, handle_signals: bool) -> None:
        settings = self.settings
        cache = ExperimentCache(self.api, settings.namespace)
        status = StatusWriter(self.api, self.storage, interval=settings.status_interval)
        hooks = TrialResources(self.api, cache.get)
        cluster = KubernetesLauncher(
            self.api, sidecar=SidecarSettings(image=settings.sidecar_image), hooks=hooks
        )
        # Trials whose template is a Kubeflow Pipelines Run go to KFP's API (KFP_HOST), with
        # their Trial resource created first, as for workloads.
        launcher = self.launcher = with_pipeline_runs(
            cluster, KfpLauncher(before_create=hooks.owner_references)
        )
        source = CustomResourceExperiments(self.storage, cache, status, self.api)
        loop = self.loop = ControllerLoop(
            self.storage,
            launcher,
            logs_root=katib_home() / "logs",
            source=source,
            push=push,
            observer=OperatorObserver(status),
            interrupted_message=INTERRUPTED_MESSAGE,
            scan_interval=1.0,
        )
        _stats_on_sigusr1(self.api, push)
        status.start()
        cache.start()
        where = settings.namespace or "every namespace"
        log.info("watching Experiments in %s", where)
        try:
            if self._stop.is_set():
                return
            loop.run(handle_signals=handle_signals)
        except Interrupted:
            log.info("stopping: trial workloads keep running for the next leader")
            raise
        finally:
            cache.stop()
            launcher.close()
            status.stop(flush=True)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While waiting for the Lease, SIGTERM or Ctrl-C just stop waiting (a clean exit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stats_on_sigusr1(api: KubeApi, push: OperatorPush) -> None:
    """``kill -USR1``: log the API requests made so far (by method and resource) and the
    metric values pushed, as one JSON line (benchmarks/k8s_throughput.py reads it)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stats = {"requests": api.counter.snapshot(), "pushed": push.accepted}
        log.info("stats %s", json.dumps(stats, sort_keys=True))

    signal.signal(signal.SIGUSR1, handler)


def _lost() -> None:
    """Another replica may act now: stop acting at once, as client-go's controllers do."""
    logging.getLogger("katib.operator").error("leadership lost: exiting")
    logging.shutdown()
    os._exit(1)


def default_db_url() -> str:
    return f"sqlite:///{Path(katib_home()) / 'operator.db'}"
