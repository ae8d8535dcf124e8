"""The training job: every norm through a real (tiny) run, configs, resume, multi-view test, DDP."""

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import CONF_DIR, TINY, compose_config, top1_of_checkpoint
from hydra.utils import instantiate

from data_prep.synthetic import CLASSES
from video_gn.data.datamodule import VideoDataModule
from video_gn.data.manifest import ClipRecord, read_manifest, write_manifest
from video_gn.train import train
from video_gn.training.lit_module import VideoClassifier, average_view_predictions


def tiny_config(tiny_data, out, *overrides):
    return compose_config([*TINY, f"data.root={tiny_data}", *overrides], output_dir=out)


ONE_BATCH = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=1"]


@pytest.mark.parametrize("norm", ["bn", "syncbn", "frozen_bn", "gn", "ln", "in", "none"])
def test_one_batch_run_every_norm(tiny_data, tmp_path, norm):
    cfg = tiny_config(tiny_data, tmp_path, f"norm={norm}", *ONE_BATCH)
    top1 = train(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["norm"] == norm and results["dataset"] == "synthetic"
    assert results["global_step"] == 1 and results["load_failures"] == 0
    assert 0.0 <= top1 <= 1.0 and results["test_top1"] == top1 and results["test_videos"] == 1
    assert results["frames_per_clip"] == 4 and results["batch_size_per_device"] == 2
    assert results["global_batch"] == 2 and results["devices"] == 1
    assert results["init"] == {"kind": "scratch"} and results["seed"] == 0
    # The synthetic data has its own test split: the best checkpoint on val is tested on it.
    assert (results["test_split"], results["test_checkpoint"]) == ("test", "best")
    assert results["test_views"] == "2x2"
    for name in ("predictions.csv", "load_failures.csv"):  # lines end in \n for shell tools
        assert b"\r" not in (tmp_path / name).read_bytes()


def test_default_config_composes():
    cfg = compose_config([])
    assert (cfg.data.name, cfg.model.arch, cfg.norm.kind, cfg.trainer.accelerator) == (
        "synthetic", "small", "gn", "cpu")
    dm = instantiate(cfg.data)
    assert isinstance(dm, VideoDataModule) and dm.generate is not None
    assert dm.generate.func.__name__ == "generate"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_instantiates(experiment):
    cfg = compose_config([f"experiment={experiment}", "data.root=/nonexistent"])
    dm = instantiate(cfg.data)
    assert dm.batch_size_per_device == cfg.data.batch_size_per_device
    module = VideoClassifier(model=cfg.model, norm=cfg.norm, optim=cfg.optim,
                             num_classes=cfg.data.num_classes,
                             batch_size_per_device=cfg.data.batch_size_per_device)
    if experiment.startswith("k400"):
        assert cfg.model.arch == "i3d" and cfg.data.num_classes == 400 and cfg.trainer.devices == 8
        assert abs(sum(p.numel() for p in module.parameters()) - 28.0e6) < 0.1e6
        # Linear scaling rule from the global batch: 0.01 at 64 clips, 0.005 at 32.
        module._trainer = SimpleNamespace(world_size=8, accumulate_grad_batches=1, max_epochs=109,
                                          estimated_stepping_batches=109 * 1000)
        opt = module.configure_optimizers()["optimizer"]
        expected = 0.01 * cfg.data.batch_size_per_device * 8 / 64
        assert opt.param_groups[0]["lr"] == pytest.approx(expected)
        assert opt.defaults["nesterov"] and opt.param_groups[1]["weight_decay"] == 1e-4
    cells = {"bn_32x2_b8": ("bn", 32, 2, 8), "gn_32x2_b4": ("gn", 32, 2, 4), "gn_64x1_b4": ("gn", 64, 1, 4)}
    for name, (norm, frames, stride, batch) in cells.items():
        if experiment.endswith(name):
            assert (cfg.norm.kind, cfg.data.frames_per_clip, cfg.data.frame_stride,
                    cfg.data.batch_size_per_device) == (norm, frames, stride, batch)


@pytest.mark.parametrize("trainer", sorted(p.stem for p in (CONF_DIR / "trainer").glob("*.yaml")))
def test_trainer_configs_never_sync_batchnorm(trainer, tmp_path):
    """BN statistics stay per device under every trainer config: the trainer Lightning builds from it
    on several devices (two CPU processes here) has no layer sync, the hook that would turn every
    BatchNorm into SyncBatchNorm (``norm=syncbn`` is the one way to sync, explicitly)."""
    from video_gn.training.trainer import build_trainer

    cfg = compose_config([f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=2"],
                         output_dir=tmp_path)
    trainer = build_trainer(cfg, callbacks=[], loggers=False)
    assert trainer.strategy._layer_sync is None


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_config(["hydra/launcher=slurm", "hydra.launcher.nodes=2",
                          "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher.nodes == 2 and launcher.gpus_per_node == 8 and launcher.tasks_per_node == 8
    assert launcher.partition == "gpu" and "SlurmLauncher" in launcher._target_


def test_slurm_grid_folders_resolve_before_any_job_exists(tmp_path, monkeypatch):
    """What the launcher resolves in the submitting process, as Hydra's multirun sets it up (no job
    has run, so hydra.runtime.* is unset): the sweep folder, submitit's folder, each job's folder."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = GlobalHydra.instance().config_loader().load_configuration(
            "config", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                       "experiment=k400_i3d_r50_gn_64x1_b4", "data.root=/data/k400",
                       "imagenet_2d.gn=/ckpt/R-50-GN.pkl"], run_mode=RunMode.MULTIRUN)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # Hydra sets it per job, later
    sweep = cfg.hydra.sweep.dir
    assert sweep.startswith("./logs/multiruns/20")
    assert cfg.hydra.launcher.submitit_folder == f"{sweep}/.submitit/%j"
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.job.num = 3
    assert cfg.hydra.sweep.subdir == "3"
    assert cfg.model.pretrained_2d == "/ckpt/R-50-GN.pkl" and cfg.trainer.devices == 8


def test_multi_view_prediction_is_mean_of_per_view_softmax():
    torch.manual_seed(0)
    module = VideoClassifier(model={"arch": "small", "width": 32, "dropout": 0.0},
                             norm={"kind": "gn", "num_groups": 8}, optim={}, num_classes=5,
                             batch_size_per_device=2, test_views_per_forward=4).eval()
    video = torch.randn(2, 6, 3, 4, 24, 24)  # [B, V, C, T, H, W]
    with torch.no_grad():
        probs = module.predict_views(video)
        expected = torch.stack([
            torch.stack([module(video[b, v:v + 1]).double().softmax(-1)[0] for v in range(6)]).mean(0)
            for b in range(2)])
    assert probs.shape == (2, 5)
    torch.testing.assert_close(probs.double(), expected, rtol=1e-5, atol=1e-6)
    logits = torch.tensor([[[10.0, 0.0], [0.0, 1.0]]])  # one confident view, one unsure
    torch.testing.assert_close(average_view_predictions(logits),
                               (logits.softmax(-1)[0, 0] + logits.softmax(-1)[0, 1])[None] / 2)


def assert_same_tensors(a, b, where=""):
    """Every tensor in two nested checkpoint structures equal (torch.equal), every other value equal."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.heavy
@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_interrupted_and_resumed_ends_with_the_same_weights(tiny_data, tmp_path, workers):
    """3 epochs straight vs the same command stopped after epoch 0 (same max_epochs: the LR schedule
    is the full run's) and run again in its folder, which resumes from last.ckpt. The weights, BN
    statistics, optimizer momenta and LR schedule must be bit-for-bit the straight run's: on old main
    the resumed epoch re-read epoch 0's order and clips, and dropout drew from another state."""
    common = ["trainer.max_epochs=3", "test_after_fit=false", f"data.num_workers={workers}", "norm=bn",
              "model.dropout=0.5"]
    train(tiny_config(tiny_data, tmp_path / "straight", *common))
    train(tiny_config(tiny_data, tmp_path / "resumed", *common,
                      "+callbacks.stop._target_=conftest.StopAfterEpoch", "+callbacks.stop.epoch=0"))
    interrupted = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=True)
    assert interrupted["global_step"] == 6
    train(tiny_config(tiny_data, tmp_path / "resumed", *common))
    a, b = (torch.load(tmp_path / run / "checkpoints/last.ckpt", weights_only=True)
            for run in ("straight", "resumed"))
    assert a["global_step"] == b["global_step"] == 18
    assert_same_tensors(a["state_dict"], b["state_dict"], "state_dict")
    assert_same_tensors(a["optimizer_states"], b["optimizer_states"], "optimizer")
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"] == 18
    straight, resumed = (json.loads((tmp_path / run / "results.json").read_text())
                         for run in ("straight", "resumed"))
    drop_time = [{k: v for k, v in h.items() if k != "wall_time_s"} for h in straight["val_history"]]
    assert drop_time == [{k: v for k, v in h.items() if k != "wall_time_s"} for h in resumed["val_history"]]
    # Its wall time counts the part before the interruption too (a preempted job reports all of it).
    assert 0 < interrupted["run_wall_time_s"] < resumed["wall_time_s"]


@pytest.mark.heavy
def test_the_same_command_gives_the_same_weights_whatever_the_workers(tiny_data, tmp_path):
    """Twice the same command, and once with loader workers: identical weights and val history. On
    old main each worker drew its own crops (worker seeds), so data.num_workers changed the numbers."""
    runs = {}
    for name, workers in (("a", 0), ("b", 0), ("workers", 2)):
        train(tiny_config(tiny_data, tmp_path / name, "trainer.max_epochs=2", "test_after_fit=false",
                          f"data.num_workers={workers}"))
        runs[name] = (torch.load(tmp_path / name / "checkpoints/last.ckpt", weights_only=True)["state_dict"],
                      json.loads((tmp_path / name / "results.json").read_text()))
    for name in ("b", "workers"):
        assert_same_tensors(runs["a"][0], runs[name][0], name)
        assert [h["top1"] for h in runs["a"][1]["val_history"]] == \
            [h["top1"] for h in runs[name][1]["val_history"]]
    # each validation carries its epoch's training top-1: the value the CSV logger wrote for that epoch
    with (tmp_path / "a" / "csv" / "metrics.csv").open() as f:
        logged = {int(r["epoch"]): float(r["train/top1"]) for r in csv.DictReader(f) if r.get("train/top1")}
    assert {h["epoch"]: h["train_top1"] for h in runs["a"][1]["val_history"]} == pytest.approx(logged)
    history = [h["top1"] for h in runs["a"][1]["val_history"]]
    assert runs["a"][1]["final5_median_val_top1"] == pytest.approx(sum(history) / 2)  # median of two
    env = runs["workers"][1]["environment"]
    assert env["loader_workers"] == 2 and env["intra_op_threads"] == torch.get_num_threads()
    assert env["versions"]["torch"] == torch.__version__.split("+")[0] and env["cpu_cores"] >= 1
    assert env["deterministic"] is False and env["cpu_model"]


class RankProbe(L.Callback):
    """Saves, per rank, what the DDP test checks: samples seen, parameters, BN statistics."""

    def __init__(self, out: str):
        self.out, self.seen, self.val_correct = out, [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.seen += batch["index"].tolist()

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        with torch.no_grad():
            pred = module(batch["video"]).argmax(-1)
        self.val_correct += (pred == batch["label"]).tolist()

    def on_validation_start(self, trainer, module):
        # BN's statistics as training left them (the module's own hook then gives every rank rank 0's)
        self.running_mean = module.net.stem.norm.running_mean.clone()

    def on_validation_end(self, trainer, module):
        state = {"seen": self.seen, "val_correct": self.val_correct,
                 "logged_val_top1": float(trainer.callback_metrics["val/top1"]),
                 "params": {k: v.detach().clone() for k, v in module.net.named_parameters()},
                 "running_mean": self.running_mean}
        torch.save(state, Path(self.out) / f"rank{trainer.global_rank}.pt")


def ddp_cpu_run(tiny_data, tmp_path, norm):
    """Two real CPU processes (gloo) with the project's trainer=ddp_cpu config."""
    cfg = tiny_config(tiny_data, tmp_path, "trainer=ddp_cpu", f"norm={norm}")
    dm = instantiate(cfg.data)
    module = VideoClassifier(model=cfg.model, norm=cfg.norm, optim={**cfg.optim, "schedule": "constant"},
                             num_classes=3, batch_size_per_device=2)
    trainer = instantiate(cfg.trainer, max_epochs=1, num_sanity_val_steps=0, logger=False,
                          enable_checkpointing=False, enable_progress_bar=False,
                          callbacks=[RankProbe(str(tmp_path))])
    trainer.fit(module, datamodule=dm)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.heavy
def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    r0, r1 = ddp_cpu_run(tiny_data, tmp_path, "bn")
    # Each rank read its own shard of the 12 training clips.
    assert len(r0["seen"]) == len(r1["seen"]) == 6 and not set(r0["seen"]) & set(r1["seen"])
    # Gradients averaged: both replicas hold identical weights after 3 SGD steps.
    for name, p in r0["params"].items():
        torch.testing.assert_close(p, r1["params"][name], msg=name)
    # BN statistics are per device in training: each rank's running mean saw only its own batches.
    assert not torch.allclose(r0["running_mean"], r1["running_mean"])
    # The logged validation top-1 is the accuracy over both ranks' samples.
    everything = r0["val_correct"] + r1["val_correct"]
    assert len(everything) == 6
    expected = sum(everything) / len(everything)
    assert r0["logged_val_top1"] == pytest.approx(expected) == r1["logged_val_top1"]


class NormBufferProbe(L.Callback):
    """Per rank, BN's running statistics as training left them (a callback's ``on_validation_start``
    runs before the module's) and as the validation's first batch finds them, saved to
    ``<out>/<when><epoch>_rank<r>.pt``."""

    def __init__(self, out: str):
        self.out = out

    def _save(self, trainer, module, when):
        if trainer.sanity_checking:
            return
        buffers = {k: v.clone() for k, v in module.net.named_buffers()}
        torch.save(buffers, Path(self.out) / f"{when}{trainer.current_epoch}_rank{trainer.global_rank}.pt")

    def on_validation_start(self, trainer, module):
        self._save(trainer, module, "train")

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0:
            self._save(trainer, module, "val")


@pytest.mark.heavy
def test_ddp_bn_validates_with_the_statistics_its_checkpoint_saves(tiny_data, tmp_path):
    """BN per device during training (the ranks' statistics differ), one network at every validation
    (rank 0's statistics on both ranks): the logged val top-1 is the saved checkpoint's, and the test
    after fit equals `train=false ckpt_path=` of the tested checkpoint, video by video."""
    probes = tmp_path / "probes"
    probes.mkdir()
    run = tmp_path / "run"
    train(tiny_config(tiny_data, run, "trainer=ddp_cpu", "norm=bn", "trainer.max_epochs=2",
                      "+callbacks.probe._target_=test_train.NormBufferProbe",
                      f"+callbacks.probe.out={probes}"))
    for epoch in (0, 1):
        trained = [torch.load(probes / f"train{epoch}_rank{r}.pt") for r in (0, 1)]
        validated = [torch.load(probes / f"val{epoch}_rank{r}.pt") for r in (0, 1)]
        means = [k for k in trained[0] if k.endswith("running_mean")]
        assert any(not torch.equal(trained[0][k], trained[1][k]) for k in means)  # per device in training
        assert_same_tensors(validated[0], validated[1], f"epoch {epoch}")  # one network when validating
        assert_same_tensors(validated[0], trained[0], f"epoch {epoch}")  # rank 0's: what is saved
    results = json.loads((run / "results.json").read_text())
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert_same_tensors({k.removeprefix("net."): v for k, v in last["state_dict"].items() if "running" in k},
                        {k: v for k, v in validated[0].items() if "running" in k}, "last.ckpt")
    # The logged val top-1 of the last epoch is what the saved checkpoint scores on val, alone.
    module = VideoClassifier.from_checkpoint(last)
    dm = instantiate(tiny_config(tiny_data, tmp_path / "alone").data)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (alone,) = trainer.validate(module, datamodule=dm, weights_only=True)
    assert results["val_history"][-1]["top1"] == pytest.approx(alone["val/top1"])
    # The test after fit, per video, equals the tested checkpoint evaluated by `train=false`.
    (best,) = (run / "checkpoints").glob("epoch*.ckpt")
    train(tiny_config(tiny_data, tmp_path / "eval", "train=false", f"ckpt_path={best}"))
    with (run / "predictions.csv").open() as f, (tmp_path / "eval" / "predictions.csv").open() as g:
        assert list(csv.DictReader(f)) == list(csv.DictReader(g))


@pytest.mark.heavy
def test_syncbn_on_cpu_ddp_is_a_clear_error(tiny_data, tmp_path):
    # PyTorch's SyncBatchNorm syncs over CUDA devices only; on CPU the run must say so, not hang.
    with pytest.raises(Exception, match="norm=syncbn syncs BN statistics over GPUs only"):
        ddp_cpu_run(tiny_data, tmp_path, "syncbn")


def test_channels_last_3d_matches_contiguous(tiny_data, tmp_path):
    def build(channels_last):
        torch.manual_seed(0)
        return VideoClassifier(model={"arch": "small", "width": 32, "dropout": 0.0,
                                      "channels_last_3d": channels_last},
                               norm={"kind": "gn", "num_groups": 8}, optim={}, num_classes=3,
                               batch_size_per_device=2)
    plain, cl = build(False), build(True)
    assert cl.net.stem.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    batch = {"video": torch.randint(0, 256, (2, 3, 4, 24, 24), dtype=torch.uint8)}
    x_plain = plain.on_after_batch_transfer(batch, 0)["video"]
    x_cl = cl.on_after_batch_transfer(batch, 0)["video"]
    assert x_cl.is_contiguous(memory_format=torch.channels_last_3d)
    out_plain, out_cl = plain(x_plain), cl(x_cl)
    torch.testing.assert_close(out_cl, out_plain, rtol=1e-4, atol=1e-5)
    out_plain.sum().backward()
    out_cl.sum().backward()
    torch.testing.assert_close(cl.net.stem.conv.weight.grad, plain.net.stem.conv.weight.grad,
                               rtol=1e-3, atol=1e-5)
    # And through the real training job.
    cfg = tiny_config(tiny_data, tmp_path, *ONE_BATCH, "runtime.channels_last_3d=true")
    train(cfg)
    assert json.loads((tmp_path / "results.json").read_text())["global_step"] == 1


@pytest.mark.slow
def test_torch_compile_trains(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path, *ONE_BATCH, "runtime.compile=true")
    train(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["global_step"] == 1 and results["test_top1"] is not None


def test_bad_videos_count_once_survive_resume_and_are_listed(tiny_data, tmp_path, testdata):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    records = read_manifest(data, "train")
    good = (data / records[0].path).read_bytes()
    (data / "train" / "truncated.mp4").write_bytes(good[: len(good) // 3])  # "moov atom not found"
    shutil.copy(testdata / "videos" / "decord__tests_test_data_corrupted.mp4", data / "train" / "corrupt.mp4")
    # 17 rows, one missing: the 16 others in batches of 2 are all read (drop_last drops nothing).
    write_manifest(data, "train", records + records[:2] + [
        ClipRecord("train/missing.mp4", 0, CLASSES[0], 12, 15.0),
        ClipRecord("train/truncated.mp4", 1, CLASSES[1], 12, 15.0),
        ClipRecord("train/corrupt.mp4", 2, CLASSES[2], 50, 10.0)])
    run = tmp_path / "run"
    train(tiny_config(data, run, "trainer.max_epochs=1", "test_after_fit=false"))
    first = json.loads((run / "results.json").read_text())
    # The missing file is left out before the first step; the damaged ones are found while reading
    # and replaced by other samples.
    assert first["global_step"] == 8
    # Interrupted, then resumed in its folder: the same two files fail again in epoch 2, and still
    # count once each. The raw corrupt file fails only where a window crosses its bad packet.
    train(tiny_config(data, run, "trainer.max_epochs=2", "test_after_fit=false"))
    results = json.loads((run / "results.json").read_text())
    listed = (run / results["load_failures_file"]).read_text().splitlines()
    assert listed[0] == "path,reason" and len(listed) - 1 == results["load_failures"]
    paths = {line.split(",")[0] for line in listed[1:]}
    assert f"{data / 'train' / 'missing.mp4'},missing: listed in the manifest but not on disk" in listed
    # Exact, since each epoch's windows are drawn from seed + epoch: epoch 0's window of corrupt.mp4
    # misses its bad packet, epoch 1's crosses it (then the file counts once, like the others).
    assert paths == {str(data / "train" / n) for n in ("missing.mp4", "truncated.mp4", "corrupt.mp4")}
    assert (first["load_failures"], results["load_failures"]) == (2, 3)


@pytest.mark.heavy
def test_a_test_video_is_scored_once_or_left_out_never_swapped(tiny_data, tmp_path):
    """The test split gains a 72 px wide H.264 clip (decord refuses that width; PyAV reads it) and a
    truncated file (neither reads it). The first is scored once, through PyAV; the second is left out
    and counted; results.json, predictions.csv and load_failures.csv agree with each other."""
    from test_loading import encode_plain_h264

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    records = read_manifest(data, "test")
    encode_plain_h264(data / "test" / "narrow.mp4", 72, 130)
    good = (data / records[0].path).read_bytes()
    (data / "test" / "truncated.mp4").write_bytes(good[: len(good) // 3])
    write_manifest(data, "test", records + [ClipRecord("test/narrow.mp4", 1, CLASSES[1], 12, 15.0),
                                            ClipRecord("test/truncated.mp4", 2, CLASSES[2], 12, 15.0)])
    run = tmp_path / "run"
    top1 = train(tiny_config(data, run, "trainer.max_epochs=1"))
    results = json.loads((run / "results.json").read_text())
    with (run / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    paths = [r["path"] for r in rows]
    assert paths == [r.path for r in records] + ["test/narrow.mp4"]  # each once, in manifest order
    assert results["test_videos"] == len(rows) == len(records) + 1
    assert results["test_videos_left_out"] == 1
    # The final weights tested too (the best checkpoint is the primary test here), on the same videos.
    assert results["test_checkpoint"] == "best" and results["final_test_videos"] == len(rows)
    assert 0 <= results["final_test_top1"] <= 1
    assert results["final5_val_epochs"] == [0]
    assert results["final5_median_val_top1"] == results["best_val_top1"]
    assert top1 == pytest.approx(sum(r["top1_index"] == r["label"] for r in rows) / len(rows))
    per_class = {c: [r["top1_index"] == r["label"] for r in rows if r["label_name"] == c]
                 for c in CLASSES[:3]}
    assert results["per_class_top1"] == pytest.approx({c: sum(v) / len(v) for c, v in per_class.items()})
    with (run / "load_failures.csv").open() as f:
        failures = {r["path"]: r["reason"] for r in csv.DictReader(f)}
    assert list(failures) == [str(data / "test" / "truncated.mp4")]
    assert failures[str(data / "test" / "truncated.mp4")].startswith("decord: ")  # then PyAV tried too
    assert "; pyav: " in failures[str(data / "test" / "truncated.mp4")]


@pytest.mark.heavy
def test_the_split_that_picks_the_checkpoint_never_tests_it(tiny_data, tmp_path):
    """Kinetics tests on val: the last checkpoint is tested there, and results.json says so. With a
    separate test split, the best checkpoint on val is tested on it."""
    on_val = train(tiny_config(tiny_data, tmp_path / "val", "trainer.max_epochs=2", "data.test_split=val"))
    results = json.loads((tmp_path / "val" / "results.json").read_text())
    assert (results["test_split"], results["test_checkpoint"]) == ("val", "last")
    assert "picks the best checkpoint" in results["test_checkpoint_reason"]
    assert results["test_protocol"] == "2 clips x 2 crops, split 'val', last checkpoint, short side 32"
    last = tmp_path / "val" / "checkpoints" / "last.ckpt"
    assert on_val == pytest.approx(top1_of_checkpoint(last, tiny_data, "val"))

    on_test = train(tiny_config(tiny_data, tmp_path / "test", "trainer.max_epochs=2"))
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    assert (results["test_split"], results["test_checkpoint"]) == ("test", "best")
    (best,) = (tmp_path / "test" / "checkpoints").glob("epoch*.ckpt")
    assert on_test == pytest.approx(top1_of_checkpoint(best, tiny_data, "test"))


@pytest.mark.heavy
def test_val_history_holds_every_validation_that_ran_and_only_those(tiny_data, tmp_path):
    # Validation every 2nd epoch of 5: epochs 1 and 3 ran one. The monitored value ties at every
    # validation, so the best checkpoint is the first (epoch 1) — testing it must not cut the history.
    cfg = tiny_config(tiny_data, tmp_path, "trainer.max_epochs=5", "trainer.check_val_every_n_epoch=2",
                      "callbacks.model_checkpoint.monitor=val/videos")
    train(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    assert [h["epoch"] for h in results["val_history"]] == [1, 3]
    assert all(h["videos"] == 6 for h in results["val_history"])
    assert results["test_checkpoint"] == "best" and results["best_val_epoch"] in (1, 3)
    (best,) = (tmp_path / "checkpoints").glob("epoch*.ckpt")
    assert best.name.startswith("epoch001")


@pytest.mark.heavy
def test_ddp_evaluates_every_video_exactly_once(tiny_data, tmp_path):
    """5 val and 5 test videos on 2 ranks: Lightning's sampler would pad to 6 (one video twice)."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    for split in ("val", "test"):
        write_manifest(data, split, read_manifest(data, split)[:5])
    cfg = tiny_config(data, tmp_path / "run", "trainer=ddp_cpu", "trainer.max_epochs=1")
    train(cfg)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["devices"] == 2
    assert [h["videos"] for h in results["val_history"]] == [5]
    assert results["test_videos"] == 5
    expected = top1_of_checkpoint(next((tmp_path / "run" / "checkpoints").glob("epoch*.ckpt")), data, "test")
    assert results["test_top1"] == pytest.approx(expected)
    # Both ranks' predictions merged: each test video once, in manifest order.
    with (tmp_path / "run" / "predictions.csv").open() as f:
        paths = [r["path"] for r in csv.DictReader(f)]
    assert paths == [r.path for r in read_manifest(data, "test")]
