"""The package as a normal (non-editable) install puts it: the configs travel inside it, and the
entry points run from a folder that is not the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, TINY

# What `pip install .` builds from: the files of a clone (no egg-info, no build folder of ours).
SOURCES = ("video_gn", "data_prep", "hydra_plugins", "pyproject.toml", "README.md")


@pytest.mark.heavy
def test_a_normal_install_runs_summary_training_and_predict_from_another_folder(tmp_path, tiny_data):
    source, site, elsewhere = tmp_path / "source", tmp_path / "site", tmp_path / "elsewhere"
    source.mkdir()
    elsewhere.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (REPO / name).is_dir() else {}))
    # --no-build-isolation: the venv's setuptools builds it (no registry needed)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True, text=True)
    shutil.rmtree(source)  # nothing may read the sources any more
    # the script as a user copies it out of a clone; the package comes from the install only
    shutil.copy(REPO / "run.py", elsewhere / "run.py")
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True)

    where = run("-c", "import video_gn; print(video_gn.__file__)")
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    summary = run("-m", "video_gn.summary", "model=small", "data=synthetic")
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.startswith("small / norm=gn   input C×T×H×W = 3×32×56×56")
    fast = run("run.py", "debug=fast", *TINY, f"data.root={tiny_data}")
    assert fast.returncode == 0, fast.stderr[-3000:]
    assert "nothing written" in fast.stdout
    trained = run("run.py", *TINY, f"data.root={tiny_data}", "trainer.max_epochs=1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    (checkpoint,) = (elsewhere / "logs" / "runs").glob("*/checkpoints/last.ckpt")
    video = next((tiny_data / "test").glob("*.mp4"))
    predicted = run("-m", "video_gn.predict", str(checkpoint), str(video), "--json")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert '"predictions"' in predicted.stdout
