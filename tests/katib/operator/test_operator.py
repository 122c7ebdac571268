"""``katib operator`` end to end on the test control plane, as the katib-operator
ServiceAccount: Katib's published example applied with kubectl and read back with Kubeflow's
own Katib SDK; SIGKILL and restart; two replicas and the Lease; budget edits; invalid
resources; configMap templates; deletion through the garbage collector."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from katib.storage import Storage
from tests.cluster.control_plane import ControlPlane
from tests.katib.operator.conftest import (
    ROOT,
    Operators,
    apply,
    condition,
    experiment_yaml,
    finished,
    get_experiment,
    pods_per_trial,
    wait_for,
)

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.e2e]

EXAMPLES = ROOT / "tests" / "fixtures" / "katib_examples"
STANDIN = ROOT / "tests" / "fixtures" / "local_standins" / "mnist.py"


def names(cluster: ControlPlane, namespace: str, kinds: str) -> list[str]:
    out = cluster.kubectl("get", kinds, "-n", namespace, "-o", "name").stdout
    return out.split()


def trials_of(cluster: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    status, body = cluster.request(
        "GET", f"/apis/kubeflow.org/v1beta1/namespaces/{namespace}/trials")
    if status == 429:  # a CRD just established answers 429 for a moment
        return []
    assert status == 200, body
    return list(body["items"])


def katib_sdk_python() -> str:
    """Kubeflow's Katib SDK lives in its own venv (its pins clash with ours)."""
    result = subprocess.run(["bash", str(ROOT / ".ci" / "katib-sdk.sh")], capture_output=True,
                            text=True, timeout=900, check=False)
    assert result.returncode == 0, f"could not set up the Katib SDK: {result.stderr[-2000:]}"
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.timeout(1500)  # the first run installs Kubeflow's Katib SDK in its own venv
def test_katibs_published_example_with_kubectl_and_katibs_own_sdk(
    operators: Operators, kube_namespace: str, tmp_path: Path
) -> None:
    cluster, ns = operators.cluster, kube_namespace
    sdk_python = katib_sdk_python()
    operators.start()
    text = (EXAMPLES / "hp-tuning" / "random.yaml").read_text()
    text = text.replace("namespace: kubeflow", f"namespace: {ns}")
    text = text.replace("/opt/mxnet-mnist/mnist.py", str(STANDIN))
    apply(cluster, text, tmp_path)
    # Trials run as Jobs, with pods, through the real Job controller.
    seen: set[str] = set()

    def running_as_jobs() -> bool:
        seen.update(names(cluster, ns, "jobs,pods"))
        return any(n.startswith("job.batch/") for n in seen) and any(
            n.startswith("pod/") for n in seen)

    wait_for("trials to run as Jobs and pods", running_as_jobs)
    obj = wait_for("the experiment to finish", lambda: finished(cluster, ns, "random"), 240)
    status = obj["status"]
    assert condition(obj) == "Succeeded", status["conditions"]
    assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    assert (status["trials"], status["trialsSucceeded"]) == (12, 12)
    assert len(status["succeededTrialList"]) == 12
    best = status["currentOptimalTrial"]
    assert best["bestTrialName"] in status["succeededTrialList"]
    assert {p["name"] for p in best["parameterAssignments"]} == {"lr", "num-layers", "optimizer"}
    assert {m["name"] for m in best["observation"]["metrics"]} == {
        "Validation-accuracy", "Train-accuracy"}
    # kubectl shows Katib's columns.
    listed = cluster.kubectl("get", "experiments,trials", "-n", ns).stdout
    blocks = [b.splitlines() for b in listed.strip().split("\n\n")]
    assert blocks[0][0].split() == ["NAME", "TYPE", "STATUS", "AGE"]
    assert blocks[0][1].split()[:3] == ["experiment.kubeflow.org/random", "Succeeded", "True"]
    assert blocks[1][0].split() == ["NAME", "TYPE", "STATUS", "AGE"]
    assert len(blocks[1]) == 13 and all(r.split()[1:3] == ["Succeeded", "True"]
                                        for r in blocks[1][1:])
    # Kubeflow's own Katib SDK reads the optimal trial from our status.
    script = (
        "import json, sys\n"
        "from kubeflow.katib import KatibClient\n"
        "client = KatibClient(config_file=sys.argv[1])\n"
        "best = client.get_optimal_hyperparameters('random', namespace=sys.argv[2])\n"
        "print(json.dumps(best.to_dict()))\n"
        "print(client.is_experiment_succeeded('random', namespace=sys.argv[2]))\n"
    )
    result = subprocess.run([sdk_python, "-c", script, str(cluster.kubeconfig), ns],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    sdk_best, succeeded = result.stdout.strip().splitlines()
    read = json.loads(sdk_best)
    assert read["best_trial_name"] == best["bestTrialName"]
    assert read["parameter_assignments"] == best["parameterAssignments"]
    assert succeeded == "True"
    # Deleting the experiment leaves nothing behind (garbage collector + the operator).
    cluster.kubectl("delete", "experiment", "random", "-n", ns)
    wait_for("everything to go", lambda: not names(
        cluster, ns, "experiments,trials,jobs,pods,secrets") or None)
    storage = Storage.open(operators.db)
    wait_for("the operator to forget it", lambda: not storage.list_experiments(ns))


def test_sigkill_mid_run_then_restart_launches_no_trial_twice(
    operators: Operators, kube_namespace: str, tmp_path: Path
) -> None:
    cluster, ns = operators.cluster, kube_namespace
    first = operators.start()
    apply(cluster, experiment_yaml(ns, max_trials=6, parallel=2, epochs=4, seconds=1), tmp_path)
    wait_for("two trials running", lambda: sum(
        1 for t in trials_of(cluster, ns) if condition(t) == "Running") >= 2)
    first.kill()
    second = operators.start()
    obj = wait_for("the experiment to finish", lambda: finished(cluster, ns, "slow"), 180)
    assert condition(obj) == "Succeeded", obj["status"]
    assert obj["status"]["trials"] == obj["status"]["trialsSucceeded"] == 6
    trials = trials_of(cluster, ns)
    assert len(trials) == 6 and all(condition(t) == "Succeeded" for t in trials)
    # Each trial's Job ran exactly one pod: the running ones were adopted, not run again.
    per_trial = pods_per_trial(cluster, ns)
    assert per_trial == {t["metadata"]["name"]: 1 for t in trials}, per_trial
    assert "adopted the Job of trial" in second.output


def test_two_replicas_one_acts_the_other_waits_on_the_lease(
    operators: Operators, kube_namespace: str, tmp_path: Path, db_url: str
) -> None:
    # Replicas share their state store: SQLite on one machine, PostgreSQL as deployed.
    operators.db = db_url
    cluster, ns = operators.cluster, kube_namespace
    a = operators.start()
    wait_for("a leader", operators.lease_holder)
    b = operators.start()
    wait_for("the second replica to wait", lambda: "waiting for the Lease" in b.output)
    apply(cluster, experiment_yaml(ns, max_trials=4, parallel=2, epochs=3, seconds=1), tmp_path)
    wait_for("a trial running", lambda: any(
        condition(t) == "Running" for t in trials_of(cluster, ns)))
    assert "became the leader" in a.output and "became the leader" not in b.output
    assert "running experiment" not in b.output
    holder = operators.lease_holder()
    a.kill()
    wait_for("the other replica to lead", lambda: "became the leader" in b.output, 60)
    assert operators.lease_holder() != holder
    obj = wait_for("the experiment to finish", lambda: finished(cluster, ns, "slow"), 180)
    assert condition(obj) == "Succeeded" and obj["status"]["trialsSucceeded"] == 4
    assert set(pods_per_trial(cluster, ns).values()) == {1}
    # A clean stop gives the Lease up at once.
    assert b.stop() in (0, 130)
    assert operators.lease_holder() == ""


def test_budget_edits_restart_and_deletion_mid_run(
    operators: Operators, kube_namespace: str, tmp_path: Path
) -> None:
    cluster, ns = operators.cluster, kube_namespace
    operators.start()
    apply(cluster, experiment_yaml(ns, max_trials=2, parallel=1, epochs=3, seconds=0.7,
                                   resume_policy="LongRunning"), tmp_path)
    wait_for("a trial", lambda: trials_of(cluster, ns))
    cluster.kubectl("patch", "experiment", "slow", "-n", ns, "--type", "merge",
                    "-p", '{"spec": {"maxTrialCount": 3}}')
    obj = wait_for("the experiment to finish", lambda: finished(cluster, ns, "slow"), 120)
    assert condition(obj) == "Succeeded" and obj["status"]["trials"] == 3
    # A finished LongRunning experiment restarts with a larger budget, as in Katib.
    cluster.kubectl("patch", "experiment", "slow", "-n", ns, "--type", "merge",
                    "-p", '{"spec": {"maxTrialCount": 5, "parallelTrialCount": 2}}')
    wait_for("more trials", lambda: len(trials_of(cluster, ns)) > 3)
    # Fields other than the three counts are refused with an Event, as Katib's webhook does.
    cluster.kubectl("patch", "experiment", "slow", "-n", ns, "--type", "merge",
                    "-p", '{"spec": {"objective": {"goal": 0.5}}}')
    wait_for("the refusal", lambda: "SpecChangeRefused" in cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=slow").stdout)
    obj = wait_for("the restarted experiment to finish",
                   lambda: finished(cluster, ns, "slow"), 120)
    assert obj["status"]["trials"] == 5
    # Deleting it while trials run removes trials, Jobs, pods and the push Secret.
    cluster.kubectl("patch", "experiment", "slow", "-n", ns, "--type", "merge",
                    "-p", '{"spec": {"maxTrialCount": 9}}')
    wait_for("trials running again", lambda: any(
        condition(t) == "Running" for t in trials_of(cluster, ns)))
    cluster.kubectl("delete", "experiment", "slow", "-n", ns, "--wait=false")
    wait_for("everything to go", lambda: not names(
        cluster, ns, "experiments,trials,jobs,pods,secrets") or None, 60)


def test_an_invalid_experiment_gets_a_condition_naming_the_field(
    operators: Operators, kube_namespace: str, tmp_path: Path
) -> None:
    cluster, ns = operators.cluster, kube_namespace
    op = operators.start()
    bad = experiment_yaml(ns, name="bad", max_trials=2, parallel=5)
    bad["spec"]["algorithm"]["algorithmName"] = "nosuch"
    apply(cluster, bad, tmp_path)
    obj = wait_for("the verdict", lambda: get_experiment(cluster, ns, "bad") if condition(
        get_experiment(cluster, ns, "bad")) == "Failed" else None)
    last = obj["status"]["conditions"][-1]
    assert last["reason"] == "InvalidSpec"
    assert "spec.algorithm.algorithmName" in last["message"]
    assert "spec.parallelTrialCount" in last["message"]
    events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert any(e["reason"] == "InvalidSpec" and "spec.algorithm.algorithmName" in e["message"]
               for e in json.loads(events)["items"])
    assert op.alive() and not trials_of(cluster, ns)
    # Fixed with kubectl apply, it runs.
    apply(cluster, experiment_yaml(ns, name="bad", max_trials=2, parallel=2), tmp_path)
    wait_for("the fixed experiment to succeed", lambda: condition(
        get_experiment(cluster, ns, "bad")) == "Succeeded", 120)


def test_configmap_trial_template_example(
    operators: Operators, kube_namespace: str, tmp_path: Path
) -> None:
    cluster, ns = operators.cluster, kube_namespace
    template = {
        "apiVersion": "batch/v1", "kind": "Job",
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "training-container", "image": "docker.io/kubeflowkatib/mxnet-mnist",
            "command": ["python3", str(STANDIN), "--batch-size=64",
                        "--lr=${trialParameters.learningRate}",
                        "--num-layers=${trialParameters.numberLayers}",
                        "--optimizer=${trialParameters.optimizer}"]}]}}},
    }
    apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "trial-templates", "namespace": ns},
                    "data": {"defaultTrialTemplate.yaml": json.dumps(template)}}, tmp_path)
    operators.start()
    text = (EXAMPLES / "trial-template" / "trial-configmap-source.yaml").read_text()
    text = text.replace("namespace: kubeflow", f"namespace: {ns}")
    text = text.replace("configMapNamespace: kubeflow", f"configMapNamespace: {ns}")
    text = text.replace("maxTrialCount: 10", "maxTrialCount: 4")
    apply(cluster, text, tmp_path)
    obj = wait_for("the experiment to finish",
                   lambda: finished(cluster, ns, "trial-configmap-source"), 180)
    assert condition(obj) == "Succeeded", obj["status"]
    assert obj["status"]["trialsSucceeded"] == 4


def test_a_waiting_replica_stops_cleanly(operators: Operators) -> None:
    # A replica that is not the leader exits cleanly on SIGTERM while it waits.
    a = operators.start()
    wait_for("a leader", operators.lease_holder)
    b = operators.start()
    wait_for("the second replica to wait", lambda: "waiting for the Lease" in b.output)
    time.sleep(0.5)
    assert b.stop() == 0 and a.alive()
    assert a.stop() in (0, 130)
