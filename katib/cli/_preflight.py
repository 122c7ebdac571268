"""What ``katib validate`` and ``katib run`` can tell before anything starts, beyond validity.

A valid experiment may still be unable to run on this machine: its trial command names a
script that is not here (a published example's ``/opt/...`` path, a typo), or a program
that is not installed. Each trial would then fail with ``exited with code 2`` and the cause
only in its log; these checks say it once, up front, as warnings (the experiment is valid: on
a cluster the image has the script).

An unknown algorithm that a package beside the file provides (``examples/plugin-algorithm``)
gets a hint saying to install that package.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

from katib.errors import FieldError
from katib.spec import Experiment, primary_container

#: Interpreters whose first non-option argument is a script file.
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
#: Python options that take a value as the next argument.
_PYTHON_VALUE_OPTIONS = ("-W", "-X", "--check-hash-based-pycs")
#: Shells and launchers whose arguments are not checked (the script is inside a string).
_UNCHECKED = ("sh", "bash", "zsh", "dash", "env", "mpirun", "torchrun", "horovodrun")


def command_warnings(exp: Experiment, source_dir: Path) -> list[str]:
    """Problems of the trial command that would fail every trial on this machine.

    Relative paths resolve as the local launcher resolves them: against ``source_dir`` (the
    YAML file's folder), then the container's ``workingDir``.
    """
    try:
        container = primary_container(exp)
    except Exception:  # noqa: BLE001 - no inline trial template: nothing to check here
        return []
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    where = f"spec.trialTemplate.trialSpec (container {container.get('name')})"
    if not command:
        return [
            f"{where}: no command: locally the image's entrypoint is not known, so every "
            "trial would fail; give the container a `command`"
        ]
    argv = [*command, *args]
    working_dir = str(container.get("workingDir") or "")
    if "${" in working_dir:
        return []
    cwd = source_dir / working_dir if working_dir else source_dir
    resolve = "relative paths resolve against the YAML file's folder" + (
        ", then workingDir" if working_dir else ""
    )
    exe = argv[0]
    if "${" in exe:
        return []
    name = os.path.basename(exe)
    if _PYTHON.match(name):
        script = _python_script(argv[1:])
        if script is None or "${" in script:
            return []
        path = Path(script) if os.path.isabs(script) else cwd / script
        if path.exists():
            return []
        return [
            f"{where}: the trial runs `{name} {script}`, but {path} does not exist on this "
            f"machine, so every trial would fail ({resolve}; locally the container image is "
            "not used)"
        ]
    if name in _UNCHECKED:
        return []
    if "/" in exe:
        path = Path(exe) if os.path.isabs(exe) else cwd / exe
        if not path.exists():
            return [
                f"{where}: the trial command {exe} does not exist on this machine ({path}), "
                f"so every trial would fail ({resolve})"
            ]
        return []
    if shutil.which(exe) is None:
        return [
            f"{where}: the trial command {exe!r} is not found on this machine's PATH, so every "
            "trial would fail"
        ]
    return []


def _python_script(args: list[str]) -> str | None:
    """The script ``python ARGS`` runs, or None (``-m``, ``-c``, or an interactive session)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-m", "-c") or arg.startswith(("-m", "-c")) and not arg.startswith("--"):
            return None
        if arg in _PYTHON_VALUE_OPTIONS:
            skip = True
            continue
        if arg == "-":
            return None
        if arg.startswith("-"):
            continue
        return arg
    return None


def plugin_hint(error: FieldError, experiment_file: str) -> str | None:
    """For an unknown algorithm that a package beside the file registers, how to install it.

    The package is a folder with a ``pyproject.toml`` whose ``katib.suggestion`` entry points
    name the algorithm: the file's folder or one of its parents (up to three levels).
    """
    if not error.path.endswith("algorithmName") or "unknown algorithm" not in error.message:
        return None
    match = re.search(r"unknown algorithm '([^']+)'", error.message)
    if match is None:
        return None
    algorithm = match.group(1)
    folder = Path(experiment_file).resolve().parent
    for candidate in [folder, *folder.parents][:4]:
        project = candidate / "pyproject.toml"
        if not project.is_file():
            continue
        try:
            data: dict[str, Any] = tomllib.loads(project.read_text())
        except (OSError, ValueError):
            continue
        entry_points = (data.get("project") or {}).get("entry-points") or {}
        if algorithm in (entry_points.get("katib.suggestion") or {}):
            shown = os.path.relpath(candidate)
            return (
                f"the package in {shown} registers the algorithm {algorithm!r}: install it "
                f"first (pip install -e {shown})"
            )
    return None
