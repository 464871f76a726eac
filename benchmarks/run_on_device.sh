#!/usr/bin/env bash
# The GPU runs of issue 8, as the calls a session makes. Nothing here has run on a GPU yet.
#
# Here (the CPU machine), once per session:
#     bash benchmarks/run_on_device.sh prepare
# Then each step is one device `run` call, from the project root, with carry [".device"]:
#     run(command="bash benchmarks/run_on_device.sh A1", carry=[".device"], timeout_s=560)
# and `give_back` after the session's last call. Results come back under $OUT (log_*.txt, results_*.json,
# table_*.md, accuracy_<model>.csv, accuracy_<model>.keras).
#
# Plan (one session has 15 minutes of device time, start-up included; a command at most 10 minutes).
# Estimates come from the reference numbers in ../shared/device/README.md (plain Keras-on-JAX loop, H200,
# synthetic data: ResNet-56 bf16 21,900 img/s at batch 128, 50,500 at 512; ResNet-20 40,600 at 128), not
# from measurements of this script:
#   ResNet-56, 64k x 128 = 8.19M images: 6.2 min at 21,900 img/s (5.5 min at the 25,000 target);
#   ResNet-20: 3.4 min at 40,600 img/s; plus about 1 min of data decoding, compilation and evaluations.
# Compilation of one CIFAR configuration is guessed at 20-40 s (ResNet-110 more), torch.compile
# max-autotune at 1-2 min per batch size: the unknowns are why every call has --budget_s below its timeout
# (the script stops starting new measurements, or stops training, and still prints its table).
#
#   Session A (the headline numbers, then one accuracy run):
#     machine start                                                         ~1.5-2 min
#     A1  throughput + torch, ResNet-56 bf16, batch 128 and 512, same run   <= 8 min (budget 450 s)
#     A2  accuracy ResNet-20, 64k iterations                                <= 5 min (budget 270 s)
#   Session B:
#     B1  accuracy ResNet-56, 64k iterations                                <= 9 min (budget 520 s)
#     B2  ImageNet scale: ResNet-50 vs torchvision, 224x224, bf16           <= 4 min (budget 200 s)
#   Session C (the rest of the grid, and where the time goes):
#     C1  throughput ResNet-20/56/110 x {bf16, fp32} x {128, 512}, fused    <= 9 min (budget 500 s)
#     C2  profile ResNet-56 bf16: compute-only and train() loop variants    <= 4 min (budget 200 s)
#   Everything in one call, when only one is possible:  QUICK (all-quick, budget 500 s).
# If A2 would not fit after A1 (check `status`), run it first in session B.
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || dirname "$(dirname "$(readlink -f "$0")")")"

step=${1:-help}
gpu() {
  # shellcheck disable=SC1091
  source .device/setup.sh
  python benchmarks/gpu_cifar.py "$@"
}

case "$step" in
  prepare)  # here, not on the device
    bash ../shared/device/prepare.sh ;;
  A1)
    gpu --part=throughput,torch --models=resnet56 --precisions=bf16 --batch_sizes=128,512 \
        --variants=fused,fused@1 --torch_setups=eager,compiled --windows=5 --budget_s=450 ;;
  A2)
    gpu --part=accuracy --models=resnet20 --budget_s=270 ;;
  B1)
    gpu --part=accuracy --models=resnet56 --budget_s=520 ;;
  B2)
    gpu --part=imagenet --torch_setups=eager,compiled --windows=3 --budget_s=200 ;;
  C1)
    gpu --part=throughput --models=resnet20,resnet56,resnet110 --precisions=bf16,fp32 --batch_sizes=128,512 \
        --variants=fused --windows=5 --budget_s=500 ;;
  C2)
    gpu --part=throughput --models=resnet56 --precisions=bf16 --batch_sizes=128,512 \
        --variants=compute,host,package --windows=3 --budget_s=200 ;;
  QUICK)
    gpu --part=all-quick --budget_s=500 ;;
  smoke)  # here, on the CPU: every part with tiny sizes (about 2 minutes on 2 cores)
    export KERAS_BACKEND=jax JAX_PLATFORMS=cpu
    out=${OUT:-/tmp/gpu_cifar_smoke}
    python benchmarks/gpu_cifar.py --smoke --part=throughput,torch --variants=fused,package \
        --block_modules=tensorflow,matplotlib --out="$out/throughput_torch"
    python benchmarks/gpu_cifar.py --smoke --part=imagenet --block_modules=tensorflow,matplotlib --out="$out/imagenet"
    python benchmarks/gpu_cifar.py --smoke --part=accuracy --train_steps=32 --block_modules=tensorflow,matplotlib \
        --out="$out/accuracy" ;;
  *)
    sed -n '2,40p' "$0"
    echo "usage: bash benchmarks/run_on_device.sh {prepare|A1|A2|B1|B2|C1|C2|QUICK|smoke}" ;;
esac
