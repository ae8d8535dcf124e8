"""Per-video test predictions: ``predictions.csv`` beside ``results.json``, per-class top-1 and the
confusion matrix.

During the test each rank appends its videos' top-5 to its own file (``predictions/rank<r>.csv``:
no collective, as for load failures); after the test, rank 0 merges them into one
``predictions.csv`` (video path, label, top-5 class indices, names and probabilities), and
``results.json`` gets per-class top-1 and the mean class accuracy computed from it.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np

from .io import atomic_write_text

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
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(merged[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(merged)
        atomic_write_text(run_dir / "predictions.csv", buffer.getvalue())
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
