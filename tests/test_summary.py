"""The model summary CLI: the I3D-R50 numbers from the paper's setting, as JSON and as a table."""

import json
import subprocess
import sys

from conftest import REPO, compose_config

from video_gn.summary import format_table, summarize


def test_summary_cli_json_reports_paper_model():
    out = subprocess.run(
        [sys.executable, "-m", "video_gn.summary", "model=i3d_r50", "norm=gn", "summary.format=json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    s = json.loads(out)
    assert abs(s["params"] - 28.0e6) < 0.1e6
    assert {st["name"]: st["output_shape"] for st in s["stages"]}["res5"] == [2048, 4, 7, 7]
    assert 60 < s["gflops"] < 70  # 2 FLOPs per multiply-add; DESIGN.md §8 gives 66


def test_summary_64_frames_doubles_time_and_flops():
    s32 = summarize(compose_config(["norm=bn"], config_name="summary"))
    s64 = summarize(compose_config(["norm=bn", "data.frames_per_clip=64"], config_name="summary"))
    assert s64["stages"][-1]["output_shape"] == [2048, 8, 7, 7]
    assert abs(s64["gflops"] / s32["gflops"] - 2) < 0.01
    table = format_table(s64)
    assert "res5" in table and "2048×8×7×7" in table and "28.04M" in table
