"""`katib run` end to end: real processes, a real database, the documented outputs."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.katib.cli.conftest import Katib, experiment_doc, trial_processes

pytestmark = pytest.mark.e2e


def test_run_writes_best_json_and_logs(katib: Katib) -> None:
    path = katib.write(experiment_doc())
    result = katib("run", str(path), "--output", "best.json")
    assert result.returncode == 0, result.stderr
    best = json.loads((katib.folder / "best.json").read_text())
    assert best["experiment"] == "exp" and best["condition"] == "Succeeded"
    trials = katib.trials("exp")
    assert len(trials) == 4
    values = {t["metadata"]["name"]: t for t in trials}
    winner = values[best["bestTrialName"]]
    # The best trial has the lowest final loss (strategy min over 2x and x: min is x).
    losses = {n: float(t["spec"]["parameterAssignments"][0]["value"]) for n, t in values.items()}
    assert best["bestTrialName"] == min(losses, key=losses.__getitem__)
    [assignment] = best["parameterAssignments"]
    assert assignment["name"] == "x" and isinstance(assignment["value"], str)
    assert assignment == winner["spec"]["parameterAssignments"][0]
    [metric] = best["observation"]["metrics"]
    assert metric["name"] == "loss"
    assert metric["min"] == pytest.approx(float(assignment["value"]), rel=1e-6)
    assert metric["max"] == pytest.approx(2 * float(assignment["value"]), rel=1e-6)
    assert metric["latest"] == metric["min"]
    # Per-trial log files hold the output, with substituted name, cwd and env.
    log = katib.home / "logs" / "default" / "exp" / f"{best['bestTrialName']}.log"
    text = log.read_text()
    assert f"trial {best['bestTrialName']} cwd {katib.folder} env hello" in text
    shown = katib("logs", best["bestTrialName"])
    assert shown.returncode == 0 and shown.stdout == text
    assert "best trial" in result.stdout
    # Each new best trial, and the end, are events; successful trials are not.
    events = katib("describe", "experiment", "exp").stdout.split("Events:", 1)[1]
    assert f"NewOptimalTrial trial {best['bestTrialName']} is the best so far" in events
    assert events.count("NewOptimalTrial") <= 4 and "ExperimentMaxTrialsReached" in events


def test_rerun_of_finished_experiment_refuses(katib: Katib) -> None:
    path = katib.write(experiment_doc())
    assert katib("run", str(path)).returncode == 0
    before = katib.trials("exp")
    again = katib("run", str(path))
    assert again.returncode == 2
    assert "already finished" in again.stderr
    assert "Traceback" not in again.stderr
    assert katib.trials("exp") == before


def test_namespace_override(katib: Katib) -> None:
    path = katib.write(experiment_doc())
    assert katib("run", str(path), "--namespace", "team-a").returncode == 0
    listed = katib.json("get", "experiments")["items"]
    assert [(e["metadata"]["namespace"], e["metadata"]["name"]) for e in listed] == [
        ("team-a", "exp")
    ]
    assert katib("get", "trials", "exp").returncode == 2  # not in "default"
    assert len(katib.trials("exp", "--namespace", "team-a")) == 4


def test_failed_trials_fail_the_experiment(katib: Katib) -> None:
    path = katib.write(experiment_doc(args=["--x=${trialParameters.x}", "--mode=fail"],
                                      maxFailedTrialCount=0))
    result = katib("run", str(path), "--output", "best.json")
    assert result.returncode == 1
    best = json.loads((katib.folder / "best.json").read_text())
    assert best["condition"] == "Failed" and best["bestTrialName"] is None
    failed = [t for t in katib.trials("exp") if t["status"]["condition"] == "Failed"]
    assert failed and failed[0]["status"]["exitCode"] == 3
    assert failed[0]["status"]["message"] == "exited with code 3"
    # `describe` tells the story: the failed trial, and why the experiment failed.
    described = katib("describe", "experiment", "exp").stdout
    events = described.split("Events:", 1)[1]
    assert f"trial {failed[0]['metadata']['name']} Failed: exited with code 3" in events
    assert "Warning" in events and "ExperimentMaxFailedTrialsReached" in events


def test_metrics_unavailable(katib: Katib) -> None:
    path = katib.write(experiment_doc(args=["--x=${trialParameters.x}", "--mode=silent"],
                                      maxFailedTrialCount=1))
    assert katib("run", str(path)).returncode == 1
    states = {t["status"]["condition"] for t in katib.trials("exp")}
    assert "MetricsUnavailable" in states
    trial = next(t for t in katib.trials("exp")
                 if t["status"]["condition"] == "MetricsUnavailable")
    assert trial["status"]["message"] == "objective metric loss was never reported"


def test_goal_reached_ends_early(katib: Katib) -> None:
    doc = experiment_doc(maxTrialCount=50, parallelTrialCount=1)
    doc["spec"]["objective"]["goal"] = 0.5
    path = katib.write(doc)
    assert katib("run", str(path)).returncode == 0
    exp = katib.json("get", "experiments")["items"][0]
    reasons = [c["reason"] for c in exp["status"]["conditions"]]
    assert "ExperimentGoalReached" in reasons
    assert exp["status"]["trials"] < 50
    assert exp["status"]["currentOptimalTrial"]["observation"]["metrics"][0]["min"] <= 0.5


def test_grid_runs_every_point_once_then_ends(katib: Katib) -> None:
    doc = experiment_doc(maxTrialCount=None, algorithm={"algorithmName": "grid"})
    del doc["spec"]["maxTrialCount"]
    doc["spec"]["parameters"][0]["feasibleSpace"]["step"] = "0.2"
    path = katib.write(doc)
    assert katib("run", str(path)).returncode == 0
    values = sorted(t["spec"]["parameterAssignments"][0]["value"] for t in katib.trials("exp"))
    assert values == ["0.1", "0.3", "0.5", "0.7", "0.9"]
    exp = katib.json("get", "experiments")["items"][0]
    assert exp["status"]["conditions"][-1]["reason"] == "ExperimentSuggestionEndReached"


def test_custom_metrics_format(katib: Katib) -> None:
    doc = experiment_doc()
    doc["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "StdOut"},
        "source": {"filter": {"metricsFormat": [r"epoch=1 (loss)=([\d.]+)"]}},
    }
    path = katib.write(doc)
    assert katib("run", str(path)).returncode == 0
    for trial in katib.trials("exp"):
        x = float(trial["spec"]["parameterAssignments"][0]["value"])
        [metric] = trial["status"]["observation"]["metrics"]
        # Only the epoch line matches the custom format: its value is 2x.
        assert metric["latest"] == pytest.approx(2 * x, rel=1e-6)


def test_several_experiments_in_one_file_run_side_by_side(katib: Katib) -> None:
    path = katib.write(experiment_doc("first"), experiment_doc("second", maxTrialCount=3))
    result = katib("run", str(path), "--output", "best.json")
    assert result.returncode == 0, result.stderr
    best = json.loads((katib.folder / "best.json").read_text())
    assert [b["experiment"] for b in best] == ["first", "second"]
    assert len(katib.trials("first")) == 4 and len(katib.trials("second")) == 3


def test_relative_working_dir_and_missing_command(katib: Katib) -> None:
    sub = katib.folder / "sub"
    sub.mkdir()
    (sub / "trial.py").write_text((katib.folder / "trial.py").read_text())
    doc = experiment_doc(container={"workingDir": "sub"})
    path = katib.write(doc)
    assert katib("run", str(path)).returncode == 0
    trial = katib.trials("exp")[0]["metadata"]["name"]
    log = (katib.home / "logs" / "default" / "exp" / f"{trial}.log").read_text()
    assert f"cwd {sub}" in log


def test_invalid_file_exits_1_with_field_paths(katib: Katib) -> None:
    doc = experiment_doc()
    doc["spec"]["parallelTrialCount"] = 0
    doc["spec"]["parameters"][0]["feasibleSpace"]["min"] = "2"
    path = katib.write(doc)
    for command in ("validate", "run"):
        result = katib(command, str(path))
        assert result.returncode == 1, command
        assert "spec.parallelTrialCount" in result.stderr
        assert "spec.parameters[0].feasibleSpace" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe binary", b"- a\n- b\n", b"{{{"])
def test_validate_never_shows_a_traceback(katib: Katib, content: bytes) -> None:
    (katib.folder / "bad.yaml").write_bytes(content)
    result = katib("validate", "bad.yaml")
    assert result.returncode == 1
    assert result.stderr.strip() and "Traceback" not in result.stderr


def test_unknown_experiment_is_exit_2(katib: Katib) -> None:
    for args in (["describe", "experiment", "nope"], ["best", "nope"],
                 ["delete", "experiment", "nope"], ["logs", "nope-123"]):
        result = katib(*args)
        assert result.returncode == 2, args
        assert "not found" in result.stderr and "Traceback" not in result.stderr


def test_delete_removes_experiment_and_logs(katib: Katib) -> None:
    path = katib.write(experiment_doc())
    assert katib("run", str(path)).returncode == 0
    assert (katib.home / "logs" / "default" / "exp").exists()
    assert katib("delete", "experiment", "exp").returncode == 0
    assert katib.json("get", "experiments")["items"] == []
    assert not (katib.home / "logs" / "default" / "exp").exists()
    assert katib("run", str(path)).returncode == 0  # a fresh run from scratch


def test_render_substitutes_parameters_and_metadata(katib: Katib) -> None:
    doc = experiment_doc(args=["--x=${trialParameters.x}", "--name=${trialParameters.me}"])
    doc["spec"]["trialTemplate"]["trialParameters"].append(
        {"name": "me", "reference": "${trialSpec.Name}"})
    path = katib.write(doc)
    result = katib("render", str(path), "--set", "x=0.5", "--trial-name", "exp-abc")
    assert result.returncode == 0, result.stderr
    assert "--x=0.5" in result.stdout and "--name=exp-abc" in result.stdout
    assert "${" not in result.stdout
    bad = katib("render", str(path), "--set", "x=7")
    assert bad.returncode == 2 and "feasible space" in bad.stderr


def test_edit_and_restart_with_larger_budget(katib: Katib) -> None:
    doc = experiment_doc(resumePolicy="LongRunning")
    path = katib.write(doc)
    assert katib("run", str(path)).returncode == 0
    refused = katib("restart", "exp", "--max-trial-count", "3")
    assert refused.returncode == 2 and "exceed" in refused.stderr
    assert katib("restart", "exp", "--max-trial-count", "6").returncode == 0
    assert len(katib.trials("exp")) == 6
    names = [t["metadata"]["name"] for t in katib.trials("exp")]
    assert len(set(names)) == 6


def test_restart_refused_with_resume_policy_never(katib: Katib) -> None:
    path = katib.write(experiment_doc())
    assert katib("run", str(path)).returncode == 0
    result = katib("restart", "exp", "--max-trial-count", "10")
    assert result.returncode == 2 and "resumePolicy Never" in result.stderr


def _wait_for(predicate, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _running_trials(katib: Katib) -> list[dict[str, object]]:
    result = katib("get", "trials", "exp", "-o", "json")
    if result.returncode != 0:
        return []
    items = json.loads(result.stdout)["items"]
    return [t for t in items if t["status"]["condition"] == "Running"]


def _trial_pids(katib: Katib) -> list[int]:
    """The processes of the experiment's running trials, found by their environment."""
    names = {t["metadata"]["name"] for t in _running_trials(katib)}
    return trial_processes(names)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_orphans_and_resumes(katib: Katib, sig: signal.Signals) -> None:
    (katib.folder / "hold").write_text("")
    path = katib.write(experiment_doc(maxTrialCount=4))
    proc = katib.popen("run", str(path))
    _wait_for(lambda: len(_running_trials(katib)) == 2)
    pids = _trial_pids(katib)
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    _wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), timeout=10)
    trials = katib.trials("exp")
    assert {t["status"]["condition"] for t in trials} == {"Killed"}
    assert {t["status"]["reason"] for t in trials} == {"Interrupted"}
    interrupted = {t["metadata"]["name"] for t in trials}
    # Resume: the interrupted trials run again and don't count twice.
    os.remove(katib.folder / "hold")
    result = katib("run", str(path))
    assert result.returncode == 0, result.stderr
    trials = katib.trials("exp")
    assert len(trials) == 4
    assert {t["status"]["condition"] for t in trials} == {"Succeeded"}
    assert interrupted <= {t["metadata"]["name"] for t in trials}


@pytest.mark.slow
def test_crash_of_the_controller_is_resumed_and_orphans_killed(katib: Katib) -> None:
    (katib.folder / "hold").write_text("")
    path = katib.write(experiment_doc(maxTrialCount=3))
    proc = katib.popen("run", str(path))
    _wait_for(lambda: len(_running_trials(katib)) == 2)
    pids = _trial_pids(katib)
    proc.kill()  # SIGKILL: no cleanup at all
    proc.communicate(timeout=10)
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)  # orphans still run
    refused = katib("delete", "experiment", "exp")
    assert refused.returncode == 0 or "running" in refused.stderr
    path = katib.write(experiment_doc(maxTrialCount=3))
    os.remove(katib.folder / "hold")
    result = katib("run", str(path))
    assert result.returncode == 0, result.stderr
    _wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), timeout=10)
    trials = katib.trials("exp")
    assert len(trials) == 3 and {t["status"]["condition"] for t in trials} == {"Succeeded"}


def test_running_experiment_cannot_be_run_twice(katib: Katib) -> None:
    (katib.folder / "hold").write_text("")
    path = katib.write(experiment_doc())
    proc = katib.popen("run", str(path))
    try:
        _wait_for(lambda: len(_running_trials(katib)) == 2)
        second = katib("run", str(path))
        assert second.returncode == 2 and "another process" in second.stderr
        stopped = katib("stop", "exp")
        assert stopped.returncode == 0
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        exp = katib.json("get", "experiments")["items"][0]
        assert exp["status"]["conditions"][-1]["reason"] == "ExperimentStoppedByUser"
        assert {t["status"]["condition"] for t in katib.trials("exp")} == {"Killed"}
    finally:
        if proc.poll() is None:
            proc.kill()
        Path(katib.folder / "hold").unlink(missing_ok=True)


def test_changed_spec_is_refused_on_resume(katib: Katib) -> None:
    (katib.folder / "hold").write_text("")
    path = katib.write(experiment_doc())
    proc = katib.popen("run", str(path))
    _wait_for(lambda: len(_running_trials(katib)) == 2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    os.remove(katib.folder / "hold")
    changed = experiment_doc()
    changed["spec"]["objective"]["type"] = "maximize"
    katib.write(changed)
    result = katib("run", str(path))
    assert result.returncode == 2 and "different spec" in result.stderr
    katib.write(experiment_doc(maxTrialCount=5))  # counts may change
    assert katib("run", str(path)).returncode == 0
    assert len(katib.trials("exp")) == 5


SLOW_TRIAL = '''
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
a = p.parse_args()
for step in range(12):
    print(f"loss={a.x}", flush=True)
    time.sleep(0.25)
'''


@pytest.mark.slow
def test_medianstop_stops_bad_trials_early(katib: Katib) -> None:
    (katib.folder / "slow.py").write_text(SLOW_TRIAL)
    # Seed 3 visits x = 0.1 first: the rule then has one good trial to compare with.
    grid = {"algorithmName": "grid", "algorithmSettings": [{"name": "random_state", "value": "3"}]}
    doc = experiment_doc(parallelTrialCount=1, algorithm=grid,
                         container={"command": ["python3", "slow.py"]})
    del doc["spec"]["maxTrialCount"]
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.1", "max": "0.9", "step": "0.4"}
    doc["spec"]["earlyStopping"] = {"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": "2"}]}
    path = katib.write(doc)
    result = katib("run", str(path), "--output", "best.json")
    assert result.returncode == 0, result.stderr
    by_x = {t["spec"]["parameterAssignments"][0]["value"]: t for t in katib.trials("exp")}
    assert sorted(by_x) == ["0.1", "0.5", "0.9"]
    assert by_x["0.1"]["status"]["condition"] == "Succeeded"
    for x in ("0.5", "0.9"):
        status = by_x[x]["status"]
        assert status["condition"] == "EarlyStopped", status
        assert status["reason"] == "EarlyStopped"
        assert "loss greater than 0.1" in status["message"]
    best = json.loads((katib.folder / "best.json").read_text())
    assert best["parameterAssignments"] == [{"name": "x", "value": "0.1"}]


ENV_TRIAL = '''
import os, sys, time
print("threads", os.environ.get("OMP_NUM_THREADS"), os.environ.get("OPENBLAS_NUM_THREADS"))
print("gpus", os.environ.get("CUDA_VISIBLE_DEVICES"))
marker = "attempt-" + os.environ["KATIB_TRIAL_NAME"]
if "--flaky" in sys.argv and not os.path.exists(marker):
    open(marker, "w").close()
    sys.exit(5)
if "--always-fail" in sys.argv:
    sys.exit(5)
time.sleep(0.3)
print("loss=0.5")
'''


def _logs(katib: Katib, experiment: str = "exp") -> dict[str, str]:
    folder = katib.home / "logs" / "default" / experiment
    return {p.stem: p.read_text() for p in folder.glob("*.log")}


def test_threads_follow_the_trials_share_of_the_machine(katib: Katib) -> None:
    (katib.folder / "env_trial.py").write_text(ENV_TRIAL)
    doc = experiment_doc(container={"command": ["python3", "env_trial.py"],
                                    "resources": {"limits": {"cpu": "3"}}}, )
    assert katib("run", str(katib.write(doc))).returncode == 0
    assert all("threads 3 3" in text for text in _logs(katib).values())


def test_backoff_limit_retries_a_failed_trial(katib: Katib) -> None:
    (katib.folder / "env_trial.py").write_text(ENV_TRIAL)
    doc = experiment_doc(container={"command": ["python3", "env_trial.py", "--flaky"]},
                         maxTrialCount=2)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = 2
    assert katib("run", str(katib.write(doc))).returncode == 0
    trials = katib.trials("exp")
    assert {t["status"]["condition"] for t in trials} == {"Succeeded"}
    for text in _logs(katib).values():
        assert text.count("threads") == 2  # both attempts are in the log


def test_backoff_limit_exhausted_fails_the_trial(katib: Katib) -> None:
    (katib.folder / "env_trial.py").write_text(ENV_TRIAL)
    doc = experiment_doc(container={"command": ["python3", "env_trial.py", "--always-fail"]},
                         maxTrialCount=1, maxFailedTrialCount=1, parallelTrialCount=1)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = 1
    assert katib("run", str(katib.write(doc))).returncode == 1
    [trial] = katib.trials("exp")
    assert trial["status"]["condition"] == "Failed"
    assert trial["status"]["message"] == "exited with code 5 (failed 2 times; backoffLimit 1)"


def test_gpus_are_handed_out_one_set_per_trial(katib: Katib) -> None:
    (katib.folder / "env_trial.py").write_text(ENV_TRIAL)
    doc = experiment_doc(container={"command": ["python3", "env_trial.py"],
                                    "resources": {"limits": {"nvidia.com/gpu": 1}}},
                         parallelTrialCount=3, maxTrialCount=6)
    katib.env["CUDA_VISIBLE_DEVICES"] = "0,1"
    assert katib("run", str(katib.write(doc))).returncode == 0
    seen = [line.split()[1] for text in _logs(katib).values()
            for line in text.splitlines() if line.startswith("gpus")]
    assert len(seen) == 6 and set(seen) <= {"0", "1"}
    too_many = experiment_doc("greedy", container={
        "command": ["python3", "env_trial.py"],
        "resources": {"limits": {"nvidia.com/gpu": 3}}}, maxFailedTrialCount=0)
    assert katib("run", str(katib.write(too_many, name="greedy.yaml"))).returncode == 1
    trial = katib.trials("greedy")[0]
    assert "asks for 3 nvidia.com/gpu but this machine has 2" in trial["status"]["message"]


PUSH_TRIAL = '''
import sys
from katib import report_metrics
x = float(sys.argv[1].split("=")[1])
for step in range(3):
    report_metrics({"loss": x + step}, step=step)
print("loss=999")  # not parsed: the collector is Push
'''


def test_push_collector(katib: Katib) -> None:
    (katib.folder / "push_trial.py").write_text(PUSH_TRIAL)
    doc = experiment_doc(container={"command": ["python3", "push_trial.py"]})
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Push"}}
    assert katib("run", str(katib.write(doc))).returncode == 0
    for trial in katib.trials("exp"):
        x = float(trial["spec"]["parameterAssignments"][0]["value"])
        [metric] = trial["status"]["observation"]["metrics"]
        assert metric["min"] == pytest.approx(x) and metric["latest"] == pytest.approx(x + 2)


PBT_TRIAL = '''
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--checkpoint")
a = p.parse_args()
state = os.path.join(a.checkpoint, "state.txt")
epochs, score = 0, 0.0
if os.path.exists(state):
    epochs, score = open(state).read().split()
    epochs, score = int(epochs), float(score)
    print("resumed", epochs)
print("checkpoint", a.checkpoint)
for _ in range(2):
    epochs += 1
    score += 0.1 - abs(a.lr - 0.01)
    print(f"Validation-accuracy={score:.4f}")
open(state, "w").write(f"{epochs} {score}")
'''


@pytest.mark.slow
def test_pbt_trials_continue_from_their_parents_checkpoints(katib: Katib) -> None:
    (katib.folder / "pbt_trial.py").write_text(PBT_TRIAL)
    doc = experiment_doc(
        container={"command": ["python3", "pbt_trial.py"]},
        args=["--lr=${trialParameters.x}", "--checkpoint=/var/log/katib/checkpoints/"],
        maxTrialCount=12, parallelTrialCount=2,
        algorithm={"algorithmName": "pbt", "algorithmSettings": [
            {"name": "suggestion_trial_dir", "value": "/var/log/katib/checkpoints/"},
            {"name": "n_population", "value": "5"},
            {"name": "truncation_threshold", "value": "0.2"}]},
    )
    doc["spec"]["objective"] = {"type": "maximize", "objectiveMetricName": "Validation-accuracy"}
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.001", "max": "0.02"}
    assert katib("run", str(katib.write(doc))).returncode == 0
    trials = katib.trials("exp")
    logs = _logs(katib)
    parent_label = "pbt.suggestion.katib.kubeflow.org/parent"
    children = [t for t in trials if parent_label in t["metadata"]["labels"]]
    assert children, "later generations name a parent"
    root = katib.home / "checkpoints" / "default" / "exp"
    for trial in trials:
        name = trial["metadata"]["name"]
        assert f"checkpoint {root / name}/" in logs[name]  # its own folder, not /var/log/...
    for child in children:
        parent = child["metadata"]["labels"][parent_label]
        resumed = re.search(r"resumed (\d+)", logs[child["metadata"]["name"]])
        # The child started from its parent's checkpoint: the epochs the parent had reached.
        parent_epochs = 2 * (logs[parent].count("Validation-accuracy") // 2)
        assert resumed is not None and int(resumed.group(1)) >= parent_epochs >= 2


def test_logs_follow_streams_until_the_trial_ends(katib: Katib) -> None:
    (katib.folder / "hold").write_text("")
    path = katib.write(experiment_doc(maxTrialCount=2))
    proc = katib.popen("run", str(path))
    try:
        _wait_for(lambda: len(_running_trials(katib)) == 2)
        name = str(_running_trials(katib)[0]["metadata"]["name"])  # type: ignore[index]
        follower = katib.popen("logs", name, "--follow")
        time.sleep(1.0)
        assert follower.poll() is None  # still following a running trial
        os.remove(katib.folder / "hold")
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert f"trial {name} cwd" in out and "loss=" in out
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
