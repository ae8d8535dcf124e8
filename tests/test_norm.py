"""The norm factory against float64 references and the paper's definitions."""

import pytest
import torch
from torch import nn

from video_gn.models.norm import FrozenBatchNorm3d, NormSpec, is_norm


def group_norm_reference(x, groups, weight, bias, eps=1e-5):
    """Float64 GN: per sample and group, statistics over (C/G, T, H, W)."""
    n, c = x.shape[:2]
    xg = x.double().reshape(n, groups, -1)
    mean = xg.mean(-1, keepdim=True)
    var = ((xg - mean) ** 2).mean(-1, keepdim=True)
    y = ((xg - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.dim() - 2)
    return y * weight.double().reshape(shape) + bias.double().reshape(shape)


def randomize_affine(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    return layer


@pytest.mark.parametrize("kind,groups", [("gn", 8), ("ln", 1), ("in", 64)])
def test_gn_family_matches_float64_reference(kind, groups):
    x = torch.randn(3, 64, 4, 5, 7) * 3 + 5
    layer = randomize_affine(NormSpec(kind, num_groups=8)(64))
    expected = group_norm_reference(x, groups, layer.weight, layer.bias)
    torch.testing.assert_close(layer(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_group_size_sets_groups_and_ln_in_are_gn_extremes():
    assert NormSpec("gn", group_size=16)(64).num_groups == 4
    ln, in_ = NormSpec("ln")(48), NormSpec("in")(48)
    # The paper's LN/IN: GN with G=1 / G=C, with per-channel affine over all of (T, H, W).
    assert isinstance(ln, nn.GroupNorm) and ln.num_groups == 1 and ln.weight.shape == (48,)
    assert isinstance(in_, nn.GroupNorm) and in_.num_groups == 48 and in_.affine


def test_gn_sample_independent_of_batch_but_bn_is_not():
    x = torch.randn(4, 32, 3, 6, 6)
    other = x.clone()
    other[1:] = torch.randn(3, 32, 3, 6, 6) * 4 + 2
    gn = NormSpec("gn", num_groups=8)(32)
    torch.testing.assert_close(gn(x)[0], gn(other)[0])
    bn = NormSpec("bn")(32).train()
    assert not torch.allclose(bn(x)[0], bn(other)[0], atol=1e-3)


def test_frozen_bn_has_no_trainable_params_and_ignores_mode():
    layer = NormSpec("frozen_bn")(16)
    assert isinstance(layer, FrozenBatchNorm3d) and list(layer.parameters()) == []
    g = torch.Generator().manual_seed(1)
    for name in ("weight", "bias", "running_mean"):
        getattr(layer, name).copy_(torch.randn(16, generator=g))
    layer.running_var.copy_(torch.rand(16, generator=g) + 0.5)
    x = torch.randn(2, 16, 3, 4, 4)
    y_train = layer.train()(x)
    y_eval = layer.eval()(x)
    torch.testing.assert_close(y_train, y_eval)
    shape = (1, 16, 1, 1, 1)
    expected = ((x.double() - layer.running_mean.double().view(shape))
                / torch.sqrt(layer.running_var.double().view(shape) + layer.eps)
                * layer.weight.double().view(shape) + layer.bias.double().view(shape))
    torch.testing.assert_close(y_train.double(), expected, rtol=1e-5, atol=1e-5)
    # A BN checkpoint's num_batches_tracked is accepted and ignored.
    bn_state = nn.BatchNorm3d(16).state_dict()
    layer.load_state_dict(bn_state)
    torch.testing.assert_close(layer.running_var, torch.ones(16))


def test_syncbn_falls_back_to_bn_without_process_group():
    torch.manual_seed(0)
    x = torch.randn(4, 8, 2, 3, 3)
    sync, bn = NormSpec("syncbn")(8).train(), NormSpec("bn")(8).train()
    assert isinstance(sync, nn.SyncBatchNorm)
    torch.testing.assert_close(sync(x), bn(x))
    torch.testing.assert_close(sync.running_mean, bn.running_mean)
    torch.testing.assert_close(sync.running_var, bn.running_var)


def test_non_divisible_groups_name_layer_and_numbers():
    with pytest.raises(ValueError, match=r"res3\.0\.norm_a: norm\.num_groups=48 does not divide its 128"):
        NormSpec("gn", num_groups=48)(128, "res3.0.norm_a")
    with pytest.raises(ValueError, match=r"norm\.group_size=24 does not divide its 64 channels"):
        NormSpec("gn", group_size=24)(64)
    with pytest.raises(ValueError, match="norm.kind='batchnorm'"):
        NormSpec("batchnorm")


@pytest.mark.parametrize("kind", ["bn", "syncbn", "frozen_bn", "gn", "ln", "in"])
def test_is_norm_recognises_every_kind(kind):
    assert is_norm(NormSpec(kind)(64))
    assert not is_norm(nn.Conv3d(3, 3, 1)) and not is_norm(NormSpec("none")(64))
