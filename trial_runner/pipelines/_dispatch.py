"""One launcher in front of several: each trial goes to the launcher for its template's kind.

The controller drives one :class:`~trial_runner.Launcher`. :class:`KindDispatcher` lets that
one be a local or cluster launcher for workloads and, for the trials whose rendered template
is a Kubeflow Pipelines ``Run``, the :class:`~trial_runner.pipelines.KfpLauncher`, with no
change to the controller. Kills and adoption go to the launcher that took the trial.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trial_runner._launch import (
    EventSink,
    KillReason,
    Launcher,
    TrialEnded,
    TrialEvent,
    TrialLaunch,
)

__all__ = ["KindDispatcher", "Route"]

#: Whether a rendered trial template belongs to a launcher.
Route = tuple[Callable[[Mapping[str, Any]], bool], Launcher]


class KindDispatcher(Launcher):
    """Sends each trial to the first launcher whose route accepts its manifest, else to
    ``default``.

    ``retries_failures`` and ``workloads_outlive_controller`` are the default launcher's:
    the routed launchers must not contradict them (a KFP run is not retried by the
    controller either way, since a Run has no ``backoffLimit``).
    """

    def __init__(self, default: Launcher, routes: Sequence[Route]) -> None:
        self.default = default
        self.routes = list(routes)
        self.retries_failures = default.retries_failures
        self.workloads_outlive_controller = default.workloads_outlive_controller
        self._lock = threading.Lock()
        self._owner: dict[str, Launcher] = {}

    def launcher_for(self, manifest: Mapping[str, Any]) -> Launcher:
        for accepts, launcher in self.routes:
            if accepts(manifest):
                return launcher
        return self.default

    def launch(self, launch: TrialLaunch, sink: EventSink) -> None:
        launcher = self.launcher_for(launch.manifest)
        with self._lock:
            self._owner[launch.trial] = launcher
        launcher.launch(launch, self._forget_on_end(sink))

    def adopt(self, launch: TrialLaunch, sink: EventSink) -> bool:
        launcher = self.launcher_for(launch.manifest)
        with self._lock:
            self._owner[launch.trial] = launcher
        adopted = launcher.adopt(launch, self._forget_on_end(sink))
        if not adopted:
            with self._lock:
                self._owner.pop(launch.trial, None)
        return adopted

    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        with self._lock:
            launcher = self._owner.get(trial)
        if launcher is not None:
            launcher.kill(trial, reason, message)

    def kill_all(self, reason: KillReason, *, wait: float = 5.0) -> None:
        deadline = time.monotonic() + wait
        for launcher in self._launchers():
            launcher.kill_all(reason, wait=max(0.0, deadline - time.monotonic()))

    def read_config_map(self, namespace: str, name: str, key: str) -> str | None:
        return self.default.read_config_map(namespace, name, key)

    def clean_up(self, trial: str, pid: int | None, started_at: float | None) -> None:
        self.default.clean_up(trial, pid, started_at)

    def close(self) -> None:
        for launcher in self._launchers():
            close = getattr(launcher, "close", None)
            if close is not None:
                close()

    def _launchers(self) -> list[Launcher]:
        seen: list[Launcher] = []
        for launcher in [self.default, *(launcher for _, launcher in self.routes)]:
            if all(launcher is not other for other in seen):
                seen.append(launcher)
        return seen

    def _forget_on_end(self, sink: EventSink) -> EventSink:
        def forward(event: TrialEvent) -> None:
            if isinstance(event, TrialEnded):
                with self._lock:
                    self._owner.pop(event.trial, None)
            sink(event)

        return forward

    def __getattr__(self, name: str) -> Any:
        # Driver-specific helpers of the default launcher (``active()``, ``api``, ...).
        if name.startswith("_") or name in ("default", "routes"):
            raise AttributeError(name)
        return getattr(self.default, name)
