"""Katib's admission rules: one failing mutation of the baseline per rule, plus restarts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from katib.errors import FieldError
from katib.spec import parse_experiment, validate_experiment, validate_restart
from suggestion import NAS_ALGORITHMS, Algorithm, algorithm_names
from suggestion.early_stopping import get_early_stopping

Doc = dict[str, Any]
Mutation = Callable[[Doc], None]
ErrorsOf = Callable[[Any], list[FieldError]]

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _keys(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _TOKEN.findall(path)]


def _parent(doc: Doc, path: str) -> tuple[Any, str | int]:
    keys = _keys(path)
    node: Any = doc
    for key in keys[:-1]:
        node = node[key]
    return node, keys[-1]


def put(path: str, value: Any) -> Mutation:
    """Set the value at a Katib-style path (``spec.parameters[0].name``)."""

    def mutate(doc: Doc) -> None:
        parent, key = _parent(doc, path)
        parent[key] = value

    return mutate


def drop(path: str) -> Mutation:
    """Delete the value at a Katib-style path."""

    def mutate(doc: Doc) -> None:
        parent, key = _parent(doc, path)
        del parent[key]

    return mutate


def add_command_arg(arg: str) -> Mutation:
    def mutate(doc: Doc) -> None:
        container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
        container["containers"][0]["command"].append(arg)

    return mutate


def several(*mutations: Mutation) -> Mutation:
    def mutate(doc: Doc) -> None:
        for mutation in mutations:
            mutation(doc)

    return mutate


PYTORCH_JOB = {
    "apiVersion": "kubeflow.org/v1",
    "kind": "PyTorchJob",
    "spec": {
        "pytorchReplicaSpecs": {
            "Master": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "pytorch",
                                "command": [
                                    "--lr=${trialParameters.learningRate}",
                                    "--layers=${trialParameters.numberLayers}",
                                    "--optimizer=${trialParameters.optimizer}",
                                    "--name=${trialParameters.trialName}",
                                ],
                            }
                        ]
                    }
                }
            }
        }
    },
}

NAS_CONFIG = {
    "graphConfig": {"numLayers": 2, "inputSizes": [32, 32, 3], "outputSizes": [10]},
    "operations": [
        {
            "operationType": "convolution",
            "parameters": [
                {
                    "name": "filter_size",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["3", "5"]},
                }
            ],
        }
    ],
}


def nas_experiment(doc: Doc) -> None:
    """Turn the baseline into a valid ENAS experiment (its trial parameters stay)."""
    del doc["spec"]["parameters"]
    doc["spec"]["nasConfig"] = yaml.safe_load(yaml.safe_dump(NAS_CONFIG))
    doc["spec"]["algorithm"] = {"algorithmName": "enas"}


TP = "spec.trialTemplate.trialParameters"
FS0 = "spec.parameters[0].feasibleSpace"
FS1 = "spec.parameters[1].feasibleSpace"
FS2 = "spec.parameters[2].feasibleSpace"
MC = "spec.metricsCollectorSpec"
FSP = f"{MC}.source.fileSystemPath"


def collector(kind: str, **source: Any) -> Mutation:
    spec: dict[str, Any] = {"collector": {"kind": kind}}
    if source:
        spec["source"] = source
    return put(MC, spec)


# (id, mutation, expected path, substring of the message)
RULES: list[tuple[str, Mutation, str, str]] = [
    # --- header
    (
        "api-version",
        put("apiVersion", "kubeflow.org/v1alpha3"),
        "apiVersion",
        "kubeflow.org/v1beta1",
    ),
    ("api-version-missing", drop("apiVersion"), "apiVersion", "must be specified"),
    ("kind", put("kind", "Trial"), "kind", "must be Experiment"),
    ("name-missing", drop("metadata.name"), "metadata.name", "must be specified"),
    ("name-not-dns", put("metadata.name", "Bad_Name"), "metadata.name", "lower case"),
    ("name-leading-digit", put("metadata.name", "1st"), "metadata.name", "alphabetic"),
    ("name-too-long", put("metadata.name", "a" * 41), "metadata.name", "no more than 40"),
    ("namespace", put("metadata.namespace", "Team A"), "metadata.namespace", "RFC 1123"),
    # --- counts and resume policy
    ("max-trials", put("spec.maxTrialCount", 0), "spec.maxTrialCount", "greater than 0"),
    ("parallel", put("spec.parallelTrialCount", 0), "spec.parallelTrialCount", "greater than 0"),
    ("max-failed", put("spec.maxFailedTrialCount", -1), "spec.maxFailedTrialCount", "less than 0"),
    (
        "max-failed-over-max",
        put("spec.maxFailedTrialCount", 11),
        "spec.maxFailedTrialCount",
        "less than or equal to spec.maxTrialCount",
    ),
    (
        "parallel-over-max",
        put("spec.parallelTrialCount", 11),
        "spec.parallelTrialCount",
        "less than or equal to spec.maxTrialCount",
    ),
    ("resume-policy", put("spec.resumePolicy", "Sometimes"), "spec.resumePolicy", "Never"),
    # --- objective
    ("objective-missing", drop("spec.objective"), "spec.objective", "must be specified"),
    ("objective-type", put("spec.objective.type", "lowest"), "spec.objective.type", "minimize"),
    (
        "objective-type-missing",
        drop("spec.objective.type"),
        "spec.objective.type",
        "must be specified",
    ),
    (
        "objective-metric",
        drop("spec.objective.objectiveMetricName"),
        "spec.objective.objectiveMetricName",
        "must be specified",
    ),
    (
        "additional-has-objective",
        put("spec.objective.additionalMetricNames", ["accuracy", "loss"]),
        "spec.objective.additionalMetricNames[1]",
        "should not contain spec.objective.objectiveMetricName",
    ),
    (
        "additional-duplicate",
        put("spec.objective.additionalMetricNames", ["accuracy", "accuracy"]),
        "spec.objective.additionalMetricNames[1]",
        "duplicate",
    ),
    (
        "additional-empty",
        put("spec.objective.additionalMetricNames", [""]),
        "spec.objective.additionalMetricNames[0]",
        "empty",
    ),
    ("goal-nan", put("spec.objective.goal", float("nan")), "spec.objective.goal", "finite"),
    (
        "strategy-value",
        put("spec.objective.metricStrategies", [{"name": "loss", "value": "median"}]),
        "spec.objective.metricStrategies[0].value",
        "min, max or latest",
    ),
    (
        "strategy-metric",
        put("spec.objective.metricStrategies", [{"name": "f1", "value": "max"}]),
        "spec.objective.metricStrategies[0].name",
        "neither the objective metric nor an additional metric",
    ),
    (
        "strategy-conflict",
        put(
            "spec.objective.metricStrategies",
            [{"name": "loss", "value": "min"}, {"name": "loss", "value": "latest"}],
        ),
        "spec.objective.metricStrategies[1].name",
        "conflicting strategies for metric 'loss': min and latest",
    ),
    # --- algorithm
    ("algorithm-missing", drop("spec.algorithm"), "spec.algorithm", "must be specified"),
    (
        "algorithm-name-missing",
        put("spec.algorithm", {}),
        "spec.algorithm.algorithmName",
        "must be specified",
    ),
    (
        "algorithm-unknown",
        put("spec.algorithm.algorithmName", "annealing"),
        "spec.algorithm.algorithmName",
        "unknown algorithm 'annealing' (known: bayesianoptimization, cmaes, grid",
    ),
    (
        "setting-unknown",
        put("spec.algorithm.algorithmSettings", [{"name": "seed", "value": "1"}]),
        "spec.algorithm.algorithmSettings[0].name",
        "setting 'seed': unknown setting for random",
    ),
    (
        "setting-value",
        put("spec.algorithm.algorithmSettings[0].value", "abc"),
        "spec.algorithm.algorithmSettings[0].value",
        "setting 'random_state': must be an integer",
    ),
    (
        "setting-duplicate",
        put(
            "spec.algorithm.algorithmSettings",
            [{"name": "random_state", "value": "1"}, {"name": "random_state", "value": "2"}],
        ),
        "spec.algorithm.algorithmSettings[1].name",
        "duplicate setting 'random_state'",
    ),
    (
        "space-parameter",  # grid needs a step for doubles: reported at the parameter
        put("spec.algorithm", {"algorithmName": "grid"}),
        "spec.parameters[0]",
        "algorithm grid cannot use parameter 'lr'",
    ),
    (
        "space-whole",  # grid of 2 x 5 x 2 points cannot run 100 trials
        several(
            put("spec.algorithm", {"algorithmName": "grid"}),
            put(f"{FS0}.step", "0.05"),
            put(f"{FS0}.distribution", "uniform"),
            put("spec.maxTrialCount", 100),
        ),
        "spec.algorithm.algorithmName",
        "algorithm grid: maxTrialCount 100 exceeds the grid's 20 points",
    ),
    (
        "nas-algorithm-without-nas",
        put("spec.algorithm.algorithmName", "darts"),
        "spec.algorithm.algorithmName",
        "needs spec.nasConfig",
    ),
    (
        "nas-with-hp-algorithm",
        several(nas_experiment, put("spec.algorithm", {"algorithmName": "random"})),
        "spec.algorithm.algorithmName",
        "spec.nasConfig needs a neural architecture search algorithm",
    ),
    # --- early stopping
    (
        "early-stopping-unknown",
        put("spec.earlyStopping", {"algorithmName": "hyperband"}),
        "spec.earlyStopping.algorithmName",
        "unknown early stopping algorithm 'hyperband' (known: asha, medianstop, percentile,"
        " threshold)",
    ),
    (
        "early-stopping-name",
        put("spec.earlyStopping", {}),
        "spec.earlyStopping.algorithmName",
        "must be specified",
    ),
    (
        "early-stopping-setting-value",
        put(
            "spec.earlyStopping",
            {
                "algorithmName": "medianstop",
                "algorithmSettings": [{"name": "min_trials_required", "value": "0"}],
            },
        ),
        "spec.earlyStopping.algorithmSettings[0].value",
        "setting 'min_trials_required': must be >= 1",
    ),
    (
        "early-stopping-setting-unknown",
        put(
            "spec.earlyStopping",
            {"algorithmName": "medianstop", "algorithmSettings": [{"name": "x", "value": "1"}]},
        ),
        "spec.earlyStopping.algorithmSettings[0].name",
        "unknown setting for medianstop",
    ),
    # --- parameters / nasConfig
    ("no-search-space", drop("spec.parameters"), "spec", "spec.parameters or spec.nasConfig"),
    (
        "both-search-spaces",
        put("spec.nasConfig", NAS_CONFIG),
        "spec",
        "only one of spec.parameters and spec.nasConfig",
    ),
    ("param-name", drop("spec.parameters[1].name"), "spec.parameters[1].name", "must be specified"),
    (
        "param-duplicate",
        put("spec.parameters[1].name", "lr"),
        "spec.parameters[1].name",
        "duplicate parameter name 'lr'",
    ),
    (
        "param-type",
        put("spec.parameters[0].parameterType", "float"),
        "spec.parameters[0].parameterType",
        "parameterType: float is not supported",
    ),
    (
        "param-type-missing",
        drop("spec.parameters[0].parameterType"),
        "spec.parameters[0].parameterType",
        "must be specified",
    ),
    (
        "feasible-space-missing",
        drop(FS0),
        FS0,
        "feasibleSpace must be specified",
    ),
    (
        "distribution",
        put(f"{FS0}.distribution", "gaussian"),
        f"{FS0}.distribution",
        "distribution: gaussian is not supported",
    ),
    (
        "numeric-with-list",
        put(f"{FS0}.list", ["0.1"]),
        f"{FS0}.list",
        "not supported for parameterType: double",
    ),
    ("min-missing", drop(f"{FS0}.min"), f"{FS0}.min", "must be specified"),
    ("max-missing", drop(f"{FS0}.max"), f"{FS0}.max", "must be specified"),
    ("min-not-number", put(f"{FS0}.min", "small"), f"{FS0}.min", "must be a finite number"),
    ("max-infinite", put(f"{FS0}.max", "inf"), f"{FS0}.max", "must be a finite number"),
    ("min-over-max", put(f"{FS0}.min", "0.5"), f"{FS0}.max", "must not be less than min"),
    (
        "log-uniform-bounds",
        put(f"{FS0}.min", "0"),
        f"{FS0}.min",
        "greater than 0 for distribution logUniform",
    ),
    (
        "log-normal-bounds",
        several(put(f"{FS0}.distribution", "logNormal"), put(f"{FS0}.min", "-1")),
        f"{FS0}.min",
        "greater than 0 for distribution logNormal",
    ),
    ("step-zero", put(f"{FS1}.step", "0"), f"{FS1}.step", "greater than 0"),
    ("step-over-range", put(f"{FS1}.step", "5"), f"{FS1}.step", "larger than the range"),
    ("int-bound", put(f"{FS1}.min", "1.5"), f"{FS1}.min", "must be an integer"),
    ("int-step", put(f"{FS1}.step", "0.5"), f"{FS1}.step", "must be an integer"),
    (
        "list-with-bounds",
        put(f"{FS2}.min", "1"),
        FS2,
        "not supported for parameterType: categorical",
    ),
    ("list-empty", put(f"{FS2}.list", []), f"{FS2}.list", "non-empty list"),
    ("list-duplicate", put(f"{FS2}.list", ["sgd", "sgd"]), f"{FS2}.list[1]", "duplicate"),
    (
        "discrete-not-number",
        several(
            put("spec.parameters[2].parameterType", "discrete"), put(f"{FS2}.list", ["1", "x"])
        ),
        f"{FS2}.list[1]",
        "must be a number for parameterType: discrete",
    ),
    # --- nasConfig
    (
        "nas-graph",
        several(nas_experiment, drop("spec.nasConfig.graphConfig")),
        "spec.nasConfig.graphConfig",
        "must be specified",
    ),
    (
        "nas-layers",
        several(nas_experiment, put("spec.nasConfig.graphConfig.numLayers", 0)),
        "spec.nasConfig.graphConfig.numLayers",
        "greater than 0",
    ),
    (
        "nas-sizes",
        several(nas_experiment, put("spec.nasConfig.graphConfig.inputSizes", [32, 0])),
        "spec.nasConfig.graphConfig.inputSizes[1]",
        "greater than 0",
    ),
    (
        "nas-operations",
        several(nas_experiment, put("spec.nasConfig.operations", [])),
        "spec.nasConfig.operations",
        "non-empty list",
    ),
    (
        "nas-operation-type",
        several(nas_experiment, drop("spec.nasConfig.operations[0].operationType")),
        "spec.nasConfig.operations[0].operationType",
        "must be specified",
    ),
    (
        "enas-input-sizes",
        several(nas_experiment, drop("spec.nasConfig.graphConfig.inputSizes")),
        "spec.nasConfig.graphConfig.inputSizes",
        "must be set for enas",
    ),
    (
        "nas-operation-parameter",
        several(
            nas_experiment,
            put("spec.nasConfig.operations[0].parameters[0].feasibleSpace.list", []),
        ),
        "spec.nasConfig.operations[0].parameters[0].feasibleSpace.list",
        "non-empty list",
    ),
    # --- trial template
    ("template-missing", drop("spec.trialTemplate"), "spec.trialTemplate", "must be specified"),
    (
        "primary-container-name",
        drop("spec.trialTemplate.primaryContainerName"),
        "spec.trialTemplate.primaryContainerName",
        "must be specified",
    ),
    (
        "primary-container-absent",
        put("spec.trialTemplate.primaryContainerName", "main"),
        "spec.trialTemplate.primaryContainerName",
        "container 'main' not found in the pod template of the Job",
    ),
    (
        "job-containers",
        put("spec.trialTemplate.trialSpec.spec.template.spec.containers", []),
        "spec.trialTemplate.trialSpec.spec.template.spec.containers",
        "non-empty list",
    ),
    (
        "kubeflow-job-primary-container",
        several(
            put("spec.trialTemplate.trialSpec", PYTORCH_JOB),
            put("spec.trialTemplate.primaryContainerName", "trainer"),
        ),
        "spec.trialTemplate.primaryContainerName",
        "container 'trainer' not found in the pod template of the PyTorchJob",
    ),
    (
        "trial-parameters-missing",
        several(
            put(f"{TP}", []),
            put("spec.trialTemplate.trialSpec.spec.template.spec.containers[0].command", ["x"]),
            put("spec.trialTemplate.trialSpec.spec.template.spec.containers[0].env", []),
        ),
        TP,
        "must be specified",
    ),
    (
        "no-trial-source",
        drop("spec.trialTemplate.trialSpec"),
        "spec.trialTemplate",
        "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
    ),
    (
        "two-trial-sources",
        put(
            "spec.trialTemplate.configMap",
            {"configMapName": "t", "configMapNamespace": "k", "templatePath": "p.yaml"},
        ),
        "spec.trialTemplate",
        "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap",
    ),
    (
        "config-map-fields",
        several(
            drop("spec.trialTemplate.trialSpec"),
            put("spec.trialTemplate.configMap", {"configMapName": "t", "configMapNamespace": "k"}),
        ),
        "spec.trialTemplate.configMap.templatePath",
        "must be specified",
    ),
    (
        "config-map-conditions",  # no kind, so no default success condition
        several(
            drop("spec.trialTemplate.trialSpec"),
            put(
                "spec.trialTemplate.configMap",
                {"configMapName": "t", "configMapNamespace": "k", "templatePath": "p"},
            ),
        ),
        "spec.trialTemplate.successCondition",
        "must be specified for a trial of kind configMap template",
    ),
    (
        "unknown-kind-conditions",
        put("spec.trialTemplate.trialSpec.kind", "Workflow"),
        "spec.trialTemplate.failureCondition",
        "must be specified for a trial of kind Workflow",
    ),
    (
        "trial-parameter-braces",
        several(put(f"{TP}[0].name", "learning{Rate}"), add_command_arg("--x")),
        f"{TP}[0].name",
        "must not contain '{' or '}'",
    ),
    (
        "trial-parameter-name-missing",
        drop(f"{TP}[0].name"),
        f"{TP}[0].name",
        "must be specified",
    ),
    (
        "trial-parameter-duplicate-name",
        put(f"{TP}[1].name", "learningRate"),
        f"{TP}[1].name",
        "parameter name learningRate can't be duplicated",
    ),
    (
        "trial-parameter-duplicate-reference",
        put(f"{TP}[1].reference", "lr"),
        f"{TP}[1].reference",
        "parameter reference lr can't be duplicated",
    ),
    (
        "trial-parameter-reference-missing",
        drop(f"{TP}[0].reference"),
        f"{TP}[0].reference",
        "must be specified",
    ),
    (
        "trial-parameter-reference-unknown",
        put(f"{TP}[0].reference", "learning_rate"),
        f"{TP}[0].reference",
        "parameter reference learning_rate does not exist in spec.parameters (lr, layers,",
    ),
    (
        "trial-parameter-bad-metadata",
        put(f"{TP}[3].reference", "${trialSpec.Uid}"),
        f"{TP}[3].reference",
        "is not trial metadata",
    ),
    (
        "placeholder-undeclared",
        add_command_arg("--momentum=${trialParameters.momentum}"),
        "spec.trialTemplate.trialSpec",
        "${trialParameters.momentum} in spec.trialTemplate not found in",
    ),
    (
        "trial-parameter-unused",
        put(f"{TP}[2].name", "optimiser"),
        f"{TP}[2].name",
        "parameter name: optimiser in spec.trialParameters not found in spec.trialTemplate",
    ),
    (
        "template-api-version",
        drop("spec.trialTemplate.trialSpec.apiVersion"),
        "spec.trialTemplate.trialSpec.apiVersion",
        "must be specified",
    ),
    (
        "template-kind",
        drop("spec.trialTemplate.trialSpec.kind"),
        "spec.trialTemplate.trialSpec.kind",
        "must be specified",
    ),
    (
        "template-metadata-name",
        put("spec.trialTemplate.trialSpec.metadata", {"name": "job"}),
        "spec.trialTemplate.trialSpec.metadata.name",
        "must be omitted",
    ),
    (
        "template-metadata-namespace",
        put("spec.trialTemplate.trialSpec.metadata", {"namespace": "other"}),
        "spec.trialTemplate.trialSpec.metadata.namespace",
        "must be omitted",
    ),
    # --- metrics collector
    (
        "collector-kind",
        collector("Syslog"),
        f"{MC}.collector.kind",
        "invalid metrics collector kind: Syslog",
    ),
    (
        "collector-kind-missing",
        put(MC, {"collector": {}}),
        f"{MC}.collector.kind",
        "must be specified",
    ),
    (
        "file-relative-path",
        collector("File", fileSystemPath={"path": "metrics.log", "kind": "File"}),
        f"{FSP}.path",
        "must be an absolute file path",
    ),
    (
        "file-kind",
        collector("File", fileSystemPath={"path": "/m.log", "kind": "Directory"}),
        f"{FSP}.kind",
        "must be File",
    ),
    (
        "file-format",
        collector("File", fileSystemPath={"path": "/m.log", "format": "XML"}),
        f"{FSP}.format",
        "must be TEXT or JSON",
    ),
    (
        "file-json-with-filter",
        collector(
            "File",
            fileSystemPath={"path": "/m.json", "format": "JSON"},
            filter={"metricsFormat": ["(a)=(b)"]},
        ),
        f"{MC}.source.filter",
        "filter must be nil when format of metrics file is JSON",
    ),
    (
        "tfevent-relative-path",
        collector("TensorFlowEvent", fileSystemPath={"path": "logs", "kind": "Directory"}),
        f"{FSP}.path",
        "must be an absolute directory path",
    ),
    (
        "tfevent-kind",
        collector("TensorFlowEvent", fileSystemPath={"path": "/logs", "kind": "File"}),
        f"{FSP}.kind",
        "must be Directory",
    ),
    (
        "tfevent-format",
        collector("TensorFlowEvent", fileSystemPath={"path": "/logs", "format": "TEXT"}),
        f"{FSP}.format",
        "must be empty",
    ),
    (
        "prometheus-port",
        collector("PrometheusMetric", httpGet={"port": 70000}),
        f"{MC}.source.httpGet.port",
        "between 1 and 65535",
    ),
    (
        "prometheus-named-port",
        collector("PrometheusMetric", httpGet={"port": "metrics"}),
        f"{MC}.source.httpGet.port",
        "between 1 and 65535",
    ),
    (
        "prometheus-path",
        collector("PrometheusMetric", httpGet={"path": "metrics"}),
        f"{MC}.source.httpGet.path",
        "must start with '/'",
    ),
    (
        "custom-container",
        collector("Custom"),
        f"{MC}.collector.customCollector",
        "a container is required",
    ),
    (
        "custom-path",
        put(
            MC,
            {
                "collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "i"}},
                "source": {"fileSystemPath": {"path": "rel", "kind": "File"}},
            },
        ),
        f"{FSP}.path",
        "must be an absolute file or directory path",
    ),
    (
        "metrics-format-regex",
        collector("StdOut", filter={"metricsFormat": ["([a-z]+=(.*)"]}),
        f"{MC}.source.filter.metricsFormat[0]",
        "invalid filter",
    ),
    (
        "metrics-format-one-group",
        collector("StdOut", filter={"metricsFormat": ["loss=([0-9.]+)"]}),
        f"{MC}.source.filter.metricsFormat[0]",
        "two top subexpressions are required",
    ),
    (
        "metrics-format-three-groups",
        collector("StdOut", filter={"metricsFormat": ["(\\w+)=(\\d+) (\\w+)"]}),
        f"{MC}.source.filter.metricsFormat[0]",
        "has 3",
    ),
]


def test_baseline_is_valid(baseline_doc: Doc, errors_of: ErrorsOf) -> None:
    assert errors_of(baseline_doc) == []


@pytest.mark.parametrize(
    ("mutation", "path", "message"),
    [pytest.param(m, p, s, id=name) for name, m, p, s in RULES],
)
def test_each_rule_reports_its_path(
    baseline_doc: Doc, errors_of: ErrorsOf, mutation: Mutation, path: str, message: str
) -> None:
    mutation(baseline_doc)
    errors = errors_of(baseline_doc)
    matching = [e for e in errors if e.path == path and message in e.message]
    assert matching, f"expected {path}: ...{message}... in {[str(e) for e in errors]}"


def test_rule_ids_are_unique() -> None:
    names = [name for name, *_ in RULES]
    assert len(names) == len(set(names))


def test_every_problem_is_reported_at_once(baseline_doc: Doc, errors_of: ErrorsOf) -> None:
    baseline_doc["metadata"]["name"] = "Not_Valid"
    baseline_doc["spec"]["maxTrialCount"] = 0
    baseline_doc["spec"]["parameters"][1]["feasibleSpace"]["min"] = "1.5"
    baseline_doc["spec"]["objective"]["type"] = "best"
    baseline_doc["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "nope"
    baseline_doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Syslog"}}
    paths = {e.path for e in errors_of(baseline_doc)}
    assert {
        "metadata.name",
        "spec.maxTrialCount",
        "spec.parameters[1].feasibleSpace.min",
        "spec.objective.type",
        "spec.trialTemplate.trialParameters[0].reference",
        "spec.metricsCollectorSpec.collector.kind",
    } <= paths


def test_nas_experiment_is_valid(baseline_doc: Doc, errors_of: ErrorsOf) -> None:
    nas_experiment(baseline_doc)
    # NAS trial parameters refer to what the NAS algorithm produces, not to spec.parameters.
    nas_references(baseline_doc, "architecture", "nn_config")
    assert errors_of(baseline_doc) == []
    assert NAS_ALGORITHMS == {"enas", "darts"}


def test_nas_operations_may_have_no_parameters(baseline_doc: Doc, errors_of: ErrorsOf) -> None:
    # As Katib's darts-gpu.yaml writes skip_connection.
    nas_experiment(baseline_doc)
    nas_references(baseline_doc, "architecture", "nn_config")
    baseline_doc["spec"]["nasConfig"]["operations"].append({"operationType": "skip_connection"})
    assert errors_of(baseline_doc) == []
    baseline_doc["spec"]["algorithm"] = {"algorithmName": "darts"}
    baseline_doc["spec"]["objective"].pop("goal", None)
    nas_references(baseline_doc, "search-space", "num-layers")
    assert errors_of(baseline_doc) == []


def nas_references(doc: Doc, *references: str) -> None:
    """Point the baseline's trial parameters at what a NAS algorithm assigns (the rest at
    trial metadata)."""
    parameters = doc["spec"]["trialTemplate"]["trialParameters"]
    extra = ["${trialSpec.Name}", "${trialSpec.Namespace}", "${trialSpec.Kind}"]
    for parameter, reference in zip(parameters, [*references, *extra], strict=False):
        parameter["reference"] = reference


def test_kubeflow_job_primary_container_is_found(baseline_doc: Doc, errors_of: ErrorsOf) -> None:
    baseline_doc["spec"]["trialTemplate"]["trialSpec"] = PYTORCH_JOB
    baseline_doc["spec"]["trialTemplate"]["primaryContainerName"] = "pytorch"
    assert errors_of(baseline_doc) == []


def test_min_equal_to_max_is_a_fixed_value(baseline_doc: Doc, errors_of: ErrorsOf) -> None:
    # Katib's hyperband example fixes num-epochs with min == max; that must stay valid.
    baseline_doc["spec"]["parameters"][1]["feasibleSpace"].update(min="3", max="3")
    assert errors_of(baseline_doc) == []


def test_medianstop_with_its_settings_is_valid(baseline_doc: Doc, errors_of: ErrorsOf) -> None:
    baseline_doc["spec"]["earlyStopping"] = {
        "algorithmName": "medianstop",
        "algorithmSettings": [
            {"name": "min_trials_required", "value": "2"},
            {"name": "start_step", "value": "1"},
        ],
    }
    assert errors_of(baseline_doc) == []
    table = get_early_stopping("medianstop").settings_spec
    assert {k: s.default for k, s in table.items()} == {
        "min_trials_required": "3",
        "start_step": "4",
    }


@pytest.mark.parametrize(
    "pattern",
    [
        r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)",  # Katib's default: nested groups
        r"(?:step \d+: )?(\w+)=(\d+)",  # a non-capturing group does not count
        r"(?P<name>\w+)\s*:\s*(?P<value>[\d.]+)",  # named groups count
        r"\(([a-z]+)\)=([()\d]+)",  # escaped parentheses and parentheses in a class
        r"([]a-z]+)=([^]0-9]+)",  # ']' first in a class is a literal
    ],
)
def test_metrics_format_with_two_top_level_groups(
    baseline_doc: Doc, errors_of: ErrorsOf, pattern: str
) -> None:
    baseline_doc["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "StdOut"},
        "source": {"filter": {"metricsFormat": [pattern]}},
    }
    assert errors_of(baseline_doc) == []


def test_a_crashing_plugin_check_becomes_an_error(
    baseline_doc: Doc, errors_of: ErrorsOf, monkeypatch: pytest.MonkeyPatch
) -> None:
    from suggestion import _spec_checks
    from suggestion.algorithms.random import RandomSearch

    class Broken(RandomSearch):
        @classmethod
        def validate_space(cls, space: Any, **kwargs: Any) -> list[tuple[str | None, str]]:
            raise ZeroDivisionError("division by zero")

    def fake_get_algorithm(name: str) -> type[Algorithm]:
        return Broken

    monkeypatch.setattr(_spec_checks, "get_algorithm", fake_get_algorithm)
    errors = errors_of(baseline_doc)
    assert [(e.path, "division by zero" in e.message) for e in errors] == [
        ("spec.algorithm.algorithmName", True)
    ]


def test_the_spec_asks_the_installed_algorithm_checks(baseline_doc: Doc) -> None:
    from katib.spec import AlgorithmChecks, algorithm_checks
    from suggestion import SPEC_CHECKS

    assert algorithm_checks() is SPEC_CHECKS  # found through the katib.spec entry point
    exp = parse_experiment(baseline_doc)

    class Refuses:
        def check_algorithm(self, spec: Any, parameters_valid: bool) -> list[FieldError]:
            return [FieldError("spec.algorithm.algorithmName", f"no, {parameters_valid}")]

        def check_early_stopping(self, early: Any) -> list[FieldError]:
            return []

    assert isinstance(Refuses(), AlgorithmChecks)
    assert [str(e) for e in validate_experiment(exp, Refuses())] == [
        "spec.algorithm.algorithmName: no, True"
    ]


def test_validate_experiment_works_on_models_built_in_python(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    assert validate_experiment(exp) == []
    exp.spec.max_trial_count = -5
    assert [e.path for e in validate_experiment(exp)] == ["spec.maxTrialCount"]


def test_registered_algorithms_are_listed_in_the_unknown_message(
    baseline_doc: Doc, errors_of: ErrorsOf
) -> None:
    baseline_doc["spec"]["algorithm"]["algorithmName"] = "nope"
    (error,) = errors_of(baseline_doc)
    for name in algorithm_names():
        assert name in error.message


# --- restart -------------------------------------------------------------------------------


def test_restart_may_change_the_three_counts(baseline_doc: Doc) -> None:
    old = parse_experiment(baseline_doc)
    baseline_doc["spec"].update(maxTrialCount=20, parallelTrialCount=4, maxFailedTrialCount=5)
    new = parse_experiment(baseline_doc)
    assert validate_restart(old, new, trials_run=10) == []


def test_restart_reports_each_other_changed_field(baseline_doc: Doc) -> None:
    old = parse_experiment(baseline_doc)
    baseline_doc["spec"]["parameters"][0]["feasibleSpace"]["max"] = "0.2"
    baseline_doc["spec"]["algorithm"]["algorithmSettings"][0]["value"] = "8"
    baseline_doc["spec"]["resumePolicy"] = "LongRunning"
    baseline_doc["spec"]["maxTrialCount"] = 20
    new = parse_experiment(baseline_doc)
    errors = validate_restart(old, new, trials_run=10)
    assert [e.path for e in errors] == ["spec.parameters", "spec.algorithm", "spec.resumePolicy"]
    assert all("only spec.parallelTrialCount, spec.maxTrialCount" in e.message for e in errors)


def test_restart_needs_room_for_more_trials(baseline_doc: Doc) -> None:
    old = parse_experiment(baseline_doc)
    errors = validate_restart(old, old, trials_run=10)
    assert [(e.path, "greater than status.trials count" in e.message) for e in errors] == [
        ("spec.maxTrialCount", True)
    ]
    del baseline_doc["spec"]["maxTrialCount"]
    unlimited = parse_experiment(baseline_doc)
    assert validate_restart(old, unlimited, trials_run=10) == []
