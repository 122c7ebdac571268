"""The read commands start fast: what they import is checked with ``python -X importtime``.

``katib get``, ``describe``, ``best`` and ``logs`` are typed many times a day; most of their
start-up is imports. None of them may load the algorithms' numeric stack, Alembic, the web
server, the HTTP client (for a database), the Kubernetes client or the launch machinery.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.katib.cli.conftest import REPO

#: Modules a read command on a database must never load (top-level package names).
HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "skopt",
    "optuna",
    "cmaes",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "psutil",
    "kubernetes",
    "psycopg",
    "tensorboard",
    "trial_runner",
)

_LINE = re.compile(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)")

EXPERIMENT = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "light"},
    "spec": {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random"},
        "maxTrialCount": 4,
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
        ],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": "x", "reference": "x"}],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "busybox",
                                    "command": ["echo", "loss=${trialParameters.x}"],
                                }
                            ],
                            "restartPolicy": "Never",
                        }
                    }
                },
            },
        },
    },
}


def imported(args: list[str], env: dict[str, str]) -> set[str]:
    """The modules ``katib ARGS`` imports, as ``-X importtime`` lists them."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "katib", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return {m.group(1) for m in _LINE.finditer(proc.stderr)}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from katib.client import LocalBackend

    folder: Path = tmp_path_factory.mktemp("katib-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
    env["KATIB_HOME"] = str(folder)
    backend = LocalBackend.open(str(folder / "katib.db"))
    try:
        backend.create_experiment(EXPERIMENT)
    finally:
        backend.close()
    return env


@pytest.mark.parametrize(
    "args",
    [
        ["get", "experiments"],
        ["get", "experiments", "-o", "json"],
        ["get", "trials", "light"],
        ["describe", "experiment", "light"],
        ["best", "light"],
        ["logs", "light-nosuch"],
    ],
    ids=lambda a: " ".join(a),
)
def test_read_commands_load_nothing_heavy(args: list[str], home: dict[str, str]) -> None:
    modules = imported(args, home)
    assert "katib.storage" in modules  # the command did reach the database
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"katib {' '.join(args)} imports {heavy}"


def test_help_loads_no_database(home: dict[str, str]) -> None:
    modules = imported(["--help"], home)
    assert not {m for m in modules if m.split(".")[0] in (*HEAVY, "sqlalchemy", "pydantic")}
