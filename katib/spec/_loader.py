"""Turning experiment files (or already-parsed documents) into validated experiments.

This module owns everything between untrusted input and a defaulted, valid
:class:`~katib.spec.Experiment`: reading the file, YAML parsing with limits (size, nesting,
alias expansion), translating pydantic's shape errors into Katib-style field paths and short
messages, and running the admission rules. Whatever the input holds, the only exception that
leaves is :class:`~katib.errors.InvalidExperimentError`, carrying every problem found.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import stat
import types
import typing
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel
from yaml.nodes import MappingNode, Node, ScalarNode

from katib.errors import FieldError, InvalidExperimentError
from katib.spec._models import Experiment
from katib.spec._validation import validate_experiment

#: Largest experiment file read; real ones are a few kilobytes.
MAX_FILE_BYTES = 10 * 1024 * 1024
#: Deepest nesting of mappings and lists; Kubernetes workloads stay far below it, and the
#: bound keeps every recursive step (YAML composition, copying, validation) safe.
MAX_DEPTH = 100
#: Most values a document may hold once YAML aliases are expanded (billion-laughs guard:
#: aliases are shared when parsed but copied when validated and rendered).
MAX_NODES = 1_000_000
#: Most characters of string values a document may hold once aliases are expanded.
MAX_TEXT_CHARS = 4 * MAX_FILE_BYTES

_JSON_SCALARS = (str, int, float, bool, type(None))
_CYCLE = "refers to itself (a recursive YAML alias, or a reference cycle)"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_ELEMENT_IS_OBJECT = frozenset({"model_type", "model_attributes_type", "dict_type"})


def load_experiments(source: str | Path, *, text: str | None = None) -> list[Experiment]:
    """Read every experiment in a YAML file, defaulted and validated.

    Args:
        source: The file to read, also the name used in error messages.
        text: The file's content, when it is already in memory (``source`` is then only a
            name).

    Returns:
        One experiment per non-empty YAML document, in file order.

    Raises:
        InvalidExperimentError: With every problem of every document. When the file holds
            several documents, paths start with ``documents[i].`` (``i`` counts every
            document from 0, empty ones included).
    """
    name = str(source)
    try:
        content = _read(Path(source)) if text is None else _check_text_size(text)
    except _InputProblem as e:
        raise InvalidExperimentError([FieldError("", str(e))], name) from None
    documents, errors, count = _parse_yaml(content)

    several = count > 1
    found: list[tuple[int, FieldError]] = list(errors)
    experiments: list[Experiment] = []
    seen: dict[tuple[str, str], int] = {}
    for index, data in documents:
        exp, doc_errors = _parse_document(data)
        if exp is not None and not doc_errors:
            key = (exp.namespace, exp.name)
            if key in seen:
                doc_errors.append(
                    FieldError(
                        "metadata.name",
                        f"experiment {exp.namespace}/{exp.name} is already defined in"
                        f" documents[{seen[key]}] of this file",
                    )
                )
            seen.setdefault(key, index)
            experiments.append(exp)
        found.extend((index, error) for error in doc_errors)
    if count == 0:
        found.append((0, FieldError("", "the file holds no experiment (it is empty)")))
    if found:
        found.sort(key=lambda pair: pair[0])  # stable: each document's errors stay in order
        raise InvalidExperimentError(
            [_prefixed(error, index if several else None) for index, error in found], name
        )
    return experiments


def parse_experiment(data: object, source: str | None = None) -> Experiment:
    """Validate one already-parsed experiment document (a JSON body, a YAML mapping).

    Args:
        data: The document, with Katib's camelCase field names.
        source: A name for the document in error messages.

    Returns:
        The experiment, defaulted and validated.

    Raises:
        InvalidExperimentError: With every problem found.
    """
    problem = _structure_problem(data)
    if problem is not None:
        raise InvalidExperimentError([FieldError("", problem)], source)
    exp, errors = _parse_document(data)
    if errors or exp is None:
        raise InvalidExperimentError(errors, source)
    return exp


# --- reading ----------------------------------------------------------------------------------


class _InputProblem(Exception):
    """The file cannot be read as YAML text at all; the message says why."""


def _read(path: Path) -> str:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise _InputProblem("is a directory, not an experiment file")
        if not stat.S_ISREG(info.st_mode):
            raise _InputProblem("is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise _InputProblem(_too_large(info.st_size))
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _InputProblem("no such file") from None
    except PermissionError:
        raise _InputProblem("permission denied") from None
    except OSError as e:
        raise _InputProblem(f"cannot read the file: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte in the name
        raise _InputProblem(f"is not a usable file name: {e}") from None
    if len(raw) > MAX_FILE_BYTES:  # it grew since stat
        raise _InputProblem(_too_large(len(raw)))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _InputProblem(
            f"is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start});"
            " experiment files are YAML in UTF-8"
        ) from None


def _check_text_size(text: str) -> str:
    if len(text) > MAX_FILE_BYTES:
        raise _InputProblem(_too_large(len(text)))
    return text


def _too_large(size: int) -> str:
    return (
        f"is too large ({size} bytes; the limit is {MAX_FILE_BYTES // (1024 * 1024)} MiB):"
        " an experiment file is a few kilobytes"
    )


# --- YAML -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A safe loader that bounds nesting and keeps Kubernetes' view of scalars.

    Timestamps stay strings (Kubernetes reads YAML as JSON, which has no dates), and binary
    values stay their base64 text, so that a trial template holds only JSON types.
    Duplicate keys are recorded: Kubernetes rejects them, PyYAML silently keeps the last.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self.duplicate_keys: list[str] = []

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # Composition recurses once per level; stop long before Python's recursion limit.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(
                    problem=f"nested more than {MAX_DEPTH} levels deep",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[tuple[str, str], Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node.value, str):
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                first = seen[ident].start_mark
                mark = key_node.start_mark
                self.duplicate_keys.append(
                    f"duplicate key {key_node.value!r} at line {mark.line + 1}, column"
                    f" {mark.column + 1} (first at line {first.line + 1})"
                )
            else:
                seen[ident] = key_node
        return super().construct_mapping(node, deep)


def _construct_text(loader: _Loader, node: Node) -> str:
    if not isinstance(node, ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"expected a scalar for {node.tag}", node.start_mark
        )
    return str(loader.construct_scalar(node))


_Loader.add_constructor(_TIMESTAMP_TAG, _construct_text)
_Loader.add_constructor("tag:yaml.org,2002:binary", _construct_text)


def _parse_yaml(
    text: str,
) -> tuple[list[tuple[int, Any]], list[tuple[int, FieldError]], int]:
    """The usable documents as ``(index, data)``, per-document YAML problems, and how many
    documents are not empty (a broken one included).

    A syntax error ends the stream (YAML cannot resynchronise): the documents before it are
    still returned so that their problems are reported too.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    documents: list[tuple[int, Any]] = []
    errors: list[tuple[int, FieldError]] = []
    index = count = 0
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks every character already
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node) if node is not None else None
            for message in loader.duplicate_keys:
                errors.append((index, FieldError("", message)))
            loader.duplicate_keys.clear()
            if data is not None:
                count += 1
                problem = _structure_problem(data)
                if problem is not None:
                    errors.append((index, FieldError("", problem)))
                else:
                    documents.append((index, data))
            index += 1
    except yaml.YAMLError as e:
        errors.append((index, FieldError("", _yaml_problem(e, text))))
        count += 1
    except RecursionError:
        errors.append((index, FieldError("", f"nested more than {MAX_DEPTH} levels deep")))
        count += 1
    except (ValueError, OverflowError) as e:
        # PyYAML lets int() and float() errors through (an integer of 5000 digits).
        errors.append((index, FieldError("", f"invalid YAML value: {e}")))
        count += 1
    finally:
        if loader is not None:
            loader.dispose()
    return documents, errors, count


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        what = error.problem or error.context or "invalid YAML"
        if error.context and error.problem:
            what = f"{error.problem} ({error.context})"
        if mark is not None:
            return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {what}"
        return f"invalid YAML: {what}"
    if isinstance(error, yaml.reader.ReaderError):
        before = text[: error.position]
        line = before.count("\n") + 1
        column = error.position - (before.rfind("\n") + 1) + 1
        char = error.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        return (
            f"invalid YAML at line {line}, column {column}: character {shown} is not allowed"
            f" ({error.reason})"
        )
    return f"invalid YAML: {error}"


def _structure_problem(data: object) -> str | None:
    """Why ``data`` is too deep, too big once shared parts are expanded, or cyclic."""
    # Post-order walk with memoised sizes: shared containers (YAML aliases) cost their
    # expanded size at every use without being walked again.
    sizes: dict[int, tuple[int, int, int]] = {}  # id -> (values, text chars, depth)
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        item, children_done = stack.pop()
        children = _children(item)
        if children is None:
            continue
        ident = id(item)
        if children_done:
            active.discard(ident)
            values, chars, depth = 1, 0, 0
            for child in children:
                c_values, c_chars, c_depth = _size_of(child, sizes)
                values += c_values
                chars += c_chars
                depth = max(depth, c_depth)
            depth += 1
            sizes[ident] = (values, chars, depth)
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            if values > MAX_NODES:
                return (
                    f"holds more than {MAX_NODES} values once YAML aliases are expanded"
                    " (an alias bomb?)"
                )
            if chars > MAX_TEXT_CHARS:
                return (
                    f"holds more than {MAX_TEXT_CHARS} characters of text once YAML aliases"
                    " are expanded (an alias bomb?)"
                )
            continue
        if ident in sizes:
            continue
        if ident in active:
            return _CYCLE
        active.add(ident)
        stack.append((item, True))
        for child in children:
            if _children(child) is not None:
                if id(child) in active:
                    return _CYCLE
                if id(child) not in sizes:
                    stack.append((child, False))
            elif not isinstance(child, _JSON_SCALARS):
                return (
                    f"holds a value of type {type(child).__name__}; an experiment holds only"
                    " strings, numbers, booleans, nulls, lists and mappings"
                )
        if len(stack) > MAX_NODES:
            return f"holds more than {MAX_NODES} values"
    return None


def _children(item: Any) -> list[Any] | None:
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, list | tuple):
        return list(item)
    return None


def _size_of(item: Any, sizes: dict[int, tuple[int, int, int]]) -> tuple[int, int, int]:
    if _children(item) is not None:
        return sizes[id(item)]
    return 1, len(item) if isinstance(item, str) else 0, 0


# --- shape errors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _ShapeError:
    error: FieldError
    data_path: tuple[Hashable, ...]
    type: str
    element_is_object: bool


def _parse_document(data: Any) -> tuple[Experiment | None, list[FieldError]]:
    """The defaulted experiment (when its shape is right) and every problem found."""
    if not isinstance(data, dict):
        return None, [
            FieldError(
                "",
                "an experiment must be a mapping with apiVersion, kind, metadata and spec,"
                f" got {_describe(data)}",
            )
        ]
    try:
        try:
            exp = _validate_model(data).with_defaults()
        except ValidationError as e:
            return None, _shape_and_semantic_errors(data, e)
        return exp, validate_experiment(exp)
    except RecursionError:
        return None, [FieldError("", f"nested more than {MAX_DEPTH} levels deep")]


def _validate_model(data: Any) -> Experiment:
    # Strict: Kubernetes does not turn "3" into 3 or true into 1, so neither do we. Aliases
    # only: Katib's YAML is camelCase, and a snake_case key is a typo there.
    return Experiment.model_validate(data, strict=True, by_alias=True, by_name=False)


def _shape_and_semantic_errors(data: dict[str, Any], error: ValidationError) -> list[FieldError]:
    shape = _shape_errors(error, data)
    reported = [s.error for s in shape]
    # Drop what is malformed and check the rest, so the user sees the other problems now
    # rather than after fixing the types; semantic errors next to a shape error are noise.
    pruned: Any = copy.deepcopy(data)
    errors = shape
    for _ in range(3):
        for item in errors:
            _prune(pruned, item)
        try:
            exp = _validate_model(pruned).with_defaults()
        except ValidationError as e:
            errors = _shape_errors(e, pruned)
            continue
        shape_paths = [e.path for e in reported]
        semantic = [
            e for e in validate_experiment(exp) if not any(_related(e.path, p) for p in shape_paths)
        ]
        return reported + semantic
    return reported


def _shape_errors(error: ValidationError, data: Any) -> list[_ShapeError]:
    """Pydantic's errors as field errors on the paths written in ``data``."""
    out: list[_ShapeError] = []
    # Type errors per path: a union (port: an int or a string) fails once per member, and
    # the user should read one message listing what would do.
    unions: dict[str, int] = {}
    for detail in error.errors():
        data_path, rest = _locate(data, detail["loc"])
        etype = detail["type"]
        is_key = etype == "invalid_key" or (bool(rest) and rest[-1] == "[key]")
        got = _describe(detail.get("input"))
        shown = data_path
        if is_key:
            message = f"key must be a string, got {got}"
        elif etype == "missing" and rest:
            shown = (*data_path, rest[0])
            message = "is required"
        elif etype == "extra_forbidden":
            message = _unknown_field(data_path)
        elif etype in _TYPE_MESSAGES:
            path = _format_path(shown)
            if path in unions:
                merged = out[unions[path]]
                wanted = _TYPE_MESSAGES[etype].removeprefix("must be ")
                head, _, tail = merged.error.message.partition(", got ")
                out[unions[path]] = _ShapeError(
                    FieldError(path, f"{head} or {wanted}, got {tail}"),
                    merged.data_path,
                    merged.type,
                    merged.element_is_object,
                )
                continue
            unions[path] = len(out)
            message = f"{_TYPE_MESSAGES[etype]}, got {got}"
        else:
            message = detail["msg"][:1].lower() + detail["msg"][1:]
        out.append(
            _ShapeError(
                FieldError(_format_path(shown), message),
                data_path,
                etype,
                element_is_object=etype in _ELEMENT_IS_OBJECT and not is_key,
            )
        )
    return out


def _locate(data: Any, loc: Iterable[int | str]) -> tuple[tuple[Hashable, ...], list[Any]]:
    """Split a pydantic error location into the part that exists in ``data`` and the rest.

    The rest holds pydantic's own tags (a union member's type, ``[key]``) or the name of a
    missing field.
    """
    path: list[Hashable] = []
    current: Any = data
    items = list(loc)
    for i, item in enumerate(items):
        if isinstance(current, dict) and _has_key(current, item):
            path.append(item)
            current = current[item]
        elif (
            isinstance(current, list)
            and isinstance(item, int)
            and not isinstance(item, bool)
            and 0 <= item < len(current)
        ):
            path.append(item)
            current = current[item]
        else:
            return tuple(path), items[i:]
    return tuple(path), []


def _has_key(mapping: dict[Any, Any], key: Any) -> bool:
    try:
        return key in mapping
    except TypeError:
        return False


def _format_path(path: Iterable[Hashable]) -> str:
    out = ""
    for item in path:
        if isinstance(item, int) and not isinstance(item, bool):
            out += f"[{item}]"
        elif isinstance(item, str) and _IDENTIFIER_RE.match(item):
            out += f".{item}" if out else item
        else:
            out += f"[{item}]"
    return out


def _prune(root: Any, item: _ShapeError) -> None:
    """Remove the malformed value an error points at (or its container, when required)."""
    path = item.data_path
    if item.type == "missing":
        _remove(root, path, replace_with_object=False)
    else:
        _remove(root, path, replace_with_object=item.element_is_object)


def _remove(root: Any, path: tuple[Hashable, ...], *, replace_with_object: bool) -> None:
    if not path:
        return
    parent = root
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return  # already removed with an enclosing value
    last = path[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        if replace_with_object:
            # Keep the list and its indexes: an empty object in place of a malformed one.
            parent[last] = {}
        else:
            _remove(root, path[:-1], replace_with_object=False)


def _related(a: str, b: str) -> bool:
    """Whether one path is, or lies under, the other (top-level sections excepted)."""
    if a == b:
        return True
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    if shorter in ("", "spec", "metadata"):
        return False
    return longer.startswith(shorter + ".") or longer.startswith(shorter + "[")


def _unknown_field(path: tuple[Hashable, ...]) -> str:
    key = path[-1] if path else None
    model = _model_at(path[:-1])
    if not isinstance(key, str) or model is None:
        return "unknown field"
    known = [info.alias or name for name, info in model.model_fields.items()]
    camel = to_camel(key)
    if camel != key and camel in known:
        return f"unknown field (Katib's YAML spells it {camel})"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"unknown field (did you mean {close[0]}?)" if close else "unknown field"


def _model_at(path: tuple[Hashable, ...]) -> type[BaseModel] | None:
    """The model class that validates the value at ``path`` of an Experiment document."""
    annotation: Any = Experiment
    for key in (*path, None):
        # Unwrap ``X | None`` to X.
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
        if key is None:
            break
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {info.alias or name: info for name, info in annotation.model_fields.items()}
            if key not in fields:
                return None
            annotation = fields[key].annotation
        elif typing.get_origin(annotation) is list and isinstance(key, int):
            annotation = typing.get_args(annotation)[0]
        else:
            return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _prefixed(error: FieldError, index: int | None) -> FieldError:
    if index is None:
        return error
    prefix = f"documents[{index}]"
    return FieldError(f"{prefix}.{error.path}" if error.path else prefix, error.message)
