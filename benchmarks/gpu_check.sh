#!/usr/bin/env bash
# GPU check (under 5 minutes on one CUDA GPU): bundle training images/s and peak GPU memory at 224 px with AMP
# (the bundle's amp: auto turns on bf16/fp16 on CUDA, channels_last: auto turns on channels-last),
# for resnet18 and densenet121 x {none, ga, la}. Run from the repository root after installing it:
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check needs a GPU')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python benchmarks/train_throughput.py --bundle-only --sizes 224 --images 1024 --batch 64 --epochs 2 --repeats 1 \
    --networks resnet18:none resnet18:ga resnet18:la densenet121:none densenet121:ga densenet121:la
