"""CPU peers (issue 15): the package against PyTorch and ONNX Runtime on the same machine, in one run.

`benchmarks/cpu_peers.py` is the entry point; this package holds its parts, one job per module:

- `settings`: the rows and columns of the table, the command line and the thread environment;
- `channel`: the JSON-lines protocol between the orchestrator and its worker processes;
- `timing`: calibrated, timed windows of a callable and their medians; `checks`: the output-match check;
- `torch_models`: a torchvision-layout ResNet-50 (v1.5) with our weights copied into it;
- `prepare` (a process): builds our networks, exports the SavedModel, our ONNX graph, OpenVINO IR, LiteRT
  and int8 files, the PyTorch copies and the PyTorch ONNX export, and the reference logits every engine is
  checked against;
- `torch_worker`, `ort_worker`, `serving_worker`, `runtime_worker` (OpenVINO and LiteRT), `train_worker`
  (processes): one engine each, timed
  window by window on request so that the orchestrator can interleave the columns of a row;
- `orchestrator`: runs the rows, interleaving the columns window by window; `report`: table and JSON;
- `main`: the entry point of `benchmarks/cpu_peers.py`.

Each engine runs in its own process with the same thread count; the SavedModel is served by a process
that never imports `keras_resnet` (checked there).

Example:
    >>> from benchmarks.cpu.settings import parse_args
    >>> parse_args(["--rows=infer20", "--windows=3"]).rows
    ['infer20']
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The repository root (workers run with it as working directory and on `sys.path`)."""
