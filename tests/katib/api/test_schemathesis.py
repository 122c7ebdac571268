"""Property-based requests from the OpenAPI schema (Schemathesis): no answer is a 5xx.

Requests carry an admin token, so that they get past authentication into every endpoint;
the database holds an experiment with trials, so that some generated names exist.

Each operation's strategy is drawn with Hypothesis directly rather than through
schemathesis' pytest plugin: the plugin reaches into pytest's private node attributes and
broke with pytest 9.2, while ``APIOperation.as_strategy`` is its public, stable API.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from katib.api import create_app
from katib.records import MetricSummary, TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import experiment_doc

pytestmark = pytest.mark.slow

ADMIN = "schemathesis-admin-token-0123456789"
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def api_schema(storage: Storage, katib_home: Path, work_dir: Path) -> schemathesis.BaseSchema:
    storage.create_token("admin", "*", "admin", plaintext=ADMIN)
    record = storage.create_experiment(parse_experiment(experiment_doc("x")))
    for i in range(3):
        trial = storage.create_trial(record, {"x": str(i)})
        storage.finish_trial(
            trial.id,
            TrialResult(
                TrialState.SUCCEEDED, "TrialSucceeded", "", 1.0,
                objective=float(i), metrics={"loss": MetricSummary("loss", i, i, i)},
            ),
        )
    app = create_app(storage, work_dir=str(work_dir))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_errors(api_schema: schemathesis.BaseSchema, storage: Storage) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20, "the schema lost its operations"
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: schemathesis.Case) -> None:
            # Generated requests may revoke the token (once another admin exists).
            storage.ensure_token(ADMIN, "admin", "*", "admin")
            response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Exception as e:  # noqa: BLE001 - collect every operation's failure, then fail
            failures.append(f"{operation.label}: {e}")
    assert not failures, "\n\n".join(failures)
