"""Per-video test predictions: ``predictions.csv`` beside ``results.json``, per-class top-1 and the
confusion matrix.

During the test each rank appends its videos' top-5 to its own file (``predictions/rank<r>.csv``:
no collective, as for load failures; ``PredictionWriter``, a callback of ``conf/callbacks``);
after the test, rank 0 merges them into one ``predictions.csv`` (video path, label, top-5 class
indices, names and probabilities), and ``results.json`` gets per-class top-1 and the mean class
accuracy computed from it (``prediction_results``).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import lightning as L
import numpy as np

from ..data.manifest import read_classes
from ..files import atomic_write_csv

TOP = 5
RANK_COLUMNS = ["index", "label"] + [f"top{k}_{w}" for k in range(1, TOP + 1) for w in ("index", "prob")]


def append_rank_rows(run_dir: str | Path, rank: int, rows: list[list]) -> None:
    folder = Path(run_dir) / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{rank}.csv"
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if new:
            writer.writerow(RANK_COLUMNS)
        writer.writerows(rows)


class PredictionWriter(L.Callback):
    """Each test video's top-5 classes, appended to this rank's file as the test goes (unless
    ``enabled`` is False: a second test of the same run, e.g. of the final weights)."""

    def __init__(self):
        self.enabled = True

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.rows: list[list] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        # outputs: the test_step's scored videos (an unreadable one is in load_failures, not here)
        if not len(outputs["label"]):
            return
        probs = outputs["probs"]
        top = probs.topk(min(TOP, probs.shape[1]), dim=1)
        for index, label, values, classes in zip(outputs["index"].tolist(), outputs["label"].tolist(),
                                                 top.values.tolist(), top.indices.tolist(), strict=True):
            pairs = zip(classes, values, strict=True)
            self.rows.append([index, label, *[v for pair in pairs for v in pair]])

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        # Each rank its own file, before the epoch's metric sync (so rank 0, past the sync, finds
        # every file complete); prediction_results merges them into predictions.csv.
        if self.enabled and not trainer.fast_dev_run:
            append_rank_rows(trainer.default_root_dir, trainer.global_rank, self.rows)


def prediction_results(run_dir: Path, datamodule) -> dict:
    """Merges the ranks' per-video rows into ``predictions.csv``; per-class top-1 and the mean class
    accuracy (what Kinetics papers also report) for results.json."""
    records = datamodule.records.get("test") or datamodule.usable_records("test")
    classes = getattr(datamodule, "classes", None) or read_classes(datamodule.root)
    rows = merge_rank_files(run_dir, [r.path for r in records], classes)
    per_class = per_class_top1(rows, classes) if rows else {}
    return {"predictions_file": "predictions.csv" if rows else None,
            "per_class_top1": per_class,
            "mean_class_top1": float(np.mean(list(per_class.values()))) if per_class else None}


def merge_rank_files(run_dir: str | Path, paths: list[str], classes: list[str]) -> list[dict]:
    """``predictions/rank*.csv`` -> ``predictions.csv`` (one row per video, manifest order); the
    rank files are removed. ``paths`` maps the test dataset's index to the video's path."""
    run_dir = Path(run_dir)
    rows = {}
    for part in sorted((run_dir / "predictions").glob("rank*.csv")):
        with part.open(newline="") as f:
            for r in csv.DictReader(f):
                rows[int(r["index"])] = r
    merged = []
    for index in sorted(rows):
        r = rows[index]
        label = int(r["label"])
        row = {"path": paths[index], "label": label,
               "label_name": classes[label] if 0 <= label < len(classes) else ""}
        for k in range(1, TOP + 1):
            if r.get(f"top{k}_index") in ("", None):
                continue
            i = int(r[f"top{k}_index"])
            row.update({f"top{k}_index": i, f"top{k}_name": classes[i] if i < len(classes) else str(i),
                        f"top{k}_prob": round(float(r[f"top{k}_prob"]), 6)})
        merged.append(row)
    if merged:
        atomic_write_csv(run_dir / "predictions.csv", list(merged[0]), merged)
    shutil.rmtree(run_dir / "predictions", ignore_errors=True)
    return merged


def read_predictions(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def confusion_matrix(rows: list[dict], num_classes: int) -> np.ndarray:
    """``[true, predicted]`` counts of top-1 predictions."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    for r in rows:
        counts[int(r["label"]), int(r["top1_index"])] += 1
    return counts


def per_class_top1(rows: list[dict], classes: list[str]) -> dict[str, float]:
    """Top-1 of each class that has test videos (class name -> accuracy)."""
    counts = confusion_matrix(rows, len(classes))
    totals = counts.sum(1)
    return {classes[k]: float(counts[k, k] / totals[k]) for k in range(len(classes)) if totals[k]}
