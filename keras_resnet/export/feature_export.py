"""A backbone's feature pyramid as a versioned SavedModel: uint8 images in, `{"P<k>": feature map}` out.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the stage outputs that its
detection results use as features); the pyramid itself is `keras_resnet.backbone.features`.

The export is written as the classifier exports are (`keras_resnet.export.versions`: a temporary directory
renamed into `<export_root>/<version>`, never half-written), with one signature:

- `serving_default`: uint8 RGB images `[None, H, W, 3]` (the model's input size; any size where the model
  takes any, with no resize or crop: a detector keeps its image's geometry) normalised in the graph as the
  weights were trained (`(reorder(x) * scale - mean) / std`, a `keras_resnet.weights.Preprocessing`), and
  returning float32 `P<k>` `[None, H / 2**k, W / 2**k, channels]`.

`assets/model_card.json` names the source model, each level's layer, stride and channels, the
normalisation and the package versions. The network is a float32 copy whatever the model's precision
policy, with each BN that follows a convolution folded into it (`keras_resnet.inference.fold`).

Example:
    >>> import keras_resnet
    >>> from keras_resnet.export import export_features
    >>> export_features(keras_resnet.ResNet20(weights="cifar10"), "/tmp/resnet20_features", normalization="cifar10")  # writes an export on disk  # doctest: +SKIP
    PosixPath('/tmp/resnet20_features/1')
"""

from __future__ import annotations

import numpy as np

from keras_resnet import faults
from keras_resnet.export import card as card_lib
from keras_resnet.export import versions
from keras_resnet.export.serving_inputs import resolve_normalization

SIGNATURE = "serving_default"


def feature_network(model):
    """`(float32 feature model with BNs folded, {"P<k>": layer name})` of a network of the package."""
    import keras

    from keras_resnet.backbone import features, pyramid_levels
    from keras_resnet.export.serving_model import float32_clone, fold_batch_norm

    levels = pyramid_levels(model)
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), dtype="float32", name="image")
    return fold_batch_norm(float32_clone(features(model), inputs)), levels


def _module(network, normalization, input_shape):
    import tensorflow as tf

    reverse = normalization.channel_order == "BGR"
    scale = np.float32(normalization.scale)
    mean = tf.constant(np.asarray(normalization.mean, np.float32))
    std = tf.constant(np.asarray(normalization.std, np.float32))
    spec = tf.TensorSpec([None, *input_shape[:2], 3], tf.uint8, name="images")

    def serve(images):
        x = tf.cast(images, tf.float32)
        if reverse:
            x = tf.reverse(x, axis=[-1])
        outputs = network((x * scale - mean) / std, training=False)
        return {key: tf.cast(value, tf.float32) for key, value in outputs.items()}

    module = tf.Module(name="keras_resnet_features")
    module.network = network
    module.serve = tf.function(serve, input_signature=[spec], jit_compile=False, autograph=False)
    return module, spec


def feature_card(model, levels, outputs, normalization, spec, version):
    """The feature export's `model_card.json` (a dict)."""
    return {
        "kind": "features",
        "model": model.name,
        "version": version,
        "levels": {key: {"layer": levels[key], "stride": 2 ** int(key[1:]), "channels": int(outputs[key].shape[-1])}
                   for key in levels},
        "signatures": {SIGNATURE: {"inputs": {"images": card_lib.spec_json(spec)},
                                   "outputs": {key: {"dtype": "float32",
                                                     "shape": [None, None, None, int(outputs[key].shape[-1])]}
                                               for key in levels}}},
        "preprocessing": {"formula": "(reorder(float32(image)) * scale - mean) / std",
                          "normalization": normalization.to_dict()},
        "versions": card_lib.package_versions(),
    }


def export_features(model, export_root, *, normalization, version=None, overwrite=False):
    """Exports the feature pyramid of a network (`keras_resnet.features`) as a versioned SavedModel.

    Args:
        model: a network of the package (with or without its classifier), e.g.
            `keras_resnet.ResNet50(weights="imagenet", include_top=False)`.
        export_root: directory of the versions; created if missing.
        normalization: the input normalisation of the weights: a `keras_resnet.weights.Preprocessing`, its
            record, or what `keras_resnet.weights.preprocessing_of` takes ("cifar10"; "imagenet" resolved
            with the model's name; a weights file).
        version: positive int; defaults to the next free version.
        overwrite: bool, replace an existing `version`.

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ValueError: naming `model` or `normalization`. FileExistsError: `version` exists and not `overwrite`.
    """
    import tensorflow as tf

    from keras_resnet.export.saved_model import require_tensorflow

    require_tensorflow()
    if normalization is None:
        raise ValueError("`normalization` is required: the weights' input normalisation, e.g. 'cifar10', "
                         "'imagenet', a weights file or a keras_resnet.weights.Preprocessing.")
    normalization = resolve_normalization(normalization, model=model)
    network, levels = feature_network(model)
    root, version = versions.plan_destination(export_root, version, overwrite)
    staging = versions.Staging(root, version)
    try:
        module, spec = _module(network, normalization, tuple(model.inputs[0].shape[1:]))
        signature = module.serve.get_concrete_function()
        tf.saved_model.save(module, str(staging.path), signatures={SIGNATURE: signature})
        faults.site("export.saved_model_written")
        assets = staging.path / "assets"
        assets.mkdir(exist_ok=True)

        card = feature_card(model, levels, network.output, normalization, spec, staging.version)
        return staging.publish(overwrite, before_rename=lambda number: card_lib.write_card(assets, card, number))
    except BaseException:
        staging.abort()
        raise
