"""The model card and the labels file of an export (`assets/model_card.json`, `assets/labels.txt`).

`labels.txt` holds one class name per line, in label order. `model_card.json` describes the model, the
training data, every signature's inputs and outputs, the preprocessing, the classifier activation, the
training dtype policy, the parameter count and the package versions; `model_card_extra` (e.g. the test
accuracy, the source checkpoint) is merged on top. The card's `version` is written just before the
version directory is renamed into place (`keras_resnet.export.versions.Staging.publish`).

Example:
    >>> write_labels(assets_dir, ("cat", "dog"))  # writes into an export's assets/  # doctest: +SKIP
    >>> (assets_dir / "labels.txt").read_text()  # writes into an export's assets/  # doctest: +SKIP
    'cat\\ndog\\n'
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from keras_resnet.export.contract import OUTPUT_DTYPES, OUTPUT_KEYS

LABELS_FILE = "labels.txt"
CARD_FILE = "model_card.json"
FORMULA = "(float32(image) - mean) / 255, mean in 0..255 units (variable `mean_image`)"
DECODER = ("serve_bytes: tf.io.decode_jpeg(channels=3, dct_method='INTEGER_ACCURATE') (= the training decode; "
           "grayscale replicated; CMYK converted as in training, keras_resnet.data.pillow_rgb) or tf.io.decode_png(channels=3) (alpha dropped)")


def spec_json(spec) -> dict:
    """A `tf.TensorSpec` as `{"dtype": ..., "shape": [...]}` (None for unknown sizes)."""
    return {"dtype": spec.dtype.name, "shape": [None if d is None else int(d) for d in spec.shape.as_list()]}


def signatures_json(specs, num_classes) -> dict:
    """Each signature's input `images` and its outputs, for the card."""
    shapes = {"probabilities": [None, num_classes], "classes": [None], "class_names": [None]}
    outputs = {key: {"dtype": OUTPUT_DTYPES[key], "shape": shapes[key]} for key in OUTPUT_KEYS}
    return {
        name: {"inputs": {"images": spec_json(spec)},
               "outputs": dict(outputs, **({"logits": outputs["probabilities"]} if name == "logits" else {}))}
        for name, spec in specs.items()
    }


def package_versions() -> dict:
    """The versions of keras_resnet, Keras and TensorFlow that wrote the export."""
    import keras
    import tensorflow as tf

    try:
        from keras_resnet import __version__ as package_version
    except ImportError:  # pragma: no cover
        package_version = None
    return {"keras_resnet": package_version, "keras": keras.__version__, "tensorflow": tf.__version__}


GRAPH_RULE = ("float32 Keras network traced into tf.function signatures, never XLA-compiled (one fixed rule "
              "for every signature, so each keeps one graph for every batch size); each BN folded into the "
              "convolution before it; option-A shortcuts stay parameter-free")


def graph_json(model, prepared) -> dict:
    """How the served graph was built: the transforms applied and how many BN layers were folded."""
    from keras_resnet.export.serving_model import count_batch_norms

    before, after = count_batch_norms(model), count_batch_norms(prepared.model)
    return {"transforms": list(prepared.transforms), "batch_norm_folded": before - after,
            "batch_norm_left": after, "rule": GRAPH_RULE}


def preprocessing_json(inputs) -> dict:
    """The card's `preprocessing`: kind, formula, mean shape, geometry, decoder and the normalisation.

    `normalization` is the `keras_resnet.weights.Preprocessing` record of pretrained weights (None for the
    package's training formula); `channel_order` is the network's; `multiplier` what `(image - mean_image)`
    is multiplied by; `logits_input` what the `logits` signature takes.
    """
    multiplier = inputs.multiplier
    normalization = inputs.normalization
    return {
        "kind": inputs.kind,
        "formula": FORMULA if normalization is None else inputs.formula_text(),
        "mean_shape": list(inputs.mean.shape),
        "normalization": None if normalization is None else normalization.to_dict(),
        "channel_order": inputs.channel_order,
        "multiplier": multiplier if isinstance(multiplier, float) else [float(v) for v in np.ravel(multiplier)],
        "mean_image": None if normalization is None else [float(v) for v in np.ravel(inputs.mean)],
        "logits_input": ("the network's input, already normalised: (image - mean) / 255" if normalization is None
                         else "the network's input, already normalised: keras_resnet.preprocess_input(image, "
                              "weights=...) (channels in the network's order)"),
        "geometry": inputs.geometry_text(),
        "decoder": DECODER,
    }


def model_card(model, prepared, inputs, dataset, specs, version=None, extra=None) -> dict:
    """The model card of an export, as a JSON-ready dict.

    Args:
        model: the source Keras model (its name).
        prepared: `keras_resnet.export.serving_model.ServingModel` (the exported network, activation, policy).
        inputs: `keras_resnet.export.serving_inputs.ServingInputs`.
        dataset: the training data's description (`preprocessing.dataset_dict`).
        specs: `{signature name: input TensorSpec}`.
        version: the version, or None until it is known.
        extra: optional dict merged on top.
    """
    height, width = inputs.height, inputs.width
    card = {
        "model_name": model.name,
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dataset": {
            "name": dataset.get("name"),
            "num_classes": len(inputs.class_names),
            "class_names": f"assets/{LABELS_FILE}",
            "image_shape": [height, width, 3],
            "num_examples": dataset.get("num_examples"),
        },
        "signatures": signatures_json(specs, len(inputs.class_names)),
        "preprocessing": preprocessing_json(inputs),
        "classifier_activation": prepared.activation,
        "training_dtype_policy": prepared.training_policy,
        "export_dtype": "float32",
        "xla": False,
        "graph": graph_json(model, prepared),
        "parameters": int(sum(int(np.prod(w.shape)) for w in prepared.model.weights)),
        "test_accuracy": None,
        "package": package_versions(),
    }
    card.update(extra or {})
    return card


def write_labels(assets, class_names) -> Path:
    """Writes `assets/labels.txt` (one name per line, in label order); returns its path."""
    path = Path(assets) / LABELS_FILE
    path.write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
    return path


def write_card(assets, card, version) -> Path:
    """Sets `card["version"]` and writes `assets/model_card.json` (inside the staging directory); returns its path."""
    card["version"] = int(version)
    path = Path(assets) / CARD_FILE
    path.write_text(json.dumps(card, indent=1, default=str) + "\n", encoding="utf-8")
    return path
