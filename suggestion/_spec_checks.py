"""The algorithms' own checks of an experiment spec: names, settings, search spaces.

The spec validation (``katib.spec``) asks these through its
:class:`~katib.spec.AlgorithmChecks` interface, found via the ``katib.spec`` entry point, so
that the spec does not depend on the algorithms. Each problem is reported at its field path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from katib.errors import FieldError
from katib.spec import AlgorithmSpec, ExperimentSpec
from suggestion._base import Algorithm, SettingSpec
from suggestion._registry import UnknownAlgorithmError, algorithm_names, get_algorithm
from suggestion._space import SearchSpace
from suggestion.early_stopping import get_early_stopping

#: Neural architecture search algorithms: valid only with ``spec.nasConfig``, which in turn
#: needs one of them.
NAS_ALGORITHMS = frozenset({"enas", "darts"})


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldError(path, message))


class SpecChecks:
    """:class:`~katib.spec.AlgorithmChecks` over the registered algorithms."""

    def check_algorithm(self, spec: ExperimentSpec, parameters_valid: bool) -> list[FieldError]:
        errors = _Errors()
        space = None
        if parameters_valid:
            nas = spec.nas_config if not spec.parameters else None
            space = SearchSpace.from_spec(spec.parameters, nas_config=nas)
        _check_algorithm(spec, space, errors)
        return errors.items

    def check_early_stopping(self, early: AlgorithmSpec) -> list[FieldError]:
        errors = _Errors()
        _check_early_stopping(early, errors)
        return errors.items


SPEC_CHECKS = SpecChecks()


def _one_of(words: Sequence[str]) -> str:
    """``a, b or c``, the way Katib's messages list allowed values."""
    words = list(words)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _check_algorithm(spec: ExperimentSpec, space: SearchSpace | None, errors: _Errors) -> None:
    path = "spec.algorithm"
    algorithm = spec.algorithm
    if algorithm is None:
        errors.add(path, "must be specified")
        return
    name = algorithm.algorithm_name
    if not name:
        errors.add(f"{path}.algorithmName", "must be specified")
        return
    is_nas = spec.nas_config is not None
    if name in NAS_ALGORITHMS:
        if not is_nas:
            errors.add(
                f"{path}.algorithmName",
                f"algorithm {name} searches neural architectures and needs spec.nasConfig",
            )
            _check_duplicate_settings(algorithm, path, errors)
            return
        _check_nas_algorithm(get_algorithm(name), spec, space, errors)
        return
    if is_nas:
        errors.add(
            f"{path}.algorithmName",
            f"spec.nasConfig needs a neural architecture search algorithm"
            f" ({_one_of(sorted(NAS_ALGORITHMS))}), got {name!r}",
        )
        return
    try:
        cls = get_algorithm(name)
    except UnknownAlgorithmError as e:
        known = algorithm_names()
        if name in known:  # registered, but the plugin is broken: say why
            errors.add(f"{path}.algorithmName", str(e))
        else:
            nas = ", ".join(sorted(NAS_ALGORITHMS))
            errors.add(
                f"{path}.algorithmName",
                f"unknown algorithm {name!r} (known: "
                f"{', '.join(n for n in known if n not in NAS_ALGORITHMS)};"
                f" with spec.nasConfig: {nas})",
            )
        return
    if spec.objective is not None and spec.objective.is_multi_objective and not (
        cls.multi_objective
    ):
        able = ", ".join(n for n in algorithm_names() if _multi_objective(n))
        errors.add(
            f"{path}.algorithmName",
            f"algorithm {name} optimizes one objective; spec.objective.additionalObjectives"
            f" needs one of: {able}",
        )
    if spec.warm_start is not None and not cls.supports_warm_start:
        errors.add(
            "spec.warmStart",
            f"algorithm {name} cannot be warm-started: it only learns from trials it ran itself",
        )
    settings_ok = _check_settings(
        algorithm, path, f"algorithm {name}", cls.settings_spec, cls.validate_settings, errors
    )
    if settings_ok and space is not None:
        _check_space_for(cls, name, algorithm, spec, space, errors)


def _check_nas_algorithm(
    cls: type[Algorithm], spec: ExperimentSpec, space: SearchSpace | None, errors: _Errors
) -> None:
    """A neural architecture search: settings, ``spec.nasConfig``, what the trial reads."""
    algorithm = spec.algorithm
    assert algorithm is not None
    name = cls.name
    path = "spec.algorithm"
    objective = spec.objective
    if objective is not None and objective.is_multi_objective:
        errors.add(
            f"{path}.algorithmName",
            f"algorithm {name} optimizes one objective; it cannot be used with"
            " spec.objective.additionalObjectives",
        )
    if cls.reports_text:
        why = f"algorithm {name}'s trials report their result as text (a genotype)"
        if objective is not None and objective.goal is not None:
            errors.add("spec.objective.goal", f"{why}, which no goal can be compared with")
        if spec.early_stopping is not None:
            errors.add("spec.earlyStopping", f"{why}, which no early-stopping rule can judge")
    settings_ok = _check_settings(
        algorithm, path, f"algorithm {name}", cls.settings_spec, cls.validate_settings, errors
    )
    if settings_ok and space is not None:
        try:
            problems = cls.validate_space(
                space,
                settings=cls.resolve_settings(algorithm.settings_dict()),
                max_trial_count=spec.max_trial_count,
                parallel_trial_count=spec.parallel_trial_count,
            )
        except Exception as e:  # plugin code must not turn a check into a crash
            problems = [(None, f"rejected spec.nasConfig: {e}")]
        for where, message in problems:
            field = "spec.nasConfig" if where is None else f"spec.nasConfig.{where}"
            errors.add(field, f"algorithm {name}: {message}")
    _check_nas_references(cls, spec, errors)


def _check_nas_references(cls: type[Algorithm], spec: ExperimentSpec, errors: _Errors) -> None:
    """Each trial parameter must refer to what the NAS algorithm assigns (or trial metadata):
    Katib leaves such a mistake to fail every trial."""
    assigned = tuple(getattr(cls, "parameter_names", ()) or ())
    template = spec.trial_template
    if not assigned or template is None:
        return
    for i, parameter in enumerate(template.trial_parameters):
        reference = parameter.reference
        if not reference or reference.startswith("${") or reference in assigned:
            continue
        errors.add(
            f"spec.trialTemplate.trialParameters[{i}].reference",
            f"algorithm {cls.name} assigns {_one_of(list(assigned))}, not {reference!r}",
        )


def _multi_objective(name: str) -> bool:
    try:
        return get_algorithm(name).multi_objective
    except UnknownAlgorithmError:
        return False


def _check_space_for(
    cls: type[Algorithm],
    name: str,
    algorithm: AlgorithmSpec,
    spec: ExperimentSpec,
    space: SearchSpace,
    errors: _Errors,
) -> None:
    try:
        problems = cls.validate_space(
            space,
            settings=cls.resolve_settings(algorithm.settings_dict()),
            max_trial_count=spec.max_trial_count,
            parallel_trial_count=spec.parallel_trial_count,
        )
    except Exception as e:  # plugin code must not turn a check into a crash
        errors.add("spec.algorithm.algorithmName", f"algorithm {name} rejected the space: {e}")
        return
    indexes = {p.name: i for i, p in enumerate(spec.parameters)}
    for param, message in problems:
        if param is None or param not in indexes:
            errors.add("spec.algorithm.algorithmName", f"algorithm {name}: {message}")
        else:
            errors.add(
                f"spec.parameters[{indexes[param]}]",
                f"algorithm {name} cannot use parameter {param!r}: {message}",
            )


def _check_early_stopping(early: AlgorithmSpec | None, errors: _Errors) -> None:
    if early is None:
        return
    path = "spec.earlyStopping"
    name = early.algorithm_name
    if not name:
        errors.add(f"{path}.algorithmName", "must be specified")
        return
    try:
        cls = get_early_stopping(name)
    except UnknownAlgorithmError as e:
        errors.add(f"{path}.algorithmName", str(e))
        return
    table = cls.settings_spec
    validate = cls.validate_settings

    _check_settings(early, path, f"early stopping {name}", table, validate, errors)


def _check_duplicate_settings(algorithm: AlgorithmSpec, path: str, errors: _Errors) -> bool:
    seen: set[str] = set()
    ok = True
    for i, setting in enumerate(algorithm.algorithm_settings):
        if setting.name in seen:
            errors.add(f"{path}.algorithmSettings[{i}].name", f"duplicate setting {setting.name!r}")
            ok = False
        seen.add(setting.name)
    return ok


def _check_settings(
    algorithm: AlgorithmSpec,
    path: str,
    owner: str,
    known: Mapping[str, SettingSpec],
    validate: Callable[[Mapping[str, str]], list[tuple[str, str]]],
    errors: _Errors,
) -> bool:
    """Report setting problems at the setting's path; True when the settings are valid."""
    ok = _check_duplicate_settings(algorithm, path, errors)
    index: dict[str, int] = {}
    for i, setting in enumerate(algorithm.algorithm_settings):
        index.setdefault(setting.name, i)
    try:
        problems = validate(algorithm.settings_dict())
    except Exception as e:  # plugin code must not turn a check into a crash
        errors.add(f"{path}.algorithmSettings", f"{owner} could not check its settings: {e}")
        return False
    for key, message in problems:
        where = f"{path}.algorithmSettings[{index.get(key, 0)}]"
        field = "value" if key in known else "name"
        errors.add(f"{where}.{field}", f"{owner} setting {key!r}: {message}")
        ok = False
    return ok
