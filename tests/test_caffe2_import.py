"""The paper's own weights: Caffe2/Detectron pickles in the exact key layout of the released files,
with random arrays of the real shapes.

2-D: a torchvision ResNet-50 (BN or GN) is written out under Detectron's names with its conv1 in BGR
order; inflated to I3D, a clip of identical frames must reproduce torchvision's own 2-D forward on
the RGB image. 3-D: a Non-local I3D-R50 pickle lands weight by weight where the documented name map
says, written here independently of the importer.
"""

import hashlib
import pickle

import numpy as np
import pytest
import torch
from test_inflate import features_2d, features_3d, random_resnet50, replicate_time_padding

from video_gn.errors import ConfigError, MissingFileError, WeightsFileError
from video_gn.models import build_network
from video_gn.models.caffe2_import import load_caffe2
from video_gn.models.norm import NormSpec
from video_gn.models.provenance import init_record
from video_gn.models.resnet3d import build_model

R50_BLOCKS = {2: 3, 3: 4, 4: 6, 5: 3}
# video-nonlocal-net's use_temp_convs per stage (docs/reference.md): 3x1x1 in branch2a where 1, else 1x1x1.
NONLOCAL_TEMPORAL_KERNELS = {2: [3, 3, 3], 3: [3, 1, 3, 1], 4: [3, 1, 3, 1, 3, 1], 5: [1, 3, 1]}
TRAINING_STATE = {"lr": np.array([0.1], np.float32), "model_iter": np.array([450450]),
                  "conv1_w_momentum": np.zeros((64, 3, 7, 7), np.float32)}


def detectron_blobs(net2d, kind: str, with_statistics: bool = True) -> dict[str, np.ndarray]:
    """A torchvision ResNet-50 as Detectron names it (R-50-GN.pkl / R-50.pkl), conv1 in BGR."""
    sd = {k: v.detach().numpy().copy() for k, v in net2d.state_dict().items()}
    norm = "gn" if kind == "gn" else "bn"
    blobs = {"conv1_w": sd["conv1.weight"][:, ::-1].copy()}  # Caffe2 reads BGR
    stem = "conv1_gn" if kind == "gn" else "res_conv1_bn"

    def add_norm(prefix, tv):
        weight, bias = sd[f"{tv}.weight"], sd[f"{tv}.bias"]
        if kind == "bn" and not with_statistics:  # the MSRA R-50: BN folded into scale and bias
            scale = weight / np.sqrt(sd[f"{tv}.running_var"] + 1e-5)
            blobs[f"{prefix}_s"], blobs[f"{prefix}_b"] = scale, bias - sd[f"{tv}.running_mean"] * scale
            return
        blobs[f"{prefix}_s"], blobs[f"{prefix}_b"] = weight, bias
        if kind == "bn":
            blobs[f"{prefix}_rm"], blobs[f"{prefix}_riv"] = sd[f"{tv}.running_mean"], sd[f"{tv}.running_var"]

    add_norm(stem, "bn1")
    for stage, n in R50_BLOCKS.items():
        for b in range(n):
            tv = f"layer{stage - 1}.{b}"
            for letter, i in (("a", 1), ("b", 2), ("c", 3)):
                blobs[f"res{stage}_{b}_branch2{letter}_w"] = sd[f"{tv}.conv{i}.weight"]
                add_norm(f"res{stage}_{b}_branch2{letter}_{norm}", f"{tv}.bn{i}")
            if b == 0:
                blobs[f"res{stage}_{b}_branch1_w"] = sd[f"{tv}.downsample.0.weight"]
                add_norm(f"res{stage}_{b}_branch1_{norm}", f"{tv}.downsample.1")
    blobs["pred_w"], blobs["pred_b"] = sd["fc.weight"], sd["fc.bias"]
    return blobs


def write_pickle(path, blobs, wrap=True):
    with open(path, "wb") as f:
        pickle.dump({"blobs": {**blobs, **TRAINING_STATE}} if wrap else blobs, f, protocol=2)
    return path


@pytest.mark.heavy
@pytest.mark.parametrize(("kind", "with_statistics"), [("gn", True), ("bn", True), ("bn", False)])
def test_detectron_2d_inflates_to_the_2d_forward(kind, with_statistics, tmp_path):
    net2d = random_resnet50(kind)
    path = write_pickle(tmp_path / f"R-50-{kind}.pkl", detectron_blobs(net2d, kind, with_statistics),
                        wrap=kind == "gn")  # Detectron files come both ways: under "blobs" or bare
    net3d = build_network({"arch": "i3d", "depth": 50, "pretrained_2d": str(path)}, {"kind": kind}, 400)
    load_caffe2(net3d, path, inflate=True, include_head=True)  # the head too, to compare logits
    net3d.eval()
    replicate_time_padding(net3d)
    image = torch.randn(2, 3, 64, 64)  # RGB
    clip = image.unsqueeze(2).repeat(1, 1, 8, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(features_3d(net3d, clip), features_2d(net2d, image),
                                   rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(net3d(clip), net2d(image), rtol=1e-3, atol=1e-4)


def test_build_network_keeps_a_random_head_for_2d_weights(tmp_path):
    path = write_pickle(tmp_path / "R-50-GN.pkl", detectron_blobs(random_resnet50("gn"), "gn"))
    torch.manual_seed(0)
    net = build_network({"arch": "i3d", "depth": 50, "pretrained_2d": str(path)}, {"kind": "gn"}, 7)
    assert net.head.fc.weight.shape == (7, 2048) and net.head.fc.weight.std() < 0.02  # init std 0.01


def nonlocal_i3d_blobs(seed=0) -> dict[str, np.ndarray]:
    """The Non-local release's I3D-R50 (Kinetics, 400 classes, BN): names and shapes from its spec."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    blobs = {"conv1_w": arr(64, 3, 5, 7, 7), "pred_w": arr(400, 2048), "pred_b": arr(400)}
    for suffix in ("s", "b", "rm"):
        blobs[f"res_conv1_bn_{suffix}"] = arr(64)
    blobs["res_conv1_bn_riv"] = rng.uniform(0.5, 2, 64).astype(np.float32)
    cin = 64
    for stage, n in R50_BLOCKS.items():
        inner = 64 * 2 ** (stage - 2)
        for b in range(n):
            t = NONLOCAL_TEMPORAL_KERNELS[stage][b]
            shapes = {"2a": (inner, cin, t, 1, 1), "2b": (inner, inner, 1, 3, 3),
                      "2c": (4 * inner, inner, 1, 1, 1)}
            if b == 0:
                shapes["1"] = (4 * inner, cin, 1, 1, 1)
            for branch, shape in shapes.items():
                p = f"res{stage}_{b}_branch{branch}"
                blobs[f"{p}_w"] = arr(*shape)
                for suffix in ("s", "b", "rm"):
                    blobs[f"{p}_bn_{suffix}"] = arr(shape[0])
                blobs[f"{p}_bn_riv"] = rng.uniform(0.5, 2, shape[0]).astype(np.float32)
            cin = 4 * inner
    return blobs


def expected_name(key: str) -> str:
    """The documented map, spelled out: Caffe2 name -> our parameter name."""
    if key == "conv1_w":
        return "stem.conv.weight"
    if key.startswith("pred_"):
        return {"pred_w": "head.fc.weight", "pred_b": "head.fc.bias"}[key]
    param = {"w": "weight", "s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}[
        key.rsplit("_", 1)[1]]
    if key.startswith("res_conv1_bn"):
        return f"stem.norm.{param}"
    stage, block, branch = key.split("_")[:3]
    layer = {"branch1": "shortcut.{}", "branch2a": "{}_a", "branch2b": "{}_b", "branch2c": "{}_c"}[branch]
    module = layer.format("conv" if key.endswith("_w") else "norm")
    return f"{stage}.{block}.{module}.{param}"


def test_nonlocal_i3d_lands_weight_by_weight(tmp_path):
    blobs = nonlocal_i3d_blobs()
    path = write_pickle(tmp_path / "i3d_baseline_32x2_IN_pretrain_400k.pkl", blobs)
    net = build_network({"arch": "i3d", "depth": 50, "pretrained_3d": str(path)}, {"kind": "bn"}, 400)
    state = net.state_dict()
    assert len(blobs) == len([k for k in state if not k.endswith("num_batches_tracked")]) == 267
    for key, array in blobs.items():
        want = torch.from_numpy(array)
        if key == "conv1_w":
            want = want.flip(1)  # BGR -> RGB
        torch.testing.assert_close(state[expected_name(key)], want, rtol=0, atol=0, msg=key)


@pytest.mark.heavy
def test_missing_and_unexpected_keys_are_listed(tmp_path):
    blobs = nonlocal_i3d_blobs()
    del blobs["res4_2_branch2b_w"]
    blobs["res6_0_branch2a_w"] = np.zeros((1,), np.float32)
    path = write_pickle(tmp_path / "broken.pkl", blobs)
    net = build_model(arch="i3d", depth=50, norm=NormSpec("bn"), num_classes=400)
    with pytest.raises(WeightsFileError) as err:
        load_caffe2(net, path, inflate=False, include_head=True)
    msg = str(err.value)
    assert "unexpected in checkpoint (1): res6_0_branch2a_w" in msg
    assert "missing from checkpoint (1): res4_2_branch2b_w (ours: res4.2.conv_b.weight)" in msg


@pytest.mark.heavy
def test_a_gn_checkpoint_into_a_bn_network_says_which_norm(tmp_path):
    path = write_pickle(tmp_path / "R-50-GN.pkl", detectron_blobs(random_resnet50("gn"), "gn"))
    net = build_model(arch="i3d", depth=50, norm=NormSpec("bn"), num_classes=400)
    with pytest.raises(WeightsFileError, match="holds GroupNorm parameters .* network's norm is BatchNorm"):
        load_caffe2(net, path, inflate=True, include_head=False)


@pytest.mark.heavy
@pytest.mark.parametrize("norm", ["gn", "ln", "in"])
@pytest.mark.parametrize("with_statistics", [True, False])
def test_a_bn_checkpoint_into_a_gn_family_network_is_refused(tmp_path, norm, with_statistics):
    """The MSRA R-50.pkl folds BN into scale/shift of GN's exact shapes: without the check it loaded
    silently as GN's γ/β."""
    path = write_pickle(tmp_path / "R-50.pkl", detectron_blobs(random_resnet50("bn"), "bn", with_statistics))
    net = build_model(arch="i3d", depth=50, norm=NormSpec(norm, num_groups=32), num_classes=400)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(WeightsFileError, match=r"R-50.pkl holds BatchNorm parameters \(e.g. res_conv1_bn_s\) "
                                         r"but the network's norm is GroupNorm"):
        load_caffe2(net, path, inflate=True, include_head=False)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # nothing loaded


def evil_pickle(path, marker):
    """A dict in Caffe2's layout whose ``conv1_w`` unpickles to ``os.system("touch <marker>")``."""
    import os

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": RunsCode()}}, protocol=2))
    return path


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    from video_gn.errors import ConfigError
    from video_gn.models.caffe2_import import load_caffe2_blobs

    marker = tmp_path / "ran"
    path = evil_pickle(tmp_path / "evil.pkl", marker)
    with pytest.raises(ConfigError, match=r"evil.pkl: refused to load (posix|os)\.system"):
        load_caffe2_blobs(path)
    assert not marker.exists()
    # the reference: the same file through plain pickle does run the command
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_weights_pickles_of_numpy_1_and_2_layouts_load(tmp_path):
    """What real weight files hold: arrays (C and Fortran order, every dtype in them), numpy scalars,
    nested dicts, written with protocols 2 (Python 2 era) to 5."""
    from video_gn.models.safe_pickle import load_weights_pickle

    blobs = {"conv1_w": np.random.rand(2, 3, 1, 1).astype(np.float32),
             "pred_b": np.asfortranarray(np.random.rand(3, 2)), "model_iter": np.int64(7),
             "ids": np.arange(4, dtype=np.int32), "name": "x", "nested": {"t": (1, 2.0, [3])}}
    for protocol in range(2, 6):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"blobs": blobs}, protocol=protocol))
        got = load_weights_pickle(path)
        for key, value in blobs.items():
            if isinstance(value, np.ndarray):
                assert got["blobs"][key].dtype == value.dtype and np.array_equal(got["blobs"][key], value)
            else:
                assert got["blobs"][key] == value


def test_init_record_names_the_file_and_its_hash(tmp_path):
    path = write_pickle(tmp_path / "R-50-GN.pkl", {"conv1_w": np.ones((64, 3, 7, 7), np.float32)})
    record = init_record({"init": None, "pretrained_2d": str(path)})
    assert record == {"kind": "pretrained_2d", "file": "R-50-GN.pkl",
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert init_record({"init": "scratch"}) == {"kind": "scratch"}
    with pytest.raises(ConfigError, match="model.init is not set"):
        init_record({"init": None})
    with pytest.raises(MissingFileError, match="model.pretrained_3d=.*nope.pkl"):
        init_record({"init": None, "pretrained_3d": str(tmp_path / "nope.pkl")})
