"""DARTS: differentiable architecture search, run as a single search trial.

DARTS searches inside one training run (Liu et al., "DARTS: Differentiable Architecture
Search", 2019): every edge of a cell is a softmax-weighted mix of all operations, and the
mixing weights are trained with the network's. So, as in Katib's DARTS service
(``pkg/suggestion/v1beta1/nas/darts/service.py``), the algorithm only hands the trial what
the search needs, in the trial parameters Katib's DARTS trial image reads:

- ``algorithm-settings``: the settings as a JSON object, Katib's defaults (numbers) with the
  experiment's values (strings, ``None`` for ``"None"``) in their place;
- ``search-space``: the primitives, a JSON list: ``<operationType>_<k>x<k>`` for each filter
  size ``k`` of an operation's one parameter, and the operation type alone for an operation
  without parameters (Katib's ``skip_connection``);
- ``num-layers``: ``graphConfig.numLayers``.

Both JSON values are written with single quotes, as Katib writes them. Every trial asked for
gets the same assignments, as in Katib: each is a whole search of its own (the published
examples run one). The trial reports its result as text (``Best-Genotype=Genotype(...)``),
so the experiment can have no goal and no early stopping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from suggestion._base import Algorithm, SettingSpec, TrialRecord, check_float, check_int
from suggestion._nas import NasSpace
from suggestion._space import CATEGORICAL, DISCRETE, SearchSpace
from suggestion.algorithms.enas import katib_json

ALGORITHM_SETTINGS = "algorithm-settings"
SEARCH_SPACE = "search-space"
NUM_LAYERS = "num-layers"

#: Katib's defaults, in its order, with its types (they are written as JSON numbers).
DEFAULTS: dict[str, int | float] = {
    "num_epochs": 50,
    "w_lr": 0.025,
    "w_lr_min": 0.001,
    "w_momentum": 0.9,
    "w_weight_decay": 3e-4,
    "w_grad_clip": 5.0,
    "alpha_lr": 3e-4,
    "alpha_weight_decay": 1e-3,
    "batch_size": 128,
    "num_workers": 4,
    "init_channels": 16,
    "print_step": 50,
    "num_nodes": 4,
    "stem_multiplier": 3,
}


def _batch_size(value: str) -> str | None:
    return None if value == "None" else check_int(1)(value)


def primitives(nas: NasSpace) -> list[str]:
    """The search space as Katib's DARTS trial reads it: one primitive per filter size."""
    out: list[str] = []
    for operation in nas.operations:
        if not operation.parameters:
            out.append(operation.operation_type)
            continue
        for size in operation.parameters[0].values:
            out.append(f"{operation.operation_type}_{size}x{size}")
    return out


class DARTS(Algorithm):
    """Hands the DARTS search trial its settings and search space, as Katib does."""

    name = "darts"
    nas = True
    reports_text = True
    supports_warm_start = False
    #: Every trial asked for gets the same assignments: a new, independent search.
    continues_trials = True
    #: The trial parameters it assigns (what ``trialParameters[].reference`` may name).
    parameter_names = (ALGORITHM_SETTINGS, SEARCH_SPACE, NUM_LAYERS)
    _floats = ("w_lr", "w_lr_min", "w_momentum", "w_weight_decay", "w_grad_clip", "alpha_lr",
               "alpha_weight_decay")
    settings_spec = {
        "num_epochs": SettingSpec("50", "epochs of the search", check_int(1)),
        "w_lr": SettingSpec("0.025", "weights' learning rate", check_float(0.0)),
        "w_lr_min": SettingSpec("0.001", "weights' final learning rate (cosine schedule)",
                                check_float(0.0)),
        "w_momentum": SettingSpec("0.9", "weights' SGD momentum", check_float(0.0)),
        "w_weight_decay": SettingSpec("0.0003", "weights' weight decay", check_float(0.0)),
        "w_grad_clip": SettingSpec("5.0", "weights' gradient norm clip", check_float(0.0)),
        "alpha_lr": SettingSpec("0.0003", "architecture weights' Adam learning rate",
                                check_float(0.0)),
        "alpha_weight_decay": SettingSpec("0.001", "architecture weights' weight decay",
                                          check_float(0.0)),
        "batch_size": SettingSpec("128", "batch size (None: the trial's own)", _batch_size),
        "num_workers": SettingSpec("4", "data loader workers", check_int(0)),
        "init_channels": SettingSpec("16", "channels of the first cell", check_int(1)),
        "print_step": SettingSpec("50", "print progress every this many steps", check_int(1)),
        "num_nodes": SettingSpec("4", "intermediate nodes per cell", check_int(1)),
        "stem_multiplier": SettingSpec("3", "stem channels / init_channels", check_int(1)),
    }

    @classmethod
    def resolve_settings(cls, settings: Mapping[str, str]) -> dict[str, str]:
        # Katib writes its defaults as numbers (DEFAULTS) and the experiment's values as
        # strings: only the latter are settings here (see assignments()).
        return dict(settings)

    @classmethod
    def validate_space(
        cls,
        space: SearchSpace,
        *,
        settings: Mapping[str, str],
        max_trial_count: int | None,
        parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        nas = space.nas
        if nas is None:
            return [(None, "searches neural architectures: it needs spec.nasConfig")]
        problems: list[tuple[str | None, str]] = []
        for i, operation in enumerate(nas.operations):
            params = operation.parameters
            if len(params) > 1:
                problems.append(
                    (f"operations[{i}].parameters",
                     "darts takes one parameter per operation (its filter sizes), "
                     f"got {len(params)}")
                )
            elif params and params[0].type not in (CATEGORICAL, DISCRETE):
                problems.append(
                    (f"operations[{i}].parameters[0].parameterType",
                     "darts reads an operation's filter sizes from a categorical or discrete "
                     f"list, got {params[0].type}")
                )
        return problems

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if space.nas is None:
            raise ValueError("darts needs a neural architecture search space (spec.nasConfig)")
        self.nas_space: NasSpace = space.nas

    def assignments(self) -> dict[str, str]:
        """The search trial's parameters, exactly as Katib's DARTS service writes them."""
        settings: dict[str, Any] = dict(DEFAULTS)
        for key, value in self.settings.items():
            settings[key] = None if value == "None" else value
        return {
            ALGORITHM_SETTINGS: katib_json(settings),
            SEARCH_SPACE: katib_json(primitives(self.nas_space)),
            NUM_LAYERS: str(self.nas_space.num_layers),
        }

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        """Nothing to learn: the search happens inside the trial."""

    def suggest(self, count: int) -> list[dict[str, str]]:
        return [self.assignments() for _ in range(count)]
