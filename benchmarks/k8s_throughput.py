"""Operator throughput on the test control plane: trials per minute, API requests and CPU
per trial.

    python benchmarks/k8s_throughput.py [--trials 200] [--parallel 20] [--profile]

Starts the test control plane (tests/cluster: real etcd, kube-apiserver and
kube-controller-manager from .ci/cluster.sh's cache; the process node runs pods as host
processes), applies ``crds/``, starts ``katib operator`` as a separate process with the
katib-operator ServiceAccount's token, and applies one Experiment of ``--trials`` trivial
Job trials (random search, ``--parallel`` at a time; each trial runs
``python3 -c "import katib; katib.report_metrics(...)"``, the Push collector, so that a trial
costs the node one process). It measures, between the Experiment's creation and its
Succeeded condition:

* trials per minute (wall time), and how many trials ran at once (``status.trialsRunning``
  sampled every 0.5 s: mean and max);
* API requests the operator made, per trial and by method and resource (the operator's own
  request counter, read with ``kill -USR1``; the watch streams count once per connection);
* the operator process's CPU time (user + system) per trial.

Targets: <= 10 API requests and <= 20 ms operator CPU per trial, keeping up with 20
parallel trials. ``--profile FILE`` samples the operator with py-spy (``--py-spy`` names the
binary: ``pip install py-spy`` in any environment) while the experiment runs, writes the
collapsed stacks to FILE and prints the functions that took the most time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from katib.records import TrialState  # noqa: E402
from katib.storage import Storage  # noqa: E402
from tests.cluster.control_plane import (  # noqa: E402
    ControlPlane,
    find_bin_dir,
    remove_workdir,
    start_control_plane,
)

NAMESPACE = "bench"


def experiment(trials: int, parallel: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "throughput", "namespace": NAMESPACE},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel,
            "maxTrialCount": trials,
            "maxFailedTrialCount": trials,
            "metricsCollectorSpec": {"collector": {"kind": "Push"}},
            "parameters": [{"name": "x", "parameterType": "double",
                            "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"backoffLimit": 0, "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "main", "image": "python:3.11",
                            "command": ["python3", "-c",
                                        "import katib; katib.report_metrics("
                                        "{'loss': ${trialParameters.x}})"],
                        }],
                    }}},
                },
            },
        },
    }


def stats(process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """The operator's request counts, as its SIGUSR1 handler logs them."""
    before = log.read_text().count(" stats ")
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if " stats " in line]
        if len(lines) > before:
            return dict(json.loads(lines[-1].split(" stats ", 1)[1]))
        time.sleep(0.1)
    raise RuntimeError("the operator did not report its stats")


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def get(cluster: ControlPlane) -> dict[str, Any]:
    status, body = cluster.request(
        "GET", f"/apis/kubeflow.org/v1beta1/namespaces/{NAMESPACE}/experiments/throughput")
    return body if status == 200 else {}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="katib-bench-"))
    cluster = start_control_plane(find_bin_dir(), workdir=work / "cluster")
    operator: subprocess.Popen[bytes] | None = None
    try:
        cluster.kubectl("apply", "-k", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/experiments.kubeflow.org", "crd/trials.kubeflow.org")
        cluster.kubectl("create", "namespace", NAMESPACE)
        kubeconfig = cluster.service_account_kubeconfig(
            "katib-system", "katib-operator", expiration_seconds=7200)
        log = work / "operator.log"
        argv = [sys.executable, "-c", "from katib.cli import main; main()", "operator",
                "--namespace", NAMESPACE, "--db", f"sqlite:///{work / 'operator.db'}",
                "--kubeconfig", str(kubeconfig), "--listen", "127.0.0.1:0"]
        env = dict(os.environ, KATIB_HOME=str(work / "home"), PYTHONUNBUFFERED="1")
        with log.open("wb") as out:
            operator = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "watching Experiments" not in log.read_text():
            if time.monotonic() > deadline or operator.poll() is not None:
                raise RuntimeError(f"the operator did not start:\n{log.read_text()}")
            time.sleep(0.2)
        pid = operator.pid
        time.sleep(1)
        first = stats(operator, log)
        cpu0 = cpu_seconds(pid)
        manifest = work / "experiment.yaml"
        manifest.write_text(yaml.safe_dump(experiment(args.trials, args.parallel)))
        spy = None
        if args.profile:
            spy = subprocess.Popen([args.py_spy, "record", "--gil", "--format", "raw",
                                    "--rate", "200", "-o", str(args.profile), "-p", str(pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        storage = Storage.open(f"sqlite:///{work / 'operator.db'}")
        started = time.monotonic()
        cluster.kubectl("apply", "-f", str(manifest))
        running: list[int] = []
        body: dict[str, Any] = {}
        while time.monotonic() - started < args.timeout:
            body = get(cluster)
            status = body.get("status") or {}
            conditions = status.get("conditions") or []
            if conditions and conditions[-1]["type"] in ("Succeeded", "Failed") and (
                conditions[-1]["status"] == "True"
            ):
                break
            running.extend(_running(storage))
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the experiment did not finish in {args.timeout}s")
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        last = stats(operator, log)
        status = body["status"]
        requests = {k: v - first["requests"].get(k, 0) for k, v in last["requests"].items()}
        requests = {k: v for k, v in sorted(requests.items()) if v}
        total = sum(requests.values())
        trials = int(status["trials"])
        return {
            "trials": trials,
            "succeeded": int(status["trialsSucceeded"]),
            "condition": status["conditions"][-1]["type"],
            "parallel": args.parallel,
            "seconds": round(elapsed, 1),
            "trials_per_minute": round(trials / elapsed * 60, 1),
            "running_mean": round(sum(running) / len(running), 1) if running else 0,
            "running_max": max(running) if running else 0,
            "api_requests": total,
            "api_requests_per_trial": round(total / trials, 2),
            "requests_by_kind": requests,
            "operator_cpu_s": round(cpu, 2),
            "operator_cpu_ms_per_trial": round(cpu / trials * 1000, 1),
            "load_average": os.getloadavg(),
        }
    finally:
        if operator is not None and operator.poll() is None:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(30)
            except subprocess.TimeoutExpired:
                operator.kill()
        cluster.stop()
        if not args.keep:
            remove_workdir(cluster)


def _running(storage: Storage) -> list[int]:
    """How many trials run now, as the operator's database says (sampled)."""
    try:
        [record] = storage.list_experiments(NAMESPACE)
    except ValueError:
        return []
    counts = storage.count_trials(record.id)
    return [counts.get(TrialState.RUNNING, 0)] if sum(counts.values()) else []


def summarize(profile: Path, top: int = 25) -> list[tuple[str, float, float]]:
    """(function, inclusive share, self share) of the busiest frames of collapsed stacks."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        if not frames or frames[-1].startswith(("wait (threading", "select (selectors",
                                                  "_wait_for_tstate_lock", "poll (selectors")):
            continue  # idle threads
        total += count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    rows = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    return [(name, n / total, own.get(name, 0) / total) for name, n in rows] if total else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--profile", type=Path, default=None,
                        help="sample the operator with py-spy into this file (collapsed stacks)")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy binary")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's folder")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.profile and args.profile.exists():
        print("\nbusiest frames of the operator (share of busy samples: inclusive, self):")
        for name, inclusive, own in summarize(args.profile):
            print(f"  {inclusive:6.1%} {own:6.1%}  {name}")
    if re.search(r"Failed", result["condition"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
