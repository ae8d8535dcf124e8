"""Classify videos with a trained checkpoint, exactly as the multi-view test does.

    python -m video_gn.predict CKPT VIDEO [VIDEO ...] [--topk 5] [--views 10x3] [--json] [--device auto]

``CKPT`` is a checkpoint of ours (``checkpoints/last.ckpt`` or the best one): it carries the class
names, the network and the clip settings (``inference`` entry), so it needs nothing else — copied
alone to another machine it still predicts. Or a released Kinetics model with ``--classes
label_map.txt`` (the K400 class names, one per line) and the release's clip settings: a Caffe2
pickle of the Non-local I3D (``.pkl``), or pytorchvideo's / PySlowFast's I3D, Slow or C2D 8x8 R50
(``.pyth``; the architecture is read from the weights).

A video is read by any container and codec FFmpeg knows (display rotation applied, damaged packets
skipped), its frames counted by decoding, then ``num_test_clips`` windows evenly spaced ×
``num_test_crops`` crops of the short side go through the network and their softmax is averaged —
the same views and the same function (``transforms.test_views``) as the test. Prints the top-k
classes with probabilities per video (``--json`` for machines); an unreadable video is one line on
stderr and exit code 2, the others are still classified.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import load_option
from .data import sampling, transforms
from .data.decode import decoded_frames, display_quarter_turns
from .errors import ConfigError, MissingFileError, one_line_errors
from .models.weights_file import identify
from .models.zoo_import import ZOO_MODELS, layout_of, zoo_architecture
from .record.checkpoints import INFERENCE_KEY, read_checkpoint
from .training.lit_module import VideoClassifier

# The Non-local I3D release's test protocol (32 frames every 2, 10 clips x 3 crops of 256 px;
# their 0-255 mean 114.75 / std 57.375 is 0.45 / 0.225 on 0-1 pixels).
NONLOCAL_SETTINGS = {"dataset": "kinetics400", "frames_per_clip": 32, "frame_stride": 2, "crop_size": 224,
                     "eval_short_side": 256, "num_test_clips": 10, "num_test_crops": 3,
                     "mean": [0.45] * 3, "std": [0.225] * 3}
# pytorchvideo's and PySlowFast's 8x8 Kinetics models: 8 frames every 8, 10 clips x 3 crops of 256 px.
ZOO_SETTINGS = {**NONLOCAL_SETTINGS, "frames_per_clip": 8, "frame_stride": 8}


class UnreadableVideo(Exception):
    """A video that cannot be classified (the path and why)."""


@dataclass
class Classifier:
    module: VideoClassifier
    settings: dict  # the inference entry: classes, clip settings, model, norm

    @property
    def classes(self) -> list[str]:
        return self.settings["classes"]


def load_classifier(path: str | Path, classes_file: str | Path | None = None, norm: str = "bn") -> Classifier:
    """A checkpoint of ours; or, with ``classes_file``, a released model: the Non-local I3D-R50
    (``.pkl``), pytorchvideo's or PySlowFast's 8x8 models (``.pyth``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint={path} does not exist")
    weights = identify(path)  # by content: a .pth that is a pickle is read as one (nothing in it runs)
    if weights.kind == "caffe2":
        return _load_release(path, classes_file, norm, "i3d_r50", NONLOCAL_SETTINGS, "a Caffe2 pickle")
    if weights.kind == "zoo":
        zoo = weights.content
        config = ZOO_MODELS[zoo_architecture(zoo)][1]
        return _load_release(path, classes_file, norm, config, ZOO_SETTINGS, f"a {layout_of(zoo)} checkpoint")
    checkpoint = read_checkpoint(path, "the")
    settings = checkpoint.get(INFERENCE_KEY)
    if not settings:
        raise ConfigError(f"{path} carries no inference settings (a checkpoint written before they were "
                          "saved, or not one of ours); evaluate it with `python run.py train=false "
                          "ckpt_path=...` on its dataset instead")
    module = VideoClassifier.from_checkpoint(checkpoint)
    if classes_file:
        settings = {**settings, "classes": _read_classes(classes_file, module.hparams.num_classes)}
    return Classifier(module.eval(), settings)


def _read_classes(path, expected: int | None = None) -> list[str]:
    if not Path(path).is_file():
        raise MissingFileError(f"--classes {path} does not exist")
    classes = [c for c in Path(path).read_text(encoding="utf-8").splitlines() if c.strip()]
    if expected is not None and len(classes) != expected:
        raise ConfigError(f"--classes {path} lists {len(classes)} classes; the network has {expected} "
                          "outputs")
    return classes


def _load_release(path: Path, classes_file, norm: str, model_option: str, clip_settings: dict,
                  what: str) -> Classifier:
    """A released model (no class names, no clip settings inside): ``conf/model/<model_option>``
    with the file as ``model.pretrained_3d``, tested with the release's ``clip_settings``."""
    if not classes_file:
        raise ConfigError(f"{path} is {what} without class names: give --classes FILE (for "
                          "Kinetics-400 the official label map, 400 names one per line)")
    classes = _read_classes(classes_file)
    model = {**load_option("model", model_option), "pretrained_3d": str(path)}
    norm_cfg = load_option("norm", norm)
    module = VideoClassifier(model=model, norm=norm_cfg, optim={}, num_classes=len(classes),
                             batch_size_per_device=1, mean=clip_settings["mean"], std=clip_settings["std"])
    settings = {**clip_settings, "classes": classes, "model": model, "norm": norm_cfg,
                "num_classes": len(classes)}
    return Classifier(module.eval(), settings)


def read_video(path: str | Path, indices: list[int] | None, short_side: int) -> np.ndarray | int:
    """``indices=None``: the number of decodable frames. Else those frames (in the given order,
    repeats allowed), display rotation applied, short side ``short_side``: uint8 ``[N, H, W, 3]``."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableVideo(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if indices is None:
                return sum(1 for _ in decoded_frames(container, stream))
            wanted, kept = set(indices), {}
            for i, (frame, _) in enumerate(decoded_frames(container, stream)):
                if i in wanted:
                    kept[i] = _display_frame(frame, short_side)
                    if len(kept) == len(wanted):
                        break
    except (av.error.FFmpegError, OSError) as e:
        raise UnreadableVideo(f"{path}: cannot decode ({e})") from None
    return np.stack([kept[i] for i in indices])


def _display_frame(frame, short_side: int) -> np.ndarray:
    import av

    rgb = frame.to_ndarray(format="rgb24")
    turns = display_quarter_turns(frame)
    if turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
    h, w = rgb.shape[:2]
    if min(h, w) == short_side:
        return rgb
    scale = short_side / min(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    resized = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(*size, interpolation="AREA")
    return resized.to_ndarray(format="rgb24")


def parse_views(text: str) -> tuple[int, int]:
    """``"10x3"`` -> (10 clips, 3 crops)."""
    try:
        clips, crops = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--views {text!r}: expected CLIPSxCROPS, e.g. 10x3") from None
    if clips < 1 or crops < 1:
        raise ConfigError(f"--views {text!r}: both numbers must be >= 1")
    return clips, crops


@torch.inference_mode()
def predict_video(classifier: Classifier, path: str | Path, views: tuple[int, int] | None = None,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Class probabilities ``[K]``: softmax averaged over the multi-view test's views."""
    s = classifier.settings
    clips, crops = views or (s["num_test_clips"], s["num_test_crops"])
    num_frames = read_video(path, None, s["eval_short_side"])
    if num_frames == 0:
        raise UnreadableVideo(f"{path}: no decodable frame")
    # A video shorter than one clip is looped here (one video, nothing to replace it with).
    indices = sampling.uniform_clips(num_frames, s["frames_per_clip"], s["frame_stride"], clips)
    frames = torch.from_numpy(read_video(path, indices.reshape(-1).tolist(), s["eval_short_side"]))
    video = transforms.test_views(frames, s["frames_per_clip"], s["eval_short_side"], crops)
    module = classifier.module.to(device)
    video = transforms.normalize(video[None].to(device), s["mean"], s["std"])
    return module.predict_views(video)[0].float().cpu()


def top_k(classifier: Classifier, probs: torch.Tensor, k: int) -> list[dict]:
    values, indices = probs.topk(min(k, probs.numel()))
    return [{"class": classifier.classes[i], "index": int(i), "probability": float(p)}
            for p, i in zip(values.tolist(), indices.tolist(), strict=True)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m video_gn.predict", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, help="a checkpoint of ours (.ckpt), a Non-local release "
                   "(.pkl), or a pytorchvideo / PySlowFast model (.pyth)")
    p.add_argument("videos", type=Path, nargs="+", help="video files (any container FFmpeg reads)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--views", default=None, help="CLIPSxCROPS, default: the checkpoint's test views")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.add_argument("--classes", type=Path, help="class names, one per line (needed for a .pkl or .pyth)")
    p.add_argument("--norm", default="bn", help="norm of a released model's network (default bn)")
    args = p.parse_args(argv)
    with one_line_errors():
        views = parse_views(args.views) if args.views else None
        classifier = load_classifier(args.checkpoint, args.classes, args.norm)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    results, failed = [], 0
    for video in args.videos:
        try:
            probs = predict_video(classifier, video, views, device)
        except (UnreadableVideo, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            results.append({"video": str(video), "error": str(e)})
            failed += 1
            continue
        results.append({"video": str(video), "top": top_k(classifier, probs, args.topk)})
        if not args.json:
            print(f"{video}")
            for rank, entry in enumerate(results[-1]["top"], start=1):
                print(f"  {rank}. {entry['class']:<40} {100 * entry['probability']:6.2f}%")
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "views": views or [
            classifier.settings["num_test_clips"], classifier.settings["num_test_crops"]],
            "predictions": results}, indent=1))
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
