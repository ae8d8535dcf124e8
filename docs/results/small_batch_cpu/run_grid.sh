#!/usr/bin/env bash
# The published small-batch grid, exactly as run: two streams side by side (one per norm, one thread
# each: on 2 cores this is ~1.1x the throughput of one stream after the other), then the report.
#   bash docs/results/small_batch_cpu/run_grid.sh        (from the repository root, venv active)
set -euo pipefail
mkdir -p logs
# Generate the data once, before the two streams (each would otherwise generate it on first use).
[ -f data/synthetic_hard/test.csv ] || python -m data_prep.synthetic --variant hard --num-classes 12 \
    --train-per-class 80 --eval-per-class 20 --out data/synthetic_hard
stream() {
  local norm=$1
  export OMP_NUM_THREADS=1
  python run.py -m experiment=small_batch_grid norm=$norm data.batch_size_per_device=8,4,2 seed=0,1,2 \
      hydra.sweep.dir=logs/small_batch/${norm}_batch
  # the clip-length trade: twice the frames (16x1) at half the clips (4) vs 8x2 at 8
  python run.py -m experiment=small_batch_grid norm=$norm data.batch_size_per_device=4 \
      data.frames_per_clip=16 data.frame_stride=1 seed=0,1,2 hydra.sweep.dir=logs/small_batch/${norm}_clip_length
  # per-device statistics across processes: 2 ranks x 4 clips
  python run.py experiment=small_batch_grid norm=$norm trainer=ddp_cpu data.batch_size_per_device=4 seed=0 \
      hydra.run.dir=logs/small_batch/${norm}_ddp_cpu
}
stream bn > logs/small_batch_bn.log 2>&1 &
stream gn > logs/small_batch_gn.log 2>&1 &
wait
python -m video_gn.report logs/small_batch --out docs/results/small_batch_cpu
