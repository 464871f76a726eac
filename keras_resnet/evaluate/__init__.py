"""Evaluation as the paper reports it: top-1 and top-5 error of a run or of published weights on any split.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Tables 3-4 (ImageNet top-1
and top-5 error, centre crop and 10-crop testing) and Table 6 (CIFAR-10 test error).

    python -m keras_resnet.evaluate --model_dir=runs/pets --data=/data/pets [--split=validation] [--ten_crop]
    python -m keras_resnet.evaluate --model=resnet56 --weights=cifar10 --data=../shared/datasets/cifar10-jpeg

API (`keras_resnet.evaluate.api`): `evaluate_model_dir(model_dir, data, split=None, ten_crop=False,
checkpoint="best", batch_size=64)`, `evaluate_pretrained(model, weights, data, split=None, ten_crop=False,
image_size=None, batch_size=64, stride_in_3x3=None)`, both returning a JSON-ready dict (`top1_error`,
`top5_error`, `images`, `split`, ...), and `EvaluationError`. Command line: `keras_resnet.evaluate.cli`
(exit 0, 2 for bad input with one line naming the flag or file).

Example:
    >>> from keras_resnet.evaluate import evaluate_model_dir
    >>> evaluate_model_dir("runs/pets", "/data/pets")["top5_error"]  # needs a run directory  # doctest: +SKIP
"""

from keras_resnet.evaluate.api import EvaluationError, evaluate_model_dir, evaluate_pretrained

__all__ = ["EvaluationError", "evaluate_model_dir", "evaluate_pretrained"]
