"""The model zoo: builders by name, plus parameter and MAC counting.

Every zoo model's BatchNorm momentum (``bn_momentum``) defaults to 0.9, PyTorch's default
and the one the NEq, GEARnn and DεpS authors' code trains with: Keras's 0.99 averages over
~100 steps, so runs of a few hundred steps evaluate with statistics that lag far behind
the weights (MobileNetV2, 2 epochs on 6,000 images: 85% training, 10% test accuracy).
"""

from __future__ import annotations

from keras_edge.errors import RecipeError
from keras_edge.models.macs import count_macs, count_params
from keras_edge.models.mobilenet_v2 import mobilenet_v2
from keras_edge.models.resnet import resnet
from keras_edge.models.small_cnn import small_cnn
from keras_edge.models.vgg import vgg

BUILTIN_MODELS = {
    "small_cnn": small_cnn,
    "vgg": vgg,
    "mobilenet_v2": mobilenet_v2,
    "resnet": resnet,
}

__all__ = ["BUILTIN_MODELS", "build_model", "count_macs", "count_params"]


def build_model(config, input_shape, num_classes, registry=None):
    """Build the model a recipe's ``[model]`` section names.

    ``registry`` maps names to builders (the built-ins plus plugin models); the
    builder receives ``input_shape``, ``num_classes``, ``width`` and the
    ``[model.options]`` table as keyword arguments.
    """
    registry = BUILTIN_MODELS if registry is None else registry
    if config.name not in registry:
        raise RecipeError(
            f"model.name: unknown model {config.name!r}; choose one of {sorted(registry)}"
        )
    try:
        return registry[config.name](
            input_shape=tuple(input_shape), num_classes=num_classes,
            width=config.width, **dict(config.options),
        )
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"model.options: {exc}; see recipes/README.md for each model's options") from exc
