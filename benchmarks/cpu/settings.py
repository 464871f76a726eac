"""The table of issue 15 (rows, columns), the command line, and the environment every worker gets.

Rows are measured cells of one kind (training or inference throughput in images/s, or batch-1 latency in
ms) for one network; columns are the engines: ours (`train()` for training, the SavedModel's
`serving_default` for inference), PyTorch eager NCHW, PyTorch channels_last, ONNX Runtime on the PyTorch
model's ONNX export and ONNX Runtime on our ONNX graph (`keras_resnet.inference`).

Example:
    >>> args = parse_args(["--rows=train20,latency50", "--threads=2"])
    >>> [ROWS[name].model for name in args.rows], args.threads
    (['resnet20', 'resnet50'], 2)
"""

from __future__ import annotations

import argparse
import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        name: the `--rows` name, e.g. "train20".
        title: the row's label in the table (`{batch}` is replaced by the batch size).
        model: "resnet20", "resnet56" or "resnet50".
        task: "train" (images/s), "infer" (images/s) or "latency" (ms per batch-1 call).
        batch: the batch size.
    """

    name: str
    title: str
    model: str
    task: str
    batch: int

    @property
    def label(self) -> str:
        """The title with the batch size filled in."""
        return self.title.format(batch=self.batch)

    @property
    def size(self) -> int:
        """The input's height and width."""
        return 224 if self.model == "resnet50" else 32

    @property
    def unit(self) -> str:
        return "ms" if self.task == "latency" else "img/s"


ROWS = {row.name: row for row in (
    Row("train20", "ResNet-20 training, batch {batch} (img/s)", "resnet20", "train", 128),
    Row("train56", "ResNet-56 training, batch {batch} (img/s)", "resnet56", "train", 128),
    Row("infer20", "ResNet-20 inference, batch {batch} (img/s)", "resnet20", "infer", 128),
    Row("infer56", "ResNet-56 inference, batch {batch} (img/s)", "resnet56", "infer", 128),
    Row("infer50", "ResNet-50 inference at 224, batch {batch} (img/s)", "resnet50", "infer", 32),
    Row("latency20", "ResNet-20 latency, batch {batch} (ms)", "resnet20", "latency", 1),
    Row("latency56", "ResNet-56 latency, batch {batch} (ms)", "resnet56", "latency", 1),
    Row("latency50", "ResNet-50 latency at 224, batch {batch} (ms)", "resnet50", "latency", 1),
)}
"""Every row, in table order."""

COLUMN_TITLES = {
    "ours": "ours",
    "ours_jax": "ours (JAX train())",
    "torch_nchw": "PyTorch eager (NCHW)",
    "torch_cl": "PyTorch channels_last",
    "ort_torch": "ONNX Runtime (PyTorch's ONNX)",
    "ort_ours": "ONNX Runtime (our ONNX)",
    "ort_keras": "ONNX Runtime (Keras' ONNX, tf2onnx)",
    "ov_torch": "OpenVINO default precision (PyTorch's ONNX)",
    "ov_torch_f32": "OpenVINO f32 (PyTorch's ONNX)",
    "ov_ours": "OpenVINO default precision (our IR)",
    "ov_ours_f32": "OpenVINO f32 (our IR)",
    "litert_ours": "LiteRT (ours)",
    "ort_ours_int8": "ONNX Runtime int8 (ours)",
    "ov_ours_int8": "OpenVINO int8 (ours)",
    "ours_lt": "ours, --latency-threads",
    "ort_torch_lt": "ONNX Runtime (PyTorch's ONNX), --latency-threads",
}
INFER_COLUMNS = ("ours", "torch_nchw", "torch_cl", "ort_torch", "ort_ours", "ort_keras", "ov_torch", "ov_torch_f32", "ov_ours",
                 "ov_ours_f32", "litert_ours", "ort_ours_int8", "ov_ours_int8")
LOW_PRECISION_COLUMNS = ("ov_torch", "ov_ours", "ort_ours_int8", "ov_ours_int8")
"""Columns that do not compute in float32 (OpenVINO's default bf16 on AVX-512 BF16 / AMX processors, int8):
checked against our logits with `LOW_PRECISION_TOLERANCE` instead of 1e-4, and by their top-1."""
LOW_PRECISION_TOLERANCE = 0.1
LATENCY_THREAD_COLUMNS = ("ours_lt", "ort_torch_lt")
"""Latency-row columns with `--latency-threads`: our SavedModel and ONNX Runtime on PyTorch's export at
that thread count (TF intra-op and inter-op N, ONNX Runtime intra-op N), each in a worker of its own."""
TRAIN_COLUMNS = ("ours", "ours_jax", "torch_nchw", "torch_cl")
TRAIN_BACKENDS = ("tensorflow", "jax")
R50_SERVING = ("fixed", "imagenet")


def comma_list(text, accepted, flag):
    """`"a,b"` -> `["a", "b"]`, each checked against `accepted` (an `argparse` error naming the flag)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item not in accepted]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{flag}: received {text!r}; accepted: a comma list of {', '.join(accepted)}")
    return items


def positive(kind):
    """An argparse type: a positive `kind` (int or float)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}; received {text!r}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def build_parser():
    """The `benchmarks/cpu_peers.py` command line."""
    parser = argparse.ArgumentParser(prog="benchmarks/cpu_peers.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS), type=lambda t: comma_list(t, ROWS, "--rows"),
                        help="comma list of rows (default: all): " + ", ".join(ROWS))
    parser.add_argument("--windows", type=positive(int), default=5, help="timed windows per cell (median)")
    parser.add_argument("--window-seconds", type=positive(float), default=1.5,
                        help="target length of an inference window; the calls per window are calibrated")
    parser.add_argument("--train-steps", type=positive(int), default=8,
                        help="training steps per window (= `sync_every` of train())")
    parser.add_argument("--pause", type=float, default=0.3,
                        help="seconds between two windows (the previous engine's spinning threads go idle)")
    parser.add_argument("--warmup-windows", type=int, default=1, help="untimed training windows first (>= 1)")
    parser.add_argument("--threads", type=positive(int), default=os.cpu_count() or 1,
                        help="threads of every engine (torch, ONNX Runtime intra-op, TF intra-op)")
    parser.add_argument("--tf-inter-op-threads", type=positive(int), default=None,
                        help="TensorFlow inter-op threads (default: --threads)")
    parser.add_argument("--latency-threads", type=positive(int), default=None,
                        help="also time the batch-1 rows of our SavedModel and of ONNX Runtime (PyTorch's ONNX) "
                             "with this many threads (e.g. 1, TF Serving's --tensorflow_intra_op_parallelism=1)")
    parser.add_argument("--train-backends", default="tensorflow",
                        type=lambda t: comma_list(t, TRAIN_BACKENDS, "--train-backends"),
                        help="Keras backends of our train() column(s): tensorflow and/or jax")
    parser.add_argument("--r50-serving", choices=R50_SERVING, default="fixed",
                        help="ResNet-50 SavedModel: 'fixed' 224x224 input (same work as the ONNX graphs) or "
                             "'imagenet' (resize to 256 + centre crop in the graph)")
    parser.add_argument("--columns", default=",".join(INFER_COLUMNS),
                        type=lambda t: comma_list(t, INFER_COLUMNS, "--columns"),
                        help="inference columns to measure (default: all): " + ", ".join(INFER_COLUMNS))
    parser.add_argument("--weights", choices=("random", "cifar10"), default="random",
                        help="CIFAR networks: random BN statistics (default) or the published CIFAR-10 weights "
                             "(akamaster; KERAS_RESNET_WEIGHTS), with every column's top-1 on --data's test split "
                             "and int8 calibrated and gated on --data")
    parser.add_argument("--data", default=None,
                        help="with --weights=cifar10: the CIFAR-10 images (e.g. ../shared/datasets/cifar10-jpeg)")
    parser.add_argument("--batch", type=positive(int), default=None,
                        help="override every selected row's batch size (smoke runs)")
    parser.add_argument("--json", default="cpu_peers.json", help="where the results JSON is written")
    parser.add_argument("--work-dir", default=None, help="artifacts (exports, logs); a temporary directory by default")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def parse_args(argv=None):
    """Parsed and checked arguments (exit 2 with a message naming the flag on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.warmup_windows < 1:
        parser.error(f"--warmup-windows must be >= 1 (the first window compiles); received {args.warmup_windows}")
    if args.pause < 0:
        parser.error(f"--pause must be >= 0 seconds; received {args.pause}")
    if args.weights == "cifar10" and not args.data:
        parser.error("--weights=cifar10 needs --data (the CIFAR-10 images: calibration and top-1)")
    if args.tf_inter_op_threads is None:
        args.tf_inter_op_threads = args.threads
    return args


def selected_rows(args):
    """The `Row`s to measure, in table order, with `--batch` applied."""
    rows = [ROWS[name] for name in ROWS if name in args.rows]
    if args.batch is not None:
        rows = [dataclasses.replace(row, batch=args.batch) for row in rows]
    return rows


def row_columns(row, args):
    """The columns measured for `row`: training has ours per backend and the two PyTorch layouts."""
    if row.task != "train":
        extra = LATENCY_THREAD_COLUMNS if row.task == "latency" and args.latency_threads else ()
        return [c for c in INFER_COLUMNS if c in args.columns] + list(extra)
    ours = [{"tensorflow": "ours", "jax": "ours_jax"}[backend] for backend in args.train_backends]
    return ours + ["torch_nchw", "torch_cl"]


def worker_env(args, backend="tensorflow", threads=None):
    """The environment of a worker: the same thread count (`--threads`, or `threads` for the
    `--latency-threads` workers, TensorFlow's inter-op threads then too), quiet TensorFlow, the repository
    importable."""
    from benchmarks.cpu import ROOT

    env = dict(os.environ)
    inter_op = str(threads or args.tf_inter_op_threads)
    threads = str(threads or args.threads)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TF_CPP_MIN_LOG_LEVEL="3",
               KERAS_BACKEND=backend, CPU_PEERS_THREADS=threads,
               CPU_PEERS_TF_INTER_OP=inter_op, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def thread_settings(args):
    """What the JSON and the printout record about threads, per engine."""
    return {
        "threads": args.threads,
        "torch": f"torch.set_num_threads({args.threads}), OMP_NUM_THREADS={args.threads}",
        "onnxruntime": f"intra_op_num_threads={args.threads}, inter_op_num_threads=1, ORT_SEQUENTIAL, "
                       "ORT_ENABLE_ALL",
        "tensorflow": f"intra_op={args.threads}, inter_op={args.tf_inter_op_threads}",
        "jax": "XLA CPU default thread pool",
        "openvino": f"INFERENCE_NUM_THREADS={args.threads}; precision default (the plugin's) or "
                    "INFERENCE_PRECISION_HINT=f32",
        "litert": f"Interpreter(num_threads={args.threads}), serving_default signature runner",
        "latency_threads": (f"batch-1 rows also with {args.latency_threads} thread(s): TensorFlow intra_op and "
                            f"inter_op {args.latency_threads}, ONNX Runtime intra_op {args.latency_threads}"
                            if args.latency_threads else "not measured"),
    }
