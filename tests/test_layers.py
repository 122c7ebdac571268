"""The layers of shared/DESIGN.md hold: import-linter's contracts, and public names only.

``lint-imports`` (run by .ci/run with the contracts in ``.importlinter``) checks which package
may import which. This test checks the rule import-linter cannot express: across packages,
only public names are imported. A module whose name starts with ``_`` belongs to its parent
package; code outside that package goes through the package's ``__init__`` instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("katib", "suggestion", "trial_runner")


def _owner(module: str) -> str | None:
    """The package a private module belongs to, or None for a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_only_public_names_cross_package_boundaries() -> None:
    graph = grimp.build_graph(*PACKAGES)
    wrong = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            owner = _owner(imported)
            if owner is None or importer == owner or importer.startswith(owner + "."):
                continue
            wrong.append(f"{importer} imports {imported}, private to {owner}")
    assert not wrong, "\n".join(wrong)


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "importlinter.cli", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
