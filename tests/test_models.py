"""3D ResNets against the paper's I3D table (docs/reference.md, "The I3D-R50"), init policies and
config coverage."""

import pytest
import torch
from conftest import CONF_DIR, compose_config
from omegaconf import OmegaConf

from video_gn.models import build_network
from video_gn.models.norm import NormSpec, is_norm
from video_gn.models.resnet3d import build_model
from video_gn.training.optim import param_groups

# Non-local Networks Table 1 (I3D 3x1x1), C x T x H x W after each stage for 32 x 224^2 input.
I3D_R50_STAGES_32 = {
    "conv1": [64, 16, 112, 112], "pool1": [64, 8, 56, 56], "res2": [256, 8, 56, 56],
    "pool2": [256, 4, 56, 56], "res3": [512, 4, 28, 28], "res4": [1024, 4, 14, 14],
    "res5": [2048, 4, 7, 7],
}


def stage_shapes(model, frames, size):
    x = torch.zeros(1, 3, frames, size, size, device="meta")
    shapes = {}
    for name, stage in model.stages():
        x = stage(x)
        shapes[name] = list(x.shape[1:])
    return shapes, model.head(x).shape


@pytest.mark.parametrize("kind", ["bn", "gn"])
def test_i3d_r50_matches_paper_table(kind):
    with torch.device("meta"):
        model = build_model(arch="i3d", depth=50, norm=NormSpec(kind), num_classes=400)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - 28.0e6) <= 0.1e6, params
    shapes, logits = stage_shapes(model, 32, 224)
    assert shapes == I3D_R50_STAGES_32 and tuple(logits) == (1, 400)
    shapes64, logits64 = stage_shapes(model, 64, 224)
    doubled = {k: [c, 2 * t, h, w] for k, (c, t, h, w) in I3D_R50_STAGES_32.items()}
    assert shapes64 == doubled and tuple(logits64) == (1, 400)


def test_temporal_kernels_follow_inflation_table():
    with torch.device("meta"):
        i3d = build_model(arch="i3d", depth=50, norm=NormSpec("bn"), num_classes=400)
        c2d = build_model(arch="c2d", depth=50, norm=NormSpec("bn"), num_classes=400)
    table = {"res2": [3, 3, 3], "res3": [3, 1, 3, 1], "res4": [3, 1, 3, 1, 3, 1], "res5": [1, 3, 1]}
    for stage, kernels in table.items():
        blocks = getattr(i3d, stage)
        assert [b.conv_a.kernel_size[0] for b in blocks] == kernels
        assert all(b.conv_b.kernel_size == (1, 3, 3) and b.conv_c.kernel_size == (1, 1, 1) for b in blocks)
    assert i3d.stem.conv.kernel_size == (5, 7, 7) and i3d.stem.conv.stride == (2, 2, 2)
    c2d_convs = [m for m in c2d.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(m.kernel_size[0] == 1 for m in c2d_convs)


def test_head_does_not_depend_on_clip_length():
    model = build_model(arch="small", norm=NormSpec("gn"), num_classes=5).eval()
    for frames in (4, 8, 13):
        assert model(torch.randn(2, 3, frames, 40, 40)).shape == (2, 5)


def test_non_divisible_group_count_names_the_layer():
    with pytest.raises(ValueError, match=r"stem\.norm: norm\.num_groups=48 does not divide its 64 channels"):
        build_model(arch="i3d", depth=50, norm=NormSpec("gn", num_groups=48), num_classes=400)


def test_unknown_model_key_is_named():
    with pytest.raises(ValueError, match=r"model\.widht is not a setting of model\.arch=small"):
        build_model(arch="small", norm=NormSpec("gn"), num_classes=5, widht=16)


@pytest.mark.parametrize("kind", ["bn", "gn", "ln", "in"])
def test_zero_gamma_init_for_every_norm_kind(kind):
    torch.manual_seed(0)
    model = build_model(arch="small", norm=NormSpec(kind, num_groups=8), num_classes=5)
    blocks = [b for stage in (model.res2, model.res3, model.res4, model.res5) for b in stage]
    last = {id(b.last_norm) for b in blocks}
    for m in model.modules():
        if is_norm(m):
            expected = 0.0 if id(m) in last else 1.0
            assert torch.all(m.weight == expected) and torch.all(m.bias == 0)
    # Behaviour: at init each residual branch adds nothing, so a block is relu(shortcut(x)).
    block = model.res3[0].train()
    x = torch.randn(2, block.conv_a.in_channels, 3, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))


@pytest.mark.parametrize("kind", ["bn", "gn", "frozen_bn"])
def test_weight_decay_groups_use_one_rule_for_all_norms(kind):
    model = build_model(arch="small", norm=NormSpec(kind, num_groups=8), num_classes=5)
    other, norm = param_groups(model, weight_decay=1e-4, norm_weight_decay=0.0)
    norm_ids = {id(p) for m in model.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    assert {id(p) for p in norm["params"]} == norm_ids
    assert norm["weight_decay"] == 0.0 and other["weight_decay"] == 1e-4
    assert len(norm["params"]) + len(other["params"]) == len(list(model.parameters()))
    if kind == "frozen_bn":
        assert norm["params"] == []
    # Paper default: the same decay on γ/β.
    assert param_groups(model, 1e-4)[1]["weight_decay"] == 1e-4


def option_names(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("model_name", option_names("model"))
@pytest.mark.parametrize("norm_name", option_names("norm"))
def test_every_model_and_norm_option_composes_and_builds(model_name, norm_name):
    cfg = compose_config([f"model={model_name}", f"norm={norm_name}"])
    model = build_network(OmegaConf.to_container(cfg.model, resolve=True),
                          OmegaConf.to_container(cfg.norm, resolve=True), cfg.data.num_classes).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 8, 64, 64))
    assert out.shape == (1, cfg.data.num_classes) and torch.isfinite(out).all()


def test_gn_groups_are_set_one_way_and_default_to_the_models_fit(tmp_path):
    """norm.num_groups: null gives each model the paper's G=32, or fewer so its narrowest norm layer
    keeps 2 channels per group (counted on the built network); G and channels per group together are
    refused; the key that used to set G says where it went."""
    from video_gn.config.checks import check_config
    from video_gn.config.overrides import explain_unknown_key
    from video_gn.errors import ConfigError
    from video_gn.models.norm import norm_layers

    for overrides, expected in ((["model=i3d_r50", "data.num_classes=400"], 32), ([], 16),
                                (["model.width=8"], 4), (["model.width=12"], 6)):
        cfg = compose_config(overrides, output_dir=tmp_path)
        plan = check_config(cfg)
        assert plan.norm["num_groups"] == expected
        net = build_network(OmegaConf.to_container(cfg.model, resolve=True),
                            OmegaConf.to_container(cfg.norm, resolve=True), cfg.data.num_classes)
        per_group = [layer.channels_per_group for layer in norm_layers(net)]
        assert min(per_group) == 2 and {layer.groups for layer in norm_layers(net)} == {expected}
    with pytest.raises(ConfigError, match="norm.num_groups=8 and norm.group_size=4: .* give one"):
        check_config(compose_config(["norm.num_groups=8", "norm.group_size=4"], output_dir=tmp_path))
    assert "norm.num_groups" in explain_unknown_key("model.gn_groups", ["model.gn_groups=8"])
