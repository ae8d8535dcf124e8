"""What a rerun needs to reproduce a number, beyond the config: results.json's ``environment``.

The same command on the same machine gives the same weights (training clips derive from the seed:
``data.train_sampler``). What still changes them: the CPU or GPU model and the library versions
(different kernels, different rounding), and PyTorch's intra-op thread count on the CPU (a
reduction split over more threads adds in another order). A run records each, so two runs that
differ say why.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "lightning", "numpy", "av", "decord", "torchmetrics")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_environment(*, num_workers: int, deterministic, precision) -> dict:
    """The machine, library versions and the settings that change the arithmetic."""
    cuda = torch.cuda.is_available()
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpu_model": torch.cuda.get_device_name() if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
        "intra_op_threads": torch.get_num_threads(),
        "loader_workers": num_workers,
        "deterministic": deterministic,
        "precision": str(precision),
    }
