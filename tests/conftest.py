"""Shared fixtures: the real config composed with overrides, and the shared real test data."""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
TESTDATA = REPO.parent / "shared" / "testdata"
# Where CLI tests start commands: an empty folder, as a user's would be (never the repository).
USER_DIR = Path(tempfile.mkdtemp(prefix="video_gn_user_"))

# Overrides that shrink a run to seconds on the tiny dataset below (none changes what is computed).
TINY = ["data.num_classes=3", "data.frames_per_clip=4", "data.frame_stride=2", "data.crop_size=24",
        "data.train_short_side=[24,32]", "data.eval_short_side=32", "data.num_test_clips=2",
        "data.num_test_crops=2", "data.batch_size_per_device=2", "data.num_workers=0",
        "data.generate=null", "model.width=32", "trainer.log_every_n_steps=1"]


def compose_config(overrides=(), config_name="config", output_dir=None):
    """The real training config, as `python run.py <overrides>` would see it (hydra.* resolvable)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir or REPO / "logs" / "test")
        cfg.hydra.runtime.cwd = str(REPO)
    HydraConfig.instance().set_config(cfg)
    return cfg


class StopAfterEpoch(L.Callback):
    """Stops the fit after ``epoch`` as an interruption would (a preemption between epochs): the run
    has its last.ckpt and no more. Given as ``+callbacks.stop._target_=conftest.StopAfterEpoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


@pytest.fixture
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    return TESTDATA


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A 3-class generated dataset: 4 train, 2 val, 2 test clips per class, 12 frames of 32x40."""
    from data_prep.synthetic import generate

    root = tmp_path_factory.mktemp("tiny") / "synthetic"
    return generate(root, num_classes=3, clips_per_class={"train": 4, "val": 2, "test": 2}, frames=12,
                    size=32, workers=1, progress=False)


def top1_of_checkpoint(ckpt, root, split: str) -> float:
    """The multi-view test top-1 of a checkpoint of ours, computed without the trainer."""
    from video_gn.training.lit_module import VideoClassifier

    return top1_of_module(VideoClassifier.load_from_checkpoint(ckpt, map_location="cpu"), root, split)


def top1_of_module(module, root, split: str, frames_per_clip: int = 4) -> float:
    """Every video of ``split`` once, softmax averaged over its 2 clips x 2 crops (the TINY settings
    for eval), no trainer: the reference the test results are checked against."""
    import torch

    from video_gn.data.dataset import ClipSettings, VideoClipDataset

    module.eval()
    settings = ClipSettings(frames_per_clip=frames_per_clip, frame_stride=2, crop_size=24, eval_short_side=32,
                            num_test_clips=2, num_test_crops=2, decoder="decord")
    dataset = VideoClipDataset(root, split, "test", settings)
    correct = 0
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            views = module.on_after_batch_transfer({"video": sample["video"][None]}, 0)["video"]
            correct += int(module.predict_views(views).argmax(-1).item() == sample["label"])
    return correct / len(dataset)
