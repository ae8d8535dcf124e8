"""Train a video classifier: `python run.py [group=option ...] [key=value ...]` (see README)."""

import os
import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from video_gn.errors import one_line_errors
    from video_gn.train import train

    with one_line_errors():  # a value, file or disk the user must fix: one line, not a traceback
        return train(cfg)


if __name__ == "__main__":
    from hydra.errors import HydraException

    user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's composition errors reach us, to be explained below
    try:
        main()
    except HydraException as e:
        from video_gn.config.overrides import explain

        message = explain(e, [a for a in sys.argv[1:] if not a.startswith("-")])
        if message is None or user_full_error:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
