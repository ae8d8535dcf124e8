"""Train a video classifier: `python run.py [group=option ...] [key=value ...]` (see README)."""

import os
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
    from hydra.errors import HydraException

    user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's composition errors reach us, to be explained below
    try:
        main()
    except HydraException as e:
        from video_gn.overrides import explain

        message = explain(e, [a for a in sys.argv[1:] if not a.startswith("-")])
        if message is None or user_full_error:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
