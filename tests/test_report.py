"""The report on fabricated results.json files: known numbers land in known table cells."""

import csv
import json

from video_gn.report import main, report


def fake_run(root, name, norm, frames, batch, top1, top5, dataset="kinetics400", curve=None):
    run = root / name
    run.mkdir(parents=True)
    results = {"norm": norm, "frames_per_clip": frames, "frame_stride": 64 // frames,
               "batch_size_per_device": batch, "dataset": dataset, "test_top1": top1, "test_top5": top5,
               "best_val_top1": None, "best_val_top5": None,
               "val_history": [{"epoch": e, "top1": a, "top5": 1.0} for e, a in enumerate(curve or [])]}
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_table_cells_and_paper_numbers(tmp_path):
    sweep = tmp_path / "multirun"
    fake_run(sweep, "0", "bn", 32, 8, 0.700, 0.890, curve=[0.3, 0.5, 0.7])
    fake_run(sweep, "1", "gn", 32, 8, 0.690, 0.880)
    fake_run(sweep, "2", "bn", 32, 4, 0.650, 0.860)
    fake_run(sweep, "3", "gn", 32, 4, 0.680, 0.875)
    fake_run(sweep, "4", "gn", 64, 4, 0.710, 0.900)
    fake_run(sweep, "5", "gn", 64, 4, 0.730, 0.920)  # a second seed of the same cell: averaged
    files = report([sweep], tmp_path / "out")

    md = files["markdown"].read_text().splitlines()
    assert md[0] == ("| norm | 32 frames / 8 clips per GPU | 32 frames / 4 clips per GPU "
                     "| 64 frames / 4 clips per GPU |")
    assert md[2] == ("| BN | 70.0 / 89.0 (paper 73.3 / 90.7) | 65.0 / 86.0 (paper 72.1 / 90.0) "
                     "| – (paper 73.3 / 90.8) |")  # no run yet: the paper's number still shows
    assert md[3] == ("| GN | 69.0 / 88.0 (paper 73.0 / 90.6) | 68.0 / 87.5 (paper 72.8 / 90.6) "
                     "| 72.0 / 91.0 (paper 74.5 / 91.7) |")
    with files["csv"].open() as f:
        rows = {(r["norm"], r["frames_per_clip"], r["batch_size_per_device"]): r for r in csv.DictReader(f)}
    gn64 = rows[("gn", "64", "4")]
    assert float(gn64["top1"]) == 72.0 and gn64["runs"] == "2" and gn64["paper_top1"] == "74.5"
    for plot in ("accuracy_plot", "curves_plot"):
        data = files[plot].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_no_paper_numbers_for_other_datasets_and_cli(tmp_path, capsys):
    fake_run(tmp_path / "runs", "a", "gn", 8, 2, 0.95, 1.0, dataset="synthetic", curve=[0.5, 0.95])
    main([str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "| GN | 95.0 / 100.0 |" in out and "(paper" not in out
    assert (tmp_path / "runs" / "report" / "val_top1_curves.png").is_file()
