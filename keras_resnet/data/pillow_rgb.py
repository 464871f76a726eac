"""Pillow's decode of a photo as RGB, with CMYK JPEGs converted to RGB exactly as TensorFlow converts them.

Pillow-only (no TensorFlow import). Used by the in-memory path (`keras_resnet.data.folder.decode_image`)
and by the Pillow fallback of the streamed path (`keras_resnet.data.decoding`), so that every path, the
exported serving graph included, gives the same pixels for the same file.

Every file is `Image.open(f).convert("RGB")` except a CMYK (or YCCK) JPEG. For those, TensorFlow's
`tf.io.decode_jpeg`, the only JPEG decoder a graph without Python (an exported SavedModel in TF Serving)
has, converts the decoded CMYK samples to RGB with integer division: with Pillow's (inverted, Adobe
convention) samples `c, k`, `r = (255 - c) * (255 - k) // 255` when the file has an Adobe APP14 marker
(every CMYK JPEG Photoshop, libjpeg or Pillow writes) and `r = c * k // 255` when it has none; likewise
for green (m) and blue (y). Pillow's own `convert("RGB")` rounds instead, so the two differ by at most
one level per channel, and a model trained on Pillow's pixels would be served slightly different ones.
Training, evaluation and serving therefore all use TensorFlow's conversion; the CMYK samples themselves
come from the same libjpeg decode (accurate integer DCT) in both libraries. Measured on Pillow-written
CMYK JPEGs with and without the Adobe marker (`tests/test_data_imagenet.py`): equal to
`tf.io.decode_jpeg(..., dct_method="INTEGER_ACCURATE")` pixel for pixel.

EXIF orientation is ignored (Pillow's `convert` does not apply it, nor do TensorFlow's decoders).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (ImageNet); TensorFlow `core/lib/jpeg/jpeg_mem.cc` (the CMYK to RGB loop).

Example:
    >>> from PIL import Image
    >>> rgb_array(Image.new("CMYK", (2, 1), (0, 0, 0, 0))).tolist()
    [[[255, 255, 255], [255, 255, 255]]]
"""

from __future__ import annotations

import numpy as np


def cmyk_to_rgb(cmyk: np.ndarray, adobe: bool) -> np.ndarray:
    """TensorFlow's CMYK to RGB conversion of Pillow's uint8 CMYK samples `[H, W, 4]`, as uint8 `[H, W, 3]`.

    Args:
        cmyk: Pillow's `np.asarray(image)` for a CMYK image (samples already inverted per Adobe's convention).
        adobe: whether the JPEG carries an Adobe APP14 marker (`"adobe" in image.info`).
    """
    samples = cmyk.astype(np.int32)
    colour, black = samples[..., :3], samples[..., 3:]
    if adobe:
        rgb = (255 - colour) * (255 - black) // 255
    else:
        rgb = colour * black // 255
    return rgb.astype(np.uint8)


def rgb_image(image):
    """The Pillow RGB image for an opened `PIL.Image`: `convert("RGB")`, CMYK JPEGs as TensorFlow converts them."""
    from PIL import Image

    if image.mode == "CMYK" and image.format == "JPEG":
        return Image.fromarray(cmyk_to_rgb(np.asarray(image), "adobe" in image.info), "RGB")
    return image.convert("RGB")


def rgb_array(image) -> np.ndarray:
    """`rgb_image(image)` as a uint8 array `[H, W, 3]`."""
    return np.asarray(rgb_image(image), np.uint8)


__all__ = ["cmyk_to_rgb", "rgb_array", "rgb_image"]
