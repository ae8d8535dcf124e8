"""The small-batch benchmark on CPU: BN vs GN (and BN with precise statistics) as clips per device
shrink, the clip-length trade, and the photometric ablation — every cell over several seeds.

    python bench/small_batch_grid.py [--out logs/small_batch_grid] [--seeds 5] [--streams 2] \
        [--override KEY=VALUE ...]
    python -m video_gn.report logs/small_batch_grid --out docs/results/small_batch_grid

Resumable: a cell whose folder has a results.json is skipped, and a cell killed mid-run resumes from
its last.ckpt (the training job's own rule), so the grid can span several sessions. Finished cells
kept elsewhere (``docs/results/small_batch_grid/<design>_runs``: their results.json files and the
grid's ``design.yaml``) are restored with ``cp -r <that folder>/. logs/small_batch_grid/`` before
starting again. ``design.yaml`` is the experiment config the grid was started with: a grid folder
whose design differs from the current ``conf/experiment/small_batch_grid.yaml`` (+ ``--override``)
is refused, so cells of two designs never end up in one table. Cells run seed
by seed (every cell of seed 0 first), so an interrupted grid has whole seeds. Each run is one
``python run.py experiment=small_batch_grid ...`` in its own folder; every BN cell's best checkpoint
is then re-evaluated with precise BN (``train=false norm.precise_bn_batches=N``, N batches = one pass
over the training split): the same weights, no extra training. ``--streams`` runs that many cells side
by side, one thread each (on 2 cores, two streams finish ~1.1x sooner than one after the other).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_CLIPS = [0]  # the design's training clips (one pass for precise BN), set by check_design
EXTRA: list[str] = []  # --override: added to every run (e.g. to shrink the grid for a try-out)


def cells(seeds: int) -> list[tuple[str, list[str]]]:
    """(folder name, overrides) of every training run, seed by seed; within a seed BN and GN side by
    side per batch size, 16 and 2 clips first, so the first minutes of a grid already show both ends."""
    out = []
    for seed in range(seeds):
        for b in (16, 2, 8, 4):
            for norm in ("bn", "gn"):
                out.append((f"{norm}_8x2_b{b}_s{seed}", [f"norm={norm}", f"data.batch_size_per_device={b}"]))
        for norm in ("bn", "gn"):
            # the clip-length trade: twice the frames at half the clips (same activation memory)
            out.append((f"{norm}_16x1_b4_s{seed}", [f"norm={norm}", "data.batch_size_per_device=4",
                                                    "data.frames_per_clip=16", "data.frame_stride=1"]))
        for norm in ("bn", "gn"):
            # the ablation: the same clips with the per-clip photometric transform
            out.append((f"{norm}_photometric_8x2_b8_s{seed}",
                        [f"norm={norm}", "data=synthetic_bench_photometric", "data.batch_size_per_device=8"]))
    return [(name, [*o, f"seed={name.rsplit('_s', 1)[1]}"]) for name, o in out]


DESIGN_KEYS = ("data", "model", "norm", "optim", "trainer")


def design(experiment: str = "small_batch_grid") -> dict:
    """The grid's experiment config (the parts that make a design), as composed for run.py."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    sys.path.insert(0, str(REPO))
    from video_gn.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}", *EXTRA])
    return {k: OmegaConf.to_container(cfg[k], resolve=False) for k in DESIGN_KEYS}


def check_design(out: Path, experiment: str = "small_batch_grid") -> None:
    """Write ``out/design.yaml`` on the first start; refuse a folder started with another design."""
    from omegaconf import OmegaConf

    current, path = design(experiment), out / "design.yaml"
    data = current["data"]
    TRAIN_CLIPS[0] = data["generate"]["clips_per_class"]["train"] * data["num_classes"]
    if not path.is_file():
        if any(out.glob("*/results.json")):
            raise SystemExit(f"error: {out} holds finished cells but no design.yaml, so which design they "
                             "belong to is unknown; start the grid in an empty --out")
        path.write_text(OmegaConf.to_yaml(current, sort_keys=True))
        return
    started = OmegaConf.to_container(OmegaConf.load(path))
    changed = sorted(_differences(started, current))
    if changed:
        raise SystemExit(f"error: {out} was started with another design ({'; '.join(changed[:5])}); "
                         "use a new --out, or restore that design's config")


def _differences(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new))
                for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix[:-1]}: {old} -> {new}"]


def run(out: Path, name: str, overrides: list[str], log, precise_bn: bool = True,
        experiment: str = "small_batch_grid") -> bool:
    """One training run (skipped if done), then for BN its precise-BN re-evaluation."""
    folder = out / name
    ok = _job(folder, [f"experiment={experiment}", *overrides], log)
    if precise_bn and ok and "norm=bn" in overrides and "_photometric" not in name:
        best = sorted((folder / "checkpoints").glob("epoch*.ckpt"))
        batch = next(int(o.split("=")[1]) for o in overrides if o.startswith("data.batch_size_per_device="))
        if best:
            ok = _job(out / f"{name}_precise", [f"experiment={experiment}", *overrides, "train=false",
                                                f"ckpt_path={best[-1]}",
                                                f"norm.precise_bn_batches={TRAIN_CLIPS[0] // batch}"], log)
        elif not (out / f"{name}_precise" / "results.json").is_file():
            # e.g. a cell restored from docs/results (results.json only): its weights are gone
            log(f"no checkpoint in {folder.name}: its precise-BN re-evaluation needs the cell run again")
    return ok


def _job(folder: Path, overrides: list[str], log) -> bool:
    if (folder / "results.json").is_file():
        log(f"skip {folder.name} (done)")
        return True
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with (folder / "run.log").open("a") as f:
        result = subprocess.run([sys.executable, str(REPO / "run.py"), *overrides, *EXTRA,
                                 f"hydra.run.dir={folder}"], stdout=f, stderr=subprocess.STDOUT, env=env)
    log(f"{'done' if result.returncode == 0 else f'FAILED (exit {result.returncode})'} {folder.name} "
        f"in {time.time() - started:.0f} s")
    return result.returncode == 0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("logs/small_batch_grid"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a run.py override added to every run (repeatable)")
    a = p.parse_args(argv)
    EXTRA[:] = a.override
    run_grid(a.out, cells(a.seeds), a.streams)


def run_grid(out: Path, queue: list[tuple[str, list[str]]], streams: int, precise_bn: bool = True,
             experiment: str = "small_batch_grid",
             datasets: tuple[str, ...] = ("synthetic_bench", "synthetic_bench_photometric")) -> None:
    """Every (folder name, overrides) of ``queue`` into ``out`` (done ones skipped), ``streams`` at a
    time, after the design check of ``experiment``; ``datasets`` are generated first (once).
    bench/multigrid_grid.py and bench/small_batch_pilot.py run their own cells through this too."""
    shown, out = out, out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    check_design(out, experiment)
    lock = threading.Lock()
    failed = []

    def log(message: str) -> None:
        with lock:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def stream() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name, overrides = queue.pop(0)
            if not run(out, name, overrides, log, precise_bn, experiment):
                failed.append(name)

    log(f"{len(queue)} training runs into {out}, {streams} stream(s)")
    for data in datasets if queue else ():  # once, before the streams
        subprocess.run([sys.executable, str(REPO / "run.py"), f"experiment={experiment}", f"data={data}",
                        *EXTRA, "debug=fast"], check=True, capture_output=True)
    threads = [threading.Thread(target=stream) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise SystemExit(f"error: {len(failed)} run(s) failed: {', '.join(failed)} (see their run.log)")
    log(f"all done: python -m video_gn.report {shown}")


if __name__ == "__main__":
    main()
