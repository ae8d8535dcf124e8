"""Precise BN against an independent float64 computation, and through a real run: a BN checkpoint
re-evaluated with recomputed statistics is recorded as such and reported beside the runs trained
like it."""

import copy
import json

import pytest
import torch
from conftest import TINY, compose_config
from torch import nn

from video_gn.errors import ConfigError
from video_gn.report import tables
from video_gn.train import train
from video_gn.training.precise_bn import update_bn_stats


def small_bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Conv3d(4, 5, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(5))


def reference_statistics(net: nn.Sequential, batches) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per BN layer, in float64: the mean over every element of every batch, and the per-batch unbiased
    variances averaged with weights = elements per channel. Train-mode BN normalises by the batch's
    own statistics, so each layer's input depends only on the batch (dropout off: eval mode)."""
    ref = copy.deepcopy(net).double().eval()
    inputs = {i: [] for i, m in enumerate(ref) if isinstance(m, nn.BatchNorm3d)}
    for i in inputs:
        ref[i].train()
        ref[i].register_forward_pre_hook(lambda m, x, i=i: inputs[i].append(x[0].detach().clone()))
    with torch.no_grad():
        for x in batches:
            ref(x.double())
    out = {}
    for i, xs in inputs.items():
        per_channel = [x.transpose(0, 1).reshape(x.shape[1], -1) for x in xs]
        n = torch.tensor([float(c.shape[1]) for c in per_channel], dtype=torch.float64)
        mean = torch.cat(per_channel, 1).mean(1)
        var = sum(w * c.var(1, unbiased=True) for w, c in zip(n, per_channel, strict=True)) / n.sum()
        out[i] = (mean, var)
    return out


def test_recomputed_statistics_equal_the_float64_reference():
    net = small_bn_net()
    for m in net:
        if isinstance(m, nn.BatchNorm3d):  # stale statistics and a momentum to restore
            m.running_mean.fill_(7.0)
            m.running_var.fill_(9.0)
            m.num_batches_tracked.fill_(123)
    g = torch.Generator().manual_seed(1)
    # Batches of different sizes and statistics: the element weighting matters.
    batches = [torch.randn(b, 3, 2, 4, 4, generator=g) * s + o
               for b, s, o in [(2, 1, 0), (3, 2, 1), (1, .5, -1)]]
    expected = reference_statistics(net, batches)
    net.train()
    assert update_bn_stats(net, iter(batches)) == 3
    for i, (mean, var) in expected.items():
        assert torch.allclose(net[i].running_mean.double(), mean, atol=1e-5, rtol=1e-5)
        assert torch.allclose(net[i].running_var.double(), var, atol=1e-5, rtol=1e-5)
        assert net[i].momentum == 0.1 and int(net[i].num_batches_tracked) == 123
    assert all(m.training for m in net.modules())  # modes restored (dropout too)
    # A different set of batches gives different statistics: the old ones are fully replaced.
    update_bn_stats(net, iter(batches[:1]))
    mean, _ = reference_statistics(net, batches[:1])[1]
    assert torch.allclose(net[1].running_mean.double(), mean, atol=1e-5)


def test_a_network_without_batchnorm_is_left_alone():
    net = nn.Sequential(nn.Conv3d(3, 4, 1), nn.GroupNorm(2, 4))
    assert update_bn_stats(net, iter([torch.randn(2, 3, 1, 2, 2)])) == 0


def test_a_bn_checkpoint_reevaluated_with_precise_bn(tiny_data, tmp_path):
    trained = tmp_path / "trained"
    cfg = compose_config([*TINY, f"data.root={tiny_data}", "norm=bn", "trainer.max_epochs=2", "seed=3"],
                         output_dir=trained)
    train(cfg)
    first = json.loads((trained / "results.json").read_text())
    assert first["precise_bn_batches"] is None and first["norm_settings"]["kind"] == "bn"
    ckpt = next((trained / "checkpoints").glob("epoch*.ckpt"))
    before = torch.load(ckpt, weights_only=False)["state_dict"]["net.stem.norm.running_mean"]

    evaluated = tmp_path / "evaluated"
    cfg = compose_config([*TINY, f"data.root={tiny_data}", "norm=bn", "norm.precise_bn_batches=3", "seed=3",
                          "train=false", f"ckpt_path={ckpt}"], output_dir=evaluated)
    train(cfg)
    second = json.loads((evaluated / "results.json").read_text())
    assert second["precise_bn_batches"] == 3 and second["norm"] == "bn"
    assert second["init"]["kind"] == "checkpoint"
    assert second["init"]["trained"] == {"init": {"kind": "scratch"}, "seed": 3, "max_epochs": 2,
                                         "multigrid": None}
    # The checkpoint on disk is untouched; the report puts the evaluation beside the trained run.
    assert torch.equal(torch.load(ckpt, weights_only=False)["state_dict"]["net.stem.norm.running_mean"],
                       before)
    for r, d in ((first, trained), (second, evaluated)):
        r["run_dir"] = str(d)
    (table,) = tables([first, second]).values()
    assert sorted(k[0] for k in table) == ["bn", "bn+precise"]


def test_precise_bn_on_a_network_without_bn_is_a_clear_error(tiny_data, tmp_path):
    trained = tmp_path / "gn"
    train(compose_config([*TINY, f"data.root={tiny_data}", "trainer.max_epochs=1",
                          "trainer.limit_train_batches=1"], output_dir=trained))
    ckpt = trained / "checkpoints" / "last.ckpt"
    cfg = compose_config([*TINY, f"data.root={tiny_data}", "norm=bn", "norm.precise_bn_batches=2",
                          "train=false", f"ckpt_path={ckpt}"], output_dir=tmp_path / "eval")
    with pytest.raises(ConfigError, match=r"precise_bn_batches=2: the network has no BatchNorm layer.*gn"):
        train(cfg)
    with pytest.raises(ConfigError, match=r"norm.precise_bn_batches=-1: must be 0 \(off\)"):
        train(compose_config([*TINY, f"data.root={tiny_data}", "norm=bn", "norm.precise_bn_batches=-1"],
                             output_dir=tmp_path / "neg"))
