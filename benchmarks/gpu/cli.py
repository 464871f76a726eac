"""The command line of `benchmarks/gpu_cifar.py`: flags, their defaults (which depend on `--smoke` and the
parts asked for), and the checks of their values.

Example:
    >>> from benchmarks.gpu.cli import parse_args
    >>> args = parse_args(["--smoke", "--part=throughput"])
    >>> args.parts, args.models, args.batch_sizes
    (['throughput'], ['resnet8'], [16, 32])
"""

from __future__ import annotations

import argparse
import os

import benchmarks.gpu as gpu_package
from benchmarks.gpu import ROOT

PARTS = ("throughput", "torch", "imagenet", "accuracy", "all-quick")
PRECISIONS = {"bf16": "mixed_bfloat16", "fp32": "float32"}
VARIANTS = ("fused", "host", "package", "compute")
TORCH_SETUPS = ("eager", "compiled")


def csv_list(kind=str):
    """An argparse `type` for a comma list: `csv_list(int)("128,512") == [128, 512]`."""
    return lambda text: [kind(t) for t in text.split(",") if t.strip()]


def add_jax_flags(p):
    """Flags of the parts, models, sizes and the JAX programs (throughput)."""
    p.add_argument("--part", type=csv_list(), default=["all-quick"], help=f"comma list of {PARTS}")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and few steps, for a CPU test")
    p.add_argument("--models", type=csv_list(), default=None,
                   help="CIFAR models (throughput: resnet20,resnet56,resnet110; accuracy: resnet56)")
    p.add_argument("--batch_sizes", type=csv_list(int), default=None, help="default 128,512")
    p.add_argument("--precisions", type=csv_list(), default=None, help="bf16,fp32 (default both; all-quick bf16)")
    p.add_argument("--variants", type=csv_list(), default=None,
                   help="fused,host,package,compute (default fused); NAME@K overrides --steps_per_call, e.g. fused@1")
    p.add_argument("--windows", type=int, default=None, help="timed windows (median reported); default 5")
    p.add_argument("--window_steps", type=int, default=None,
                   help="iterations per window at batch 128 (scaled by 128/batch, min 2 calls); default 300")
    p.add_argument("--warmup_calls", type=int, default=None, help="calls after compilation before timing")
    p.add_argument("--steps_per_call", type=int, default=None,
                   help="iterations per jitted call (lax.scan; 1: no loop); default 10 (smoke 1)")
    p.add_argument("--scan_unroll", type=int, default=1, help="lax.scan unroll factor")
    p.add_argument("--data", default=None, help="CIFAR-10 JPEG folder/archive, or 'synthetic' "
                   "(default $CIFAR10_JPEG_DIR, else ../shared/datasets/cifar10-jpeg; smoke: synthetic)")
    p.add_argument("--train_images", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test_images", type=int, default=None, help="use only the first N test images")


def add_reference_flags(p):
    """Flags of the PyTorch references (CIFAR and torchvision at ImageNet scale)."""
    p.add_argument("--torch_depth", type=int, default=None, help="depth of the PyTorch CIFAR ResNet (56)")
    p.add_argument("--torch_setups", type=csv_list(), default=None, help="eager,compiled")
    p.add_argument("--torch_compile_mode", default="max-autotune")
    p.add_argument("--torch_precision", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--imagenet_model", default=None, help="keras_resnet model (resnet50)")
    p.add_argument("--imagenet_size", type=int, default=None, help="image size (224)")
    p.add_argument("--imagenet_batch", type=int, default=None, help="batch (256; halved on OOM)")
    p.add_argument("--imagenet_stride_in_3x3", type=int, default=1,
                   help="1: torchvision's v1.5 (same FLOPs as torchvision); 0: the paper's Caffe v1")
    p.add_argument("--imagenet_compile_mode", default=None, help="torch.compile mode for torchvision "
                   "(default --torch_compile_mode)")


def add_run_flags(p):
    """Flags of the accuracy part and of the run as a whole (budget, output, cache, blocked modules)."""
    p.add_argument("--train_steps", type=int, default=None, help="accuracy: iterations (64000)")
    p.add_argument("--accuracy_batch", type=int, default=128)
    p.add_argument("--accuracy_precision", default="bf16", choices=tuple(PRECISIONS))
    p.add_argument("--accuracy_loop", default="fused", choices=("fused", "package"))
    p.add_argument("--eval_every", type=float, default=None, help="accuracy: epochs between evaluations (8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget_s", type=float, default=None,
                   help="stop starting new measurements (and stop training) after this many seconds "
                        "(default 560: under the device's 10-minute command limit)")
    p.add_argument("--out", default=None, help="output folder (default $OUT, else runs/gpu_cifar/<time>)")
    p.add_argument("--jax_cache_dir", default=None,
                   help="persistent XLA compilation cache (default runs/jax_cache on a GPU; '' disables)")
    p.add_argument("--block_modules", type=csv_list(), default=["tensorflow"],
                   help="modules made unimportable before anything is imported (default tensorflow)")


def build_parser():
    """The argparse parser of all flags (the package docstring is its description)."""
    p = argparse.ArgumentParser(description=gpu_package.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_jax_flags(p)
    add_reference_flags(p)
    add_run_flags(p)
    return p


def expand_parts(requested, parser):
    """`--part` as the list of parts to run: `all-quick` is throughput, torch and imagenet."""
    parts = []
    for part in requested:
        if part not in PARTS:
            parser.error(f"--part: {part!r} is not one of {PARTS}")
        parts += ["throughput", "torch", "imagenet"] if part == "all-quick" else [part]
    return list(dict.fromkeys(parts))


def apply_defaults(args):
    """Fills every flag left unset with its default for this run (`--smoke`, `all-quick`, the parts)."""
    quick = "all-quick" in args.part
    smoke = args.smoke

    def default(name, value):
        if getattr(args, name) is None:
            setattr(args, name, value)

    default("models", ["resnet8"] if smoke else (["resnet56"] if quick or args.parts == ["accuracy"]
                                                  else ["resnet20", "resnet56", "resnet110"]))
    default("batch_sizes", [16, 32] if smoke else [128, 512])
    default("precisions", ["bf16"] if quick else ["bf16", "fp32"])
    default("variants", ["fused"])
    default("windows", 2 if smoke else (3 if quick else 5))
    default("window_steps", 4 if smoke else 300)
    default("warmup_calls", 1 if smoke else 3)
    default("steps_per_call", 1 if smoke else 10)
    default("data", "synthetic" if smoke else (os.environ.get("CIFAR10_JPEG_DIR")
                                                or os.path.join(ROOT, "..", "shared", "datasets", "cifar10-jpeg")))
    default("train_images", 512 if smoke else None)
    default("test_images", 256 if smoke else None)
    default("torch_depth", 8 if smoke else 56)
    default("torch_setups", ["eager"] if smoke else ["eager", "compiled"])
    default("imagenet_model", "resnet18" if smoke else "resnet50")
    default("imagenet_size", 32 if smoke else 224)
    default("imagenet_batch", 2 if smoke else 256)
    default("imagenet_compile_mode", args.torch_compile_mode)
    default("train_steps", 24 if smoke else None)
    default("eval_every", 1.0 if smoke else 8.0)
    default("budget_s", 560.0)
    if smoke and args.accuracy_batch == 128:
        args.accuracy_batch = 32


def check_choices(args, parser):
    """Exits with argparse's usage error (code 2) naming the flag and the accepted values."""
    for v in args.variants:
        name, _, k = v.partition("@")
        if name not in VARIANTS or (k and not k.isdigit()):
            parser.error(f"--variants: {v!r} is not one of {', '.join(VARIANTS)}")
    for v in args.precisions:
        if v not in PRECISIONS:
            parser.error(f"--precisions: {v!r} is not one of {list(PRECISIONS)}")
    for v in args.torch_setups:
        if v not in TORCH_SETUPS:
            parser.error(f"--torch_setups: {v!r} is not one of {', '.join(TORCH_SETUPS)}")


def parse_args(argv=None):
    """Parses `argv` (default `sys.argv[1:]`) into the run's arguments, defaults filled, `parts` added."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.parts = expand_parts(args.part, parser)
    apply_defaults(args)
    check_choices(args, parser)
    return args
