"""Which frame indices make a clip: sampling by index, never by seconds.

A clip is ``frames_per_clip`` frames every ``frame_stride`` frames, spanning
``clip_span = (frames_per_clip - 1) * frame_stride + 1`` frames. The datamodule leaves out (and
reports) videos shorter than that, unless ``data.short_videos=loop``: then indices wrap around, so
every clip has exactly ``frames_per_clip`` frames and keeps the motion's speed (what PySlowFast does
for short Kinetics clips).
"""

from __future__ import annotations

import numpy as np


def _window(start: int, num_frames: int, frames_per_clip: int, frame_stride: int) -> np.ndarray:
    return (start + np.arange(frames_per_clip) * frame_stride) % num_frames


def clip_span(frames_per_clip: int, frame_stride: int) -> int:
    """Frames from a clip's first to its last sampled frame."""
    return (frames_per_clip - 1) * frame_stride + 1


def _max_start(num_frames: int, frames_per_clip: int, frame_stride: int) -> int:
    return max(0, num_frames - clip_span(frames_per_clip, frame_stride))


def random_clip(num_frames: int, frames_per_clip: int, frame_stride: int,
                rng: np.random.Generator) -> np.ndarray:
    """Training: one window at a uniformly random start."""
    start = int(rng.integers(0, _max_start(num_frames, frames_per_clip, frame_stride) + 1))
    return _window(start, num_frames, frames_per_clip, frame_stride)


def centre_clip(num_frames: int, frames_per_clip: int, frame_stride: int) -> np.ndarray:
    """Validation: the window in the middle of the video."""
    start = _max_start(num_frames, frames_per_clip, frame_stride) // 2
    return _window(start, num_frames, frames_per_clip, frame_stride)


def uniform_clips(num_frames: int, frames_per_clip: int, frame_stride: int,
                  num_clips: int) -> np.ndarray:
    """Testing: ``num_clips`` windows evenly spaced from the first to the last possible start."""
    last = _max_start(num_frames, frames_per_clip, frame_stride)
    starts = np.linspace(0, last, num_clips).round().astype(int) if num_clips > 1 else [last // 2]
    return np.stack([_window(s, num_frames, frames_per_clip, frame_stride) for s in starts])
