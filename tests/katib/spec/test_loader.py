"""Loading experiment files: multi-document files, shape errors, and every kind of garbage.

Whatever a file holds, the loader raises InvalidExperimentError with field errors, and never
anything else.
"""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.errors import FieldError, InvalidExperimentError
from katib.spec import load_experiments, parse_experiment
from katib.spec._loader import MAX_DEPTH, MAX_FILE_BYTES

Doc = dict[str, Any]


def load_errors(text: str) -> list[FieldError]:
    """The errors of loading ``text``; fails the test if it loads."""
    with pytest.raises(InvalidExperimentError) as info:
        load_experiments("exp.yaml", text=text)
    errors = info.value.errors
    assert errors and all(isinstance(e, FieldError) for e in errors)
    assert info.value.source == "exp.yaml"
    return errors


def messages(errors: list[FieldError]) -> list[str]:
    return [str(e) for e in errors]


def renamed(text: str, name: str) -> str:
    return text.replace("name: baseline", f"name: {name}", 1)


# --- valid files ------------------------------------------------------------------------------


def test_a_file_loads_defaulted(tmp_path: Path, baseline_text: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(baseline_text, encoding="utf-8")
    (exp,) = load_experiments(path)
    assert exp.name == "baseline" and exp.namespace == "team-a"
    assert exp.spec.resume_policy == "Never"  # defaults applied


def test_a_byte_order_mark_is_accepted(tmp_path: Path, baseline_text: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + baseline_text.encode())
    assert [e.name for e in load_experiments(str(path))] == ["baseline"]


def test_several_documents_load_in_order(baseline_text: str) -> None:
    text = "---\n" + renamed(baseline_text, "first") + "---\n" + renamed(baseline_text, "second")
    assert [e.name for e in load_experiments("x.yaml", text=text)] == ["first", "second"]


def test_empty_documents_are_skipped(baseline_text: str) -> None:
    text = "---\n---\n# only a comment\n---\n" + baseline_text + "---\n...\n"
    assert [e.name for e in load_experiments("x.yaml", text=text)] == ["baseline"]


def test_one_document_paths_have_no_prefix(baseline_text: str) -> None:
    text = "---\n" + baseline_text.replace("maxTrialCount: 10", "maxTrialCount: 0") + "---\n"
    assert [e.path for e in load_errors(text)] == ["spec.maxTrialCount"]


def test_several_documents_prefix_paths_with_their_index(baseline_text: str) -> None:
    bad = renamed(baseline_text, "second").replace("maxTrialCount: 10", "maxTrialCount: 0")
    worse = renamed(baseline_text, "third").replace("type: minimize", "type: lowest")
    # Document 1 is empty: indexes count every document, as a reader counts them.
    text = baseline_text + "---\n---\n" + bad + "---\n" + worse
    assert [e.path for e in load_errors(text)] == [
        "documents[2].spec.maxTrialCount",
        "documents[3].spec.objective.type",
    ]


def test_a_later_syntax_error_still_reports_earlier_documents(baseline_text: str) -> None:
    bad = baseline_text.replace("maxTrialCount: 10", "maxTrialCount: 0")
    errors = load_errors(bad + "---\nspec: [unclosed\n")
    assert errors[0].path == "documents[0].spec.maxTrialCount"
    assert errors[1].path == "documents[1]"
    assert "invalid YAML at line" in errors[1].message


def test_the_same_experiment_twice_in_one_file(baseline_text: str) -> None:
    errors = load_errors(baseline_text + "---\n" + baseline_text)
    assert messages(errors) == [
        "documents[1].metadata.name: experiment team-a/baseline is already defined in"
        " documents[0] of this file"
    ]


def test_parse_experiment_takes_a_parsed_document(baseline_doc: Doc) -> None:
    assert parse_experiment(baseline_doc).name == "baseline"


# --- shape errors -----------------------------------------------------------------------------


def test_shape_errors_have_camel_case_paths_and_short_messages(baseline_doc: Doc) -> None:
    spec = baseline_doc["spec"]
    spec["parameters"][1]["feasibleSpace"]["min"] = [1]
    spec["parameters"][0]["parameter_type"] = "double"
    spec["maxTrialCount"] = "10"
    spec["trialTemplate"]["retain"] = "yes"
    spec["objective"]["additionalMetricNames"] = [5]
    spec["objective"]["goal"] = "high"
    spec["metricsCollectorSpec"] = {"source": {"httpGet": {"port": 1.5}}}
    baseline_doc["metadata"]["labels"] = {"team": 7}
    with pytest.raises(InvalidExperimentError) as info:
        parse_experiment(baseline_doc)
    assert messages(info.value.errors) == [
        "metadata.labels.team: must be a string, got an integer",
        "spec.parameters[0].parameter_type: unknown field (Katib's YAML spells it parameterType)",
        "spec.parameters[1].feasibleSpace.min: must be a string, got a list",
        "spec.objective.goal: must be a number, got a string",
        "spec.objective.additionalMetricNames[0]: must be a string, got an integer",
        "spec.trialTemplate.retain: must be true or false, got a string",
        "spec.maxTrialCount: must be an integer, got a string",
        "spec.metricsCollectorSpec.source.httpGet.port: must be an integer or a string,"
        " got a number",
    ]


def test_misspelt_fields_get_a_suggestion(baseline_doc: Doc, errors_of: Any) -> None:
    baseline_doc["spec"]["objective"]["objectveMetricName"] = "x"
    baseline_doc["spec"]["paralelTrialCount"] = 3
    assert messages(errors_of(baseline_doc)) == [
        "spec.objective.objectveMetricName: unknown field (did you mean objectiveMetricName?)",
        "spec.paralelTrialCount: unknown field (did you mean parallelTrialCount?)",
    ]


def test_shape_and_semantic_errors_are_reported_together(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["parameters"][0]["feasibleSpace"]["max"] = True
    baseline_doc["spec"]["parameters"][1] = 5
    baseline_doc["spec"]["objective"]["type"] = "lowest"
    baseline_doc["metadata"]["name"] = "Upper"
    with pytest.raises(InvalidExperimentError) as info:
        parse_experiment(baseline_doc)
    paths = [e.path for e in info.value.errors]
    assert paths == [
        "spec.parameters[0].feasibleSpace.max",
        "spec.parameters[1]",
        "metadata.name",
        "spec.objective.type",
    ]
    # The malformed values are not reported a second time as missing.
    assert paths.count("spec.parameters[0].feasibleSpace.max") == 1


def test_a_missing_required_field_in_a_list_item(baseline_doc: Doc, errors_of: Any) -> None:
    baseline_doc["spec"]["algorithm"]["algorithmSettings"] = [{"value": "1"}]
    assert messages(errors_of(baseline_doc)) == [
        "spec.algorithm.algorithmSettings[0].name: is required"
    ]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("spec", "parallelTrialCount"), "3", "must be an integer, got a string"),
        (("spec", "parallelTrialCount"), True, "must be an integer, got a boolean"),
        (("spec", "parallelTrialCount"), 2.5, "must be an integer, got a number"),
        (("spec", "objective", "goal"), True, "must be a number, got a boolean"),
        (("spec", "trialTemplate", "retain"), 1, "must be true or false, got an integer"),
        (("spec", "parameters"), {"name": "lr"}, "must be a list, got a mapping"),
        (("spec", "objective"), "min", "must be a mapping, got a string"),
    ],
)
def test_values_are_not_coerced(
    baseline_doc: Doc, errors_of: Any, path: tuple[str, ...], value: Any, message: str
) -> None:
    # Kubernetes does not turn "3" into 3 or true into 1, so neither does the loader.
    node = baseline_doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = errors_of(baseline_doc)
    assert FieldError(".".join(path), message) in errors


def test_yaml_dates_stay_strings(baseline_text: str) -> None:
    text = baseline_text.replace(
        "metadata:\n  name: baseline",
        "metadata:\n  annotations:\n    due: 2024-01-31\n  name: baseline",
    )
    (exp,) = load_experiments("x.yaml", text=text)
    assert exp.metadata.annotations == {"due": "2024-01-31"}


# --- garbage ----------------------------------------------------------------------------------

BILLION_LAUGHS = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "holds no experiment", id="empty"),
        pytest.param("# nothing here\n\n", "holds no experiment", id="comments-only"),
        pytest.param("---\n---\n", "holds no experiment", id="empty-documents"),
        pytest.param("42\n", "must be a mapping", id="scalar"),
        pytest.param("just some words\n", "got a string", id="prose"),
        pytest.param("- a\n- b\n", "got a list", id="list"),
        pytest.param("spec: [1, 2\nkind: x\n", "invalid YAML at line 2, column 5", id="syntax"),
        pytest.param("spec:\n\tkind: x\n", "invalid YAML at line 2, column 1", id="tab"),
        pytest.param("kind: \x07bell\n", "line 1, column 7: character #x0007", id="control-char"),
        pytest.param("kind: *nowhere\n", "found undefined alias", id="undefined-alias"),
        pytest.param("a: &x 1\nb: &x 2\n", "duplicate anchor", id="duplicate-anchor"),
        pytest.param("? [a]\n: b\n", "found unhashable key", id="unhashable-key"),
        pytest.param("kind: !!python/object:os.system {}\n", "could not determine", id="tag"),
        pytest.param("kind: !!int x\n", "invalid YAML value", id="bad-int"),
        pytest.param("kind: " + "9" * 5000 + "\n", "invalid YAML value", id="huge-int"),
        pytest.param(BILLION_LAUGHS, "once YAML aliases are expanded", id="billion-laughs"),
        pytest.param(
            "a: &a '" + "x" * 100_000 + "'\nb: [" + ", ".join(["*a"] * 500) + "]\n",
            "characters of text once YAML aliases are expanded",
            id="string-bomb",
        ),
        pytest.param("&a [*a]\n", "refers to itself", id="recursive-alias"),
        pytest.param("spec: &s {trialTemplate: *s}\n", "refers to itself", id="recursive-map"),
        pytest.param("[" * 10_000 + "]" * 10_000, "nested more than", id="deep-flow"),
        pytest.param(
            "".join("  " * i + "k:\n" for i in range(2000)), "nested more than", id="deep-block"
        ),
        pytest.param("kind: x\nkind: y\n", "duplicate key 'kind' at line 2", id="duplicate-key"),
        pytest.param("{1: x}\n", "[1]: key must be a string", id="int-key"),
        pytest.param("spec: {null: x}\n", "key must be a string", id="null-key"),
        pytest.param(
            "apiVersion: [1]\nkind: {a: b}\nmetadata: 3\nspec: true\nstatus: 1\n",
            "apiVersion: must be a string",
            id="wrong-types-everywhere",
        ),
    ],
)
def test_garbage_is_an_invalid_experiment(text: str, message: str) -> None:
    errors = load_errors(text)
    assert any(message in str(e) for e in errors), messages(errors)


def test_deep_nesting_below_the_limit_is_fine(baseline_doc: Doc) -> None:
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH - 10):
        nested = {"k": nested}
    baseline_doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["extra"] = nested
    text = yaml.safe_dump(baseline_doc)
    assert len(load_experiments("x.yaml", text=text)) == 1


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidExperimentError, match="no such file") as info:
        load_experiments(tmp_path / "absent.yaml")
    assert info.value.source == str(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", ["bad\x00name.yaml", "x" * 5000 + ".yaml"], ids=["nul", "long"])
def test_an_impossible_file_name(name: str) -> None:
    with pytest.raises(InvalidExperimentError):
        load_experiments(name)


def test_an_unreadable_file(
    tmp_path: Path, baseline_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(baseline_text)

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    # chmod does not stop root, so the refusal is simulated where the file is opened.
    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(InvalidExperimentError, match="permission denied"):
        load_experiments(path)


def test_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidExperimentError, match="is a directory"):
        load_experiments(tmp_path)


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InvalidExperimentError, match="not a regular file"):
        load_experiments(fifo)


def test_binary_garbage(tmp_path: Path) -> None:
    rng = random.Random(1)
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    with pytest.raises(InvalidExperimentError, match="is not UTF-8 text"):
        load_experiments(path)


def test_binary_that_happens_to_be_utf8(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x00\x01\x02kind: x\n")
    with pytest.raises(InvalidExperimentError, match="character #x0000 is not allowed"):
        load_experiments(path)


def test_utf16_is_refused_with_a_hint(tmp_path: Path, baseline_text: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(baseline_text, encoding="utf-16")
    with pytest.raises(InvalidExperimentError, match="experiment files are YAML in UTF-8"):
        load_experiments(path)


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written, nothing must be read
    with pytest.raises(InvalidExperimentError, match="is too large") as info:
        load_experiments(path)
    assert "10 MiB" in str(info.value)


def test_huge_text_is_refused() -> None:
    with pytest.raises(InvalidExperimentError, match="is too large"):
        load_experiments("x.yaml", text="a" * (MAX_FILE_BYTES + 1))


@pytest.mark.parametrize(
    "data",
    [None, 7, "text", [1, 2], b"bytes", object()],
    ids=["null", "int", "str", "list", "bytes", "object"],
)
def test_parse_experiment_refuses_non_mappings(data: object) -> None:
    with pytest.raises(InvalidExperimentError, match="must be a mapping"):
        parse_experiment(data)


def test_parse_experiment_refuses_cycles_and_bombs(baseline_doc: Doc) -> None:
    cyclic = copy.deepcopy(baseline_doc)
    cyclic["spec"]["trialTemplate"]["trialSpec"]["self"] = cyclic
    with pytest.raises(InvalidExperimentError, match="refers to itself"):
        parse_experiment(cyclic)
    level: Any = ["x"] * 10
    for _ in range(7):
        level = [level] * 10
    baseline_doc["spec"]["trialTemplate"]["trialSpec"]["bomb"] = level
    with pytest.raises(InvalidExperimentError, match="more than 1000000 values"):
        parse_experiment(baseline_doc)


def test_parse_experiment_refuses_values_json_cannot_hold(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["when"] = {1, 2}
    with pytest.raises(InvalidExperimentError, match="holds a value of type set"):
        parse_experiment(baseline_doc)


def test_parse_experiment_refuses_deep_nesting(baseline_doc: Doc) -> None:
    nested: Any = "leaf"
    for _ in range(5000):
        nested = [nested]
    baseline_doc["spec"]["trialTemplate"]["trialSpec"]["deep"] = nested
    with pytest.raises(InvalidExperimentError, match="nested more than"):
        parse_experiment(baseline_doc)


# --- fuzzing ----------------------------------------------------------------------------------


def test_random_corruptions_of_the_text_never_escape(baseline_text: str) -> None:
    rng = random.Random(20240131)
    alphabet = list(":-[]{}&*!|>'\"#%@` \n\t\\,?0123456789abc${}.") + ["\x00", "\u2028"]
    for _ in range(400):
        chars = list(baseline_text)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(chars))
            action = rng.randrange(3)
            if action == 0:
                del chars[position]
            elif action == 1:
                chars.insert(position, rng.choice(alphabet))
            else:
                chars[position] = rng.choice(alphabet)
        try:
            load_experiments("fuzz.yaml", text="".join(chars))
        except InvalidExperimentError as e:
            assert e.errors


REPLACEMENTS: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    float("nan"),
    float("inf"),
    "",
    "x",
    "${trialParameters.x}",
    [],
    [None],
    [{}],
    {},
    {"x": 1},
    {1: 2},
    [[[]]],
    "0.1",
]


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_nodes(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.extend(_nodes(child, (*path, index)))
    return out


def test_random_structural_damage_never_escapes(baseline_doc: Doc) -> None:
    rng = random.Random(7)
    paths = [p for p in _nodes(baseline_doc) if p]
    for _ in range(600):
        doc = copy.deepcopy(baseline_doc)
        for path in rng.sample(paths, rng.randint(1, 3)):
            parent: Any = doc
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if rng.random() < 0.2 and isinstance(parent, dict):
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change replaced an ancestor
        try:
            parse_experiment(doc)
        except InvalidExperimentError as e:
            assert e.errors
