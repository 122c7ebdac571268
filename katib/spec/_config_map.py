"""Trial templates kept in a ConfigMap (``spec.trialTemplate.configMap``).

Katib reads the template from the ConfigMap when it creates a trial. Only a cluster has the
ConfigMap, so whoever can read it (a Kubernetes launcher) hands its text here, and the
experiment is checked again with the template inline, as if it had been written as
``trialSpec``: every placeholder declared, every trial parameter used, a known kind's
conditions defaulted.
"""

from __future__ import annotations

from katib.errors import FieldError, InvalidExperimentError
from katib.spec._models import Experiment
from katib.spec._validation import validate_experiment

_FIELD = "spec.trialTemplate.configMap"


def inline_config_map(exp: Experiment, text: str) -> Experiment:
    """A copy of ``exp`` whose trial template is ``text`` (YAML) inline as ``trialSpec``.

    Args:
        exp: A validated experiment with a ``trialTemplate.configMap``.
        text: The ConfigMap's value under ``templatePath``.

    Raises:
        InvalidExperimentError: the text is not a YAML mapping, or the experiment is not
            valid with it; paths name ``spec.trialTemplate.configMap``.
    """
    template = exp.spec.trial_template
    assert template is not None and template.config_map is not None
    cm = template.config_map
    where = f"{cm.config_map_namespace}/{cm.config_map_name}, key {cm.template_path}"
    import yaml  # here: reading stored experiments (every `katib get`) never needs it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidExperimentError(
            [FieldError(_FIELD, f"the template in ConfigMap {where} is not valid YAML: {e}")]
        ) from None
    if not isinstance(data, dict):
        raise InvalidExperimentError(
            [FieldError(_FIELD, f"the template in ConfigMap {where} is not a YAML mapping")]
        )
    inline = exp.model_copy(deep=True)
    inline_template = inline.spec.trial_template
    assert inline_template is not None
    inline_template.trial_spec = data
    inline_template.config_map = None
    inline = inline.with_defaults()
    errors = validate_experiment(inline)
    if errors:
        raise InvalidExperimentError(
            [
                FieldError(
                    e.path.replace("spec.trialTemplate.trialSpec", f"{_FIELD} ({where})"),
                    e.message,
                )
                for e in errors
            ]
        )
    return inline
