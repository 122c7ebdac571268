"""Rendering one trial's workload from the experiment's trial template.

This module owns Katib's ``${trialParameters.<name>}`` substitution: the placeholder and
trial-metadata reference grammar (``${trialSpec.Name}``, ``${trialSpec.Labels[key]}``, ...),
rendering a template with a trial's parameter values, and finding the primary container in a
rendered workload. Validation reuses the grammar from here so that what validates is exactly
what renders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from katib.errors import KatibError
from katib.spec._models import Experiment

#: A placeholder in a trial template; group 1 is the trial parameter's name.
PLACEHOLDER_RE = re.compile(r"\$\{trialParameters\.([^{}]*)\}")

#: Trial metadata a trial parameter can reference with ``${trialSpec.<key>}``.
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion")
#: Trial metadata maps a trial parameter can reference with ``${trialSpec.<key>[name]}``.
META_MAP_KEYS = ("Labels", "Annotations")

_META_RE = re.compile(r"^\$\{trialSpec\.(" + "|".join(META_KEYS) + r")\}$")
_MAP_NOUNS = {"Labels": "label", "Annotations": "annotation"}
_META_MAP_RE = re.compile(r"^\$\{trialSpec\.(" + "|".join(META_MAP_KEYS) + r")\[([^\[\]]+)\]\}$")


class TemplateError(KatibError):
    """The trial template cannot be rendered for this trial; the user has to fix the input."""


class ConfigMapTemplateError(TemplateError):
    """The trial template lives in a Kubernetes ConfigMap, which only a cluster can provide."""


class PrimaryContainerNotFoundError(TemplateError):
    """The workload has no container with the trial template's ``primaryContainerName``."""


def parse_meta_reference(reference: str) -> tuple[str, str | None] | None:
    """Parse a trial-metadata reference such as ``${trialSpec.Labels[team]}``.

    Args:
        reference: The ``reference`` of a trial parameter.

    Returns:
        ``(key, None)`` for Name/Namespace/Kind/APIVersion, ``(key, map key)`` for
        Labels/Annotations, or None when ``reference`` is not a metadata reference (then it
        names a search-space parameter).
    """
    match = _META_RE.match(reference)
    if match:
        return match.group(1), None
    match = _META_MAP_RE.match(reference)
    if match:
        return match.group(1), match.group(2)
    return None


def iter_strings(value: Any) -> Iterator[str]:
    """Every string value (not key) inside a JSON-like structure, in document order."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))


def render_trial_spec(
    exp: Experiment,
    assignments: Mapping[str, str],
    *,
    trial_name: str,
    namespace: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The trial's workload: the trial template with every placeholder substituted.

    Each ``${trialParameters.<name>}`` inside a string (keys are left alone) is replaced by
    the value its trial parameter references: a search-space parameter's assigned value, or
    trial metadata. Values are inserted as plain text, so ``"--lr=${...}"`` becomes
    ``"--lr=0.01"`` and a lone placeholder stays a string. The result's ``metadata.name`` and
    ``metadata.namespace`` are the trial's.

    Args:
        exp: A validated experiment whose template is an inline ``trialSpec``.
        assignments: Search-space parameter name to the value string for this trial.
        trial_name: Substituted for ``${trialSpec.Name}``; also the workload's name.
        namespace: Substituted for ``${trialSpec.Namespace}``; also the workload's namespace.
        labels: Labels for ``${trialSpec.Labels[key]}``, over the template's own
            ``metadata.labels`` (which Katib copies onto the trial's workload).
        annotations: The same for ``${trialSpec.Annotations[key]}``.

    Returns:
        A new manifest; the experiment is not modified.

    Raises:
        ConfigMapTemplateError: The template is a ConfigMap reference.
        TemplateError: A placeholder is undeclared, or its value is missing.
    """
    template = exp.spec.trial_template
    if template is None:
        raise TemplateError("the experiment has no spec.trialTemplate")
    spec = template.trial_spec
    if spec is None:
        if template.config_map is not None:
            cm = template.config_map
            raise ConfigMapTemplateError(
                f"spec.trialTemplate.configMap ({cm.config_map_namespace}/{cm.config_map_name},"
                f" key {cm.template_path}) can only be read from a Kubernetes cluster; to run"
                " the experiment locally, inline the template as spec.trialTemplate.trialSpec"
            )
        raise TemplateError("spec.trialTemplate has neither trialSpec nor configMap")

    meta = spec.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    maps: dict[str, dict[str, str]] = {
        "Labels": {**_str_map(meta.get("labels")), **(labels or {})},
        "Annotations": {**_str_map(meta.get("annotations")), **(annotations or {})},
    }
    scalars = {
        "Name": trial_name,
        "Namespace": namespace,
        "Kind": str(spec.get("kind", "")),
        "APIVersion": str(spec.get("apiVersion", "")),
    }
    references = {p.name: p.reference for p in template.trial_parameters if p.name}

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in references:
            raise TemplateError(
                f"placeholder {match.group(0)} is not declared in"
                " spec.trialTemplate.trialParameters"
            )
        reference = references[name] or ""
        meta_ref = parse_meta_reference(reference)
        if meta_ref is None:
            if reference not in assignments:
                raise TemplateError(
                    f"no value for parameter {reference!r} (trial parameter {name!r})"
                )
            return str(assignments[reference])
        key, map_key = meta_ref
        if map_key is None:
            return scalars[key]
        if map_key not in maps[key]:
            raise TemplateError(
                f"trial parameter {name!r} references {_MAP_NOUNS[key]} {map_key!r},"
                " which the trial does not have"
            )
        return maps[key][map_key]

    rendered = _map_strings(spec, lambda text: PLACEHOLDER_RE.sub(value_of, text))
    if not isinstance(rendered, dict):  # pragma: no cover - a dict maps to a dict
        raise TemplateError("spec.trialTemplate.trialSpec is not a mapping")
    old_meta = rendered.get("metadata")
    new_meta = {**(old_meta if isinstance(old_meta, dict) else {})}
    new_meta["name"] = trial_name
    new_meta["namespace"] = namespace
    if "metadata" in rendered:
        rendered["metadata"] = new_meta
        return rendered
    # Keep the usual manifest order (apiVersion, kind, metadata, spec) for readable output.
    ordered: dict[str, Any] = {}
    for key in ("apiVersion", "kind"):
        if key in rendered:
            ordered[key] = rendered.pop(key)
    ordered["metadata"] = new_meta
    ordered.update(rendered)
    return ordered


def iter_pod_containers(manifest: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container of every pod template in a workload, in document order.

    A pod template is a ``template`` mapping whose ``spec`` has a ``containers`` list: a
    batch Job's ``spec.template`` and each replica's template in Kubeflow training jobs
    (``spec.pytorchReplicaSpecs.Master.template``) alike.
    """
    stack: list[tuple[Any, Any]] = [(None, manifest)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, Mapping):
            if key == "template":
                pod_spec = item.get("spec")
                containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
                if isinstance(containers, list):
                    # Pod templates do not nest: nothing below one is searched.
                    yield from (c for c in containers if isinstance(c, dict))
                    continue
            stack.extend(reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((None, v) for v in reversed(item))


def primary_container(
    source: Experiment | Mapping[str, Any], name: str | None = None
) -> dict[str, Any]:
    """The primary container of a workload.

    Args:
        source: A rendered workload manifest, or an experiment (its trial template is
            searched).
        name: The container's name; defaults to the experiment's ``primaryContainerName``.

    Returns:
        The container mapping itself (not a copy), so that changes to it change the manifest.

    Raises:
        PrimaryContainerNotFoundError: No pod template has a container of that name.
        TemplateError: An experiment without an inline trial template, or no name given.
    """
    if isinstance(source, Experiment):
        template = source.spec.trial_template
        if template is None or template.trial_spec is None:
            raise TemplateError("the experiment has no inline spec.trialTemplate.trialSpec")
        manifest: Mapping[str, Any] = template.trial_spec
        name = name or template.primary_container_name
    else:
        manifest = source
    if not name:
        raise TemplateError("no primary container name given")
    found: list[str] = []
    for container in iter_pod_containers(manifest):
        if container.get("name") == name:
            return container
        found.append(str(container.get("name")))
    kind = manifest.get("kind", "workload")
    listed = ", ".join(found) if found else "none"
    raise PrimaryContainerNotFoundError(
        f"container {name!r} not found in the pod templates of the {kind} (containers: {listed})"
    )


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """A copy of a JSON-like structure with ``change`` applied to every string value."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {k: _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, change) for v in value]
    return value
