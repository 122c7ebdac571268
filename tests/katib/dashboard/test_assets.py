"""The dashboard's files: vendored code is npm's for the pinned versions, every module an
import names exists, and the wheel carries them all."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from katib.dashboard import _assets

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[3]
STATIC = _assets.STATIC


def test_every_imported_module_and_linked_asset_exists() -> None:
    for js in (STATIC / "js").glob("*.js"):
        for name in re.findall(r"""from\s+["'](\./[^"']+)["']|import\(["'](\./[^"']+)["']\)""",
                               js.read_text()):
            target = next(n for n in name if n)
            assert (js.parent / target).is_file(), f"{js.name} imports {target}"
    page = (STATIC / "index.html").read_text()
    for ref in re.findall(r"\{\{static\}\}/([^\"]+)", page):
        assert (STATIC / ref).is_file(), ref
        assert _assets.asset(ref) is not None, ref


def test_no_asset_is_fetched_from_elsewhere() -> None:
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".css") or path.parent.name == "js":
            text = path.read_text()
            assert not re.search(r"(src|href)=[\"']https?://", text), path
            assert "cdn." not in text, path


def test_vendored_files_match_npm() -> None:
    """`npm ci` of package-lock.json gives byte-identical files (a fresh "build")."""
    if shutil.which("npm") is None:
        if IN_CI:
            pytest.fail("CI needs npm to check the vendored files")
        pytest.skip("npm is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "katib.dashboard.vendor", "--check"],
        capture_output=True, text=True, cwd=REPO, timeout=240,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_wheel_carries_the_dashboard(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, timeout=300,
    )
    wheel = next(tmp_path.glob("katib_local-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in STATIC.rglob("*"):
        if path.is_file():
            assert f"katib/dashboard/static/{path.relative_to(STATIC).as_posix()}" in names, path
    assert "katib/storage/migrations/versions/0003_dashboard.py" in names
