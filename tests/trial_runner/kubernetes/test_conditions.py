"""Katib's success/failure conditions: the GJSON subset, with gjson v1.17's own answers.

The expected values were produced by tidwall/gjson v1.17.3 (``gjson.Get(doc, path)``) for
these documents and paths; Katib counts a condition as met when the result is an object or
a non-empty array.
"""

from __future__ import annotations

import pytest

from trial_runner.kubernetes import ConditionSyntaxError, condition_met, gjson_get
from trial_runner.kubernetes._conditions import MISSING

JOB_OK = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
JOB_NOT_YET = {"status": {"conditions": [{"type": "Complete", "status": "False"}]}}
JOB_FAILED = {"status": {"conditions": [{"type": "Failed", "status": "True",
                                         "reason": "DeadlineExceeded", "message": "too long"}]}}
NO_CONDITIONS = {"status": {}}
EMPTY_CONDITIONS = {"status": {"conditions": []}}
KUBEFLOW_OK = {"status": {"phase": "Succeeded", "conditions": [
    {"type": "Running", "status": "True"}, {"type": "Succeeded", "status": "True"}]}}

SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


@pytest.mark.parametrize(
    ("doc", "path", "expected"),
    [
        (JOB_OK, SUCCESS, [{"type": "Complete", "status": "True"}]),
        (JOB_OK, FAILURE, []),
        (JOB_OK, 'status.conditions.#(type=="Complete")', {"type": "Complete", "status": "True"}),
        (JOB_OK, 'status.conditions.#(type=="Complete").status', "True"),
        (JOB_OK, "status.phase", MISSING),
        (JOB_OK, "status.conditions.#", 1),
        (JOB_OK, "status.conditions.0.type", "Complete"),
        (JOB_OK, "status.conditions.#.type", ["Complete"]),
        (JOB_OK, 'status.conditions.#(status!="False")#', [{"type": "Complete", "status": "True"}]),
        (JOB_OK, 'status.[phase=="Succeeded"]', []),
        (JOB_OK, 'status.conditions.#(type%"Comp*")#', [{"type": "Complete", "status": "True"}]),
        (JOB_NOT_YET, SUCCESS, []),
        (JOB_NOT_YET, 'status.conditions.#(status!="False")#', []),
        (JOB_FAILED, 'status.conditions.#(type=="Complete")#', []),
        (JOB_FAILED, 'status.conditions.#(type=="Complete")', MISSING),
        (JOB_FAILED, 'status.conditions.#(type%"Comp*")#', []),
        (NO_CONDITIONS, SUCCESS, MISSING),
        (NO_CONDITIONS, "status.conditions.#", MISSING),
        (NO_CONDITIONS, 'status.[phase=="Succeeded"]', []),
        ({}, SUCCESS, MISSING),
        (EMPTY_CONDITIONS, SUCCESS, []),
        (EMPTY_CONDITIONS, "status.conditions.#", 0),
        (EMPTY_CONDITIONS, "status.conditions.0.type", MISSING),
        (KUBEFLOW_OK, "status.phase", "Succeeded"),
        (KUBEFLOW_OK, "status.conditions.#.type", ["Running", "Succeeded"]),
        (KUBEFLOW_OK, 'status.conditions.#(type=="Complete")#', []),
    ],
)
def test_paths_answer_as_gjson_does(doc: dict, path: str, expected: object) -> None:
    assert gjson_get(doc, path) == expected


def test_job_conditions_as_katib_reads_them() -> None:
    assert condition_met(JOB_OK, SUCCESS) is not None
    assert condition_met(JOB_OK, FAILURE) is None
    assert condition_met(JOB_NOT_YET, SUCCESS) is None
    failed = condition_met(JOB_FAILED, FAILURE)
    assert failed is not None and failed.reason == "DeadlineExceeded"
    assert failed.message == "too long"
    assert condition_met(NO_CONDITIONS, SUCCESS) is None


def test_kubeflow_and_trainjob_defaults() -> None:
    assert condition_met(KUBEFLOW_OK, 'status.conditions.#(type=="Succeeded")#|#(status=="True")#')
    assert not condition_met(KUBEFLOW_OK, 'status.conditions.#(type=="Failed")#|#(status=="True")#')


def test_argo_and_tekton_conditions_from_katib_examples() -> None:
    argo = {"status": {"phase": "Succeeded"}}
    assert condition_met(argo, 'status.[@this].#(phase=="Succeeded")#')
    assert not condition_met(argo, 'status.[@this].#(phase=="Failed")#')
    tekton = {"status": {"conditions": [{"type": "Succeeded", "status": "True",
                                         "reason": "Succeeded"}]}}
    met = condition_met(tekton, 'status.conditions.#(type=="Succeeded")#|#(status=="True")#')
    assert met is not None and met.reason == "Succeeded"


def test_a_string_or_number_result_is_not_a_condition() -> None:
    # Katib needs an object or a non-empty array; a bare value does not count.
    assert condition_met(KUBEFLOW_OK, "status.phase") is None
    assert condition_met(JOB_OK, "status.conditions.#") is None


def test_numeric_and_boolean_queries() -> None:
    doc = {"items": [{"n": 1, "ok": True}, {"n": 5, "ok": False}]}
    assert gjson_get(doc, "items.#(n>2)#") == [{"n": 5, "ok": False}]
    assert gjson_get(doc, "items.#(n<=1).ok") is True
    assert gjson_get(doc, "items.#(ok==true)#.n") == [1]
    assert gjson_get(doc, "items.#(missing)#") == []
    assert gjson_get(doc, "items.#(!missing)#.n") == [1, 5]


@pytest.mark.parametrize("path", ["status.@reverse", "status.#(type==Complete)", "a.(b", "a|"])
def test_unsupported_syntax_is_an_error_not_false(path: str) -> None:
    with pytest.raises(ConditionSyntaxError):
        condition_met(JOB_OK, path)
