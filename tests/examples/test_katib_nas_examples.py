"""Katib's published NAS experiments run unchanged, with the local example trials in place
of their training images.

Each file under tests/fixtures/katib_examples/nas is copied verbatim next to the trial
script its container would run (``RunTrial.py`` for ENAS, ``run_trial.py`` for DARTS), here
the numpy stand-ins of examples/enas-digits and examples/darts-digits, and run to its end.
darts-gpu.yaml asks for a GPU, which the local launcher only hands out if one is visible:
the test makes one visible through CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NAS = REPO / "tests" / "fixtures" / "katib_examples" / "nas"
TRIALS = {
    "enas-cpu.yaml": ("RunTrial.py", REPO / "examples" / "enas-digits" / "train.py"),
    "darts-cpu.yaml": ("run_trial.py", REPO / "examples" / "darts-digits" / "run_trial.py"),
    "darts-gpu.yaml": ("run_trial.py", REPO / "examples" / "darts-digits" / "run_trial.py"),
}

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("name", sorted(TRIALS))
def test_katib_nas_example_runs_unchanged(name: str, tmp_path: Path, katib_home: Path) -> None:
    script, source = TRIALS[name]
    shutil.copy(NAS / name, tmp_path / name)
    shutil.copy(source, tmp_path / script)
    env = dict(os.environ, KATIB_HOME=str(katib_home))
    if "gpu" in name:
        # The trial asks for one GPU: say one is visible (the numpy trial does not use it).
        env["CUDA_VISIBLE_DEVICES"] = "0"
    out = tmp_path / "best.json"
    result = subprocess.run(
        [sys.executable, "-m", "katib", "run", str(tmp_path / name), "--output", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    best = json.loads(out.read_text())
    assert best["condition"] == "Succeeded"
    assert best["bestTrialName"] is not None
    (metric,) = best["observation"]["metrics"]
    if name.startswith("darts"):
        assert metric["name"] == "Best-Genotype"
        assert metric["latest"].startswith("Genotype(normal=")
        assert metric["min"] is None and metric["max"] is None
    else:
        assert metric["name"] == "Validation-Accuracy" and 0 < metric["latest"] <= 1
