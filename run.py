"""Train a video classifier: `python run.py [group=option ...] [key=value ...]` (see README)."""

import os
import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://video_gn.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from video_gn.errors import UserError, one_line_errors
    from video_gn.train import train
    from video_gn.training.launch import with_job_log

    overrides = list(HydraConfig.get().overrides.task)  # kept in results.json

    if os.environ.get("SUBMITIT_FOLDER"):
        # A SLURM job of a sweep: the error goes back to the sweep, which prints it (an exit here
        # would leave submitit no result, and without accounting it would wait for the job forever).
        try:
            return train(cfg, overrides)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)  # in the job's own log too
            raise with_job_log(e) from None
    with one_line_errors():  # a value, file or disk the user must fix: one line, not a traceback
        return train(cfg, overrides)


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
    except Exception as e:  # a sweep job's error, raised again here by the sweeper
        from video_gn.errors import UserError
        from video_gn.training.launch import ended_job_message

        message = str(e) if isinstance(e, UserError) else ended_job_message(e)
        if message is None or user_full_error:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 1))
