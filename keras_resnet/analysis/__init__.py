"""Tools that make the paper's findings executable: identity deepening, gradient flow, layer responses.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385): section 4.2 and Fig. 6 (degradation), section 3.1 (identity mapping: "a deeper model
should have training error no greater than its shallower counterpart"), section 3.2 (gradient flow through
the identity term) and Fig. 7 (standard deviations of layer responses).

One job per module, every public name re-exported here (`from keras_resnet import analysis; analysis.X`):

* `surgery`: `deepen(model, extra_blocks_per_stage)` (a deeper CIFAR ResNet computing exactly the same
  function) and `describe_cifar_model(model)`.
* `probes`: `gradient_norms(model, batch)`, `GradientNormsCallback`, `layer_responses(model, images)`,
  `response_layers(model)`.
* `plots`: `plot_degradation`, `plot_gradient_norms`, `plot_layer_responses` (PNGs, fixed pixel sizes) and
  `degradation_table` and `loss_table` (markdown).
* `experiments`: the runners behind the trainers: `train_runs`, `load_experiment_data`, `sample_batch`,
  `sample_images`, `load_checkpoint`, `read_log`, `write_report`.

Only `experiments` imports `keras_resnet.training` (lazily); training never imports analysis.

Example:
    >>> import keras_resnet
    >>> from keras_resnet import analysis
    >>> shallow = keras_resnet.build("resnet20")
    >>> deep = analysis.deepen(shallow, 2)  # ResNet-32, same outputs as `shallow`
    >>> deep.name
    'resnet32'
"""

from keras_resnet.analysis.experiments import (
    load_checkpoint,
    load_experiment_data,
    read_log,
    sample_batch,
    sample_images,
    train_runs,
    write_report,
)
from keras_resnet.analysis.plots import (
    degradation_table,
    loss_table,
    plot_degradation,
    plot_gradient_norms,
    plot_layer_responses,
)
from keras_resnet.analysis.probes import (
    GradientNormsCallback,
    gradient_norms,
    layer_responses,
    response_layers,
)
from keras_resnet.analysis.surgery import deepen, describe_cifar_model

__all__ = [
    "GradientNormsCallback",
    "deepen",
    "degradation_table",
    "loss_table",
    "describe_cifar_model",
    "gradient_norms",
    "layer_responses",
    "load_checkpoint",
    "load_experiment_data",
    "plot_degradation",
    "plot_gradient_norms",
    "plot_layer_responses",
    "read_log",
    "response_layers",
    "sample_batch",
    "sample_images",
    "train_runs",
    "write_report",
]
