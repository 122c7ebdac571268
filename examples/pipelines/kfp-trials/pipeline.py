"""A three-step KFP pipeline (preprocess → train → evaluate) that Katib tunes as a whole: each
trial of experiment.yaml is one run of it on a Kubeflow Pipelines server.

Compile it next to the experiment, then run the experiment against your KFP API server::

    cd examples/pipelines/kfp-trials
    python pipeline.py                                   # writes pipeline.yaml here
    KFP_HOST=http://ml-pipeline.kubeflow:8888 katib run experiment.yaml

The evaluate step writes ``accuracy`` to a ``Metrics`` output, which Katib reads from the
run's metrics artifacts when the run has succeeded.
"""

# No ``from __future__ import annotations``: kfp reads the components' annotations as types.
from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl import Metrics, Output


@dsl.component(base_image="python:3.11-slim")
def preprocess(num_examples: int) -> int:
    """Keep a tenth of the examples (a stand-in for real preprocessing)."""
    return max(1, num_examples // 10)


@dsl.component(base_image="python:3.11-slim")
def train(learning_rate: float, epochs: int, examples: int) -> float:
    """A stand-in for training: a score that is best near learning_rate = 0.02."""
    score = 0.95 - min(abs(learning_rate - 0.02) * 2, 0.3) - 0.05 / epochs
    return score - 100 / examples


@dsl.component(base_image="python:3.11-slim")
def evaluate(score: float, metrics: Output[Metrics]) -> None:
    metrics.log_metric("accuracy", round(score, 5))
    metrics.log_metric("loss", round(1 - score, 5))


@dsl.pipeline(name="katib-tuned-training")
def training_pipeline(learning_rate: float = 0.01, epochs: int = 2,
                      num_examples: int = 60000) -> None:
    prepared = preprocess(num_examples=num_examples)
    trained = train(learning_rate=learning_rate, epochs=epochs, examples=prepared.output)
    evaluate(score=trained.output)


if __name__ == "__main__":
    compiler.Compiler().compile(training_pipeline, str(Path(__file__).with_name("pipeline.yaml")))
