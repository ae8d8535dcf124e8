"""A one-node SLURM cluster inside this machine, for the ``slurm`` test tier.

Debian's ``slurm-wlm`` and ``munge``, started in the background without systemd: munged, slurmctld
and slurmd in the foreground of their own processes (stopped by PID afterwards), no accounting
database, the node being this machine with its own CPUs and memory (``slurmd -C``). Needs root to
install the packages and write ``/etc/slurm/slurm.conf``. By hand::

    python tests/slurm_cluster.py   # starts it and waits; Ctrl-C stops it
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
PARTITION = "debug"


def installed() -> bool:
    return all(shutil.which(tool) for tool in ("sinfo", "sbatch", "slurmctld", "slurmd", "munged"))


def install() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("installing slurm-wlm and munge needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], env=env,
                      capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], env=env, check=True,
                       capture_output=True)


def write_config() -> str:
    """``slurm.conf`` for one node, this machine; returns the node's name."""
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    fields = dict(f.split("=", 1) for f in node.split())
    name, cpus, memory = fields["NodeName"], fields["CPUs"], int(fields["RealMemory"])
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(f"""ClusterName=local
SlurmctldHost={name}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName={name} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={int(memory * 0.9)} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    return name


def start(timeout: float = 120) -> list[subprocess.Popen]:
    """Starts munged, slurmctld and slurmd; returns once ``sinfo`` shows the node idle."""
    if not installed():
        install()
    name = write_config()
    for folder in ("/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm", "/run/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    log = open("/var/log/slurm/daemons.out", "ab")
    daemons = [subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "--foreground"], stdout=log,
                                stderr=log)]
    time.sleep(1)
    daemons.append(subprocess.Popen(["slurmctld", "-D", "-i"], stdout=log, stderr=log))
    time.sleep(2)
    daemons.append(subprocess.Popen(["slurmd", "-D"], stdout=log, stderr=log))
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-n", name, "-o", "%T"], capture_output=True, text=True).stdout
        if state.strip().rstrip("*") == "idle":
            return daemons
        if state.strip().rstrip("*") in ("down", "drained", "unknown"):
            subprocess.run(["scontrol", "update", f"nodename={name}", "state=resume"], capture_output=True)
        if any(d.poll() is not None for d in daemons):
            break
        time.sleep(1)
    stop(daemons)
    raise RuntimeError(f"the SLURM node {name} did not become idle (see /var/log/slurm/)")


def stop(daemons: list[subprocess.Popen]) -> None:
    for d in reversed(daemons):
        if d.poll() is None:
            d.terminate()
    for d in daemons:
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()


if __name__ == "__main__":
    running = start()
    print("SLURM is up:", subprocess.run(["sinfo"], capture_output=True, text=True).stdout)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop(running)
