"""Sharing the machine between local trials: threads and GPUs; a Job's retries."""

from __future__ import annotations

import pytest

from katib.controller import backoff_limit
from trial_runner._resources import (
    GpuPool,
    ResourceError,
    gpus_requested,
    parse_cpu,
    thread_env,
)


@pytest.mark.parametrize("value,cores", [("2", 2.0), ("500m", 0.5), (1.5, 1.5), ("x", None)])
def test_parse_cpu(value: object, cores: float | None) -> None:
    assert parse_cpu(value) == cores


def test_threads_default_to_an_equal_share_of_the_cores() -> None:
    env = thread_env({}, parallel_trial_count=2, cores=8)
    assert env == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"}
    assert thread_env({}, parallel_trial_count=16, cores=8)["OMP_NUM_THREADS"] == "1"


def test_threads_follow_the_cpu_limit() -> None:
    container = {"resources": {"limits": {"cpu": "3"}}}
    assert thread_env(container, parallel_trial_count=2, cores=8)["OMP_NUM_THREADS"] == "3"
    small = {"resources": {"requests": {"cpu": "250m"}}}
    assert thread_env(small, parallel_trial_count=1, cores=8)["OMP_NUM_THREADS"] == "1"


def test_gpu_requests() -> None:
    assert gpus_requested({}) == 0
    assert gpus_requested({"resources": {"limits": {"nvidia.com/gpu": 2}}}) == 2
    with pytest.raises(ResourceError):
        gpus_requested({"resources": {"limits": {"nvidia.com/gpu": "two"}}})


def test_gpu_pool_hands_out_distinct_devices_and_waits() -> None:
    pool = GpuPool(["0", "1", "2"])
    assert pool.acquire("a", 2) == ["0", "1"]
    assert pool.acquire("b", 2) is None  # only one free: wait
    assert pool.acquire("c", 1) == ["2"]
    pool.release("a")
    assert pool.acquire("b", 2) == ["0", "1"]
    with pytest.raises(ResourceError, match="has 3"):
        pool.acquire("d", 4)


def test_backoff_limit() -> None:
    assert backoff_limit({"spec": {"backoffLimit": 3}}) == 3
    assert backoff_limit({"spec": {}}) == 0
    assert backoff_limit({"spec": {"backoffLimit": "3"}}) == 0
