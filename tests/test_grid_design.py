"""The small-batch grid's design checks: the paper's rules (the same epochs for every cell, the LR
linear in the batch) on the composed configs before any run, and on the finished runs' records."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import small_batch_grid  # noqa: E402


@pytest.fixture(autouse=True)
def no_extra_overrides():
    small_batch_grid.EXTRA[:] = []
    yield
    small_batch_grid.EXTRA[:] = []


def test_the_grid_cells_follow_the_papers_rules():
    queue = small_batch_grid.cells(1)
    assert [name for name, _ in queue] == ["bn_8x2_b8_s0", "gn_8x2_b8_s0", "bn_8x2_b2_s0", "gn_8x2_b2_s0",
                                           "bn_8x2_b4_s0", "gn_8x2_b4_s0", "bn_16x1_b4_s0", "gn_16x1_b4_s0"]
    assert small_batch_grid.design_problems(queue) == []


def test_a_cell_with_other_epochs_or_a_fixed_lr_is_refused():
    queue = small_batch_grid.cells(1)[:2]
    odd = [("bn_8x2_b4_s0", ["norm=bn", "data.batch_size_per_device=4", "trainer.max_epochs=30"]),
           ("gn_8x2_b4_s0", ["norm=gn", "data.batch_size_per_device=4", "optim.lr=0.1"])]
    problems = small_batch_grid.design_problems(queue + odd)
    assert any(p.startswith("cells differ in trainer.max_epochs") and "bn_8x2_b4_s0=30" in p
               for p in problems)
    assert "gn_8x2_b4_s0: optim.lr=0.1 is set, so the LR does not follow the batch" in problems


def test_the_finished_runs_records_are_checked_too():
    """peak LR / global batch must be one number (0.2 at 64 clips: 0.003125 per clip), epochs one."""
    good = [{"max_epochs": 20, "peak_lr": 0.2 * b / 64, "global_batch": b} for b in (8, 4, 2)]
    evaluation = {"max_epochs": None, "peak_lr": None, "global_batch": 8}  # a precise-BN re-evaluation
    assert small_batch_grid.finished_design_problems([*good, evaluation]) == []
    bad = [*good, {"max_epochs": 30, "peak_lr": 0.2 * 2 / 64, "global_batch": 2},
           {"max_epochs": 20, "peak_lr": 0.025, "global_batch": 4}]
    problems = small_batch_grid.finished_design_problems(bad)
    assert problems[0] == "runs trained for different epochs: [20, 30]"
    assert problems[1].startswith("peak LR is not proportional to the global batch")


def test_rerun_noise_pairs_the_repeated_cell_by_seed(tmp_path):
    import json

    for folder, values in (("grid", (0.985, 0.980, 0.990, 0.982)), ("rerun", (0.975, 0.980, 0.992, 0.982))):
        for seed in (0, 1):
            run = tmp_path / folder / f"bn_8x2_b8_s{seed}"
            run.mkdir(parents=True)
            val, test = values[2 * seed], values[2 * seed + 1]
            (run / "results.json").write_text(json.dumps({"final5_median_val_top1": val, "test_top1": test}))
            precise = tmp_path / folder / f"bn_8x2_b8_s{seed}_precise"  # a re-evaluation: no validations
            precise.mkdir()
            moved = test + 0.001 * (folder == "rerun")
            no_val = {"final5_median_val_top1": None, "test_top1": moved}
            (precise / "results.json").write_text(json.dumps(no_val))
    table = small_batch_grid.rerun_noise(tmp_path / "grid", tmp_path / "rerun")
    assert "| bn_8x2_b8_precise | 0 | – | 98.0 / 98.1 / +0.1 | – |" in table
    assert "| bn_8x2_b8 | 0 | 98.5 / 97.5 / -1.0 | 98.0 / 98.0 / +0.0 | – |" in table
    assert "| bn_8x2_b8 | 1 | 99.0 / 99.2 / +0.2 | 98.2 / 98.2 / +0.0 | – |" in table
    # differences -1.0 and +0.2: mean |diff| 0.6, sd 0.85 (= 1.2 / sqrt 2)
    assert ("bn_8x2_b8, final5_median_val_top1: n = 2, mean |diff| 0.60 points, sd of the differences "
            "0.85, largest 1.0") in table
    assert "bn_8x2_b8_precise, test_top1: n = 2, mean |diff| 0.10 points, sd of the differences 0.00" in table
