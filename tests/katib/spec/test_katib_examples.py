"""Katib's published examples load and validate unchanged.

The files under ``tests/fixtures/katib_examples/`` are verbatim copies of Katib's
``examples/v1beta1`` (Apache-2.0, The Kubeflow Authors); each names its source.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from katib.errors import InvalidExperimentError
from katib.spec import load_experiments
from suggestion import NAS_ALGORITHMS, algorithm_names
from suggestion.early_stopping import early_stopping_names

EXAMPLES = Path(__file__).parents[2] / "fixtures" / "katib_examples"
FILES = sorted(EXAMPLES.rglob("*.yaml"))

#: Examples that Katib's own admission webhook rejects as published, with the reason.
#: simple-pbt sets maxFailedTrialCount 3 above maxTrialCount 2; Katib's validator reports
#: the same error.
KATIB_REJECTS = {
    "hp-tuning/simple-pbt.yaml": {
        ("spec.maxFailedTrialCount", "should be less than or equal to spec.maxTrialCount")
    },
}


def test_the_examples_are_there() -> None:
    folders = {f.parent.name for f in FILES}
    assert {"hp-tuning", "metrics-collector", "early-stopping", "resume-experiment"} <= folders
    assert len(FILES) >= 25


@pytest.mark.parametrize("path", FILES, ids=[str(f.relative_to(EXAMPLES)) for f in FILES])
def test_katib_example_loads(path: Path) -> None:
    assert path.read_text().startswith("# Copied verbatim from kubeflow/katib examples/")
    raw = yaml.safe_load(path.read_text())
    spec = raw["spec"]
    algorithm = spec["algorithm"]["algorithmName"]
    early = (spec.get("earlyStopping") or {}).get("algorithmName")

    expected = set(KATIB_REJECTS.get(str(path.relative_to(EXAMPLES)), set()))
    # Until the remaining suggestion algorithms are registered (a later change adds tpe,
    # cmaes, ...), their examples fail only with "unknown algorithm". Once every name is
    # registered these expectations are empty and the test asserts "no errors" outright.
    if algorithm not in algorithm_names() and algorithm not in NAS_ALGORITHMS:
        expected.add(("spec.algorithm.algorithmName", f"unknown algorithm {algorithm!r}"))
    if early is not None and early not in early_stopping_names():
        expected.add(("spec.earlyStopping.algorithmName", f"early stopping algorithm {early!r}"))

    if not expected:
        (exp,) = load_experiments(path)
        assert exp.name == raw["metadata"]["name"]
        return
    with pytest.raises(InvalidExperimentError) as info:
        load_experiments(path)
    errors = info.value.errors
    assert len(errors) == len(expected), [str(e) for e in errors]
    for path_, message in expected:
        assert any(e.path == path_ and message in e.message for e in errors), [
            str(e) for e in errors
        ]
