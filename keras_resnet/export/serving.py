"""The serving signatures: a `tf.Module` that preprocesses like training and returns probabilities and labels.

TensorFlow only (imported at module level; `keras_resnet.export` imports this module only when it
writes an export). Signatures, all returning `probabilities` float32 `[None, classes]`, `classes` int64
`[None]` (top-1 id) and `class_names` string `[None]` (top-1 label):

- `serving_default`: uint8 RGB images `[None, H, W, 3]` (any H, W for ImageNet-style inputs, which are
  resized and centre-cropped in the graph);
- `serve_bytes`: `tf.string [None]` of encoded JPEG/PNG images (TF Serving's `{"b64": ...}`), decoded
  with the accurate integer DCT (the pixels Pillow gives the training pipeline, bit for bit);
- `logits`: float32 preprocessed images `[None, height, width, 3]`: the network's input, already
  normalised (the training formula's output, or for pretrained weights `keras_resnet.preprocess_input`'s,
  in the network's channel order, BGR for Caffe weights); also returns `logits`.

The uint8 and bytes signatures normalise in the graph as `(reorder(float32(image)) - mean_image) *
multiplier` (`keras_resnet.export.serving_inputs`): the training formula `(image - mean) / 255`, or the
normalisation recorded with pretrained weights (per channel; channels reversed for BGR networks).

Grayscale JPEGs are replicated to 3 channels and PNG alpha is dropped, as Pillow's `convert("RGB")` does.
CMYK / YCCK JPEGs are converted to RGB by TensorFlow's integer division, exactly as the training and
evaluation decoders convert them (`keras_resnet.data.pillow_rgb`; Pillow's own `convert("RGB")` rounds,
at most one level away): every JPEG and PNG is served the pixels it was trained and evaluated on.

Each signature checks its input's rank and sizes in the graph (signature shapes are not enforced at run
time) and names the expected spec in the error. The mean image is the variable `mean_image`; no
function is XLA-compiled and autograph is off.

Example:
    >>> module = ServingModule(prepared, inputs)  # writes or reads an export on disk  # doctest: +SKIP
    >>> tf.saved_model.save(module, path, signatures=module.concrete_signatures())  # writes or reads an export on disk  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_resnet.data.augment import imagenet_eval_geometry, published_eval_geometry
from keras_resnet.export.contract import OUTPUT_KEYS, SIGNATURES
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def signature_specs(inputs):
    """`{signature name: tf.TensorSpec of its input "images"}` for a `ServingInputs`."""
    return {
        "serving_default": tf.TensorSpec([None, *inputs.pixel_size, 3], tf.uint8, name="images"),
        "serve_bytes": tf.TensorSpec([None], tf.string, name="images"),
        "logits": tf.TensorSpec([None, inputs.height, inputs.width, 3], tf.float32, name="images"),
    }


def describe(name, spec) -> str:
    """`"<name> expects <dtype> [<dims>]"`, the text every input error starts with."""
    dims = ", ".join("None" if d is None else str(d) for d in spec.shape.as_list())
    return f"{name} expects {spec.dtype.name} [{dims}]"


def check_shape(images, name, spec):
    """In-graph check of the rank and fixed sizes of `images` against `spec`; returns `images`."""
    expected = spec.shape.as_list()
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.fill([len(expected) + 1], -1)], axis=0)
    ok = tf.equal(padded[len(expected)], -1)  # rank <= expected
    for axis, size in enumerate(expected):
        ok = tf.logical_and(ok, tf.not_equal(padded[axis], -1))  # rank >= expected
        if size is not None:
            ok = tf.logical_and(ok, tf.equal(padded[axis], size))
    check = tf.debugging.Assert(ok, [f"{describe(name, spec)}; received shape", shape], summarize=16)
    with tf.control_dependencies([check]):
        return tf.identity(images)


def has_magic(data, magic):
    """Whether each encoded image in `data` starts with the file signature `magic`."""
    return tf.equal(tf.strings.substr(data, 0, len(magic)), magic)


def check_decodable(images):
    """In-graph check that every element is a JPEG or PNG, naming the 0-based indices of those that are not."""
    ok = tf.logical_or(has_magic(images, JPEG_MAGIC), has_magic(images, PNG_MAGIC))
    bad = tf.reshape(tf.where(tf.logical_not(ok)), [-1])
    check = tf.debugging.Assert(
        tf.reduce_all(ok),
        ["serve_bytes: cannot decode batch element(s)", bad,
         "(0-based): not a JPEG or PNG image; serve_bytes expects string [None] of encoded JPEG/PNG images"],
        summarize=64,
    )
    with tf.control_dependencies([check]):
        return tf.identity(images)


def decode_rgb(data):
    """One encoded JPEG or PNG -> uint8 `[h, w, 3]` (JPEG with the accurate integer DCT, as Pillow decodes).

    TensorFlow's default fast DCT differs from Pillow by up to a few levels.
    """
    pixels = tf.cond(
        has_magic(data, JPEG_MAGIC),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(data, channels=3, dtype=tf.uint8),
    )
    pixels.set_shape([None, None, 3])
    return pixels


class ServingModule(tf.Module):
    """The exported module: the float32 logits network, the mean and the three signature functions.

    Args:
        prepared: `keras_resnet.export.serving_model.ServingModel`.
        inputs: `keras_resnet.export.serving_inputs.ServingInputs`.
    """

    def __init__(self, prepared, inputs):
        super().__init__(name="keras_resnet_serving")
        self.model = prepared.model
        self.mean_image = tf.Variable(np.asarray(inputs.mean, np.float32), trainable=False, name="mean_image")
        self._activation, self._inputs = prepared.activation, inputs  # a str and a frozen dataclass: untracked
        specs = signature_specs(inputs)
        for name in SIGNATURES:
            body = getattr(self, f"_{name}")
            setattr(self, name, tf.function(body, input_signature=[specs[name]], jit_compile=False, autograph=False))

    @property
    def specs(self):
        """`{signature name: input TensorSpec}`."""
        return signature_specs(self._inputs)

    def concrete_signatures(self):
        """`{signature name: concrete function}`, the `signatures=` argument of `tf.saved_model.save`."""
        return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}

    def _normalize(self, pixels):
        # docs/CONTRACTS.md and keras_resnet.data: (float32(image) - mean) / 255, as x * (1 / 255); pretrained
        # weights: (reorder(x) - mean / scale) * (scale / std), per channel (keras_resnet.export.serving_inputs).
        x = tf.cast(pixels, tf.float32)
        if self._inputs.channel_order == "BGR":
            x = tf.reverse(x, axis=[-1])
        multiplier = self._inputs.multiplier
        if not isinstance(multiplier, float):
            multiplier = tf.constant(multiplier, tf.float32)
        return (x - self.mean_image) * multiplier

    def _geometry(self, pixels):
        """One image [h, w, 3] -> float32 [height, width, 3] in 0..255 units (ImageNet evaluation).

        The pixels are cast to float32 first (exact for 0..255, the same resize): a uint8 resize with a float
        output is no LiteRT builtin (`keras_resnet.export.litert_export`)."""
        pixels = tf.cast(pixels, tf.float32)
        inputs = self._inputs
        if inputs.eval_transform is not None:  # a tagged weights set: its publisher's transform
            return published_eval_geometry(pixels, inputs.eval_transform)
        return imagenet_eval_geometry(pixels, inputs.resize, inputs.height)

    def _outputs(self, preprocessed):
        activation, inputs = self._activation, self._inputs
        logits = tf.cast(self.model(preprocessed, training=False), tf.float32)
        if activation == "sigmoid":
            probabilities = tf.math.sigmoid(logits)
        else:  # softmax, or a logits classifier ("linear") trained with from_logits
            probabilities = tf.nn.softmax(logits, axis=-1)
        top = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        names = tf.gather(tf.constant(list(inputs.class_names), tf.string), top)
        return {"probabilities": probabilities, "classes": top, "class_names": names, "logits": logits}

    def _from_pixels(self, pixels):
        outputs = self._outputs(self._normalize(pixels))
        return {key: outputs[key] for key in OUTPUT_KEYS}

    def _serving_default(self, images):
        pixels = check_shape(images, "serving_default", self.specs["serving_default"])
        inputs = self._inputs
        if inputs.any_size:
            out_spec = tf.TensorSpec([inputs.height, inputs.width, 3], tf.float32)
            pixels = tf.map_fn(self._geometry, pixels, fn_output_signature=out_spec)
        return self._from_pixels(pixels)

    def _decode(self, args):
        """One (encoded image, batch index) -> the network's input size, in 0..255 units."""
        data, index = args
        pixels = decode_rgb(data)
        inputs = self._inputs
        if inputs.any_size:
            return self._geometry(pixels)
        height, width = inputs.height, inputs.width
        size = tf.shape(pixels)[:2]
        fits = tf.reduce_all(tf.equal(size, [height, width]))
        check = tf.debugging.Assert(
            fits,
            ["serve_bytes: batch element", index, "decodes to height, width", size,
             f"but this model expects {height}x{width} RGB images (resize them before encoding)"],
        )
        with tf.control_dependencies([check]):
            return tf.reshape(pixels, [height, width, 3])

    def _serve_bytes(self, images):
        images = check_decodable(check_shape(images, "serve_bytes", self.specs["serve_bytes"]))
        inputs = self._inputs
        out_spec = tf.TensorSpec([inputs.height, inputs.width, 3], tf.float32 if inputs.any_size else tf.uint8)
        pixels = tf.map_fn(self._decode, (images, tf.range(tf.shape(images)[0])), fn_output_signature=out_spec)
        return self._from_pixels(pixels)

    def _logits(self, images):
        return self._outputs(check_shape(images, "logits", self.specs["logits"]))


def build_serving_module(prepared, inputs):
    """The `ServingModule` of a prepared network and its inputs, with its concrete signatures.

    Returns:
        `(module, {signature name: concrete function}, {signature name: input TensorSpec})`.
    """
    module = ServingModule(prepared, inputs)
    return module, module.concrete_signatures(), module.specs
