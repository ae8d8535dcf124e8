"""The preparation's worker processes: one video each, and a clean stop.

Ctrl-C reaches the whole process group, but only the parent decides; SIGTERM (the parent's
shutdown, or its death on Linux) makes each worker delete its half-written clip and exit, so a
stopped preparation leaves no partial file under a final name.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from data_prep.encode import OutputFault, UnusableVideo, encode_clip
from data_prep.output import remove_stale_temporaries


class Interrupted(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


def _worker_init(out: str, parent: int) -> None:
    """Ctrl-C reaches the whole process group: the parent alone decides. SIGTERM (the parent's
    shutdown, or the parent's death on Linux) deletes this worker's half-written clips and exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: _worker_exit(out, signum))
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above took effect
        _worker_exit(out, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked since the fork (run_workers)


def _worker_exit(out: str, signum: int) -> None:
    for tmp in Path(out).glob(f"**/.*.tmp{os.getpid()}.mp4"):  # <split>/ or <split>/<class>/
        tmp.unlink(missing_ok=True)
    os._exit(128 + signum)


def _prepare_one(job: tuple) -> tuple:
    """Worker: (job index, "ok", ClipInfo), (index, reason, detail) or (index, "fault", message)."""
    index, src, dst, window, expected_seconds, settings = job
    start, end = window or (None, None)
    try:
        return index, "ok", encode_clip(src, dst, settings, start, end, expected_seconds)
    except UnusableVideo as e:
        return index, e.reason, e.detail
    except OutputFault as e:
        return index, "fault", (e.errno, e.strerror)
    except Exception as e:  # never lose the run to one video
        return index, "undecodable", f"{src}: {type(e).__name__}: {e}"


def run_workers(tasks: list, out: Path, workers: int, progress: bool, stems: set[str] | None = None):
    """Yields each task's result as it finishes. On Ctrl-C, SIGTERM or an output fault, the workers
    are sent SIGTERM (each deletes its half-written clip and exits) before the exception goes on."""
    if not tasks:
        return
    # The workers fork (at the first submit) with SIGTERM blocked: a fork inherits the parent's
    # handler, which would raise Interrupted inside a worker that a shutdown stops before
    # _worker_init has installed its own; a SIGTERM that comes meanwhile waits for the unblock.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        pool = ProcessPoolExecutor(max(1, min(workers, len(tasks))), initializer=_worker_init,
                                   initargs=(str(out), os.getpid()))
        futures = [pool.submit(_prepare_one, task) for task in tasks]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    finished = False
    try:
        for future in tqdm(as_completed(futures), total=len(futures), desc="preparing clips", unit="clip",
                           disable=not progress):
            index, status, result = future.result()
            if status == "fault":
                raise OSError(*result)
            yield index, status, result
        finished = True
    finally:
        if not finished:
            for future in futures:
                future.cancel()
            for process in list((pool._processes or {}).values()):  # the executor has no terminate()
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        remove_stale_temporaries(out, stems)


