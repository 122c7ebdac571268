"""Tune a Python function with the SDK, on this machine: no server, no YAML.

    python examples/sdk-tune/tune_quadratic.py

TPE searches two parameters of a quadratic bowl whose minimum, 0.5, lies at x=2, y=-1, in 20
trials (a few seconds). Each trial runs ``objective`` in its own process; it reports the loss
by printing ``loss=<value>``, which Katib's StdOut collector reads. Then the best trial is
printed; ``katib get trials sdk-tune-quadratic`` shows every trial.

With ``KATIB_SERVER`` (and ``KATIB_TOKEN``) set, the same code runs through that ``katib
server``: the function's source is sent to it and its machine runs the trials (the token
must be an owner's of the namespace, since the example deletes its previous run)::

    KATIB_SERVER=http://127.0.0.1:8080 KATIB_TOKEN=... python examples/sdk-tune/tune_quadratic.py
"""

from __future__ import annotations

import os
from typing import Any

from katib import KatibClient, search
from katib.errors import NotFoundError

NAME = "sdk-tune-quadratic"


def objective(parameters: dict[str, Any]) -> None:
    x, y = parameters["x"], parameters["y"]
    loss = (x - 2.0) ** 2 + (y + 1.0) ** 2 + 0.5
    print(f"loss={loss}")


def main() -> None:
    # No server: the embedded database; else through the server (token from KATIB_TOKEN).
    client = KatibClient(os.environ.get("KATIB_SERVER") or None)
    try:
        client.delete_experiment(NAME)  # start afresh each time the example runs
    except NotFoundError:
        pass
    client.tune(
        name=NAME,
        objective=objective,
        parameters={"x": search.double(-5, 5), "y": search.double(-5, 5)},
        objective_metric_name="loss",
        objective_type="minimize",
        algorithm_name="tpe",
        algorithm_settings={"random_state": 7},
        max_trial_count=20,
        parallel_trial_count=2,
    )
    best = client.get_optimal_hyperparameters(NAME)
    if best is None:
        raise SystemExit("no trial succeeded; see `katib get trials sdk-tune-quadratic`")
    loss = best.observation.metric("loss")
    print(f"best trial {best.best_trial_name}: loss={loss.min if loss else None}")
    for name, value in best.parameters.items():
        print(f"  {name} = {value}")


if __name__ == "__main__":
    main()
