"""Sharing this machine between local trials: CPU threads and GPUs.

On a cluster the scheduler does this; locally the launcher does the nearest thing: math
libraries get as many threads as the trial's share of the cores, and GPUs are handed out one
set per trial through ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from katib.errors import KatibError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
GPU_RESOURCE = "nvidia.com/gpu"


class ResourceError(KatibError):
    """A trial asks for more than this machine has."""


def parse_cpu(value: Any) -> float | None:
    """A Kubernetes CPU quantity (``2``, ``1.5``, ``500m``) in cores; None if unreadable."""
    text = str(value).strip()
    try:
        if text.endswith("m"):
            return float(text[:-1]) / 1000
        return float(text)
    except ValueError:
        return None


def _resource(container: Mapping[str, Any], name: str) -> Any:
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        return None
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if isinstance(values, Mapping) and name in values:
            return values[name]
    return None


def thread_env(
    container: Mapping[str, Any], parallel_trial_count: int, cores: int | None = None
) -> dict[str, str]:
    """Thread counts for math libraries: the container's cpu limit, else an equal share."""
    cores = cores or os.cpu_count() or 1
    cpu = parse_cpu(_resource(container, "cpu")) if _resource(container, "cpu") else None
    share = cpu if cpu else cores / max(parallel_trial_count, 1)
    threads = str(max(1, math.floor(share)))
    return dict.fromkeys(THREAD_VARIABLES, threads)


def gpus_requested(container: Mapping[str, Any]) -> int:
    value = _resource(container, GPU_RESOURCE)
    if value is None:
        return 0
    try:
        return max(0, int(str(value)))
    except ValueError as e:
        raise ResourceError(f"resources {GPU_RESOURCE}: {value!r} is not a whole number") from e


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in (x.strip() for x in env.split(",")) if g and g != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


class GpuPool:
    """Hands out GPU ids to trials so that two running trials never share one."""

    def __init__(self, gpus: list[str] | None = None) -> None:
        self._gpus = visible_gpus() if gpus is None else list(gpus)
        self._owners: dict[str, list[str]] = {}

    @property
    def total(self) -> int:
        return len(self._gpus)

    def free(self) -> list[str]:
        used = {g for ids in self._owners.values() for g in ids}
        return [g for g in self._gpus if g not in used]

    def acquire(self, trial: str, count: int) -> list[str] | None:
        """``count`` GPU ids for ``trial``; None while too few are free.

        Raises ResourceError when the machine has fewer GPUs than ``count`` in all.
        """
        if count > self.total:
            raise ResourceError(
                f"the trial asks for {count} {GPU_RESOURCE} but this machine has {self.total}"
            )
        free = self.free()
        if len(free) < count:
            return None
        self._owners[trial] = free[:count]
        return free[:count]

    def owned(self, trial: str) -> list[str]:
        """The GPU ids ``trial`` holds (none if it asked for none)."""
        return list(self._owners.get(trial, ()))

    def release(self, trial: str) -> None:
        self._owners.pop(trial, None)
