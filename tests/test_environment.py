"""The test environment is the one that was tested: the versions in ``requirements/test.lock``.

A newcomer's ``pip install -e '.[test]'`` without the lock may pull newer releases than CI
ran (pytest 9.2 once broke schemathesis' plugin this way); these tests say so loudly, with
the command that installs the tested versions, instead of letting a failure elsewhere
look like a bug in the project.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "test.lock"
INSTALL = "pip install -c requirements/test.lock -e '.[test]'"


def _locked() -> dict[str, Version]:
    """Package → locked version, for this interpreter (markers evaluated)."""
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        (spec,) = req.specifier
        assert spec.operator == "==", f"{LOCK.name}: {line!r} is not a pin"
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for r in project["optional-dependencies"]["test"]]
    return reqs


def test_installed_versions_are_the_locked_ones() -> None:
    wrong = []
    for name, pinned in sorted(_locked().items()):
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            wrong.append(f"{name}: not installed (locked {pinned})")
            continue
        if installed != pinned:
            wrong.append(f"{name}: {installed} installed, {pinned} tested")
    assert not wrong, (
        "this environment differs from the tested one:\n  "
        + "\n  ".join(wrong)
        + f"\ninstall the tested versions with: {INSTALL}"
    )


def test_lock_covers_and_satisfies_every_declared_dependency() -> None:
    locked = _locked()
    problems = []
    for req in _declared():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req}: missing from the lock")
        elif not req.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{req}: the lock has {locked[name]}")
    assert not problems, (
        "requirements/test.lock is stale against pyproject.toml:\n  "
        + "\n  ".join(problems)
        + "\nrefresh it as docs/development.md says"
    )
