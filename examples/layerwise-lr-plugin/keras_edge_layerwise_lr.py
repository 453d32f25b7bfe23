"""Layer-wise learning rates as a third-party keras-edge plugin.

The last layer with weights trains at the recipe's learning rate, each earlier one at
``decay`` times the rate of the layer after it (as in layer-wise LR decay for
fine-tuning). ``configure_optimizer`` returns the recipe's optimizer with its
``update_step`` scaling the rate per variable; the loop calls it for every optimizer it
builds, so the rates hold across stages and after growth. Enable it with
``plugins.enable = ["layerwise_lr"]``.
"""

import dataclasses

from keras_edge import hookimpl


@dataclasses.dataclass(frozen=True)
class Options:
    decay: float = 0.5
    """Each layer's rate is this times the next layer's (1: no change)."""

    def __post_init__(self):
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay = {self.decay} must be in (0, 1]")


def rate_factors(model, decay: float) -> dict:
    """Variable -> learning-rate factor: 1 for the last layer with weights, decay**k k layers before.

    Keyed by the TensorFlow variable under each Keras variable (``v.value``), which is what
    the optimizer's ``update_step`` receives on the TensorFlow backend."""
    layers = [layer for layer in model.layers if layer.trainable_weights]
    return {v.value.ref(): decay ** (len(layers) - 1 - i)
            for i, layer in enumerate(layers) for v in layer.trainable_weights}


def with_layer_rates(optimizer, factors: dict):
    """A copy of ``optimizer`` (same class and settings) whose step scales the rate per variable."""

    class LayerwiseRates(type(optimizer)):
        def update_step(self, gradient, variable, learning_rate):
            key = variable.ref() if hasattr(variable, "ref") else variable.value.ref()
            factor = factors.get(key, 1.0)
            return super().update_step(gradient, variable, learning_rate * factor)

    return LayerwiseRates.from_config(optimizer.get_config())


@hookimpl
def configure_optimizer(model, optimizer, options):
    return with_layer_rates(optimizer, rate_factors(model, options.decay))
