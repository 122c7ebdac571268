"""Fixtures for the REST API: an app over each database, tokens of every role, documents."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from katib.api import create_app
from katib.storage import Storage

with warnings.catch_warnings():
    # Starlette's TestClient announces a future move to another HTTP package; httpx is
    # what this project uses.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

# A trial that reports `loss` on stdout (and pushes `pushed` when asked), and waits while a
# file named `hold` exists in its folder (to keep trials Running).
TRIAL_SCRIPT = """
import argparse, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
p.add_argument("--push", action="store_true")
a = p.parse_args()
while os.path.exists("hold"):
    time.sleep(0.05)
if a.push:
    import katib
    katib.report_metrics({"loss": a.x, "pushed": 1.0})
else:
    print(f"loss={a.x}")
"""


def experiment_doc(name: str = "exp", namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """A small valid experiment running TRIAL_SCRIPT (``trial.py``) in the work folder."""
    args = spec.pop("args", ["--x=${trialParameters.x}"])
    body: dict[str, Any] = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {
            "algorithmName": "random",
            "algorithmSettings": [{"name": "random_state", "value": "1"}],
        },
        "parallelTrialCount": 2,
        "maxTrialCount": 3,
        "maxFailedTrialCount": 1,
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.9"}}
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
                                    "image": "python:3.11",
                                    "command": ["python3", "trial.py"],
                                    "args": args,
                                }
                            ],
                            "restartPolicy": "Never",
                        }
                    }
                },
            },
        },
    }
    body.update(spec)
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": metadata,
        "spec": body,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "trial.py").write_text(textwrap.dedent(TRIAL_SCRIPT))
    return folder


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    s = Storage.open(db_url)
    yield s
    s.close()


@pytest.fixture
def client(storage: Storage, katib_home: Path, work_dir: Path) -> Iterator[TestClient]:
    app = create_app(storage, work_dir=str(work_dir))
    with TestClient(app) as c:
        yield c


class Tokens:
    """Tokens of each role, made on demand: ``tokens.editor("team-a")``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.admin = storage.create_token("admin", "*", "admin")[1]

    def make(self, role: str, namespace: str = "default") -> str:
        return self.storage.create_token(f"{role}@{namespace}", namespace, role)[1]

    def viewer(self, namespace: str = "default") -> str:
        return self.make("viewer", namespace)

    def editor(self, namespace: str = "default") -> str:
        return self.make("editor", namespace)

    def owner(self, namespace: str = "default") -> str:
        return self.make("owner", namespace)


@pytest.fixture
def tokens(storage: Storage) -> Tokens:
    return Tokens(storage)


@pytest.fixture
def admin(tokens: Tokens) -> dict[str, str]:
    """Headers of an admin request."""
    return bearer(tokens.admin)
