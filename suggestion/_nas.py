"""The search space of a neural architecture search, as algorithms see it (``spec.nasConfig``).

Katib writes it as a graph (``graphConfig``: the number of layers, the input and output
sizes) and the operations a layer may be (``operations``: a type, and parameters whose
values the operation may take). How the operations become choices is each algorithm's
business: ENAS expands every combination of an operation's parameters into one choice,
DARTS takes one primitive per filter size. The trial parameters an algorithm assigns are
the ones Katib's trial images read (``architecture`` and ``nn_config`` for ENAS;
``algorithm-settings``, ``search-space`` and ``num-layers`` for DARTS), not a
:class:`~suggestion.SearchSpace`'s parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from suggestion._space import Parameter, parameter_from_spec


@dataclass(frozen=True)
class NasOperation:
    """One entry of ``nasConfig.operations``: its type and its parameters (maybe none)."""

    operation_type: str
    parameters: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class NasSpace:
    """``spec.nasConfig``: the graph to fill and the operations to fill it with."""

    num_layers: int
    input_sizes: tuple[int, ...] = ()
    output_sizes: tuple[int, ...] = ()
    operations: tuple[NasOperation, ...] = field(default_factory=tuple)

    @classmethod
    def from_spec(cls, nas_config: Any) -> NasSpace:
        """Build from a validated ``NasConfig`` model (or anything shaped like it)."""
        graph = nas_config.graph_config
        operations: Iterable[Any] = nas_config.operations or ()
        return cls(
            num_layers=int(graph.num_layers or 0),
            input_sizes=tuple(int(n) for n in graph.input_sizes or ()),
            output_sizes=tuple(int(n) for n in graph.output_sizes or ()),
            operations=tuple(
                NasOperation(
                    str(op.operation_type or ""),
                    tuple(parameter_from_spec(p) for p in op.parameters or ()),
                )
                for op in operations
            ),
        )
