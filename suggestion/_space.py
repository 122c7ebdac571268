"""The search space as algorithms see it: typed parameters parsed from an experiment spec.

Values cross the wire as strings (Katib's convention); :meth:`Parameter.format` turns a
native value into the exact string that is substituted into a trial, and :meth:`parse` reads
it back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suggestion._nas import NasSpace

DOUBLE = "double"
INT = "int"
DISCRETE = "discrete"
CATEGORICAL = "categorical"

UNIFORM = "uniform"
LOG_UNIFORM = "logUniform"
NORMAL = "normal"
LOG_NORMAL = "logNormal"

Value = float | int | str


def format_float(value: float) -> str:
    """Shortest string for a float, without binary noise (0.1 + 0.2 prints as ``0.3``)."""
    rounded = float(f"{value:.12g}")
    text = repr(rounded)
    return text[:-2] if text.endswith(".0") and "e" not in text else text


@dataclass(frozen=True)
class Parameter:
    """One tunable parameter. ``values`` holds the list of a discrete or categorical one."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: tuple[str, ...] = ()
    distribution: str = UNIFORM

    @property
    def is_numeric(self) -> bool:
        return self.type in (DOUBLE, INT)

    @property
    def low(self) -> float:
        assert self.min is not None
        return self.min

    @property
    def high(self) -> float:
        assert self.max is not None
        return self.max

    def format(self, value: Value) -> str:
        """The string substituted into a trial for ``value``."""
        if self.type == INT:
            return str(int(round(float(value))))
        if self.type == DOUBLE:
            return format_float(float(value))
        return str(value)

    def parse(self, text: str) -> Value:
        """The native value of a stored assignment string."""
        if self.type == INT:
            return int(float(text))
        if self.type == DOUBLE:
            return float(text)
        return text

    def grid_size(self) -> int:
        """How many values :meth:`grid_value` can give, computed without listing them."""
        if not self.is_numeric:
            return len(self.values)
        step = self._grid_step()
        return int(math.floor((self.high - self.low) / step + 1e-9)) + 1

    def grid_value(self, index: int) -> str:
        """The ``index``-th value of this parameter's grid, formatted."""
        if not self.is_numeric:
            return self.values[index]
        return self.format(self.low + index * self._grid_step())

    def _grid_step(self) -> float:
        if self.step:
            return self.step
        if self.type == INT:
            return 1.0
        raise ValueError(f"parameter {self.name!r} of type double needs a step for grid")

    def grid(self) -> list[str]:
        """Every value on this parameter's grid, formatted; doubles need a step."""
        if not self.is_numeric:
            return list(self.values)
        low, high = self.low, self.high
        step = self.step if self.step else (1.0 if self.type == INT else None)
        if step is None:
            raise ValueError(f"parameter {self.name!r} of type double needs a step for grid")
        count = int(math.floor((high - low) / step + 1e-9)) + 1
        out: list[str] = []
        for k in range(count):
            out.append(self.format(low + k * step))
        # Keep distinct values only: int rounding of a fractional step can repeat.
        return list(dict.fromkeys(out))

    def contains(self, text: str) -> bool:
        """Whether an assignment string lies in this parameter's feasible space."""
        if not self.is_numeric:
            return text in self.values
        try:
            number = float(text)
        except ValueError:
            return False
        if math.isnan(number):
            return False
        if self.type == INT and number != int(number):
            return False
        return self.low - 1e-9 <= number <= self.high + 1e-9


@dataclass(frozen=True)
class SearchSpace:
    """The ordered parameters of one experiment.

    A neural architecture search has no parameters: its space is ``nas``
    (``spec.nasConfig``), which only the NAS algorithms read.
    """

    parameters: tuple[Parameter, ...] = field(default_factory=tuple)
    nas: NasSpace | None = None

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        for param in self.parameters:
            if param.name == name:
                return param
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def format(self, values: Mapping[str, Value]) -> dict[str, str]:
        return {p.name: p.format(values[p.name]) for p in self.parameters}

    def parse(self, assignments: Mapping[str, str]) -> dict[str, Value]:
        return {
            p.name: p.parse(assignments[p.name]) for p in self.parameters if p.name in assignments
        }

    def key(self, assignments: Mapping[str, str]) -> tuple[str, ...]:
        """A hashable identity of one assignment, for duplicate detection."""
        return tuple(assignments.get(p.name, "") for p in self.parameters)

    @classmethod
    def from_spec(cls, parameters: Iterable[Any], nas_config: Any = None) -> SearchSpace:
        """Build from validated ``ParameterSpec`` models (or anything shaped like them) and,
        for a neural architecture search, its validated ``NasConfig``."""
        from suggestion._nas import NasSpace

        nas = None if nas_config is None else NasSpace.from_spec(nas_config)
        return cls(tuple(parameter_from_spec(spec) for spec in parameters), nas)


def parameter_from_spec(spec: Any) -> Parameter:
    """A :class:`Parameter` from a validated ``ParameterSpec`` model."""
    fs = spec.feasible_space
    return Parameter(
        name=spec.name,
        type=spec.parameter_type,
        min=_num(fs.min),
        max=_num(fs.max),
        step=_num(fs.step),
        values=tuple(fs.values or ()),
        distribution=fs.distribution or UNIFORM,
    )


def _num(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    return float(text)


def grid_size(space: SearchSpace) -> int:
    size = 1
    for param in space:
        size *= len(param.grid())
    return size
