"""Train-step benchmark of the real I3D-R50: BN vs each GroupNorm implementation.

    python bench/train_step.py [--steps 5] [--compile] [--layouts ncdhw,cl]

One SGD step (forward, cross-entropy, backward, update) under bf16 autocast, per norm and GN
implementation (``norm.impl``: torch, lean, triton on CUDA), eager and (``--compile``, the default
on CUDA) ``torch.compile``, contiguous and ``channels_last_3d``. On CUDA at the paper's sizes
(32 frames x 8 clips and 64 x 4, 224 px); on CPU at 8 x 4 and 16 x 2, 112 px, so it runs anywhere.
Columns: clips/s (median step), peak GPU memory (CUDA), the bytes autograd keeps for backward
during the forward (any device, each storage once; it includes autocast's bf16 copies of the
weights, 53 MiB for I3D-R50), and the ratio of clips/s to
the best BN configuration of the same run. CPU autocast keeps ``group_norm`` in bf16, unlike CUDA,
which runs it in fp32: the ``torch (CUDA autocast)`` row reproduces CUDA's casts on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from video_gn.models import build_network  # noqa: E402
from video_gn.ops.saved_bytes import saved_bytes  # noqa: E402


class CudaAutocastGroupNorm(nn.GroupNorm):
    """nn.GroupNorm as CUDA autocast runs it: input cast to fp32, fp32 out."""

    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps)


def emulate_cuda_autocast(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if type(m) is nn.GroupNorm:
            m.__class__ = CudaAutocastGroupNorm
    return model


def saved_bytes_of_forward(model, x, labels) -> int:
    with torch.autocast(x.device.type, torch.bfloat16):
        return saved_bytes(lambda: F.cross_entropy(model(x), labels))


def bench_config(norm: dict, layout: str, compiled: bool, frames: int, clips: int, size: int,
                 steps: int, device: str, emulate: bool) -> dict:
    torch.manual_seed(0)
    model = build_network({"arch": "i3d", "depth": 50}, norm, 400).to(device)
    if emulate:
        emulate_cuda_autocast(model)
    fmt = torch.channels_last_3d if layout == "cl" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(clips, 3, frames, size, size, device=device).contiguous(memory_format=fmt)
    labels = torch.randint(0, 400, (clips,), device=device)
    saved = saved_bytes_of_forward(model, x, labels)
    step_model = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        with torch.autocast(device, torch.bfloat16):
            loss = F.cross_entropy(step_model(x), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (and compile)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"clips_per_s": clips / statistics.median(times), "peak_gib": peak, "saved_mib": saved / 2**20}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also torch.compile (default on CUDA)")
    p.add_argument("--layouts", default="ncdhw,cl")
    a = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    steps = a.steps or (20 if cuda else 3)
    settings = [(32, 8, 224), (64, 4, 224)] if cuda else [(8, 4, 112), (16, 2, 112)]
    norms = [("BN", {"kind": "bn"}, False), ("GN torch", {"kind": "gn", "impl": "torch"}, False)]
    if not cuda:
        norms.append(("GN torch (CUDA autocast)", {"kind": "gn", "impl": "torch"}, True))
    norms.append(("GN lean", {"kind": "gn", "impl": "lean"}, False))
    if cuda:
        norms.append(("GN triton", {"kind": "gn", "impl": "triton"}, False))
    modes = [False, True] if (cuda or a.compile) else [False]
    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}, torch {torch.__version__}, "
          f"I3D-R50, SGD, bf16 autocast, {steps} timed steps")
    for frames, clips, size in settings:
        rows = []
        for label, norm, emulate in norms:
            for layout in a.layouts.split(","):
                for compiled in modes:
                    r = bench_config(norm, layout, compiled, frames, clips, size, steps, device, emulate)
                    rows.append((label, layout, "compile" if compiled else "eager", r))
        best_bn = max(r["clips_per_s"] for label, _, _, r in rows if label == "BN")
        print(f"\n{frames} frames x {clips} clips, {size} px")
        header = (f"{'norm':<26}{'layout':<7}{'mode':<9}{'clips/s':>9}{'peak GiB':>10}{'saved MiB':>11}"
                  f"{'vs best BN':>12}")
        print(header)
        print("-" * len(header))
        for label, layout, mode, r in rows:
            peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
            print(f"{label:<26}{layout:<7}{mode:<9}{r['clips_per_s']:>9.2f}{peak:>10}{r['saved_mib']:>11.1f}"
                  f"{r['clips_per_s'] / best_bn:>11.2f}x")


if __name__ == "__main__":
    main()
