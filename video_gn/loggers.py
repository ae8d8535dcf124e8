"""``ResumableCSVLogger``: Lightning's CSV logger, minus the part that loses a resumed run's history.

Lightning's writer deletes ``metrics.csv`` when it opens a folder that already has one, so a run
resumed into its own folder (``last.ckpt``) kept only the epochs after the resume. This one keeps the
earlier rows; rows at or after the first step the resumed run logs (the part of an interrupted epoch
that is trained again) are replaced by the new ones, so no step appears twice. The merged file is
written atomically.
"""

from __future__ import annotations

import csv
import io

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from .io import atomic_write_text


class KeepingExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        self._earlier: list[dict] | None = None
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self._earlier = list(csv.DictReader(f))

    def save(self) -> None:
        if self._earlier is None or not self.metrics:
            return super().save()
        first = min(int(m["step"]) for m in self.metrics)
        rows = [r for r in self._earlier if int(float(r["step"])) < first] + self.metrics
        self._earlier, self.metrics = None, []
        self._write_all(rows, set())


    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        # The file may hold columns this writer never saw (another process wrote them: DDP spawn
        # runs fit and test in different processes): keep them all, atomically.
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        self._write_all(rows, set(fieldnames) | set(reader.fieldnames or []))

    def _write_all(self, rows: list[dict], keys: set[str]) -> None:
        """``metrics.csv`` rewritten atomically with every column of ``rows`` and ``keys``."""
        self.metrics_keys = sorted(keys.union(*rows))
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, buffer.getvalue())


class ResumableCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` that keeps ``metrics.csv`` across resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> KeepingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = KeepingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
