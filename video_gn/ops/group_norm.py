"""GroupNorm without the memory penalty: ``group_norm(x, G, weight, bias, eps, relu, backend)``.

Why. Under bf16 autocast ``F.group_norm`` runs in fp32, returns fp32 and autograd keeps fp32
activations for backward: the I3D-R50 with GN then needs twice BN's memory (docs/reference.md,
"GroupNorm memory"). This op takes bf16 / fp16 / fp32 input, computes the statistics in fp32 (per
sample and group, over C/G x T x H x W; a numerically stable parallel variance, so a large mean does
not cancel), returns the **input's** dtype even under autocast, and saves for backward only the input
in its own dtype, the per-(sample, group) mean and rstd in fp32, and γ (and β when the ReLU is
fused). Both memory formats (contiguous NCDHW and ``channels_last_3d``) are read in place.

``relu=True`` fuses the ReLU that follows most norms: forward applies it, backward recomputes the
mask from the saved input (no mask, no second activation is kept).

Back-ends, one math (per channel c of group g, M = C/G·T·H·W elements per group):
    forward   y  = x·a + b,  a = rstd·γ_c,  b = β_c − mean·rstd·γ_c
    backward  A_c = Σ dz,  B_c = Σ dz·x̂  (per sample and channel; dz = dy, masked by the ReLU)
              dβ = Σ_n A, dγ = Σ_n B,  s1 = Σ_{c∈g} γ_c A_c,  s2 = Σ_{c∈g} γ_c B_c
              dx = rstd·γ_c·dz − rstd·s1/M − x̂·rstd·s2/M
- ``lean``: PyTorch reductions in fp32 over views (runs anywhere);
- ``triton``: the same steps as Triton kernels (``group_norm_triton.py``), CUDA or
  ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

BACKENDS = ("lean", "triton")


def group_norm(x: torch.Tensor, num_groups: int, weight: torch.Tensor, bias: torch.Tensor,
               eps: float = 1e-5, relu: bool = False, backend: str = "lean") -> torch.Tensor:
    """GroupNorm of ``x`` ``[N, C, *spatial]`` (optionally + ReLU) in ``x``'s dtype and layout."""
    if backend not in BACKENDS:
        raise ValueError(f"norm.impl backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if x.shape[1] % num_groups:
        raise ValueError(f"{num_groups} groups do not divide {x.shape[1]} channels")
    return _GroupNorm.apply(x, weight, bias, num_groups, eps, relu, backend)


def check_triton_available() -> None:
    """``norm.impl=triton`` needs CUDA (or the Triton interpreter, for tests on CPU)."""
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    if not interpreting and not torch.cuda.is_available():
        raise RuntimeError("norm.impl=triton needs a CUDA GPU (or TRITON_INTERPRET=1 to run the kernels "
                           "on CPU for testing); use norm.impl=lean or torch on CPU")
    try:
        import triton  # noqa: F401
    except ImportError as e:
        raise RuntimeError("norm.impl=triton needs the triton package (pip install triton)") from e


def _ops(backend: str):
    if backend == "triton":
        from . import group_norm_triton

        return group_norm_triton
    return _LeanOps


def _per_channel(t: torch.Tensor, num_groups: int, channels: int) -> torch.Tensor:
    """``[N, G]`` -> ``[N, C]``: each channel gets its group's value."""
    return t.repeat_interleave(channels // num_groups, dim=1)


class _GroupNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, num_groups, eps, relu, backend):
        ops = _ops(backend)
        c = x.shape[1]
        with torch.autocast(x.device.type, enabled=False):
            mean, rstd = ops.group_stats(x, num_groups, eps)  # [N, G] fp32
            scale = _per_channel(rstd, num_groups, c) * weight.float()
            shift = bias.float() - _per_channel(mean, num_groups, c) * scale
            y = ops.scale_shift(x, scale, shift, relu)
        ctx.num_groups, ctx.relu, ctx.backend = num_groups, relu, backend
        ctx.save_for_backward(x, weight, mean, rstd, *([bias] if relu else []))
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, rstd, *maybe_bias = ctx.saved_tensors
        ops, g = _ops(ctx.backend), ctx.num_groups
        n, c = x.shape[:2]
        group_size = x[0].numel() // g
        with torch.autocast(x.device.type, enabled=False):
            mean_c, rstd_c = _per_channel(mean, g, c), _per_channel(rstd, g, c)
            gamma = weight.float()
            scale = rstd_c * gamma
            shift = maybe_bias[0].float() - mean_c * scale if ctx.relu else None
            sum_dz, sum_dz_xhat = ops.channel_grad_sums(x, dy, mean_c, rstd_c, scale, shift)  # [N, C]
            s1 = (sum_dz * gamma).view(n, g, -1).sum(-1)
            s2 = (sum_dz_xhat * gamma).view(n, g, -1).sum(-1)
            coef_x = -_per_channel(rstd * rstd * s2 / group_size, g, c)
            coef_0 = _per_channel((-rstd * s1 + mean * rstd * rstd * s2) / group_size, g, c)
            dx = ops.input_grad(x, dy, scale, coef_x, coef_0, shift)
        dweight = sum_dz_xhat.sum(0).to(weight.dtype)
        dbias = sum_dz.sum(0).to(weight.dtype)
        return dx, dweight, dbias, None, None, None, None


def _broadcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` -> ``[N, C, 1, ...]`` to broadcast over ``like``'s spatial dims."""
    return t.view(*t.shape, *([1] * (like.dim() - 2)))


class _LeanOps:
    """The PyTorch back-end: fp32 math on views of the input in its own layout (no copies kept)."""

    @staticmethod
    def group_stats(x, num_groups, eps):
        n, c = x.shape[:2]
        if x.is_contiguous():
            grouped = x.view(n, num_groups, -1)
            dims = (2,)
        else:  # channels_last_3d and other dense layouts: [N, *spatial, C] -> [N, S, G, C/G]
            grouped = x.movedim(1, -1).reshape(n, -1, num_groups, c // num_groups)
            dims = (1, 3)
        var, mean = torch.var_mean(grouped.float(), dim=dims, correction=0)  # stable (Welford)
        return mean, torch.rsqrt(var + eps)

    @staticmethod
    def scale_shift(x, scale, shift, relu):
        y = torch.addcmul(_broadcast(shift, x), x.float(), _broadcast(scale, x))
        if relu:
            y = y.relu_()
        return y.to(x.dtype)

    @staticmethod
    def _dz(x, dy, shift, scale):
        dz = dy.float()
        if shift is not None:  # the fused ReLU: recompute its mask from the input
            dz = dz * (torch.addcmul(_broadcast(shift, x), x.float(), _broadcast(scale, x)) > 0)
        return dz

    @staticmethod
    def channel_grad_sums(x, dy, mean_c, rstd_c, scale, shift):
        spatial = tuple(range(2, x.dim()))
        dz = _LeanOps._dz(x, dy, shift, scale)
        x_hat = (x.float() - _broadcast(mean_c, x)) * _broadcast(rstd_c, x)
        return dz.sum(spatial), (dz * x_hat).sum(spatial)

    @staticmethod
    def input_grad(x, dy, scale, coef_x, coef_0, shift):
        dz = _LeanOps._dz(x, dy, shift, scale)
        dx = dz * _broadcast(scale, x) + x.float() * _broadcast(coef_x, x) + _broadcast(coef_0, x)
        return dx.to(x.dtype)


class LeanGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters, so init, weight decay, inflation and checkpoints see no
    difference) computed by ``group_norm``; ``forward_relu`` is norm + ReLU fused.

    Args:
        num_groups, num_channels, eps: as ``nn.GroupNorm``.
        backend: ``lean`` (PyTorch) or ``triton``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, backend: str = "lean"):
        super().__init__(num_groups, num_channels, eps)
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if backend == "triton":
            check_triton_available()
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps, False, self.backend)

    def forward_relu(self, x: torch.Tensor) -> torch.Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps, True, self.backend)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend}"
