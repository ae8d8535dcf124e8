"""The embedded default dataset: textured shapes whose class is their motion, as real mp4 clips.

    python -m data_prep.synthetic --out data/synthetic [--seed 0] [--workers 2]

Classes (in this order; ``num_classes`` takes the first N): move left, right, up, down, up-left,
down-right, zoom in, zoom out. Each clip draws a random cluttered background, a random textured
object (colours, stripes, orientation, a corner mark), a random start, speed and size, plus sensor
noise. Mid-clip states are drawn from the same distribution for every class, so a single frame does
not give the class away: only motion does. Horizontal flips swap left and right, so the default data
config disables flip. (Rotation direction was tried as a class pair: the small CPU network stayed
at chance on it within its 10-epoch budget, so it is not part of the default.)
Written through the same encoder and manifest format as Kinetics (see video_gn/data/manifest.py).
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.encode import EncodeSettings, write_frames
from video_gn.data.manifest import ClipRecord, manifest_path, write_classes, write_manifest

# Unit direction (dx, dy) of each moving class, in image coordinates (y down).
DIRECTIONS = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1),
              "move_up_left": (-0.7071, -0.7071), "move_down_right": (0.7071, 0.7071)}
CLASSES = (*DIRECTIONS, "zoom_in", "zoom_out")
SPLIT_SEED_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_003}


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth mid-contrast coloured noise plus random blobs: clutter with no class information,
    kept dimmer than the object so the object (and its motion) stays visible."""
    coarse = rng.uniform(0, 1, (h // 16 + 2, w // 16 + 2, 3))
    bg = np.kron(coarse, np.ones((16, 16, 1)))[:h, :w]
    bg = (bg + np.roll(bg, 8, 0) + np.roll(bg, 8, 1) + np.roll(bg, (8, 8), (0, 1))) / 4
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rng.integers(3, 7)):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 8)
        bg[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return 0.3 + 0.4 * bg


def render_clip(label: int, rng: np.random.Generator, frames: int = 32, height: int = 64,
                width: int = 80) -> np.ndarray:
    """uint8 RGB ``[frames, height, width, 3]`` of one clip of class ``label``."""
    bg = _background(rng, height, width)
    # High-contrast stripes (one bright, one dark colour) and a mark that makes rotation visible.
    color_a = rng.uniform(0.75, 1.0, 3).astype(np.float32)
    color_b = rng.uniform(0.0, 0.25, 3).astype(np.float32)
    mark = rng.uniform(0, 1, 3).astype(np.float32)
    stripe_angle, stripe_freq = rng.uniform(0, math.pi), rng.uniform(2, 4)
    # Motion parameters: magnitudes drawn the same way for every class, direction from the class.
    speed = rng.uniform(0.8, 1.2) * min(height, width) / frames      # pixels per frame
    zoom = rng.uniform(2.0, 2.6) ** (1 / frames)                     # scale factor per frame
    size0 = rng.uniform(9, 13)
    angle = rng.uniform(0, 2 * math.pi)
    cy0, cx0 = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    t = np.arange(frames) - (frames - 1) / 2  # centred: mid-clip state is class-independent
    dx = dy = np.zeros(frames)
    size = np.full(frames, size0)
    name = CLASSES[label]
    if name in DIRECTIONS:
        ux, uy = DIRECTIONS[name]
        dx, dy = speed * t * ux, speed * t * uy
    else:
        size = size0 * zoom ** (t * (1 if name == "zoom_in" else -1))
    # All frames at once: object-local coordinates in [-1, 1] of every pixel (inverse rotation/scale).
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    px, py = xx - cx0 - dx[:, None, None], yy - cy0 - dy[:, None, None]
    u = ((c * px + s * py) / size[:, None, None]).astype(np.float32)
    v = ((-s * px + c * py) / size[:, None, None]).astype(np.float32)
    inside = (np.abs(u) < 1) & (np.abs(v) < 1)
    stripes = np.sin(stripe_freq * math.pi * (u * math.cos(stripe_angle) + v * math.sin(stripe_angle))) > 0
    tex = np.where(stripes[..., None], color_a, color_b)
    tex[(u > 0.2) & (v > 0.2)] = mark
    video = np.where(inside[..., None], tex, bg.astype(np.float32))
    video += 0.03 * rng.standard_normal(video.shape, dtype=np.float32)
    return (np.clip(video, 0, 1) * 255).astype(np.uint8)


def _make_clip(job) -> ClipRecord:
    out, rel, label, seed, frames, size, fps = job
    rng = np.random.default_rng(seed)
    video = render_clip(label, rng, frames, size, size * 5 // 4)
    info = write_frames(video, Path(out) / rel, fps, EncodeSettings(keyframe_interval=8, preset="ultrafast"))
    return ClipRecord(rel, label, CLASSES[label], info.num_frames, info.fps)


def generate(root: str | Path, num_classes: int = 8, clips_per_class: dict | None = None,
             frames: int = 32, size: int = 64, fps: float = 15, seed: int = 0, workers: int = 2,
             progress: bool = True) -> Path:
    """Writes the dataset into ``root`` (a fresh folder, swapped in when complete); returns ``root``.

    Deterministic for a given seed: clip k of a split uses seed ``seed + split offset + k``.
    """
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"synthetic num_classes={num_classes}: must be between 2 and {len(CLASSES)}")
    clips_per_class = dict(clips_per_class or {"train": 100, "val": 15, "test": 15})
    root = Path(root)
    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    jobs = {split: [] for split in clips_per_class}
    for split, per_class in clips_per_class.items():
        (building / split).mkdir(parents=True)
        for k in range(per_class * num_classes):
            label = k % num_classes
            jobs[split].append((str(building), f"{split}/{k:05d}_{CLASSES[label]}.mp4", label,
                                seed + SPLIT_SEED_OFFSETS[split] + k, frames, size, fps))
    start = time.time()
    total = sum(len(j) for j in jobs.values())
    with ProcessPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=total, desc=f"generating synthetic dataset in {root}", unit="clip",
                 disable=not progress) as bar:
        for split, split_jobs in jobs.items():
            records = []
            for record in pool.map(_make_clip, split_jobs, chunksize=8):
                records.append(record)
                bar.update()
            write_manifest(building, split, records)
    write_classes(building, list(CLASSES[:num_classes]))
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    if progress:
        print(f"synthetic dataset: {total} clips in {time.time() - start:.1f}s -> {root}")
    return root


def is_generated(root: str | Path, splits=("train", "val", "test")) -> bool:
    return all(manifest_path(root, s).is_file() for s in splits) and (Path(root) / "classes.txt").is_file()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m data_prep.synthetic", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num-classes", type=int, default=8)
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--eval-per-class", type=int, default=15, help="val and test clips per class")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--size", type=int, default=64, help="short side (height); width is 5/4 of it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    generate(a.out, a.num_classes, {"train": a.train_per_class, "val": a.eval_per_class,
                                    "test": a.eval_per_class}, a.frames, a.size, seed=a.seed,
             workers=a.workers)


if __name__ == "__main__":
    main()
