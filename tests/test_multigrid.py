"""Multigrid: the schedule against PySlowFast's published one and the formula, the shape sampler, the LR,
a GN run under long_short (no rebuild), resume mid-cycle, and BN statistics over fixed sub-batches."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import REPO, TINY, USER_DIR, compose_config
from torch import nn

from video_gn.data.dataset import ClipSettings
from video_gn.data.shape_sampler import ShapeBatchSampler
from video_gn.errors import ConfigError
from video_gn.models.norm import NormSpec, SubBatchNorm3d
from video_gn.plan import plan_run
from video_gn.report.cells import measurement
from video_gn.report.runs import norm_label
from video_gn.train import build_module, train
from video_gn.training.multigrid import build_schedule, lr_multiplier, schedule_from_config

SQRT_HALF = 0.5 ** 0.5


def grid_schedule(kind="long", epochs=90):
    """The small-batch benchmark's base shape: 8 clips x 8 frames (stride 2) x 40 px, 90 epochs."""
    return build_schedule(kind, base_clips=8, base_frames=8, base_stride=2, base_crop=40, base_epochs=epochs,
                          base_stage_bounds=[k * epochs * 0.8 / 3 for k in range(4)])


def test_schedule_is_pyslowfasts_kinetics_schedule():
    # PySlowFast's SlowFast R50 multigrid on Kinetics (docs/reference.md, "Multigrid"): base 8 clips/GPU
    # x 32 frames x 224 px, steps [0, 94, 154, 196] of 239 epochs -> 64, 32, 16, 8 clips at (T, crop) = (8,
    # 158), (16, 158), (16, 224), (32, 224), 358 epochs in all.
    s = build_schedule("long_short", base_clips=8, base_frames=32, base_stride=2, base_crop=224,
                       base_epochs=239, base_stage_bounds=[0, 94, 154, 196])
    cycle = [(p.iterations[-1].clips, p.frames, p.crop) for p in s.phases if p.stage == 0]
    assert cycle == [(64, 8, 158), (32, 16, 158), (16, 16, 224), (8, 32, 224)]
    assert s.epochs == 358 and s.phases[-1].finetune and (s.phases[-1].frames, s.phases[-1].crop) == (32, 224)
    assert [p.stage for p in s.phases] == [0] * 4 + [1] * 4 + [2] * 4 + [3]
    # the short cycle at the base shape: crops 112, 158, 224 with 4x, 2x, 1x the clips
    assert [(i.clips, i.crop) for i in s.phases[-1].iterations] == [(32, 112), (16, 158), (8, 224)]


@pytest.mark.parametrize("kind", ["long", "long_short"])
def test_schedule_keeps_clips_x_frames_x_pixels_and_the_clip_span(kind):
    s = grid_schedule(kind)
    volume = 8 * 8 * 40 ** 2
    assert s.epochs == round(90 * 1.5)
    for phase in s.phases:
        for it in phase.iterations:
            # constant up to the rounding of crops and of the batch to whole multiples of the base
            assert 0.75 < it.clips * it.frames * it.crop ** 2 / volume < 1.35, (phase, it)
            assert it.frames * it.stride == 8 * 2  # the same time span per clip
            assert it.clips % 8 == 0
    assert [p.frames for p in s.phases[:4]] == [2, 4, 4, 8]
    assert [p.crop for p in s.phases[:4]] == [round(40 * SQRT_HALF)] * 2 + [40, 40]
    assert [p.batch_factor for p in s.phases[:4]] == [8, 4, 2, 1]
    # PySlowFast's allocation: within a stage every long-cycle shape gets the same iterations, i.e.
    # epochs in proportion to its mean batch (up to whole-epoch rounding)
    epochs = [p.end_epoch - p.start_epoch for p in s.phases if p.stage == 1]
    means = [sum(i.clips for i in p.iterations) / len(p.iterations) for p in s.phases if p.stage == 1]
    for e, m in zip(epochs, means, strict=True):
        assert abs(e / sum(epochs) - m / sum(means)) < 1.5 / sum(epochs)


def test_lr_is_linear_in_the_batch_and_follows_the_base_schedule():
    s = grid_schedule()
    constant = lr_multiplier(s, {"schedule": "constant", "warmup_epochs": 0})
    for phase in s.phases:
        for position in (phase.start_epoch, (phase.start_epoch + phase.end_epoch) / 2):
            assert constant(position) == phase.batch_factor
    cosine = lr_multiplier(s, {"schedule": "cosine", "warmup_epochs": 0})
    # at the start of stage k the multigrid run is where the base run is at its stage bound
    for k, start in enumerate(s.stage_bounds[:-1]):
        base = s.base_stage_bounds[k]
        expected = 0.5 * (1 + math.cos(math.pi * base / 90)) * s.phase_at(start).batch_factor
        assert cosine(start) == pytest.approx(expected, abs=1e-3)
    # within one shape the LR only decays
    first = s.phases[0]
    values = [cosine(first.start_epoch + f * (first.end_epoch - first.start_epoch)) for f in (0, 0.5, 0.99)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    step = lr_multiplier(s, {"schedule": "step", "milestones": [0.5], "gamma": 0.1, "warmup_epochs": 0})
    assert step(s.epochs - 0.5) == pytest.approx(0.1)  # the last base stage's LR at the base shape


def test_shape_sampler_batches_follow_the_schedule_and_shard_the_ranks():
    s = grid_schedule("long_short")
    settings = ClipSettings(frames_per_clip=8, frame_stride=2, crop_size=40, decoder="decord",
                            train_short_side=(40, 50))
    ranks = [ShapeBatchSampler(1000, s, settings, seed=3, world_size=2, rank=r) for r in (0, 1)]
    for epoch in (0, s.phases[1].start_epoch, s.epochs - 1):
        seen = []
        for sampler in ranks:
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler)
            cycle = s.phase_at(epoch).iterations
            for k, batch in enumerate(batches):
                it = cycle[k % len(cycle)]
                assert len(batch) == it.clips
                shape = batch[0].shape
                got = (shape.frames_per_clip, shape.frame_stride, shape.crop_size)
                assert got == (it.frames, it.stride, it.crop)
                # the training short sides scale with the crop (PySlowFast's jitter scales)
                assert shape.train_short_side == (round(40 * it.crop / 40), round(50 * it.crop / 40))
            assert all(key.epoch == epoch and key.seed == 3 for b in batches for key in b)
            seen.append([key.index for b in batches for key in b])
        assert not set(seen[0]) & set(seen[1])  # each rank its own shard
        assert all(len(x) == len(set(x)) for x in seen)  # no clip twice in an epoch
    ranks[0].set_epoch(0)
    again = ShapeBatchSampler(1000, s, settings, seed=3, world_size=2, rank=0)
    assert list(again) == list(ranks[0])  # the epoch's batches depend only on seed and epoch


# --- BN statistics over fixed sub-batches ---------------------------------------------------------

def reference_sub_batch_bn(x, weight, bias, splits, eps=1e-5):
    """float64: sub-batch b holds clips b, b+splits, ...; each normalised with its own statistics."""
    x, out = x.double(), torch.empty_like(x, dtype=torch.float64)
    means, variances = [], []
    for b in range(splits):
        part = x[b::splits]
        mean = part.mean(dim=(0, 2, 3, 4), keepdim=True)
        var = part.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
        out[b::splits] = (part - mean) / torch.sqrt(var + eps) * weight.double().view(1, -1, 1, 1, 1) \
            + bias.double().view(1, -1, 1, 1, 1)
        means.append(mean.flatten())
        variances.append(part.var(dim=(0, 2, 3, 4), unbiased=True))
    return out, torch.stack(means).mean(0), torch.stack(variances).mean(0)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_sub_batch_bn_equals_bn_per_sub_batch(momentum):
    torch.manual_seed(0)
    bn = SubBatchNorm3d(4, sub_batch=3, momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(12, 4, 3, 5, 5) * torch.tensor([1.0, 2, 3, 4]).view(1, 4, 1, 1, 1) + 2
    y = bn(x)
    expected, mean, var = reference_sub_batch_bn(x, bn.weight, bn.bias, splits=4)
    assert torch.allclose(y.double(), expected, atol=1e-5)
    factor = 1.0 if momentum is None else momentum  # the first update of a cumulative average is the value
    assert torch.allclose(bn.running_mean.double(), factor * mean, atol=1e-5)
    assert torch.allclose(bn.running_var.double(), (1 - factor) + factor * var, atol=1e-5)
    y.sum().backward()  # gradients flow to x's graph and the affine parameters
    assert bn.weight.grad is not None and bn.bias.grad is not None
    # a batch of at most sub_batch clips is plain BN; evaluation uses the running statistics
    plain = nn.BatchNorm3d(4, momentum=momentum)
    plain.load_state_dict(bn.state_dict())
    small = torch.randn(3, 4, 3, 5, 5)
    assert torch.allclose(bn(small), plain(small), atol=1e-6)
    bn.eval()
    plain.eval()
    assert torch.allclose(bn(x), plain(x), atol=1e-6)


def test_bn_under_multigrid_is_sub_batch_bn_at_the_base_clips(tmp_path):
    cfg = compose_config(["norm=bn", "multigrid=long", "data.batch_size_per_device=4"], output_dir=tmp_path)
    bns = [m for m in build_module(cfg, plan_run(cfg)).net.modules() if isinstance(m, nn.BatchNorm3d)]
    assert bns and all(isinstance(m, SubBatchNorm3d) and m.sub_batch == 4 for m in bns)
    naive = compose_config(["norm=bn", "multigrid=long", "multigrid.bn_statistics=whole_batch"],
                           output_dir=tmp_path)
    assert not any(isinstance(m, SubBatchNorm3d) for m in build_module(naive, plan_run(naive)).net.modules())
    assert isinstance(NormSpec(kind="bn")(8), nn.BatchNorm3d)


# --- training runs ------------------------------------------------------------------------------

class Probe(L.Callback):
    """Records, per training step: epoch, clip shape, clip indices, LR and the network's identity."""

    steps: list[dict] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        Probe.steps.append({"epoch": trainer.current_epoch, "shape": tuple(batch["video"].shape),
                            "index": batch["index"].tolist(), "net": id(module.net),
                            "weight": module.net.stem.conv.weight.data_ptr()})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        Probe.steps[-1]["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        Probe.steps[-1]["position"] = trainer.current_epoch + batch_idx / trainer.num_training_batches


@pytest.fixture(scope="module")
def multigrid_data(tmp_path_factory):
    """24 training clips: room for the largest multigrid batch at 1 clip per device (16)."""
    from data_prep.synthetic import generate

    root = tmp_path_factory.mktemp("multigrid") / "synthetic"
    return generate(root, num_classes=3, clips_per_class={"train": 8, "val": 2, "test": 2}, frames=12,
                    size=32, workers=1, progress=False)


def multigrid_config(root, out, *overrides):
    return compose_config([*TINY, f"data.root={root}", "data.batch_size_per_device=1",
                           "trainer.max_epochs=4", "multigrid.cycles=1", "multigrid.finetune_fraction=0.25",
                           "+callbacks.probe._target_=test_multigrid.Probe", *overrides], output_dir=out)


@pytest.mark.heavy
def test_gn_trains_under_long_short_without_a_rebuild(multigrid_data, tmp_path):
    cfg = multigrid_config(multigrid_data, tmp_path, "norm=gn", "multigrid=long_short",
                           "test_after_fit=false")
    schedule = schedule_from_config(cfg)
    Probe.steps = []
    train(cfg)
    steps = Probe.steps
    assert {s["epoch"] for s in steps} == set(range(schedule.epochs))
    for epoch in range(schedule.epochs):
        cycle = schedule.phase_at(epoch).iterations
        shapes = [s["shape"] for s in steps if s["epoch"] == epoch]
        expected = [cycle[k % len(cycle)] for k in range(len(shapes))]
        assert shapes == [(it.clips, 3, it.frames, it.crop, it.crop) for it in expected]
    assert len({s["shape"][2:] for s in steps}) >= 4  # frames and crops really changed
    assert len({s["net"] for s in steps}) == 1 and len({s["weight"] for s in steps}) == 1  # never rebuilt
    # every step's LR: the LR rule at 1 clip x the base schedule at the matching point x the batch factor
    peak = cfg.optim.base_lr * 1 / cfg.optim.base_batch
    multiplier = lr_multiplier(schedule, cfg.optim)
    assert all(s["lr"] == pytest.approx(peak * multiplier(s["position"])) for s in steps)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["multigrid"] == json.loads(json.dumps({**schedule.record(), "bn_statistics": None}))
    assert results["max_epochs"] == results["epochs"] == schedule.epochs == 6
    clock = [h["wall_time_s"] for h in results["val_history"]]  # val top-1 against wall time
    assert len(clock) == 6 and 0 < clock[0] and clock == sorted(clock) and clock[-1] <= results["wall_time_s"]
    # the report: its own row, in the table of the base schedule's epochs (beside the baseline's runs)
    assert norm_label(results) == "gn+long_short"
    assert measurement({**results, "test_top1": 0.5})[0].max_epochs == 4


@pytest.mark.heavy
def test_a_run_resumed_mid_cycle_continues_in_the_same_phase(multigrid_data, tmp_path):
    common = ("norm=gn", "multigrid=long", "test_after_fit=false")
    Probe.steps = []
    train(multigrid_config(multigrid_data, tmp_path / "straight", *common))
    straight = Probe.steps
    Probe.steps = []
    stop = ["+callbacks.stop._target_=conftest.StopAfterEpoch", "+callbacks.stop.epoch=1"]
    train(multigrid_config(multigrid_data, tmp_path / "resumed", *common, *stop))
    assert {s["epoch"] for s in Probe.steps} == {0, 1}
    Probe.steps = []
    train(multigrid_config(multigrid_data, tmp_path / "resumed", *common))  # the same command again
    resumed = Probe.steps
    schedule = schedule_from_config(multigrid_config(multigrid_data, tmp_path, *common))
    # stopped inside the first phase (epochs 0-2 at 8 clips x 1 frame x 17 px), resumed in it
    assert resumed[0]["epoch"] == 2 and schedule.phase_at(1) == schedule.phase_at(2) != schedule.phase_at(3)
    keep = ("epoch", "shape", "index", "lr", "position")
    assert ([{k: s[k] for k in keep} for s in resumed]
            == [{k: s[k] for k in keep} for s in straight if s["epoch"] >= 2])
    results = json.loads((tmp_path / "resumed/results.json").read_text())
    assert results["epochs"] == schedule.epochs
    clock = [h["wall_time_s"] for h in results["val_history"]]  # the clock counts the first session
    assert [h["epoch"] for h in results["val_history"]] == list(range(schedule.epochs))
    assert clock == sorted(clock)


def test_multigrid_config_errors_name_the_key(multigrid_data, tmp_path):
    from video_gn.config.checks import check_config

    with pytest.raises(ConfigError, match="multigrid.kind=sometimes"):
        check_config(compose_config(["multigrid=long", "multigrid.kind=sometimes"], output_dir=tmp_path))
    with pytest.raises(ConfigError, match="norm=syncbn"):
        check_config(compose_config(["multigrid=long", "norm=syncbn"], output_dir=tmp_path))
    with pytest.raises(ConfigError, match="multigrid.finetune_fraction=1"):
        check_config(compose_config(["multigrid=long", "multigrid.finetune_fraction=1"], output_dir=tmp_path))
    with pytest.raises(ConfigError, match="optim.milestones"):
        check_config(compose_config(["multigrid=long", "optim.schedule=step", "optim.milestones=[]"],
                                    output_dir=tmp_path))
    # 2 base clips: the long_short cycle's largest batch (16 x 2) does not fit 24 training videos
    cfg = multigrid_config(multigrid_data, tmp_path, "multigrid=long_short", "data.batch_size_per_device=2")
    with pytest.raises(ConfigError, match="largest batch is 32 clips per device"):
        train(cfg)


@pytest.mark.heavy
def test_summary_prints_the_schedule_at_constant_memory():
    out = subprocess.run([sys.executable, "-m", "video_gn.summary", "model=small", "data=synthetic",
                          "multigrid=long_short", "summary.format=json"], cwd=USER_DIR, capture_output=True,
                         text=True, check=True).stdout
    m = json.loads(out)["multigrid"]
    iterations = [i for p in m["phases"] for i in p["iterations"]]
    assert len({(i["frames"], i["crop"]) for i in iterations}) >= 6
    assert all(0.8 < i["activations_vs_base"] < 1.25 for i in iterations)  # the constant-memory claim
    assert 0 < m["compute_vs_base_schedule"] < 1
    # the README's command as typed: the benchmark's design (8 clips x 8 frames x 40², 90 epochs)
    command = [sys.executable, "-m", "video_gn.summary", "experiment=small_batch_grid_fourth",
               "multigrid=long_short"]
    table = subprocess.run(command, cwd=USER_DIR, capture_output=True, text=True, check=True).stdout
    assert table.startswith("small / norm=gn   input C×T×H×W = 3×8×40×40")
    assert "multigrid=long_short: 135 epochs for the base schedule's 90" in table
    assert "   0-19        0     8                      128x2x20² (8)" in table
    assert "training compute vs the base schedule: 0.29" in table


def test_the_base_epochs_are_a_key_of_their_own(tmp_path):
    """Under multigrid trainer.max_epochs means the base schedule's epochs; multigrid.base_epochs
    says so (and wins when set); the plan's epochs are the schedule's."""
    from video_gn.config.checks import check_config

    plan = check_config(compose_config(["multigrid=long", "trainer.max_epochs=10"], output_dir=tmp_path))
    assert plan.schedule.base_epochs == plan.base_epochs == 10 and plan.epochs == 15
    both = ["multigrid=long", "trainer.max_epochs=10", "multigrid.base_epochs=20"]
    plan = check_config(compose_config(both, output_dir=tmp_path))
    assert plan.schedule.base_epochs == 20 and plan.epochs == 30
    with pytest.raises(ConfigError, match="multigrid.base_epochs=0"):
        check_config(compose_config(["multigrid=long", "multigrid.base_epochs=0"], output_dir=tmp_path))


def test_no_multigrid_by_default(tmp_path):
    assert schedule_from_config(compose_config([], output_dir=tmp_path)) is None


def _fake_run(grid, name, test, history):
    folder = grid / name
    folder.mkdir(parents=True)
    val = [{"epoch": k, "top1": top1, "wall_time_s": t} for k, (t, top1) in enumerate(history)]
    result = {"test_top1": test, "best_val_top1": max(h[1] for h in history),
              "wall_time_s": history[-1][0] + 1, "val_history": val}
    (folder / "results.json").write_text(json.dumps(result))


def test_multigrid_grid_summary_times_each_run_to_the_baselines_best(tmp_path):
    """bench/multigrid_grid.py --summarize as typed, on runs whose curves give hand-computed answers:
    the target is the same seed's baseline best val top-1 minus 1 point (70 - 1 = 69)."""
    grid = tmp_path / "logs" / "multigrid_grid"
    _fake_run(grid, "gn_base_s0", 0.65, [(10, 0.5), (20, 0.6), (30, 0.7)])  # reaches 69 at 30 s
    _fake_run(grid, "gn_long_s0", 0.66, [(5, 0.55), (8, 0.695), (12, 0.71)])  # at 8 s: 3.75x sooner
    _fake_run(grid, "gn_long_short_s0", 0.40, [(4, 0.3), (6, 0.4)])  # never
    out = subprocess.run([sys.executable, str(REPO / "bench" / "multigrid_grid.py"), "--summarize",
                          "logs/multigrid_grid", "--to", "docs/results/multigrid"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    rows = {line.split(" | ")[0][2:]: line for line in out.splitlines()[2:]}
    assert list(rows) == ["gn_base", "gn_long", "gn_long_short"]
    assert rows["gn_base"] == (
        "| gn_base | 1 | 65.0 ± 0.0 | 70.0 ± 0.0 | 31 ± 0 | 1 of 1 | 30 ± 0 | 1.00 ± 0.00× |")
    assert rows["gn_long"] == (
        "| gn_long | 1 | 66.0 ± 0.0 | 71.0 ± 0.0 | 13 ± 0 | 1 of 1 | 8 ± 0 | 3.75 ± 0.00× |")
    assert rows["gn_long_short"].endswith("| 0 of 1 | – | – |")
    assert (tmp_path / "docs/results/multigrid/multigrid.md").read_text() == out
    assert (tmp_path / "docs/results/multigrid/val_top1_vs_wall_time.png").stat().st_size > 10_000


@pytest.mark.slow
def test_multigrid_grid_as_typed_then_its_summary(tmp_path):
    """The README's multigrid benchmark from a fresh folder, shrunk (1 clip per device, 2 base epochs,
    fewer clips, 1 seed): every cell runs, each multigrid one under its schedule, then the summary."""
    shrink = ["data.generate.clips_per_class={train:2,val:1,test:1}", "data.generate.frames=16",
              "data.batch_size_per_device=1", "trainer.max_epochs=2", "data.num_test_clips=1",
              "data.num_test_crops=1"]
    subprocess.run([sys.executable, str(REPO / "bench" / "multigrid_grid.py"), "--seeds", "1",
                    *[f"--override={o}" for o in shrink]], cwd=tmp_path, check=True, capture_output=True,
                   text=True, timeout=3000)
    runs = {p.parent.name: json.loads(p.read_text())
            for p in (tmp_path / "logs" / "multigrid_grid").glob("*/results.json")}
    assert sorted(runs) == sorted(["gn_base_s0", "bn_base_s0", "gn_long_s0", "bn_long_sub_batch_s0",
                                   "bn_long_whole_batch_s0", "gn_long_short_s0", "bn_long_short_sub_batch_s0",
                                   "bn_long_short_whole_batch_s0"])
    assert runs["gn_base_s0"]["multigrid"] is None
    assert runs["gn_long_short_s0"]["multigrid"]["kind"] == "long_short"
    assert runs["bn_long_whole_batch_s0"]["multigrid"]["bn_statistics"] == "whole_batch"
    out = subprocess.run([sys.executable, str(REPO / "bench" / "multigrid_grid.py"), "--summarize",
                          "logs/multigrid_grid"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert len(out.splitlines()) == 2 + 8
