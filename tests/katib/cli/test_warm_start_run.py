"""``katib run FILE --warm-start EXP[,EXP]``: local processes, earlier experiments' trials
as history, and clear refusals."""

from __future__ import annotations

import pytest

from tests.katib.cli.conftest import Katib, experiment_doc

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def grid(name: str, **spec: object) -> dict[str, object]:
    doc = experiment_doc(
        name,
        parallelTrialCount=1,
        maxFailedTrialCount=0,
        algorithm={"algorithmName": "grid",
                   "algorithmSettings": [{"name": "random_state", "value": "2"}]},
        **spec,
    )
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.1", "max": "0.5", "step": "0.1"}
    return doc


def test_warm_start_from_two_experiments(katib: Katib) -> None:
    assert katib("run", str(katib.write(grid("first", maxTrialCount=2)))).returncode == 0
    assert katib("run", str(katib.write(grid("second", maxTrialCount=1),
                                         name="second.yaml"))).returncode == 0
    doc = grid("third")
    del doc["spec"]["maxTrialCount"]
    path = katib.write(doc, name="third.yaml")
    result = katib("run", str(path), "--warm-start", "first,second")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    tried = {t["spec"]["parameterAssignments"][0]["value"]
             for exp in ("first", "second") for t in katib.trials(exp)}
    mine = [t["spec"]["parameterAssignments"][0]["value"] for t in katib.trials("third")]
    # Five grid points: those tried before are not run again, and then the grid is done.
    assert len(mine) == 5 - len(tried) and not set(mine) & tried
    assert set(mine) | tried == {"0.1", "0.2", "0.3", "0.4", "0.5"}
    exp = next(e for e in katib.json("get", "experiments")["items"]
               if e["metadata"]["name"] == "third")
    assert exp["spec"]["warmStart"] == {"experiments": ["first", "second"]}
    assert exp["status"]["trials"] == len(mine)
    described = katib("describe", "experiment", "third").stdout
    assert "warm start from first (2 trials), second (1 trials)" in described


def test_incompatible_or_missing_sources_are_refused(katib: Katib) -> None:
    assert katib("run", str(katib.write(grid("first", maxTrialCount=1)))).returncode == 0
    doc = grid("other")
    doc["spec"]["parameters"][0]["parameterType"] = "int"
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "1", "max": "5"}
    path = katib.write(doc, name="other.yaml")
    result = katib("run", str(path), "--warm-start", "first,missing")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert ("spec.warmStart.experiments[0]: incompatible search space: parameter 'x' is int"
            " here and double in experiment first") in result.stderr
    assert "spec.warmStart.experiments[1]: experiment default/missing not found" in result.stderr
    assert "other" not in {e["metadata"]["name"]
                           for e in katib.json("get", "experiments")["items"]}

    itself = katib("run", str(path), "--warm-start", "other")
    assert itself.returncode == 1
    assert "an experiment cannot warm-start from itself" in itself.stderr
    empty = katib("run", str(path), "--warm-start", ",")
    assert empty.returncode == 2
    assert "--warm-start needs at least one experiment name" in empty.stderr
