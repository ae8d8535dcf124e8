"""Decode frames **by index** from a video file: ``read_frames(path, indices, backend)``.

Returns uint8 ``[len(indices), H, W, 3]`` (RGB). Indices may repeat (looped short clips).
Backends: ``decord`` (fast random access; a fresh reader per call, freed at once, because decord
leaks memory on long-lived readers) and ``pyav`` (seek to the keyframe before each run of wanted
frames, decode forward; containers always closed). PyAV maps a frame's timestamp to its index
through the stream's frame rate, exact for the constant-rate clips ``data_prep`` writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DECODERS = ("decord", "pyav")  # data.decoder
# Wanted frames further apart than this are reached by a new seek instead of decoding through.
SEEK_GAP = 48


class DecodeError(RuntimeError):
    """A video that could not give the requested frames (the path and why)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_frames(path: str, indices: Sequence[int], backend: str) -> torch.Tensor:
    if backend not in DECODERS:
        raise ValueError(f"data.decoder={backend!r} is not one of {', '.join(DECODERS)}")
    try:
        frames = _read_decord(path, indices) if backend == "decord" else _read_pyav(path, indices)
    except library_errors() as e:  # what the decoders raise for a file: the file's DecodeError
        raise DecodeError(path, f"{type(e).__name__}: {e}") from None
    return torch.from_numpy(frames)


def library_errors() -> tuple[type[BaseException], ...]:
    """What the decoders raise for a file they cannot read: decord's ``DECORDError`` (every failure
    of its C++ side), PyAV's ``FFmpegError`` family (damaged data, missing files, unknown formats)
    and ``OSError``. Nothing wider: a bug of ours keeps its traceback; what a file can do to our own
    code (no video stream, no frame rate) is a DecodeError raised where it is found."""
    import av
    from decord._ffi.base import DECORDError

    return (DECORDError, av.error.FFmpegError, OSError)


def _read_decord(path: str, indices: Sequence[int]) -> np.ndarray:
    import decord

    try:
        reader = decord.VideoReader(path, num_threads=1)
    except RuntimeError as e:  # decord's own "Error reading <path>..." for a file it cannot open
        raise DecodeError(path, f"{type(e).__name__}: {e}") from None
    try:
        n = len(reader)
        if max(indices) >= n:
            raise DecodeError(path, f"frame {max(indices)} requested, video has {n}")
        batch = reader.get_batch(list(indices))
        # decord's output type is a process-wide "bridge" that other code switches (importing
        # pytorchvideo's decord decoder sets it to torch): accept what it returns, never rely on it.
        return batch.numpy() if isinstance(batch, torch.Tensor) else batch.asnumpy()
    finally:
        del reader


def _runs(sorted_indices: list[int]) -> list[list[int]]:
    runs = [[sorted_indices[0]]]
    for i in sorted_indices[1:]:
        if i - runs[-1][-1] > SEEK_GAP:
            runs.append([])
        runs[-1].append(i)
    return runs


def _read_pyav(path: str, indices: Sequence[int]) -> np.ndarray:
    import av

    wanted = sorted(set(indices))
    frames: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        if not container.streams.video:
            raise DecodeError(path, "no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise DecodeError(path, "no frame rate to map timestamps to frame indices")
        tb, start = stream.time_base, stream.start_time or 0
        for run in _runs(wanted):
            if run[0] > 0:
                container.seek(start + int(run[0] / rate / tb), stream=stream, backward=True)
            pending = set(run)
            for frame in container.decode(stream):
                if frame.pts is None:  # no timestamp: its index is unknown, it cannot be a wanted frame
                    continue
                index = round(float((frame.pts - start) * tb * rate))
                if index in pending:
                    frames[index] = frame.to_ndarray(format="rgb24")
                    pending.discard(index)
                if index >= run[-1] or not pending:
                    break
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise DecodeError(path, f"{len(missing)} of {len(wanted)} frames not decodable "
                                f"(first missing index {missing[0]})")
    return np.stack([frames[i] for i in indices])


def decoded_frames(container, stream, start: float | None = None, end: float | None = None):
    """Frames of ``stream`` (a PyAV container's), in [start, end) seconds if given; undecodable
    packets are skipped and counted. Decoding in order counts frames exactly, whatever the container
    says (prep trims and re-encodes with it; ``video_gn.predict`` reads any video with it).

    Yields ``(frame, bad_packets_so_far)``.
    """
    from av.error import InvalidDataError

    tb = stream.time_base
    if start:
        container.seek(int(start / tb), stream=stream, backward=True, any_frame=False)
    bad = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except InvalidDataError:
            bad += 1
            continue
        for frame in frames:
            t = float(frame.pts * tb) if frame.pts is not None else None
            if t is not None and start is not None and t < start:
                continue
            if t is not None and end is not None and t >= end:
                return
            yield frame, bad


def display_quarter_turns(frame) -> int:
    """Quarter turns (``np.rot90``'s k) that show a PyAV frame upright (its display rotation)."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4
