"""Train a video classifier: `python run.py [group=option ...] [key=value ...]` (see README)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from video_gn.train import train

    return train(cfg)


if __name__ == "__main__":
    main()
