"""The lean GroupNorm (``video_gn.ops.group_norm``) against a float64 reference written here: forward,
input / γ / β gradients, both memory formats, odd sizes, the fused ReLU; dtypes under autocast; the
bytes it keeps for backward; the model with it. The Triton kernels run the same checks under
``TRITON_INTERPRET=1`` in a subprocess (the interpreter must be chosen before triton is imported)."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, TINY, compose_config

from video_gn.models.norm import NormSpec
from video_gn.ops.group_norm import LeanGroupNorm, group_norm
from video_gn.ops.saved_bytes import saved_bytes
from video_gn.train import train

# (shape, groups): T = 1, H·W not a multiple of any block, G = 1 (LN), G = C (IN), a real I3D ratio.
SHAPES = [((2, 8, 3, 5, 7), 4), ((2, 6, 1, 3, 3), 1), ((1, 6, 2, 4, 4), 6), ((2, 64, 2, 6, 6), 32)]
BACKEND = os.environ.get("GN_TEST_BACKEND", "lean")


def reference(x, groups, weight, bias, eps=1e-5, relu=False):
    """GroupNorm in float64, from its definition: per sample, over C/G channels and all positions."""
    x, n, c = x.double(), x.shape[0], x.shape[1]
    g = x.reshape(n, groups, -1)
    mean = g.mean(-1, keepdim=True)
    var = ((g - mean) ** 2).mean(-1, keepdim=True)
    affine = (1, c) + (1,) * (x.dim() - 2)
    y = ((g - mean) / torch.sqrt(var + eps)).reshape(x.shape) * weight.double().view(affine) \
        + bias.double().view(affine)
    return y.relu() if relu else y


def check_against_reference(shape, groups, channels_last, relu, dtype=torch.float32, tol=1e-4):
    torch.manual_seed(0)
    x = torch.randn(shape) * 3 + 1
    weight, bias, dy = torch.randn(shape[1]), torch.randn(shape[1]), torch.randn(shape)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    xin = x.to(dtype).contiguous(memory_format=fmt).requires_grad_()
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    y = group_norm(xin, groups, w, b, 1e-5, relu, BACKEND)
    assert y.dtype == dtype and y.is_contiguous(memory_format=fmt)
    y.backward(dy.to(dtype))

    xr = xin.detach().double().requires_grad_()
    wr, br = weight.double().requires_grad_(), bias.double().requires_grad_()
    reference(xr, groups, wr, br, relu=relu).backward(dy.to(dtype).double())
    for got, want in ((y, None), (xin.grad, xr.grad), (w.grad, wr.grad), (b.grad, br.grad)):
        want = reference(xr.detach(), groups, wr.detach(), br.detach(), relu=relu) if want is None else want
        scale = want.abs().max().item() + 1
        assert (got.double() - want).abs().max().item() <= tol * scale


@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncdhw", "channels_last_3d"])
@pytest.mark.parametrize(("shape", "groups"), SHAPES)
def test_forward_and_gradients_match_float64(shape, groups, channels_last, relu):
    check_against_reference(shape, groups, channels_last, relu)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_in_gives_half_precision_out(dtype):
    check_against_reference((2, 8, 3, 5, 7), 4, True, True, dtype=dtype, tol=2e-2)


@pytest.mark.parametrize("view", ["time_slice", "channel_slice", "transposed"])
def test_strided_input_gives_the_reference(view):
    """A view that is neither contiguous nor channels_last_3d (a slice, a transpose) is copied, not
    refused: the result and gradients are those of the dense tensor."""
    torch.manual_seed(0)
    base = torch.randn(2, 12, 6, 5, 7)
    x = {"time_slice": base[:, :8, ::2], "channel_slice": base[:, 2:10],
         "transposed": base[:, :8].transpose(3, 4)}[view].detach().requires_grad_()
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last_3d)
    w, b = torch.randn(8, requires_grad=True), torch.randn(8, requires_grad=True)
    dy = torch.randn(x.shape)
    y = group_norm(x, 4, w, b, 1e-5, True, BACKEND)
    y.backward(dy)
    xr = x.detach().double().requires_grad_()
    wr, br = w.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    want = reference(xr, 4, wr, br, relu=True)
    want.backward(dy.double())
    for got, ref in ((y, want), (x.grad, xr.grad), (w.grad, wr.grad), (b.grad, br.grad)):
        torch.testing.assert_close(got.double(), ref.detach(), rtol=1e-4, atol=1e-4)


def test_statistics_survive_a_large_mean():
    torch.manual_seed(0)
    x = 1e3 + torch.randn(2, 8, 4, 16, 16)
    w, b = torch.ones(8), torch.zeros(8)
    y = group_norm(x, 4, w, b, backend=BACKEND)
    torch.testing.assert_close(y.double(), reference(x.double(), 4, w, b), rtol=0, atol=2e-3)


def test_returns_the_input_dtype_under_autocast():
    torch.manual_seed(0)
    norm = LeanGroupNorm(4, 8, backend=BACKEND)
    x = torch.randn(2, 8, 2, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(x.bfloat16()).dtype == torch.bfloat16
        assert norm(x).dtype == torch.float32
        assert norm.forward_relu(x.bfloat16()).dtype == torch.bfloat16


def test_keeps_only_the_input_and_per_group_statistics():
    """bf16 activations: the lean GN keeps the bf16 input + 2 fp32 numbers per (sample, group);
    the autocast path (CUDA runs group_norm in fp32) keeps the fp32 copy, and ReLU its fp32 output."""
    n, c, g = 2, 64, 32
    x = torch.randn(n, c, 4, 14, 14, dtype=torch.bfloat16, requires_grad=True)
    w, b = torch.nn.Parameter(torch.ones(c)), torch.nn.Parameter(torch.zeros(c))
    input_bytes = x.numel() * x.element_size()
    lean = saved_bytes(lambda: group_norm(x, g, w, b, relu=True, backend=BACKEND))
    assert lean <= input_bytes + 2 * n * g * 4
    # What CUDA autocast does with F.group_norm: inputs cast to fp32, fp32 out, then the ReLU.
    autocast_path = saved_bytes(lambda: F.relu(F.group_norm(x.float(), g, w, b)))
    assert autocast_path >= 2 * input_bytes
    assert autocast_path >= 3 * lean


def test_norm_impl_builds_the_lean_module_and_rejects_unknown_values():
    assert type(NormSpec("gn", num_groups=4, impl="lean")(8)) is LeanGroupNorm
    assert type(NormSpec("ln", impl="lean")(8)).__name__ == "LeanGroupNorm"
    assert type(NormSpec("gn", num_groups=4)(8)) is torch.nn.GroupNorm  # the default stays torch
    with pytest.raises(ValueError, match="norm.impl='fast' is not one of torch, lean, triton, auto"):
        NormSpec("gn", impl="fast")


def test_triton_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RuntimeError, match="norm.impl=triton needs a CUDA GPU"):
        NormSpec("gn", num_groups=4, impl="triton")(8)


def test_the_model_trains_the_same_with_the_lean_gn(tiny_data, tmp_path):
    """A short real training run: the network with norm.impl=lean ends where norm.impl=torch ends."""
    final = {}
    for impl in ("torch", "lean"):
        cfg = compose_config([*TINY, f"data.root={tiny_data}", "model.width=16", "norm.num_groups=8",
                              f"norm.impl={impl}", "trainer.max_epochs=1", "test_after_fit=false"],
                             output_dir=tmp_path / impl)
        train(cfg)
        ckpt = torch.load(tmp_path / impl / "checkpoints" / "last.ckpt", weights_only=False)
        final[impl] = ckpt["state_dict"]
        assert json.loads((tmp_path / impl / "results.json").read_text())["global_step"] == 6
    for name, value in final["torch"].items():
        torch.testing.assert_close(final["lean"][name], value, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.heavy
@pytest.mark.skipif(BACKEND == "triton", reason="this is the runner")
def test_triton_kernels_under_the_interpreter():
    """The same tests with norm.impl's Triton kernels, interpreted on the CPU."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "GN_TEST_BACKEND": "triton"}
    tests = ["test_forward_and_gradients_match_float64", "test_half_precision_in_gives_half_precision_out",
             "test_statistics_survive_a_large_mean", "test_returns_the_input_dtype_under_autocast",
             "test_keeps_only_the_input_and_per_group_statistics", "test_triton_splits_large_groups",
             "test_strided_input_gives_the_reference"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_group_norm.py", "-k", " or ".join(tests)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]


@pytest.mark.skipif(BACKEND != "triton", reason="runs under the interpreter (see above)")
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncdhw", "channels_last_3d"])
def test_triton_splits_large_groups(channels_last):
    """Groups larger than one tile are reduced by several programs and combined."""
    from video_gn.ops import group_norm_triton

    x = torch.randn(1, 4, 4, 32, 40).contiguous(
        memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)
    _, _, splits, _, _ = group_norm_triton._launch(x, group_norm_triton._nc_s_strides(x))
    assert splits > 1
    check_against_reference(tuple(x.shape), 2, channels_last, True)
