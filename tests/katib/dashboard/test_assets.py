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


def _luminance(color: str) -> float:
    rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_text_colors_have_readable_contrast() -> None:
    """WCAG AA (4.5:1) for every text color of the stylesheet on the backgrounds it is used on."""
    css = (STATIC / "app.css").read_text()
    var = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", css))
    pairs = [
        ("fg", "bg"), ("fg", "panel"), ("muted", "bg"), ("muted", "panel"), ("accent", "bg"),
        ("accent-fg", "accent"), ("ok", "bg"), ("bad", "bg"), ("warn", "bg"), ("fg", "best"),
    ]
    for text, background in pairs:
        ratio = _contrast(var[text], var[background])
        assert ratio >= 4.5, f"--{text} on --{background}: {ratio:.2f}"
    assert _contrast("#ffffff", "#102a43") >= 4.5  # the header
    assert _contrast("#1b1f24", "#eef4ff") >= 4.5  # a hovered row
