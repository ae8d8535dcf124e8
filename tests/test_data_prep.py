"""Kinetics preparation on a fake download made of the shared real videos and real K400 rows."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import av
import pytest
from conftest import USER_DIR

from data_prep.annotations import read_annotations
from data_prep.encode import EncodeSettings, encode_clip, probe_clip
from data_prep.kinetics import prepare
from video_gn.data.manifest import read_classes, read_manifest

K400_VAL = "annotations/activitynet_kinetics-400_val.csv"


def real_rows(testdata, ids):
    with open(testdata / K400_VAL, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        by_id = {r[1]: r for r in reader}
    return header, [by_id[i] for i in ids]


def stem(row):
    return f"{row[1]}_{int(row[2]):06d}_{int(row[3]):06d}"


@pytest.fixture
def download(testdata, tmp_path):
    """A download folder mixing layouts, plus the annotation CSV (real rows) that describes it."""
    v = testdata / "videos"
    ids = ["--nQbRBEz2s", "2cPLjY5AWXU", "0wR5jVB-WPk", "3caPS4FHFF8", "3yaoNwz99xM", "6IbvOJxXnOo",
           "6_4kjPiQr7w", "9EnSwbXxu5g", "-egPJubR-CE"]
    header, rows = real_rows(testdata, ids)
    dl = tmp_path / "download"
    (dl / "val" / "air drumming").mkdir(parents=True)          # crawler layout, spaces kept
    (dl / "val" / "abseiling").mkdir(parents=True)
    flat = dl / "val"                                           # CVDF flat layout
    shutil.copy(v / "mmaction2__demo_demo.mp4", dl / "val" / "air drumming" / f"{stem(rows[0])}.mp4")
    shutil.copy(v / "mmaction2__tests_data_test.mp4", dl / f"{rows[1][1]}.mp4")  # full video: trim
    shutil.copy(v / "decord__examples_flipping_a_pancake.mkv",
                dl / "val" / "abseiling" / f"{stem(rows[2])}.mkv")
    shutil.copy(v / "decord__tests_test_data_corrupted.mp4", flat / f"{stem(rows[3])}.mp4")
    (flat / f"{stem(rows[4])}.mp4").write_bytes(b"")                             # zero bytes
    shutil.copy(v / "decord__tests_test_data_video_90.mov", flat / f"{stem(rows[5])}.mov")  # 3 frames
    shutil.copy(v / "mmaction2__tests_data_test.avi", flat / f"{stem(rows[8])}.avi")
    # rows[6], rows[7]: never downloaded.
    ann = tmp_path / "k400_subset.csv"
    with ann.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return ann, dl, rows


@pytest.mark.heavy
def test_prepare_manifest_report_and_outputs(download, tmp_path, testdata):
    ann, dl, rows = download
    out = tmp_path / "prepared"
    report = prepare(ann, dl, out, EncodeSettings(), workers=2, progress=False)

    manifest = read_manifest(out, "val")
    # Complete clips are kept however short: the corrupt file (4.9 s decodable of the 5 s it claims)
    # and the AVI (6.6 s, all it holds) stand for 10 s rows, as many real Kinetics clips do.
    usable = {stem(rows[i]) for i in (0, 1, 2, 3, 8)}
    assert {os.path.basename(r.path)[:-4] for r in manifest} == usable
    classes = read_classes(out)
    assert classes == sorted({r[0] for r in rows})
    for rec in manifest:
        assert classes[rec.label] == rec.label_name
        info = probe_clip(out / rec.path)
        assert min(info.width, info.height) == 256 and info.num_frames == rec.num_frames
        with av.open(str(out / rec.path)) as c:  # decodable end to end, exactly the counted frames
            assert sum(1 for _ in c.decode(video=0)) == rec.num_frames
            assert not c.streams.audio
    by_stem = {os.path.basename(r.path)[:-4]: r for r in manifest}
    assert by_stem[stem(rows[0])].label_name == "air drumming"
    assert by_stem[stem(rows[1])].num_frames == 270  # window [1, 11) s of a 10 s, 30 fps video: 0.9
    reasons = {f["youtube_id"]: f["reason"] for f in report["failed"]}
    assert reasons == {rows[4][1]: "empty_file", rows[5][1]: "too_short"}
    short = {s["youtube_id"]: s for s in report["short"]}
    assert set(short) == {rows[1][1], rows[3][1], rows[8][1]}
    assert short[rows[3][1]]["kept_frames"] == 49 and "a complete clip of 4.90 s (49 frames), shorter " \
        "than its annotated 10 s" in short[rows[3][1]]["detail"]
    assert short[rows[8][1]]["kept_frames"] == 164
    (partial,) = report["partial"]
    assert partial["youtube_id"] == rows[3][1] and partial["kept_frames"] == 49
    saved = json.loads((out / "prep_report.json").read_text())["splits"]["val"]
    assert saved["counts"]["prepared"] == 5 and saved["counts"]["failed"] == 2
    assert saved["counts"]["short"] == 3
    # Rows never downloaded: a count in the report and their own file (K400: thousands of them).
    assert saved["counts"]["missing"] == 2 and saved["missing_file"] == "missing_val.csv"
    with (out / "missing_val.csv").open() as f:
        assert sorted(r["youtube_id"] for r in csv.DictReader(f)) == sorted([rows[6][1], rows[7][1]])
    for name in ("val.csv", "missing_val.csv", "classes.txt"):  # lines end in \n for sed/awk
        assert b"\r" not in (out / name).read_bytes()

    # A rerun does no work and changes nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "val").iterdir()}
    again = prepare(ann, dl, out, EncodeSettings(), workers=2, progress=False)
    assert again["counts"]["to_prepare"] == 0 and again["counts"]["already_prepared"] == 5
    assert {p: p.stat().st_mtime_ns for p in (out / "val").iterdir()} == mtimes
    assert again["partial"] == report["partial"] and again["short"] == report["short"]
    assert {f["reason"] for f in again["failed"]} == {"empty_file", "too_short"} and len(again["missing"]) == 2

    # Opt-in (--min-fraction 0.8): complete clips holding less than 0.8 of their window are dropped.
    strict = prepare(ann, dl, tmp_path / "strict", EncodeSettings(min_fraction=0.8), workers=2, progress=False)
    reasons = {f["youtube_id"]: f["reason"] for f in strict["failed"]}
    assert reasons == {rows[3][1]: "shorter_than_window", rows[4][1]: "empty_file",
                       rows[5][1]: "too_short", rows[8][1]: "shorter_than_window"}
    assert [s["youtube_id"] for s in strict["short"]] == [rows[1][1]]  # 0.9 of its window: kept


def test_dry_run_writes_nothing(download, tmp_path):
    ann, dl, _ = download
    report = prepare(ann, dl, tmp_path / "out", EncodeSettings(), dry_run=True, progress=False)
    assert report["counts"]["to_prepare"] == 7 and report["counts"]["missing"] == 2
    assert not (tmp_path / "out").exists()


def test_display_rotation_is_applied(testdata, tmp_path):
    info = encode_clip(testdata / "videos" / "decord__tests_test_data_video_90.mov", tmp_path / "r.mp4",
                       EncodeSettings(min_frames=1))
    # Coded 568x320 with a -90 degree display matrix: shown (and written) portrait.
    assert (info.width, info.height) == (256, 454) and info.num_frames == 3


def test_cli_malformed_annotation_exits_with_location(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,youtube_id,time_start,time_end,split\nyoga,ABCDEFGHIJK,x,10,train\n")
    (tmp_path / "dl").mkdir()
    r = subprocess.run([sys.executable, "-m", "data_prep.kinetics", "--annotations", str(bad),
                        "--videos", str(tmp_path / "dl"), "--out", str(tmp_path / "out")],
                       cwd=USER_DIR, capture_output=True, text=True)
    # The bad row is reported with its place; with no usable row left, that is the error.
    assert r.returncode == 2 and "bad.csv:2: time_start 'x' is not a number" in r.stderr


@pytest.mark.heavy
def test_interrupted_run_leaves_no_half_written_clip(testdata, tmp_path):
    # Twelve real K400 rows, each "downloaded" as the 280-frame demo clip, so the run is busy when killed.
    rows = read_annotations(testdata / K400_VAL)[:12]
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    for r in rows:
        shutil.copy(testdata / "videos" / "mmaction2__demo_demo.mp4", videos / f"{r.clip_stem}.mp4")
    ann = tmp_path / "twelve.csv"
    with ann.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        w.writerows([r.label, r.youtube_id, int(r.time_start), int(r.time_end), "val"] for r in rows)
    cmd = [sys.executable, "-m", "data_prep.kinetics", "--annotations", str(ann), "--videos",
           str(videos), "--out", str(out), "--workers", "2"]

    def finished_clips():
        return list((out / "val").glob("[!.]*.mp4")) if (out / "val").is_dir() else []

    proc = subprocess.Popen(cmd, cwd=USER_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300  # a bound on waiting for the first clip, not a race
    while not finished_clips() and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGSTOP)  # frozen at once: no more clips finish before the kill
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, mid-run
    proc.wait()
    finals = finished_clips()
    assert 0 < len(finals) < 12, "the kill should land mid-run"
    assert not (out / "val.csv").exists()
    for clip in finals:  # anything under a final name is complete
        with av.open(str(clip)) as c:
            assert sum(1 for _ in c.decode(video=0)) == probe_clip(clip).num_frames == 280

    subprocess.run(cmd, cwd=USER_DIR, check=True, capture_output=True)
    manifest = read_manifest(out, "val")
    assert len(manifest) == 12 and all(r.num_frames == 280 for r in manifest)
    assert not list((out / "val").glob(".*tmp*"))


@pytest.mark.heavy
def test_sharded_prep_then_merge_equals_one_prep(testdata, tmp_path):
    """README: `--shard K/N` on N machines (or a SLURM array) into one --out, then `--merge`."""
    rows = read_annotations(testdata / K400_VAL)[:8]
    videos = tmp_path / "videos"
    videos.mkdir()
    for r in rows[:5]:
        shutil.copy(testdata / "videos" / "mmaction2__demo_demo.mp4", videos / f"{r.clip_stem}.mp4")
    (videos / f"{rows[5].clip_stem}.mp4").write_bytes(b"")  # rows[6], rows[7]: never downloaded
    ann = tmp_path / "rows.csv"
    with ann.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        w.writerows([r.label, r.youtube_id, int(r.time_start), int(r.time_end), "val"] for r in rows)

    def cli(out, *extra):
        subprocess.run([sys.executable, "-m", "data_prep.kinetics", "--annotations", str(ann), "--videos",
                        str(videos), "--out", str(out), "--workers", "1", *extra], cwd=USER_DIR, check=True,
                       capture_output=True)

    cli(tmp_path / "one")
    sharded = tmp_path / "sharded"
    for k in (1, 2, 3):
        cli(sharded, "--shard", f"{k}/3")
    assert not (sharded / "val.csv").exists()  # nothing final before the merge
    merge = subprocess.run([sys.executable, "-m", "data_prep.kinetics", "--out", str(sharded), "--merge"],
                           cwd=USER_DIR, capture_output=True, text=True)
    assert merge.returncode == 0, merge.stderr
    shard_sizes = [len(read_manifest(sharded / "shards" / f"{k}-of-3", "val")) for k in (1, 2, 3)]
    assert sum(shard_sizes) == 5 and max(shard_sizes) < 5  # really split
    for name in ("val.csv", "classes.txt", "missing_val.csv"):
        assert (sharded / name).read_text() == (tmp_path / "one" / name).read_text(), name
    one = json.loads((tmp_path / "one" / "prep_report.json").read_text())["splits"]["val"]
    merged = json.loads((sharded / "prep_report.json").read_text())["splits"]["val"]
    assert merged["counts"] == one["counts"]
    assert merged["failed"] == one["failed"] and merged["partial"] == one["partial"]
    assert sorted(p.name for p in (sharded / "val").iterdir()) == sorted(p.name for p in (tmp_path / "one" / "val").iterdir())


def test_merge_refuses_an_unfinished_set_of_shards(tmp_path):
    (tmp_path / "out" / "shards" / "1-of-3").mkdir(parents=True)
    (tmp_path / "out" / "shards" / "1-of-3" / "prep_report.json").write_text('{"splits": {}, "bad_rows": {}}')
    proc = subprocess.run([sys.executable, "-m", "data_prep.kinetics", "--out", str(tmp_path / "out"), "--merge"],
                          cwd=USER_DIR, capture_output=True, text=True)
    assert proc.returncode == 2 and "shards 2, 3 of 3 have not finished" in proc.stderr
