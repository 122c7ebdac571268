"""Shared fixtures for the spec tests: a valid baseline experiment and error helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from katib.errors import FieldError, InvalidExperimentError
from katib.spec import parse_experiment

#: A valid experiment: a batch Job running ``python3 train.py --lr=...``, one parameter of
#: each numeric and list type, a metadata reference, and every section Katib defaults.
BASELINE_YAML = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: baseline
  namespace: team-a
spec:
  objective:
    type: minimize
    goal: 0.01
    objectiveMetricName: loss
    additionalMetricNames:
      - accuracy
  algorithm:
    algorithmName: random
    algorithmSettings:
      - name: random_state
        value: "7"
  parallelTrialCount: 2
  maxTrialCount: 10
  maxFailedTrialCount: 2
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace:
        min: "0.001"
        max: "0.1"
        distribution: logUniform
    - name: layers
      parameterType: int
      feasibleSpace:
        min: "1"
        max: "5"
        step: "1"
    - name: optimizer
      parameterType: categorical
      feasibleSpace:
        list: [sgd, adam]
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        description: Learning rate
        reference: lr
      - name: numberLayers
        reference: layers
      - name: optimizer
        reference: optimizer
      - name: trialName
        reference: ${trialSpec.Name}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: python:3.11
                command:
                  - python3
                  - train.py
                  - --lr=${trialParameters.learningRate}
                  - --layers=${trialParameters.numberLayers}
                  - --optimizer=${trialParameters.optimizer}
                env:
                  - name: TRIAL_NAME
                    value: ${trialParameters.trialName}
            restartPolicy: Never
"""


@pytest.fixture
def baseline_text() -> str:
    return BASELINE_YAML


@pytest.fixture
def baseline_doc() -> dict[str, Any]:
    """A fresh parsed copy of the baseline, free to mutate."""
    doc = yaml.safe_load(BASELINE_YAML)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def errors_of() -> Callable[[Any], list[FieldError]]:
    """Every problem :func:`parse_experiment` reports for a document ([] when valid)."""

    def run(doc: Any) -> list[FieldError]:
        try:
            parse_experiment(doc, source="test")
        except InvalidExperimentError as e:
            assert e.errors, "an InvalidExperimentError must carry its errors"
            return e.errors
        return []

    return run
