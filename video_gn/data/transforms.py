"""Spatial transforms on uint8 clips ``[T, C, H, W]`` (torchvision.transforms.v2 functionals).

Outputs stay uint8 ``[C, T, H, W]``: normalisation (mean 0.45, std 0.225) happens on the device in
the LightningModule, which keeps worker CPU and host-to-device traffic 4x smaller.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF


def _short_side_scale(h: int, w: int, short_side: int) -> float:
    return short_side / min(h, w)


def train_transform(video: torch.Tensor, short_side_range: tuple[int, int], crop_size: int,
                    flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Short side random in ``short_side_range``, random ``crop_size`` square crop, random flip, drawn
    from ``generator`` (None: the process's random state).

    Done as one ``resized_crop`` of the source region that the crop covers after scaling, which is
    the same picture as resize-then-crop at a fraction of the cost.
    """
    t, c, h, w = video.shape
    lo, hi = short_side_range
    scale = _short_side_scale(h, w, int(torch.randint(lo, hi + 1, (), generator=generator)))
    region = min(h, w, round(crop_size / scale))
    top = int(torch.randint(0, h - region + 1, (), generator=generator))
    left = int(torch.randint(0, w - region + 1, (), generator=generator))
    video = TF.resized_crop(video, top, left, region, region, [crop_size, crop_size], antialias=True)
    if flip and torch.rand((), generator=generator) < 0.5:
        video = video.flip(-1)
    return video.permute(1, 0, 2, 3).contiguous()


def _resize_short_side(video: torch.Tensor, short_side: int) -> torch.Tensor:
    return TF.resize(video, [short_side], antialias=True)


def val_transform(video: torch.Tensor, short_side: int, crop_size: int) -> torch.Tensor:
    """Short side ``short_side``, centre ``crop_size`` crop."""
    video = TF.center_crop(_resize_short_side(video, short_side), [crop_size, crop_size])
    return video.permute(1, 0, 2, 3).contiguous()


def multi_view_crops(clips: torch.Tensor, short_side: int, num_crops: int) -> torch.Tensor:
    """``[num_clips, T, C, H, W]`` -> ``[num_clips * num_crops, C, T, S, S]`` with S = ``short_side``.

    Crops are square, as tall as the short side, evenly spaced along the long side (left, centre,
    right for 3): together they cover the frame (the paper's fully-convolutional 3-crop testing).
    """
    n, t, c, h, w = clips.shape
    frames = _resize_short_side(clips.reshape(n * t, c, h, w), short_side)
    h, w = frames.shape[-2:]
    frames = frames.reshape(n, t, c, h, w)
    long_len = max(h, w)
    offsets = torch.linspace(0, long_len - short_side, num_crops).round().long().tolist() \
        if num_crops > 1 else [(long_len - short_side) // 2]
    views = []
    for clip in frames:
        for off in offsets:
            crop = clip[..., off:off + short_side, :] if h > w else clip[..., off:off + short_side]
            views.append(crop.permute(1, 0, 2, 3))
    return torch.stack(views).contiguous()


def test_views(frames: torch.Tensor, frames_per_clip: int, short_side: int, num_crops: int) -> torch.Tensor:
    """The multi-view test sample: frames ``[num_clips * T, H, W, C]`` (uint8, the clips' frames in
    order) -> ``[num_clips * num_crops, C, T, S, S]``. The test loader and ``video_gn.predict`` both
    build views with this one function."""
    frames = frames.permute(0, 3, 1, 2)  # [N, C, H, W]
    clips = frames.reshape(-1, frames_per_clip, *frames.shape[1:])
    return multi_view_crops(clips, short_side, num_crops)


def normalize(video: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 ``[..., C, T, H, W]`` -> float, (x/255 - mean) / std per channel."""
    shape = (3, 1, 1, 1)
    mean = torch.as_tensor(mean, dtype=torch.float32, device=video.device).view(shape)
    std = torch.as_tensor(std, dtype=torch.float32, device=video.device).view(shape)
    return (video.float() / 255 - mean) / std
