"""Train a video classifier: `python run.py [group=option ...] [key=value ...]` (see README)."""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from video_gn.errors import UserError
    from video_gn.train import train

    try:
        return train(cfg)
    except UserError as e:  # a value, file or disk the user must fix: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
