"""Decoding encoded images in tf.data exactly as the package's Pillow decode (`keras_resnet.data.pillow_rgb`).

TensorFlow-only: this module imports TensorFlow (and Pillow, for the fallback).

The in-memory path (`keras_resnet.data.folder.decode_image`) decodes with Pillow; the streamed path must
give the same pixels, so that a model trains on, and is evaluated on, the same images whichever path reads
them, and the exported serving graph must give them too. TensorFlow's decoders do, for the files that make
up nearly all of a photo collection:

* JPEG with 1 (grayscale), 3 or 4 (CMYK / YCCK) components: `tf.io.decode_jpeg` with the accurate integer
  DCT (`INTEGER_ACCURATE`, libjpeg's `JDCT_ISLOW`, which Pillow uses) and fancy upsampling, grayscale
  replicated to 3 channels as Pillow's `L -> RGB` does. CMYK is converted to RGB the way TensorFlow does
  (integer division), in every path, because the serving graph cannot call Pillow; Pillow's own
  `convert("RGB")` rounds, one level away at most (`keras_resnet.data.pillow_rgb`);
* 8-bit PNG of any colour type (grey, grey + alpha, RGB, RGBA, palette), alpha dropped as Pillow does;

whatever the file is named (a PNG named `.JPEG` is decoded by what its bytes are). Everything else goes
through Pillow itself in a `tf.numpy_function` (the documented fallback): PNGs of 1, 2, 4 or 16 bits per
sample, GIF, BMP and any other format Pillow reads. The fallback holds Python's GIL, which costs nothing
measurable at ImageNet's rate of such files (a few in a million); a graph that must run without Python
(an exported SavedModel) uses `decode(..., pillow_fallback=False)`, TensorFlow's decoders for everything.

EXIF orientation is ignored, in training and serving alike: Pillow's `convert` does not apply it and
neither do TensorFlow's decoders, so an EXIF-rotated photo is used as stored.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (ImageNet); ITU T.81 (JPEG, SOF component count), the PNG specification (IHDR bit depth).

Example:
    >>> import tensorflow as tf

from keras_resnet.data.pillow_rgb import rgb_array
    >>> png = tf.io.encode_png(tf.zeros([5, 7, 1], tf.uint8))
    >>> decode(png).shape
    TensorShape([5, 7, 3])
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf

from keras_resnet.data.pillow_rgb import rgb_array

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_BIT_DEPTH_OFFSET = 24
"""Byte offset of the IHDR bit depth in a PNG (8-byte signature, chunk length and type, width, height)."""


def starts_with(encoded, magic: bytes):
    """In-graph: whether the scalar string `encoded` starts with `magic`."""
    return tf.equal(tf.strings.substr(encoded, 0, len(magic)), magic)


def tf_decodes_like_pillow(encoded):
    """In-graph: whether TensorFlow's decoder gives the package's Pillow pixels for these bytes (module docstring).

    True for JPEGs whose header declares 1, 3 or 4 components and for 8-bit PNGs; False otherwise. Reads only
    the header (`tf.io.extract_jpeg_shape`), which raises for a JPEG whose header does not parse.
    """
    def jpeg_components():
        return tf.io.extract_jpeg_shape(encoded)[2]

    is_jpeg = starts_with(encoded, JPEG_MAGIC)
    components = tf.cond(is_jpeg, jpeg_components, lambda: tf.constant(0, tf.int32))
    jpeg_ok = is_jpeg & ((components == 1) | (components == 3) | (components == 4))
    png_ok = starts_with(encoded, PNG_MAGIC) & tf.equal(
        tf.strings.substr(encoded, PNG_BIT_DEPTH_OFFSET, 1), b"\x08")
    return jpeg_ok | png_ok


def pillow_decode_numpy(data, channels: int = 3) -> np.ndarray:
    """`Image.open(data)` as uint8 `[H, W, channels]`: RGB as `keras_resnet.data.pillow_rgb.rgb_array` gives it
    (CMYK JPEGs as TensorFlow converts them), or `convert("L")` / `convert("RGBA")` for 1 / 4 channels.

    Args:
        data: encoded bytes.
        channels: 1, 3 or 4.
    """
    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[int(channels)]
    if isinstance(data, np.ndarray):  # tf.numpy_function passes a 0-d object array
        data = data.item()
    with Image.open(io.BytesIO(bytes(data))) as im:
        out = rgb_array(im) if mode == "RGB" else np.asarray(im.convert(mode), np.uint8)
    return out.reshape(out.shape[0], out.shape[1], int(channels))


def pillow_decode(encoded, channels: int = 3):
    """In-graph Pillow decode through `tf.numpy_function` (needs Python; not for exported graphs).

    Raises (when run): `tf.errors.InvalidArgumentError` (or `UnknownError`) if Pillow cannot decode the bytes.
    """
    image = tf.numpy_function(lambda b: pillow_decode_numpy(b, channels), [encoded], tf.uint8, stateful=False)
    image.set_shape([None, None, channels])
    return image


def tf_decode(encoded, channels: int = 3):
    """TensorFlow's own decode: JPEG with the accurate integer DCT, other formats with `decode_image`."""
    image = tf.cond(
        starts_with(encoded, JPEG_MAGIC),
        lambda: tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=channels, expand_animations=False),
    )
    image.set_shape([None, None, channels])
    return image


def decode(encoded, channels: int = 3, pillow_fallback: bool = True):
    """Decodes encoded image bytes to uint8 `[H, W, channels]` with a static rank, as Pillow decodes them.

    Args:
        encoded: scalar string tensor (JPEG, PNG, GIF, BMP, or any format Pillow reads).
        channels: 3 (RGB, the default), 1 or 4.
        pillow_fallback: decode the files TensorFlow does not decode like Pillow (non-8-bit PNG, GIF, BMP,
            other formats) with Pillow in a `tf.numpy_function`; False keeps the graph free of Python
            (TensorFlow's decoders for everything: JPEG and PNG give the same pixels either way).

    Example:
        >>> decode(tf.io.encode_jpeg(tf.zeros([4, 6, 3], tf.uint8))).shape
        TensorShape([4, 6, 3])
    """
    if not pillow_fallback:
        return tf_decode(encoded, channels)
    image = tf.cond(tf_decodes_like_pillow(encoded), lambda: tf_decode(encoded, channels),
                    lambda: pillow_decode(encoded, channels))
    image.set_shape([None, None, channels])
    return image


__all__ = ["JPEG_MAGIC", "PNG_MAGIC", "decode", "pillow_decode", "pillow_decode_numpy", "tf_decode",
           "tf_decodes_like_pillow"]
