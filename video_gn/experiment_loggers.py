"""What the experiment trackers receive besides Lightning's metrics: the resolved config at the start
(flattened, ``cfg/<group>/<key>``) and ``results.json`` at the end, as a file and as numbers.

Every logger of ``conf/logger`` gets the config; Weights & Biases and MLflow (``logger=wandb``,
``logger=mlflow``) also get the results: W&B as the run summary and a saved file, MLflow as metrics
and an artifact.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf


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
