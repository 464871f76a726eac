"""GPU speed and accuracy of the package on Keras' JAX backend, against PyTorch references (issue 8).

The entry point (`benchmarks/run_on_device.sh` and tests/test_gpu_benchmark_smoke.py call it); the code is
the package `benchmarks/gpu/` (its docstring describes the parts, `--help` prints it):

    source .device/setup.sh && python benchmarks/gpu_cifar.py --part=throughput,torch   # on the GPU machine
    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python benchmarks/gpu_cifar.py --smoke --part=throughput   # CPU test
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python benchmarks/gpu_cifar.py` puts benchmarks/ first, not the project root
    sys.path.insert(0, ROOT)

from benchmarks.gpu.main import main  # noqa: E402  (after the project root is on the path)

if __name__ == "__main__":
    sys.exit(main())
