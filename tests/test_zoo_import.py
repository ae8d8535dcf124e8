"""The Kinetics models people download: pytorchvideo's zoo and PySlowFast's ``.pyth``, with
pytorchvideo itself as the reference.

pytorchvideo's own ``i3d_r50`` / ``slow_r50`` / ``c2d_r50`` (``pretrained=False``: random weights,
BN statistics randomised so that no norm is the identity) are saved in the zoo's format
(``{"model_state": ...}``) and imported through ``model.pretrained_3d``: the same logits on the same
clip (eval, fp32) and the same shape after every stage. A PySlowFast-layout file written here from
the same weights, through the key map its checkpoints use (written independently of the importer),
lands weight for weight.
"""

import logging
import re

import pytest
import torch
from pytorchvideo.models.hub import c2d_r50, i3d_r50, slow_r50

from video_gn.errors import ConfigError
from video_gn.models import build_network

ZOO = {"i3d_8x8": i3d_r50, "slow_8x8": slow_r50, "c2d_8x8": c2d_r50}


def reference_model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = ZOO[arch](pretrained=False).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def zoo_file(tmp_path, arch: str, state: dict | None = None):
    path = tmp_path / f"{arch.upper()}_R50.pyth"
    torch.save({"model_state": state if state is not None else reference_model(arch).state_dict()}, path)
    return path


def pyslowfast_name(key: str, stage_blocks: list[int]) -> str:
    """pytorchvideo's name -> PySlowFast's (slowfast/models/resnet_helper.py, stem_helper.py, head_helper.py)."""
    if m := re.fullmatch(r"blocks\.0\.(conv|norm)\.(\w+)", key):
        return f"s1.pathway0_stem.{'conv' if m[1] == 'conv' else 'bn'}.{m[2]}"
    if m := re.fullmatch(r"blocks\.\d+\.proj\.(\w+)", key):
        return f"head.projection.{m[1]}"
    m = re.fullmatch(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(.+)", key)
    stage = stage_blocks.index(int(m[1])) + 2
    part = m[3]
    part = part.replace("branch1_conv.", "branch1.").replace("branch1_norm.", "branch1_bn.")
    for letter in "abc":
        part = part.replace(f"branch2.conv_{letter}.", f"branch2.{letter}.")
        part = part.replace(f"branch2.norm_{letter}.", f"branch2.{letter}_bn.")
    return f"s{stage}.pathway0_res{m[2]}.{part}"


def stage_shapes(model, clip, modules) -> list[tuple]:
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape))) for m in modules]
    with torch.no_grad():
        logits = model(clip)
    for h in hooks:
        h.remove()
    return shapes, logits


@pytest.mark.heavy
@pytest.mark.parametrize("arch", sorted(ZOO))
def test_zoo_model_gives_pytorchvideos_logits_and_shapes(arch, tmp_path):
    reference = reference_model(arch)
    ours = build_network({"arch": arch, "depth": 50, "pretrained_3d": str(zoo_file(tmp_path, arch))},
                         {"kind": "bn"}, 400).eval()
    clip = torch.randn(1, 3, 8, 224, 224)
    # pytorchvideo: blocks = stem (conv, norm, act, pool), stages [, temporal pool after the first], head
    theirs = [b for b in reference.blocks[:-1]]
    mine = [ours.pool1, ours.res2, *([ours.pool2] if arch != "slow_8x8" else []), ours.res3, ours.res4, ours.res5]
    their_shapes, their_logits = stage_shapes(reference, clip, theirs)
    my_shapes, my_logits = stage_shapes(ours, clip, mine)
    assert my_shapes == their_shapes
    torch.testing.assert_close(my_logits, their_logits, rtol=1e-5, atol=1e-4)


@pytest.mark.heavy
def test_a_larger_test_view_averages_like_their_head(tmp_path):
    """256 px crops of the 224 px model: their head averages a 7x7 window sliding over the 8x8 map."""
    reference = reference_model("i3d_8x8")
    ours = build_network({"arch": "i3d_8x8", "pretrained_3d": str(zoo_file(tmp_path, "i3d_8x8"))},
                         {"kind": "bn"}, 400).eval()
    clip = torch.randn(1, 3, 8, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip), reference(clip), rtol=1e-5, atol=1e-3)


def test_pyslowfast_layout_lands_weight_for_weight(tmp_path):
    state = reference_model("slow_8x8").state_dict()
    stage_blocks = sorted({int(k.split(".")[1]) for k in state if ".res_blocks." in k})
    pyslowfast = {f"module.{pyslowfast_name(k, stage_blocks)}": v for k, v in state.items()}
    path = tmp_path / "SLOWONLY_8x8_R50.pyth"
    torch.save({"epoch": 196, "model_state": pyslowfast, "optimizer_state": {}, "cfg": "MODEL:\n  ARCH: slow"},
               path)
    from_pyslowfast = build_network({"arch": "slow_8x8", "pretrained_3d": str(path)}, {"kind": "bn"}, 400)
    from_zoo = build_network({"arch": "slow_8x8", "pretrained_3d": str(zoo_file(tmp_path, "slow_8x8", state))},
                             {"kind": "bn"}, 400)
    mine, theirs = from_pyslowfast.state_dict(), from_zoo.state_dict()
    assert mine.keys() == theirs.keys()
    loaded = 0
    for key in mine:
        torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0, msg=key)
        loaded += not key.endswith("num_batches_tracked")
    assert loaded == len([k for k in state if not k.endswith("num_batches_tracked")])


def test_a_zoo_file_in_the_wrong_network_names_the_config(tmp_path):
    path = zoo_file(tmp_path, "slow_8x8")
    with pytest.raises(ConfigError, match=r"holds a pytorchvideo Slow 8x8 R50, .* use model=slow_r50_8x8"):
        build_network({"arch": "i3d_8x8", "pretrained_3d": str(path)}, {"kind": "bn"}, 400)


def test_a_missing_key_is_named_as_the_file_names_it(tmp_path):
    state = reference_model("c2d_8x8").state_dict()
    del state["blocks.4.res_blocks.3.branch2.conv_b.weight"]
    state["blocks.9.extra.weight"] = torch.zeros(1)
    with pytest.raises(ConfigError) as err:
        build_network({"arch": "c2d_8x8", "pretrained_3d": str(zoo_file(tmp_path, "c2d_8x8", state))},
                      {"kind": "bn"}, 400)
    assert "unexpected in checkpoint (1): blocks.9.extra.weight" in str(err.value)
    assert ("missing from checkpoint (1): blocks.4.res_blocks.3.branch2.conv_b.weight "
            "(ours: res4.3.conv_b.weight)") in str(err.value)


def test_gn_fine_tuning_from_a_bn_zoo_model_loads_the_convs_and_says_the_norms_are_new(tmp_path, caplog):
    reference = reference_model("i3d_8x8").state_dict()
    with caplog.at_level(logging.WARNING):
        net = build_network({"arch": "i3d_8x8", "pretrained_3d": str(zoo_file(tmp_path, "i3d_8x8", reference))},
                            {"kind": "gn", "num_groups": 32}, 12)
    state = net.state_dict()
    torch.testing.assert_close(state["res4.3.conv_b.weight"], reference["blocks.4.res_blocks.3.branch2.conv_b.weight"])
    torch.testing.assert_close(state["stem.conv.weight"], reference["blocks.0.conv.weight"])
    assert torch.all(state["res4.3.norm_b.weight"] == 1) and state["head.fc.weight"].shape == (12, 2048)
    assert "BatchNorm layers are not loaded" in caplog.text
    assert "classifier (400 classes) is replaced by a new one for this network's 12" in caplog.text
