"""``tune(executor="pool")`` (the embedded default) against ``executor="process"``, end to end:
the same trials stored either way, workers reused, kills, interruption and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from katib import KatibClient, search
from katib.sdk import InvalidArgumentError

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def client(katib_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
    KatibClient
]:
    monkeypatch.chdir(tmp_path)
    katib = KatibClient()
    yield katib
    katib.close()


def objective(parameters: dict[str, Any]) -> dict[str, float]:
    import json
    import os

    import katib

    # Counts the calls in this process: 1 in a fresh process, more in a reused worker.
    json.katib_test_calls = getattr(json, "katib_test_calls", 0) + 1  # type: ignore[attr-defined]
    x, opt = parameters["x"], parameters["opt"]
    assert isinstance(x, int) and parameters["scale"] == 10
    print(f"trial of x={x} opt={opt}")
    print(f"acc={x / parameters['scale']}")  # the StdOut collector
    katib.report_metrics({"pushed": x + 0.5})  # the push endpoint
    return {
        "loss": (x - 2) ** 2 + (0.5 if opt == "sgd" else 0.0),
        "calls": float(json.katib_test_calls),  # type: ignore[attr-defined]
        "pid": float(os.getpid()),
    }


def _run(client: KatibClient, name: str, executor: str) -> dict[str, Any]:
    return client.tune(
        name, objective,
        {"x": search.int(1, 3), "opt": search.categorical(["sgd", "adam"]), "scale": 10},
        algorithm_name="grid", objective_metric_name="loss",
        additional_metric_names=["acc", "pushed", "calls", "pid"],
        objective_type="minimize", max_trial_count=6, parallel_trial_count=2,
        show_progress=False, executor=executor,
    )


def _results(client: KatibClient, name: str) -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    for trial in client.list_trials(name):
        assert trial["status"]["condition"] == "Succeeded", client.get_job_logs(
            trial["metadata"]["name"]
        )
        values = {a["name"]: a["value"] for a in trial["spec"]["parameterAssignments"]}
        metrics = {m["name"]: float(m["latest"]) for m in trial["status"]["observation"]["metrics"]}
        out[(values["x"], values["opt"])] = metrics
        log = client.get_job_logs(trial["metadata"]["name"])
        assert log == f"trial of x={values['x']} opt={values['opt']}\nacc={int(values['x']) / 10}\n"
    return out


def test_the_pool_stores_what_a_process_per_trial_stores_and_reuses_its_workers(
    client: KatibClient,
) -> None:
    pooled = _run(client, "pooled", "pool")
    separate = _run(client, "separate", "process")
    assert pooled["status"]["condition"] == separate["status"]["condition"] == "Succeeded"
    by_pool, by_process = _results(client, "pooled"), _results(client, "separate")
    assert by_pool.keys() == by_process.keys() and len(by_pool) == 6
    for key, metrics in by_pool.items():
        same = {k: v for k, v in metrics.items() if k not in ("calls", "pid")}
        assert same == {k: v for k, v in by_process[key].items() if k not in ("calls", "pid")}
        assert same == pytest.approx({
            "loss": (int(key[0]) - 2) ** 2 + (0.5 if key[1] == "sgd" else 0.0),
            "acc": int(key[0]) / 10, "pushed": int(key[0]) + 0.5,
        })
    best_pool = client.get_optimal_hyperparameters("pooled")
    best_process = client.get_optimal_hyperparameters("separate")
    assert best_pool is not None and best_process is not None
    assert best_pool.parameters == best_process.parameters == {"x": "2", "opt": "adam"}
    # A process per trial: each call the first of its process. The pool: two workers (the
    # parallelism) each called several times, having imported the script once.
    assert {m["calls"] for m in by_process.values()} == {1.0}
    assert len({m["pid"] for m in by_process.values()}) == 6
    assert len({m["pid"] for m in by_pool.values()}) <= 2
    assert max(m["calls"] for m in by_pool.values()) >= 3
    template = pooled["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    assert template["metadata"]["annotations"]["katib-local/executor"] == "pool"
    template = separate["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    assert "katib-local/executor" not in template["metadata"]["annotations"]
    assert not _workers(), "the pool's workers outlived the run"


def test_the_executor_argument(client: KatibClient) -> None:
    def f(parameters: dict[str, float]) -> float:
        return parameters["x"]

    with pytest.raises(InvalidArgumentError, match="'pool' or 'process'"):
        client.tune("bad", f, {"x": search.double(0, 1)}, objective_metric_name="loss",
                    executor="thread")
    remote = KatibClient("http://127.0.0.1:9", token="unused")
    with pytest.raises(InvalidArgumentError, match="a server runs each trial in its own process"):
        remote.tune("remote", f, {"x": search.double(0, 1)}, objective_metric_name="loss",
                    executor="pool")
    assert client.list_experiments() == []


def test_a_server_runs_function_trials_as_processes(katib_home: Path) -> None:
    from katib.cli._server import _launcher
    from trial_runner.local import LocalProcessLauncher

    launcher = _launcher("local", None, "")
    assert isinstance(launcher.default, LocalProcessLauncher)  # type: ignore[attr-defined]
    assert launcher.default.pool is None  # type: ignore[attr-defined]


def test_load_if_exists_keeps_the_executor_the_experiment_was_created_with(
    client: KatibClient,
) -> None:
    def f(parameters: dict[str, float]) -> float:
        return parameters["x"]

    common: dict[str, Any] = {"objective_metric_name": "loss", "resume_policy": "LongRunning",
                              "show_progress": False}
    client.tune("kept", f, {"x": search.double(0, 1)}, max_trial_count=1, executor="process",
                **common)
    # The default (pool) is not a change of the search: the experiment goes on as it was.
    experiment = client.tune("kept", f, {"x": search.double(0, 1)}, max_trial_count=2,
                             load_if_exists=True, **common)
    assert experiment["status"]["condition"] == "Succeeded"
    assert len(client.list_trials("kept")) == 2
    template = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    assert "katib-local/executor" not in template["metadata"]["annotations"]


def test_stop_experiment_kills_a_pooled_trial_and_its_worker(client: KatibClient) -> None:
    def forever(parameters: dict[str, float]) -> float:
        import time

        time.sleep(600)
        return parameters["x"]

    client.tune("forever", forever, {"x": search.double(0, 1)}, objective_metric_name="loss",
                max_trial_count=1, wait=False)
    deadline = time.monotonic() + 60
    while not _workers() or not client.list_trials("forever") or client.list_trials(
        "forever"
    )[0]["status"]["condition"] != "Running":
        assert time.monotonic() < deadline, "the trial did not start"
        time.sleep(0.1)
    [worker] = _workers()
    client.stop_experiment("forever")
    client.wait_for_experiment_condition("forever", expected_condition="Succeeded", timeout=60,
                                         polling_interval=0.2)
    [trial] = client.list_trials("forever")
    assert trial["status"]["condition"] == "Killed"
    deadline = time.monotonic() + 20
    while worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the killed trial's worker lives on"
        time.sleep(0.1)


SCRIPT = """
import sys
from katib import KatibClient, search


def objective(parameters):
    import time

    time.sleep(0.5)
    return parameters["x"]


KatibClient().tune("resumed", objective, {"x": search.double(0, 1)},
                   objective_metric_name="loss", max_trial_count=6, parallel_trial_count=2,
                   show_progress=False)
"""


def test_an_interrupted_pooled_run_resumes(
    client: KatibClient, tmp_path: Path, katib_home: Path
) -> None:
    script = tmp_path / "tune.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while sum(t["status"]["condition"] == "Succeeded" for t in _trials(client)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "no trial finished"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert not _workers(), "the interrupted run left workers behind"
    done_before = sum(t["status"]["condition"] == "Succeeded" for t in _trials(client))
    assert 2 <= done_before < 6
    experiment = client.run_experiment("resumed", show_progress=False)
    assert experiment["status"]["condition"] == "Succeeded"
    states = [t["status"]["condition"] for t in _trials(client)]
    assert states.count("Succeeded") == 6, states


def _trials(client: KatibClient) -> list[dict[str, Any]]:
    try:
        return client.list_trials("resumed")
    except Exception:  # noqa: BLE001 - not created yet
        return []


def _workers() -> list[psutil.Process]:
    """Live pool workers of this test's KATIB_HOME."""
    home = os.environ["KATIB_HOME"]
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (
            proc.info["status"] != psutil.STATUS_ZOMBIE
            and any(part.endswith("_worker.py") for part in cmdline)
            and any(part.startswith(home) for part in cmdline)
        ):
            found.append(proc)
    return found
