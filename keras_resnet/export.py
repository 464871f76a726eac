"""SavedModel export for TF Serving: versioned, atomic, with serving signatures that preprocess like training.

TensorFlow-only: this module needs the TensorFlow backend of Keras (it traces the model into
`tf.function` signatures and writes a TensorFlow SavedModel with `tf.saved_model.save`).

Layout (TF Serving's convention)::

    <export_root>/<version>/saved_model.pb
                            variables/
                            assets/labels.txt        one class name per line, in label order
                            assets/model_card.json   model, dataset, input specs, preprocessing, accuracy

`<version>` is an integer, the next free one by default. A version is written into a temporary directory
beside it (`<export_root>/.tmp-<version>-*`, a name TF Serving ignores) and renamed into place, so a
polling model server never sees a half-written version; an existing version is replaced only with
`overwrite=True`.

Signatures (all return `probabilities` float32 `[None, classes]`, `classes` int64 `[None]` (top-1 id) and
`class_names` string `[None]` (top-1 label)):

- `serving_default`: uint8 RGB images `[None, H, W, 3]`. CIFAR-style models take the training size;
  ImageNet-style models take any size and resize the shorter side to 256 (bilinear) and crop the centre
  224x224 in the graph (scaled for other crop sizes), as in evaluation.
- `serve_bytes`: `tf.string [None]` of encoded JPEG/PNG images (TF Serving's `{"b64": ...}`).
- `logits`: float32 preprocessed images `[None, H, W, 3]` (the network's input); also returns `logits`.

Preprocessing is the training formula of `docs/CONTRACTS.md`, `(float32(image) - mean) / 255` with the
mean image (0..255 units) stored in the SavedModel as the variable `mean_image`. The exported network is a
float32 copy of the model whatever precision policy it was trained under, its classifier rebuilt without
activation to expose logits; no function is XLA-compiled.

Example:
    >>> import keras_resnet
    >>> from keras_resnet import export
    >>> path = export.export_from_model_dir("runs/resnet20", "saved_models/resnet20")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    '1'

Command line::

    python -m keras_resnet.export --model_dir=runs/resnet20 --export_dir=saved_models/resnet20 \
        [--version N] [--overwrite] [--checkpoint best|latest]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

SIGNATURES = ("serving_default", "serve_bytes", "logits")
"""The signature names of every export."""
OUTPUT_KEYS = ("probabilities", "classes", "class_names")
"""Output keys of every signature (`logits` adds the key `logits`)."""
CHECKPOINTS = ("best", "latest")
"""Checkpoints of a training run's `model_dir` (`checkpoints/<name>.keras`)."""
PREPROCESSING_KINDS = ("cifar", "imagenet")

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_IMAGENET_EVAL_SIZE, _IMAGENET_CROP = 256, 224
_TMP_PREFIX = ".tmp-"


# ----------------------------------------------------------------------------------------------------------
# Versions and atomic publication


def existing_versions(export_root) -> list[int]:
    """The integer version directories under `export_root` (TF Serving's versions), sorted."""
    root = Path(export_root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(export_root) -> int:
    """The next free version under `export_root`: one more than the largest, or 1."""
    versions = existing_versions(export_root)
    return versions[-1] + 1 if versions else 1


def _check_version(version):
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or int(version) < 1:
        raise ValueError(f"`version` must be a positive integer (TF Serving's version directory); received {version!r}.")
    return int(version)


def _plan(export_root, version, overwrite):
    """Cheap checks of the destination, before any expensive work; returns (root, version or None)."""
    if export_root is None or str(export_root) == "":
        raise ValueError("`export_root` must be a directory path such as 'saved_models/resnet20'; received nothing.")
    root = Path(export_root).expanduser().absolute()
    version = _check_version(version)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"`export_root` {str(root)!r} exists and is not a directory.")
    ancestor = root
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(
            f"`export_root` {str(root)!r} cannot be created: {str(ancestor)!r} is not a directory."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"`export_root` {str(root)!r} is not writable ({str(ancestor)!r} is read-only).")
    if version is not None and (root / str(version)).exists() and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists in {str(root)!r}; pass `overwrite=True` (--overwrite) to replace "
            f"it, or omit the version to write the next free one ({next_version(root)})."
        )
    return root, version


class _Staging:
    """A temporary directory beside the target version, created before any expensive work and renamed into
    place by `publish`; removed (with any directories it created) on failure."""

    def __init__(self, root: Path, version):
        self.root, self.version = root, version
        self.created = []
        missing = []
        parent = root
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            for directory in reversed(missing):
                directory.mkdir()
                self.created.append(directory)
            label = "next" if version is None else str(version)
            self.path = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{label}-", dir=root))
        except OSError as error:
            self._remove_created()
            raise PermissionError(
                f"Cannot write into `export_root` {str(root)!r}: {error.strerror or error}."
            ) from error

    def _remove_created(self):
        for directory in reversed(self.created):
            try:
                directory.rmdir()
            except OSError:
                pass
        self.created = []

    def abort(self):
        shutil.rmtree(self.path, ignore_errors=True)
        self._remove_created()

    def publish(self, overwrite: bool, before_rename=None) -> Path:
        """Renames the staged SavedModel to `<root>/<version>` (the next free version if none was given).

        `before_rename(version)` runs on the staged directory before each rename attempt (e.g. to write the
        version into the model card), so the published directory is never modified afterwards.
        """
        for _ in range(100):
            version = self.version if self.version is not None else next_version(self.root)
            target = self.root / str(version)
            if target.exists() and self.version is None:
                continue  # pragma: no cover - another exporter took it between the two calls
            if before_rename is not None:
                before_rename(version)
            if target.exists():
                if not overwrite:
                    raise FileExistsError(f"Version {version} appeared in {str(self.root)!r} during the export.")
                old = self.root / f"{_TMP_PREFIX}old-{version}-{uuid.uuid4().hex[:8]}"
                os.rename(target, old)
                os.rename(self.path, target)
                shutil.rmtree(old, ignore_errors=True)
                return target
            try:
                os.rename(self.path, target)
            except OSError:  # pragma: no cover - a concurrent exporter created it: try the next version
                if self.version is None:
                    continue
                raise
            return target
        raise RuntimeError(f"Could not find a free version in {str(self.root)!r}.")  # pragma: no cover


# ----------------------------------------------------------------------------------------------------------
# The float32 logits model


def _serving_models(model):
    """Returns (float32 logits model, classifier activation name, training dtype policy name)."""
    import keras

    try:
        head = model.get_layer("predictions")
    except ValueError:
        raise ValueError(
            f"Model {model.name!r} has no classifier layer named 'predictions' (built with include_top=False?); "
            "only classifiers can be exported for serving."
        ) from None
    if not isinstance(head, keras.layers.Dense):
        raise ValueError(f"Layer 'predictions' of {model.name!r} must be a Dense layer; received {type(head).__name__}.")
    activation = keras.activations.serialize(head.activation)
    activation = activation if isinstance(activation, str) else getattr(head.activation, "__name__", "custom")
    if activation not in ("softmax", "linear", "sigmoid"):
        raise ValueError(
            f"Classifier activation {activation!r} of {model.name!r} is not supported for export; "
            "use 'softmax' (default), 'sigmoid' or None."
        )
    policies = sorted({layer.dtype_policy.name for layer in model.layers
                       if layer.weights and getattr(layer, "dtype_policy", None) is not None and layer.name != "predictions"})
    policy = policies[0] if len(policies) == 1 else (policies or None)

    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        if layer.name == "predictions":
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    inputs = keras.Input(shape=tuple(model.input_shape[1:]), dtype="float32", name=model.inputs[0].name)
    try:
        clone = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_layer)
    except Exception as error:  # subclassed models cannot be cloned layer by layer
        raise ValueError(
            f"Model {model.name!r} cannot be rebuilt layer by layer for a float32 export "
            f"({type(error).__name__}: {error}); export a functional or sequential model."
        ) from error
    source = {layer.name: layer for layer in model.layers}
    for layer in clone.layers:
        weights = source[layer.name].get_weights()
        if weights:
            layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    return clone, activation, policy


# ----------------------------------------------------------------------------------------------------------
# The serving module


def _imagenet_geometry():
    """The shared evaluation geometry of `keras_resnet.data.augment` (shorter side, centre crop)."""
    try:
        from keras_resnet.data.augment import imagenet_eval_geometry
    except ImportError:  # pragma: no cover - fallback while the data package is absent
        imagenet_eval_geometry = None
    if imagenet_eval_geometry is not None:
        return imagenet_eval_geometry
    import tensorflow as tf

    def geometry(image, size, crop):  # pragma: no cover
        shape = tf.shape(image)
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        scale = tf.cast(size, tf.float32) / tf.minimum(h, w)
        new = tf.maximum(tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32), size)
        x = tf.image.resize(image, new, method="bilinear")
        top, left = (new[0] - crop) // 2, (new[1] - crop) // 2
        x = x[top : top + crop, left : left + crop, :]
        x.set_shape([crop, crop, image.shape[-1]])
        return x

    return geometry


def _build_module(logits_model, activation, mean, class_names, preprocessing, height, width):
    import tensorflow as tf

    classes = int(logits_model.output_shape[-1])
    imagenet = preprocessing == "imagenet"
    resize = int(round(height * _IMAGENET_EVAL_SIZE / _IMAGENET_CROP))
    geometry = _imagenet_geometry() if imagenet else None
    pixel_hw = (None, None) if imagenet else (height, width)
    specs = {
        "serving_default": tf.TensorSpec([None, *pixel_hw, 3], tf.uint8, name="images"),
        "serve_bytes": tf.TensorSpec([None], tf.string, name="images"),
        "logits": tf.TensorSpec([None, height, width, 3], tf.float32, name="images"),
    }

    def describe(name):
        spec = specs[name]
        dims = ", ".join("None" if d is None else str(d) for d in spec.shape.as_list())
        return f"{name} expects {spec.dtype.name} [{dims}]"

    def check_shape(images, name):
        """In-graph check of rank and sizes; signature shapes are not enforced at run time."""
        expected = specs[name].shape.as_list()
        shape = tf.shape(images)
        padded = tf.concat([shape, tf.fill([len(expected) + 1], -1)], axis=0)
        ok = tf.equal(padded[len(expected)], -1)  # rank <= expected
        for axis, size in enumerate(expected):
            ok = tf.logical_and(ok, tf.not_equal(padded[axis], -1))  # rank >= expected
            if size is not None:
                ok = tf.logical_and(ok, tf.equal(padded[axis], size))
        check = tf.debugging.Assert(ok, [f"{describe(name)}; received shape", shape], summarize=16)
        with tf.control_dependencies([check]):
            return tf.identity(images)

    class ServingModule(tf.Module):
        def __init__(self):
            super().__init__(name="keras_resnet_serving")
            self.model = logits_model
            self.mean_image = tf.Variable(np.asarray(mean, np.float32), trainable=False, name="mean_image")
            self.serving_default = tf.function(self._serving_default, input_signature=[specs["serving_default"]], jit_compile=False, autograph=False)
            self.serve_bytes = tf.function(self._serve_bytes, input_signature=[specs["serve_bytes"]], jit_compile=False, autograph=False)
            self.logits = tf.function(self._logits, input_signature=[specs["logits"]], jit_compile=False, autograph=False)

        def _normalize(self, pixels):
            # docs/CONTRACTS.md and keras_resnet.data: (float32(image) - mean) / 255, as x * (1 / 255).
            return (tf.cast(pixels, tf.float32) - self.mean_image) * (1.0 / 255.0)

        def _geometry(self, pixels):
            """One image [h, w, 3] -> float32 [height, width, 3] in 0..255 units (ImageNet evaluation)."""
            return geometry(pixels, resize, height)

        def _outputs(self, inputs):
            logits = tf.cast(self.model(inputs, training=False), tf.float32)
            if activation == "sigmoid":
                probabilities = tf.math.sigmoid(logits)
            else:  # softmax, or a logits classifier ("linear") trained with from_logits
                probabilities = tf.nn.softmax(logits, axis=-1)
            top = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
            names = tf.gather(tf.constant(list(class_names), tf.string), top)
            return {"probabilities": probabilities, "classes": top, "class_names": names, "logits": logits}

        def _from_pixels(self, pixels):
            if imagenet:
                pixels = tf.map_fn(self._geometry, pixels, fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
            outputs = self._outputs(self._normalize(pixels))
            return {key: outputs[key] for key in OUTPUT_KEYS}

        def _serving_default(self, images):
            return self._from_pixels(check_shape(images, "serving_default"))

        def _serve_bytes(self, images):
            images = check_shape(images, "serve_bytes")
            ok = tf.logical_or(
                tf.equal(tf.strings.substr(images, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC),
                tf.equal(tf.strings.substr(images, 0, len(_PNG_MAGIC)), _PNG_MAGIC),
            )
            bad = tf.reshape(tf.where(tf.logical_not(ok)), [-1])
            check = tf.debugging.Assert(
                tf.reduce_all(ok),
                ["serve_bytes: cannot decode batch element(s)", bad,
                 "(0-based): not a JPEG or PNG image; serve_bytes expects string [None] of encoded JPEG/PNG images"],
                summarize=64,
            )
            with tf.control_dependencies([check]):
                images = tf.identity(images)

            def decode(args):
                data, index = args
                # JPEG with the accurate integer DCT: the pixels Pillow gives the training pipeline, bit for bit
                # (TensorFlow's default fast DCT differs by up to a few levels).
                pixels = tf.cond(
                    tf.equal(tf.strings.substr(data, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC),
                    lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_png(data, channels=3, dtype=tf.uint8),
                )
                pixels.set_shape([None, None, 3])
                if imagenet:
                    return self._geometry(pixels)
                size = tf.shape(pixels)[:2]
                fits = tf.reduce_all(tf.equal(size, [height, width]))
                check = tf.debugging.Assert(
                    fits,
                    ["serve_bytes: batch element", index, "decodes to height, width", size,
                     f"but this model expects {height}x{width} RGB images (resize them before encoding)"],
                )
                with tf.control_dependencies([check]):
                    return tf.reshape(pixels, [height, width, 3])

            count = tf.shape(images)[0]
            out_spec = tf.TensorSpec([height, width, 3], tf.float32 if imagenet else tf.uint8)
            pixels = tf.map_fn(decode, (images, tf.range(count)), fn_output_signature=out_spec)
            outputs = self._outputs(self._normalize(pixels))
            return {key: outputs[key] for key in OUTPUT_KEYS}

        def _logits(self, images):
            return self._outputs(check_shape(images, "logits"))

    module = ServingModule()
    signatures = {name: getattr(module, name).get_concrete_function() for name in SIGNATURES}
    return module, signatures, specs


# ----------------------------------------------------------------------------------------------------------
# Public API


def _dataset_dict(dataset_info):
    if dataset_info is None:
        return {}
    if isinstance(dataset_info, dict):
        return dict(dataset_info)
    if isinstance(dataset_info, (str, bytes)):
        return json.loads(dataset_info)
    if hasattr(dataset_info, "to_json"):
        return json.loads(dataset_info.to_json())
    raise ValueError(
        f"`dataset_info` must be a DatasetInfo, its to_json() string or a dict; received {type(dataset_info).__name__}."
    )


def _resolve_inputs(model, dataset, mean, class_names, preprocessing):
    """Validates and completes mean, class names, preprocessing kind and input size (cheap, no TF work)."""
    if model is None or not hasattr(model, "get_layer"):
        raise ValueError(f"`model` must be a keras.Model; received {type(model).__name__}.")
    classes = int(model.output_shape[-1])
    if class_names is None:
        class_names = dataset.get("class_names") or [str(i) for i in range(classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != classes:
        raise ValueError(f"`class_names` has {len(class_names)} names but model {model.name!r} has {classes} classes.")
    if any("\n" in name for name in class_names):
        raise ValueError("`class_names` must not contain newlines (assets/labels.txt holds one name per line).")
    preprocessing = preprocessing or dataset.get("preprocessing") or "cifar"
    if preprocessing not in PREPROCESSING_KINDS:
        raise ValueError(f"`preprocessing` must be one of {PREPROCESSING_KINDS}; received {preprocessing!r}.")
    model_hw = tuple(model.input_shape[1:3])
    data_hw = tuple(dataset.get("image_shape") or (None, None, None))[:2]
    height, width = (m if m is not None else d for m, d in zip(model_hw, data_hw))
    if None in (height, width):
        default = _IMAGENET_CROP if preprocessing == "imagenet" else 32
        height, width = height or default, width or default
    if any(m is not None and d is not None and m != d for m, d in zip(model_hw, data_hw)):
        raise ValueError(f"Model input size {model_hw} differs from the dataset's image_shape {data_hw}.")
    if model.input_shape[-1] != 3:
        raise ValueError(f"Only RGB models can be exported; model {model.name!r} takes {model.input_shape[-1]} channels.")
    if preprocessing == "imagenet" and height != width:
        raise ValueError(f"ImageNet-style export needs a square crop; received {height}x{width}.")
    if mean is None:
        mean = dataset.get("mean")
    if mean is None:
        raise ValueError("`mean` (0..255 units, [H, W, 3] or [1, 1, 3]) is required: the training preprocessing.")
    mean = np.asarray(mean, dtype=np.float32)
    if mean.ndim == 1:
        mean = mean.reshape(1, 1, -1)
    if mean.shape not in ((height, width, 3), (1, 1, 3)):
        raise ValueError(
            f"`mean` must have shape ({height}, {width}, 3) (per pixel) or (1, 1, 3) (per channel); received {mean.shape}."
        )
    if not np.all(np.isfinite(mean)):
        raise ValueError("`mean` contains non-finite values.")
    return mean, class_names, preprocessing, int(height), int(width)


def _spec_json(spec):
    return {"dtype": spec.dtype.name, "shape": [None if d is None else int(d) for d in spec.shape.as_list()]}


def _model_card(model, logits_model, version, dataset, mean, class_names, preprocessing, height, width, specs,
                activation, policy, extra):
    import keras
    import tensorflow as tf

    try:
        from keras_resnet import __version__ as package_version
    except ImportError:  # pragma: no cover
        package_version = None
    outputs = {
        "probabilities": {"dtype": "float32", "shape": [None, len(class_names)]},
        "classes": {"dtype": "int64", "shape": [None]},
        "class_names": {"dtype": "string", "shape": [None]},
    }
    geometry = (
        f"shorter side resized to {int(round(height * _IMAGENET_EVAL_SIZE / _IMAGENET_CROP))} (bilinear), centre "
        f"{height}x{width} crop (keras_resnet.data.augment.imagenet_eval_geometry), any input size"
        if preprocessing == "imagenet"
        else f"none: images must be {height}x{width}"
    )
    card = {
        "model_name": model.name,
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dataset": {
            "name": dataset.get("name"),
            "num_classes": len(class_names),
            "class_names": "assets/labels.txt",
            "image_shape": [height, width, 3],
            "num_examples": dataset.get("num_examples"),
        },
        "signatures": {
            name: {"inputs": {"images": _spec_json(spec)},
                   "outputs": dict(outputs, **({"logits": outputs["probabilities"]} if name == "logits" else {}))}
            for name, spec in specs.items()
        },
        "preprocessing": {
            "kind": preprocessing,
            "formula": "(float32(image) - mean) / 255, mean in 0..255 units (variable `mean_image`)",
            "mean_shape": list(mean.shape),
            "geometry": geometry,
            "decoder": "serve_bytes: tf.io.decode_jpeg(channels=3, dct_method='INTEGER_ACCURATE') (= Pillow) "
                       "or tf.io.decode_png(channels=3)",
        },
        "classifier_activation": activation,
        "training_dtype_policy": policy,
        "export_dtype": "float32",
        "xla": False,
        "parameters": int(sum(int(np.prod(w.shape)) for w in logits_model.weights)),
        "test_accuracy": None,
        "package": {"keras_resnet": package_version, "keras": keras.__version__, "tensorflow": tf.__version__},
    }
    card.update(extra or {})
    return card


def export_saved_model(
    model,
    export_root,
    *,
    dataset_info=None,
    mean=None,
    class_names=None,
    preprocessing=None,
    version=None,
    overwrite=False,
    model_card_extra=None,
):
    """Exports a Keras classifier as a versioned TF Serving SavedModel, atomically.

    The model is copied into float32 (whatever policy it was trained under) with its classifier rebuilt
    without activation, wrapped with the training preprocessing and saved with the signatures
    `serving_default` (uint8 pixels), `serve_bytes` (encoded JPEG/PNG) and `logits` (preprocessed float32).
    TensorFlow backend only.

    Args:
        model: a functional `keras.Model` ending in the Dense layer "predictions" (softmax, sigmoid or no
            activation), e.g. `keras_resnet.ResNet20()`.
        export_root: directory of the versions, e.g. "saved_models/resnet20"; created if missing.
        dataset_info: the training data's `keras_resnet.data.DatasetInfo`, its `to_json()` string or dict
            (`dataset.json` of a model_dir): class names, image shape, preprocessing kind, mean.
        mean: float32 mean in 0..255 units, `[H, W, 3]` (CIFAR per-pixel) or `[1, 1, 3]`; defaults to
            `dataset_info`'s mean; required one way or the other.
        class_names: class names in label order; defaults to `dataset_info`'s, else "0", "1", ...
        preprocessing: "cifar" (fixed input size) or "imagenet" (any size, shorter side 256, centre 224
            crop in the graph); defaults to `dataset_info`'s, else "cifar".
        version: positive int; defaults to the next free version.
        overwrite: bool, replace an existing `version`.
        model_card_extra: optional dict merged into `assets/model_card.json` (e.g. `test_accuracy`).

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ValueError: bad model or arguments. FileExistsError: `version` exists and not `overwrite`.
        PermissionError / NotADirectoryError: `export_root` cannot be written (nothing is written).

    Example:
        >>> import numpy as np, keras_resnet
        >>> model = keras_resnet.build("resnet8")
        >>> export_saved_model(model, "/tmp/resnet8", mean=np.zeros((32, 32, 3)))  # doctest: +SKIP
        PosixPath('/tmp/resnet8/1')
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"SavedModel export needs the TensorFlow backend of Keras; KERAS_BACKEND is {keras.backend.backend()!r}."
        )
    dataset = _dataset_dict(dataset_info)
    mean, class_names, preprocessing, height, width = _resolve_inputs(model, dataset, mean, class_names, preprocessing)
    root, version = _plan(export_root, version, overwrite)
    staging = _Staging(root, version)
    try:
        return _write(staging, model, dataset, mean, class_names, preprocessing, height, width, model_card_extra,
                      overwrite)
    except BaseException:
        staging.abort()
        raise


def _write(staging, model, dataset, mean, class_names, preprocessing, height, width, extra, overwrite):
    import tensorflow as tf

    logits_model, activation, policy = _serving_models(model)
    module, signatures, specs = _build_module(logits_model, activation, mean, class_names, preprocessing, height, width)
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(module, str(staging.path), signatures=signatures, options=options)
    assets = staging.path / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "labels.txt").write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
    card = _model_card(model, logits_model, staging.version, dataset, mean, class_names, preprocessing, height, width,
                       specs, activation, policy, extra)

    def write_card(version):
        card["version"] = int(version)
        (assets / "model_card.json").write_text(json.dumps(card, indent=1, default=str) + "\n", encoding="utf-8")

    return staging.publish(overwrite, before_rename=write_card)


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}.") from None


def export_from_model_dir(model_dir, export_root, checkpoint="best", version=None, overwrite=False,
                          model_card_extra=None):
    """Exports a training run's checkpoint (the `model_dir` layout of `docs/CONTRACTS.md`) for TF Serving.

    Reads `checkpoints/<checkpoint>.keras` (safe mode), `dataset.json`, `mean_image.npy`, and, when present,
    `config.json` and `summary.json` (test accuracy for the model card). Every file and the destination are
    checked before the checkpoint is loaded, and nothing is written when a check fails.

    Args:
        model_dir: the training run's directory.
        export_root: directory of the versions, e.g. "saved_models/resnet20".
        checkpoint: "best" or "latest".
        version: positive int; defaults to the next free version.
        overwrite: bool, replace an existing `version`.
        model_card_extra: optional dict merged into the model card.

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        FileNotFoundError: `model_dir`, the checkpoint, `dataset.json` or `mean_image.npy` is missing.
        ValueError / FileExistsError / PermissionError: as `export_saved_model`.

    Example:
        >>> export_from_model_dir("runs/resnet20", "saved_models/resnet20", checkpoint="latest")  # doctest: +SKIP
        PosixPath('.../saved_models/resnet20/1')
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"`checkpoint` must be one of {CHECKPOINTS}; received {checkpoint!r}.")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"`model_dir` {str(model_dir)!r} is not a directory.")
    weights = model_dir / "checkpoints" / f"{checkpoint}.keras"
    if not weights.is_file():
        found = sorted(p.name for p in (model_dir / "checkpoints").glob("*.keras")) if (model_dir / "checkpoints").is_dir() else []
        raise FileNotFoundError(
            f"No checkpoint {str(weights)!r} in `model_dir` (found: {found or 'none'}); train first or pass "
            f"--checkpoint={'latest' if checkpoint == 'best' else 'best'}."
        )
    for name in ("dataset.json", "mean_image.npy"):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"`model_dir` {str(model_dir)!r} has no {name} (see docs/CONTRACTS.md).")
    dataset = _read_json(model_dir / "dataset.json")
    mean = np.load(model_dir / "mean_image.npy", allow_pickle=False)
    config = _read_json(model_dir / "config.json") if (model_dir / "config.json").is_file() else {}
    summary = _read_json(model_dir / "summary.json") if (model_dir / "summary.json").is_file() else {}
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"SavedModel export needs the TensorFlow backend of Keras; KERAS_BACKEND is {keras.backend.backend()!r}."
        )
    root, version = _plan(export_root, version, overwrite)
    staging = _Staging(root, version)  # the destination is writable: fail here, before loading anything
    try:
        return _export_checkpoint(staging, weights, dataset, mean, config, summary, model_card_extra, overwrite)
    except BaseException:
        staging.abort()
        raise


def _export_checkpoint(staging, weights, dataset, mean, config, summary, model_card_extra, overwrite):
    import keras

    import keras_resnet  # noqa: F401  (registers the serializable layers)

    model = keras.saving.load_model(weights, compile=False, safe_mode=True)
    model_dir = weights.parent.parent
    card = {
        "source": {"model_dir": str(model_dir.absolute()), "checkpoint": str(weights.relative_to(model_dir))},
        "test_accuracy": summary.get("test_accuracy"),
        "test_error": summary.get("test_error"),
        "training_config": config or None,
    }
    card.update(model_card_extra or {})
    mean, class_names, preprocessing, height, width = _resolve_inputs(model, dataset, mean, None, None)
    return _write(staging, model, dataset, mean, class_names, preprocessing, height, width, card, overwrite)


def main(argv=None):
    """Command line: `python -m keras_resnet.export --model_dir=... --export_dir=saved_models/<name>`."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_resnet.export",
        description="Export a training run's checkpoint as a versioned TF Serving SavedModel.",
    )
    parser.add_argument("--model_dir", required=True, help="the training run's directory (docs/CONTRACTS.md)")
    parser.add_argument("--export_dir", required=True, help="the model's version root, e.g. saved_models/resnet20")
    parser.add_argument("--version", type=int, default=None, help="version number (default: the next free one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --version")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best", help="which checkpoint (default: best)")
    args = parser.parse_args(argv)
    try:
        path = export_from_model_dir(args.model_dir, args.export_dir, checkpoint=args.checkpoint,
                                     version=args.version, overwrite=args.overwrite)
    except (ValueError, OSError) as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
