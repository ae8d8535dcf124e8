"""After training: self-describing checkpoints, `python -m video_gn.predict`, predictions.csv,
per-class results and the run report's confusion matrix — each checked against an independent
computation (the test dataset's views through the module, counts from the rows themselves)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config

from video_gn.data.dataset import ClipSettings, VideoClipDataset
from video_gn.data.manifest import read_classes, read_manifest
from video_gn.train import train
from video_gn.training.lit_module import VideoClassifier


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A short real run (3 epochs on the tiny generated data, pyav decoder so that the reference
    below reads frames exactly as predict does)."""
    run = tmp_path_factory.mktemp("run")
    cfg = compose_config([*TINY, f"data.root={tiny_data}", "trainer.max_epochs=3", "data.decoder=pyav"],
                         output_dir=run)
    train(cfg)
    return run, tiny_data


def reference_probabilities(ckpt: Path, root: Path,
                            module: VideoClassifier | None = None) -> dict[str, np.ndarray]:
    """Independently: the test dataset's multi-view sample of each test video through the module
    (``module``, or the checkpoint's as Lightning loads it)."""
    module = (module or VideoClassifier.load_from_checkpoint(ckpt, map_location="cpu")).eval()
    settings = ClipSettings(frames_per_clip=4, frame_stride=2, crop_size=24, eval_short_side=32,
                            num_test_clips=2, num_test_crops=2, decoder="pyav")
    dataset = VideoClipDataset(root, "test", "test", settings)
    out = {}
    with torch.no_grad():
        for i, record in enumerate(dataset.records):
            views = module.on_after_batch_transfer({"video": dataset[i]["video"][None]}, 0)["video"]
            out[record.path] = module.predict_views(views)[0].numpy()
    return out


def predict_cli(cwd, *args):
    """As a user types it, from ``cwd``, in the user's environment."""
    env = {k: v for k, v in os.environ.items() if k != "PROJECT_ROOT"}
    return subprocess.run([sys.executable, "-m", "video_gn.predict", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.heavy
def test_checkpoint_alone_predicts_like_the_test(trained, tmp_path):
    run, data = trained
    # The checkpoint the run's test used (the best on val; the last one may differ)
    assert json.loads((run / "results.json").read_text())["test_checkpoint"] == "best"
    (tested,) = (run / "checkpoints").glob("epoch*.ckpt")
    expected = reference_probabilities(tested, data)
    saved = torch.load(tested, map_location="cpu", weights_only=False)["inference"]
    assert saved["classes"] == read_classes(data) and saved["frames_per_clip"] == 4
    assert (saved["num_test_clips"], saved["num_test_crops"], saved["eval_short_side"]) == (2, 2, 32)
    assert saved["norm"]["kind"] == "gn" and saved["model"]["arch"] == "small" and saved["video_gn_version"]

    # The checkpoint alone in an empty folder; the dataset (and its classes.txt) out of reach.
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(tested, alone / "model.ckpt")
    videos = tmp_path / "videos"
    shutil.copytree(data / "test", videos)
    proc = predict_cli(alone, "model.ckpt", *sorted(videos.iterdir()), "--json", "--topk", "3")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    classes = read_classes(data)
    labels = {Path(r.path).name: r.label for r in read_manifest(data, "test")}
    correct = 0
    for entry in out["predictions"]:
        name = Path(entry["video"]).name
        reference = expected[f"test/{name}"]
        probs = {e["index"]: e["probability"] for e in entry["top"]}
        assert np.allclose([probs[k] for k in range(3)], reference, atol=1e-5)
        assert entry["top"][0]["index"] == int(reference.argmax())
        assert entry["top"][0]["class"] == classes[int(reference.argmax())]  # named, from the checkpoint
        correct += entry["top"][0]["index"] == labels[name]
    results = json.loads((run / "results.json").read_text())
    assert correct / len(out["predictions"]) == pytest.approx(results["test_top1"])  # the run's own number


@pytest.mark.heavy
def test_predict_reads_every_real_container_and_names_a_bad_file(trained, testdata, tmp_path):
    run, _ = trained
    videos = sorted((testdata / "videos").iterdir())
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    proc = predict_cli(tmp_path, run / "checkpoints" / "last.ckpt", *videos, bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {bad}: cannot decode ([Errno 1094995529] Invalid data found when " \
                                  f"processing input: '{bad}')"
    for video in videos:  # mkv+opus, AVI with B-frames, VP9 webm without duration, rotated mov, HEVC, corrupt
        block = proc.stdout.split(f"{video}\n", 1)[1].split("\n")[:3]
        shares = [float(line.rsplit(None, 1)[1].rstrip("%")) for line in block]
        assert abs(sum(shares) - 100) < 0.1 and shares == sorted(shares, reverse=True)


@pytest.mark.heavy
def test_predict_a_nonlocal_release_pickle_with_its_label_map(testdata, tmp_path):
    from test_caffe2_import import nonlocal_i3d_blobs, write_pickle

    pkl = write_pickle(tmp_path / "i3d_baseline_32x2_IN_pretrain_400k.pkl", nonlocal_i3d_blobs())
    label_map = testdata / "annotations" / "deepmind_kinetics-i3d__label_map_400.txt"
    proc = predict_cli(tmp_path, pkl, testdata / "videos" / "mmaction2__demo_demo.mp4", "--classes", label_map,
                       "--views", "1x1", "--json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["predictions"]
    assert len(entry["top"]) == 5 and entry["top"][0]["class"] in label_map.read_text().splitlines()
    missing = predict_cli(tmp_path, pkl, testdata / "videos" / "mmaction2__demo_demo.mp4")
    assert missing.returncode == 2 and "give --classes FILE" in missing.stderr


@pytest.mark.heavy
def test_predict_a_pytorchvideo_zoo_model_with_its_label_map(testdata, tmp_path):
    """`python -m video_gn.predict I3D_8x8_R50.pyth clip.mp4 --classes label_map.txt`: the architecture
    is read from the weights; the release's 8x8 clip settings; its probabilities are pytorchvideo's."""
    from test_zoo_import import reference_model, zoo_file

    from video_gn.predict import load_classifier, predict_video

    pyth = zoo_file(tmp_path, "i3d_8x8")
    label_map = testdata / "annotations" / "deepmind_kinetics-i3d__label_map_400.txt"
    video = testdata / "videos" / "mmaction2__demo_demo.mp4"
    proc = predict_cli(tmp_path, pyth, video, "--classes", label_map, "--views", "1x1", "--json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["predictions"]
    classifier = load_classifier(pyth, label_map)
    assert (classifier.settings["frames_per_clip"], classifier.settings["frame_stride"]) == (8, 8)
    assert classifier.settings["model"]["arch"] == "i3d_8x8"
    # the same views through pytorchvideo's own network: the same top-5
    reference = reference_model("i3d_8x8")
    classifier.module.net = reference
    probs = predict_video(classifier, video, (1, 1))
    top = probs.topk(5)
    assert [e["index"] for e in entry["top"]] == top.indices.tolist()
    assert [e["probability"] for e in entry["top"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    missing = predict_cli(tmp_path, pyth, video)
    assert missing.returncode == 2 and "is a pytorchvideo checkpoint without class names" in missing.stderr


@pytest.mark.heavy
def test_predictions_csv_per_class_results_and_confusion_matrix(trained, tmp_path):
    run, data = trained
    results = json.loads((run / "results.json").read_text())
    with (run / results["predictions_file"]).open() as f:
        rows = list(csv.DictReader(f))
    manifest = read_manifest(data, "test")
    assert [r["path"] for r in rows] == [m.path for m in manifest]  # every test video, once, in order
    assert [int(r["label"]) for r in rows] == [m.label for m in manifest]
    assert not (run / "predictions").exists()  # the rank files were merged
    hits = [int(r["top1_index"]) == int(r["label"]) for r in rows]
    assert np.mean(hits) == pytest.approx(results["test_top1"])
    classes = read_classes(data)
    for k, name in enumerate(classes):
        mine = [h for h, r in zip(hits, rows, strict=True) if int(r["label"]) == k]
        assert results["per_class_top1"][name] == pytest.approx(np.mean(mine))
    assert results["mean_class_top1"] == pytest.approx(np.mean(list(results["per_class_top1"].values())))

    # README: `python -m video_gn.report logs/runs/<time>` -> <run>/report/
    proc = subprocess.run([sys.executable, "-m", "video_gn.report", str(run)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (run / "report" / "confusion_matrix.png").stat().st_size > 5000
    assert (run / "report" / "per_class_top1.png").stat().st_size > 5000
    with (run / "report" / "confused_pairs.csv").open() as f:
        pairs = {(p["true"], p["predicted"]): int(p["videos"]) for p in csv.DictReader(f)}
    counted = {}
    for r in rows:
        if r["top1_name"] != r["label_name"]:
            counted[(r["label_name"], r["top1_name"])] = counted.get((r["label_name"], r["top1_name"]), 0) + 1
    assert pairs == counted  # the matrix's off-diagonal counts are the predictions' mistakes


@pytest.mark.heavy
def test_a_checkpoint_trained_with_triton_gn_predicts_and_evaluates_on_a_cpu(tiny_data, tmp_path):
    """Trained with norm.impl=triton and channels_last_3d (the Triton interpreter stands in for the GPU):
    how the run computed GN is not part of the network, so predict and `train=false` on a CPU without
    Triton use PyTorch's GN on the same weights. On old main both failed ("norm.impl=triton needs a
    CUDA GPU")."""
    pytest.importorskip("triton")
    from conftest import REPO

    run = tmp_path / "run"
    overrides = [*TINY, f"data.root={tiny_data}", "data.decoder=pyav", "model.width=16", "norm.num_groups=8",
                 "trainer.max_epochs=1", "test_after_fit=false"]
    env = {k: v for k, v in os.environ.items() if k not in ("PROJECT_ROOT", "TRITON_INTERPRET")}
    proc = subprocess.run([sys.executable, str(REPO / "run.py"), *overrides, "norm.impl=triton",
                           "runtime.channels_last_3d=true", f"hydra.run.dir={run}"], cwd=tmp_path,
                          env={**env, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["hyper_parameters"]["norm"]["impl"] == "triton"  # recorded, not binding
    # The reference: the same weights in a network built with our PyTorch GN (the same math).
    hparams = saved["hyper_parameters"]
    module = VideoClassifier(**{**hparams, "norm": {**hparams["norm"], "impl": "lean"},
                                "model": {**hparams["model"], "channels_last_3d": False}})
    module.load_state_dict(saved["state_dict"])
    expected = reference_probabilities(ckpt, tiny_data, module)

    videos = sorted((tiny_data / "test").iterdir())
    proc = subprocess.run([sys.executable, "-m", "video_gn.predict", str(ckpt), *map(str, videos), "--json",
                           "--topk", "3"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for entry in json.loads(proc.stdout)["predictions"]:
        probs = {e["index"]: e["probability"] for e in entry["top"]}
        reference = expected[f"test/{Path(entry['video']).name}"]
        assert np.allclose([probs[k] for k in range(3)], reference, atol=1e-5)

    proc = subprocess.run([sys.executable, str(REPO / "run.py"), *overrides, "train=false",
                           f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    labels = {r.path: r.label for r in read_manifest(tiny_data, "test")}
    assert results["test_top1"] == pytest.approx(
        np.mean([expected[p].argmax() == label for p, label in labels.items()]))
