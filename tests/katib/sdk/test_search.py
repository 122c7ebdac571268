"""``katib.search``: Katib's helpers, turned into valid Katib ParameterSpecs."""

from __future__ import annotations

import math

import pytest

from katib import search
from katib.errors import KatibError
from katib.sdk import InvalidArgumentError
from katib.spec import ParameterSpec


def test_double_int_categorical_discrete_become_katib_parameter_specs() -> None:
    spec = search.double(0.001, 0.1, distribution="logUniform").to_parameter_spec("lr")
    assert isinstance(spec, ParameterSpec)
    assert spec.to_wire() == {
        "name": "lr",
        "parameterType": "double",
        "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"},
    }
    assert search.int(1, 8, step=2).to_wire("layers") == {
        "name": "layers",
        "parameterType": "int",
        "feasibleSpace": {"min": "1", "max": "8", "step": "2"},
    }
    assert search.categorical(["sgd", 1, 2.5, True]).to_wire("opt")["feasibleSpace"] == {
        "list": ["sgd", "1", "2.5", "True"]
    }
    discrete = search.discrete([16, 32, 64])
    assert discrete.to_wire("batch")["parameterType"] == "discrete"
    assert discrete.choices == (16, 32, 64)


def test_integral_floats_are_accepted_as_int_bounds() -> None:
    assert search.int(1.0, 4).min == "1"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: search.double(0, math.nan), "max: nan is not a finite number"),
        (lambda: search.double("0", 1),  # type: ignore[arg-type]
         "min: '0' is not a finite number"),
        (lambda: search.double(True, 2), "min: True"),
        (lambda: search.int(0, 2.5),  # type: ignore[arg-type]
         "max: 2.5 is not a whole number"),
        (lambda: search.int(0, 9, distribution="gaussian"), "distribution: 'gaussian'"),
        (lambda: search.categorical([]), "at least one value"),
        (lambda: search.categorical("abc"), "expected a list"),
        (lambda: search.categorical([1, "1"]), "reads the same as 1"),
        (lambda: search.categorical([{"a": 1}]),  # type: ignore[list-item]
         "list[0]"),
        (lambda: search.discrete([1, "two"]),  # type: ignore[list-item]
         "list[1]: 'two' is not a finite number"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_wrong(make: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        make()  # type: ignore[operator]
    assert message in str(caught.value)
    # Katib's SDK raises ValueError for these; so does this one (and a KatibError).
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, KatibError)
