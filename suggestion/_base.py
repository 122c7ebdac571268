"""The suggestion algorithm contract.

An algorithm is a function of the trial history plus its own state (the designer pattern):

1. The controller builds it with :meth:`Algorithm.create` from the search space, the
   objective direction and the user's settings (already validated by
   :meth:`Algorithm.validate_settings`).
2. If state was stored, the controller calls :meth:`load_state` with it.
3. The controller calls :meth:`update` with every finished trial it has not passed before (on
   start: the whole history, once; then only the newly finished ones) and with the trials
   still running. Implementations must tolerate seeing a finished trial twice (identified by
   name) and must count it once. On start the history may begin with trials of other
   experiments (``spec.warmStart``, unless :attr:`supports_warm_start` is False): finished
   trials the algorithm never suggested, inside the search space.
4. :meth:`suggest` returns up to ``count`` new assignments that differ from the running
   trials' where the space allows. An empty list means "nothing now" (hyperband waits for a
   rung to finish): the controller asks again whenever a trial finishes, and ends the
   experiment only when ``suggest`` returns [] while no trial is running.
5. For each suggestion the controller asks :meth:`labels_for` and puts those labels on the
   trial it creates; algorithms see them again in :attr:`TrialRecord.labels`. When a trial's
   labels name a parent (``pbt.suggestion.katib.kubeflow.org/parent``), the controller copies
   the parent's checkpoint folder into the new trial's folder before starting it.
6. After each ``suggest`` the controller stores :meth:`dump_state` (JSON-serialisable).

The state holds what cannot be rebuilt from the history (random generator positions, grid
cursors, a trained controller's weights); the history is fed again on every start. An
algorithm never opens a database, a file or a socket. It is not thread-safe: one controller
drives one instance.

Neural architecture search algorithms (:attr:`Algorithm.nas`) get a space without
parameters whose :attr:`SearchSpace.nas` is ``spec.nasConfig``; their assignments are the
trial parameters Katib's NAS trials read (``architecture``, ``nn_config``, ...), and every
rule above holds for them too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from suggestion._space import SearchSpace

# Trial states an algorithm can see; mirrors katib's trial states.
SUCCEEDED = "Succeeded"
FAILED = "Failed"
EARLY_STOPPED = "EarlyStopped"
METRICS_UNAVAILABLE = "MetricsUnavailable"
KILLED = "Killed"
RUNNING = "Running"


@dataclass(frozen=True)
class TrialRecord:
    """What an algorithm knows of one trial.

    ``objective`` is the objective metric already reduced by its metric strategy, in the
    user's direction (not negated); None when the trial produced no objective value.
    ``values``: in an experiment with several objectives, every objective's value reduced the
    same way, in the order of :attr:`Algorithm.directions` (``objective`` first); None when
    any of them is missing or the experiment has one objective.
    ``labels`` are the labels the trial was created with (see :meth:`Algorithm.labels_for`).
    """

    name: str
    assignments: Mapping[str, str]
    state: str
    objective: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    values: tuple[float, ...] | None = None

    @property
    def is_finished(self) -> bool:
        return self.state not in (RUNNING, "Created", "Pending")


@dataclass(frozen=True)
class SettingSpec:
    """One algorithm setting: its default (as Katib writes it, a string) and a checker.

    ``check`` returns an error message for a bad value, or None.
    """

    default: str | None
    description: str = ""
    check: Any = None  # Callable[[str], str | None]; typed loosely so dataclass stays frozen


class Algorithm(ABC):
    """Base class of every suggestion algorithm; see the module docstring for the contract."""

    #: The name users write in ``algorithm.algorithmName``.
    name: ClassVar[str] = ""
    #: Known settings with defaults; anything else is rejected by name.
    settings_spec: ClassVar[dict[str, SettingSpec]] = {}
    #: Whether other experiments' finished trials may be fed as history (``spec.warmStart``):
    #: False for schedules that must see only their own trials (hyperband's brackets, PBT's
    #: populations).
    supports_warm_start: ClassVar[bool] = True
    #: Whether it optimizes several objectives at once (``objective.additionalObjectives``).
    #: Algorithms that ignore the objective (random, grid, sobol) do so trivially.
    multi_objective: ClassVar[bool] = False
    #: Whether it searches neural architectures (``spec.nasConfig``, :attr:`SearchSpace.nas`)
    #: instead of parameters. Only such algorithms may be used with ``spec.nasConfig``.
    nas: ClassVar[bool] = False
    #: Whether its trials report the objective as text rather than a number (DARTS prints
    #: its genotype): such values are then stored as text, as Katib stores them, and the
    #: experiment may not set a goal or early stopping.
    reports_text: ClassVar[bool] = False

    def __init__(
        self,
        space: SearchSpace,
        *,
        maximize: bool,
        settings: Mapping[str, str] | None = None,
        max_trial_count: int | None = None,
        parallel_trial_count: int = 1,
        directions: Sequence[bool] | None = None,
    ) -> None:
        """Args:
            space: The search space.
            maximize: Whether the objective is maximized.
            settings: The user's settings (validated).
            max_trial_count: The experiment's budget, if any.
            parallel_trial_count: Trials that run at once.
            directions: With several objectives, whether each is maximized, the objective
                first (``directions[0] == maximize``); None for one objective.
        """
        self.space = space
        self.maximize = maximize
        self.settings = self.resolve_settings(settings or {})
        self.max_trial_count = max_trial_count
        self.parallel_trial_count = parallel_trial_count
        self.directions: tuple[bool, ...] = (
            (maximize,) if directions is None else tuple(bool(d) for d in directions)
        )
        if self.directions[0] != maximize:
            raise ValueError("directions[0] must be the objective's direction (maximize)")

    @property
    def objective_count(self) -> int:
        """How many objectives the experiment optimizes."""
        return len(self.directions)

    def objective_values(self, trial: TrialRecord) -> tuple[float, ...] | None:
        """The trial's value of every objective (user's direction), None if any is missing."""
        if self.objective_count == 1:
            return None if trial.objective is None else (trial.objective,)
        if trial.values is None or len(trial.values) != self.objective_count:
            return None
        return tuple(trial.values)

    @classmethod
    def resolve_settings(cls, settings: Mapping[str, str]) -> dict[str, str]:
        """The user's settings over the defaults (None defaults stay unset)."""
        out = {k: s.default for k, s in cls.settings_spec.items() if s.default is not None}
        out.update(settings)
        return out

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> list[tuple[str, str]]:
        """Problems with the settings as ``(setting name, message)`` pairs."""
        return settings_problems(cls.name, cls.settings_spec, settings)

    @classmethod
    def validate_space(
        cls,
        space: SearchSpace,
        *,
        settings: Mapping[str, str],
        max_trial_count: int | None,
        parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        """Problems with using this algorithm on ``space``: ``(parameter name or None, msg)``.

        For a neural architecture search (``space.nas`` set) the first element is a path
        below ``spec.nasConfig`` instead (``graphConfig.inputSizes``,
        ``operations[1].parameters[0]``), or None.
        """
        return []

    @abstractmethod
    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        """Take in finished trials (new or seen before) and the currently active ones."""

    @abstractmethod
    def suggest(self, count: int) -> list[dict[str, str]]:
        """Up to ``count`` new assignments, parameter name → formatted value string."""

    def labels_for(self, assignments: Mapping[str, str]) -> dict[str, str]:
        """Labels for the trial created from ``assignments`` (PBT names its parent here).

        When the labels name a parent (``pbt.suggestion.katib.kubeflow.org/parent``), the
        controller copies the parent's checkpoint folder into the new trial's folder before
        starting it.
        """
        return {}

    def dump_state(self) -> dict[str, Any]:
        """JSON-serialisable state that history alone cannot rebuild."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`dump_state` returned."""


def settings_problems(
    owner: str, known: Mapping[str, SettingSpec], settings: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``(setting, message)`` for each unknown setting or value its checker rejects."""
    problems: list[tuple[str, str]] = []
    for key, value in settings.items():
        spec = known.get(key)
        if spec is None:
            names = ", ".join(sorted(known)) or "none"
            problems.append((key, f"unknown setting for {owner} (known: {names})"))
        elif spec.check is not None and (message := spec.check(value)):
            problems.append((key, message))
    return problems


def check_int(minimum: int | None = None, maximum: int | None = None) -> Any:
    """A setting checker for integers in ``[minimum, maximum]``."""

    def check(value: str) -> str | None:
        try:
            number = int(value)
        except (TypeError, ValueError):
            return f"must be an integer, got {value!r}"
        if minimum is not None and number < minimum:
            return f"must be >= {minimum}, got {number}"
        if maximum is not None and number > maximum:
            return f"must be <= {maximum}, got {number}"
        return None

    return check


def check_float(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive_min: bool = False,
) -> Any:
    """A setting checker for numbers in a range."""

    def check(value: str) -> str | None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"must be a number, got {value!r}"
        if number != number:
            return "must be a number, got NaN"
        if minimum is not None:
            if exclusive_min and number <= minimum:
                return f"must be > {minimum}, got {value}"
            if not exclusive_min and number < minimum:
                return f"must be >= {minimum}, got {value}"
        if maximum is not None and number > maximum:
            return f"must be <= {maximum}, got {value}"
        return None

    return check


def check_choice(*choices: str) -> Any:
    """A setting checker for one of fixed words."""

    def check(value: str) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(choices)}, got {value!r}"
        return None

    return check
