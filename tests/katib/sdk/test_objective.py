"""Shipping a function as trials: what tune() accepts, and what runs inside a trial."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from katib import search
from katib.sdk import InvalidArgumentError, ObjectiveFunctionError
from katib.sdk._objective import (
    MAX_ARG_BYTES,
    function_source,
    inline_command,
    script_text,
    trial_call_spec,
)
from katib.sdk._trial import parse_parameters, result_metrics

REPO = Path(__file__).resolve().parents[3]


def _decorated(func: Any) -> Any:
    return func


@_decorated
def module_level(parameters: dict[str, Any]) -> float:
    import math as m

    return m.sqrt(parameters["x"])


def uses_module_import(parameters: dict[str, Any]) -> float:
    return math.sqrt(parameters["x"])


SCALE = 3.0


def default_from_module(parameters: dict[str, Any], scale: float = SCALE) -> float:
    return float(parameters["x"]) * scale


def attribute_named_like_a_global(parameters: dict[str, Any]) -> Any:
    import types

    holder = types.SimpleNamespace(math=1, SCALE=2)
    return holder.math + holder.SCALE + len(parameters)


def test_source_is_dedented_and_loses_its_decorators() -> None:
    source = function_source(module_level)
    assert source.name == "module_level"
    assert source.source.startswith("def module_level(parameters")
    assert "@_decorated" not in source.source

    def nested(parameters: dict[str, Any]) -> int:
        return len(parameters)

    assert function_source(nested).source.startswith("def nested(")


def test_attributes_and_local_imports_are_not_mistaken_for_outside_names() -> None:
    assert function_source(attribute_named_like_a_global).name == "attribute_named_like_a_global"


@pytest.mark.parametrize(
    "objective, message",
    [
        (lambda p: p, "cannot be a lambda"),
        (print, "plain function"),
        (functools.partial(module_level), "plain function"),
        (42, "must be a function"),
        (uses_module_import, "uses names defined outside it: math"),
        (default_from_module, "uses names defined outside it: SCALE"),
    ],
    ids=["lambda", "builtin", "partial", "not-callable", "global-import", "global-default"],
)
def test_functions_that_cannot_run_alone_are_refused(objective: Any, message: str) -> None:
    with pytest.raises(ObjectiveFunctionError, match=message):
        function_source(objective)


def test_closures_async_generators_and_wrong_arity_are_refused() -> None:
    offset = 1.0

    def closure(parameters: dict[str, Any]) -> float:
        return float(parameters["x"]) + offset

    async def coroutine(parameters: dict[str, Any]) -> None:
        pass

    def generator(parameters: dict[str, Any]) -> Any:
        yield parameters

    def two(parameters: dict[str, Any], other: int) -> None:
        pass

    with pytest.raises(ObjectiveFunctionError, match=r"function around it \(offset\)"):
        function_source(closure)
    with pytest.raises(ObjectiveFunctionError, match="async"):
        function_source(coroutine)
    with pytest.raises(ObjectiveFunctionError, match="generator"):
        function_source(generator)
    with pytest.raises(ObjectiveFunctionError, match="exactly one argument"):
        function_source(two)


def test_a_function_without_source_is_refused() -> None:
    namespace: dict[str, Any] = {}
    exec("def made(parameters):\n    return 1\n", namespace)  # defined with no source file
    with pytest.raises(ObjectiveFunctionError, match="source of objective made cannot be found"):
        function_source(namespace["made"])


def test_trial_arguments_come_back_with_their_python_types() -> None:
    parameters = {
        "lr": search.double(0.1, 0.2),
        "fixed": {"epochs": 2},
        "layers": search.int(1, 4),
        "opt": search.categorical(["adam", 1, 2.5, True]),
        "batch": search.discrete([16, 32]),
    }
    spec = json.loads(json.dumps(trial_call_spec(parameters, "loss")))
    values = parse_parameters(spec, ["0.15", "3", "True", "32"])
    assert values == {"lr": 0.15, "fixed": {"epochs": 2}, "layers": 3, "opt": True, "batch": 32}
    assert list(values) == list(parameters)  # the order the user gave
    assert type(values["layers"]) is int and type(values["opt"]) is bool
    assert parse_parameters(spec, ["0.1", "2", "1", "16"])["opt"] == 1
    with pytest.raises(ValueError, match="expected 4 argument"):
        parse_parameters(spec, ["0.1"])
    with pytest.raises(ValueError, match="layers: '2.5' is not a int"):
        parse_parameters(spec, ["0.1", "2.5", "adam", "16"])


def test_what_a_function_returns_becomes_metrics() -> None:
    assert result_metrics(None, "loss") == {}
    assert result_metrics(0.5, "loss") == {"loss": 0.5}
    assert result_metrics({"loss": 1, "acc": "0.9"}, "loss") == {"loss": 1.0, "acc": 0.9}
    for bad, message in [
        (True, "not a metric value"),
        ("0.5", "returned str"),
        ({"loss": math.inf}, "not a finite number"),
        ({"loss": "high"}, "not a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            result_metrics(bad, "loss")


def test_the_script_runs_by_hand_and_prints_what_the_function_returns(tmp_path: Path) -> None:
    def objective(parameters: dict[str, Any]) -> dict[str, float]:
        return {"loss": parameters["x"] * 2, "n": parameters["n"]}

    parameters = {"x": search.double(0, 1), "n": search.int(1, 3)}
    script = tmp_path / "objective.py"
    text = script_text(function_source(objective), trial_call_spec(parameters, "loss"), "ns", "e")
    script.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, str(script), "0.25", "2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["loss=0.5", "n=2.0"]
    bad = subprocess.run(
        [sys.executable, str(script), "0.25"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    assert bad.returncode == 1 and "expected 2 argument(s) (x, n), got 1" in bad.stderr


def test_the_inline_script_runs_with_python_c_and_checks_packages_first(tmp_path: Path) -> None:
    def objective(parameters: dict[str, Any]) -> dict[str, float]:
        return {"loss": parameters["x"] * 2}

    spec = trial_call_spec({"x": search.double(0, 1)}, "loss")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
    env["PYTHONPATH"] = str(REPO)
    source = function_source(objective)
    text = script_text(source, spec, "ns", "e", inline=True, packages=["pytest"])
    command = inline_command(text)
    assert command[:3] == ["python", "-u", "-c"] and command[3] == text
    ok = subprocess.run([sys.executable, *command[1:], "0.25"], capture_output=True, text=True,
                        env=env, cwd=tmp_path, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["loss=0.5"]
    missing = script_text(source, spec, "ns", "e", inline=True,
                          packages=["pytest>=1", "not-a-real-package-xyz[extra]>=2"])
    bad = subprocess.run([sys.executable, "-u", "-c", missing, "0.25"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=60)
    assert bad.returncode == 1 and bad.stdout == ""
    assert "packages_to_install: not-a-real-package-xyz[extra]>=2 not installed" in bad.stderr
    assert "pytest" not in bad.stderr


def test_an_inline_script_must_fit_in_one_argument() -> None:
    assert inline_command("x" * (MAX_ARG_BYTES - 1))[3] == "x" * (MAX_ARG_BYTES - 1)
    with pytest.raises(InvalidArgumentError, match="131072 bytes"):
        inline_command("x" * MAX_ARG_BYTES)
    with pytest.raises(InvalidArgumentError):
        inline_command("é" * (MAX_ARG_BYTES // 2))  # bytes count, not characters


def test_trials_import_nothing_heavy() -> None:
    code = (
        "import sys, katib, katib.sdk._trial\n"
        "heavy = [m for m in ('pydantic', 'sqlalchemy', 'yaml', 'numpy', 'katib.spec',"
        " 'katib.storage', 'katib.sdk._client') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
