"""CPU peers (issues 15, 27): ours against PyTorch, ONNX Runtime and OpenVINO on this machine, in one run.

Rows: ResNet-20/56 training at batch 128 (`keras_resnet.training.train()` against PyTorch SGD steps),
ResNet-20/56 inference at batch 128, ResNet-50 at 224 batch 32 (images/s), and batch-1 latency of all three
(ms). Columns: ours (our SavedModel's `serving_default` in a process without `keras_resnet`), PyTorch eager
NCHW and channels_last, ONNX Runtime on the PyTorch model's ONNX export and on our ONNX graph, and (issue 27)
OpenVINO at its default precision and in f32 on PyTorch's export and on our IR, our LiteRT file, and our
int8 exports in ONNX Runtime and OpenVINO (`--columns` selects). `--weights=cifar10 --data=DIR` runs the CIFAR
rows on the published weights, calibrates and gates the int8 exports on DIR as a user's export is, and adds
every column's top-1 on DIR's 10,000 test images (random networks: int8 calibrated on random images). Every
engine uses the same threads, is checked against our logits before it is timed, and the columns take
turns window by window; the median of `--windows` windows is reported with the ratios and the settings.
The code is the package `benchmarks/cpu/` (its docstring describes the parts).

Usage:
    python benchmarks/cpu_peers.py [--rows=train20,infer20,...] [--windows=5] [--threads=N] [--json=PATH]
    python benchmarks/cpu_peers.py --rows=infer20 --batch=4 --windows=1 --window-seconds=0.05   # smoke
    KERAS_RESNET_WEIGHTS=../shared/weights/akamaster python benchmarks/cpu_peers.py \
        --rows=infer20,infer56,infer50,latency20,latency56,latency50 --weights=cifar10 \
        --data=../shared/datasets/cifar10-jpeg                                                   # issue 27

Exit status: 0; 1 when an output check failed (that column is not timed) or a row failed (its error is in the
JSON, the other rows are measured); 2 for a bad command line or a missing PyTorch / ONNX Runtime / onnx /
OpenVINO / LiteRT.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python benchmarks/cpu_peers.py` puts benchmarks/ first, not the project root
    sys.path.insert(0, ROOT)

from benchmarks.cpu.main import main  # noqa: E402  (after the project root is on the path)

if __name__ == "__main__":
    sys.exit(main())
