"""Faults real users bring to `python -m data_prep.kinetics`: files as tools save them, values that
would become paths, downloads cut short, several annotation files into one folder, a full disk or a
read-only folder, Ctrl-C / SIGTERM / SIGKILL, two preparations at once. Each test runs the real CLI
(or `prepare`) on real files and checks what the user gets: a clear line, a report entry, an exit
code, and nothing lost."""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from conftest import USER_DIR

from data_prep.annotations import AnnotationError, read_annotations
from data_prep.encode import EncodeSettings, probe_clip
from data_prep.kinetics import prepare
from video_gn.data.manifest import read_classes, read_manifest

K400_VAL = "annotations/activitynet_kinetics-400_val.csv"
DEMO = "videos/mmaction2__demo_demo.mp4"  # a real K400 clip: 280 frames, 10.0 s


def prep_cli(*args, check=False, **kw):
    return subprocess.run([sys.executable, "-m", "data_prep.kinetics", *map(str, args)], cwd=USER_DIR,
                          capture_output=True, text=True, check=check, **kw)


def no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def real_csv_lines(testdata, n):
    """The header and the first n data lines of the real K400 val CSV, as they are in the file."""
    lines = (testdata / K400_VAL).read_text(encoding="utf-8").splitlines()
    return lines[: n + 1]


# --- annotation files as tools really save them ---------------------------------------------------

@pytest.mark.parametrize("save_as", ["excel_utf8_bom_crlf", "utf16_tabs", "semicolons_padded_header",
                                     "mac_cr_trailing_commas"])
def test_annotation_file_as_tools_save_it_reads_every_column(testdata, tmp_path, save_as):
    lines = real_csv_lines(testdata, 20)
    original = tmp_path / "original.csv"
    original.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = list(csv.reader(lines))
    path = tmp_path / f"{save_as}.csv"
    if save_as == "excel_utf8_bom_crlf":  # old main: the BOM renamed the label column; labels dropped
        path.write_bytes(codecs.BOM_UTF8 + "\r\n".join(lines).encode() + b"\r\n")
    elif save_as == "utf16_tabs":  # Excel's "Unicode text"
        text = "\r\n".join("\t".join(r) for r in rows) + "\r\n"
        path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    elif save_as == "semicolons_padded_header":
        header = "; ".join(f" {h.upper()} " for h in rows[0])
        path.write_text("\n".join([header] + [";".join(f'"{f}"' for f in r) for r in rows[1:]]) + "\n")
    else:
        path.write_bytes(("\r".join(line + ",," for line in lines) + "\r").encode())
    expected = read_annotations(original)
    assert len(expected) == 20 and all(r.label for r in expected)
    assert read_annotations(path) == expected


def test_bad_rows_are_reported_with_file_line_and_reason_and_good_rows_kept(testdata, tmp_path):
    header, *good = real_csv_lines(testdata, 3)
    bad_lines = [
        b'yoga,ABCDEFGHIJK,0,10,train,0',                # 1 good row among the bad ones
        b'"caf\xe9 dancing",ABCDEFGHIJ1,0,10,train,0',   # Latin-1 byte
        b'',                                             # blank line: not a row
        b',,,,,',                                        # a spreadsheet's empty row: not a row
        b'yoga,ABCDEFGHIJ2,0,10',                        # short line
        b'yoga,ABCDEFGHIJ3,nan,10,train,0',
        b'yoga,ABCDEFGHIJ4,0,inf,train,0',
        b'yoga,ABCDEFGHIJ5,-3,10,train,0',
        b'yoga,ABCDEFGHIJ6,20,10,train,0',               # reversed
        b'yoga,ABCDEFGHIJ7,0,10,trian,0',                # unknown split
        b'yoga,ABCDEFGHIJ8,0,10,../../escape,0',         # a split that would be a path
        b'yoga,ABCDEFGHIJ9,0,10,/etc,0',
        b'yoga,../../etc/pw,0,10,train,0',               # an id that would be a path
        b',ABCDEFGHIJa,0,10,train,0',                    # a train row without a label
        b'"yo\x07ga",ABCDEFGHIJb,0,10,train,0',          # control character in a label
    ]
    path = tmp_path / "messy.csv"
    path.write_bytes(b"\n".join([header.encode(), *(g.encode() for g in good), *bad_lines]) + b"\n")
    bad = []
    rows = read_annotations(path, bad)
    assert [r.youtube_id for r in rows] == [csv_row[1] for csv_row in csv.reader(good)] + ["ABCDEFGHIJK"]
    where = {b.line: b.reason for b in bad}
    assert sorted(where) == [6, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    assert "not UTF-8 text (byte 0xe9" in where[6]
    assert "expected 6 fields" in where[9]
    assert "time_start 'nan' is not a finite number" in where[10]
    assert "time_end 'inf'" in where[11] and "time_start '-3'" in where[12]
    assert "time_end 20 is not after time_start" not in where[13] and "time_end 10 is not after" in where[13]
    assert "split 'trian' is not one of train, val, test" in where[14]
    assert "split '../../escape'" in where[15] and "split '/etc'" in where[16]
    assert "youtube_id '../../etc/pw'" in where[17]
    assert "needs a label" in where[18] and "control characters" in where[19]
    assert all(str(b).startswith(f"{path}:{b.line}: ") for b in bad)
    # Without a list to collect them, the first bad row is the error (library use).
    with pytest.raises(AnnotationError, match=r"messy\.csv:6: not UTF-8"):
        read_annotations(path)


@pytest.mark.heavy
def test_cli_reports_bad_rows_and_never_writes_outside_out(testdata, tmp_path):
    header, good = real_csv_lines(testdata, 1)
    row = next(csv.reader([good]))
    videos, out = tmp_path / "videos", tmp_path / "deep" / "out"
    videos.mkdir()
    shutil.copy(testdata / DEMO, videos / f"{row[1]}_{int(row[2]):06d}_{int(row[3]):06d}.mp4")
    ann = tmp_path / "ann.csv"
    ann.write_text("\n".join([header, good, good.replace(",val,", ",../../escape,"),
                              good.replace(",val,", ",/tmp,")]) + "\n")
    proc = no_traceback(prep_cli("--annotations", ann, "--videos", videos, "--out", out, "--workers", 1))
    assert proc.returncode == 0
    assert f"bad row: {ann}:3: split '../../escape'" in proc.stderr and f"{ann}:4: split '/tmp'" in proc.stderr
    report = json.loads((out / "prep_report.json").read_text())
    assert [b["line"] for b in report["bad_rows"][str(ann)]] == [3, 4]
    assert sorted(p.name for p in tmp_path.rglob("*.mp4") if videos not in p.parents) == [
        next(iter((out / "val").glob("*.mp4"))).name]
    assert not (tmp_path / "escape").exists() and len(read_manifest(out, "val")) == 1


@pytest.mark.parametrize("what,message", [
    ("missing", "annotation file not found"), ("folder", "is not a file"),
    ("binary", "contains NUL bytes"), ("empty", "empty file; expected the header"),
    ("no_columns", "lacks ['youtube_id', 'time_start', 'time_end']"),
])
def test_unreadable_annotation_file_is_one_clear_error(tmp_path, what, message):
    ann = tmp_path / "ann.csv"
    if what == "folder":
        ann.mkdir()
    elif what == "binary":
        ann.write_bytes(b"\x00\x01PK\x03\x04" * 100)
    elif what == "empty":
        ann.write_text("\r\n\r\n")
    elif what == "no_columns":
        ann.write_text("a,b,c\n1,2,3\n")
    (tmp_path / "videos").mkdir()
    proc = no_traceback(prep_cli("--annotations", ann, "--videos", tmp_path / "videos", "--out", tmp_path / "out"))
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- truncated downloads --------------------------------------------------------------------------

def faststart_copy(src: Path, dst: Path) -> None:
    """The real clip's packets remuxed with the index first ("faststart", as YouTube serves MP4)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                o.mux(packet)


def test_truncated_downloads_in_both_mp4_layouts_are_reported_not_kept(testdata, tmp_path):
    header, *lines = real_csv_lines(testdata, 3)
    rows = list(csv.reader(lines))
    videos = tmp_path / "videos"
    videos.mkdir()
    stems = [f"{r[1]}_{int(r[2]):06d}_{int(r[3]):06d}" for r in rows]
    whole = testdata / DEMO
    faststart = tmp_path / "faststart.mp4"
    faststart_copy(whole, faststart)
    with av.open(str(faststart)) as c:
        assert c.streams.video[0].frames == 280  # the header still claims every frame
    cut = faststart.read_bytes()
    (videos / f"{stems[0]}.mp4").write_bytes(cut[: int(len(cut) * 0.3)])  # faststart, cut at 30%
    data = whole.read_bytes()
    (videos / f"{stems[1]}.mp4").write_bytes(data[: int(len(data) * 0.9)])  # index at the end, cut
    shutil.copy(whole, videos / f"{stems[2]}.mp4")                         # complete
    ann = tmp_path / "ann.csv"
    ann.write_text("\n".join([header, *lines]) + "\n")

    report = prepare(ann, videos, tmp_path / "out", EncodeSettings(), workers=2, progress=False)
    failed = {f["youtube_id"]: f for f in report["failed"]}
    assert failed[rows[0][1]]["reason"] == "truncated"
    assert "s decoded of the 10.00 s its header claims" in failed[rows[0][1]]["detail"]
    assert failed[rows[1][1]]["reason"] == "truncated" and "moov" in failed[rows[1][1]]["detail"]
    assert [r.path for r in read_manifest(tmp_path / "out", "val")] == [f"val/{stems[2]}.mp4"]

    kept = prepare(ann, videos, tmp_path / "kept", EncodeSettings(keep_short=True), workers=2, progress=False)
    (short,) = kept["short"]
    assert short["youtube_id"] == rows[0][1] and 0 < short["kept_frames"] < 200
    assert len(read_manifest(tmp_path / "kept", "val")) == 2


# --- several annotation files into one --out --------------------------------------------------------

@pytest.mark.heavy
def test_several_annotation_files_share_one_class_list_and_keep_each_report(testdata, tmp_path):
    header, *lines = real_csv_lines(testdata, 3)
    rows = list(csv.reader(lines))
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    for r in rows:
        shutil.copy(testdata / DEMO, videos / f"{r[1]}_{int(r[2]):06d}_{int(r[3]):06d}.mp4")
    val = tmp_path / "val.csv"
    val.write_text("\n".join([header, *lines[:2]]) + "\n")
    test = tmp_path / "test_unlabelled.csv"  # K400's test list: no label column
    test.write_text("youtube_id,time_start,time_end,split\n" +
                    "".join(f"{r[1]},{r[2]},{r[3]},test\n" for r in rows[2:]))
    assert prep_cli("--annotations", val, "--videos", videos, "--out", out, "--workers", 1).returncode == 0
    classes = read_classes(out)
    assert classes == sorted({r[0] for r in rows[:2]})
    assert no_traceback(prep_cli("--annotations", test, "--videos", videos, "--out", out)).returncode == 0
    assert read_classes(out) == classes  # old main: rewritten empty by the unlabelled list
    assert [r.label for r in read_manifest(out, "test")] == [-1]
    report = json.loads((out / "prep_report.json").read_text())
    assert report["splits"]["val"]["counts"]["prepared"] == 2  # survived the second run
    assert report["splits"]["test"]["counts"]["prepared"] == 1

    # A file with other classes would change the label indices of val.csv: a clear error, nothing changed.
    other = tmp_path / "train.csv"
    other.write_text(f"{header}\n\"juggling fire\",{rows[2][1]},{rows[2][2]},{rows[2][3]},train,0\n")
    proc = no_traceback(prep_cli("--annotations", other, "--videos", videos, "--out", out))
    assert proc.returncode == 2 and "'juggling fire'" in proc.stderr and "another --out" in proc.stderr
    assert read_classes(out) == classes and not (out / "train.csv").exists()
    # The same split from another file would replace its manifest: refused unless asked for.
    val2 = tmp_path / "val_again.csv"
    val2.write_text("\n".join([header, lines[0]]) + "\n")
    proc = no_traceback(prep_cli("--annotations", val2, "--videos", videos, "--out", out))
    assert proc.returncode == 2 and "split 'val'" in proc.stderr and "--replace-split" in proc.stderr
    assert len(read_manifest(out, "val")) == 2


# --- resource faults ------------------------------------------------------------------------------

@contextlib.contextmanager
def small_filesystem(path: Path, size: str):
    """A real tmpfs of ``size`` at ``path`` (needs root), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root; the simulated ENOSPC test covers this")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def twelve_rows(testdata, tmp_path, n=12):
    """n real K400 rows, each "downloaded" as the real 280-frame demo clip."""
    rows = read_annotations(testdata / K400_VAL)[:n]
    videos = tmp_path / "videos"
    videos.mkdir(exist_ok=True)
    for r in rows:
        shutil.copy(testdata / DEMO, videos / f"{r.clip_stem}.mp4")
    ann = tmp_path / "rows.csv"
    with ann.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        w.writerows([r.label, r.youtube_id, int(r.time_start), int(r.time_end), "val"] for r in rows)
    return ann, videos, rows


@pytest.mark.heavy
def test_full_disk_stops_clearly_and_a_rerun_after_freeing_space_prepares_everything(testdata, tmp_path):
    ann, videos, rows = twelve_rows(testdata, tmp_path, 6)
    with small_filesystem(tmp_path / "disk", "600k") as disk:  # room for about two clips
        out = disk / "out"
        proc = no_traceback(prep_cli("--annotations", ann, "--videos", videos, "--out", out, "--workers", 2))
        assert proc.returncode == 3 and "No space left on device" in proc.stderr
        assert "no video was marked as failed" in proc.stderr
        assert not list(out.rglob(".*tmp*")) and not (out / "val.csv").exists()
        subprocess.run(["mount", "-o", "remount,size=50m", str(disk)], check=True)  # space freed
        proc = no_traceback(prep_cli("--annotations", ann, "--videos", videos, "--out", out, "--workers", 2))
        assert proc.returncode == 0
        assert len(read_manifest(out, "val")) == 6


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES])
def test_write_error_at_the_write_call_marks_no_video_bad(testdata, tmp_path, monkeypatch, err):
    """The same as the real full disk, on any machine: the encoder's output open fails (workers are
    forked, so they see the patch)."""
    import data_prep.encode as encode

    ann, videos, rows = twelve_rows(testdata, tmp_path, 3)
    out = tmp_path / "out"
    real_open = encode.open_h264

    def failing_open(path, *a, **kw):
        raise av.error.OSError(err, os.strerror(err), str(path))

    monkeypatch.setattr(encode, "open_h264", failing_open)
    with pytest.raises(OSError) as caught:
        prepare(ann, videos, out, EncodeSettings(), workers=2, progress=False)
    assert caught.value.errno == err and "cannot write" in caught.value.strerror
    assert not (out / "prep_report.json").exists() and not list(out.rglob(".*tmp*"))
    monkeypatch.setattr(encode, "open_h264", real_open)
    report = prepare(ann, videos, out, EncodeSettings(), workers=2, progress=False)
    assert report["counts"]["prepared"] == 3 and report["failed"] == []


def test_damaged_prepared_clips_are_redone_on_rerun(testdata, tmp_path):
    ann, videos, rows = twelve_rows(testdata, tmp_path, 3)
    out = tmp_path / "out"
    prepare(ann, videos, out, EncodeSettings(), workers=2, progress=False)
    clips = sorted((out / "val").glob("*.mp4"))
    clips[0].write_bytes(clips[0].read_bytes()[:5000])   # cut short after it was written
    clips[1].write_bytes(b"\x00" * 4096)                 # overwritten
    (out / "prep_report.json").write_text('{"splits": {"val": ')  # and the report cut short
    report = prepare(ann, videos, out, EncodeSettings(), workers=2, progress=False)
    assert report["counts"]["damaged_redone"] == 2 and report["counts"]["prepared"] == 3
    for clip in clips:
        with av.open(str(clip)) as c:
            assert sum(1 for _ in c.decode(video=0)) == probe_clip(clip).num_frames == 280


# --- process faults -------------------------------------------------------------------------------

def group_processes(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def start_prep_and_wait_for_work(cmd, out):
    # As from a terminal: SIGINT at its default even when this test runs where it is ignored (a
    # job started in the background of a non-interactive shell inherits SIG_IGN, and Python then
    # never raises KeyboardInterrupt).
    proc = subprocess.Popen(cmd, cwd=USER_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300  # a bound on waiting for the work to start, not a race
    while not list(out.glob("val/.*.tmp*.mp4")) and time.time() < deadline:
        time.sleep(0.02)
    assert list(out.glob("val/.*.tmp*.mp4")), "the workers should be writing clips"
    return proc


@pytest.mark.heavy
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["ctrl_c", "sigterm", "sigkill_parent"])
def test_stopping_the_prep_leaves_no_workers_and_no_half_written_files(testdata, tmp_path, how):
    ann, videos, rows = twelve_rows(testdata, tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "data_prep.kinetics", "--annotations", str(ann), "--videos", str(videos),
           "--out", str(out), "--workers", "2"]
    proc = start_prep_and_wait_for_work(cmd, out)
    if how == "ctrl_c":
        os.killpg(proc.pid, signal.SIGINT)  # the terminal sends it to the whole process group
    else:
        os.kill(proc.pid, signal.SIGTERM if how == "sigterm" else signal.SIGKILL)  # the parent only
    _, stderr = proc.communicate(timeout=120)
    deadline = time.time() + 60  # a bound on waiting for the processes to be gone, not a race
    while group_processes(proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    assert group_processes(proc.pid) == [], "worker processes outlived the prep"
    assert not list(out.rglob(".*tmp*")), "half-written files left in --out"
    if how != "sigkill_parent":
        assert proc.returncode == {"ctrl_c": 130, "sigterm": 143}[how]
        assert "rerun the same command to continue" in stderr and "Traceback" not in stderr
    for clip in out.glob("val/*.mp4"):  # anything under a final name is complete
        assert probe_clip(clip).num_frames == 280
    assert subprocess.run(cmd, cwd=USER_DIR, capture_output=True).returncode == 0
    assert len(read_manifest(out, "val")) == 12


@pytest.mark.heavy
def test_a_second_prep_into_the_same_out_fails_clearly_and_the_first_finishes(testdata, tmp_path):
    ann, videos, rows = twelve_rows(testdata, tmp_path, 6)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "data_prep.kinetics", "--annotations", str(ann), "--videos", str(videos),
           "--out", str(out), "--workers", "1"]
    first = start_prep_and_wait_for_work(cmd, out)
    # The first one (and its worker) stopped while it holds the lock: it cannot finish before the
    # second starts, however loaded the machine (this used to be a race).
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        second = no_traceback(subprocess.run(cmd, cwd=USER_DIR, capture_output=True, text=True))
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert second.returncode == 2 and f"another preparation (pid {first.pid}) is writing into {out}" in second.stderr
    assert first.wait(timeout=300) == 0
    assert len(read_manifest(out, "val")) == 6


# --- unusable --out / --videos --------------------------------------------------------------------

@pytest.mark.parametrize("what,message", [
    ("out_is_file", "--out {out} is a file, not a folder"), ("out_read_only", "--out {out} is not a writable folder"),
    ("videos_missing", "--videos {videos} does not exist"), ("videos_is_file", "--videos {videos} is not a folder"),
])
def test_unusable_out_or_videos_is_one_clear_line(testdata, tmp_path, what, message):
    ann, videos, rows = twelve_rows(testdata, tmp_path, 1)
    out = tmp_path / "out"
    with contextlib.ExitStack() as stack:
        if what == "out_is_file":
            out.write_text("not a folder")
        elif what == "out_read_only":
            out.mkdir()
            if os.geteuid() == 0:  # root ignores permission bits: a read-only mount instead
                if not shutil.which("mount") or subprocess.run(
                        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(out)], capture_output=True).returncode:
                    pytest.skip("cannot mount a read-only folder here")
                stack.callback(subprocess.run, ["umount", "-l", str(out)])
            else:
                out.chmod(0o555)
        elif what == "videos_missing":
            videos = tmp_path / "nowhere"
        else:
            videos = ann
        proc = no_traceback(prep_cli("--annotations", ann, "--videos", videos, "--out", out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: " + message.format(out=out, videos=videos) + (
        ": Read-only file system" if what == "out_read_only" and os.geteuid() == 0 else
        ": Permission denied" if what == "out_read_only" else "")


def test_verify_finds_damage_inside_a_clip_that_the_header_does_not_show(testdata, tmp_path):
    ann, videos, rows = twelve_rows(testdata, tmp_path, 2)
    out = tmp_path / "out"
    prepare(ann, videos, out, EncodeSettings(), workers=1, progress=False)
    clip = sorted((out / "val").glob("*.mp4"))[0]
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 20000] = bytes(20000)  # zeros inside the frames; the index at the end intact
    clip.write_bytes(data)
    assert prepare(ann, videos, out, EncodeSettings(), progress=False)["counts"]["damaged_redone"] == 0
    report = prepare(ann, videos, out, EncodeSettings(), progress=False, verify=True)
    assert report["counts"]["damaged_redone"] == 1
    with av.open(str(clip)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 280


def test_unreadable_source_is_reported_and_retried_next_run(testdata, tmp_path, monkeypatch):
    """No read permission on a download (root here ignores permission bits: simulated where PyAV
    opens the file). The row is reported, not remembered as bad: the next run tries it again."""
    import data_prep.encode as encode

    ann, videos, rows = twelve_rows(testdata, tmp_path, 2)
    locked = str(videos / f"{rows[0].clip_stem}.mp4")
    real_open = encode.av.open

    def open_as_without_permission(path, *a, **kw):
        if str(path) == locked:
            raise av.error.PermissionError(errno.EACCES, os.strerror(errno.EACCES), locked)
        return real_open(path, *a, **kw)

    monkeypatch.setattr(encode.av, "open", open_as_without_permission)
    out = tmp_path / "out"
    report = prepare(ann, videos, out, EncodeSettings(), workers=1, progress=False)
    (failed,) = report["failed"]
    assert failed["reason"] == "unreadable_source" and "Permission denied" in failed["detail"]
    monkeypatch.setattr(encode.av, "open", real_open)  # permissions fixed
    assert prepare(ann, videos, out, EncodeSettings(), workers=1, progress=False)["counts"]["prepared"] == 2


def test_full_disk_while_writing_the_manifest_keeps_the_old_one(testdata, tmp_path, monkeypatch):
    import video_gn.files as vio

    ann, videos, rows = twelve_rows(testdata, tmp_path, 2)
    out = tmp_path / "out"
    prepare(ann, videos, out, EncodeSettings(), workers=1, progress=False)
    before = (out / "val.csv").read_bytes()
    real_replace = vio.os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(vio.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        prepare(ann, videos, out, EncodeSettings(keep_short=True), workers=1, progress=False)
    monkeypatch.setattr(vio.os, "replace", real_replace)
    assert (out / "val.csv").read_bytes() == before and not list(out.rglob(".*tmp*"))


# --- complete short clips --------------------------------------------------------------------------

def test_complete_clips_without_or_with_a_short_claim_are_kept_and_an_empty_split_still_has_a_manifest(
        testdata, tmp_path):
    """A WebM with no duration in its container and a 1 s HEVC clip, both named as 10 s K400 rows:
    each decodes to all it holds, so each is kept and listed as short (with seconds and frames). A
    split where no row gave a clip still gets its manifest (header only) and report section."""
    header, *lines = real_csv_lines(testdata, 4)
    rows = list(csv.reader(lines))
    videos = tmp_path / "videos"
    videos.mkdir()
    stems = [f"{r[1]}_{int(r[2]):06d}_{int(r[3]):06d}" for r in rows]
    shutil.copy(testdata / "videos" / "moviepy__media_no_duration.webm", videos / f"{stems[0]}.webm")
    shutil.copy(testdata / "videos" / "torchcodec__test_resources_h265_video.mp4", videos / f"{stems[1]}.mp4")
    # rows 2 and 3 become the train split and were never downloaded
    train_lines = [line.replace(",val", ",train") for line in lines[2:]]
    ann = tmp_path / "ann.csv"
    ann.write_text("\n".join([header, *lines[:2], *train_lines]) + "\n")
    report = prepare(ann, videos, tmp_path / "out", EncodeSettings(), workers=2, progress=False)
    short = {s["youtube_id"]: s for s in report["short"]}
    assert set(short) == {rows[0][1], rows[1][1]} and not report["failed"]
    assert short[rows[0][1]]["kept_frames"] == 74 and short[rows[1][1]]["kept_frames"] == 10
    assert "a complete clip of 1.00 s (10 frames), shorter than its annotated 10 s" in short[rows[1][1]]["detail"]
    assert len(read_manifest(tmp_path / "out", "val")) == 2
    assert (tmp_path / "out" / "train.csv").read_text() == "path,label,label_name,num_frames,fps\n"
    saved = json.loads((tmp_path / "out" / "prep_report.json").read_text())["splits"]
    assert saved["train"]["counts"]["prepared"] == 0 and saved["train"]["counts"]["missing"] == 2
