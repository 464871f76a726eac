"""Top-1 / top-5 error of a trained run or of published weights on a split of any data source.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: the ImageNet evaluation of
Tables 3-4 (top-1 and top-5 error; shorter side 256 and the centre 224 crop, or the 10-crop testing of
Table 3) and the CIFAR-10 test error of Table 6.

- `evaluate_model_dir(model_dir, data, split=None, ...)`: a run's `checkpoints/best.keras` (or `latest`)
  with the run's own preprocessing (`dataset.json`, `mean_image.npy`, and from `config.json` its image size
  and the input normalisation and evaluation transform of the weights it started from);
- `evaluate_pretrained(model, weights, data, ...)`: a network with `weights=` ("cifar10", "imagenet", a
  tagged set such as "imagenet-tv2", or a file of `keras_resnet.weights`) fed with the normalisation those
  weights were trained with, and a tagged set's images with its publisher's evaluation transform
  (`keras_resnet.eval_transform`: e.g. shorter side 232, centre 224 crop, Pillow bilinear).

Both return a JSON-ready dict: `top1_error`, `top5_error` (None with 5 classes or fewer), `top1_accuracy`,
`loss`, `images`, `split`, `crops` and what was evaluated. A user's mistake (a missing run file, a split the
data lacks, class folders that are not the run's, weights for another network) is an `EvaluationError`
naming the flag or file.

Example:
    >>> result = evaluate_pretrained("resnet56", "cifar10", "../shared/datasets/cifar10-jpeg")  # needs ../shared  # doctest: +SKIP
    >>> round(100 * result["top1_error"], 2)  # needs ../shared  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

import numpy as np

CHECKPOINTS = ("best", "latest")
CIFAR_SIZE = 32
IMAGENET_CROP = 224


class EvaluationError(ValueError):
    """A bad argument, file or data source; the message names the flag or file (the CLI exits with 2)."""


def read_run_file(model_dir, path):
    """The content of a run's `config.json`, `dataset.json` (JSON) or `mean_image.npy`; an `EvaluationError`
    naming `--model_dir` and the file when it cannot be read."""
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise EvaluationError(f"--model_dir={model_dir}: {os.path.basename(path)} cannot be read "
                              f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                              "accepted: a finished training run's directory (docs/CONTRACTS.md).") from None


def run_files(model_dir, checkpoint):
    """`(config, dataset, mean, checkpoint path)` of a run, each checked to exist."""
    if checkpoint not in CHECKPOINTS:
        raise EvaluationError(f"--checkpoint must be one of {list(CHECKPOINTS)}; received {checkpoint!r}.")
    if not os.path.isdir(model_dir):
        what = "is a file" if os.path.exists(model_dir) else "no such directory"
        raise EvaluationError(f"--model_dir={model_dir}: {what}; accepted: a finished training run's directory.")
    paths = {name: os.path.join(model_dir, name) for name in ("config.json", "dataset.json", "mean_image.npy")}
    paths["checkpoint"] = os.path.join(model_dir, "checkpoints", f"{checkpoint}.keras")
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise EvaluationError(f"--model_dir={model_dir} is not a finished training run: {missing[0]} is missing.")
    return (read_run_file(model_dir, paths["config.json"]), read_run_file(model_dir, paths["dataset.json"]),
            read_run_file(model_dir, paths["mean_image.npy"]), paths["checkpoint"])


def default_split(data, split, data_dir=None):
    """`split` in canonical form, or the data's evaluation split (`keras_resnet.data.default_eval_split`)."""
    from keras_resnet import data as data_lib

    try:
        if split:
            return data_lib.canonical_split(split)
        return data_lib.default_eval_split(data, data_dir)
    except (ValueError, FileNotFoundError) as error:
        raise EvaluationError(f"--data={data}: {error}") from None


def eval_dataset(data, split, batch_size, *, kind, size, mean, ten_crop, normalization, data_dir=None,
                 eval_transform=None):
    """The tf.data batches of `split` as the network saw them in training, and their `DatasetInfo`.

    Args:
        kind: "cifar" (whole images, resized to `size` x `size` when they are not that size) or "imagenet"
            (shorter side `round(256 * size / 224)`, centre `size` crop or 10 crops).
        mean: the mean in 0..255 units the pipeline subtracts before dividing by 255.
        normalization: an `InputNormalization` applied on top (published weights), or None.
        eval_transform: a tagged set's published evaluation transform (`keras_resnet.eval_transform`) used
            instead of the 256 / 224 geometry, or None.
    """
    from keras_resnet import data as data_lib

    if ten_crop and kind != "imagenet":
        raise EvaluationError("--ten_crop: 10-crop testing is for ImageNet-style images; this network sees whole "
                              f"{size}x{size} CIFAR-style images.")
    kwargs = dict(training=False, mean=np.asarray(mean, np.float32), preprocessing=kind, ten_crop=ten_crop,
                  data_dir=data_dir)
    if kind == "imagenet":
        kwargs.update(crop_size=int(size), eval_transform=eval_transform)
    else:  # as training did with --image_size (Pillow, bilinear); images of that size are left as they are
        kwargs["image_size"] = (int(size), int(size))
    try:
        ds, info = data_lib.load(data, split, batch_size, **kwargs)
    except (ValueError, FileNotFoundError) as error:
        raise EvaluationError(f"--data={data}: {str(error).splitlines()[0]}") from None
    if normalization is not None:
        ds = ds.map(lambda x, y: (normalization.tf(x), y))
    return ds, info


def measure(model, ds, classes):
    """`EvalResult` of `model` on the batches `ds` (10-crop batches averaged over their crops)."""
    from keras_resnet.training.scoring import evaluate

    return evaluate(lambda x: np.asarray(model.predict_on_batch(x)), ds.as_numpy_iterator(), classes)


def result_dict(result, **described):
    """The JSON-ready result: what was evaluated, then the numbers."""
    return {**described, "images": result.count, "top1_error": result.error,
            "top1_accuracy": 1.0 - result.error, "top5_error": result.top5_error, "loss": result.loss}


def evaluate_model_dir(model_dir, data, split=None, ten_crop=False, checkpoint="best", batch_size=64,
                       data_dir=None):
    """Top-1 / top-5 error of a training run's checkpoint on `split` of `data`, preprocessed as in training.

    Args:
        model_dir: the run's directory (docs/CONTRACTS.md: config.json, dataset.json, mean_image.npy,
            checkpoints/).
        data: any source `keras_resnet.data.load` takes, with the run's class folders.
        split: "test", "validation" (a `val/` folder), "train"; default the data's evaluation split.
        ten_crop: 10-crop testing (ImageNet-style runs).
        checkpoint: "best" or "latest".
        batch_size: images per batch.
        data_dir: TFDS data directory.

    Returns:
        The result dict (see the module docstring).

    Raises:
        EvaluationError: naming the flag or file.
    """
    import keras

    import keras_resnet.recipes  # noqa: F401  (registers the schedules the checkpoint's optimizer names)
    from keras_resnet.normalization import InputNormalization

    config, dataset, mean, path = run_files(model_dir, checkpoint)
    split = default_split(data, split, data_dir)
    kind = dataset.get("preprocessing", "cifar")
    size = int(dataset.get("image_shape", [CIFAR_SIZE])[0])
    normalization = InputNormalization.from_dict(config.get("input_normalization"))
    transform = run_transform(model_dir, config, kind, ten_crop)
    ds, info = eval_dataset(data, split, batch_size, kind=kind, size=size, mean=mean, ten_crop=ten_crop,
                            normalization=normalization, data_dir=data_dir, eval_transform=transform)
    if list(info.class_names) != list(dataset.get("class_names", info.class_names)):
        raise EvaluationError(f"--data={data}: its classes {info.class_names[:10]} are not the run's "
                              f"{dataset['class_names'][:10]} (--model_dir={model_dir}); labels would not match.")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any reader's error: a truncated, foreign or garbage file
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise EvaluationError(f"--model_dir={model_dir}: checkpoints/{os.path.basename(path)} cannot be loaded "
                              f"({type(error).__name__}: {first}).") from None
    result = measure(model, ds, len(info.class_names))
    return result_dict(result, model=config.get("model", model.name), model_dir=str(model_dir),
                       checkpoint=checkpoint, data=str(data), split=split, crops=10 if ten_crop else 1,
                       image_size=size, eval_transform=None if transform is None else transform.to_dict())


def run_transform(model_dir, config, kind, ten_crop):
    """The evaluation transform a run recorded (config.json `eval_transform`: that of the tagged weights it
    started from, at its crop), or None; `EvaluationError` for a malformed record or with `ten_crop`."""
    from keras_resnet.eval_transform import EvalTransform

    try:
        transform = EvalTransform.of_run(config)
    except ValueError as error:
        raise EvaluationError(f"--model_dir={model_dir}: {error}") from None
    if transform is None or kind != "imagenet":
        return None
    if ten_crop:
        raise EvaluationError(f"--ten_crop: --model_dir={model_dir} is evaluated as its --init_from weights' "
                              f"publisher does ({transform.describe()}), a single crop; leave out --ten_crop.")
    return transform


def pretrained_model(model, weights, classes, size, stride_in_3x3=None):
    """`keras_resnet.build(model, weights=weights)` at the evaluation size, and its `InputNormalization`."""
    from keras_resnet.registry import build
    from keras_resnet.normalization import InputNormalization
    from keras_resnet.weights import WeightsUnavailableError, preprocessing_of

    kwargs = {} if stride_in_3x3 is None else {"stride_in_3x3": bool(stride_in_3x3)}
    try:
        normalization = InputNormalization(preprocessing_of(weights, model=model, **kwargs))
        network = build(model, weights=weights, classes=classes, input_shape=(size, size, 3), **kwargs)
    except (ValueError, WeightsUnavailableError, OSError) as error:
        raise EvaluationError(f"--weights={weights} for --model={model}: {str(error).splitlines()[0]}") from None
    return network, normalization


def evaluate_pretrained(model, weights, data, split=None, ten_crop=False, image_size=None, batch_size=64,
                        stride_in_3x3=None, data_dir=None):
    """Top-1 / top-5 error of `model` with pretrained `weights` on `split` of `data`.

    The images get the weights' own normalisation (`keras_resnet.weights.preprocessing_of`); CIFAR networks
    see whole 32x32 images, ImageNet networks the evaluation geometry at `image_size` (default 224). The
    data's classes, in their sorted folder order, must be the weights' (CIFAR-10's and ImageNet's are).

    Args:
        model: a network name ("resnet56", "resnet50").
        weights: "cifar10", "imagenet", a tagged set ("imagenet-tv2", "imagenet-a1": its own transform and
            stride placement) or a weights file (`keras_resnet.weights`).
        data: any source `keras_resnet.data.load` takes.
        split: default the data's evaluation split.
        ten_crop: 10-crop testing (ImageNet networks).
        image_size: the crop of an ImageNet network (default 224).
        batch_size: images per batch.
        stride_in_3x3: the bottleneck stride placement (torchvision's ResNet-50/101/152 files).
        data_dir: TFDS data directory.

    Raises:
        EvaluationError: naming the flag.
    """
    from keras_resnet.registry import model_spec

    try:
        family = model_spec(model).family
    except ValueError as error:
        raise EvaluationError(f"--model: {error}") from None
    split = default_split(data, split, data_dir)
    kind = "cifar" if family == "cifar" else "imagenet"
    size = int(image_size or (CIFAR_SIZE if kind == "cifar" else IMAGENET_CROP))
    transform, stride_in_3x3 = published_transform(model, weights, stride_in_3x3, size, ten_crop)
    zero = np.zeros((1, 1, 3), np.float32)
    probe, info = eval_dataset(data, split, batch_size, kind=kind, size=size, mean=zero, ten_crop=ten_crop,
                               normalization=None, data_dir=data_dir, eval_transform=transform)
    network, normalization = pretrained_model(model, weights, len(info.class_names), size, stride_in_3x3)
    ds, _ = eval_dataset(data, split, batch_size, kind=kind, size=size, mean=normalization.pipeline_mean,
                         ten_crop=ten_crop, normalization=normalization, data_dir=data_dir, eval_transform=transform)
    result = measure(network, ds, len(info.class_names))
    return result_dict(result, model=model, weights=str(weights), data=str(data), split=split,
                       crops=10 if ten_crop else 1, image_size=size, normalization=normalization.to_dict(),
                       evaluation=None if transform is None else transform.to_dict())


def published_transform(model, weights, stride_in_3x3, size, ten_crop):
    """`(evaluation transform, stride_in_3x3)` of a named set: a tagged set's own transform and stride
    placement (None and the given stride for the others and for files).

    Raises:
        EvaluationError: naming --weights, --image_size or --ten_crop.
    """
    from keras_resnet.registry import model_spec
    from keras_resnet.weights import named_set_entry

    try:
        entry = named_set_entry(weights, model_spec(model), stride_in_3x3)
    except ValueError as error:
        raise EvaluationError(f"--weights={weights} for --model={model}: {str(error).splitlines()[0]}") from None
    if entry is None or entry.evaluation is None:
        return None, stride_in_3x3
    transform = entry.evaluation
    if ten_crop:
        raise EvaluationError(f"--ten_crop: --weights={weights} is evaluated as its publisher does ({transform.name}: "
                              f"shorter side {transform.resize_size}, centre {transform.crop_size} crop); 10 crops "
                              "are the paper's 256 geometry.")
    if size != transform.crop_size:
        raise EvaluationError(f"--image_size={size}: --weights={weights} is evaluated on the centre "
                              f"{transform.crop_size} crop ({transform.name}); omit --image_size.")
    return transform, entry.stride_in_3x3
