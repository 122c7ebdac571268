"""Katib's ``successCondition`` / ``failureCondition``: GJSON paths over a workload.

Katib evaluates a trial's conditions with `tidwall/gjson <https://github.com/tidwall/gjson>`_
on the whole workload object (``status.conditions.#(type=="Complete")#|#(status=="True")#``)
and counts a condition as met when the result is an object or a non-empty array; the first
element (or the object) gives the reason and message. This module implements the part of
GJSON's path syntax that Katib's defaults and published examples use, with GJSON's own
semantics (checked against gjson v1.17 in the tests):

* ``a.b.c`` keys (``\\.`` escapes a dot), ``0`` array indexes, ``#`` an array's length;
* ``#.key``: ``key`` of every element; after ``#(...)#`` or ``#.``, further ``.key``
  components apply to every element (GJSON's "map"), while ``|`` applies the rest of the
  path to the whole result;
* ``#(query)`` the first element that matches, ``#(query)#`` every element that matches;
  a query is ``path op value`` with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``%``
  (glob match), ``!%`` and a JSON value (``"text"``, a number, ``true``, ``false``,
  ``null``), or just ``path`` (the element has it), ``!path``;
* ``@this`` (the current value) and ``[p1,p2]`` (an array of the paths' values, as in
  Argo's ``status.[@this].#(phase=="Succeeded")#``).

Anything else raises :class:`ConditionSyntaxError`, so a condition we cannot read fails the
trial with a clear message rather than being silently false.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from katib.errors import KatibError

__all__ = ["ConditionSyntaxError", "Met", "condition_met", "gjson_get"]


class ConditionSyntaxError(KatibError, ValueError):
    """The condition is not in the GJSON subset understood here."""


class _Missing:
    """GJSON's non-existent result."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Met:
    """A condition that holds, with the reason and message of what matched (if any)."""

    reason: str = ""
    message: str = ""


def condition_met(obj: Mapping[str, Any], expression: str) -> Met | None:
    """Whether Katib would count ``expression`` as met on ``obj``; None if not.

    Raises:
        ConditionSyntaxError: ``expression`` is outside the supported subset.
    """
    if not expression:
        return None
    result = gjson_get(obj, expression)
    if isinstance(result, Mapping):
        first: Any = result
    elif isinstance(result, list) and result:
        first = result[0]
    else:
        return None
    if isinstance(first, Mapping):
        return Met(str(first.get("reason") or ""), str(first.get("message") or ""))
    return Met()


def gjson_get(obj: Any, path: str) -> Any:
    """The value at a GJSON ``path`` in ``obj``, or :data:`MISSING`."""
    pipes = _split(path, "|")
    value = obj
    for piece in pipes:
        if not piece:
            raise ConditionSyntaxError(f"empty path component in {path!r}")
        value = _get_dotted(value, _split(piece, "."), path)
    return value


def _get_dotted(value: Any, components: Sequence[str], whole: str) -> Any:
    for i, component in enumerate(components):
        if value is MISSING:
            return MISSING
        if component == "#":
            if not isinstance(value, list):
                return MISSING
            rest = components[i + 1 :]
            if not rest:
                return len(value)
            return _map(value, rest, whole)
        if component.startswith("#("):
            matches, every = _query(value, component, whole)
            if matches is MISSING:
                return MISSING
            rest = components[i + 1 :]
            if not every:
                value = matches
                continue
            return _map(matches, rest, whole) if rest else matches
        value = _step(value, component, whole)
    return value


def _map(items: list[Any], rest: Sequence[str], whole: str) -> list[Any]:
    out = []
    for item in items:
        got = _get_dotted(item, rest, whole)
        if got is not MISSING:
            out.append(got)
    return out


def _step(value: Any, component: str, whole: str) -> Any:
    if component == "@this":
        return value
    if component.startswith("@"):
        raise ConditionSyntaxError(f"modifier {component!r} in {whole!r} is not supported")
    if component.startswith("[") and component.endswith("]"):
        paths = _split(component[1:-1], ",")
        out = []
        for sub in paths:
            got = gjson_get(value, sub.strip())
            if got is not MISSING:
                out.append(got)
        return out
    if component.startswith("{") or any(c in component for c in "()"):
        raise ConditionSyntaxError(f"path component {component!r} in {whole!r} is not supported")
    key = component.replace("\\", "")
    if isinstance(value, Mapping):
        if any(c in key for c in "*?"):
            for k, v in value.items():
                if fnmatch.fnmatchcase(str(k), key):
                    return v
            return MISSING
        return value.get(key, MISSING)
    if isinstance(value, list) and key.isdigit():
        index = int(key)
        return value[index] if index < len(value) else MISSING
    return MISSING


_OPERATORS = ("==", "!=", "<=", ">=", "!%", "<", ">", "%")


def _query(value: Any, component: str, whole: str) -> tuple[Any, bool]:
    every = component.endswith(")#")
    end = -2 if every else -1
    if not component.endswith(")") and not every:
        raise ConditionSyntaxError(f"unclosed query {component!r} in {whole!r}")
    test = _parse_query(component[2:end].strip(), whole)
    if not isinstance(value, list):
        return MISSING, every
    matches = [item for item in value if test(item)]
    if every:
        return matches, True
    return (matches[0] if matches else MISSING), False


def _parse_query(body: str, whole: str) -> Any:
    depth, quote, escaped = 0, False, False
    for i, ch in enumerate(body):
        if escaped:
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            continue
        if ch == '"':
            quote = not quote
            continue
        if quote:
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            for op in _OPERATORS:
                if body.startswith(op, i):
                    left = body[:i].strip()
                    right = body[i + len(op) :].strip()
                    return _comparison(left, op, _literal(right, whole), whole)
    negate = body.startswith("!")
    path = body[1:].strip() if negate else body
    if not path:
        raise ConditionSyntaxError(f"empty query in {whole!r}")

    def exists(item: Any) -> bool:
        found = _lhs(item, path, whole) is not MISSING
        return found != negate

    return exists


def _lhs(item: Any, path: str, whole: str) -> Any:
    return item if path in ("", "@this") else gjson_get(item, path)


def _comparison(left: str, op: str, right: Any, whole: str) -> Any:
    def test(item: Any) -> bool:
        value = _lhs(item, left, whole)
        if value is MISSING:
            return False
        return _compare(value, op, right)

    return test


def _compare(value: Any, op: str, right: Any) -> bool:
    if op in ("%", "!%"):
        if not isinstance(value, str) or not isinstance(right, str):
            return op == "!%"
        matched = fnmatch.fnmatchcase(value, right)
        return matched if op == "%" else not matched
    if isinstance(right, bool) or right is None:
        if op == "==":
            return value is right or value == right and type(value) is type(right)
        if op == "!=":
            return not (value is right or value == right and type(value) is type(right))
        return False
    if isinstance(right, str):
        if not isinstance(value, str):
            return op == "!="
        a, b = value, right
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return op == "!="
        a, b = float(value), float(right)  # type: ignore[assignment]
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _literal(text: str, whole: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ConditionSyntaxError(
            f"query value {text!r} in {whole!r} is not a JSON value (quote strings)"
        ) from None


def _split(path: str, sep: str) -> list[str]:
    """Split ``path`` at ``sep`` outside brackets, quotes and escapes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote, escaped = 0, False, False
    for ch in path:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\":
            current.append(ch)
            escaped = True
            continue
        if ch == '"':
            quote = not quote
        elif not quote:
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif ch == sep and depth == 0:
                parts.append("".join(current))
                current = []
                continue
        current.append(ch)
    if depth != 0 or quote:
        raise ConditionSyntaxError(f"unbalanced brackets or quotes in {path!r}")
    parts.append("".join(current))
    return parts
