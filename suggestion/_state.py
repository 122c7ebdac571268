"""Algorithm state as plain data: what ``dump_state`` may hold, and how it is read back.

The controller stores an algorithm's state in the database; anyone who can write there
must not be able to run code in the controller. So a state is JSON data only, never a
pickle: numbers, strings, lists and objects, plus tagged numpy arrays (element by element, or
packed as base64 by :func:`pack`) and random-generator states (:func:`encode` /
:func:`decode`). Reading a state back checks every tag, dtype and
shape; anything else raises :class:`InvalidStateError`, and the controller then rebuilds the
algorithm from the trial history and records that in an event.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from katib.errors import KatibError

#: Version of the state layout; a state of another version is rebuilt from the history.
STATE_VERSION = 2

_NUMERIC_KINDS = frozenset("biuf")  # bool, signed, unsigned, float


class InvalidStateError(KatibError):
    """A stored algorithm state that cannot be loaded (damaged, foreign, or of another
    version). The controller rebuilds the algorithm from the trial history instead."""


def encode(value: Any) -> Any:
    """``value`` as JSON data; numpy arrays, scalars and RandomState states are tagged."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int) and not isinstance(value, np.integer):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"arrays of {value.dtype} cannot be stored")
        return {
            "__ndarray__": value.dtype.str,
            "shape": list(value.shape),
            "data": [encode(float(x)) if value.dtype.kind == "f" else x.item()
                     for x in value.ravel()],
        }
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, np.random.RandomState):
        name, keys, pos, has_gauss, cached = value.get_state()
        return {
            "__random_state__": str(name),
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"state keys must be strings, got {key!r}")
            out[key] = encode(item)
        return out
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    raise TypeError(f"{type(value).__name__} cannot be stored in an algorithm state")


def pack(array: np.ndarray) -> dict[str, Any]:
    """A numeric array as compact JSON data: its bytes in base64, exact to the last bit.

    :func:`encode` writes every element as a JSON number, which is fine for a few values;
    the weights of a neural network (ENAS' controller) are tens of thousands of them.
    """
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"arrays of {array.dtype} cannot be stored")
    contiguous = np.ascontiguousarray(array)
    return {
        "__packed__": contiguous.dtype.str,
        "shape": list(contiguous.shape),
        "base64": base64.b64encode(contiguous.tobytes()).decode("ascii"),
    }


def decode(data: Any) -> Any:
    """What :func:`encode` made, checked; raises InvalidStateError on anything else."""
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        raise InvalidStateError(f"unexpected {type(data).__name__} in an algorithm state")
    if "__float__" in data:
        text = data["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise InvalidStateError(f"bad float {text!r} in an algorithm state")
        return float(text)
    if "__ndarray__" in data:
        return _array(data)
    if "__packed__" in data:
        return _packed(data)
    if "__random_state__" in data:
        return _random_state(data)
    return {str(key): decode(item) for key, item in data.items()}


def _array(data: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(str(data["__ndarray__"]))
        shape = tuple(int(n) for n in data["shape"])
        items = [decode(x) for x in data["data"]]
        if dtype.kind not in _NUMERIC_KINDS or any(n < 0 for n in shape):
            raise ValueError(f"dtype {dtype}, shape {shape}")
        if math.prod(shape) != len(items):
            raise ValueError(f"{len(items)} values for shape {shape}")
        return np.array(items, dtype=dtype).reshape(shape)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidStateError(f"bad array in an algorithm state: {e}") from e


def _packed(data: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(str(data["__packed__"]))
        shape = tuple(int(n) for n in data["shape"])
        if dtype.kind not in _NUMERIC_KINDS or any(n < 0 for n in shape):
            raise ValueError(f"dtype {dtype}, shape {shape}")
        raw = base64.b64decode(str(data["base64"]), validate=True)
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"{len(raw)} bytes for shape {shape} of {dtype}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise InvalidStateError(f"bad array in an algorithm state: {e}") from e


def _random_state(data: dict[str, Any]) -> np.random.RandomState:
    try:
        if data["__random_state__"] != "MT19937":
            raise ValueError(f"generator {data['__random_state__']!r}")
        keys = np.array([int(k) for k in data["keys"]], dtype=np.uint32)
        if keys.shape != (624,):
            raise ValueError("MT19937 needs 624 keys")
        rng = np.random.RandomState()
        rng.set_state(
            ("MT19937", keys, int(data["pos"]), int(data["has_gauss"]),
             float(data["cached_gaussian"]))
        )
        return rng
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidStateError(f"bad random generator in an algorithm state: {e}") from e


def check_version(state: Mapping[str, Any], algorithm: str) -> None:
    """Raise InvalidStateError unless ``state`` has this module's layout version."""
    version = state.get("version")
    if version != STATE_VERSION:
        raise InvalidStateError(
            f"{algorithm}: the stored state has layout version {version!r}, "
            f"this version reads {STATE_VERSION}"
        )
