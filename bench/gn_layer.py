"""GroupNorm layer benchmark: our lean / Triton GN vs PyTorch's, and BN, at the I3D-R50 shapes.

    python bench/gn_layer.py [--dtype bf16] [--layouts ncdhw,cl] [--compile]

The five activation shapes of I3D-R50 at 32 frames x 8 clips (conv1, res2..res5 outputs), G = 32; on
CUDA at full size, on CPU scaled down (N = 1, T / 2, H / 2) so the script runs anywhere and never
rots. Per shape and layout (contiguous NCDHW, channels_last_3d), forward and forward+backward time of:
``F.group_norm`` on the bf16 tensor, ``F.group_norm`` as autocast runs it on CUDA (fp32 in and out),
``torch.compile(F.group_norm)`` (by default on CUDA; ``--compile`` on CPU, where inductor
builds C++ for minutes), ``lean`` and ``triton`` (CUDA only) ``group_norm``, and training-mode
``F.batch_norm``. "bw" is the fraction of the copy bandwidth measured in the same run (``y.copy_(x)``)
for the bytes a norm must move at least: forward reads x and writes y (2 tensors), forward+backward
also reads x and dy and writes dx (5 tensors). The last column is the ratio of forward+backward time
to the autocast GroupNorm's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from video_gn.ops.group_norm import group_norm  # noqa: E402

# I3D-R50, 32 frames x 8 clips: (name, N, C, T, H) with H = W.
SHAPES = [("conv1", 8, 64, 16, 112), ("res2", 8, 256, 8, 56), ("res3", 8, 512, 4, 28),
          ("res4", 8, 1024, 4, 14), ("res5", 8, 2048, 4, 7)]
GROUPS = 32


def seconds(fn, min_run_time: float) -> float:
    return Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def implementations(dtype, compile_gn: bool, cuda: bool) -> dict:
    compiled = torch.compile(F.group_norm) if compile_gn else None
    impls = {
        "F.group_norm": lambda x, w, b: F.group_norm(x, GROUPS, w.to(x.dtype), b.to(x.dtype)),
        "F.group_norm autocast": lambda x, w, b: F.group_norm(x.float(), GROUPS, w, b),
        "lean": lambda x, w, b: group_norm(x, GROUPS, w, b, backend="lean"),
        "BN (train)": lambda x, w, b: F.batch_norm(x, None, None, w.to(x.dtype), b.to(x.dtype),
                                                   training=True),
    }
    if compiled is not None:
        impls["compile(F.group_norm)"] = lambda x, w, b: compiled(x, GROUPS, w.to(x.dtype), b.to(x.dtype))
    if cuda:
        impls["triton"] = lambda x, w, b: group_norm(x, GROUPS, w, b, backend="triton")
    return impls


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--layouts", default="ncdhw,cl")
    p.add_argument("--compile", action="store_true", help="also torch.compile (default on CUDA)")
    p.add_argument("--min-run-time", type=float, default=None)
    a = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    min_time = a.min_run_time or (0.5 if cuda else 0.2)
    impls = implementations(dtype, a.compile or cuda, cuda)
    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}, torch {torch.__version__}, "
          f"dtype {a.dtype}, G={GROUPS}" + ("" if cuda else ", CPU shapes: N=1, T/2, H/2"))
    header = (f"{'shape':<8}{'layout':<7}{'impl':<24}{'fwd ms':>9}{'bw':>6}{'fwd+bwd ms':>12}{'bw':>6}"
              f"{'vs autocast':>13}")
    print(header)
    print("-" * len(header))
    for name, n, c, t, h in SHAPES:
        if not cuda:
            n, t, h = 1, max(1, t // 2), max(2, h // 2)
        for layout in a.layouts.split(","):
            fmt = torch.channels_last_3d if layout == "cl" else torch.contiguous_format
            x = torch.randn(n, c, t, h, h, device=device, dtype=dtype).contiguous(memory_format=fmt)
            w, b = torch.ones(c, device=device), torch.zeros(c, device=device)
            tensor_bytes = x.numel() * x.element_size()
            out = torch.empty_like(x)
            copy_bw = 2 * tensor_bytes / seconds(lambda: out.copy_(x), min_time)  # noqa: B023
            rows, baseline = [], None
            for impl, fn in impls.items():
                xg = x.detach().requires_grad_()
                wg, bg = w.clone().requires_grad_(), b.clone().requires_grad_()
                dy = torch.randn_like(x)

                def fwd(fn=fn, xg=xg, wg=wg, bg=bg):
                    with torch.no_grad():
                        fn(xg, wg, bg)

                def fwd_bwd(fn=fn, xg=xg, wg=wg, bg=bg, dy=dy):
                    y = fn(xg, wg, bg)
                    y.backward(dy.to(y.dtype))

                fwd_bwd()  # warm-up (and compile)
                t_fwd, t_all = seconds(fwd, min_time), seconds(fwd_bwd, min_time)
                if impl == "F.group_norm autocast":
                    baseline = t_all
                rows.append((impl, t_fwd, t_all))
            for impl, t_fwd, t_all in rows:
                bw_fwd = 2 * tensor_bytes / t_fwd / copy_bw
                bw_all = 5 * tensor_bytes / t_all / copy_bw
                print(f"{name:<8}{layout:<7}{impl:<24}{1e3 * t_fwd:>9.3f}{bw_fwd:>6.2f}{1e3 * t_all:>12.3f}"
                      f"{bw_all:>6.2f}{baseline / t_all:>12.2f}x")
        print()


if __name__ == "__main__":
    main()
