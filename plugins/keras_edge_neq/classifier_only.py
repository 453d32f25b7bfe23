"""Classifier-only fine-tuning: the lower reference point of the budget experiments."""

from __future__ import annotations

import numpy as np

from keras_edge_neq.neurons import neuron_masks
from keras_edge_neq.selection import SelectionPlugin


class ClassifierOnly(SelectionPlugin):
    """Only the classifier (the model's last dense layer) is updated."""

    name = "classifier_only"
    budgeted = False

    def choose(self, ctx, model, layers, cost_model, limit, options):
        return neuron_masks(layers, {layer.name: np.full(layer.units, layer.is_classifier) for layer in layers})
