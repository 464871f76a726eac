"""GPU speed and accuracy of the package on Keras' JAX backend, against PyTorch references (issue 8).

Run on the GPU machine (no TensorFlow, no Keras there; see ../shared/device/README.md):

    bash ../shared/device/prepare.sh                          # here, once per session
    # device run, carry [".device"]:
    source .device/setup.sh && python benchmarks/gpu_cifar.py --part=throughput,torch

One part (or a comma list of parts) per invocation, since everything does not fit one session's 15 minutes
(benchmarks/run_on_device.sh has the planned split):

* `throughput`: end-to-end training images/s of ResNet-20/56/110 at batch 128 and 512, bf16 mixed precision
  and float32, on the JPEG CIFAR-10 with the paper's augmentation. Variants (`--variants`):
  - `fused` (the headline): the package's own jitted step (`keras_resnet.training.steppers.JaxStepper`:
    `model.stateless_call` + the recipe's SGD via `optimizer.stateless_apply`, exactly what `train()` runs
    on JAX) called inside one jitted program that also gathers the batch from the uint8 training set
    resident on the GPU, augments it there (`keras_resnet.data.device_augment`: pad 4, random crop, flip,
    normalise) and runs `--steps_per_call` iterations in a `lax.scan`, state buffers donated. Only the
    batch indices (a host permutation per epoch) cross host -> device per call.
  - `host`: the same scan, fed with batches augmented on the host by the package's numpy `ArrayIterator`
    and transferred every call (the in-memory path's augmentation, for comparison).
  - `package`: `keras_resnet.training.train()` itself (`input="auto"`: on one GPU the uint8 training set
    lives on the device and each compiled step gathers and augments its batch there, as `fused` does, but
    one dispatch per iteration and the loss read on the host every `sync_every` iterations); images/s of its
    epochs (`log.csv`), the first epoch (compilation) dropped.
  - `compute`: the scan on one fixed, already normalised batch (no gather, no augmentation): the model's
    compute + dispatch ceiling, so that `fused` - `compute` is the input's cost (the profile the issue asks
    for where a target is missed).
* `torch`: a PyTorch ResNet written here (same architecture as `keras_resnet.cifar_resnet`, option A,
  checked against the Keras model by copying weights), AMP bf16, channels-last, data resident on the GPU and
  augmented there, in two setups in the same run: `eager` and `compiled` (`torch.compile(mode=
  "max-autotune")`, CUDA graphs through it, the optimizer step compiled too). With `throughput` in the same
  invocation the table gives the ratios.
* `imagenet`: `keras_resnet.ResNet50()` (stride in the 3x3 conv, torchvision's v1.5, by default: the same
  FLOPs as torchvision) training images/s at 224x224, synthetic data, bf16, batch 256 (halved on OOM),
  against `torchvision.models.resnet50` (AMP bf16, channels-last, eager and compiled).
* `accuracy`: the paper's recipe (64k iterations, batch 128, 0.1 / 10 at 32k and 48k, SGD 0.9, wd 1e-4) on
  the JPEG CIFAR-10 ($CIFAR10_JPEG_DIR), test accuracy on the 10,000 test images every `--eval_every`
  epochs and at the end; `--train_steps` shortens it (boundaries keep their proportions, as in `train()`).
  `--accuracy_loop=fused` (default: the fused step above) or `package` (`training.train()` itself).
* `all-quick`: throughput (ResNet-56, bf16, fused) + torch + imagenet with few windows.

Every invocation prints an environment report, correctness checks, the measurements, and a markdown table
LAST; logs and JSON go to $OUT (else runs/gpu_cifar/<time>). `--smoke` shrinks everything for a CPU test.
Nothing here imports TensorFlow (it is blocked in `sys.modules` unless `--block_modules=`).

Modules (benchmarks/gpu/): `cli` (flags and their defaults), `main` (the run: environment, parts, table),
`report` (log tee, JSON results, the table), `environment`, `data` (CIFAR arrays, batch index stream),
`programs` (the package's model and JAX step, the multi-iteration programs, timed windows),
`torch_reference` (the PyTorch ResNet and its training-throughput loop), and one module per part:
`throughput`, `torch_cifar`, `imagenet`, `accuracy`. None of them imports Keras, JAX or PyTorch at module
level, so `--block_modules` and `KERAS_BACKEND` take effect before any of those is loaded.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The project root (the folder holding `benchmarks/` and `keras_resnet/`)."""
