"""The report on fabricated results.json files: known numbers land in known cells, runs that differ in
any setting never share a cell, protocols never share a table, the paper's numbers only where the
setting matches."""

import csv
import json

import numpy as np
import pytest

from video_gn.report import main, report

IMAGENET_GN = {"kind": "pretrained_2d", "file": "R-50-GN.pkl", "sha256": "ab" * 32}
K400_TEST = "10 clips x 3 crops, split 'val', last checkpoint"


def fake_run(root, name, norm, frames, batch, top1, top5, *, dataset="kinetics400", stride=None,
             init=IMAGENET_GN, devices=8, seed=0, epochs=109, protocol=K400_TEST, curve=None,
             arch="i3d", final_test=None):
    run = root / name
    run.mkdir(parents=True)
    results = {"norm": norm, "frames_per_clip": frames, "frame_stride": stride or 64 // frames,
               "batch_size_per_device": batch, "dataset": dataset, "arch": arch, "init": init,
               "devices": devices, "seed": seed, "max_epochs": epochs,
               "test_top1": top1, "test_top5": top5, "test_protocol": protocol if top1 is not None else None,
               "best_val_top1": 0.5, "best_val_top5": 0.8,
               "val_history": [{"epoch": e, "top1": a, "top5": 1.0} for e, a in enumerate(curve or [])],
               "final_test_top1": final_test}
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_table_cells_mean_std_and_paper_numbers(tmp_path):
    sweep = tmp_path / "multirun"
    fake_run(sweep, "0", "bn", 32, 8, 0.700, 0.890, curve=[0.3, 0.5, 0.7])
    fake_run(sweep, "1", "gn", 32, 8, 0.690, 0.880)
    fake_run(sweep, "2", "bn", 32, 4, 0.650, 0.860)
    fake_run(sweep, "3", "gn", 32, 4, 0.680, 0.875)
    fake_run(sweep, "4", "gn", 64, 4, 0.710, 0.900, seed=0)
    fake_run(sweep, "5", "gn", 64, 4, 0.730, 0.920, seed=1)  # a second seed of the same cell
    files = report([sweep], tmp_path / "out")

    md = files["markdown"].read_text().splitlines()
    assert md[0] == f"### kinetics400, i3d, init pretrained_2d R-50-GN.pkl (abababab), 8 device(s), " \
                    f"109 epochs — multi-view test: {K400_TEST}"
    assert md[2] == ("| norm | 32×2 frames / 8 clips per device | 32×2 frames / 4 clips per device "
                     "| 64×1 frames / 4 clips per device |")
    assert md[4] == ("| BN | 70.0 / 89.0 (paper 73.3 / 90.7) | 65.0 / 86.0 (paper 72.1 / 90.0) "
                     "| – (paper 73.3 / 90.8) |")  # no run yet: the paper's number still shows
    # mean ± sample std over the two seeds: 72.0 ± 1.4 (std of 71, 73), top-5 91.0 ± 1.4
    assert md[5] == ("| GN | 69.0 / 88.0 (paper 73.0 / 90.6) | 68.0 / 87.5 (paper 72.8 / 90.6) "
                     "| 72.0 ± 1.4 / 91.0 ± 1.4 (n=2) (paper 74.5 / 91.7) |")
    assert "- BN (32×2 frames): top-1 falls 5.0 ± 0.0 points (n=1/1) from 8 to 4 clips per device" in md
    with files["csv"].open() as f:
        rows = {(r["norm"], r["frames_per_clip"], r["batch_size_per_device"]): r for r in csv.DictReader(f)}
    gn64 = rows[("gn", "64", "4")]
    assert float(gn64["top1_mean"]) == 72.0 and gn64["n"] == "2" and gn64["seeds"] == "0;1"
    assert abs(float(gn64["top1_std"]) - 1.414) < 1e-3 and gn64["paper_top1"] == "74.5"
    assert b"\r" not in files["csv"].read_bytes()  # lines end in \n for shell tools
    for plot in ("accuracy_plot", "curves_plot"):
        data = files[plot].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_runs_that_differ_in_any_setting_are_never_merged(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "a", "gn", 32, 8, 0.70, 0.90)
    fake_run(runs, "b", "gn", 32, 8, 0.60, 0.85, stride=1)  # 32x1: another column
    fake_run(runs, "c", "gn", 32, 8, 0.50, 0.80, devices=4)  # another context
    fake_run(runs, "d", "gn", 32, 8, 0.40, 0.70, init={"kind": "scratch"})
    fake_run(runs, "e", "gn", 32, 8, 0.30, 0.60, dataset="synthetic")
    fake_run(runs, "f", "gn", 32, 8, None, None)  # no test: its best validation, in its own table
    text = report([runs], tmp_path / "out")["markdown"].read_text()
    tables = [t for t in text.split("### ") if t]
    assert len(tables) == 5
    cells = [line for line in text.splitlines() if line.startswith("| GN |")]
    assert sorted(cells) == sorted([
        "| GN | 60.0 / 85.0 | 70.0 / 90.0 (paper 73.0 / 90.6) |",  # 32x1 and 32x2: two columns
        "| GN | 50.0 / 80.0 |", "| GN | 40.0 / 70.0 |", "| GN | 30.0 / 60.0 |",
        "| GN | 50.0 / 80.0 |"])
    # The paper's numbers stand only beside the ImageNet-initialised 8-device multi-view test.
    assert text.count("(paper 7") == 1
    scratch = next(t for t in tables if "init scratch" in t)
    assert "The paper's numbers are not shown" in scratch
    assert "init: scratch (paper: ImageNet 2-D inflated (pretrained_2d))" in scratch
    four = next(t for t in tables if "4 device(s)" in t)
    assert "devices: 4 (paper: 8)" in four
    val_only = next(t for t in tables if "best validation top-1" in t)
    assert "| 32×2 frames / 8 clips per device |" in val_only


def test_verdict_pairs_seeds(tmp_path):
    runs = tmp_path / "runs"
    for seed, (big, small) in enumerate([(0.80, 0.70), (0.82, 0.70), (0.78, 0.72)]):
        fake_run(runs, f"bn8_{seed}", "bn", 8, 8, big, 0.9, dataset="synthetic", arch="small", seed=seed,
                 init={"kind": "scratch"}, devices=1, epochs=10)
        fake_run(runs, f"bn2_{seed}", "bn", 8, 2, small, 0.9, dataset="synthetic", arch="small", seed=seed,
                 init={"kind": "scratch"}, devices=1, epochs=10)
    text = report([runs], tmp_path / "out")["markdown"].read_text()
    # Per-seed drops 10, 12, 6 -> mean 9.3, sample std 3.1.
    assert "- BN (8×8 frames): top-1 falls 9.3 ± 3.1 points (std over 3 paired seeds) from 8 to 2 " \
           "clips per device" in text


def test_cli_prints_the_table_and_fails_clearly_without_runs(tmp_path, capsys):
    fake_run(tmp_path / "runs", "a", "gn", 8, 2, 0.95, 1.0, dataset="synthetic", curve=[0.5, 0.95],
             init={"kind": "scratch"})
    main([str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "| GN | 95.0 / 100.0 |" in out and "(paper" not in out
    assert (tmp_path / "runs" / "report" / "val_top1_curves.png").is_file()
    (tmp_path / "empty").mkdir()
    try:
        main([str(tmp_path / "empty")])
    except SystemExit as e:
        assert "no results.json under" in str(e.code)
    else:
        raise AssertionError("expected a clear error")


def test_confusion_matrix_at_400_classes_shows_the_most_confused_pairs(tmp_path):
    """Kinetics-size: 400 classes, 2 videos each, a few systematic confusions; the plot keeps the
    classes of the most-confused pairs and the counts equal the rows."""
    from video_gn.record.predictions import confusion_matrix
    from video_gn.report.plots import most_confused, plot_confusion

    names = [f"class {k:03d}" for k in range(400)]
    rows = []
    for k in range(400):
        for v in range(2):
            predicted = (k + 1) % 400 if (k % 50 == 0) else k  # classes 0, 50, ... -> their neighbour
            if k == 7 and v == 1:
                predicted = 300
            rows.append({"label": str(k), "label_name": names[k], "top1_index": str(predicted),
                         "top1_name": names[predicted]})
    counts = confusion_matrix(rows, 400)
    assert counts.sum() == 800 and np.trace(counts) == 800 - 2 * 8 - 1
    pairs = most_confused(counts, names, n=20)
    assert sorted(pairs[:8]) == sorted((names[k], names[k + 1], 2) for k in range(0, 400, 50))
    assert (names[7], names[300], 1) in pairs and len(pairs) == 9
    plot_confusion(rows, names, tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 10000


def test_convergence_check_counts_early_bests_and_weighs_the_late_gain_against_val_noise(tmp_path):
    from video_gn.report.runs import late_gain

    history = [{"epoch": e, "top1": a, "videos": 100}
               for e, a in enumerate([0.2, 0.5, 0.7, 0.8, 0.78, 0.79, 0.8, 0.8, 0.84, 0.82])]
    gain, se = late_gain({"max_epochs": 10, "val_history": history})
    # epochs 8-9 are the last 20%: best 0.84 there vs 0.80 before; SE = sqrt(.84 * .16 / 100)
    assert abs(gain - 0.04) < 1e-12 and abs(se - (0.84 * 0.16 / 100) ** 0.5) < 1e-12
    assert late_gain({"max_epochs": 10, "val_history": history[:8]}) is None  # nothing in the last 20%

    sweep = tmp_path / "sweep"
    early = [0.2, 0.5, 0.9, 0.8, 0.8]  # best at epoch 2 of 5: before the last 20%
    for seed, curve in enumerate([early, [0.2, 0.5, 0.6, 0.7, 0.9]]):
        run = fake_run(sweep, str(seed), "gn", 8, 4, 0.8, 0.9, seed=seed, epochs=5, curve=curve)
        results = json.loads((run / "results.json").read_text())
        results.update(best_val_epoch=int(np.argmax(curve)),
                       val_history=[{**h, "videos": 100} for h in results["val_history"]])
        (run / "results.json").write_text(json.dumps(results))
    md = report([sweep], tmp_path / "out")["markdown"].read_text()
    # seed 0 gained -10 points in its last epoch, seed 1 +20; the larger SE: seed 0's sqrt(.8 * .2 / 100)
    assert ("GN 8×8 / 4: best val epoch at 60%–100% of training; 1 of 2 runs before the last 20%; "
            "within 1 point of the best from 60%–100%; the last 20% gained -10.0 to +20.0 points over "
            "the earlier best, within the val set's standard error (±4.0) in 1 of 2") in md


def test_the_papers_final5_median_and_the_final_weights_stand_beside_best_by_val(tmp_path):
    """Median of the last 5 validations (the GN paper's §4.1) and the final weights' test, per cell:
    medians computed here by hand from the curves."""
    sweep = tmp_path / "runs"
    # seed 0: last five 0.60 0.70 0.65 0.90 0.62 -> median 0.65; seed 1: 0.50 0.55 0.52 0.58 0.57 -> 0.55
    fake_run(sweep, "a", "bn", 32, 8, 0.70, 0.9, seed=0, curve=[0.1, 0.60, 0.70, 0.65, 0.90, 0.62],
             final_test=0.66)
    fake_run(sweep, "b", "bn", 32, 8, 0.60, 0.9, seed=1, curve=[0.50, 0.55, 0.52, 0.58, 0.57],
             final_test=0.58)
    fake_run(sweep, "c", "gn", 32, 8, 0.64, 0.9, seed=0, curve=[0.3, 0.64], final_test=None)  # 2 validations
    files = report([sweep], tmp_path / "out")
    md = files["markdown"].read_text().splitlines()
    # mean of 65 and 55, std 7.07, 95% interval 60 ± t(.975, 1 df) 12.706 * 7.07 / sqrt(2) = 60 ± 63.5
    assert "| BN, final-5 median val | 60.0 ± 7.1 [-3.5, 123.5] (n=2) |" in md
    assert "| BN, final weights, test | 62.0 ± 5.7 [11.2, 112.8] (n=2) |" in md  # 66, 58: 62 ± 12.706 * 4
    assert "| GN, final-5 median val | 47.0 |" in md  # median of its only two: (30 + 64) / 2
    assert not any(line.startswith("| GN, final weights") for line in md)  # no run has it
    assert md[0].endswith(f"multi-view test: {K400_TEST}")  # the main table names its checkpoint rule
    with files["csv"].open() as f:
        rows = {r["norm"]: r for r in csv.DictReader(f)}
    assert float(rows["bn"]["final5_median_val_top1_mean"]) == 60.0
    assert float(rows["bn"]["final5_median_val_top1_ci_low"]) == pytest.approx(60 - 12.7062 * 5, abs=1e-3)
    assert float(rows["bn"]["top1_ci_high"]) == pytest.approx(65 + 12.7062 * 5, abs=1e-3)  # test 70, 60
    assert rows["gn"]["top1_ci_low"] == "" and rows["gn"]["final5_median_val_top1_ci_low"] == ""  # n = 1
    assert float(rows["bn"]["final_test_top1_mean"]) == 62.0 and rows["gn"]["final_test_top1_mean"] == ""


def test_paired_contrasts_by_seed_with_holm_and_equivalence(tmp_path):
    """Three seeds per cell, numbers chosen so each contrast's per-seed differences are known:
    BN 4−8 = −2, −4, −6 (mean −4); GN 4−8 = +0.2, −0.2, 0 (mean 0: equivalent within ±3);
    interaction = −2.2, −3.8, −6."""
    sweep = tmp_path / "runs"
    bn8, bn4 = [0.70, 0.72, 0.74], [0.68, 0.68, 0.68]
    gn8, gn4 = [0.650, 0.660, 0.670], [0.652, 0.658, 0.670]
    for seed in range(3):
        for norm, batch, top1 in (("bn", 8, bn8), ("bn", 4, bn4), ("gn", 8, gn8), ("gn", 4, gn4)):
            curve = [0.1] * 5 + [top1[seed]] * 5  # the final-5 median is top1[seed]
            fake_run(sweep, f"{norm}{batch}_s{seed}", norm, 32, batch, top1[seed], 0.9, seed=seed,
                     curve=curve)
    md = report([sweep], tmp_path / "out")["markdown"].read_text()
    from video_gn.report.stats import holm, paired_t

    bn = paired_t([100 * x for x in bn4], [100 * x for x in bn8])
    gn = paired_t([100 * x for x in gn4], [100 * x for x in gn8])
    inter = paired_t([100 * (a - b) for a, b in zip(bn4, bn8, strict=True)],
                     [100 * (a - b) for a, b in zip(gn4, gn8, strict=True)])
    assert bn.difference.mean == pytest.approx(-4.0) and gn.difference.mean == pytest.approx(0.0)
    assert inter.difference.mean == pytest.approx(-4.0)
    p_holm = holm([bn.p, gn.p, inter.p])
    rows = [line for line in md.splitlines() if line.startswith("| BN 4−8") or line.startswith("| GN 4−8")
            or line.startswith("| (BN 4−8)")]
    assert len(rows) == 6  # three contrasts under each of the two metrics
    bn_row = rows[0].split(" | ")
    assert bn_row[1] == "3" and bn_row[2].startswith("-4.0 [")
    assert bn_row[4] == f"{p_holm[0]:.3f}".lstrip("0")
    gn_row = next(r for r in rows if r.startswith("| GN 4−8"))
    assert gn_row.endswith("| equivalent within ±3 |")  # differences of ±0.2 points: within ±3
    assert "Paired contrasts on **final-5 median val**" in md and "Paired contrasts on **test" in md


def test_error_plot_is_the_papers_metric_with_its_interval(tmp_path):
    """The Figure-1 plot's points: clips per device, 100 − the mean over seeds of each run's median of
    its final 5 validations, and the 95% t-interval's half width (scipy's t quantile)."""
    import math
    import statistics

    from scipy import stats

    from video_gn.report.cells import tables
    from video_gn.report.plots import error_vs_batch_series
    from video_gn.report.runs import load_runs

    runs = tmp_path / "runs"
    fake_run(runs, "a", "bn", 32, 8, 0.9, 1.0, seed=0, curve=[0.1, 0.95, 0.96, 0.97, 0.5, 0.99])  # 0.96
    fake_run(runs, "b", "bn", 32, 8, 0.9, 1.0, seed=1, curve=[0.98] * 5)  # median 0.98
    fake_run(runs, "c", "bn", 32, 4, 0.9, 1.0, seed=0, curve=[0.9] * 5)  # one seed: no interval
    (table,) = tables(load_runs([runs])).values()
    (points,) = error_vs_batch_series(table).values()
    half = stats.t.ppf(0.975, 1) * statistics.stdev([96.0, 98.0]) / math.sqrt(2)
    assert [b for b, _, _ in points] == [4, 8]
    assert points[0][1:] == pytest.approx((10.0, 0.0)) and points[1][1:] == pytest.approx((3.0, half))
    png = report([runs], tmp_path / "out")["error_plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
