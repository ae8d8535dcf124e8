"""``LoadFailureLog``: every distinct video that failed to load during a run, with its reason.

The dataset replaces an unreadable video by another sample and reports it in the batch
(``load_errors``). Each rank appends the paths it has not seen before to its own file under the
run folder (``load_failures/rank<r>.tsv``), as they happen: no collective between ranks (rank 0's
progress bar syncs metrics at other points than the other ranks, so an extra one would deadlock),
nothing lost if the run is killed, and ranks started with spawn write there too. The checkpoint
carries the set, so a run resumed elsewhere keeps counting from it. ``read_load_failures`` merges
the files: one bad video retried every epoch, or seen by two ranks, counts once.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from ..files import atomic_write_csv


def read_load_failures(dirpath: str | Path) -> dict[str, str]:
    """path -> reason, over every rank's file under ``dirpath`` (empty if there is none)."""
    failed: dict[str, str] = {}
    for f in sorted(Path(dirpath).glob("rank*.tsv")):
        for line in f.read_text(encoding="utf-8").splitlines():
            path, _, reason = line.partition("\t")
            if path:
                failed.setdefault(path, reason)
    return failed


def write_load_failures_csv(failed: dict[str, str], path: Path) -> None:
    atomic_write_csv(path, ["path", "reason"], sorted(failed.items()))


class LoadFailureLog(L.Callback):
    """Args:
        dirpath: where each rank appends ``rank<r>.tsv`` (``path<TAB>reason`` lines).
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)
        self.seen: dict[str, str] = {}

    def _append(self, rank: int, failures: list[tuple[str, str]]) -> None:
        new = [(p, r) for p, r in failures if p not in self.seen]
        if not new:
            return
        self.seen.update(new)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        with (self.dirpath / f"rank{rank}.tsv").open("a", encoding="utf-8") as f:
            f.writelines(f"{p}\t{r}\n" for p, r in new)

    def _record(self, trainer: L.Trainer, batch: dict) -> None:
        failures = []
        for lines in batch.get("load_errors", ()):
            for line in filter(None, lines.split("\n")):
                path, _, reason = line.partition("\t")
                failures.append((path, reason))
        self._append(trainer.global_rank, failures)

    def setup(self, trainer, pl_module, stage):
        # Manifest rows the datamodule left out before the first step (missing, too short).
        left_out = getattr(trainer.datamodule, "unusable_videos", None)
        if left_out and trainer.global_rank == 0:
            self._append(0, sorted(left_out.items()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._record(trainer, batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._record(trainer, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._record(trainer, batch)

    def failed(self) -> dict[str, str]:
        """Every rank's failures so far (read from the files: ranks may live in other processes)."""
        return {**self.seen, **read_load_failures(self.dirpath)}

    def state_dict(self) -> dict:
        return {"failed": self.failed()}

    def load_state_dict(self, state_dict: dict) -> None:
        # Resumed, perhaps into another folder: the failures before the interruption count here too.
        self._append(rank_zero_only.rank, sorted(state_dict.get("failed", {}).items()))
