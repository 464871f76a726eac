"""CPU peers (issue 15): ours against PyTorch and ONNX Runtime on this machine, every cell in one run.

Rows: ResNet-20/56 training at batch 128 (`keras_resnet.training.train()` against PyTorch SGD steps),
ResNet-20/56 inference at batch 128, ResNet-50 at 224 batch 32 (images/s), and batch-1 latency of all three
(ms). Columns: ours (our SavedModel's `serving_default` in a process without `keras_resnet`), PyTorch eager
NCHW and channels_last, ONNX Runtime on the PyTorch model's ONNX export and on our ONNX graph. Every
engine uses the same threads, is checked against our logits before it is timed, and the columns take
turns window by window; the median of `--windows` windows is reported with the ratios and the settings.
The code is the package `benchmarks/cpu/` (its docstring describes the parts).

Usage:
    python benchmarks/cpu_peers.py [--rows=train20,infer20,...] [--windows=5] [--threads=N] [--json=PATH]
    python benchmarks/cpu_peers.py --rows=infer20 --batch=4 --windows=1 --window-seconds=0.05   # smoke

Exit status: 0; 1 when an output check failed (that column is not timed) or a row failed (its error is in the
JSON, the other rows are measured); 2 for a bad command line or a missing PyTorch / ONNX Runtime / onnx.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python benchmarks/cpu_peers.py` puts benchmarks/ first, not the project root
    sys.path.insert(0, ROOT)

from benchmarks.cpu.main import main  # noqa: E402  (after the project root is on the path)

if __name__ == "__main__":
    sys.exit(main())
