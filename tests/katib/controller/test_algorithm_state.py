"""Algorithm state is data: a hostile or damaged state row runs nothing and is rebuilt."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from katib.controller import ControllerLoop, FixedExperiments, admit
from katib.records import ExperimentCondition, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from suggestion import get_algorithm
from suggestion._state import InvalidStateError, decode, encode
from tests.katib.controller.test_loop import FakeLauncher, completes, experiment, x_of


class Planted:
    """Unpickling this would create a file: proof that a state was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("algorithm", ["tpe", "cmaes"])
def test_a_hostile_state_row_runs_nothing_and_the_algorithm_is_rebuilt(
    tmp_path: Path, algorithm: str
) -> None:
    storage = Storage.open(f"sqlite:///{tmp_path / 'katib.db'}")
    doc = experiment(maxTrialCount=4, parallelTrialCount=1)
    doc["spec"]["algorithm"] = {"algorithmName": algorithm}
    doc["spec"]["parameters"].append(
        {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
    )
    record = admit(storage, parse_experiment(copy.deepcopy(doc)), source_dir=str(tmp_path))
    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps(Planted(marker))).decode()
    # What this project's older versions stored (a pickled sampler / CMA), made hostile.
    storage.save_algorithm_state(record.id, algorithm, {"sampler": payload, "cma": payload})
    trial = storage.create_trial(record, {"x": "1.0", "y": "0.5"})
    storage.start_trial(trial.id, started_at=1.0)  # a history to rebuild from

    launcher = FakeLauncher(completes(x_of))
    loop = ControllerLoop(
        storage, launcher, logs_root=tmp_path / "logs", source=FixedExperiments([record])
    )
    loop.run(handle_signals=False)

    assert not marker.exists(), "the stored state was unpickled"
    done = storage.get_experiment_by_id(record.id)
    assert done.condition == ExperimentCondition.SUCCEEDED
    assert [t.state for t in storage.list_trials(record.id)] == [TrialState.SUCCEEDED] * 4
    [event] = [e for e in storage.list_events(record.id) if e.reason == "AlgorithmStateRebuilt"]
    assert "does not load" in event.message and "rebuilt from the history" in event.message
    # What is stored now is plain data of the current layout.
    stored = storage.load_algorithm_state(record.id)
    assert stored is not None and stored[1]["version"] == 2
    json.dumps(stored[1])
    storage.close()


@pytest.mark.parametrize("algorithm", ["tpe", "multivariate-tpe", "cmaes"])
def test_state_round_trips_as_json_and_continues_the_same_sequence(algorithm: str) -> None:
    from suggestion import TrialRecord
    from tests.suggestion.test_contract import SPACES

    space = SPACES["mixed"]
    cls = get_algorithm(algorithm)
    settings = {"random_state": "5"}
    first = cls(space, maximize=False, settings=settings, max_trial_count=50,
                parallel_trial_count=1)
    history = []
    for i in range(6):
        [point] = first.suggest(1)
        history.append(TrialRecord(f"t{i}", point, "Succeeded", float(i % 3)))
        first.update([history[-1]], [])
    state = json.loads(json.dumps(first.dump_state()))  # through JSON, as the database does
    second = cls(space, maximize=False, settings=settings, max_trial_count=50,
                 parallel_trial_count=1)
    second.load_state(state)
    second.update(history, [])
    assert second.suggest(2) == first.suggest(2)


def test_decode_refuses_what_encode_does_not_make() -> None:
    assert decode(encode({"a": np.arange(6.0).reshape(2, 3), "n": np.int64(3)}))["n"] == 3
    for bad in (
        {"__ndarray__": "|O", "shape": [1], "data": [1]},  # object arrays
        {"__ndarray__": "<f8", "shape": [3], "data": [1.0]},  # shape and data disagree
        {"__random_state__": "PCG64", "keys": [], "pos": 0, "has_gauss": 0,
         "cached_gaussian": 0.0},
        {"__float__": "__import__('os')"},
    ):
        with pytest.raises(InvalidStateError):
            decode(bad)
