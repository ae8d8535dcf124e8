"""Folders of one's own videos -> the videos to prepare, each with its class and split.

Layouts (``find_layout`` picks one):

- ``classes``: ``<root>/<class>/<video>`` (any depth below the class folder). No splits: a
  deterministic stratified split (``split_by_class``: per class, a shuffle seeded by ``--seed`` and
  the class name, then ``--test-fraction`` and ``--val-fraction`` of its videos).
- ``splits``: ``<root>/<split>/<class>/<video>`` with ``train``, ``val`` (or ``validation``), ``test``.
- ``ucf101``: the official lists (``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt``) in
  ``--splits``; ``classes.txt`` in ``classInd.txt`` order, so label i is the official index i + 1.
- ``hmdb51``: ``<class>_test_split<N>.txt`` in ``--splits`` (tag 1 train, 2 test, 0 unused);
  classes sorted (as torchvision numbers them).

The official layouts have no validation split: ``--val-fraction`` of the official train list
becomes val, for UCF101 by whole groups (``_gNN_``: clips of one group come from one long video, so
a group split across train and val would leak), for HMDB51 by video.

Files that are not videos (by extension), hidden files and folders, and files outside a class folder
are skipped and listed with the reason; empty and undecodable videos go to the encoder, which
reports them like any unusable download.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from data_prep.annotations import SPLIT_ALIASES, SPLITS
from data_prep.output import PrepError
from data_prep.sources import VIDEO_EXTENSIONS

UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)
HMDB_SPLIT_FILE = re.compile(r"(.+)_test_split(\d+)\.txt")
HMDB_TAGS = {"1": "train", "2": "test"}  # 0: unused in this split


@dataclass(frozen=True)
class FolderVideo:
    """One video of the folder: the pipeline's item (see ``data_prep.pipeline``)."""

    video: str  # path relative to --videos, '/'-separated
    split: str
    label: str
    out_path: str  # its clip, relative to --out: <split>/<class>/<name>.mp4

    @property
    def key(self) -> tuple[str]:
        return (self.video,)

    @property
    def clip_stem(self) -> str:
        return Path(self.out_path).stem

    expected_seconds = None  # no annotated segment: a clip is as long as its file

    def identity(self) -> dict:
        return {"video": self.video}


@dataclass
class Listing:
    """What a layout yields: the videos with class and split, the class list, what was left out."""

    layout: str
    videos: list[tuple[str, str, str]]  # (relative path, class, split)
    names: list[str]
    skipped: list[dict]  # {"file", "reason"}
    notes: list[str]  # e.g. a class with too few videos for a split


def find_layout(root: Path, splits_dir: Path | None) -> str:
    if splits_dir is not None:
        if (splits_dir / "classInd.txt").is_file():
            return "ucf101"
        if any(HMDB_SPLIT_FILE.fullmatch(p.name) for p in splits_dir.iterdir()):
            return "hmdb51"
        raise PrepError(f"--splits {splits_dir}: neither UCF101's classInd.txt nor HMDB51's "
                        "<class>_test_split<N>.txt files are in it")
    tops = {p.name.lower() for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if "train" in tops and tops & {"val", "validation", "test"}:
        return "splits"
    return "classes"


def walk(root: Path, out: Path | None = None) -> tuple[list[str], list[dict]]:
    """Every video file under ``root`` (relative, sorted) and the files skipped, with why. A prepared
    dataset inside ``root`` (``out``, e.g. ``--out my_clips/prepared``) is not read as videos."""
    videos, skipped = [], []
    inside = out.resolve() if out is not None else None
    for path in sorted(_files_below(root)):
        if inside is not None and path.resolve().is_relative_to(inside):
            continue
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            skipped.append({"file": rel, "reason": "hidden"})
        elif path.suffix.lower() not in VIDEO_EXTENSIONS:
            skipped.append({"file": rel, "reason": "not_a_video",
                            "detail": f"extension {path.suffix or '(none)'} is none of "
                                      f"{' '.join(sorted(VIDEO_EXTENSIONS))}"})
        else:
            videos.append(rel)
    return videos, skipped


def _files_below(root: Path) -> list[Path]:
    """Every file under ``root``, following symlinked folders (datasets are often assembled from
    links to class folders elsewhere), each real folder once (a link cycle ends there)."""
    files, seen = [], set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        files += [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
    return files


def list_videos(root: Path, splits_dir: Path | None, split_number: int, val_fraction: float,
                test_fraction: float, seed: int, out: Path | None = None) -> Listing:
    layout = find_layout(root, splits_dir)
    files, skipped = walk(root, out)
    if layout in ("ucf101", "hmdb51"):
        read = read_ucf101 if layout == "ucf101" else read_hmdb51
        videos, names, notes = read(root, splits_dir, split_number, files)
        videos, more = carve_val(videos, val_fraction, seed, by_group=layout == "ucf101")
        listed = {v for v, *_ in videos}
        skipped += [{"file": f, "reason": "not_in_split", "detail": f"in no list of split {split_number}"}
                    for f in files if f not in listed]
        return Listing(layout, videos, names, skipped, notes + more)
    depth = 2 if layout == "splits" else 1  # folders above the class folder
    videos, by_class = [], defaultdict(list)
    for f in files:
        parts = f.split("/")
        if len(parts) <= depth:
            skipped.append({"file": f, "reason": "not_in_a_class_folder",
                            "detail": "expected <split>/<class>/<video>" if depth == 2
                            else "expected <class>/<video>"})
            continue
        if layout == "splits":
            split = SPLIT_ALIASES.get(parts[0].lower(), parts[0].lower())
            if split not in SPLITS:
                skipped.append({"file": f, "reason": "unknown_split",
                                "detail": f"{parts[0]} is none of train, val, validation, test"})
                continue
            videos.append((f, parts[1], split))
        else:
            by_class[parts[0]].append(f)
    notes = []
    if layout == "classes":
        videos, notes = split_by_class(by_class, val_fraction, test_fraction, seed)
    names = sorted({c for _, c, _ in videos})
    return Listing(layout, videos, names, skipped, notes)


def split_by_class(by_class: dict[str, list[str]], val_fraction: float, test_fraction: float,
                   seed: int) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Per class: its videos shuffled by (seed, class), the first round(n * test_fraction) to test
    (at least 1 when the fraction is above 0), the next to val likewise, the rest to train. A class
    too small to give each asked-for split one video and keep one for training goes to train whole,
    and says so. The same folder, fractions and seed always give the same split."""
    videos, notes = [], []
    for name in sorted(by_class):
        files = sorted(by_class[name])
        random.Random(f"{seed}/{name}").shuffle(files)
        n = len(files)
        sizes = [max(1, round(n * f)) if f > 0 else 0 for f in (test_fraction, val_fraction)]
        if n - sum(sizes) < 1:
            notes.append(f"class {name!r} has {n} video(s): too few for a train/val/test split "
                         f"(test {test_fraction:g}, val {val_fraction:g}); all of them are in train")
            sizes = [0, 0]
        test, val = files[:sizes[0]], files[sizes[0]:sizes[0] + sizes[1]]
        for f in files:
            videos.append((f, name, "test" if f in test else "val" if f in val else "train"))
    return videos, notes


def carve_val(videos: list[tuple[str, str, str]], val_fraction: float, seed: int,
              by_group: bool) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``val_fraction`` of each class's train videos become val (whole UCF101 groups with
    ``by_group``); the official test list stays the test split."""
    if val_fraction <= 0:
        return videos, []
    units = defaultdict(set)  # class -> groups (or videos) of its train videos
    unit_of = {}
    for f, name, split in videos:
        if split == "train":
            match = UCF_GROUP.search(Path(f).stem) if by_group else None
            unit_of[f] = match.group(1) if match else f
            units[name].add(unit_of[f])
    chosen, notes = {}, []
    for name in sorted(units):
        order = sorted(units[name])
        random.Random(f"{seed}/{name}").shuffle(order)
        k = max(1, round(len(order) * val_fraction))
        if len(order) - k < 1:
            notes.append(f"class {name!r} has {len(order)} train group(s)/video(s): none left for val")
            k = 0
        chosen[name] = set(order[:k])
    return [(f, name, "val" if split == "train" and unit_of[f] in chosen[name] else split)
            for f, name, split in videos], notes


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise PrepError(f"{path} not found (the official split files are needed: --splits DIR)")
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def _resolver(files: list[str]):
    """Finds a listed path among the files found: exactly, else ignoring case (UCF101 lists
    ``HandstandPushups/v_HandStandPushups_...`` for files some copies store in another case)."""
    exact, lower = set(files), {f.lower(): f for f in files}
    return lambda listed: listed if listed in exact else lower.get(listed.lower())


def read_ucf101(root: Path, splits_dir: Path, n: int, files: list[str]):
    names = []
    for line in _lines(splits_dir / "classInd.txt"):
        index, name = line.split(maxsplit=1)
        if int(index) != len(names) + 1:
            raise PrepError(f"{splits_dir / 'classInd.txt'}: expected index {len(names) + 1}, found {index}")
        names.append(name)
    find, known = _resolver(files), {name.lower(): name for name in names}
    videos, notes = [], []
    for split, list_file in (("train", f"trainlist{n:02d}.txt"), ("test", f"testlist{n:02d}.txt")):
        for line in _lines(splits_dir / list_file):
            listed = line.split()[0]
            name = known.get(listed.split("/")[0].lower())
            found = find(listed)
            if name is None or found is None:
                notes.append(f"{list_file}: {listed} " + ("names no class of classInd.txt" if name is None
                                                          else "is not under --videos"))
                continue
            videos.append((found, name, split))
    return videos, names, notes


def read_hmdb51(root: Path, splits_dir: Path, n: int, files: list[str]):
    lists = {m.group(1): p for p in sorted(splits_dir.iterdir())
             if (m := HMDB_SPLIT_FILE.fullmatch(p.name)) and int(m.group(2)) == n}
    if not lists:
        raise PrepError(f"--splits {splits_dir}: no <class>_test_split{n}.txt files (--split {n})")
    find, videos, notes = _resolver(files), [], []
    for name, path in sorted(lists.items()):
        for line in _lines(path):
            video, tag = line.split()[:2]
            if tag not in HMDB_TAGS:
                continue
            found = find(f"{name}/{video}")
            if found is None:
                notes.append(f"{path.name}: {name}/{video} is not under --videos")
                continue
            videos.append((found, name, HMDB_TAGS[tag]))
    return videos, sorted(lists), notes


def folder_videos(listing: Listing) -> list[FolderVideo]:
    """The listing's videos as pipeline items, each with its clip's place ``<split>/<class>/<name>.mp4``
    (two sources with one stem in one class folder, ``a.avi`` and ``a.mp4``, keep their extension)."""
    stems = defaultdict(int)
    for f, name, split in listing.videos:
        stems[(split, name, Path(f).stem)] += 1
    out = []
    for f, name, split in listing.videos:
        p = Path(f)
        stem = p.stem if stems[(split, name, p.stem)] == 1 else p.name
        out.append(FolderVideo(f, split, name, f"{split}/{name}/{stem}.mp4"))
    return out
