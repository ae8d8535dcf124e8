"""The SLURM launcher of ``hydra/launcher=slurm`` (here because Hydra takes launchers only from its
``hydra_plugins`` namespace): hydra-submitit-launcher's, plus a job-state watcher that also works on a
cluster without accounting.

submitit learns that a job has ended from its result file, or else from ``sacct``. A job that dies
without writing one (cancelled, out of time or memory, its node lost) is only seen by ``sacct``, and
``sacct`` needs the accounting database (slurmdbd), which small clusters and a one-node test cluster
do not run: submitit then reads the state as UNKNOWN and the sweep waits forever. ``QueueWatcher``
asks ``squeue`` instead when ``sacct`` cannot answer (``squeue -t all`` lists jobs that ended in the
last ``MinJobAge`` seconds with their final state; a job no longer listed has ended), so the sweep
reports such a job, with its log files, instead of hanging.
"""

from __future__ import annotations

import subprocess
import time

try:  # Hydra imports every plugin module at start-up: without the slurm extra, this one is empty
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
    from submitit.slurm import slurm as submitit_slurm
except ImportError:  # pip install -e '.[slurm]'
    submitit_slurm = None

GONE = "NOT_IN_QUEUE"  # the state of a job neither sacct nor squeue knows any more: it has ended


if submitit_slurm is not None:
    _Watcher, _Launcher = submitit_slurm.SlurmInfoWatcher, SubmititSlurmLauncher
else:
    _Watcher = _Launcher = object


class QueueWatcher(_Watcher):
    def update(self) -> None:
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        try:
            info = self.read_info(subprocess.check_output(command, stderr=subprocess.DEVNULL))
        except (subprocess.CalledProcessError, OSError):  # no accounting: ask the queue
            info = self._from_queue()
        self._info_dict.update(info)
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _from_queue(self) -> dict[str, dict[str, str]]:
        registered = sorted(self._registered - self._finished)
        arrays = sorted({job_id.split("_")[0] for job_id in registered})
        try:
            out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(arrays)],
                                 capture_output=True, text=True, check=True).stdout
        except (subprocess.CalledProcessError, OSError):
            return {}  # the controller does not answer: nothing is known, keep waiting
        listed = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
        return {job_id: {"JobID": job_id, "State": listed.get(job_id, GONE)} for job_id in registered}


class SlurmLauncher(_Launcher):
    """hydra-submitit-launcher's SLURM launcher with :class:`QueueWatcher` (state checked every 30 s
    at most, instead of submitit's up-to-10-minute back-off)."""

    def launch(self, job_overrides, initial_job_idx):
        submitit_slurm.SlurmJob.watcher = QueueWatcher(delay_s=30)
        return super().launch(job_overrides, initial_job_idx)
