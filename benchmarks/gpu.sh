#!/usr/bin/env bash
# GPU checks and figures, for a machine with at least one CUDA device. From the
# repository root, with the package and its test extras installed:
#
#   bash benchmarks/gpu.sh
#
# 1. the tests marked `gpu` (both decoders, MuData, bf16 mixed precision, pinned memory,
#    the image and sequence models);
# 2. training / embedding / DDIM-50 sampling throughput on 10^6 cells × 2,000 genes
#    -> benchmarks/results/gpu.{json,md};
# 3. the image benchmark on Fashion-MNIST where its files are (FASHION_MNIST_DIR, by
#    default Debian's folder) -> benchmarks/results/images_fashion_mnist.{json,md};
# 4. with two or more GPUs, the distributed tests on the GPUs' own backend (NCCL) are
#    the CPU ones of tests/test_distributed.py run with accelerator="gpu" by hand.
set -euo pipefail
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
python -m pytest -m gpu -q tests/test_gpu.py
python benchmarks/gpu_throughput.py --out benchmarks/results/gpu
python benchmarks/scaling.py --parts embedding --largest-set 10000000 --out benchmarks/results/scaling_gpu
FASHION_MNIST_DIR="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [ -e "${FASHION_MNIST_DIR}/train-images-idx3-ubyte.gz" ]; then
    python benchmarks/images.py --data fashion-mnist --fashion-mnist-path "${FASHION_MNIST_DIR}" \
        --out benchmarks/results/images_fashion_mnist
fi
