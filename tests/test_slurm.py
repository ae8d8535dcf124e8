"""The SLURM grid on a real SLURM: a one-node cluster inside this machine (``slurm_cluster.py``;
installed and started here when absent, as root), the README's command submitted as typed, shrunk
only in size. ``python -m pytest -m slurm``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest
import slurm_cluster
from conftest import REPO
from test_cli import results_under, user_env

pytestmark = pytest.mark.slurm

# The README's "SLURM grid on one machine" command, after `python run.py -m`.
README_GRID = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0",
               "hydra.launcher.tasks_per_node=1", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
               "experiment=synthetic_grid", "norm=bn,gn"]
SHRINK = ["data.generate.clips_per_class={train:4,val:2,test:2}", "data.generate.frames=16",
          "trainer.max_epochs=1", "data.num_test_clips=2", "data.num_test_crops=1"]


@pytest.fixture(scope="module")
def cluster():
    up = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    daemons = [] if up else slurm_cluster.start()
    yield
    slurm_cluster.stop(daemons)


def sweep(cwd, *args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run.py"), "-m", *README_GRID, *args], cwd=cwd,
                          env=user_env(), capture_output=True, text=True, timeout=timeout)


def test_readme_slurm_grid_runs_every_cell_as_a_job_then_the_report(cluster, tmp_path):
    proc = sweep(tmp_path, *SHRINK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = results_under(tmp_path / "logs" / "multiruns")
    assert sorted(r["norm"] for r in runs) == ["bn", "gn"] and all(r["test_top1"] is not None for r in runs)
    (sweep_dir,) = (tmp_path / "logs" / "multiruns").iterdir()
    assert len(list((sweep_dir / ".submitit").glob("*/*_log.out"))) == 2  # two SLURM jobs ran them
    report = subprocess.run([sys.executable, "-m", "video_gn.report", str(sweep_dir)], cwd=tmp_path,
                            env=user_env(), capture_output=True, text=True)
    assert report.returncode == 0 and "| BN |" in report.stdout and "| GN |" in report.stdout


def test_a_cell_that_fails_is_one_line_with_its_job_log(cluster, tmp_path):
    proc = sweep(tmp_path, *SHRINK, "data.crop_size=32,999")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: data.crop_size=999 is larger than") and "(SLURM job " in line
    log = line.rsplit(", log ", 1)[1].rstrip(")")
    assert "data.crop_size=999" in open(log).read()


def test_a_job_killed_from_outside_is_reported_not_waited_on(cluster, tmp_path):
    """No accounting here (sacct fails): the launcher's watcher asks squeue."""
    started = time.time()
    sweep_proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), "-m", *README_GRID, *SHRINK[:-3],
                                   "trainer.max_epochs=50"], cwd=tmp_path, env=user_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = ""
    while not job and time.time() - started < 300:
        time.sleep(2)
        job = next(iter(sorted(subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True,
                                              text=True).stdout.split())), "")
        job = job.split("|")[0] if job.endswith("|RUNNING") else ""
    subprocess.run(["scancel", job.split("_")[0]], check=True)  # the whole array
    _, stderr = sweep_proc.communicate(timeout=240)
    assert sweep_proc.returncode == 1
    assert re.search(rf"error: SLURM job {job.split('_')[0]}_\d of the sweep ended without a result "
                     r"\(CANCELLED\); its log: \S+_log\.err", stderr), stderr[-2000:]
