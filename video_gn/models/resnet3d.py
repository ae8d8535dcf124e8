"""3D ResNets for video: ResNet-50/101 I3D, C2D and a small ResNet for CPU runs.

Written as plain blocks rather than pytorchvideo's ``create_resnet`` because (1) the norm factory
takes ``(channels)`` while pytorchvideo calls ``norm(num_features=, eps=, momentum=)`` which
``nn.GroupNorm`` cannot accept, (2) its ``init_net_weights`` zero-inits only BatchNorm, and (3) the
GPU benchmark machine has no pytorchvideo. Shapes follow the Non-local paper's Table 1 (see
docs/reference.md, "The I3D-R50"): the temporal kernel (3x1x1) sits in the first conv of a block.

Module names mirror a torchvision ResNet one-to-one (see ``inflate.py``):
``stem.conv/norm``, ``res{2..5}.{j}.conv_{a,b,c}/norm_{a,b,c}``, ``...shortcut.conv/norm``, ``head.fc``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .norm import FrozenBatchNorm3d, NormSpec, is_norm

# Per-stage temporal kernel of each block's first conv (res2..res5), from video-nonlocal-net.
I3D_TEMPORAL_KERNELS = {
    50: ([3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]),
    101: ([3, 3, 3], [3, 1, 3, 1], [3, 1] * 11 + [3], [1, 3, 1]),
}
BOTTLENECK_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def norm_relu(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``relu(norm(x))``, fused where the norm offers it (the lean / Triton GroupNorm: the ReLU's mask
    is recomputed in backward instead of kept)."""
    fused = getattr(norm, "forward_relu", None)
    return fused(x) if fused is not None else torch.relu_(norm(x))


def _conv(cin, cout, kernel, stride=(1, 1, 1)) -> nn.Conv3d:
    padding = tuple(k // 2 for k in kernel)
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)


class Shortcut(nn.Module):
    """1x1x1 projection + norm when a block changes width or resolution."""

    def __init__(self, cin, cout, spatial_stride, norm: NormSpec, name: str):
        super().__init__()
        self.conv = _conv(cin, cout, (1, 1, 1), (1, spatial_stride, spatial_stride))
        self.norm = norm(cout, f"{name}.shortcut.norm")

    def forward(self, x):
        return self.norm(self.conv(x))


class Bottleneck3d(nn.Module):
    """conv_a (t x 1 x 1) -> conv_b (1 x 3 x 3, spatial stride) -> conv_c (1 x 1 x 1), each normed."""

    expansion = 4

    def __init__(self, cin, inner, temporal_kernel, spatial_stride, norm: NormSpec, name: str):
        super().__init__()
        cout = inner * self.expansion
        self.conv_a = _conv(cin, inner, (temporal_kernel, 1, 1))
        self.norm_a = norm(inner, f"{name}.norm_a")
        self.conv_b = _conv(inner, inner, (1, 3, 3), (1, spatial_stride, spatial_stride))
        self.norm_b = norm(inner, f"{name}.norm_b")
        self.conv_c = _conv(inner, cout, (1, 1, 1))
        self.norm_c = norm(cout, f"{name}.norm_c")
        self.relu = nn.ReLU(inplace=True)
        needs_projection = cin != cout or spatial_stride != 1
        self.shortcut = Shortcut(cin, cout, spatial_stride, norm, name) if needs_projection else None

    @property
    def last_norm(self) -> nn.Module:
        return self.norm_c

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        out = norm_relu(self.norm_a, self.conv_a(x))
        out = norm_relu(self.norm_b, self.conv_b(out))
        out = self.norm_c(self.conv_c(out))
        return self.relu(out + identity)


class BasicBlock3d(nn.Module):
    """conv_a (t x 3 x 3, spatial stride) -> conv_b (1 x 3 x 3): the small network's block."""

    expansion = 1

    def __init__(self, cin, inner, temporal_kernel, spatial_stride, norm: NormSpec, name: str):
        super().__init__()
        self.conv_a = _conv(cin, inner, (temporal_kernel, 3, 3), (1, spatial_stride, spatial_stride))
        self.norm_a = norm(inner, f"{name}.norm_a")
        self.conv_b = _conv(inner, inner, (1, 3, 3))
        self.norm_b = norm(inner, f"{name}.norm_b")
        self.relu = nn.ReLU(inplace=True)
        needs_projection = cin != inner or spatial_stride != 1
        self.shortcut = Shortcut(cin, inner, spatial_stride, norm, name) if needs_projection else None

    @property
    def last_norm(self) -> nn.Module:
        return self.norm_b

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        out = norm_relu(self.norm_a, self.conv_a(x))
        out = self.norm_b(self.conv_b(out))
        return self.relu(out + identity)


class Stem(nn.Module):
    """conv1: the first convolution, its norm and ReLU (the max pool after it is ``pool1``)."""

    def __init__(self, cout, kernel, stride, norm: NormSpec):
        super().__init__()
        self.conv = _conv(3, cout, kernel, stride)
        self.norm = norm(cout, "stem.norm")

    def forward(self, x):
        return norm_relu(self.norm, self.conv(x))


class Head(nn.Module):
    """Global average pool over (T, H, W) — so any clip length works — then dropout and fc.

    ``window``: pytorchvideo's and PySlowFast's head instead average over a (T, H, W) window sliding
    with stride 1, then over the windows: the same as the global average where the window covers the
    map (their training size), not on a larger test view (e.g. 256 px crops of a 224 px model). A
    window larger than the map is clipped to it.
    """

    def __init__(self, cin, num_classes, dropout, window: Sequence[int] | None = None):
        super().__init__()
        self.window = tuple(window) if window else None
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        if self.window:
            x = F.avg_pool3d(x, tuple(min(w, s) for w, s in zip(self.window, x.shape[2:], strict=True)), 1)
        return self.fc(self.dropout(self.pool(x).flatten(1)))


class ResNet3d(nn.Module):
    """A video ResNet: stem -> res2 [-> pool2] -> res3 -> res4 -> res5 -> head.

    Args:
        block: ``Bottleneck3d`` or ``BasicBlock3d``.
        blocks_per_stage: number of blocks in res2..res5.
        temporal_kernels: per stage, the temporal kernel of each block's first conv.
        norm: the norm factory.
        num_classes: classifier outputs.
        width: channels of res2's inner convs (64 for ResNet-50); doubles per stage.
        stem_kernel, stem_stride: conv1.
        stem_pool_kernel, stem_pool_stride: pool1, the max pool after conv1.
        pool2_kernel: temporal max pool after res2 (I3D: 2, stride 2), or ``None``.
        head_window: the head's sliding average window (``Head``), or ``None``: global average.
        dropout: before the classifier.
        zero_init_last_norm: γ=0 in the last norm of each residual block (the paper's init).
    """

    def __init__(
        self,
        *,
        block: type[nn.Module],
        blocks_per_stage: Sequence[int],
        temporal_kernels: Sequence[Sequence[int]],
        norm: NormSpec,
        num_classes: int,
        width: int = 64,
        stem_kernel=(5, 7, 7),
        stem_stride=(2, 2, 2),
        stem_pool_kernel=(3, 3, 3),
        stem_pool_stride=(2, 2, 2),
        pool2_kernel: int | None = 2,
        head_window: Sequence[int] | None = None,
        dropout: float = 0.5,
        zero_init_last_norm: bool = True,
    ):
        super().__init__()
        for stage, (n, kernels) in enumerate(zip(blocks_per_stage, temporal_kernels, strict=True), start=2):
            if len(kernels) != n:
                raise ValueError(f"res{stage}: {n} blocks but {len(kernels)} temporal kernels")
        self.stem = Stem(width, tuple(stem_kernel), tuple(stem_stride), norm)
        self.pool1 = nn.MaxPool3d(tuple(stem_pool_kernel), tuple(stem_pool_stride),
                                  padding=tuple(k // 2 for k in stem_pool_kernel))
        cin = width
        stages = []
        for i, (n, kernels) in enumerate(zip(blocks_per_stage, temporal_kernels, strict=True)):
            inner = width * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, inner, kernels[j], stride, norm, f"res{i + 2}.{j}"))
                cin = inner * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.res2, self.res3, self.res4, self.res5 = stages
        self.pool2 = (
            nn.MaxPool3d((pool2_kernel, 1, 1), (pool2_kernel, 1, 1)) if pool2_kernel else nn.Identity()
        )
        self.head = Head(cin, num_classes, dropout, head_window)
        self.reset_parameters(zero_init_last_norm)

    def stages(self) -> list[tuple[str, nn.Module]]:
        """(name, module) in forward order: what the summary reports per stage."""
        return [("conv1", self.stem), ("pool1", self.pool1), ("res2", self.res2), ("pool2", self.pool2),
                ("res3", self.res3), ("res4", self.res4), ("res5", self.res5)]

    def reset_parameters(self, zero_init_last_norm: bool = True) -> None:
        """He init for convs, γ=1/β=0 for every norm kind, γ=0 for each block's last norm."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, FrozenBatchNorm3d):
                # Identity until pretrained weights load; zeroing it would kill a branch for good.
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            elif is_norm(m) and getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.fc.weight, std=0.01)
        nn.init.zeros_(self.head.fc.bias)
        if zero_init_last_norm:
            for m in self.modules():
                last = getattr(m, "last_norm", None)
                if is_norm(last) and isinstance(getattr(last, "weight", None), nn.Parameter):
                    nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, stage in self.stages():
            x = stage(x)
        return self.head(x)


def i3d_resnet(*, depth: int = 50, norm: NormSpec, num_classes: int, dropout: float = 0.5,
               zero_init_last_norm: bool = True) -> ResNet3d:
    """ResNet-50/101 I3D (Non-local Networks, Table 1; 3x1x1 inflation table)."""
    return ResNet3d(block=Bottleneck3d, blocks_per_stage=BOTTLENECK_DEPTHS[depth],
                    temporal_kernels=I3D_TEMPORAL_KERNELS[depth], norm=norm, num_classes=num_classes,
                    dropout=dropout, zero_init_last_norm=zero_init_last_norm)


def c2d_resnet(*, depth: int = 50, norm: NormSpec, num_classes: int, dropout: float = 0.5,
               zero_init_last_norm: bool = True) -> ResNet3d:
    """C2D: the same network with no temporal kernels (time is mixed only by the pools)."""
    depths = BOTTLENECK_DEPTHS[depth]
    return ResNet3d(block=Bottleneck3d, blocks_per_stage=depths,
                    temporal_kernels=[[1] * n for n in depths], norm=norm, num_classes=num_classes,
                    stem_kernel=(1, 7, 7), dropout=dropout, zero_init_last_norm=zero_init_last_norm)


# The 8-frame models of pytorchvideo's and PySlowFast's Kinetics zoos (I3D_8x8_R50, SLOW_8x8_R50,
# C2D_8x8_R50; their create_resnet): the stem keeps time (stride 1, no temporal max pool), a
# temporal max pool after res2 (not in Slow), and their sliding-window head.
ZOO_STEM = {"stem_stride": (1, 2, 2), "stem_pool_kernel": (1, 3, 3), "stem_pool_stride": (1, 2, 2)}


def i3d_8x8_resnet(*, depth: int = 50, norm: NormSpec, num_classes: int, dropout: float = 0.5,
                   zero_init_last_norm: bool = True) -> ResNet3d:
    """pytorchvideo's ``i3d_r50`` (I3D_8x8_R50): our I3D's temporal kernels, an 8-frame stem."""
    return ResNet3d(block=Bottleneck3d, blocks_per_stage=BOTTLENECK_DEPTHS[depth],
                    temporal_kernels=I3D_TEMPORAL_KERNELS[depth], norm=norm, num_classes=num_classes,
                    stem_kernel=(5, 7, 7), **ZOO_STEM, pool2_kernel=2, head_window=(4, 7, 7),
                    dropout=dropout, zero_init_last_norm=zero_init_last_norm)


def slow_resnet(*, depth: int = 50, norm: NormSpec, num_classes: int, dropout: float = 0.5,
                zero_init_last_norm: bool = True) -> ResNet3d:
    """pytorchvideo's ``slow_r50`` (SlowFast's Slow pathway alone, SLOW_8x8_R50): temporal kernels
    (3x1x1) only in res4 and res5, no temporal pooling anywhere."""
    depths = BOTTLENECK_DEPTHS[depth]
    return ResNet3d(block=Bottleneck3d, blocks_per_stage=depths,
                    temporal_kernels=[[1] * depths[0], [1] * depths[1], [3] * depths[2], [3] * depths[3]],
                    norm=norm, num_classes=num_classes, stem_kernel=(1, 7, 7), **ZOO_STEM,
                    pool2_kernel=None, head_window=(8, 7, 7), dropout=dropout,
                    zero_init_last_norm=zero_init_last_norm)


def c2d_8x8_resnet(*, depth: int = 50, norm: NormSpec, num_classes: int, dropout: float = 0.5,
                   zero_init_last_norm: bool = True) -> ResNet3d:
    """pytorchvideo's ``c2d_r50`` (C2D_8x8_R50): no temporal kernels, the 8-frame stem."""
    depths = BOTTLENECK_DEPTHS[depth]
    return ResNet3d(block=Bottleneck3d, blocks_per_stage=depths, temporal_kernels=[[1] * n for n in depths],
                    norm=norm, num_classes=num_classes, stem_kernel=(1, 7, 7), **ZOO_STEM, pool2_kernel=2,
                    head_window=(4, 7, 7), dropout=dropout, zero_init_last_norm=zero_init_last_norm)


def small_resnet(*, norm: NormSpec, num_classes: int, width: int = 32,
                 blocks_per_stage: Sequence[int] = (1, 1, 1, 1), dropout: float = 0.5,
                 zero_init_last_norm: bool = True) -> ResNet3d:
    """ResNet-10-style 3D net (basic blocks, 3x3x3 first conv) for CPU runs and tests.

    No temporal downsampling, so short low-resolution clips keep their motion.
    """
    return ResNet3d(block=BasicBlock3d, blocks_per_stage=blocks_per_stage,
                    temporal_kernels=[[3] * n for n in blocks_per_stage], norm=norm,
                    num_classes=num_classes, width=width, stem_kernel=(3, 7, 7), stem_stride=(1, 2, 2),
                    stem_pool_kernel=(1, 3, 3), stem_pool_stride=(1, 2, 2), pool2_kernel=None,
                    dropout=dropout, zero_init_last_norm=zero_init_last_norm)


ARCHITECTURES = {"i3d": i3d_resnet, "c2d": c2d_resnet, "small": small_resnet,
                 "i3d_8x8": i3d_8x8_resnet, "slow_8x8": slow_resnet, "c2d_8x8": c2d_8x8_resnet}


def build_model(*, arch: str, norm: NormSpec, num_classes: int, **arch_kwargs) -> ResNet3d:
    """The one entry point: ``conf/model/*.yaml`` keys + a norm spec -> network."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"model.arch={arch!r} is not one of {', '.join(ARCHITECTURES)}")
    builder = ARCHITECTURES[arch]
    accepted = set(inspect.signature(builder).parameters) - {"norm", "num_classes"}
    unknown = sorted(set(arch_kwargs) - accepted)
    if unknown:
        raise ValueError(f"model.{unknown[0]} is not a setting of model.arch={arch} "
                         f"(it takes: {', '.join(sorted(accepted))})")
    depth = arch_kwargs.get("depth")
    if depth is not None and "depth" in accepted and depth not in BOTTLENECK_DEPTHS:
        raise ValueError(f"model.depth={depth} is not a depth of model.arch={arch}: one of "
                         f"{', '.join(map(str, BOTTLENECK_DEPTHS))}")
    return builder(norm=norm, num_classes=num_classes, **arch_kwargs)
