"""Inflation of a 2D torchvision ResNet-50 into I3D-R50: identical frames reproduce the 2D features."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from video_gn.errors import MissingFileError, WeightsFileError
from video_gn.models.inflate import inflate_from_2d, inflate_state_dict, torchvision_key_to_3d
from video_gn.models.norm import NormSpec
from video_gn.models.resnet3d import build_model


def random_resnet50(kind, seed=0):
    torch.manual_seed(seed)
    norm_layer = (lambda c: nn.GroupNorm(32, c)) if kind == "gn" else None
    net = resnet50(weights=None, norm_layer=norm_layer, num_classes=400)
    with torch.no_grad():  # non-trivial affine and statistics, so copying them is checked
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def replicate_time_padding(model):
    """Zero padding at the clip's ends is the one thing that breaks 'identical frames == image';
    pad time by replication instead (spatial padding stays zero, as in 2D)."""
    for conv in model.modules():
        if isinstance(conv, nn.Conv3d) and conv.padding[0] > 0:
            pt = conv.padding[0]
            conv.padding = (0, *conv.padding[1:])
            conv.register_forward_pre_hook(
                lambda _, args, pt=pt: (F.pad(args[0], (0, 0, 0, 0, pt, pt), mode="replicate"),))


def features_2d(net, image):
    x = net.maxpool(net.relu(net.bn1(net.conv1(image))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return net.avgpool(x).flatten(1)


def features_3d(net, clip):
    """The 3-D network's pooled features (its head without dropout and classifier)."""
    for _, stage in net.stages():
        clip = stage(clip)
    return net.head.pool(clip).flatten(1)


@pytest.mark.parametrize("kind", ["bn", "gn"])
def test_identical_frames_reproduce_2d_features(kind, tmp_path):
    net2d = random_resnet50(kind)
    path = tmp_path / "r50.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in net2d.state_dict().items()}}, path)

    net3d = build_model(arch="i3d", depth=50, norm=NormSpec(kind), num_classes=400)
    inflate_from_2d(net3d, path, include_head=True)
    net3d.eval()
    replicate_time_padding(net3d)

    image = torch.randn(2, 3, 64, 64)
    clip = image.unsqueeze(2).repeat(1, 1, 8, 1, 1)
    with torch.no_grad():
        f2, f3 = features_2d(net2d, image), features_3d(net3d, clip)
        torch.testing.assert_close(f3, f2, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(net3d(clip), net2d(image), rtol=1e-3, atol=1e-4)


def test_kernel_repeated_in_time_and_divided():
    net2d = random_resnet50("bn")
    net3d = build_model(arch="i3d", depth=50, norm=NormSpec("bn"), num_classes=400)
    state = inflate_state_dict(net2d.state_dict(), net3d)
    w2, w3 = net2d.conv1.weight, state["stem.conv.weight"]
    assert w3.shape == (64, 3, 5, 7, 7)
    for t in range(5):
        torch.testing.assert_close(w3[:, :, t], w2 / 5)
    torch.testing.assert_close(state["res2.0.norm_a.running_var"], net2d.layer1[0].bn1.running_var)
    assert "head.fc.weight" not in state  # the head is skipped unless asked for


def test_key_mapping():
    assert torchvision_key_to_3d("layer2.0.bn1.weight") == "res3.0.norm_a.weight"
    assert torchvision_key_to_3d("layer4.0.downsample.0.weight") == "res5.0.shortcut.conv.weight"
    assert torchvision_key_to_3d("layer4.0.downsample.1.bias") == "res5.0.shortcut.norm.bias"
    assert torchvision_key_to_3d("bn1.running_mean") == "stem.norm.running_mean"


def test_mismatch_lists_every_bad_key():
    state = random_resnet50("bn").state_dict()
    del state["layer3.1.conv2.weight"]
    state["layer1.0.conv1.weight"] = torch.zeros(32, 64, 1, 1)
    state["extra.weight"] = torch.zeros(1)
    net3d = build_model(arch="i3d", depth=50, norm=NormSpec("bn"), num_classes=400)
    with pytest.raises(WeightsFileError) as err:
        inflate_state_dict(state, net3d)
    msg = str(err.value)
    assert "unexpected in checkpoint (1): extra.weight" in msg
    assert "layer1.0.conv1.weight -> res2.0.conv_a.weight: (32, 64, 3, 1, 1) vs (64, 64, 3, 1, 1)" in msg
    assert "missing from checkpoint (2): res2.0.conv_a.weight, res4.1.conv_b.weight" in msg


def test_missing_checkpoint_file_is_named(tmp_path):
    net3d = build_model(arch="small", norm=NormSpec("gn"), num_classes=3)
    with pytest.raises(MissingFileError, match="nope.pth"):
        inflate_from_2d(net3d, tmp_path / "nope.pth")
