"""Copy (or check) the third-party browser code the dashboard serves.

``python -m katib.dashboard.vendor`` installs ``package-lock.json``'s exact packages with
``npm ci`` into a temporary folder and copies the files of :data:`FILES` into
``static/vendor/``; with ``--check`` it only compares them and exits 1 on a difference (CI
and ``tests/katib/dashboard/test_vendor.py`` run that), so that what is served is what npm
ships for the pinned versions.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
VENDOR = HERE / "static" / "vendor"

#: Served file name -> path inside node_modules.
FILES = {
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
    "uPlot.LICENSE": "uplot/LICENSE",
    "plotly-cartesian.min.js": "plotly.js-cartesian-dist-min/plotly-cartesian.min.js",
    "plotly.LICENSE": "plotly.js-cartesian-dist-min/LICENSE",
}


def install(folder: Path) -> Path:
    """``npm ci`` of the pinned packages in ``folder``; returns its node_modules."""
    for name in ("package.json", "package-lock.json"):
        shutil.copy(HERE / name, folder / name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        check=True,
    )
    return folder / "node_modules"


def differences(modules: Path) -> list[str]:
    """Served files that differ from (or are missing in) the installed packages."""
    out = []
    for served, source in FILES.items():
        ours = VENDOR / served
        if not ours.is_file() or ours.read_bytes() != (modules / source).read_bytes():
            out.append(served)
    return out


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        modules = install(Path(tmp))
        if "--check" in argv:
            changed = differences(modules)
            for name in changed:
                print(f"static/vendor/{name} differs from npm's; run python -m "
                      "katib.dashboard.vendor", file=sys.stderr)
            return 1 if changed else 0
        VENDOR.mkdir(parents=True, exist_ok=True)
        for served, source in FILES.items():
            shutil.copy(modules / source, VENDOR / served)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
