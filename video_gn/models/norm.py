"""The normalization switch: one factory ``(channels) -> nn.Module`` for every norm kind.

GN follows the paper: statistics per sample over a group of C/G channels and all of (T, H, W).
LN and IN are GN with G=1 and G=C (the paper's definitions), not ``nn.LayerNorm`` over the last dim
and not ``nn.InstanceNorm3d(affine=False)``. BN keeps per-device statistics; only ``syncbn`` syncs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.group_norm import LeanGroupNorm

NORM_KINDS = ("bn", "syncbn", "frozen_bn", "gn", "ln", "in", "none")
# How the GN family is computed: PyTorch's nn.GroupNorm, or video_gn.ops.group_norm (same math, input
# dtype kept, lean saved tensors) in PyTorch or Triton. auto: Triton on CUDA, else torch — provisional
# until measured on a GPU; the default stays torch.
GN_IMPLS = ("torch", "lean", "triton", "auto")


class FrozenBatchNorm3d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all buffers (nothing trains).

    Uses ``F.batch_norm(training=False)`` so it behaves the same in train and eval mode and on any
    rank. Only meaningful when loaded from pretrained (e.g. inflated ImageNet) weights.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # BN checkpoints carry num_batches_tracked; frozen BN has no use for it.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class SubBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm whose training statistics are taken over sub-batches of ``sub_batch`` clips: a batch
    of ``s * sub_batch`` clips is normalised as ``s`` separate BN batches (clips ``b, b+s, b+2s, ...``
    form sub-batch ``b``), so BN sees the same number of clips whatever the batch (PySlowFast's
    sub-batch BN for multigrid, ``BN_BASE_SIZE``). A batch of at most ``sub_batch`` clips, or one it
    does not divide, is normalised whole. γ, β and the running statistics are shared by the sub-batches:
    the running mean/var move towards the mean of the sub-batches' means and (unbiased) variances,
    what BN at ``sub_batch`` clips would average, so evaluation needs no merge step. Same state dict
    as ``nn.BatchNorm3d``.
    """

    def __init__(self, num_features: int, sub_batch: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.sub_batch = sub_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        if not self.training or n <= self.sub_batch or n % self.sub_batch:
            return super().forward(x)
        splits = n // self.sub_batch
        # [n, c, ...] -> [sub_batch, splits * c, ...]: one BN channel per (sub-batch, channel)
        grouped = x.reshape(self.sub_batch, splits * c, *x.shape[2:])
        dims = [0, *range(2, x.dim())]
        with torch.no_grad():
            var, mean = torch.var_mean(grouped, dim=dims, correction=1)
            self.num_batches_tracked += 1
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.lerp_(mean.view(splits, c).mean(0).to(self.running_mean.dtype), factor)
            self.running_var.lerp_(var.view(splits, c).mean(0).to(self.running_var.dtype), factor)
        normalised = F.batch_norm(grouped, None, None, training=True, eps=self.eps).reshape(x.shape)
        shape = (1, c) + (1,) * (x.dim() - 2)
        return normalised * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sub_batch={self.sub_batch}"


_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, FrozenBatchNorm3d, nn.LayerNorm,
               nn.modules.instancenorm._InstanceNorm)


def is_norm(module: nn.Module) -> bool:
    """The one predicate every policy (zero-γ init, weight-decay groups, inflation) uses."""
    return isinstance(module, _NORM_TYPES)


@dataclass(frozen=True)
class NormLayer:
    """One norm layer of a network: its name, kind, channels, and groups (GN family; None for BN)."""

    name: str
    kind: str
    channels: int
    groups: int | None

    @property
    def channels_per_group(self) -> int | None:
        return None if self.groups is None else self.channels // self.groups


def norm_layers(model: nn.Module) -> list[NormLayer]:
    """Every norm layer of ``model`` in module order (what the summary prints per layer)."""
    layers = []
    for name, m in model.named_modules():
        if isinstance(m, nn.GroupNorm):  # LN and IN are GroupNorm layers too: G = 1 and G = C
            kind = "ln" if m.num_groups == 1 else "in" if m.num_groups == m.num_channels else "gn"
            layers.append(NormLayer(name, kind, m.num_channels, m.num_groups))
        elif is_norm(m):
            layers.append(NormLayer(name, type(m).__name__, getattr(m, "num_features", 0), None))
    return layers


def instance_norm_warning(layers: list[NormLayer], kind: str) -> str | None:
    """A one-line warning when GN has one channel per group somewhere (it is InstanceNorm there, the
    paper's worst group size, Table 3); None otherwise, and always for LN/IN, where it is the point."""
    single = [layer for layer in layers if layer.channels_per_group == 1]
    if kind != "gn" or not single:
        return None
    first = single[0]
    others = f" and {len(single) - 1} more layer(s)" if len(single) > 1 else ""
    return (f"warning: norm=gn has 1 channel per group in {first.name} ({first.groups} groups over "
            f"{first.channels} channels){others}: GN is InstanceNorm there, the paper's worst group size; "
            f"use norm.num_groups={max(1, first.channels // 2)} or norm.group_size=2 (norm.num_groups=null "
            "picks the G that fits the model)")


PAPER_GROUPS = 32  # the paper's G for ResNet-50, whose narrowest norm layer has 64 channels


def default_groups(narrowest: int) -> int:
    """GN's G when ``norm.num_groups`` is null: the paper's 32, or fewer so that the model's narrowest
    norm layer keeps 2 channels per group (the paper's ResNet-50 ratio), so GN never collapses to
    InstanceNorm (1 channel per group, the paper's worst group size, its Table 3)."""
    return max(1, min(PAPER_GROUPS, narrowest // 2))


@dataclass(frozen=True)
class NormSpec:
    """Builds the norm layer of a network: ``spec(channels, name=...) -> nn.Module``.

    Args:
        kind: one of ``bn, syncbn, frozen_bn, gn, ln, in, none``.
        num_groups: GN groups G (the paper's 32); None (``norm.num_groups: null``, the config's
            default): the model's, ``default_groups`` of its narrowest layer, which
            ``models.build_network`` resolves. ``group_size``, if set, is used instead.
        group_size: channels per GN group instead of a fixed G (G = C / group_size).
        eps: numerical epsilon of every kind.
        momentum: running-statistics momentum of the BN kinds.
        impl: how GN / LN / IN are computed (``GN_IMPLS``).
        sub_batch: ``bn`` only: training statistics over sub-batches of this many clips
            (``SubBatchNorm3d``; multigrid's fixed BN batch); None: over the whole batch.
    """

    kind: str = "gn"
    num_groups: int | None = PAPER_GROUPS
    group_size: int | None = None
    eps: float = 1e-5
    momentum: float = 0.1
    impl: str = "torch"
    sub_batch: int | None = None

    def __post_init__(self):
        if self.kind not in NORM_KINDS:
            raise ValueError(f"norm.kind={self.kind!r} is not one of {', '.join(NORM_KINDS)}")
        if self.impl not in GN_IMPLS:
            raise ValueError(f"norm.impl={self.impl!r} is not one of {', '.join(GN_IMPLS)}")

    def gn_impl(self) -> str:
        """``impl`` with ``auto`` decided for this machine."""
        if self.impl != "auto":
            return self.impl
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch"
        return "triton" if torch.cuda.is_available() else "torch"

    def groups_for(self, channels: int, name: str = "norm") -> int:
        """Number of groups a GN-family layer over ``channels`` uses; raises if it does not divide."""
        if self.kind == "ln":
            return 1
        if self.kind == "in":
            return channels
        if self.group_size is not None:
            if channels % self.group_size:
                raise ValueError(
                    f"{name}: norm.group_size={self.group_size} does not divide its {channels} channels"
                )
            return channels // self.group_size
        if self.num_groups is None:
            raise ValueError(f"{name}: GN's groups are not resolved (models.build_network resolves them)")
        if channels % self.num_groups:
            raise ValueError(
                f"{name}: norm.num_groups={self.num_groups} does not divide its {channels} channels "
                f"(use a G that divides {channels}, or norm.group_size)"
            )
        return self.num_groups

    def __call__(self, channels: int, name: str = "norm") -> nn.Module:
        if self.kind == "bn" and self.sub_batch:
            return SubBatchNorm3d(channels, self.sub_batch, eps=self.eps, momentum=self.momentum)
        if self.kind == "bn":
            return nn.BatchNorm3d(channels, eps=self.eps, momentum=self.momentum)
        if self.kind == "syncbn":
            # Converts to plain BN math when no process group is initialised (single process).
            return nn.SyncBatchNorm(channels, eps=self.eps, momentum=self.momentum)
        if self.kind == "frozen_bn":
            return FrozenBatchNorm3d(channels, eps=self.eps)
        if self.kind == "none":
            return nn.Identity()
        groups, impl = self.groups_for(channels, name), self.gn_impl()
        if impl == "torch":
            return nn.GroupNorm(groups, channels, eps=self.eps)
        return LeanGroupNorm(groups, channels, eps=self.eps, backend=impl)

    @classmethod
    def from_config(cls, cfg) -> NormSpec:
        """From a ``conf/norm/*.yaml`` mapping (plain keys, no ``_target_``)."""
        return cls(**{k: cfg[k] for k in cfg if k in cls.__dataclass_fields__})
