"""Loader benchmark: our clip loader (decord, PyAV) vs pytorchvideo's Kinetics reader, same files.

    python bench/loader.py [--samples 48] [--workers 2] [--copies 4]

The clips are the shared real videos (../shared/testdata) prepared by our tool (short side 256,
H.264, keyframe every 16 frames). Training samples: 32 frames x stride 2, short side random in
[256, 320], random 224 crop, flip. Test samples: 10 clips x 3 crops of 256. pytorchvideo gets the
same spatial transform; its time-based clip sampler picks a window of 64 frames' duration.
Prints clips/s (test: videos/s, each 30 views) and the ratio to pytorchvideo with the same workers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_prep.encode import EncodeSettings, encode_clip  # noqa: E402
from video_gn.data.dataset import ClipSettings, VideoClipDataset  # noqa: E402
from video_gn.data.manifest import ClipRecord, write_classes, write_manifest  # noqa: E402
from video_gn.data.transforms import multi_view_crops, train_transform  # noqa: E402

SOURCES = ["mmaction2__demo_demo.mp4", "mmaction2__tests_data_test.mp4",
           "decord__examples_flipping_a_pancake.mkv", "mmaction2__tests_data_test.avi"]


def prepare_clips(out: Path, copies: int) -> list[ClipRecord]:
    (out / "train").mkdir(parents=True)
    records = []
    for k, name in enumerate(SOURCES):
        info = encode_clip(REPO.parent / "shared" / "testdata" / "videos" / name, out / "train" / f"{k}.mp4",
                           EncodeSettings())
        records += [ClipRecord(f"train/{k}.mp4", k, f"c{k}", info.num_frames, info.fps)] * copies
    write_manifest(out, "train", records)
    write_classes(out, [f"c{k}" for k in range(len(SOURCES))])
    return records


def _collate_first(batch):
    return batch[0]


def rate(dataset, workers: int, samples: int, per_item: float = 1.0) -> float:
    """Samples per second through a DataLoader (batch 1), after a warm-up of one item per worker."""
    iterable = isinstance(dataset, torch.utils.data.IterableDataset)  # pytorchvideo shuffles itself
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=_collate_first,
                        shuffle=not iterable)
    it = iter(loader)
    for _ in range(max(1, workers)):
        next(it)
    start, n = time.perf_counter(), 0
    while n < samples:
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            continue
        n += 1
    return n / per_item / (time.perf_counter() - start)


def pytorchvideo_dataset(root: Path, records, mode: str):
    from pytorchvideo.data import Kinetics, make_clip_sampler

    listing = root / "pytorchvideo.txt"
    listing.write_text("".join(f"{root / r.path} {r.label}\n" for r in records))
    fps = records[0].fps

    def transform(d):
        video = d["video"]  # [C, T, H, W] float 0..255, ~64 frames' duration by time
        t = video.shape[1]
        idx = torch.linspace(0, t - 1, 32).round().long()  # its UniformTemporalSubsample
        frames = video[:, idx].permute(1, 0, 2, 3).to(torch.uint8)
        if mode == "train":
            return {"video": train_transform(frames, (256, 320), 224, True), "label": d["label"]}
        return {"video": multi_view_crops(frames[None], 256, 3), "label": d["label"]}

    sampler = make_clip_sampler("random", 64 / fps) if mode == "train" else \
        make_clip_sampler("constant_clips_per_video", 64 / fps, 10)
    return Kinetics(str(listing), sampler, transform=transform, decode_audio=False, decoder="pyav")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=48)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--copies", type=int, default=4)
    a = p.parse_args()
    torch.set_num_threads(1)  # one core per worker, as in a real multi-worker loader
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = prepare_clips(root, a.copies)
        base = dict(frames_per_clip=32, frame_stride=2, crop_size=224, train_short_side=(256, 320),
                    eval_short_side=256, num_test_clips=10, num_test_crops=3, flip=True)
        rows = []
        for mode in ("train", "test"):
            test_samples = max(4, a.samples // 8)
            n = a.samples if mode == "train" else test_samples
            for workers in (0, a.workers):
                label = "1 (main process)" if workers == 0 else f"{workers}"
                # pytorchvideo yields one clip per item; a test sample is 10 of them.
                per_item = 1 if mode == "train" else 10
                baseline = rate(pytorchvideo_dataset(root, records, mode), workers, n * per_item, per_item)
                rows.append((mode, label, "pytorchvideo Kinetics (pyav)", baseline, 1.0))
                for decoder in ("decord", "pyav"):
                    ds = VideoClipDataset(root, "train", mode, ClipSettings(**base, decoder=decoder))
                    r = rate(ds, workers, n)
                    rows.append((mode, label, f"video_gn ({decoder})", r, r / baseline))
        unit = {"train": "clips/s (32x2, 224 crop)", "test": "videos/s (10 clips x 3 crops)"}
        print(f"\n{'mode':<6} {'workers':<17} {'loader':<30} {'rate':>8}  {'vs pytorchvideo':>15}  unit")
        for mode, workers, name, r, ratio in rows:
            print(f"{mode:<6} {workers:<17} {name:<30} {r:>8.2f}  {ratio:>14.2f}x  {unit[mode]}")


if __name__ == "__main__":
    main()
