"""examples/pipelines/: the tuner as a KFP step, in kfp's own environment (.ci/kfp.sh).

The tune-then-train pipeline is compiled with the kfp SDK and run end to end with KFP's own
local runner (``kfp.local``, subprocess runner); the ``katib_tune`` component's function body
runs on its own too, as its container would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pipelines"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def kfp_python() -> str:
    """The python of kfp's own virtual environment (built by .ci/kfp.sh, cached)."""
    result = subprocess.run(["bash", str(REPO / ".ci" / "kfp.sh")], capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        message = f"cannot build the kfp environment: {result.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return result.stdout.strip().splitlines()[-1]


def kfp_env(katib_home: Path, tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, KATIB_HOME=str(katib_home), PYTHONPATH=f"{REPO}:{EXAMPLE}",
                KFP_LOCAL_ROOT=str(tmp_path / "kfp-outputs"))


def test_tune_then_train_runs_with_kfp_local(
    kfp_python: str, katib_home: Path, tmp_path: Path
) -> None:
    result_file = tmp_path / "result.json"
    compiled = tmp_path / "pipeline.yaml"
    component = tmp_path / "katib_tune.yaml"
    run = subprocess.run(
        [kfp_python, str(EXAMPLE / "katib_step.py"), "--local", "--result", str(result_file),
         "--compile", str(compiled), "--component", str(component)],
        cwd=tmp_path, env=kfp_env(katib_home, tmp_path), capture_output=True, text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    trained_with = json.loads(result_file.read_text())["trained_with"]
    # The training step received exactly the experiment's best parameters.
    best = json.loads(subprocess.run(
        [sys.executable, "-m", "katib", "best", "tune-step", "-o", "json"],
        env=dict(os.environ, KATIB_HOME=str(katib_home)), capture_output=True, text=True,
        check=True,
    ).stdout)
    assert best["condition"] == "Succeeded"
    assert trained_with == {a["name"]: a["value"] for a in best["parameterAssignments"]}
    # The compiled pipeline and component are KFP v2 IR, with the step's inputs and outputs.
    spec = yaml.safe_load(compiled.read_text())
    assert spec["root"]["inputDefinitions"]["parameters"]["experiment"]["parameterType"] == (
        "STRING")
    tune = yaml.safe_load(component.read_text())
    outputs = tune["root"]["outputDefinitions"]
    assert outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert outputs["parameters"]["Output"]["parameterType"] == "STRING"
    # The tune step's KFP metrics: the best trial's.
    metrics_files = list((tmp_path / "kfp-outputs").glob("tune-then-train-*/katib-tune/*"))
    executor = [p for p in metrics_files if p.name == "executor_output.json"]
    assert executor, metrics_files
    logged = json.loads(executor[0].read_text())["artifacts"]["metrics"]["artifacts"][0]
    reported = {m["name"]: m["latest"] for m in best["observation"]["metrics"]}
    assert logged["metadata"] == pytest.approx(reported)


BODY = """
import json, sys
from pathlib import Path
from kfp.dsl import Artifact, Metrics
from katib_step import katib_tune

out = Path(sys.argv[2])
metrics = Metrics(name="metrics", uri=str(out / "metrics"), metadata={})
best = Artifact(name="best_trial", uri=str(out / "best.json"), metadata={})
try:
    params = katib_tune.python_func(experiment=sys.argv[1], metrics=metrics, best_trial=best)
except (RuntimeError, ValueError) as e:
    print("ERROR", e)
    sys.exit(3)
print(json.dumps({"params": json.loads(params), "metrics": metrics.metadata,
                  "best": json.loads(Path(best.path).read_text())}))
"""


def run_body(kfp_python: str, experiment: str, katib_home: Path,
             tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kfp_python, "-c", BODY, experiment, str(tmp_path / "out")],
        cwd=tmp_path, env=kfp_env(katib_home, tmp_path), capture_output=True, text=True,
        timeout=300,
    )


def test_the_components_body_runs_an_experiment_given_as_text_or_path(
    kfp_python: str, katib_home: Path, tmp_path: Path
) -> None:
    text = (EXAMPLE / "tune.yaml").read_text()
    small = text.replace("maxTrialCount: 6", "maxTrialCount: 2")
    by_text = run_body(kfp_python, small, katib_home, tmp_path)
    assert by_text.returncode == 0, by_text.stdout[-2000:] + by_text.stderr[-2000:]
    answer = json.loads(by_text.stdout.strip().splitlines()[-1])
    assert set(answer["params"]) == {"lr", "layers"}
    assert set(answer["metrics"]) == {"accuracy", "loss"}
    assert answer["best"]["condition"] == "Succeeded"

    path = tmp_path / "other.yaml"
    path.write_text(small.replace("name: tune-step", "name: tune-step-file"))
    by_path = run_body(kfp_python, str(path), katib_home, tmp_path)
    assert by_path.returncode == 0, by_path.stdout[-2000:] + by_path.stderr[-2000:]


@pytest.mark.parametrize(
    ("experiment", "message"),
    [("/no/such/experiment.yaml", "no file /no/such/experiment.yaml"),
     ("apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {name: x}\nspec: {}\n",
      "spec.objective")],
)
def test_bad_experiments_are_clear_errors(
    kfp_python: str, katib_home: Path, tmp_path: Path, experiment: str, message: str
) -> None:
    result = run_body(kfp_python, experiment, katib_home, tmp_path)
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ERROR" in result.stdout and message in result.stdout + result.stderr


def test_the_argo_container_step_example_runs_its_steps_commands(
    katib_home: Path, tmp_path: Path
) -> None:
    """examples/pipelines/argo-tune-then-train.yaml without Argo: the tune step's command on
    its input artifact, then the train step's script on the tune step's output parameter
    (the Workflow itself is checked against Argo's schema in
    tests/trial_runner/pipelines/test_argo_tekton.py)."""
    workflow = yaml.safe_load((EXAMPLE / "argo-tune-then-train.yaml").read_text())
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    tune = templates["tune"]
    (artifact,) = tune["inputs"]["artifacts"]
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(artifact["raw"]["data"])
    command = [str(experiment) if c == artifact["path"] else c
               for c in tune["container"]["command"]]
    best_file = tmp_path / "best.json"
    command = [str(best_file) if c == tune["outputs"]["parameters"][0]["valueFrom"]["path"]
               else c for c in command]
    assert command[0] == "katib"
    tuned = subprocess.run([sys.executable, "-m", "katib", *command[1:]], cwd=tmp_path,
                           env=dict(os.environ, KATIB_HOME=str(katib_home)),
                           capture_output=True, text=True, timeout=300)
    assert tuned.returncode == 0, tuned.stdout[-2000:] + tuned.stderr[-2000:]
    best = best_file.read_text()
    script = templates["train"]["script"]["source"].replace("{{inputs.parameters.best}}", best)
    trained = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60)
    assert trained.returncode == 0, trained.stderr
    params = {a["name"]: a["value"] for a in json.loads(best)["parameterAssignments"]}
    assert f"training with {params}" in trained.stdout


def test_the_kfp_trials_example_runs_against_the_loopback_kfp_api(
    kfp_python: str, katib_home: Path, tmp_path: Path
) -> None:
    """examples/pipelines/kfp-trials: the pipeline compiled by kfp, uploaded to the loopback
    KFP API server (tests/trial_runner/pipelines/kfp_server.py) and run by every trial, with
    the run parameters typed as the compiled pipeline declares them."""
    from tests.trial_runner.pipelines.kfp_server import FakeKfp, Script, serve

    folder = tmp_path / "kfp-trials"
    folder.mkdir()
    source = EXAMPLE / "kfp-trials"
    (folder / "pipeline.py").write_text((source / "pipeline.py").read_text())
    (folder / "experiment.yaml").write_text(
        (source / "experiment.yaml").read_text().replace("maxTrialCount: 12", "maxTrialCount: 4"))
    compiled = subprocess.run([kfp_python, str(folder / "pipeline.py")], capture_output=True,
                              text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr[-2000:]

    def behave(params: dict[str, object]) -> Script:
        lr, epochs = float(params["learning_rate"]), int(params["epochs"])  # type: ignore[arg-type]
        score = 0.95 - min(abs(lr - 0.02) * 2, 0.3) - 0.05 / epochs - 100 / 6000
        return Script(metrics={"accuracy": score, "loss": 1 - score}, artifact_style="metadata")

    fake = FakeKfp(behave)
    httpd, thread = serve(fake)
    try:
        env = dict(os.environ, KATIB_HOME=str(katib_home), KFP_HOST=fake.url,
                   KATIB_KFP_POLL_SECONDS="0.05")
        out = tmp_path / "best.json"
        result = subprocess.run(
            [sys.executable, "-m", "katib", "run", str(folder / "experiment.yaml"),
             "--output", str(out)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finally:
        httpd.shutdown()
        thread.join(5)
    best = json.loads(out.read_text())
    assert best["condition"] == "Succeeded" and best["bestTrialName"]
    assert fake.uploads == 1 and len(fake.runs) >= 1
    for body in fake.run_bodies():
        params = body["runtime_config"]["parameters"]
        assert isinstance(params["learning_rate"], float)
        assert isinstance(params["epochs"], int) and params["num_examples"] == 60000
