"""How a run's processes start and end: DDP ranks inside a Hydra multirun, and run folders that hold
nothing worth keeping.

Lightning's script launcher (``trainer=ddp`` on one machine) starts ranks 1..N-1 by re-running the
command line (``sys.argv``) with ``hydra.run.dir=<HydraConfig run.dir>``. In a multirun that command
is the whole sweep (``-m`` and every value) and ``run.dir`` is not the job's folder, so every rank
would run every job of the sweep. ``ranks_run_this_job`` makes them run this job, in its folder.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def ranks_run_this_job(output_dir: Path) -> Iterator[None]:
    """Inside a multirun job: spawned ranks re-run only this job's overrides, into its folder; after
    the job the process group is closed and the environment restored, so the next job starts its own."""
    if not _in_multirun():
        yield
        return
    hydra_cfg = HydraConfig.get()
    argv, run_dir, environ = sys.argv, hydra_cfg.run.dir, dict(os.environ)
    sys.argv = [argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(output_dir)
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = run_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        # The launcher leaves LOCAL_RANK, MASTER_PORT... in this process's environment; with them the
        # next job would think its ranks were started by someone else, and wait for them forever.
        os.environ.clear()
        os.environ.update(environ)


def holds_nothing(run_dir: Path) -> bool:
    """Only Hydra's own files (``.hydra/``, ``*.log``): what a run that failed at start-up leaves."""
    if not run_dir.is_dir():
        return False
    return all(p.name == ".hydra" or (p.is_file() and p.suffix == ".log") for p in run_dir.iterdir())


def remove_if_empty_run(run_dir: Path) -> None:
    """Removes a run folder that holds nothing but Hydra's files, so it never looks like a run."""
    if holds_nothing(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)



def with_job_log(error: Exception) -> Exception:
    """``error`` naming the SLURM job it happened in and that job's log (for the sweep's message)."""
    import submitit

    env = submitit.JobEnvironment()
    error.args = (f"{error} (SLURM job {env.job_id}, log {env.paths.stderr})",)
    return error


def ended_job_message(error: BaseException) -> str | None:
    """A SLURM job of a sweep that ended without a result (cancelled, out of time or memory:
    submitit's ``UncompletedJobError``, or ``FailedJobError``): one line with its id, state and log;
    None for any other error."""
    if type(error).__name__ not in ("UncompletedJobError", "FailedJobError"):
        return None
    text = str(error)
    job = re.search(r"Job (\S+) \(task", text)
    state = re.search(r"\(state: ([A-Z_]+)\)", text)
    result = re.search(r"(\S+)_result\.pkl", text)
    log = f"{result[1]}_log.err" if result else next(iter(re.findall(r"(\S+_log\.err)", text)), None)
    return (f"SLURM job {job[1] if job else '?'} of the sweep ended without a result"
            f"{' (' + state[1] + ')' if state else ''}" + (f"; its log: {log}" if log else ""))
