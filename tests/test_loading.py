"""Decoding by index, sampling, transforms, sample shapes and fault tolerance of the loader."""

import numpy as np
import pytest
import torch

from data_prep.encode import EncodeSettings, write_frames
from video_gn.data import sampling
from video_gn.data.dataset import ClipSettings, VideoClipDataset
from video_gn.data.decode import DecodeError, read_frames
from video_gn.data.manifest import ClipRecord, read_manifest, write_classes, write_manifest
from video_gn.data.transforms import multi_view_crops, normalize

NUM_FRAMES = 60


def patterned_frames(n=NUM_FRAMES, h=64, w=80):
    """Frame i: flat colour blocks that encode i, far apart so codec loss cannot confuse them."""
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, :, : w // 2] = (i * 4) % 256
        frames[i, :, w // 2:, 0] = 255 - (i * 4) % 256
        frames[i, : h // 2, :, 2] = (i * 37) % 256
    return frames


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    path = tmp_path_factory.mktemp("enc") / "pattern.mp4"
    frames = patterned_frames()
    write_frames(frames, path, fps=25, settings=EncodeSettings(keyframe_interval=8))
    return path, frames


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_decoded_frames_match_encoded_frames(encoded, backend):
    path, frames = encoded
    indices = [0, 5, 17, 31, 59, 5, 40]  # unordered, repeated, across several keyframes
    got = read_frames(str(path), indices, backend).numpy()
    assert got.shape == (len(indices), 64, 80, 3) and got.dtype == np.uint8
    for k, i in enumerate(indices):
        diff = np.abs(got[k].astype(int) - frames[i].astype(int)).mean()
        # Against every other frame the error is far larger: the index really is frame i.
        nearest = min(range(NUM_FRAMES),
                      key=lambda j: np.abs(got[k].astype(int) - frames[j].astype(int)).mean())
        assert diff < 4 and nearest == i, (i, diff, nearest)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_decode_errors_name_the_file(encoded, tmp_path, backend):
    path, _ = encoded
    with pytest.raises(DecodeError, match="pattern.mp4"):
        read_frames(str(path), [NUM_FRAMES + 5], backend)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # "moov atom not found"
    with pytest.raises(DecodeError, match="truncated.mp4"):
        read_frames(str(truncated), [0, 1], backend)


def test_training_window_is_strided_and_in_bounds():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = sampling.random_clip(300, 32, 2, rng)
        assert len(idx) == 32 and np.all(np.diff(idx) == 2) and idx[0] >= 0 and idx[-1] <= 299
        starts.add(idx[0])
    assert min(starts) < 20 and max(starts) > 217  # covers the range of valid starts (0..237)


def test_short_video_loops_and_keeps_the_clip_length():
    idx = sampling.random_clip(20, 32, 2, np.random.default_rng(0))
    assert len(idx) == 32 and idx.max() < 20
    np.testing.assert_array_equal(idx, (np.arange(32) * 2) % 20)


def test_test_clips_evenly_span_the_video():
    clips = sampling.uniform_clips(300, 32, 2, 10)
    assert clips.shape == (10, 32)
    assert clips[0, 0] == 0 and clips[-1, -1] == 299
    assert np.all(np.abs(np.diff(clips[:, 0]) - 237 / 9) <= 1)
    centre = sampling.centre_clip(300, 32, 2)
    assert centre[0] == 118 and centre[-1] == 118 + 62


def test_three_test_crops_cover_left_centre_right():
    # Each column holds its x position, so a crop's first column tells where it was taken.
    frame = torch.arange(80, dtype=torch.uint8).expand(3, 64, 80)
    clips = frame.expand(2, 4, 3, 64, 80)  # [clips, T, C, H, W]
    views = multi_view_crops(clips, short_side=64, num_crops=3)
    assert views.shape == (6, 3, 4, 64, 64)
    assert [int(v[0, 0, 0, 0]) for v in views[:3]] == [0, 8, 16]


def test_normalize_matches_formula():
    x = torch.randint(0, 256, (3, 2, 4, 4), dtype=torch.uint8)
    y = normalize(x, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
    torch.testing.assert_close(y, (x.double() / 255 - 0.45) / 0.225, check_dtype=False)


def make_dataset_dir(root, videos):
    """A prepared dataset of the given ``(name, frames)`` clips, all class 0/1 alternating."""
    (root / "train").mkdir(parents=True)
    records = []
    for k, (name, frames) in enumerate(videos):
        info = write_frames(frames, root / "train" / name, fps=25)
        records.append(ClipRecord(f"train/{name}", k % 2, f"c{k % 2}", info.num_frames, info.fps))
    write_classes(root, ["c0", "c1"])
    return records


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    records = make_dataset_dir(root, [(f"v{k}.mp4", patterned_frames(40 + k)) for k in range(4)])
    write_manifest(root, "train", records)
    return root, records


def settings(**kw):
    base = dict(frames_per_clip=8, frame_stride=2, crop_size=48, train_short_side=(56, 72),
                eval_short_side=64, num_test_clips=10, num_test_crops=3, flip=True, decoder="pyav")
    return ClipSettings(**{**base, **kw})


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_sample_shapes_per_mode(dataset_dir, decoder):
    root, _ = dataset_dir
    s = settings(decoder=decoder)
    train = VideoClipDataset(root, "train", "train", s)[1]
    assert train["video"].shape == (3, 8, 48, 48) and train["video"].dtype == torch.uint8
    assert train["label"] == 1 and train["load_errors"] == ""
    assert VideoClipDataset(root, "train", "val", s)[0]["video"].shape == (3, 8, 48, 48)
    test = VideoClipDataset(root, "train", "test", s)[0]["video"]
    assert test.shape == (30, 3, 8, 64, 64)  # [V = 10 clips x 3 crops, C, T, S, S]


@pytest.mark.heavy
@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_cached_videos_give_the_same_samples_and_decode_each_video_once(dataset_dir, decoder, monkeypatch):
    """data.cache_videos decodes the whole video once; every later sample is cut from memory and is
    the sample the uncached loader gives for the same random draws (train) or the same views."""
    import video_gn.data.dataset as dataset_module

    root, records = dataset_dir
    reads = []
    real_read = dataset_module.read_frames
    monkeypatch.setattr(dataset_module, "read_frames",
                        lambda path, indices, backend: reads.append(path) or real_read(path, indices, backend))
    for mode in ("train", "val", "test"):
        plain = VideoClipDataset(root, "train", mode, settings(decoder=decoder))
        cached = VideoClipDataset(root, "train", mode, settings(decoder=decoder, cache_videos=True))
        for epoch in range(2):
            for k in range(len(records)):
                torch.manual_seed(100 * epoch + k)
                want = plain[k]["video"]
                reads.clear()
                torch.manual_seed(100 * epoch + k)
                got = cached[k]["video"]
                assert torch.equal(got, want), (mode, epoch, k)
                assert len(reads) == (1 if epoch == 0 else 0), (mode, epoch, reads)


def test_bad_videos_are_replaced_in_training_and_left_unscored_in_test(dataset_dir, tmp_path, testdata):
    root, records = dataset_dir
    truncated = root / "train" / "truncated.mp4"
    good = (root / records[0].path).read_bytes()
    truncated.write_bytes(good[: len(good) // 3])
    corrupt = root / "train" / "corrupt.mp4"  # one undecodable packet (a real file, unprepared)
    corrupt.write_bytes((testdata / "videos" / "decord__tests_test_data_corrupted.mp4").read_bytes())
    bad = [ClipRecord("train/missing.mp4", 0, "c0", 40, 25.0),
           ClipRecord("train/truncated.mp4", 1, "c1", 40, 25.0),
           ClipRecord("train/corrupt.mp4", 0, "c0", 50, 10.0)]
    write_manifest(root, "broken", records + bad)
    # Test (every window, so the corrupt file's bad packet too): neither decoder reads them; each is
    # its own sample, unscored — never another video in its place.
    ds = VideoClipDataset(root, "broken", "test", settings())
    for k in range(len(records), len(records) + 3):
        sample = ds[k]
        assert (sample["index"], sample["label"], sample["scored"]) == (k, bad[k - len(records)].label, False)
        failed_path, reason = sample["load_errors"].split("\n")[0].split("\t")
        assert failed_path == str(root / bad[k - len(records)].path)
        assert reason.startswith("pyav: ") and "; decord: " in reason  # both decoders tried
        assert sample["video"].shape == (30, 3, 8, 64, 64) and not sample["video"].any()
    assert ds[0]["load_errors"] == "" and ds[0]["scored"]
    # Training: another sample replaces a failed one, and says which failed.
    train = VideoClipDataset(root, "broken", "train", settings())
    for k in range(len(records), len(records) + 2):
        sample = train[k]
        assert sample["index"] != k and sample["scored"]
        assert sample["load_errors"].split("\t")[0] == str(root / bad[k - len(records)].path)

    # Only rows that fail on every read: the raw corrupt file decodes whenever a window misses its bad packet.
    write_manifest(root, "hopeless", bad[:2])
    with pytest.raises(RuntimeError, match="videos in a row failed to load"):
        VideoClipDataset(root, "hopeless", "train", settings(), max_retries=3)[0]


def encode_plain_h264(path, width, height, frames=12):
    """A clip we encode: frame i is grey level 20 i (what decoding must give back). Not the prep's
    ``write_frames``: its encoder's threads in the test process make a later fork (the data
    generator's process pool, the ``tiny_data`` fixture) abort."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 20 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("mode", ["train", "val", "test"])
def test_a_video_decord_cannot_read_is_read_with_pyav(tmp_path, mode, caplog):
    """decord 0.6 refuses some frame widths (72 px: "The size must exactly match") that PyAV decodes."""
    from video_gn.data.decode import DecodeError, read_frames

    root = tmp_path / "data"
    (root / "test").mkdir(parents=True)
    clip = encode_plain_h264(root / "test" / "narrow.mp4", 72, 130)
    with pytest.raises(DecodeError, match="DECORDError"):  # the premise: decord alone fails here
        read_frames(str(clip), [0], "decord")
    write_manifest(root, "test", [ClipRecord("test/narrow.mp4", 0, "c0", 12, 15.0)])
    ds = VideoClipDataset(root, "test", mode, settings(decoder="decord", frames_per_clip=4, crop_size=48,
                                                        train_short_side=(64, 64), flip=False))
    sample = ds[0]
    assert sample["scored"] and sample["load_errors"] == "" and sample["index"] == 0
    assert any("read with pyav (decord could not" in r.getMessage() for r in caplog.records)
    # The frames are ours: a uniform grey whose level says which frame it is (20 per frame).
    video = sample["video"].float()
    time_axis = video.dim() - 3  # [C, T, H, W] or [V, C, T, H, W]
    levels = video.mean(dim=[time_axis - 1, -2, -1]).flatten()  # per frame (of each view)
    frames = torch.round(levels / 20)
    assert (levels - 20 * frames).abs().max() < 3 and frames.min() >= 0 and frames.max() <= 11
    if mode == "val":  # the centre window of 4 frames every 2 in 12: frames 2, 4, 6, 8
        assert frames.tolist() == [2, 4, 6, 8]


def test_decord_path_survives_pytorchvideo_switching_the_global_bridge(tiny_data):
    """pytorchvideo's decord decoder sets decord's process-wide bridge to torch at import; on old main
    every one of our decord reads then failed (`Tensor` has no `asnumpy`)."""
    import decord

    from video_gn.data.decode import read_frames

    clip = str(tiny_data / read_manifest(tiny_data, "test")[0].path)
    before = read_frames(clip, [0, 3, 3, 7], "decord")
    try:
        import pytorchvideo.data.encoded_video_decord as pv_decord

        pv_decord.EncodedVideoDecord(open(clip, "rb"), "clip", decode_audio=False).get_clip(0, 0.3)  # its decoder ran
        assert isinstance(decord.VideoReader(clip).get_batch([0]), torch.Tensor)  # the bridge is torch now
        after = read_frames(clip, [0, 3, 3, 7], "decord")
    finally:
        decord.bridge.set_bridge("native")
    assert before.shape == (4, 32, 40, 3) and torch.equal(before, after)


def test_a_training_clip_is_a_function_of_its_key_alone(dataset_dir):
    """``TrainSample(index, seed, epoch)``: the same key gives the same clip in any process state (the
    global random state scrambled in between); another epoch or seed gives another clip; the sampler
    shards each epoch's permutation over the ranks, every video once."""
    from video_gn.data.train_sampler import TrainSample, TrainSampler

    root, records = dataset_dir
    ds = VideoClipDataset(root, "train", "train", settings(flip=True))
    key = TrainSample(1, seed=7, epoch=3)
    first = ds[key]["video"]
    torch.manual_seed(12345)
    np.random.seed(54321)
    assert torch.equal(ds[key]["video"], first)
    others = [ds[key._replace(epoch=e)]["video"] for e in range(4, 8)]
    assert any(not torch.equal(first, o) for o in others)
    n = 10
    for epoch in (0, 1):
        shards = []
        for rank in (0, 1):
            sampler = TrainSampler(n, seed=7, world_size=2, rank=rank)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        indices = [k.index for shard in shards for k in shard]
        assert sorted(indices) == list(range(n))  # each video once over the ranks
        assert all(k.seed == 7 and k.epoch == epoch for shard in shards for k in shard)
    again = TrainSampler(n, seed=7)
    again.set_epoch(1)
    other = TrainSampler(n, seed=7)
    assert [k.index for k in again] != [k.index for k in other]  # epoch 1's order is not epoch 0's
