"""The loggers' side of a run: what Lightning's loggers write, and what the experiment trackers get
besides Lightning's metrics.

``ResumableCSVLogger`` is Lightning's CSV logger minus the part that loses a resumed run's history:
Lightning's writer deletes ``metrics.csv`` when it opens a folder that already has one, so a run
resumed into its own folder (``last.ckpt``) kept only the epochs after the resume. This one keeps the
earlier rows; rows at or after the first step the resumed run logs (the part of an interrupted epoch
that is trained again) are replaced by the new ones, so no step appears twice. The merged file is
written atomically.

``log_config`` gives every logger of ``conf/logger`` the resolved config at the start (flattened,
``cfg/<group>/<key>``); ``log_results`` gives Weights & Biases and MLflow (``logger=wandb``,
``logger=mlflow``) ``results.json`` at the end: W&B as the run summary and a saved file, MLflow as
metrics and an artifact.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

from ..files import atomic_write_csv


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
        # Lightning's own writer ends lines with "\r\n" (csv's default): the same file either way.
        atomic_write_csv(self.metrics_file_path, self.metrics_keys, rows, lineterminator="\r\n")


class ResumableCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` that keeps ``metrics.csv`` across resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> KeepingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = KeepingExperimentWriter(log_dir=self.log_dir)
        return self._experiment



def flatten(tree, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return flat


def log_config(loggers: list[Logger], cfg: DictConfig) -> None:
    # Hydra's own settings are not the experiment's.
    config = {key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig)
              else cfg[key] for key in cfg if key != "hydra"}
    params = flatten(config, "cfg")
    for logger in loggers:
        logger.log_hyperparams(params)


def log_results(loggers: list[Logger], results_file: Path, results: dict) -> None:
    numbers = {f"results/{k}": float(v) for k, v in results.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(numbers)
            logger.experiment.save(str(results_file), base_path=str(results_file.parent), policy="now")
            logger.experiment.finish()  # writes config.yaml and the summary (offline: ready for `wandb sync`)
        elif isinstance(logger, MLFlowLogger):
            for name, value in numbers.items():
                logger.experiment.log_metric(logger.run_id, name, value)
            logger.experiment.log_artifact(logger.run_id, str(results_file))
