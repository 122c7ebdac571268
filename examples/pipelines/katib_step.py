"""The tuner as a Kubeflow Pipelines step: a KFP v2 component, and a pipeline that tunes and then
trains with the best parameters.

``katib_tune`` takes an experiment (Katib v1beta1 YAML, as text or as a path inside the step's
container), runs it to its end with ``katib run`` (embedded: trials are processes of the step's
container; or through a katib server: ``katib_server`` or ``KATIB_SERVER``), and outputs

- the best parameters as JSON (``{"lr": "0.031", "layers": "3"}``, values as substituted into
  the trial), its return value, for the next step;
- the optimal trial in ``katib run --output``'s shape, as the ``best_trial`` artifact;
- the best trial's metrics as KFP metrics (``metrics``, shown in KFP's UI).

Usage::

    python examples/pipelines/katib_step.py --compile pipeline.yaml   # upload to KFP
    python examples/pipelines/katib_step.py --local                   # kfp.local, no cluster

The step's image must hold katib-local (the project's image, ``KATIB_IMAGE``, default
``katib-local:0.1.0``: see docs/kubernetes.md). kfp.local's subprocess runner runs the steps
in this Python environment instead, which must import ``katib`` and ``kfp``.
"""

# No ``from __future__ import annotations``: kfp reads the components' annotations as types.
import argparse
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Artifact, Metrics, Output

KATIB_IMAGE = os.environ.get("KATIB_IMAGE", "katib-local:0.1.0")
HERE = Path(__file__).resolve().parent


@dsl.component(base_image=KATIB_IMAGE)
def katib_tune(
    experiment: str,
    metrics: Output[Metrics],
    best_trial: Output[Artifact],
    katib_server: str = "",
    katib_token: str = "",
    namespace: str = "",
) -> str:
    """Run a Katib experiment to its end; return its best parameters as JSON."""
    # A KFP component's body runs alone in its container: everything it uses is imported here.
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    text = experiment.strip()
    if "\n" not in text and text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"experiment: no file {text} in the step's container")
    else:
        # Inline YAML: written beside a temporary folder, so relative paths mean the step's.
        folder = Path(tempfile.mkdtemp(prefix="katib-step-"))
        path = folder / "experiment.yaml"
        path.write_text(experiment)
    output = Path(tempfile.mkdtemp(prefix="katib-best-")) / "best.json"
    command = [sys.executable, "-m", "katib", "run", str(path), "--output", str(output), "-q"]
    server = katib_server or os.environ.get("KATIB_SERVER", "")
    if server:
        command += ["--server", server]
    if katib_token:
        command += ["--token", katib_token]
    if namespace:
        command += ["--namespace", namespace]
    result = subprocess.run(command, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if not output.is_file():
        raise RuntimeError(
            f"katib run exited with status {result.returncode} and wrote no result:"
            f" {result.stderr.strip()[-2000:]}"
        )
    best = json.loads(output.read_text())
    Path(best_trial.path).parent.mkdir(parents=True, exist_ok=True)
    Path(best_trial.path).write_text(json.dumps(best, indent=2))
    best_trial.metadata["experiment"] = best["experiment"]
    best_trial.metadata["condition"] = best["condition"]
    if result.returncode != 0 or best.get("bestTrialName") is None:
        raise RuntimeError(
            f"experiment {best['experiment']} ended {best['condition']} (katib run exit"
            f" status {result.returncode}); best trial: {best.get('bestTrialName')}"
        )
    for metric in best["observation"]["metrics"]:
        metrics.log_metric(metric["name"], float(metric["latest"]))
    parameters = {a["name"]: a["value"] for a in best["parameterAssignments"]}
    return json.dumps(parameters, sort_keys=True)


@dsl.component(base_image="python:3.11-slim")
def train(
    best_parameters: str,
) -> NamedTuple("Trained", [("parameters", str), ("accuracy", float)]):  # type: ignore[valid-type]  # noqa: UP014, E501 - kfp's own form, copied into the step
    """The training step: here the same toy model the experiment's trials train."""
    import json
    from collections import namedtuple

    params = json.loads(best_parameters)
    lr, layers = float(params["lr"]), int(params["layers"])
    accuracy = 0.95 - 40 * (lr - 0.03) ** 2 - 0.01 * abs(layers - 3)
    print(f"training with lr={lr} layers={layers}: accuracy={accuracy:.5f}")
    trained = namedtuple("Trained", ["parameters", "accuracy"])
    return trained(json.dumps(params, sort_keys=True), accuracy)


@dsl.pipeline(name="tune-then-train")
def tune_then_train(experiment: str) -> str:
    """Tune with Katib, then train once with the best parameters."""
    tuned = katib_tune(experiment=experiment)
    trained = train(best_parameters=tuned.outputs["Output"])
    return trained.outputs["parameters"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compile", metavar="FILE", help="write the compiled pipeline here")
    parser.add_argument("--component", metavar="FILE",
                        help="write the compiled katib_tune component here")
    parser.add_argument("--local", action="store_true",
                        help="run the pipeline with kfp.local's subprocess runner")
    parser.add_argument("--experiment", default=str(HERE / "tune.yaml"),
                        help="the experiment file whose text the pipeline tunes")
    parser.add_argument("--result", metavar="FILE",
                        help="with --local: write the outputs of the run here as JSON")
    args = parser.parse_args()
    if args.compile:
        compiler.Compiler().compile(tune_then_train, args.compile)
    if args.component:
        compiler.Compiler().compile(katib_tune, args.component)
    if args.local:
        from kfp import local

        local.init(runner=local.SubprocessRunner(use_venv=False),
                   pipeline_root=os.environ.get("KFP_LOCAL_ROOT", "./local_outputs"))
        text = Path(args.experiment).read_text()
        run = tune_then_train(experiment=text)
        trained = json.loads(run.output)
        print(json.dumps(trained, sort_keys=True))
        if args.result:
            Path(args.result).write_text(json.dumps({"trained_with": trained}))
    if not (args.compile or args.component or args.local):
        parser.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()
