"""Katib's published metrics-collector examples through the operator on the test control
plane: File (Katib's text format with a metricsFormat filter), File with JSON lines,
TensorFlowEvent and metric strategies. Training scripts are pointed at the local stand-in;
the sidecar (python -m trial_runner --sidecar) reads the shared folder Katib's way."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.katib.operator.conftest import (
    ROOT,
    Operators,
    apply,
    condition,
    get_experiment,
    wait_for,
)

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.e2e]

EXAMPLES = ROOT / "tests" / "fixtures" / "katib_examples" / "metrics-collector"
STANDIN = ROOT / "tests" / "fixtures" / "local_standins" / "mnist.py"
CASES = {
    # file name: the metrics the best trial must show
    "file-metrics-collector.yaml": {"accuracy", "loss"},
    "file-metrics-collector-with-json-format.yaml": {"accuracy", "loss"},
    "tfevent-metrics-collector.yaml": {"accuracy_1"},
    "metrics-collection-strategy.yaml": {"Validation-accuracy", "Train-accuracy"},
}


def test_published_collector_examples_run_on_the_cluster(
    operators: Operators, kube_namespace: str, tmp_path: Path
) -> None:
    cluster, ns = operators.cluster, kube_namespace
    operators.start()
    names = {}
    for file in CASES:
        text = (EXAMPLES / file).read_text().replace("namespace: kubeflow", f"namespace: {ns}")
        for script in ("/opt/pytorch-mnist/mnist.py", "/opt/mxnet-mnist/mnist.py",
                       "/opt/tf-mnist-with-summaries/mnist.py"):
            text = text.replace(script, str(STANDIN))
        text = text.replace("maxTrialCount: 12", "maxTrialCount: 3")
        text = text.replace("parallelTrialCount: 3", "parallelTrialCount: 3")
        apply(cluster, text, tmp_path)
        names[file] = file.removesuffix(".yaml")

    def all_finished() -> bool:
        return all(condition(get_experiment(cluster, ns, n)) in ("Succeeded", "Failed")
                   for n in names.values())

    wait_for("the experiments to finish", all_finished, 240)
    for file, name in names.items():
        obj = get_experiment(cluster, ns, name)
        assert obj is not None
        status = obj["status"]
        assert condition(obj) == "Succeeded", (file, status["conditions"])
        assert status["trialsSucceeded"] == 3, (file, status)
        metrics = status["currentOptimalTrial"]["observation"]["metrics"]
        assert {m["name"] for m in metrics} == CASES[file], (file, metrics)
        assert all(float(m["latest"]) > 0 for m in metrics)
