"""The README's commands as a user types them: a subprocess in a fresh working directory, with only
overrides that shrink the work (sizes, epochs, ``trainer.limit_*_batches``) added."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, top1_of_checkpoint, top1_of_module

# Every test here runs a README command in a subprocess: the end-to-end tier.
pytestmark = pytest.mark.heavy

# TINY without the keys the commands below set themselves.
SHRINK = [o for o in TINY if not o.startswith(("data.generate", "data.batch_size_per_device"))]
ONE_BATCH = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=1"]


@pytest.fixture
def user_dir(tmp_path, tiny_data):
    """A fresh working directory whose data cache already holds the (tiny) generated dataset."""
    shutil.copytree(tiny_data, tmp_path / "data" / "synthetic")
    return tmp_path


def user_env() -> dict:
    """The environment as a user has it: none of this project's variables."""
    return {k: v for k, v in os.environ.items() if k not in ("PROJECT_ROOT", "VIDEO_GN_DATA")}


def run_py(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, env=user_env(),
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"run.py {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def results_under(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("results.json"))]


def test_readme_grid_then_report(user_dir):
    """README: the grid on the generated data as one multirun, then the report on its folder."""
    run_py(user_dir, "-m", "experiment=synthetic_grid", "norm=bn,gn", "data.batch_size_per_device=8,4,2",
           "seed=0,1,2", *SHRINK, *ONE_BATCH)
    (sweep,) = (user_dir / "logs" / "multiruns").iterdir()
    runs = results_under(sweep)
    assert sorted((r["norm"], r["batch_size_per_device"], r["seed"]) for r in runs) == sorted(
        (n, b, s) for n in ("bn", "gn") for b in (8, 4, 2) for s in (0, 1, 2))
    report = subprocess.run([sys.executable, "-m", "video_gn.report", str(sweep.relative_to(user_dir))],
                            cwd=user_dir, env=user_env(), capture_output=True, text=True, check=True).stdout
    assert ("| norm | 4×2 frames / 8 clips per device | 4×2 frames / 4 clips per device "
            "| 4×2 frames / 2 clips per device |") in report
    rows = [line for line in report.splitlines() if line.startswith(("| BN |", "| GN |"))]
    assert len(rows) == 2 and all(line.count("(n=3)") == 3 for line in rows)
    assert "- BN (4×2 frames): top-1" in report and "std over 3 paired seeds" in report
    assert (sweep / "report" / "accuracy_vs_batch.png").stat().st_size > 5000


def test_debug_fast_writes_nothing(user_dir):
    proc = run_py(user_dir, "debug=fast", *SHRINK, "data.batch_size_per_device=2")  # the tiny data has 12 videos
    assert "nothing written" in proc.stdout
    assert not list((user_dir / "logs" / "runs").iterdir())


def test_config_error_is_clear_and_leaves_no_run_folder(user_dir):
    """A Kinetics cell without a decided init stops at once, names the keys, and leaves nothing."""
    proc = run_py(user_dir, "experiment=k400_i3d_r50_gn_32x2_b4", f"data.root={user_dir}", check=False)
    assert proc.returncode != 0
    assert "model.init is not set: give model.pretrained_2d=PATH" in proc.stderr
    assert not list((user_dir / "logs" / "runs").iterdir())


def test_evaluate_a_finished_run_tests_exactly_that_checkpoint(user_dir):
    """README: `python run.py train=false ckpt_path=...` runs the multi-view test of that checkpoint."""
    run_py(user_dir, *SHRINK, "data.batch_size_per_device=2", "trainer.max_epochs=2")
    (run_dir,) = (user_dir / "logs" / "runs").iterdir()
    last = run_dir / "checkpoints" / "last.ckpt"
    run_py(user_dir, "train=false", f"ckpt_path={last.relative_to(user_dir)}", *SHRINK)
    evaluation = [r for r in results_under(user_dir / "logs" / "runs") if r["init"]["kind"] == "checkpoint"]
    (result,) = evaluation
    assert result["test_checkpoint"] == "given" and result["init"]["file"] == "last.ckpt"
    assert result["test_videos"] == 6 and result["global_step"] == 0 and result["val_history"] == []
    # Independently: the last checkpoint's weights, every test video, softmax averaged over 2x2 views.
    expected = top1_of_checkpoint(last, user_dir / "data" / "synthetic", "test")
    assert result["test_top1"] == pytest.approx(expected)


def test_precise_bn_reevaluation_as_typed_then_the_report(user_dir):
    """README: a BN run, its best checkpoint re-evaluated with precise BN, then the report: both rows."""
    run_py(user_dir, "norm=bn", *SHRINK, "data.batch_size_per_device=2", "trainer.max_epochs=2")
    (run_dir,) = (user_dir / "logs" / "runs").iterdir()
    (best,) = (run_dir / "checkpoints").glob("epoch*.ckpt")
    run_py(user_dir, "train=false", f"ckpt_path={best.relative_to(user_dir)}", "norm=bn",
           "norm.precise_bn_batches=50", *SHRINK, "data.batch_size_per_device=2")
    (evaluated,) = [r for r in results_under(user_dir / "logs" / "runs") if r["init"]["kind"] == "checkpoint"]
    assert evaluated["precise_bn_batches"] == 50 and evaluated["init"]["role"] == "best"
    report = subprocess.run([sys.executable, "-m", "video_gn.report", "logs/runs"], cwd=user_dir, env=user_env(),
                            capture_output=True, text=True, check=True).stdout
    table = report.split("Cells:")[0]
    assert "| BN |" in table and "| BN+PRECISE |" in table and report.count("### ") == 1


# The Kinetics cells on CPU: ranks as processes instead of GPUs, and clips small enough for the real
# I3D-R50 (8 frames of 24 px still pass every stride of the network).
ON_CPU = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]
I3D_SHRINK = [o for o in SHRINK if not o.startswith(("data.frames_per_clip", "data.frame_stride",
                                                     "model.width"))] + [
    "data.frames_per_clip=8", "data.frame_stride=1"]  # the tiny videos have 12 frames


def test_readme_kinetics_grid_with_ddp_runs_each_job_once(user_dir):
    """README: the Table 8 grid, `trainer=ddp` (the experiment's), from scratch. Lightning starts the
    second rank by re-running the command line: it must run this job, not the whole sweep again."""
    root = user_dir / "data" / "synthetic"  # a prepared dataset in the manifest format
    run_py(user_dir, "-m", "experiment=k400_i3d_r50", "norm=bn,gn", "data.batch_size_per_device=2",
           f"data.root={root}", "model.init=scratch", *ON_CPU, *I3D_SHRINK, *ONE_BATCH[:3])
    sweeps = list((user_dir / "logs" / "multiruns").iterdir())
    assert len(sweeps) == 1 and not (user_dir / "logs" / "runs").exists()  # no rank ran a sweep of its own
    runs = results_under(sweeps[0])
    assert sorted(r["norm"] for r in runs) == ["bn", "gn"] and {r["devices"] for r in runs} == {2}
    for r in runs:
        assert r["init"] == {"kind": "scratch"} and r["arch"] == "i3d"
        # Kinetics tests on val, the split that picks the best checkpoint: so the last one is tested.
        assert (r["test_split"], r["test_checkpoint"]) == ("val", "last")
        assert r["test_views"] == "2x2" and r["test_videos"] == 6  # every val video, once


def test_readme_evaluates_the_released_nonlocal_model(user_dir):
    """README: `train=false experiment=k400_i3d_r50 norm=bn data.root=... model.pretrained_3d=...pkl`,
    a pickle in the Non-local release's layout (400 classes), on a dataset in the manifest format."""
    from test_caffe2_import import nonlocal_i3d_blobs, write_pickle

    from video_gn.training.lit_module import VideoClassifier

    root = user_dir / "k400"
    shutil.copytree(user_dir / "data" / "synthetic", root)
    (root / "classes.txt").write_text("".join(f"class {k:03d}\n" for k in range(400)))
    pkl = write_pickle(user_dir / "i3d_baseline_32x2_IN_pretrain_400k.pkl", nonlocal_i3d_blobs())
    shrink = [o for o in I3D_SHRINK if not o.startswith("data.num_classes")]
    run_py(user_dir, "train=false", "experiment=k400_i3d_r50", "norm=bn", f"data.root={root}",
           f"model.pretrained_3d={pkl}", *ON_CPU, *shrink)
    (result,) = results_under(user_dir / "logs" / "runs")
    assert result["init"]["kind"] == "pretrained_3d" and result["init"]["file"] == pkl.name
    assert (result["test_checkpoint"], result["test_split"], result["test_videos"]) == ("given", "val", 6)
    module = VideoClassifier(model={"arch": "i3d", "depth": 50, "pretrained_3d": str(pkl)},
                             norm={"kind": "bn"}, optim={}, num_classes=400, batch_size_per_device=2)
    assert result["test_top1"] == pytest.approx(top1_of_module(module, root, "val", frames_per_clip=8))


def test_readme_evaluates_a_pytorchvideo_zoo_model(user_dir):
    """README: `train=false experiment=k400_i3d_r50 model=i3d_r50_8x8 norm=bn model.pretrained_3d=...pyth`,
    a file in pytorchvideo's zoo layout (400 classes), on a dataset in the manifest format."""
    from test_zoo_import import zoo_file

    from video_gn.training.lit_module import VideoClassifier

    root = user_dir / "k400"
    shutil.copytree(user_dir / "data" / "synthetic", root)
    (root / "classes.txt").write_text("".join(f"class {k:03d}\n" for k in range(400)))
    pyth = zoo_file(user_dir, "i3d_8x8")
    shrink = [o for o in I3D_SHRINK if not o.startswith("data.num_classes")]
    run_py(user_dir, "train=false", "experiment=k400_i3d_r50", "model=i3d_r50_8x8", "norm=bn",
           f"data.root={root}", f"model.pretrained_3d={pyth}", *ON_CPU, *shrink)
    (result,) = results_under(user_dir / "logs" / "runs")
    assert result["init"]["kind"] == "pretrained_3d" and result["init"]["file"] == pyth.name
    assert result["arch"] == "i3d_8x8" and result["test_videos"] == 6
    module = VideoClassifier(model={"arch": "i3d_8x8", "depth": 50, "pretrained_3d": str(pyth)},
                             norm={"kind": "bn"}, optim={}, num_classes=400, batch_size_per_device=2)
    assert result["test_top1"] == pytest.approx(top1_of_module(module, root, "val", frames_per_clip=8))


def test_readme_fine_tunes_with_gn_from_a_zoo_model(user_dir):
    """README: `experiment=k400_i3d_r50 model=c2d_r50_8x8 norm=gn ... model.pretrained_3d=C2D_8x8_R50.pyth`
    (fine-tune from it): the file's convolutions are the start, its BN layers are not loaded into GN."""
    from test_zoo_import import reference_model, zoo_file

    root = user_dir / "k400"
    shutil.copytree(user_dir / "data" / "synthetic", root)
    (root / "classes.txt").write_text("".join(f"class {k:03d}\n" for k in range(400)))
    reference = reference_model("c2d_8x8").state_dict()
    pyth = zoo_file(user_dir, "c2d_8x8", reference)
    shrink = [o for o in I3D_SHRINK if not o.startswith("data.num_classes")]
    proc = run_py(user_dir, "experiment=k400_i3d_r50", "model=c2d_r50_8x8", "norm=gn", f"data.root={root}",
                  "data.frames_per_clip=8", "data.frame_stride=8", f"model.pretrained_3d={pyth}", *ON_CPU,
                  *shrink, *ONE_BATCH, "data.batch_size_per_device=2", "optim.base_lr=1e-9")
    assert "BatchNorm layers are not loaded" in proc.stdout + proc.stderr
    (result,) = results_under(user_dir / "logs" / "runs")
    assert result["init"]["kind"] == "pretrained_3d" and result["norm"] == "gn" and result["arch"] == "c2d_8x8"
    # with a ~0 LR the trained weights are the start: the file's stem convolution, GN's own γ = 1
    # (the file's BN γ were drawn from 0.5-1.5)
    (ckpt,) = (user_dir / "logs" / "runs").rglob("last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    stem = next(v for k, v in state.items() if k.endswith("stem.conv.weight"))
    assert torch.allclose(stem, reference["blocks.0.conv.weight"], rtol=0, atol=1e-6)
    gn_weights = [v for k, v in state.items() if "stem.norm" in k and k.endswith("weight")]
    assert gn_weights and all(torch.allclose(w, torch.ones_like(w), rtol=0, atol=1e-6) for w in gn_weights)


def test_small_batch_grid_refuses_a_folder_of_another_design(tmp_path):
    """The grid stamps its folder with the design it started with; cells of two designs (another
    epoch count, say) must never be skipped as done and land in one table."""
    grid = tmp_path / "logs" / "small_batch_grid"
    command = [sys.executable, str(REPO / "bench" / "small_batch_grid.py"), "--out", str(grid), "--seeds", "0"]
    subprocess.run(command, cwd=tmp_path, env=user_env(), check=True, capture_output=True, timeout=600)
    assert "max_epochs" in (grid / "design.yaml").read_text()
    other = subprocess.run([*command, "--override=trainer.max_epochs=7"], cwd=tmp_path, env=user_env(),
                           capture_output=True, text=True, timeout=600)
    assert other.returncode != 0 and "another design (trainer.max_epochs:" in other.stderr
    assert "-> 7" in other.stderr


@pytest.mark.slow
def test_small_batch_grid_as_typed_two_seeds_then_the_report(tmp_path):
    """The README's grid command from a fresh folder, shrunk (1 epoch, fewer clips, 2 seeds), then its
    report: every cell has n = 2, BN+precise beside BN, and the runs pass the design checks."""
    shrink = ["data.generate.clips_per_class={train:4,val:2,test:2}", "data.generate.frames=16",
              "trainer.max_epochs=1", "data.num_test_clips=2", "data.num_test_crops=1"]
    subprocess.run([sys.executable, str(REPO / "bench" / "small_batch_grid.py"), "--out", "logs/small_batch_grid",
                    "--seeds", "2", *[f"--override={o}" for o in shrink]], cwd=tmp_path, env=user_env(),
                   check=True, capture_output=True, text=True, timeout=3000)
    results = list((tmp_path / "logs" / "small_batch_grid").glob("*/results.json"))
    assert len(results) == 2 * (8 + 4)  # 3 batch sizes + the 16x1 cell per norm, 4 BN re-evaluations
    sys.path.insert(0, str(REPO / "bench"))
    import small_batch_grid

    runs = [json.loads(f.read_text()) for f in results]
    assert small_batch_grid.finished_design_problems(runs) == []
    assert {r["peak_lr"] / r["global_batch"] for r in runs if r["peak_lr"]} == {0.2 / 64}
    report = subprocess.run([sys.executable, "-m", "video_gn.report", "logs/small_batch_grid"], cwd=tmp_path,
                            env=user_env(), capture_output=True, text=True, check=True).stdout
    assert "### synthetic_bench_large, small, init scratch, 1 device(s), 1 epochs" in report
    table = report.split("Cells:")[0]
    rows = {line.split(" |")[0]: line for line in table.splitlines() if line.startswith(("| BN", "| GN"))}
    assert set(rows) == {"| BN", "| BN+PRECISE", "| GN"}
    assert rows["| BN"].count("(n=2)") == rows["| GN"].count("(n=2)") == 4  # 3 batch sizes + 16x1
    assert rows["| BN+PRECISE"].count("(n=2)") == 4
    assert "BN − GN at 8×2 frames / 2 clips per device" in report and "paired seeds" in report
@pytest.mark.parametrize("args,message", [
    (["data.batch_size=8"], "error: data.batch_size is not a key of data: did you mean data.batch_size_per_device"),
    (["-m", "norm=bn,gn", "optim.weight_decy=0"],
     "error: optim.weight_decy is not a key of optim: did you mean optim.weight_decay"),
    (["seeed=1"], "error: seeed is not a key of the top level: did you mean seed?"),
    (["trainer.accumulate_grad_batches=2"], "error: trainer.accumulate_grad_batches is a lightning.Trainer argument "
                                            "that conf/trainer does not list: add it with a +, as "
                                            "+trainer.accumulate_grad_batches=2"),
    (["model=i3d_r49"], "error: model=i3d_r49 is not an option of model: did you mean model=i3d_r50? the options "
                        "are c2d_r50, c2d_r50_8x8, i3d_r101, i3d_r50, i3d_r50_8x8, slow_r50_8x8, small"),
    (["model=i3d_r50", "model.depth=49"], "error: model: model.depth=49 is not a depth of model.arch=i3d: one of 50, 101"),
])
def test_a_mistyped_command_line_gets_the_fix_not_a_traceback(tmp_path, args, message):
    proc = run_py(tmp_path, *args, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-2000:]


def test_readme_wandb_logger_offline_gets_config_and_results(user_dir):
    """README: `python run.py logger=wandb` (offline by default: no network, no account)."""
    run_py(user_dir, "logger=wandb", *SHRINK, *ONE_BATCH, "data.batch_size_per_device=2")
    (run_dir,) = (user_dir / "logs" / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    # The offline run's log (protobuf records, what `wandb sync` uploads) holds the config and summary.
    (log,) = offline.glob("run-*.wandb")
    records = log.read_bytes()
    for key in (b"cfg/data/batch_size_per_device", b"cfg/norm/kind", b"results/test_top1"):
        assert key in records, key
    assert json.dumps(results["test_top1"]).encode() in records
    assert json.loads((offline / "files" / "results.json").read_text()) == results


def test_readme_mlflow_logger_writes_a_local_store(user_dir):
    """README: `python run.py logger=mlflow` -> ./mlruns where the run started."""
    import mlflow

    run_py(user_dir, "logger=mlflow", *SHRINK, *ONE_BATCH, "data.batch_size_per_device=2")
    (run_dir,) = (user_dir / "logs" / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = mlflow.tracking.MlflowClient(tracking_uri=f"file:{user_dir / 'mlruns'}")
    (run,) = client.search_runs([client.get_experiment_by_name("video_gn").experiment_id])
    assert run.data.params["cfg/data/batch_size_per_device"] == "2"
    assert run.data.metrics["results/test_top1"] == pytest.approx(results["test_top1"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "results.json" in artifacts


def test_a_logger_without_its_package_is_explained():
    """Lightning's own words when `logger=wandb` runs without wandb installed, as Hydra wraps them."""
    from hydra.errors import InstantiationException

    from video_gn.config.overrides import explain

    error = InstantiationException(
        "Error in call to target 'lightning.pytorch.loggers.wandb.WandbLogger':\nModuleNotFoundError(\""
        "Requirement 'wandb>=0.12.10' not met. HINT: Try running `pip install -U 'wandb>=0.12.10'`\")\n"
        "full_key: logger.wandb")
    assert explain(error, ["logger=wandb"]).startswith(
        "lightning.pytorch.loggers.wandb.WandbLogger needs a package that is not installed")
    assert explain(error, ["logger=wandb"]).endswith("pip install -e '.[loggers]'")


def test_readme_default_run_then_predict_and_report_as_typed(user_dir):
    """README set-up: `python run.py`, its last line, then `python -m video_gn.predict
    logs/runs/<time>/checkpoints/last.ckpt data/synthetic/test/<clip> --topk 3` and
    `python -m video_gn.report logs/runs/<time>`, all from the folder the run started in."""
    proc = run_py(user_dir, *SHRINK, "data.batch_size_per_device=2", "trainer.max_epochs=1")
    (run_dir,) = (user_dir / "logs" / "runs").iterdir()
    last_line = proc.stdout.strip().splitlines()[-1]
    assert last_line.startswith("Test top-1 ") and "%, top-5 " in last_line and "mean class top-1" in last_line
    run = run_dir.relative_to(user_dir)
    clip = sorted((user_dir / "data" / "synthetic" / "test").iterdir())[0].relative_to(user_dir)
    predicted = subprocess.run([sys.executable, "-m", "video_gn.predict", f"{run}/checkpoints/last.ckpt",
                                str(clip), "--topk", "3"], cwd=user_dir, env=user_env(), capture_output=True,
                               text=True)
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0] == str(clip) and [line.split(".")[0].strip() for line in lines[1:]] == ["1", "2", "3"]
    report = subprocess.run([sys.executable, "-m", "video_gn.report", str(run)], cwd=user_dir, env=user_env(),
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert (run_dir / "report" / "confusion_matrix.png").is_file()
    assert (run_dir / "report" / "per_class_top1.png").is_file()


def test_readme_multigrid_long_short_as_typed(user_dir):
    """README: `python run.py multigrid=long_short` (1 clip per device: the tiny dataset's 24 training
    videos hold the schedule's largest batch, 16 x the base)."""
    run_py(user_dir, *SHRINK, "multigrid=long_short", "data.batch_size_per_device=1", "trainer.max_epochs=2",
           "trainer.limit_val_batches=1", "trainer.limit_test_batches=1")
    (result,) = results_under(user_dir / "logs" / "runs")
    assert result["multigrid"]["kind"] == "long_short" and result["epochs"] == result["max_epochs"] == 3
    phases = result["multigrid"]["phases"]
    assert [(p["start_epoch"], p["end_epoch"]) for p in phases] == [(0, 1), (1, 2), (2, 3)]
    assert max(it["clips"] for p in phases for it in p["iterations"]) == 8  # 4 x 2: long and short cycle


@pytest.mark.parametrize("command", [
    ["run.py", "train=false", "model=i3d_r50", "model.pretrained_3d={pkl}"],
    ["run.py", "model=i3d_r50", "model.pretrained_2d={pkl}", "model.init=null"],
    ["predict", "{pkl}", "{video}", "--classes", "{classes}"],
    ["predict", "{pth}", "{video}"],  # the same pickle named like a torch checkpoint (weights_only)
], ids=["pretrained_3d", "pretrained_2d", "predict_pkl", "predict_pth"])
def test_a_weights_pickle_that_would_run_code_is_refused_and_runs_nothing(user_dir, command):
    """The issue's file: a dict whose ``conv1_w`` unpickles to ``os.system("touch <marker>")``. Every
    way a user hands us a weights file refuses it in one line, exit 2, and the marker never appears."""
    from test_caffe2_import import evil_pickle

    marker = user_dir / "code_ran"
    pkl = evil_pickle(user_dir / "evil.pkl", marker)
    pth = user_dir / "evil.pth"
    shutil.copy(pkl, pth)
    video = next((user_dir / "data" / "synthetic" / "test").glob("*.mp4"))
    classes = user_dir / "data" / "synthetic" / "classes.txt"
    args = [a.format(pkl=pkl, pth=pth, video=video, classes=classes) for a in command[1:]]
    if command[0] == "run.py":  # data.num_classes: the fixture's data cache holds the 3-class tiny set
        proc = run_py(user_dir, *args, "data.num_classes=3", check=False)
    else:
        proc = subprocess.run([sys.executable, "-m", "video_gn.predict", *args], cwd=user_dir, env=user_env(),
                              capture_output=True, text=True, timeout=600)
    assert not marker.exists(), "the pickle's code ran"
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert "evil.p" in line and ("system" in line or "posix" in line), line
    if command[0] == "run.py":
        key = "model.pretrained_3d" if "pretrained_3d" in args[-1] or "pretrained_3d" in " ".join(args) else \
            "model.pretrained_2d"
        assert line.startswith(f"error: {key}={pkl}: ") and "refused to load" in line


def test_small_batch_pilot_summary_as_typed_applies_the_written_criteria(tmp_path):
    """`python bench/small_batch_pilot.py --summary --out logs/small_batch_pilot` on fabricated runs whose
    verdicts are known by hand: width 16 / LR 0.2 meets every criterion; LR 0.4's BN is above the band;
    width 8's GN seeds have sd 3.5 (> 2)."""
    pilot = tmp_path / "logs" / "small_batch_pilot"

    def fake(name, val, train, test):
        (pilot / name).mkdir(parents=True)
        history = [{"epoch": e, "top1": val / 100, "train_top1": train / 100} for e in range(20)]
        (pilot / name / "results.json").write_text(json.dumps(
            {"val_history": history, "final_test_top1": test / 100, "wall_time_s": 100.0}))

    for seed, (bn, gn, gn8) in enumerate([(75.0, 74.0, 70.0), (76.0, 75.0, 74.0), (77.0, 76.0, 77.0)]):
        fake(f"bn_w16_lr0.2_s{seed}", bn, bn + 3, bn)
        fake(f"gn_w16_lr0.2_s{seed}", gn, gn + 2, gn)
        fake(f"bn_w16_lr0.4_s{seed}", 90.0 + seed, 91.0 + seed, 90.0)
        fake(f"gn_w16_lr0.4_s{seed}", 88.0, 88.0, 88.0)
        fake(f"bn_w8_lr0.2_s{seed}", bn, bn, bn)
        fake(f"gn_w8_lr0.2_s{seed}", gn8, gn8, gn8)
    out = subprocess.run([sys.executable, str(REPO / "bench" / "small_batch_pilot.py"), "--summary", "--out",
                          "logs/small_batch_pilot"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    rows = {tuple(line.split(" | ")[:3]): line for line in out.splitlines()[2:]}
    assert rows[("| 16", "0.2", "BN")].endswith("| 76.0 ± 1.0 | +3.0 | 75.0, 76.0, 77.0 | 100 | accepted |")
    assert rows[("| 16", "0.4", "BN")].endswith("| rejected: BN 91.0% outside 65-85 |")
    assert rows[("| 8", "0.2", "BN")].endswith("| rejected: GN sd 3.5 > 2 |")  # sd of 70, 74, 77


def test_small_batch_pilot_summary_on_the_grid_as_typed(tmp_path):
    """`--summary --grid --out logs/small_batch_grid`: the criteria on the grid's 8-clip 8x2 cells only
    (width and LR from its design.yaml); other cells and precise-BN re-evaluations are not read."""
    grid = tmp_path / "logs" / "small_batch_grid"
    grid.mkdir(parents=True)
    (grid / "design.yaml").write_text("model:\n  width: 8\noptim:\n  base_lr: 0.2\n")

    def fake(name, val, train, test):
        (grid / name).mkdir()
        history = [{"epoch": e, "top1": val / 100, "train_top1": train / 100} for e in range(20)]
        (grid / name / "results.json").write_text(json.dumps(
            {"val_history": history, "final_test_top1": test / 100, "wall_time_s": 300.0}))

    for seed, (bn, gn) in enumerate([(98.0, 97.0), (98.5, 97.5), (99.0, 98.0)]):
        fake(f"bn_8x2_b8_s{seed}", bn, bn - 9, bn)
        fake(f"gn_8x2_b8_s{seed}", gn, gn - 10, gn - 4)
        fake(f"bn_8x2_b2_s{seed}", 50.0, 50.0, 50.0)  # another cell: not read
        fake(f"bn_8x2_b8_s{seed}_precise", 10.0, 10.0, 10.0)  # a re-evaluation: not read
    out = subprocess.run([sys.executable, str(REPO / "bench" / "small_batch_pilot.py"), "--summary", "--grid",
                          "--out", "logs/small_batch_grid"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    rows = {tuple(line.split(" | ")[:4]): line for line in out.splitlines()[2:]}
    assert set(rows) == {("| 8", "0.2", "BN", "3"), ("| 8", "0.2", "GN", "3")}
    assert rows[("| 8", "0.2", "BN", "3")].endswith("| 98.5 ± 0.5 | -9.0 | 98.0, 98.5, 99.0 | 300 | "
                                                   "rejected: BN 98.5% outside 65-85 |")
    assert rows[("| 8", "0.2", "GN", "3")].endswith("| 97.5 ± 0.5 | -10.0 | 93.0, 93.5, 94.0 | 300 |  |")


@pytest.mark.slow
def test_small_batch_pilot_as_typed_then_its_summary(tmp_path):
    """The README's pilot command from a fresh folder, shrunk (1 epoch, 4 train clips per class), with
    its --override of the data; then --summary: every setting has its 3 seeds and a verdict."""
    shrink = ["data.generate.clips_per_class={train:4,val:2,test:2}", "data.generate.frames=16",
              "trainer.max_epochs=1", "data.num_test_clips=2", "data.num_test_crops=1"]
    pilot = [sys.executable, str(REPO / "bench" / "small_batch_pilot.py"), "--out",
             "logs/small_batch_pilot"]
    subprocess.run([*pilot, "--override", "+data.generate.noise=0.3", *[f"--override={o}" for o in shrink]],
                   cwd=tmp_path, env=user_env(), check=True, capture_output=True, text=True, timeout=3000)
    runs = sorted((tmp_path / "logs" / "small_batch_pilot").glob("*/results.json"))
    assert len(runs) == 24
    out = subprocess.run([*pilot, "--summary"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    rows = [line for line in out.splitlines()[2:] if line.startswith("|")]
    assert len(rows) == 8 and all(" | 3 | " in row for row in rows)
    assert all(row.endswith(("accepted |", "|  |")) or "rejected: " in row for row in rows)
