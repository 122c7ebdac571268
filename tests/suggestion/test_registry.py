"""The algorithm registry: built-in names, entry-point plugins and the errors for bad names."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib.metadata import EntryPoint

import pytest

import suggestion._registry as registry
from katib.errors import KatibError
from suggestion import (
    ENTRY_POINT_GROUP,
    Algorithm,
    Parameter,
    SearchSpace,
    TrialRecord,
    UnknownAlgorithmError,
    algorithm_names,
    get_algorithm,
)
from suggestion.algorithms.grid import GridSearch
from suggestion.algorithms.random import RandomSearch

HERE = __name__  # importable: the tests folder is a package


class FirstPointAlgorithm(Algorithm):
    """A third-party algorithm that always proposes each parameter's first grid value."""

    name = "first-point"

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        pass

    def suggest(self, count: int) -> list[dict[str, str]]:
        return [{p.name: p.grid()[0] for p in self.space}][:count]


class NotAnAlgorithm:
    """Something a broken plugin might point at."""


def not_a_class() -> None:
    """Also not an Algorithm."""


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Entry points the registry sees: fill the dict (name -> "module:attr") before use."""
    declared: dict[str, str] = {}
    asked: list[str] = []

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        asked.append(group)
        return [EntryPoint(name, value, group) for name, value in declared.items()]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    registry._plugins.cache_clear()
    yield declared
    registry._plugins.cache_clear()
    assert set(asked) <= {ENTRY_POINT_GROUP}


def test_builtin_names_are_listed_sorted() -> None:
    names = algorithm_names()
    assert {"random", "grid"} <= set(names)
    assert names == sorted(names)


def test_builtin_classes() -> None:
    assert get_algorithm("random") is RandomSearch
    assert get_algorithm("grid") is GridSearch


def test_unknown_algorithm_lists_the_known_names() -> None:
    with pytest.raises(UnknownAlgorithmError) as caught:
        get_algorithm("hyperopt-ish")
    message = str(caught.value)
    assert "'hyperopt-ish'" in message
    assert "random" in message and "grid" in message
    assert isinstance(caught.value, KatibError)


def test_plugin_is_found_by_name(plugins: dict[str, str]) -> None:
    plugins["first-point"] = f"{HERE}:FirstPointAlgorithm"
    assert "first-point" in algorithm_names()
    cls = get_algorithm("first-point")
    assert cls is FirstPointAlgorithm
    space = SearchSpace((Parameter("n", "int", min=3, max=5),))
    assert cls(space, maximize=False).suggest(1) == [{"n": "3"}]


def test_unknown_name_lists_plugins_too(plugins: dict[str, str]) -> None:
    plugins["first-point"] = f"{HERE}:FirstPointAlgorithm"
    with pytest.raises(UnknownAlgorithmError, match="first-point"):
        get_algorithm("nope")


def test_plugin_cannot_shadow_a_builtin(plugins: dict[str, str]) -> None:
    plugins["random"] = f"{HERE}:FirstPointAlgorithm"
    assert get_algorithm("random") is RandomSearch
    assert algorithm_names().count("random") == 1


@pytest.mark.parametrize("target", ["NotAnAlgorithm", "not_a_class"])
def test_plugin_that_is_not_an_algorithm_is_rejected(plugins: dict[str, str], target: str) -> None:
    plugins["broken"] = f"{HERE}:{target}"
    with pytest.raises(UnknownAlgorithmError) as caught:
        get_algorithm("broken")
    message = str(caught.value)
    assert "'broken'" in message
    assert target in message
    assert "not an Algorithm" in message


@pytest.mark.parametrize(
    "target",
    [f"{HERE}:Missing", "tests.suggestion.no_such_module_here:Thing"],
)
def test_plugin_that_cannot_be_loaded_is_reported(plugins: dict[str, str], target: str) -> None:
    plugins["ghost"] = target
    assert "ghost" in algorithm_names()  # listing does not import
    with pytest.raises(UnknownAlgorithmError, match="could not be loaded") as caught:
        get_algorithm("ghost")
    assert target in str(caught.value)
    assert caught.value.__cause__ is not None


def test_installed_entry_points_are_read() -> None:
    # The package itself declares its built-ins under the group (pyproject.toml).
    registry._plugins.cache_clear()
    try:
        found = registry._plugins()
    finally:
        registry._plugins.cache_clear()
    assert found.get("random") == "suggestion.algorithms.random:RandomSearch"
    assert found.get("grid") == "suggestion.algorithms.grid:GridSearch"
