"""Rendering a trial's workload: parameter and metadata substitution, primary containers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from katib.errors import KatibError
from katib.spec import (
    ConfigMapTemplateError,
    PrimaryContainerNotFoundError,
    TemplateError,
    parse_experiment,
    primary_container,
    render_trial_spec,
)
from katib.spec._substitution import parse_meta_reference

Doc = dict[str, Any]
ASSIGNMENTS = {"lr": "0.01", "layers": "3", "optimizer": "adam"}


def render(doc: Doc, **kwargs: Any) -> dict[str, Any]:
    exp = parse_experiment(doc)
    options: dict[str, Any] = {"trial_name": "baseline-x7k2p", "namespace": "team-a"}
    options.update(kwargs)
    return render_trial_spec(exp, ASSIGNMENTS, **options)


def command_of(manifest: dict[str, Any]) -> list[str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return list(container["command"])


def test_parameters_are_substituted(baseline_doc: Doc) -> None:
    manifest = render(baseline_doc)
    assert command_of(manifest) == [
        "python3",
        "train.py",
        "--lr=0.01",
        "--layers=3",
        "--optimizer=adam",
    ]


def test_the_trial_gets_its_name_and_namespace(baseline_doc: Doc) -> None:
    manifest = render(baseline_doc)
    assert list(manifest)[:3] == ["apiVersion", "kind", "metadata"]
    assert manifest["metadata"] == {"name": "baseline-x7k2p", "namespace": "team-a"}


def test_template_metadata_is_kept(baseline_doc: Doc) -> None:
    trial_spec = baseline_doc["spec"]["trialTemplate"]["trialSpec"]
    trial_spec["metadata"] = {"labels": {"team": "ml"}}
    manifest = render(baseline_doc)
    assert manifest["metadata"] == {
        "labels": {"team": "ml"},
        "name": "baseline-x7k2p",
        "namespace": "team-a",
    }


def test_the_experiment_is_not_modified(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    before = copy.deepcopy(exp.spec.trial_template.trial_spec if exp.spec.trial_template else None)
    render_trial_spec(exp, ASSIGNMENTS, trial_name="t", namespace="n")
    assert exp.spec.trial_template is not None
    assert exp.spec.trial_template.trial_spec == before


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("${trialSpec.Name}", "baseline-x7k2p"),
        ("${trialSpec.Namespace}", "team-a"),
        ("${trialSpec.Kind}", "Job"),
        ("${trialSpec.APIVersion}", "batch/v1"),
        ("${trialSpec.Labels[katib.kubeflow.org/experiment]}", "baseline"),
        ("${trialSpec.Annotations[owner]}", "ana"),
    ],
)
def test_each_metadata_reference(baseline_doc: Doc, reference: str, expected: str) -> None:
    baseline_doc["spec"]["trialTemplate"]["trialParameters"][3]["reference"] = reference
    manifest = render(
        baseline_doc,
        labels={"katib.kubeflow.org/experiment": "baseline"},
        annotations={"owner": "ana"},
    )
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "TRIAL_NAME", "value": expected}]


def test_labels_fall_back_to_the_templates_own(baseline_doc: Doc) -> None:
    # Katib's trial-metadata-substitution example reads labels set in the template itself.
    trial_spec = baseline_doc["spec"]["trialTemplate"]["trialSpec"]
    trial_spec["metadata"] = {"labels": {"custom-key": "custom-label", "over": "template"}}
    baseline_doc["spec"]["trialTemplate"]["trialParameters"][3]["reference"] = (
        "${trialSpec.Labels[custom-key]}"
    )
    container = trial_spec["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "OTHER", "value": "${trialParameters.over}"})
    baseline_doc["spec"]["trialTemplate"]["trialParameters"].append(
        {"name": "over", "reference": "${trialSpec.Labels[over]}"}
    )
    manifest = render(baseline_doc, labels={"over": "given"})
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "TRIAL_NAME", "value": "custom-label"},
        {"name": "OTHER", "value": "given"},
    ]


def test_values_are_inserted_as_plain_text(baseline_doc: Doc) -> None:
    trial_spec = baseline_doc["spec"]["trialTemplate"]["trialSpec"]
    trial_spec["spec"]["parallelism"] = "${trialParameters.numberLayers}"
    trial_spec["spec"]["${trialParameters.optimizer}"] = "keys are left alone"
    manifest = render(baseline_doc)
    assert manifest["spec"]["parallelism"] == "3"
    assert manifest["spec"]["${trialParameters.optimizer}"] == "keys are left alone"


def test_substituted_values_are_not_substituted_again(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    assignments = {**ASSIGNMENTS, "optimizer": "${trialParameters.learningRate}"}
    manifest = render_trial_spec(exp, assignments, trial_name="t", namespace="n")
    assert command_of(manifest)[-1] == "--optimizer=${trialParameters.learningRate}"


def test_non_string_values_survive(baseline_doc: Doc) -> None:
    trial_spec = baseline_doc["spec"]["trialTemplate"]["trialSpec"]
    trial_spec["spec"].update(backoffLimit=0, suspend=False, ttl=None, ratio=0.5)
    manifest = render(baseline_doc)
    assert [manifest["spec"][k] for k in ("backoffLimit", "suspend", "ttl", "ratio")] == [
        0,
        False,
        None,
        0.5,
    ]


def test_a_missing_assignment_is_a_template_error(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    with pytest.raises(TemplateError, match="no value for parameter 'layers'"):
        render_trial_spec(exp, {"lr": "0.1", "optimizer": "sgd"}, trial_name="t", namespace="n")


def test_a_missing_label_is_a_template_error(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["trialTemplate"]["trialParameters"][3]["reference"] = (
        "${trialSpec.Labels[absent]}"
    )
    with pytest.raises(TemplateError, match="references label 'absent'"):
        render(baseline_doc)


def test_an_undeclared_placeholder_is_a_template_error(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    assert exp.spec.trial_template is not None and exp.spec.trial_template.trial_spec is not None
    exp.spec.trial_template.trial_spec["spec"]["x"] = "${trialParameters.nope}"
    with pytest.raises(TemplateError, match=r"\$\{trialParameters.nope\} is not declared"):
        render_trial_spec(exp, ASSIGNMENTS, trial_name="t", namespace="n")


def test_config_map_templates_need_a_cluster(baseline_doc: Doc) -> None:
    template = baseline_doc["spec"]["trialTemplate"]
    del template["trialSpec"]
    template["configMap"] = {
        "configMapName": "trial-templates",
        "configMapNamespace": "kubeflow",
        "templatePath": "defaultTrialTemplate.yaml",
    }
    template["successCondition"] = template["failureCondition"] = "status.done"
    exp = parse_experiment(baseline_doc)
    with pytest.raises(ConfigMapTemplateError) as info:
        render_trial_spec(exp, ASSIGNMENTS, trial_name="t", namespace="n")
    assert isinstance(info.value, KatibError)
    assert "kubeflow/trial-templates" in str(info.value)
    assert "inline the template as spec.trialTemplate.trialSpec" in str(info.value)


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [
        ("${trialSpec.Name}", ("Name", None)),
        ("${trialSpec.APIVersion}", ("APIVersion", None)),
        ("${trialSpec.Labels[app.kubernetes.io/name]}", ("Labels", "app.kubernetes.io/name")),
        ("${trialSpec.Annotations[a]}", ("Annotations", "a")),
        ("${trialSpec.Labels[]}", None),
        ("${trialSpec.Uid}", None),
        ("${trialSpec.Name}x", None),
        ("lr", None),
    ],
)
def test_metadata_reference_grammar(reference: str, parsed: tuple[str, str | None] | None) -> None:
    assert parse_meta_reference(reference) == parsed


# --- primary container ------------------------------------------------------------------------


def test_primary_container_of_a_job(baseline_doc: Doc) -> None:
    manifest = render(baseline_doc)
    container = primary_container(manifest, "training-container")
    assert container["command"][2] == "--lr=0.01"
    container["command"].append("--extra")  # the container itself, not a copy
    assert command_of(manifest)[-1] == "--extra"


def test_primary_container_from_an_experiment(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    assert primary_container(exp)["image"] == "python:3.11"


KUBEFLOW_JOB: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1",
    "kind": "PyTorchJob",
    "spec": {
        "pytorchReplicaSpecs": {
            "Master": {
                "template": {
                    "spec": {"containers": [{"name": "sidecar"}, {"name": "pytorch", "n": 1}]}
                }
            },
            "Worker": {"template": {"spec": {"containers": [{"name": "pytorch", "n": 2}]}}},
        }
    },
}


def test_primary_container_of_a_kubeflow_job_is_the_first_in_document_order() -> None:
    assert primary_container(KUBEFLOW_JOB, "pytorch")["n"] == 1


def test_primary_container_in_a_later_replica() -> None:
    job = copy.deepcopy(KUBEFLOW_JOB)
    master = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    master["containers"] = [{"name": "launcher"}]
    assert primary_container(job, "pytorch")["n"] == 2


def test_primary_container_not_found_lists_the_containers() -> None:
    with pytest.raises(PrimaryContainerNotFoundError) as info:
        primary_container(KUBEFLOW_JOB, "tensorflow")
    assert "'tensorflow' not found in the pod templates of the PyTorchJob" in str(info.value)
    assert "(containers: sidecar, pytorch, pytorch)" in str(info.value)


def test_primary_container_of_a_workload_without_pods() -> None:
    trainjob = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {}}
    with pytest.raises(PrimaryContainerNotFoundError, match=r"\(containers: none\)"):
        primary_container(trainjob, "node")
