"""Faults real users bring to `python run.py`: manifests that disagree with the config, config
values out of range, a damaged last.ckpt, a disk that fills up while a checkpoint is written, and
resumes that must not lose history. Each checks what the user gets: one line naming the key or
file, a counted failure with its reason, and nothing already trained lost."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, compose_config

from video_gn.config.checks import check_config
from video_gn.data.manifest import ClipRecord, read_manifest, write_manifest
from video_gn.errors import ConfigError, ResourceError
from video_gn.train import train


def tiny_config(root, out, *overrides):
    return compose_config([*TINY, f"data.root={root}", *overrides], output_dir=out)


@pytest.fixture
def data(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    return root


# --- manifests checked against the config before the first step -----------------------------------

def test_label_outside_num_classes_names_the_manifest_and_line(data, tmp_path):
    records = read_manifest(data, "train")
    records[4] = ClipRecord(records[4].path, 3, "class 3", records[4].num_frames, records[4].fps)
    write_manifest(data, "train", records)
    with pytest.raises(ConfigError, match=rf"{data / 'train.csv'}:6: label 3 is outside \[0, "
                                          r"data.num_classes=3\)"):
        train(tiny_config(data, tmp_path / "run", "trainer.max_epochs=1"))
    assert not (tmp_path / "run" / "checkpoints").exists()  # before the first step


def test_unlabelled_split_cannot_be_trained_on(data, tmp_path):
    records = read_manifest(data, "val")
    write_manifest(data, "val", [ClipRecord(r.path, -1, "", r.num_frames, r.fps) for r in records])
    with pytest.raises(ConfigError, match=r"val\.csv:2: label -1 .*an unlabelled row"):
        train(tiny_config(data, tmp_path / "run", "trainer.max_epochs=1"))


def test_short_and_missing_videos_are_counted_up_front_and_never_trained_on(data, tmp_path):
    records = read_manifest(data, "train")
    short = ClipRecord(records[0].path, records[0].label, records[0].label_name, 5, records[0].fps)
    missing = ClipRecord("train/never_downloaded.mp4", 0, "x", 12, 15.0)
    write_manifest(data, "train", records[1:] + [short, missing])
    # One batch of training: on old main the missing file counted only if that batch drew it.
    run = tmp_path / "run"
    train(tiny_config(data, run, "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                      "test_after_fit=false"))
    results = json.loads((run / "results.json").read_text())
    with (run / "load_failures.csv").open() as f:
        listed = {r["path"]: r["reason"] for r in csv.DictReader(f)}
    assert results["load_failures"] == 2 and set(listed) == {str(data / short.path), str(data / missing.path)}
    # TINY clips: 4 frames every 2 -> 7 frames from first to last.
    assert listed[str(data / short.path)].startswith("too_short: 5 frames, a clip needs 7 (data.frames_per_clip=4")
    assert listed[str(data / missing.path)].startswith("missing")
    # data.short_videos=loop keeps the short one (looped), as PySlowFast does; the missing one is still out.
    from hydra.utils import instantiate

    from video_gn.data.datamodule import VideoDataModule  # noqa: F401 (the class the config builds)
    dm = instantiate(tiny_config(data, tmp_path / "r2", "data.short_videos=loop").data)
    dm.setup("fit")
    assert len(dm.records["train"]) == len(records) and list(dm.unusable_videos) == [str(data / missing.path)]


# --- every config value checked when the run is built ----------------------------------------------

@pytest.mark.parametrize("overrides,message", [
    (["norm.num_groups=0"], "norm.num_groups=0: must divide every width of model.arch=small (32, 64, 128, 256); "
                            "allowed: 1, 2, 4, 8, 16, 32"),
    (["norm.num_groups=12"], "norm.num_groups=12: must divide every width"),
    (["norm=gn", "norm.group_size=48"], "norm.group_size=48: must divide every width"),
    (["norm.group_size=0"], "norm.group_size=0: must divide every width"),
    (["data.batch_size_per_device=0"], "data.batch_size_per_device=0: must be a number >= 1"),
    (["optim.base_lr=-0.1"], "optim.base_lr=-0.1: must be a number > 0"),
    (["optim.lr=abc"], "optim.lr=abc: must be a number > 0"),
    (["model=i3d_r50", "model.depth=49"], "model: model.depth=49 is not a depth of model.arch=i3d: one of 50, 101"),
    (["optim.lr=-1"], "optim.lr=-1: must be a number > 0"),
    (["optim.weight_decay=-0.0001"], "optim.weight_decay=-0.0001: must be a number >= 0"),
    (["optim.momentum=1.5"], "optim.momentum=1.5: must be in [0, 1)"),
    (["data.frames_per_clip=0"], "data.frames_per_clip=0: must be a number >= 1"),
    (["model=i3d_r50", "data.frames_per_clip=4"],
     "data.frames_per_clip=4 is below the temporal kernel of model.arch=i3d's first conv (5 frames)"),
    (["data.crop_size=40", "data.train_short_side=[40,48]"],
     "data.crop_size=40 is larger than data.eval_short_side=32"),
    (["data.crop_size=28"], "data.crop_size=28 is larger than the smallest training short side "
                            "data.train_short_side[0]=24"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: must be a number of epochs >= 1"),
    # Lightning's -1 ("until max_steps") would make the run one schedule epoch: warmup never ending
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1: must be a number of epochs >= 1 (the LR warmup"),
    (["data.num_test_clips=0"], "data.num_test_clips=0: must be a number >= 1"),
    (["data.decoder=ffmpeg"], "data.decoder=ffmpeg: must be one of decord, pyav"),
    (["data.std=[0.2,0,0.2]"], "data.std=[0.2, 0, 0.2]: numbers, every std > 0"),
])
def test_config_value_out_of_range_names_key_and_range(data, tmp_path, overrides, message):
    if overrides[0] == "model=i3d_r50":  # its own sizes: TINY's model.width is not an I3D setting
        cfg = compose_config(overrides)
    else:
        cfg = tiny_config(data, tmp_path, *overrides)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert message in str(err.value)


def test_every_shipped_config_passes_the_checks_and_each_is_checked():
    experiments = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
    for overrides in [[f"experiment={e}", "model.init=scratch"] for e in experiments] + [[]]:
        check_config(compose_config(overrides))
        with pytest.raises(ConfigError, match="data.crop_size=999 is larger than"):  # and it checks
            check_config(compose_config([*overrides, "data.crop_size=999"]))


def run_py(cwd, *args):
    env = {k: v for k, v in os.environ.items() if k != "PROJECT_ROOT"}
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there: the run would start")


@pytest.mark.parametrize("override,message", [
    ("norm.num_groups=12", "error: norm.num_groups=12: must divide every width"),
    ("trainer.max_epochs=0", "error: trainer.max_epochs=0: must be a number of epochs >= 1"),
    # Trainer settings this machine or Lightning cannot honour (they were Hydra InstantiationExceptions)
    pytest.param("trainer=gpu", "error: trainer.accelerator=gpu: No supported gpu backend found!; this machine "
                 "has no CUDA GPU: run on the CPU with trainer=cpu (one process) or trainer=ddp_cpu", marks=NO_CUDA),
    pytest.param("experiment=k400_i3d_r50_gn_32x2_b8 model.init=scratch", "error: trainer.accelerator=gpu: "
                 "No supported gpu backend found!; this machine has no CUDA GPU", marks=NO_CUDA),
    ("trainer.devices=3", "error: trainer.devices=3 on the CPU accelerator: several CPU processes train with "
                          "trainer=ddp_cpu (DDP over gloo, BN per process): python run.py trainer=ddp_cpu "
                          "trainer.devices=3"),
    ("trainer.devices=0", "error: trainer.devices=0: must be a number of devices >= 1 (or -1: all)"),
    ("+trainer.strategy=ddp_spawnn", "error: trainer.strategy=ddp_spawnn: You selected an invalid strategy name"),
    ("trainer.precision=fp8", "error: trainer.precision=fp8: Precision 'fp8' is invalid"),
])
@pytest.mark.heavy
def test_cli_config_error_is_one_line_and_no_run_folder(data, tmp_path, override, message):
    proc = run_py(tmp_path, f"data.root={data}", *override.split())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message)
    assert not list((tmp_path / "logs" / "runs").iterdir())


# --- resume never loses history ----------------------------------------------------------------------

def metrics_rows(run: Path) -> list[dict]:
    with (run / "csv" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.heavy
def test_resume_keeps_every_earlier_metrics_row(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(data, run, "trainer.max_epochs=1", "test_after_fit=false"))
    before = metrics_rows(run)
    assert {r["epoch"] for r in before if r["epoch"]} == {"0"}
    train(tiny_config(data, run, "trainer.max_epochs=2", "test_after_fit=false"))  # resumes last.ckpt
    after = metrics_rows(run)
    assert {r["epoch"] for r in after if r["epoch"]} == {"0", "1"}  # old main: only epoch 1
    assert after[: len(before)] == [{k: r.get(k, "") for k in after[0]} for r in before]
    steps = [(r["step"], tuple(sorted(k for k, v in r.items() if v))) for r in after]
    assert len(steps) == len(set(steps))  # no row logged twice


@pytest.mark.heavy
def test_corrupt_last_checkpoint_is_a_clear_error_before_anything_changes(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(data, run, "trainer.max_epochs=1", "test_after_fit=false"))
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a copy cut short
    def files():  # all but Hydra's own (.hydra/, run.log), which record every invocation
        return {p: p.read_bytes() for p in run.rglob("*")
                if p.is_file() and ".hydra" not in p.parts and p.name != "run.log"}

    snapshot = files()
    proc = run_py(tmp_path, *TINY, f"data.root={data}", "trainer.max_epochs=2", f"hydra.run.dir={run}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"the run folder's checkpoint {last} cannot be read" in proc.stderr
    assert "Move it away to start this run over" in proc.stderr
    assert files() == snapshot


def checkpoint_epoch(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["epoch"]


def test_failed_checkpoint_write_keeps_the_previous_ones(data, tmp_path, monkeypatch):
    """ENOSPC at the write call of epoch 2's checkpoints (simulated; the real full disk is below)."""
    import video_gn.record.checkpoints as checkpoint_io

    writes = []
    real_fsync = os.fsync

    def fsync(fd):
        writes.append(fd)
        if len(writes) > 2:  # epoch 1 writes the best and the last checkpoint; then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(checkpoint_io.os, "fsync", fsync)
    run = tmp_path / "run"
    with pytest.raises(ResourceError, match="No space left on device. The checkpoints written before are intact"):
        train(tiny_config(data, run, "trainer.max_epochs=3", "test_after_fit=false"))
    checkpoints = sorted((run / "checkpoints").iterdir())
    assert [p.name for p in checkpoints if p.name.startswith(".")] == []  # no half-written file
    assert {checkpoint_epoch(p) for p in checkpoints} == {0}  # both epoch-1 checkpoints load, intact
    monkeypatch.setattr(checkpoint_io.os, "fsync", real_fsync)
    train(tiny_config(data, run, "trainer.max_epochs=3", "test_after_fit=false"))  # the same command again
    assert checkpoint_epoch(run / "checkpoints" / "last.ckpt") == 2


@pytest.mark.heavy
def test_real_full_disk_during_a_checkpoint_keeps_the_previous_ones(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(run)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root; the simulated test covers this")
    try:  # a checkpoint of the tiny net is 16 MB: epoch 1's two fit, epoch 2's third does not
        proc = run_py(tmp_path, *TINY, f"data.root={data}", "trainer.max_epochs=3", "test_after_fit=false",
                      f"hydra.run.dir={run}")
        assert proc.returncode == 3 and "Traceback" not in proc.stderr
        assert "No space left on device. The checkpoints written before are intact" in proc.stderr
        assert {checkpoint_epoch(p) for p in (run / "checkpoints").iterdir()} == {0}
    finally:
        subprocess.run(["umount", "-l", str(run)], check=False)


def test_batch_larger_than_the_training_set_is_an_error_not_zero_steps(data, tmp_path):
    """12 training videos, 16 per batch: with drop_last not one step ran, and results.json said so
    only by "epochs": 0."""
    with pytest.raises(ConfigError, match=r"data.batch_size_per_device=16 is larger than the 12 usable "
                                          r"training videos per device"):
        train(tiny_config(data, tmp_path / "run", "data.batch_size_per_device=16", "trainer.max_epochs=1"))
