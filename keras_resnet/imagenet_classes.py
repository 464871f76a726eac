"""The 1,000 ImageNet classes, by class index, and `decode_predictions` for an ImageNet model's outputs.

The class index ships with the package as `keras_resnet/imagenet_class_index.json`, byte for byte
keras.applications' `imagenet_class_index.json` (MD5 `IMAGENET_CLASS_INDEX_MD5`, the `file_hash` Keras
checks it against): `{"0": ["n01440764", "tench"], ...}`, a WordNet id and a short name per class index,
the order of every ImageNet model here and in keras.applications (the wnids sorted). It is read once, on
first use, and never downloaded. Names repeat ("crane" is 134, the bird, and 517, the machine;
"maillot" is 638 and 639): the wnid is the key.

Reference: He et al. (2015), "Deep Residual Learning for Image Recognition" (arXiv:1512.03385), section
4.1 evaluates on the ImageNet 2012 classification set (ILSVRC 2012, 1000 classes; Russakovsky et al.,
IJCV 2015); the names are keras.applications' (`keras.applications.imagenet_utils.decode_predictions`).

Example:
    >>> import numpy as np
    >>> from keras_resnet.imagenet_classes import decode_predictions, imagenet_classes
    >>> imagenet_classes()[1]
    ('n01443537', 'goldfish')
    >>> scores = np.zeros((1, 1000), "float32")
    >>> scores[0, 1], scores[0, 999] = 0.75, 0.25
    >>> decode_predictions(scores, top=2)
    [[('n01443537', 'goldfish', 0.75), ('n15075141', 'toilet_tissue', 0.25)]]
"""

from __future__ import annotations

import functools
import importlib.resources
import json

import keras
import numpy as np

IMAGENET_CLASS_INDEX_FILE = "imagenet_class_index.json"
IMAGENET_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
"""keras.applications' published `file_hash` of `imagenet_class_index.json`; the shipped file has it."""
IMAGENET_NUM_CLASSES = 1000


@functools.lru_cache(maxsize=None)
def imagenet_classes():
    """The 1,000 ImageNet classes as `(wnid, name)` pairs, in class-index order (read once, then cached).

    Returns:
        A tuple of 1,000 `(wnid, name)` tuples: entry `i` is class index `i` of an ImageNet model.

    Reference: keras.applications' `imagenet_class_index.json` (shipped with this package); the ILSVRC 2012
    classes of He et al. (2015), section 4.1.

    Example:
        >>> from keras_resnet.imagenet_classes import imagenet_classes
        >>> classes = imagenet_classes()
        >>> len(classes), classes[0], classes[999]
        (1000, ('n01440764', 'tench'), ('n15075141', 'toilet_tissue'))
    """
    text = importlib.resources.files(__package__).joinpath(IMAGENET_CLASS_INDEX_FILE).read_text(encoding="utf-8")
    index = json.loads(text)
    return tuple((index[str(i)][0], index[str(i)][1]) for i in range(IMAGENET_NUM_CLASSES))


def check_top(top):
    """Raises ValueError naming `top` unless it is an int from 1 to 1000."""
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or \
            not 1 <= top <= IMAGENET_NUM_CLASSES:
        raise ValueError(f"`top` must be an int from 1 to {IMAGENET_NUM_CLASSES} (how many classes to list per "
                         f"row); received {top!r}.")


def scores_array(preds):
    """`preds` as a float64 NumPy array `[batch, 1000]`; ValueError naming `preds` for any other shape."""
    array = np.asarray(keras.ops.convert_to_numpy(preds), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != IMAGENET_NUM_CLASSES:
        hint = " (one row needs a batch axis: `preds[None]`)" if array.shape == (IMAGENET_NUM_CLASSES,) else ""
        raise ValueError(f"`preds` must be a batch of ImageNet scores, shape [batch, {IMAGENET_NUM_CLASSES}]; "
                         f"received shape {tuple(array.shape)}{hint}. decode_predictions decodes the "
                         f"{IMAGENET_NUM_CLASSES} ImageNet classes (e.g. the outputs of "
                         "`ResNet50(weights=\"imagenet\")`); a CIFAR-10 model's classes are in its export's "
                         "labels (assets/labels.txt) or its own class names.")
    return array


def decode_predictions(preds, top=5):
    """The `top` classes of each row of an ImageNet model's outputs, best first, with their names.

    As `keras.applications.imagenet_utils.decode_predictions`, from the class index shipped with this
    package (never downloaded). Equal scores keep class-index order (a stable sort: the lower index first,
    whatever the backend; Keras' unstable `argsort` leaves ties to chance); a NaN score ranks last. Scores
    are Python floats (Keras gives the array's NumPy scalars; they compare equal).

    Args:
        preds: the scores (probabilities or logits), shape `[batch, 1000]`: a NumPy array or a tensor of
            the Keras backend (converted with `keras.ops.convert_to_numpy`).
        top: how many classes to list per row, an int from 1 to 1000.

    Returns:
        A list with one list per row of `preds` of `top` `(wnid, name, score)` tuples, by score descending,
        e.g. `('n01443537', 'goldfish', 0.75)`.

    Raises:
        ValueError: naming `preds` when it is not 2-D with 1000 columns (e.g. a CIFAR-10 model's outputs),
            or `top` when it is not an int from 1 to 1000.

    Reference: keras.applications' `imagenet_utils.decode_predictions`; the ILSVRC 2012 classes of
    He et al. (2015), section 4.1.

    Example:
        >>> import numpy as np
        >>> from keras_resnet.imagenet_classes import decode_predictions
        >>> one_hot = np.eye(1000, dtype="float32")[[1]]  # one row: all of the score on class 1
        >>> decode_predictions(one_hot, top=1)
        [[('n01443537', 'goldfish', 1.0)]]
        >>> [wnid for wnid, _, _ in decode_predictions(one_hot, top=3)[0]]  # ties: class-index order
        ['n01443537', 'n01440764', 'n01484850']
    """
    check_top(top)
    array = scores_array(preds)
    order = np.argsort(-array, axis=1, kind="stable")[:, :top]
    classes = imagenet_classes()
    return [[classes[i] + (float(row[i]),) for i in indices] for row, indices in zip(array, order)]
