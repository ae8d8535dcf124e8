"""Your own videos -> a dataset (``python -m data_prep.folder``) -> training, as a user types it.

Every layout is built from the real files in ``../shared/testdata/videos`` (H.264, HEVC, AV1,
10-bit, MPEG-4 in AVI, rotated MOV, a corrupt MP4), copied into class folders under names a user
gives them (spaces, non-ASCII), with the clutter real folders have: a hidden file, a text file, an
empty "video", a clip shorter than one training clip. UCF101's and HMDB51's split files are written
here in their real formats.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import decord
import pytest

from video_gn.data.manifest import read_classes, read_manifest

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "testdata" / "videos"
SPLITS = ("train", "val", "test")

# Small, fast to encode sources of every kind: (file in testdata, decoded frames)
SMALL = {
    "unordered": ("decord__tests_test_data_unordered.mov", 4),
    "rot0": ("decord__tests_test_data_video_0.mov", 3),
    "rot90": ("decord__tests_test_data_video_90.mov", 3),
    "hevc": ("torchcodec__test_resources_h265_video.mp4", 10),
    "tenbit": ("torchcodec__test_resources_h264_10bits.mp4", 30),
    "bunny": ("moviepy__media_big_buck_bunny_432_433.webm", 24),
    "av1": ("torchcodec__test_resources_av1_video.mkv", 125),
}


def frames_of(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def prep(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "data_prep.folder", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def run_py(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"run.py {' '.join(args)}:\n{proc.stderr[-4000:]}")
    return proc


def copy(name: str, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(VIDEOS / SMALL[name][0], to)
    return to


@pytest.fixture
def class_folders(tmp_path, testdata) -> Path:
    """3 classes x 6 videos (a space and non-ASCII in names), plus clutter."""
    root = tmp_path / "my clips"
    plan = {"flip pancake": ["unordered", "rot0", "rot90", "hevc", "tenbit", "bunny"],
            "jump": ["hevc", "tenbit", "unordered", "rot0", "bunny", "av1"],
            "über": ["tenbit", "hevc", "rot90", "unordered", "bunny", "rot0"]}
    for cls, names in plan.items():
        for i, name in enumerate(names):
            copy(name, root / cls / f"clip {i} é{Path(SMALL[name][0]).suffix}")
    (root / "jump" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "jump" / "notes.txt").write_text("filmed on Tuesday\n")
    (root / "über" / "empty.mp4").write_bytes(b"")
    copy("rot0", root / "loose.mov")  # not in a class folder
    return root


def manifests(out: Path) -> dict[str, list]:
    return {s: read_manifest(out, s) for s in SPLITS}


@pytest.mark.heavy
def test_class_folders_become_a_dataset_that_trains(class_folders, tmp_path):
    """The README's commands as typed (prep, then train), from a fresh folder: every usable video in
    exactly one manifest row with its class and exact frame count; the split stratified by the
    written rule; clutter skipped and listed; the empty file reported; short clips kept and listed;
    a rerun does nothing; a rerun with another split rule is refused; training runs and tests."""
    user = tmp_path / "user"
    user.mkdir()
    done = prep("--videos", str(class_folders), "--out", "data/my_clips", cwd=user)
    out = user / "data" / "my_clips"
    assert read_classes(out) == ["flip pancake", "jump", "über"]
    rows = manifests(out)
    report = json.loads((out / "prep_report.json").read_text())
    # every usable video exactly once, with its class; the empty one reported, nothing else lost
    sources = {p.relative_to(class_folders).as_posix() for p in class_folders.glob("*/*.*")
               if p.suffix != ".txt" and not p.name.startswith(".")}
    failed = {e["video"]: e["reason"] for s in report["splits"].values() for e in s["failed"]}
    assert failed == {"über/empty.mp4": "empty_file"}
    by_path = {r.path: (s, r) for s in SPLITS for r in rows[s]}
    assert len(by_path) == sum(len(v) for v in rows.values()) == len(sources) - 1 == 18
    for path, (split, r) in by_path.items():
        assert path.startswith(f"{split}/{r.label_name}/")
        assert r.label == read_classes(out).index(r.label_name)
        assert frames_of(out / path) == r.num_frames == len(decord.VideoReader(str(out / path)))  # both
    # the frames are the sources': each clip keeps its source's decoded frame count
    source_frames = {p: frames_of(class_folders / p) for p in sources if not p.endswith("empty.mp4")}
    assert sorted(r.num_frames for _, r in by_path.values()) == sorted(source_frames.values())
    # the split (stratified, 10% + 10%, at least one each): 6 videos -> 4 train, 1 val, 1 test; über
    # has 7 files (one empty, planned like the others and reported): 6 of them in the manifests
    per_class = {c: Counter(s for s in SPLITS for r in rows[s] if r.label_name == c)
                 for c in read_classes(out)}
    assert per_class["flip pancake"] == per_class["jump"] == Counter(train=4, val=1, test=1)
    assert sum(per_class["über"].values()) == 6
    split_of_empty = next(s for s, sec in report["splits"].items() if sec["failed"])
    assert per_class["über"] + Counter({split_of_empty: 1}) == Counter(train=5, val=1, test=1)
    skipped = {e["file"]: e["reason"] for e in report["skipped_files"][str(class_folders)]}
    assert skipped == {"jump/.DS_Store": "hidden", "jump/notes.txt": "not_a_video",
                       "loose.mov": "not_in_a_class_folder"}
    short = {e["video"] for s in report["splits"].values() for e in s["short"]}
    assert short == {p for p, n in source_frames.items() if n < 16}
    assert "3 files skipped" in done.stdout and "short (kept)" in done.stdout
    # a rerun does nothing: no clip rewritten, the manifests the same
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    again = prep("--videos", str(class_folders), "--out", "data/my_clips", cwd=user)
    counts = json.JSONDecoder().raw_decode(again.stdout)[0]
    assert counts["to_prepare"] == 0 and counts["already_prepared"] == 18
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == before and manifests(out) == rows
    other = prep("--videos", str(class_folders), "--out", "data/my_clips", "--seed", "1", cwd=user,
                 check=False)
    assert other.returncode == 2 and "another split rule" in other.stderr
    # training as typed (shrunk to one epoch); the class count from classes.txt
    run_py(user, "data=folder", "data.root=data/my_clips", "trainer.max_epochs=1")
    results = json.loads(next((user / "logs").rglob("results.json")).read_text())
    assert results["dataset"] == "folder" and results["test_videos"] == len(rows["test"]) == 3
    assert len(results["per_class_top1"]) == 3


@pytest.mark.heavy
def test_a_class_count_that_disagrees_with_classes_txt_is_refused(tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "classes.txt").write_text("a\nb\n")
    for split in SPLITS:
        (out / f"{split}.csv").write_text("path,label,label_name,num_frames,fps\n")
    proc = subprocess.run([sys.executable, str(REPO / "run.py"), "data=folder", f"data.root={out}",
                           "data.num_classes=5"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "data.num_classes=5" in proc.stderr and "lists 2 classes" in proc.stderr


def test_split_folders_are_honoured(tmp_path, testdata):
    root = tmp_path / "videos"
    copy("hevc", root / "train" / "a" / "1.mp4")
    copy("unordered", root / "train" / "b" / "2.mov")
    copy("rot0", root / "validation" / "a" / "3.mov")
    copy("tenbit", root / "test" / "b" / "4.mp4")
    copy("rot90", root / "holdout" / "a" / "5.mov")
    prep("--videos", str(root), "--out", "prepared", cwd=tmp_path)
    rows = manifests(tmp_path / "prepared")
    assert {s: [(r.path, r.label_name) for r in rows[s]] for s in SPLITS} == {
        "train": [("train/a/1.mp4", "a"), ("train/b/2.mp4", "b")], "val": [("val/a/3.mp4", "a")],
        "test": [("test/b/4.mp4", "b")]}
    report = json.loads((tmp_path / "prepared" / "prep_report.json").read_text())
    assert report["skipped_files"][str(root)] == [
        {"file": "holdout/a/5.mov", "reason": "unknown_split",
         "detail": "holdout is none of train, val, validation, test"}]


def test_ucf101_official_split(tmp_path, testdata):
    """classInd.txt order is the label order (not sorted); trainlist01 / testlist01 as released
    (train lines carry the 1-based index, test lines none); val carved from train by whole groups;
    a listed path in another case than the file is found; videos of other splits are skipped."""
    root, lists = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Skiing\n2 HandstandPushups\n")
    train, test = [], []
    for cls, stem in (("Skiing", "Skiing"), ("HandstandPushups", "HandStandPushups")):
        for g, c in ((1, 1), (1, 2), (2, 1), (3, 1), (4, 1)):
            name = f"v_{stem}_g{g:02d}_c{c:02d}.avi"
            copy(["hevc", "unordered", "rot0", "tenbit", "rot90"][(g + c) % 5], root / cls / name)
            # the released lists spell this class's files as its folder does: another case than the files
            listed = f"{cls}/{name.replace('HandStand', 'Handstand')}"
            (test if g == 4 else train).append(listed)
    copy("hevc", root / "Skiing" / "v_Skiing_g05_c01.avi")  # in no list of split 1
    (lists / "trainlist01.txt").write_text("".join(f"{p} {1 + (not p.startswith('Ski'))}\r\n" for p in train))
    (lists / "testlist01.txt").write_text("".join(f"{p}\r\n" for p in test))
    prep("--videos", str(root), "--splits", str(lists), "--split", "1", "--val-fraction", "0.34",
         "--out", "prepared", cwd=tmp_path)
    out = tmp_path / "prepared"
    assert read_classes(out) == ["Skiing", "HandstandPushups"]
    rows = manifests(out)
    assert sorted((r.label, r.label_name) for r in rows["test"]) == [(0, "Skiing"), (1, "HandstandPushups")]
    assert all(Path(r.path).stem.split("_g")[1].startswith("04") for r in rows["test"])
    for cls in ("Skiing", "HandstandPushups"):
        groups = {s: {Path(r.path).stem.split("_g")[1][:2] for r in rows[s] if r.label_name == cls}
                  for s in ("train", "val")}
        assert len(groups["val"]) == 1 and not groups["val"] & groups["train"]  # one whole group
        assert groups["val"] | groups["train"] == {"01", "02", "03"}
    assert sum(len(v) for v in rows.values()) == 10
    report = json.loads((out / "prep_report.json").read_text())
    assert report["skipped_files"][str(root)] == [
        {"file": "Skiing/v_Skiing_g05_c01.avi", "reason": "not_in_split", "detail": "in no list of split 1"}]


def test_hmdb51_official_split(tmp_path, testdata):
    """<class>_test_split1.txt lines: tag 1 train, 2 test, 0 unused in this split; classes sorted."""
    root, lists = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    lists.mkdir()
    tags = {"brush_hair": {"a_brush_0.avi": 1, "b_brush_1.avi": 1, "c_brush_2.avi": 2, "d_brush_3.avi": 0},
            "cartwheel": {"e_cart_0.avi": 1, "f_cart_1.avi": 2, "g_cart_2.avi": 0, "h_cart_3.avi": 1}}
    for i, (cls, videos) in enumerate(sorted(tags.items(), reverse=True)):
        for j, video in enumerate(videos):
            copy(["hevc", "unordered", "rot0", "tenbit"][(i + j) % 4], root / cls / video)
        (lists / f"{cls}_test_split1.txt").write_text("".join(f"{v} {t} \n" for v, t in videos.items()))
        (lists / f"{cls}_test_split2.txt").write_text("".join(f"{v} 1 \n" for v in videos))
    prep("--videos", str(root), "--splits", str(lists), "--val-fraction", "0", "--out", "prepared",
         cwd=tmp_path)
    out = tmp_path / "prepared"
    assert read_classes(out) == ["brush_hair", "cartwheel"]
    rows = manifests(out)
    assert rows["val"] == []  # --val-fraction 0: an empty val.csv (no val split)
    got = {(r.label_name, Path(r.path).stem, s) for s in SPLITS for r in rows[s]}
    assert got == {(c, Path(v).stem, {1: "train", 2: "test"}[t]) for c, vs in tags.items()
                   for v, t in vs.items() if t}
    report = json.loads((out / "prep_report.json").read_text())
    assert sorted(e["file"] for e in report["skipped_files"][str(root)]) == \
        ["brush_hair/d_brush_3.avi", "cartwheel/g_cart_2.avi"]


@pytest.mark.heavy
def test_finetune_a_checkpoint_of_ours_onto_new_classes(tmp_path, testdata, tiny_data):
    """A 3-class checkpoint of ours fine-tunes onto a 2-class folder: its classifier replaced (one
    log line naming both counts), every other tensor loaded, results.json's init record says so."""
    from conftest import TINY

    run_py(tmp_path, *TINY, f"data.root={tiny_data}", "trainer.max_epochs=1",
           f"hydra.run.dir={tmp_path / 'source'}")
    ckpt = tmp_path / "source" / "checkpoints" / "last.ckpt"
    root = tmp_path / "videos"
    for cls in ("cats", "dogs"):
        for i, name in enumerate(["hevc", "tenbit", "unordered", "rot0", "rot90", "bunny"]):
            copy(name, root / cls / f"{i}{Path(SMALL[name][0]).suffix}")
    prep("--videos", str(root), "--out", "data/pets", cwd=tmp_path)
    proc = run_py(tmp_path, "data=folder", "data.root=data/pets", f"model.pretrained_3d={ckpt}",
                  "trainer.max_epochs=1")
    assert "its classifier (3 classes) is replaced by a new one for this network's 2 classes" in \
        proc.stdout + proc.stderr
    results = json.loads(next((tmp_path / "logs").rglob("results.json")).read_text())
    loaded = results["init"]["loaded"]
    assert results["init"]["kind"] == "pretrained_3d" and results["init"]["file"] == "last.ckpt"
    assert loaded["not_loaded"] == ["head.fc.weight", "head.fc.bias"]
    assert loaded["tensors_loaded"] == loaded["tensors_total"] - 2 > 30
    assert loaded["classifier"].startswith("new (2 classes")


@pytest.mark.heavy
def test_two_shards_then_merge_give_the_one_run_dataset(class_folders, tmp_path):
    """--shard K/N and --merge, the Kinetics prep's machinery: the merged manifests, class list and
    report lists equal one unsharded preparation's."""
    prep("--videos", str(class_folders), "--out", "whole", cwd=tmp_path)
    for k in (1, 2):
        done = prep("--videos", str(class_folders), "--out", "sharded", "--shard", f"{k}/2", cwd=tmp_path)
        assert "when every shard is done: --merge" in done.stdout
    prep("--out", "sharded", "--merge", cwd=tmp_path)
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert manifests(sharded) == manifests(whole) and read_classes(sharded) == read_classes(whole)
    a, b = (json.loads((d / "prep_report.json").read_text()) for d in (whole, sharded))
    assert b["skipped_files"] == a["skipped_files"]
    for split in SPLITS:
        for key in ("failed", "short", "split_rule", "layout"):
            assert b["splits"][split][key] == a["splits"][split][key]
    assert not list(sharded.glob("missing_*.csv"))


def test_an_out_folder_inside_the_videos_folder_and_linked_class_folders(tmp_path, testdata):
    """`--videos clips --out clips/prepared`: a rerun must not take the prepared clips for a class; a
    class folder that is a symlink is read, a link cycle is not followed twice."""
    root = tmp_path / "clips"
    for cls in ("a", "b"):
        for i, name in enumerate(("hevc", "unordered", "rot0")):
            copy(name, root / cls / f"{i}.mp4")
    elsewhere = tmp_path / "elsewhere" / "c"  # a class folder linked in (and a link cycle)
    copy("tenbit", elsewhere / "5.mp4")
    (root / "c").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(root, target_is_directory=True)
    for _ in range(2):
        prep("--videos", str(root), "--out", str(root / "prepared"), "--val-fraction", "0",
             "--test-fraction", "0", cwd=tmp_path)
    assert read_classes(root / "prepared") == ["a", "b", "c"]
    assert len(read_manifest(root / "prepared", "train")) == 7
