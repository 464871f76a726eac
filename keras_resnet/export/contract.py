"""The names every export promises its clients (TensorFlow-free, so importing them loads no graph code).

Example:
    >>> from keras_resnet.export.contract import SIGNATURES
    >>> SIGNATURES
    ('serving_default', 'serve_bytes', 'logits')
"""

SIGNATURES = ("serving_default", "serve_bytes", "logits")
"""The signature names of every export."""
OUTPUT_KEYS = ("probabilities", "classes", "class_names")
"""Output keys of every signature (`logits` adds the key `logits`)."""
OUTPUT_DTYPES = {"probabilities": "float32", "classes": "int64", "class_names": "string", "logits": "float32"}
"""The dtype of each output key, as the model card states it."""
