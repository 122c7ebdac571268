"""The server's controller: the one loop, in a background thread, over the whole database.

It drives every unfinished experiment that no live controller drives, in every namespace,
and picks up new ones within a second. Trials push metrics to the server's API with a token
made for their experiment (editor in its namespace), revoked when the run ends. When it
stops, trials are killed and recorded as interrupted, so that the experiments carry on when
a server starts again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from katib.controller._loop import ControllerLoop, ServerPush, UnfinishedExperiments
from katib.storage import Storage
from trial_runner import Launcher, Observation

INTERRUPTED_MESSAGE = "Interrupted: the server stopped; it resumes when a server starts"


class BackgroundController:
    """Runs a :class:`~katib.controller.ControllerLoop` in a thread while a server runs.

    Args:
        storage: The database.
        launcher: Runs trials (local processes, cluster workloads).
        logs_root: Where trial logs go (``$KATIB_HOME/logs``).
        api_url: The server's URL as trials reach it (``KATIB_API_URL``); empty: no push.
        scan_interval: Seconds between looks for experiments to drive.
    """

    def __init__(
        self,
        storage: Storage,
        launcher: Launcher,
        *,
        logs_root: Path,
        api_url: str = "",
        scan_interval: float = 1.0,
    ) -> None:
        self.storage = storage
        self.launcher = launcher
        self.logs_root = logs_root
        self.api_url = api_url
        self.scan_interval = scan_interval
        self._loop: ControllerLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = ControllerLoop(
            self.storage,
            self.launcher,
            logs_root=self.logs_root,
            source=UnfinishedExperiments(self.storage),
            interrupted_message=INTERRUPTED_MESSAGE,
            scan_interval=self.scan_interval,
        )
        if self.api_url:
            loop.push_endpoint = ServerPush(self.storage, self.api_url, loop.owner)
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run, kwargs={"handle_signals": False}, name="katib-controller",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Kill running trials, leave their experiments resumable, and end the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.stop()
        thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drives(self, experiment_id: int) -> bool:
        return self._loop is not None and self._loop.drives(experiment_id)

    def experiments(self) -> int:
        """How many experiments this controller is driving."""
        return 0 if self._loop is None else self._loop.experiments()

    def push(self, namespace: str, trial: str, observations: Sequence[Observation]) -> bool:
        """Hand pushed observations to the run of the trial; False if no run here has it."""
        return self._loop is not None and self._loop.push(namespace, trial, observations)

    def kill_trial(self, namespace: str, trial: str) -> bool:
        """Kill a trial this controller started; False if it has none running by that name."""
        return self._loop is not None and self._loop.kill_trial(namespace, trial)

    def refresh(self, experiment_id: int) -> None:
        """Have the run of an experiment pick up a budget edit or a stop request at once."""
        if self._loop is not None:
            self._loop.refresh(experiment_id)
