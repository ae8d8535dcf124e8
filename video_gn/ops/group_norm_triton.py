"""Triton kernels for ``group_norm`` (the math is in ``group_norm.py``'s docstring).

Every kernel walks a tile of ``[BLOCK_C channels, BLOCK_S spatial positions]`` of one sample, with
the tensor's own strides: in contiguous NCDHW a channel's positions are adjacent (wide BLOCK_S), in
``channels_last_3d`` a position's channels are (wide BLOCK_C), so loads are coalesced in both. Large
groups (e.g. 8x64x16x112x112 with G=32: 400k elements per group) are split over the spatial axis:
each program reduces its slice to per-channel partials — (count, mean, M2) combined with Chan's
parallel formula, so a large mean does not cancel — and the [N, C, splits] partials are combined
per group in PyTorch (tiny tensors).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _tile(C, S, s_per_split, BLOCK_C: tl.constexpr):
    """This program's sample, channels (and which of them exist) and slice of positions."""
    n = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    start = tl.program_id(2) * s_per_split
    return n, c, c < C, start, tl.minimum(start + s_per_split, S)


@triton.jit
def _per_channel(ptr, n, c, c_ok, C):
    """Values of an [N, C] fp32 array for this tile's channels, as a column."""
    return tl.load(ptr + n * C + c, mask=c_ok, other=0.0)[:, None]


@triton.jit
def _stats_kernel(x_ptr, mean_ptr, m2_ptr, C, S, s_per_split, num_splits,
                  stride_n, stride_c, stride_s, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    n, c, c_ok, start, stop = _tile(C, S, s_per_split, BLOCK_C)
    base = x_ptr + n * stride_n + c[:, None].to(tl.int64) * stride_c
    mean = tl.zeros([BLOCK_C], dtype=tl.float32)
    m2 = tl.zeros([BLOCK_C], dtype=tl.float32)
    count = tl.zeros([BLOCK_C], dtype=tl.float32)
    for s0 in range(start, stop, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        s_ok = s < stop
        ok = c_ok[:, None] & s_ok[None, :]
        x = tl.load(base + s[None, :].to(tl.int64) * stride_s, mask=ok, other=0.0).to(tl.float32)
        block_count = tl.sum(s_ok.to(tl.float32), axis=0)
        block_mean = tl.sum(x, axis=1) / block_count
        centred = tl.where(ok, x - block_mean[:, None], 0.0)
        block_m2 = tl.sum(centred * centred, axis=1)
        total = count + block_count
        delta = block_mean - mean
        mean = mean + delta * (block_count / total)
        m2 = m2 + block_m2 + delta * delta * (count * block_count / total)
        count = total
    out = (n * C + c) * num_splits + tl.program_id(2)
    tl.store(mean_ptr + out, mean, mask=c_ok)
    tl.store(m2_ptr + out, m2, mask=c_ok)


@triton.jit
def _scale_shift_kernel(x_ptr, y_ptr, scale_ptr, shift_ptr, C, S, s_per_split,
                        stride_n, stride_c, stride_s, RELU: tl.constexpr,
                        BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    n, c, c_ok, start, stop = _tile(C, S, s_per_split, BLOCK_C)
    a, b = _per_channel(scale_ptr, n, c, c_ok, C), _per_channel(shift_ptr, n, c, c_ok, C)
    offset = n * stride_n + c[:, None].to(tl.int64) * stride_c
    for s0 in range(start, stop, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        ok = c_ok[:, None] & (s < stop)[None, :]
        where = offset + s[None, :].to(tl.int64) * stride_s
        x = tl.load(x_ptr + where, mask=ok, other=0.0)
        y = x.to(tl.float32) * a + b
        if RELU:
            y = tl.maximum(y, 0.0)
        tl.store(y_ptr + where, y.to(x.dtype), mask=ok)


@triton.jit
def _x_and_dz(x_ptr, dy_ptr, x_off, dy_off, s64, x_stride_s, dy_stride_s, ok, a, b, RELU: tl.constexpr):
    """A tile of x (fp32) and of the gradient reaching the norm (dy, masked by the fused ReLU, whose
    mask is recomputed from x)."""
    x = tl.load(x_ptr + x_off + s64 * x_stride_s, mask=ok, other=0.0).to(tl.float32)
    dz = tl.load(dy_ptr + dy_off + s64 * dy_stride_s, mask=ok, other=0.0).to(tl.float32)
    if RELU:
        dz = tl.where(x * a + b > 0, dz, 0.0)
    return x, dz


@triton.jit
def _grad_sums_kernel(x_ptr, dy_ptr, mean_ptr, rstd_ptr, scale_ptr, shift_ptr, sum_dz_ptr, sum_dzx_ptr,
                      C, S, s_per_split, num_splits, x_stride_n, x_stride_c, x_stride_s,
                      dy_stride_n, dy_stride_c, dy_stride_s, RELU: tl.constexpr,
                      BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    n, c, c_ok, start, stop = _tile(C, S, s_per_split, BLOCK_C)
    mean, rstd = _per_channel(mean_ptr, n, c, c_ok, C), _per_channel(rstd_ptr, n, c, c_ok, C)
    a, b = _per_channel(scale_ptr, n, c, c_ok, C), _per_channel(shift_ptr, n, c, c_ok, C)
    x_off = n * x_stride_n + c[:, None].to(tl.int64) * x_stride_c
    dy_off = n * dy_stride_n + c[:, None].to(tl.int64) * dy_stride_c
    sum_dz = tl.zeros([BLOCK_C], dtype=tl.float32)
    sum_dzx = tl.zeros([BLOCK_C], dtype=tl.float32)
    for s0 in range(start, stop, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        ok = c_ok[:, None] & (s < stop)[None, :]
        s64 = s[None, :].to(tl.int64)
        x, dz = _x_and_dz(x_ptr, dy_ptr, x_off, dy_off, s64, x_stride_s, dy_stride_s, ok, a, b, RELU)
        sum_dz += tl.sum(dz, axis=1)
        sum_dzx += tl.sum(dz * ((x - mean) * rstd), axis=1)
    out = (n * C + c) * num_splits + tl.program_id(2)
    tl.store(sum_dz_ptr + out, sum_dz, mask=c_ok)
    tl.store(sum_dzx_ptr + out, sum_dzx, mask=c_ok)


@triton.jit
def _input_grad_kernel(x_ptr, dy_ptr, dx_ptr, scale_ptr, shift_ptr, coef_x_ptr, coef_0_ptr,
                       C, S, s_per_split, x_stride_n, x_stride_c, x_stride_s,
                       dy_stride_n, dy_stride_c, dy_stride_s, RELU: tl.constexpr,
                       BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    n, c, c_ok, start, stop = _tile(C, S, s_per_split, BLOCK_C)
    a, b = _per_channel(scale_ptr, n, c, c_ok, C), _per_channel(shift_ptr, n, c, c_ok, C)
    cx, c0 = _per_channel(coef_x_ptr, n, c, c_ok, C), _per_channel(coef_0_ptr, n, c, c_ok, C)
    x_off = n * x_stride_n + c[:, None].to(tl.int64) * x_stride_c
    dy_off = n * dy_stride_n + c[:, None].to(tl.int64) * dy_stride_c
    for s0 in range(start, stop, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        ok = c_ok[:, None] & (s < stop)[None, :]
        s64 = s[None, :].to(tl.int64)
        x, dz = _x_and_dz(x_ptr, dy_ptr, x_off, dy_off, s64, x_stride_s, dy_stride_s, ok, a, b, RELU)
        dx = dz * a + x * cx + c0
        tl.store(dx_ptr + x_off + s64 * x_stride_s, dx.to(dx_ptr.dtype.element_ty), mask=ok)


def _nc_s_strides(t: torch.Tensor) -> tuple[int, int, int] | None:
    """(sample, channel, position) strides when the spatial dims flatten to one stride, else None."""
    n, c = t.shape[:2]
    s = t[0, 0].numel()
    if t.is_contiguous():
        return c * s, s, 1
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
        return s * c, 1, c
    return None


def _as_dense(t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    strides = _nc_s_strides(t)
    if strides is None:  # any other layout (a slice, a transpose): a copy in the layout of ``like``
        like_strides = _nc_s_strides(like)
        channels_last = like_strides is not None and like_strides[1] == 1 and like.dim() == 5
        t = t.contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)
        strides = _nc_s_strides(t)
    return t, strides


def _launch(x: torch.Tensor, strides: tuple[int, int, int]):
    """Tile shape and grid: wide along whichever axis is contiguous; enough splits to fill the GPU."""
    n, c = x.shape[:2]
    s = x[0, 0].numel()
    if strides[1] == 1:  # channels_last_3d
        block_c = min(triton.next_power_of_2(c), 128)
        block_s = max(1, 2048 // block_c)
    else:
        block_s = min(triton.next_power_of_2(s), 1024)
        block_c = min(triton.next_power_of_2(c), max(1, 2048 // block_s))
    channel_blocks = triton.cdiv(c, block_c)
    position_blocks = triton.cdiv(s, block_s)
    splits = max(1, min(position_blocks, 2048 // max(1, n * channel_blocks)))
    s_per_split = block_s * triton.cdiv(position_blocks, splits)
    splits = triton.cdiv(s, s_per_split)
    return (n, channel_blocks, splits), s_per_split, splits, block_c, block_s


def group_stats(x: torch.Tensor, num_groups: int, eps: float):
    x, strides = _as_dense(x, x)
    n, c = x.shape[:2]
    s = x[0, 0].numel()
    grid, s_per_split, splits, block_c, block_s = _launch(x, strides)
    mean = torch.empty(n, c, splits, device=x.device, dtype=torch.float32)
    m2 = torch.empty_like(mean)
    _stats_kernel[grid](x, mean, m2, c, s, s_per_split, splits, *strides, BLOCK_C=block_c, BLOCK_S=block_s)
    # Per-(sample, channel, split) partials -> per (sample, group): Chan's parallel combination.
    counts = torch.tensor([min(s_per_split, s - k * s_per_split) for k in range(splits)],
                          device=x.device, dtype=torch.float32)
    counts = counts.expand(n, c, splits).reshape(n, num_groups, -1)
    mean, m2 = mean.view(n, num_groups, -1), m2.view(n, num_groups, -1)
    total = counts.sum(-1)
    group_mean = (counts * mean).sum(-1) / total
    group_m2 = m2.sum(-1) + (counts * (mean - group_mean[..., None]) ** 2).sum(-1)
    return group_mean, torch.rsqrt(group_m2 / total + eps)


def scale_shift(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, relu: bool) -> torch.Tensor:
    x, strides = _as_dense(x, x)
    y = torch.empty_like(x)
    grid, s_per_split, _, block_c, block_s = _launch(x, strides)
    _scale_shift_kernel[grid](x, y, scale.contiguous(), shift.contiguous(), x.shape[1], x[0, 0].numel(),
                              s_per_split, *strides, RELU=relu, BLOCK_C=block_c, BLOCK_S=block_s)
    return y


def channel_grad_sums(x, dy, mean_c, rstd_c, scale, shift):
    x, x_strides = _as_dense(x, x)
    dy, dy_strides = _as_dense(dy, x)
    n, c = x.shape[:2]
    grid, s_per_split, splits, block_c, block_s = _launch(x, x_strides)
    sum_dz = torch.empty(n, c, splits, device=x.device, dtype=torch.float32)
    sum_dzx = torch.empty_like(sum_dz)
    relu = shift is not None
    _grad_sums_kernel[grid](x, dy, mean_c.contiguous(), rstd_c.contiguous(), scale.contiguous(),
                            (shift if relu else scale).contiguous(), sum_dz, sum_dzx, c, x[0, 0].numel(),
                            s_per_split, splits, *x_strides, *dy_strides, RELU=relu,
                            BLOCK_C=block_c, BLOCK_S=block_s)
    return sum_dz.sum(-1), sum_dzx.sum(-1)


def input_grad(x, dy, scale, coef_x, coef_0, shift):
    x, x_strides = _as_dense(x, x)
    dy, dy_strides = _as_dense(dy, x)
    dx = torch.empty_like(x)
    grid, s_per_split, _, block_c, block_s = _launch(x, x_strides)
    relu = shift is not None
    _input_grad_kernel[grid](x, dy, dx, scale.contiguous(), (shift if relu else scale).contiguous(),
                             coef_x.contiguous(), coef_0.contiguous(), x.shape[1], x[0, 0].numel(),
                             s_per_split, *x_strides, *dy_strides, RELU=relu,
                             BLOCK_C=block_c, BLOCK_S=block_s)
    return dx
