#!/usr/bin/env bash
# GPU check (under 5 minutes on one CUDA GPU), run from the repository root after installing it:
#   [PYTHON=python3] bash benchmarks/gpu_check.sh [extra train_throughput.py arguments, e.g. --set log_mlflow=false]
# 1. bundle training images/s and peak GPU memory at 224 px with the bundle's CUDA defaults (amp: auto -> bf16 or
#    fp16, channels_last: auto -> on), resnet18 and densenet121 x {none, ga, la};
# 2. the attention layers' time and memory against naive attention, and a ResNet-18 step with ga/la, on CUDA;
# 3. every attention network gives the CPU's logits on CUDA and runs fused SDPA kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check needs a GPU')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" benchmarks/train_throughput.py --bundle-only --sizes 224 --large-images 1024 --batch 64 --epochs 2 --repeats 3 \
    --networks resnet18:none resnet18:ga resnet18:la densenet121:none densenet121:ga densenet121:la "$@"
"$PYTHON" benchmarks/attention_ops.py --device cuda --quick
"$PYTHON" benchmarks/cuda_consistency.py
