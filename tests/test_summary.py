"""The model summary CLI: the I3D-R50 numbers from the paper's setting, as JSON and as a table."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, compose_config

from video_gn.summary import format_table, summarize


@pytest.mark.heavy
def test_summary_cli_json_reports_paper_model():
    out = subprocess.run(
        [sys.executable, "-m", "video_gn.summary", "model=i3d_r50", "norm=gn", "summary.format=json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    s = json.loads(out)
    assert abs(s["params"] - 28.0e6) < 0.1e6
    assert {st["name"]: st["output_shape"] for st in s["stages"]}["res5"] == [2048, 4, 7, 7]
    assert 60 < s["gflops"] < 70  # 2 FLOPs per multiply-add; docs/reference.md gives 66


@pytest.mark.heavy
def test_summary_64_frames_doubles_time_and_flops():
    s32 = summarize(compose_config(["norm=bn"], config_name="summary"))
    s64 = summarize(compose_config(["norm=bn", "data.frames_per_clip=64"], config_name="summary"))
    assert s64["stages"][-1]["output_shape"] == [2048, 8, 7, 7]
    assert abs(s64["gflops"] / s32["gflops"] - 2) < 0.01
    table = format_table(s64)
    assert "res5" in table and "2048×8×7×7" in table and "28.04M" in table


# Norm widths of each network, in module order, from the architecture tables (not read off the code):
# the small net (width 32, basic blocks): stem, res2 (a, b), then per stage a, b, shortcut.
SMALL_WIDTHS = [32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 256, 256]


@pytest.mark.heavy
def test_summary_prints_channels_per_group_and_the_shipped_groups_never_make_instance_norm():
    s = summarize(compose_config(["model=small", "data=synthetic"], config_name="summary"))
    layers = s["norm_layers"]
    assert [n["channels"] for n in layers] == SMALL_WIDTHS
    assert [n["channels_per_group"] for n in layers] == [c // 16 for c in SMALL_WIDTHS]  # G=16 fits it
    assert s["norm_warning"] is None
    table = format_table(s)
    assert "stem.norm" in table and "channels/group" in table
    # I3D-R50 with the paper's G=32: 64 channels at its narrowest, so 2 per group, 64 at res5's 2048.
    i3d = summarize(compose_config(["norm=gn"], config_name="summary"))["norm_layers"]
    assert min(n["channels_per_group"] for n in i3d) == 2 and max(n["channels"] for n in i3d) == 2048
    assert {n["channels_per_group"] for n in i3d if n["channels"] == 2048} == {64}


def test_norm_layers_are_named_by_what_they_are():
    """LN and IN are built as GroupNorm(1, C) and GroupNorm(C, C): the summary names them ln and in."""
    for norm, kind, groups in (("ln", "ln", lambda c: 1), ("in", "in", lambda c: c),
                               ("gn", "gn", lambda c: 16)):
        layers = summarize(compose_config(["model=small", "data=synthetic", f"norm={norm}"],
                                          config_name="summary"))["norm_layers"]
        assert [(n["kind"], n["groups"]) for n in layers] == [(kind, groups(c)) for c in SMALL_WIDTHS]


def test_one_channel_per_group_is_a_one_line_warning_naming_the_layer(capsys):
    from video_gn.config.checks import check_config

    s = summarize(compose_config(["model=small", "data=synthetic", "norm.num_groups=32"],
                                 config_name="summary"))
    assert s["norm_warning"].startswith("warning: norm=gn has 1 channel per group in stem.norm (32 groups "
                                        "over 32 channels) and 2 more layer(s)")
    assert s["norm_warning"] in format_table(s)
    check_config(compose_config(["norm.num_groups=32"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stem.norm" in err[0] and "norm.num_groups=16" in err[0]
    check_config(compose_config([]))  # the default: G=16 on the small net, no warning
    for kind in ("in", "ln", "bn"):  # IN is one channel per group on purpose
        check_config(compose_config([f"norm={kind}"]))
    assert capsys.readouterr().err == ""


@pytest.mark.heavy
def test_summary_names_a_bad_format_in_one_line(tmp_path):
    """What the user types, from another folder: a one-line error naming the key, no traceback."""
    done = subprocess.run([sys.executable, "-m", "video_gn.summary", "summary.format=yaml"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0
    assert "summary.format='yaml' is not one of table, json" in done.stderr
    assert "Traceback" not in done.stderr
