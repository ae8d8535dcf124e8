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

``--variant hard`` (``data=synthetic_hard``): a dataset where a small 3D ResNet is far from saturated
and batch statistics matter, for the small-batch benchmark. 12 classes: the 8 above plus four of
temporal order (right-then-left, left-then-right, down-then-up, up-then-down: out along a direction
and back, so a window over one half looks like a plain move). Every clip also has a smaller, slower
distractor object on a random straight path, camera shake (±2 px per frame) and its own photometric transform
(gain and contrast 0.5–1.5, per-channel colour cast 0.75–1.25, offset ±0.15) and stronger noise.
Only the target's path depends on the class; its mid-clip position, every appearance draw, the
distractor and the photometrics are drawn identically for all classes, so one frame does not give
the class away (tests check a frame-level classifier stays near chance).
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
from video_gn.data.manifest import ClipRecord, write_classes, write_manifest

# Unit direction (dx, dy) of each moving class, in image coordinates (y down).
DIRECTIONS = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1),
              "move_up_left": (-0.7071, -0.7071), "move_down_right": (0.7071, 0.7071)}
CLASSES = (*DIRECTIONS, "zoom_in", "zoom_out")
# The hard dataset adds fine temporal order: out along one direction and back (the first half alone
# looks like a plain move, so a short window can be ambiguous).
ORDER_CLASSES = {"right_then_left": "move_right", "left_then_right": "move_left",
                 "down_then_up": "move_down", "up_then_down": "move_up"}
HARD_CLASSES = (*CLASSES, *ORDER_CLASSES)
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


def _trajectory(name: str, rng: np.random.Generator, frames: int, height: int, width: int,
                hard: bool = False):
    """(dx, dy, size) per frame of a class's motion; magnitudes drawn the same way for every class,
    centred in time so the mid-clip state does not depend on the class."""
    speed = rng.uniform(0.8, 1.2) * min(height, width) / frames      # pixels per frame
    zoom = rng.uniform(2.0, 2.6) ** (1 / frames)                     # scale factor per frame
    size = np.full(frames, rng.uniform(9, 13))
    t = np.arange(frames) - (frames - 1) / 2
    dx = dy = np.zeros(frames)
    if name in DIRECTIONS:
        ux, uy = DIRECTIONS[name]
        dx, dy = speed * t * ux, speed * t * uy
    elif name in ORDER_CLASSES:  # out along the first direction, back along the second
        ux, uy = DIRECTIONS[ORDER_CLASSES[name]]
        # Twice the speed, so a frame's position covers the same range as a plain move's.
        out = 2 * speed * (frames / 4 - np.abs(t))
        dx, dy = out * ux, out * uy
    if name.startswith("zoom"):
        size = size * zoom ** (t * (1 if name == "zoom_in" else -1))
    elif hard:  # one size for the clip, drawn like a zooming object's size at a random moment
        size = size * zoom ** rng.choice(t)
    return dx, dy, size


def _appearance(rng: np.random.Generator) -> tuple:
    """A textured square's look: stripes of a bright and a dark colour, and a corner mark."""
    color_a = rng.uniform(0.75, 1.0, 3).astype(np.float32)
    color_b = rng.uniform(0.0, 0.25, 3).astype(np.float32)
    mark = rng.uniform(0, 1, 3).astype(np.float32)
    stripe_angle, stripe_freq = rng.uniform(0, math.pi), rng.uniform(2, 4)
    return color_a, color_b, mark, stripe_angle, stripe_freq


def _draw(appearance: tuple, rng: np.random.Generator, dx, dy, size, height: int, width: int):
    """The square at a random angle and start, moved along (dx, dy, size): its mask ``[F, H, W]``
    and colours ``[F, H, W, 3]``."""
    color_a, color_b, mark, stripe_angle, stripe_freq = appearance
    angle = rng.uniform(0, 2 * math.pi)
    cy0, cx0 = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
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
    return inside, tex


def render_clip(label: int, rng: np.random.Generator, frames: int = 32, height: int = 64,
                width: int = 80) -> np.ndarray:
    """uint8 RGB ``[frames, height, width, 3]`` of one clip of class ``label`` (default dataset)."""
    bg = _background(rng, height, width)
    appearance = _appearance(rng)
    dx, dy, size = _trajectory(CLASSES[label], rng, frames, height, width)
    inside, tex = _draw(appearance, rng, dx, dy, size, height, width)
    video = np.where(inside[..., None], tex, bg.astype(np.float32))
    video += 0.03 * rng.standard_normal(video.shape, dtype=np.float32)
    return (np.clip(video, 0, 1) * 255).astype(np.uint8)


def render_hard_clip(label: int, rng: np.random.Generator, frames: int = 32, height: int = 64,
                     width: int = 80, photometric: bool = True, noise: float = 0.05,
                     target_scale: float = 1.0, target_contrast: float = 1.0) -> np.ndarray:
    """uint8 RGB ``[frames, height, width, 3]`` of class ``label`` of ``HARD_CLASSES`` (hard dataset).

    On top of the default clip: a distractor object on a random straight path, camera shake, and a
    per-clip photometric transform (gain, contrast, colour cast, offset) as real footage varies from
    clip to clip — what makes a batch's statistics differ from the dataset's. Everything but the
    target's path is drawn the same way for every class. ``photometric=False`` draws the transform
    but does not apply it (the same clips otherwise: every other draw is unchanged). ``noise``: the
    sensor noise's standard deviation (on 0-1 pixels; the same draw, scaled), the same for every clip.
    ``target_scale`` scales the target's size and ``target_contrast`` its colours' distance from mid
    grey (1: as drawn; the same draws either way): a smaller, fainter target is harder to follow.
    """
    bg = _background(rng, height, width).astype(np.float32)
    appearance = _appearance(rng)
    dx, dy, size = _trajectory(HARD_CLASSES[label], rng, frames, height, width, hard=True)
    inside, tex = _draw(appearance, rng, dx, dy, size * target_scale, height, width)
    if target_contrast != 1:  # (1: the bytes of every dataset generated before the knob)
        tex = 0.5 + target_contrast * (tex - 0.5)
    heading, speed = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.5) * min(height, width) / frames
    t = np.arange(frames) - (frames - 1) / 2
    d_inside, d_tex = _draw(_appearance(rng), rng, speed * t * math.cos(heading),
                            speed * t * math.sin(heading), np.full(frames, rng.uniform(4, 6)), height, width)
    video = np.where(d_inside[..., None], d_tex, bg)
    video = np.where(inside[..., None], tex, video)
    shake = rng.integers(-2, 3, (frames, 2))
    video = np.stack([np.roll(f, tuple(d), axis=(0, 1)) for f, d in zip(video, shake, strict=True)])
    gain, contrast = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5)
    cast, offset = rng.uniform(0.75, 1.25, 3).astype(np.float32), rng.uniform(-0.15, 0.15)
    if photometric:
        video = ((video - 0.5) * contrast + 0.5) * gain * cast + offset
    video += noise * rng.standard_normal(video.shape, dtype=np.float32)
    return (np.clip(video, 0, 1) * 255).astype(np.uint8)


# variant -> (class names, renderer)
VARIANTS = {"default": (CLASSES, render_clip), "hard": (HARD_CLASSES, render_hard_clip)}


def _make_clip(job) -> ClipRecord:
    out, rel, label, seed, frames, size, fps, variant, photometric, hard = job
    classes, render = VARIANTS[variant]
    rng = np.random.default_rng(seed)
    extra = {} if variant == "default" else {"photometric": photometric, **hard}
    video = render(label, rng, frames, size, size * 5 // 4, **extra)
    info = write_frames(video, Path(out) / rel, fps, EncodeSettings(keyframe_interval=8, preset="ultrafast"))
    return ClipRecord(rel, label, classes[label], info.num_frames, info.fps)


def generate(root: str | Path, num_classes: int = 8, clips_per_class: dict | None = None,
             frames: int = 32, size: int = 64, fps: float = 15, seed: int = 0, workers: int = 2,
             progress: bool = True, variant: str = "default", photometric: bool = True,
             noise: float = 0.05, target_scale: float = 1.0, target_contrast: float = 1.0) -> Path:
    """Writes the dataset into ``root`` (a fresh folder, swapped in when complete); returns ``root``.

    Deterministic for a given seed: clip k of a split uses seed ``seed + split offset + k``.
    ``variant``: ``default`` (the embedded dataset) or ``hard`` (see ``render_hard_clip``);
    ``photometric``: the hard variant's per-clip gain/contrast/colour cast/offset (on or off);
    ``noise``, ``target_scale``, ``target_contrast``: the hard variant's difficulty (``render_hard_clip``).
    """
    if variant not in VARIANTS:
        raise ValueError(f"synthetic variant={variant!r} is not one of {', '.join(VARIANTS)}")
    classes = VARIANTS[variant][0]
    if not 2 <= num_classes <= len(classes):
        raise ValueError(f"synthetic num_classes={num_classes}: must be between 2 and {len(classes)} "
                         f"for variant={variant}")
    clips_per_class = dict(clips_per_class or {"train": 100, "val": 15, "test": 15})
    root = Path(root)
    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    jobs = {split: [] for split in clips_per_class}
    for split, per_class in clips_per_class.items():
        (building / split).mkdir(parents=True)
        for k in range(per_class * num_classes):
            label = k % num_classes
            jobs[split].append((str(building), f"{split}/{k:05d}_{classes[label]}.mp4", label,
                                seed + SPLIT_SEED_OFFSETS[split] + k, frames, size, fps, variant,
                                photometric, {"noise": noise, "target_scale": target_scale,
                                              "target_contrast": target_contrast}))
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
    write_classes(building, list(classes[:num_classes]))
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    if progress:
        print(f"synthetic dataset: {total} clips in {time.time() - start:.1f}s -> {root}")
    return root


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
    p.add_argument("--variant", choices=sorted(VARIANTS), default="default",
                   help="hard: 12 classes with temporal order, distractors, shake, per-clip colour")
    p.add_argument("--no-photometric", action="store_true",
                   help="hard variant: leave out the per-clip gain/contrast/colour cast/offset")
    a = p.parse_args(argv)
    generate(a.out, a.num_classes, {"train": a.train_per_class, "val": a.eval_per_class,
                                    "test": a.eval_per_class}, a.frames, a.size, seed=a.seed,
             workers=a.workers, variant=a.variant, photometric=not a.no_photometric)


if __name__ == "__main__":
    main()
