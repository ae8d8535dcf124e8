"""The small-batch benchmark on CPU: BN vs GN (and BN with precise statistics) as clips per device
shrink, and the clip-length trade — every cell over several seeds.

    python bench/small_batch_grid.py [--out logs/small_batch_grid] [--seeds 6] [--streams 2] \
        [--override KEY=VALUE ...]
    python -m video_gn.report logs/small_batch_grid --out docs/results/small_batch_grid/fifth_design
    # the repeated cell (re-run noise): BN at 8 clips again, two threads per run instead of one
    python bench/small_batch_grid.py --out logs/small_batch_grid_rerun --only bn_8x2_b8 --threads 2 \
        --streams 1
    python bench/small_batch_grid.py --out logs/small_batch_grid --rerun-noise logs/small_batch_grid_rerun

Resumable: a cell whose folder has a results.json is skipped, and a cell killed mid-run resumes from
its last.ckpt (the training job's own rule), so the grid can span several sessions. Finished cells
kept elsewhere (``docs/results/small_batch_grid/<design>_runs``: their results.json files and the
grid's ``design.yaml``) are restored with ``cp -r <that folder>/. logs/small_batch_grid/`` before
starting again. ``design.yaml`` is the experiment config the grid was started with: a grid folder
whose design differs from the current ``conf/experiment/small_batch_grid.yaml`` (+ ``--override``)
is refused, so cells of two designs never end up in one table; so is a grid whose cells break the
paper's rules (other epochs, an LR not linear in the batch: ``design_problems``). The 8-clip cells of
seeds 0-2 run first (the pilot's criteria are read on them), then the rest seed by seed. Each run is
one ``python run.py experiment=small_batch_grid ...`` in its own folder; every BN cell's best
checkpoint is then re-evaluated with precise BN (``train=false norm.precise_bn_batches=N``, N
batches = one pass over the training split): the same weights, no extra training. ``--streams``
runs that many cells side by side, ``--threads`` PyTorch threads each (default 1).
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
THREADS = [1]  # --threads: PyTorch intra-op threads per run (another count changes the arithmetic)


PILOT_SEEDS = 3  # the 8-clip cells of these seeds run first: the pilot's criteria are read on them


def cells(seeds: int) -> list[tuple[str, list[str]]]:
    """(folder name, overrides) of every training run: first BN and GN at 8 clips for the first
    ``PILOT_SEEDS`` seeds (the chosen setting's 3-seed round, checked against the pilot's criteria:
    ``bench/small_batch_pilot.py --grid``), then seed by seed: 2 and 4 clips, the clip-length trade."""
    def cell(norm: str, seed: int, batch: int, frames: int = 8) -> tuple[str, list[str]]:
        clip = "8x2" if frames == 8 else "16x1"
        overrides = [f"norm={norm}", f"data.batch_size_per_device={batch}", f"seed={seed}"]
        if frames != 8:  # the clip-length trade: twice the frames at half the clips (same activations)
            overrides += ["data.frames_per_clip=16", "data.frame_stride=1"]
        return f"{norm}_{clip}_b{batch}_s{seed}", overrides

    first = [cell(norm, seed, 8) for seed in range(min(seeds, PILOT_SEEDS)) for norm in ("bn", "gn")]
    rest = []
    for seed in range(seeds):
        for batch in (8, 2, 4):
            rest += [cell(norm, seed, batch) for norm in ("bn", "gn")]
        rest += [cell(norm, seed, 4, frames=16) for norm in ("bn", "gn")]
    return first + [c for c in rest if c not in first]


def design_problems(queue: list[tuple[str, list[str]]], experiment: str = "small_batch_grid") -> list[str]:
    """The paper's rules on every cell's composed config: the same epochs and schedule, the LR left
    to the linear scaling rule (optim.lr unset) from one base LR, so the peak LR is proportional to
    the global batch. Empty: the grid is sound."""
    from hydra import compose, initialize_config_dir

    sys.path.insert(0, str(REPO))
    from video_gn.config import CONF_DIR
    from video_gn.training.optim import scaled_lr

    seen = {}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for name, overrides in queue:
            cfg = compose(config_name="config", overrides=[f"experiment={experiment}", *overrides, *EXTRA])
            o = cfg.optim
            seen[name] = {"epochs": cfg.trainer.max_epochs, "schedule": (o.schedule, o.warmup_epochs),
                          "lr_set": o.lr, "lr_per_clip": scaled_lr(o.base_lr, 1, o.base_batch)}
    problems = [f"{name}: optim.lr={v['lr_set']} is set, so the LR does not follow the batch"
                for name, v in seen.items() if v["lr_set"] is not None]
    for key, what in (("epochs", "trainer.max_epochs"), ("schedule", "optim.schedule/warmup_epochs"),
                      ("lr_per_clip", "optim.base_lr/base_batch")):
        values = {name: v[key] for name, v in seen.items()}
        if len(set(values.values())) > 1:
            problems.append(f"cells differ in {what}: " + ", ".join(f"{n}={v}" for n, v in values.items()))
    return problems


def finished_design_problems(runs: list[dict]) -> list[str]:
    """The same rules on finished runs' results.json (their recorded epochs and peak LR)."""
    trained = [r for r in runs if r.get("max_epochs") is not None]
    problems = []
    epochs = {r["max_epochs"] for r in trained}
    if len(epochs) > 1:
        problems.append(f"runs trained for different epochs: {sorted(epochs)}")
    ratios = {round(r["peak_lr"] / r["global_batch"], 12) for r in trained if r.get("peak_lr") is not None}
    if len(ratios) > 1:
        problems.append(f"peak LR is not proportional to the global batch (LR per clip: {sorted(ratios)})")
    return problems


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
    changed = sorted(_differences(with_gn_groups(started), with_gn_groups(current)))
    if changed:
        raise SystemExit(f"error: {out} was started with another design ({'; '.join(changed[:5])}); "
                         "use a new --out, or restore that design's config")


def with_gn_groups(design: dict) -> dict:
    """``design`` with GN's G as the number the network uses: designs written before
    ``norm.num_groups: null`` kept it as ``model.gn_groups`` (``norm.num_groups: ${model.gn_groups}``),
    later ones leave it to the model (``null``); either way the same G is the same design."""
    from video_gn.models import model_gn_groups

    design = {k: dict(v) if isinstance(v, dict) else v for k, v in design.items()}
    model, norm = dict(design["model"]), dict(design["norm"])
    groups = model.pop("gn_groups", None)
    if norm.get("kind") == "gn" and norm.get("group_size") is None:
        if norm.get("num_groups") == "${model.gn_groups}":
            norm["num_groups"] = groups
        elif norm.get("num_groups") is None:
            norm["num_groups"] = model_gn_groups(model, design["data"]["num_classes"])
    design["model"], design["norm"] = model, norm
    return design


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
    if precise_bn and ok and "norm=bn" in overrides and "_photometric" not in name:  # (4th design)
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
    threads = str(THREADS[0])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    with (folder / "run.log").open("a") as f:
        result = subprocess.run([sys.executable, str(REPO / "run.py"), *overrides, *EXTRA,
                                 f"hydra.run.dir={folder}"], stdout=f, stderr=subprocess.STDOUT, env=env)
    log(f"{'done' if result.returncode == 0 else f'FAILED (exit {result.returncode})'} {folder.name} "
        f"in {time.time() - started:.0f} s")
    return result.returncode == 0


def rerun_noise(grid: Path, rerun: Path) -> str:
    """The repeated cell against the grid's: per seed the final-5 median val and the test top-1 (of
    the best-by-val checkpoint and of the final weights) of both runs and their difference (what a
    numerical perturbation alone moves), as a Markdown table; its precise-BN re-evaluations likewise
    (test only: they do not validate)."""
    import json
    import re
    import statistics
    from collections import defaultdict

    keys = ("final5_median_val_top1", "test_top1", "final_test_top1")
    lines = ["| cell | seed | final-5 median val: grid / rerun / diff | test top-1 (best checkpoint): grid / "
             "rerun / diff | test top-1 (final weights): grid / rerun / diff |", "|---|---|---|---|---|"]
    diffs = defaultdict(list)  # (cell, key) -> rerun - grid, points
    for again in sorted(rerun.glob("*/results.json")):
        first = grid / again.parent.name / "results.json"
        if not first.is_file():
            continue
        a, b = json.loads(first.read_text()), json.loads(again.read_text())
        cell, seed, precise = re.fullmatch(r"(.*)_s(\d+)(_precise)?", again.parent.name).groups()
        cell += precise or ""
        texts = []
        for key in keys:
            if a.get(key) is None or b.get(key) is None:
                texts.append("–")
                continue
            diffs[cell, key].append(100 * (b[key] - a[key]))
            texts.append(f"{100 * a[key]:.1f} / {100 * b[key]:.1f} / {diffs[cell, key][-1]:+.1f}")
        lines.append(f"| {cell} | {seed} | {' | '.join(texts)} |")
    for (cell, key), d in diffs.items():
        if len(d) > 1:
            lines.append(f"\n{cell}, {key}: n = {len(d)}, mean |diff| {statistics.mean(map(abs, d)):.2f} "
                         f"points, sd of the differences {statistics.stdev(d):.2f}, largest "
                         f"{max(map(abs, d)):.1f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("logs/small_batch_grid"))
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a run.py override added to every run (repeatable)")
    p.add_argument("--only", default=None, metavar="CELL",
                   help="only the runs of this cell (e.g. bn_8x2_b8: every seed), for a repeated cell")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per run")
    p.add_argument("--rerun-noise", type=Path, default=None, metavar="RERUN_DIR",
                   help="print the repeated cell's runs (in RERUN_DIR) against --out's, seed by seed")
    a = p.parse_args(argv)
    if a.rerun_noise:
        print(rerun_noise(a.out, a.rerun_noise))
        return
    EXTRA[:], THREADS[0] = a.override, a.threads
    queue = cells(a.seeds)
    if a.only:
        queue = [c for c in queue if c[0].rsplit("_s", 1)[0] == a.only]
        if not queue:
            p.error(f"--only {a.only}: no such cell (e.g. bn_8x2_b8, gn_16x1_b4)")
    run_grid(a.out, queue, a.streams)


def run_grid(out: Path, queue: list[tuple[str, list[str]]], streams: int, precise_bn: bool = True,
             experiment: str = "small_batch_grid",
             datasets: tuple[str, ...] = ("synthetic_bench_large",), paper_rules: bool = True) -> None:
    """Every (folder name, overrides) of ``queue`` into ``out`` (done ones skipped), ``streams`` at a
    time, after the design check of ``experiment`` (and ``design_problems`` unless ``paper_rules`` is
    off: the pilot varies the base LR on purpose); ``datasets`` are generated first (once).
    bench/multigrid_grid.py and bench/small_batch_pilot.py run their own cells through this too."""
    shown, out = out, out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    check_design(out, experiment)
    problems = design_problems(queue, experiment) if paper_rules else []
    if problems:
        raise SystemExit("error: the grid breaks the paper's rules:\n  " + "\n  ".join(problems))
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
