"""The generated default dataset: deterministic, and its classes need motion to be told apart."""

import numpy as np
import pytest

from data_prep.synthetic import CLASSES, HARD_CLASSES, generate, render_clip, render_hard_clip
from video_gn.data.decode import read_frames
from video_gn.data.manifest import read_classes, read_manifest


def test_deterministic_for_a_seed(tmp_path):
    sizes = {"train": 2, "val": 1, "test": 1}
    a = generate(tmp_path / "a", num_classes=3, clips_per_class=sizes, frames=12, seed=5, workers=1,
                 progress=False)
    b = generate(tmp_path / "b", num_classes=3, clips_per_class=sizes, frames=12, seed=5, workers=1,
                 progress=False)
    c = generate(tmp_path / "c", num_classes=3, clips_per_class=sizes, frames=12, seed=6, workers=1,
                 progress=False)
    assert read_classes(a) == list(CLASSES[:3])
    for split, per_class in sizes.items():
        ma, mb = read_manifest(a, split), read_manifest(b, split)
        assert ma == mb and len(ma) == 3 * per_class
        assert [r.label for r in ma] == [k % 3 for k in range(3 * per_class)]
        assert all(r.num_frames == 12 for r in ma)
    clip = read_manifest(a, "train")[0].path
    fa, fb, fc = (read_frames(str(root / clip), list(range(12)), "pyav").numpy() for root in (a, b, c))
    assert np.array_equal(fa, fb) and fa.shape == (12, 64, 80, 3)
    assert np.abs(fa.astype(int) - fc.astype(int)).mean() > 10  # another seed: another clip
    assert not (tmp_path / "a.building").exists()


def _nearest_centroid_accuracy(features, labels, train_mask):
    centroids = np.stack([features[train_mask & (labels == k)].mean(0) for k in range(len(CLASSES))])
    test = features[~train_mask]
    pred = np.argmin(((test[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return (pred == labels[~train_mask]).mean()


def test_one_frame_does_not_give_the_class_away_but_motion_does():
    per_class, frames = 24, 16
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    clips = np.stack([render_clip(int(k), np.random.default_rng(1000 + i), frames)
                      for i, k in enumerate(labels)]).astype(np.float32) / 255
    train_mask = np.tile(np.arange(per_class) < per_class // 2, len(CLASSES))
    middle = clips[:, frames // 2]
    # Single-frame appearance: per-class mean images alike, and a classifier on a frame is at chance.
    class_means = np.stack([middle[labels == k].mean(0) for k in range(len(CLASSES))])
    spread_between = class_means.std(0).mean()
    spread_within = middle.std(0).mean()
    assert spread_between < 0.5 * spread_within
    colour_stats = np.concatenate([middle.mean((1, 2)), middle.std((1, 2))], axis=1)
    appearance_acc = _nearest_centroid_accuracy(colour_stats, labels, train_mask)
    # Motion: where change happens between the first and last frame separates the classes.
    change = np.abs(clips[:, -1] - clips[:, 0]).mean(-1)  # [N, H, W]
    h, w = change.shape[1:]
    quadrants = np.stack([change[:, :h // 2].mean((1, 2)) - change[:, h // 2:].mean((1, 2)),
                          change[:, :, :w // 2].mean((1, 2)) - change[:, :, w // 2:].mean((1, 2))], 1)
    motion = np.concatenate([quadrants, change.reshape(len(labels), -1)[:, ::37]], 1)
    motion_acc = _nearest_centroid_accuracy(motion, labels, train_mask)
    chance = 1 / len(CLASSES)
    assert appearance_acc < chance + 0.15, appearance_acc
    assert motion_acc > appearance_acc, (motion_acc, appearance_acc)


@pytest.mark.heavy
def test_hard_variant_is_deterministic_and_balanced(tmp_path):
    sizes = {"train": 2, "val": 1, "test": 1}
    a, b = (generate(tmp_path / name, num_classes=12, clips_per_class=sizes, frames=12, seed=3, workers=1,
                     progress=False, variant="hard") for name in ("a", "b"))
    assert read_classes(a) == list(HARD_CLASSES)
    for split, per_class in sizes.items():
        records = read_manifest(a, split)
        assert records == read_manifest(b, split)
        assert sorted(r.label for r in records) == sorted(list(range(12)) * per_class)
    clip = read_manifest(a, "train")[5].path
    fa, fb = (read_frames(str(root / clip), list(range(12)), "pyav").numpy() for root in (a, b))
    assert np.array_equal(fa, fb)


def _frame_features(frame: np.ndarray) -> np.ndarray:
    """What a frame-level classifier could use: a 8x10 thumbnail in colour, and colour statistics."""
    small = frame.reshape(8, 8, 10, 8, 3).mean((1, 3)) / 255
    pixels = frame.reshape(-1, 3) / 255
    return np.concatenate([small.ravel(), pixels.mean(0), pixels.std(0)])


@pytest.mark.heavy
def test_hard_variant_one_frame_does_not_give_the_class_away():
    """A nearest-centroid classifier on single frames (any moment of the clip) stays near chance."""
    rng = np.random.default_rng(0)
    per_class, classes = 40, len(HARD_CLASSES)
    features, labels = [], []
    for label in range(classes):
        for k in range(per_class):
            video = render_hard_clip(label, np.random.default_rng(10_000 * label + k), 32, 64, 80)
            features.append(_frame_features(video[rng.integers(32)]))
            labels.append(label)
    features, labels = np.stack(features), np.array(labels)
    train = np.arange(len(labels)) % per_class < per_class // 2
    centroids = np.stack([features[train & (labels == c)].mean(0) for c in range(classes)])
    predicted = ((features[~train, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    accuracy = (predicted == labels[~train]).mean()
    assert accuracy < 2 / classes  # chance is 1/12


def test_hard_clip_noise_is_the_same_draw_scaled():
    """``noise`` (the small-batch pilot's difficulty knob) scales one draw: the same clip otherwise, the
    default 0.05 the bytes it always was, the pixel difference the noise's standard deviation."""
    import numpy as np

    from data_prep.synthetic import render_hard_clip

    def clip(noise):
        return render_hard_clip(3, np.random.default_rng(7), 16, 64, 80, photometric=False, noise=noise)

    assert np.array_equal(clip(0.05), render_hard_clip(3, np.random.default_rng(7), 16, 64, 80,
                                                       photometric=False))
    quiet, loud = clip(0.0).astype(np.float64), clip(0.3).astype(np.float64)
    inside = (quiet > 80) & (quiet < 175)  # pixels the 0-255 clipping leaves alone at 0.3 (most)
    assert abs((loud - quiet)[inside].std() / 255 - 0.3) < 0.03


def test_hard_clip_target_scale_and_contrast():
    """The pilot's other difficulty knobs: ``target_contrast`` moves only the target's pixels towards
    mid grey by that factor; ``target_scale`` 0.5 leaves the target a quarter of its area."""
    import numpy as np

    from data_prep.synthetic import render_hard_clip

    def clip(**kw):
        return render_hard_clip(5, np.random.default_rng(11), 16, 64, 80, photometric=False, noise=0.0,
                                **kw).astype(np.float64) / 255

    base, faint = clip(), clip(target_contrast=0.3)
    target = np.abs(base - faint).max(-1) > 0  # where they differ: the target, nothing else
    assert 0.01 < target.mean() < 0.2
    assert np.allclose(faint[target] - 0.5, 0.3 * (base[target] - 0.5), atol=2 / 255)
    area = target.sum()
    small = np.abs(clip(target_scale=0.5) - clip(target_scale=0.5, target_contrast=0.0)).max(-1) > 0
    assert 0.15 < small.sum() / area < 0.35
