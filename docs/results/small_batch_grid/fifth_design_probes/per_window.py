"""Per-view top-1 of a checkpoint of ours on the test split: which of the 4 temporal windows (x 3
crops) the multi-view test loses, per class.

    python docs/results/small_batch_grid/fifth_design_probes/per_window.py \\
        logs/small_batch_grid/gn_8x2_b8_s0/checkpoints/last.ckpt data/synthetic_bench_train200
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from video_gn.data.dataset import ClipSettings, VideoClipDataset  # noqa: E402
from video_gn.record.checkpoints import read_checkpoint  # noqa: E402
from video_gn.training.lit_module import VideoClassifier  # noqa: E402

torch.set_num_threads(1)
ckpt, root = sys.argv[1], sys.argv[2]
module = VideoClassifier.from_checkpoint(read_checkpoint(ckpt, "the")).eval()
settings = ClipSettings(frames_per_clip=8, frame_stride=2, crop_size=40, eval_short_side=40, num_test_clips=4,
                        num_test_crops=3, decoder="decord")  # experiment=small_batch_grid's test views
dataset = VideoClipDataset(root, "test", "test", settings)
n, correct, averaged, per_class = len(dataset), np.zeros(12), 0, {}
with torch.no_grad():
    for i in range(n):
        sample = dataset[i]
        views = module.on_after_batch_transfer({"video": sample["video"][None]}, 0)["video"][0]
        logits = module(views)
        right = logits.argmax(-1).numpy() == sample["label"]
        correct += right
        averaged += int(logits.softmax(-1).mean(0).argmax().item() == sample["label"])
        counts = per_class.setdefault(sample["label"], np.zeros(13))
        counts[:12] += right
        counts[12] += 1
print("per view (clip-major: clip0 crops0-2, clip1 ...):", np.round(100 * correct / n, 1))
print("per window (mean over crops):", np.round(100 * correct.reshape(4, 3).mean(1) / n, 1),
      "averaged views:", round(100 * averaged / n, 1))
for label, counts in sorted(per_class.items()):
    print(label, np.round(100 * counts[:12].reshape(4, 3).mean(1) / counts[12], 0))
