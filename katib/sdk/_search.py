"""Search-space helpers, named as in Katib's SDK (``kubeflow.katib.search``).

``search.double(0.01, 0.1)`` returns a :class:`Parameter`: the feasible space of one
hyperparameter, which ``KatibClient.tune()`` turns into a Katib ``ParameterSpec`` (values as
strings, as Katib writes them) while remembering the Python values of a list, so that the
objective function gets ``3`` back for ``search.categorical([1, 3])`` and not ``"3"``.

Only shapes are checked here (numbers where numbers belong); the experiment's validation
reports range problems (min ≥ max, a step that does not fit) with their field paths.
This module imports nothing heavy: pydantic is loaded only when a spec is built. Argument
names (``min``, ``max``, ``list``) are Katib's, even where they shadow built-ins.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from katib.sdk._errors import InvalidArgumentError

if TYPE_CHECKING:
    from katib.spec import ParameterSpec

#: Values a categorical or discrete list may hold: they travel to the trial as JSON.
Choice = str | builtins.int | builtins.float | bool | None

DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")


@dataclass(frozen=True)
class Parameter:
    """The feasible space of one hyperparameter (Katib's ``parameterType`` + ``feasibleSpace``).

    Attributes:
        parameter_type: ``double``, ``int``, ``categorical`` or ``discrete``.
        min: Lower bound as Katib writes it (a string), for double and int.
        max: Upper bound, for double and int.
        step: Grid step, when given.
        distribution: ``uniform`` (Katib's default), ``logUniform``, ``normal``,
            ``logNormal``; None leaves Katib's default.
        choices: The list of a categorical or discrete parameter, as Python values.
    """

    parameter_type: str
    min: str | None = None
    max: str | None = None
    step: str | None = None
    distribution: str | None = None
    choices: tuple[Choice, ...] = ()

    @property
    def values(self) -> list[str]:
        """The list as Katib writes it: one string per choice."""
        return [format_choice(c) for c in self.choices]

    def to_wire(self, name: str) -> dict[str, object]:
        """The Katib ``ParameterSpec`` document (camelCase) for a parameter called ``name``."""
        space: dict[str, object] = {}
        if self.parameter_type in ("double", "int"):
            space["min"], space["max"] = self.min, self.max
            if self.step is not None:
                space["step"] = self.step
        else:
            space["list"] = self.values
        if self.distribution is not None:
            space["distribution"] = self.distribution
        return {"name": name, "parameterType": self.parameter_type, "feasibleSpace": space}

    def to_parameter_spec(self, name: str) -> ParameterSpec:
        """The Katib ``ParameterSpec`` model for a parameter called ``name``."""
        from katib.spec import ParameterSpec

        return ParameterSpec.model_validate(self.to_wire(name))


def double(
    min: float,
    max: float,
    step: float | None = None,
    distribution: str | None = None,
) -> Parameter:
    """A float between ``min`` and ``max``.

    Args:
        min: Lower bound.
        max: Upper bound.
        step: Grid step (the grid algorithm needs one for doubles).
        distribution: ``uniform`` (default), ``logUniform``, ``normal`` or ``logNormal``.

    Raises:
        InvalidArgumentError: a bound or the step is not a finite number.
    """
    return Parameter(
        "double",
        min=_number(min, "min"),
        max=_number(max, "max"),
        step=None if step is None else _number(step, "step"),
        distribution=_distribution(distribution),
    )


def int_(
    min: builtins.int,
    max: builtins.int,
    step: builtins.int | None = None,
    distribution: str | None = None,
) -> Parameter:
    """A whole number between ``min`` and ``max`` (both included).

    Published as ``search.int``, Katib's name.

    Raises:
        InvalidArgumentError: a bound or the step is not a whole number.
    """
    return Parameter(
        "int",
        min=_whole(min, "min"),
        max=_whole(max, "max"),
        step=None if step is None else _whole(step, "step"),
        distribution=_distribution(distribution),
    )


def categorical(list: Iterable[Choice]) -> Parameter:
    """One of the values in ``list`` (strings, numbers, booleans).

    Raises:
        InvalidArgumentError: the list is empty, holds something other than a string, number,
            boolean or None, or two values that read the same as text (``1`` and ``"1"``).
    """
    return Parameter("categorical", choices=_choices(list, numbers_only=False))


def discrete(list: Iterable[builtins.int | builtins.float]) -> Parameter:
    """One of the numbers in ``list``.

    Raises:
        InvalidArgumentError: the list is empty or holds something other than numbers.
    """
    return Parameter("discrete", choices=_choices(list, numbers_only=True))


def format_choice(value: Choice) -> str:
    """A list value as text, the way the trial receives it."""
    if isinstance(value, builtins.float):
        return repr(value)
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, builtins.int | builtins.float) and not isinstance(value, bool)


def _number(value: object, what: str) -> str:
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise InvalidArgumentError(f"{what}: {value!r} is not a finite number")
    return format_choice(value)  # type: ignore[arg-type]


def _whole(value: object, what: str) -> str:
    if isinstance(value, builtins.float) and value.is_integer():
        value = builtins.int(value)
    if not isinstance(value, builtins.int) or isinstance(value, bool):
        raise InvalidArgumentError(f"{what}: {value!r} is not a whole number")
    return str(value)


def _distribution(value: str | None) -> str | None:
    if value is not None and value not in DISTRIBUTIONS:
        raise InvalidArgumentError(
            f"distribution: {value!r} is not one of {', '.join(DISTRIBUTIONS)}"
        )
    return value


def _choices(values: Iterable[Choice], *, numbers_only: bool) -> tuple[Choice, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidArgumentError(f"list: expected a list of values, got {values!r}")
    out: Sequence[Choice] = tuple(values)
    if not out:
        raise InvalidArgumentError("list: must hold at least one value")
    seen: dict[str, Choice] = {}
    for i, value in enumerate(out):
        if numbers_only:
            if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
                raise InvalidArgumentError(f"list[{i}]: {value!r} is not a finite number")
        elif value is not None and not isinstance(
            value, str | builtins.int | builtins.float
        ):
            raise InvalidArgumentError(
                f"list[{i}]: {value!r} is not a string, number, boolean or None"
            )
        text = format_choice(value)
        if text in seen:
            raise InvalidArgumentError(
                f"list[{i}]: {value!r} reads the same as {seen[text]!r} ({text!r})"
            )
        seen[text] = value
    return tuple(out)
