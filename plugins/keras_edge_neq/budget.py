"""Budgets and what a selection costs: parameters, or bytes of training memory.

Memory model (``budget_unit = "bytes"``), float32 throughout, for one training step:

* every updated parameter costs 4 bytes for its trainable fp32 copy, 4 for its
  gradient and 4 per optimizer slot (SGD with momentum: 1, Adam: 2, plain SGD: 0);
* a layer whose kernel is updated keeps its input for the weight gradient: the input
  channels that the updated weights read, times the input's spatial positions, times
  the batch size (a depthwise convolution keeps only the updated channels);
* an updated BatchNorm scale keeps its channel's normalised output (positions x batch);
  biases and BatchNorm shifts need nothing saved.

Not counted: the frozen weights (they are needed for inference anyway), the
activation-function masks that carry the gradient back through frozen layers, and under
the authors' ``accounting = "conv"`` the classifier and BatchNorm (outside the budget).
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from keras_edge.errors import RecipeError

BYTES_PER_VALUE = 4
Unit = typing.Literal["fraction", "params", "bytes"]


@dataclasses.dataclass(frozen=True)
class BudgetOptions:
    """Options shared by the budgeted selection plugins."""

    plugin: typing.ClassVar[str] = "neq"

    budget: float = 0.25
    """How much may be updated, in ``budget_unit`` (default 25% of the budget's denominator)."""
    budget_unit: Unit = "fraction"
    """fraction: share of the denominator (see ``accounting``), in (0, 1]; params: a
    parameter count; bytes: training memory per step under the memory model of the README."""
    accounting: typing.Literal["conv", "all"] = "conv"
    """conv (the authors' code): the budget counts the kernels and biases of the candidate
    layers only; the classifier always trains and BatchNorm scales and shifts train on
    every channel, all outside the budget. all: every trainable parameter counts, the
    classifier is charged first and a neuron's BatchNorm channel moves (and is paid) with it."""
    candidates: typing.Literal["conv", "conv_dense"] = "conv"
    """Which layers' neurons may be selected: convolutions (the authors' code), or also
    hidden dense layers (their velocities are normalised per kind before ranking)."""
    frozen_bn_statistics: typing.Literal["update", "keep"] = "update"
    """update (the authors' code): BatchNorm moving statistics follow every training batch;
    keep: the statistics of channels whose neuron is frozen are restored after each epoch."""

    def __post_init__(self):
        key = f"plugins.{self.plugin}.budget"
        if self.budget_unit == "fraction" and not 0 < self.budget <= 1:
            raise RecipeError(f"{key}: a fraction must be in (0, 1], got {self.budget}; "
                              f"use e.g. 0.25, or set budget_unit = \"params\" or \"bytes\"")
        if self.budget_unit != "fraction" and self.budget < 1:
            raise RecipeError(f"{key}: {self.budget} {self.budget_unit} is not a budget; "
                              f"use a count of at least 1, or budget_unit = \"fraction\"")


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Prices selections in one unit (parameters, or bytes for a given batch and optimizer)
    under one accounting (``"conv"``: kernels and biases outside the classifier; ``"all"``)."""

    unit: str = "params"
    batch_size: int = 1
    optimizer_slots: int = 0
    accounting: str = "conv"

    @classmethod
    def for_stage(cls, options, stage) -> "CostModel":
        """The cost model of budget ``options`` (``None``: parameters, all counted) in a recipe stage."""
        train = stage.train
        slots = 2 if train.optimizer == "adam" else int(train.momentum > 0)
        unit = "params" if options is None or options.budget_unit == "fraction" else options.budget_unit
        return cls(unit, stage.data.batch_size, slots, "all" if options is None else options.accounting)

    @property
    def bytes_per_param(self) -> int:
        return BYTES_PER_VALUE * (2 + self.optimizer_slots)

    @property
    def bytes_per_activation(self) -> int:
        return BYTES_PER_VALUE * self.batch_size

    def charged(self, layer) -> bool:
        """Whether the layer's neurons count against the budget."""
        return self.accounting == "all" or not layer.is_classifier

    def charged_variables(self, model, layers) -> list:
        """The variables whose selected entries the budget counts."""
        if self.accounting == "all":
            return list(model.trainable_variables)
        return [v for layer in layers if self.charged(layer) for v in (layer.kernel, layer.bias) if v is not None]

    def neuron_params(self, layer) -> int:
        """Parameters one neuron of ``layer`` is charged for."""
        return layer.params_per_neuron if self.accounting == "all" else layer.own_params_per_neuron

    def neuron_cost(self, layer) -> tuple[float, float]:
        """(cost of one neuron of ``layer``, extra cost of the layer's first selected neuron)."""
        if not self.charged(layer):
            return 0.0, 0.0
        if self.unit == "params":
            return float(self.neuron_params(layer)), 0.0
        act = self.bytes_per_activation
        cost = self.neuron_params(layer) * self.bytes_per_param
        if layer.gamma is not None and self.accounting == "all":
            cost += layer.multiplier * layer.out_positions * act
        if layer.depthwise:
            return float(cost + layer.in_positions * act), 0.0
        return float(cost), float(layer.in_channels * layer.in_positions * act)

    def selection_cost(self, model, layers, masks: dict) -> float:
        """Cost of letting ``masks`` (``{variable.path: mask}``; unnamed variables are frozen) move."""
        def selected(variable):
            return np.broadcast_to(np.asarray(masks.get(variable.path, 0.0)) != 0, variable.shape)

        params = sum(int(selected(v).sum()) for v in self.charged_variables(model, layers))
        if self.unit == "params":
            return float(params)
        total = params * self.bytes_per_param
        for layer in layers:
            if not self.charged(layer):
                continue
            kernel = selected(layer.kernel)
            kernel = kernel.reshape(-1, *kernel.shape[-2:])
            total += int(kernel.any(axis=(0, 2)).sum()) * layer.in_positions * self.bytes_per_activation
            if layer.gamma is not None and self.accounting == "all":
                total += int(selected(layer.gamma).sum()) * layer.out_positions * self.bytes_per_activation
        return float(total)

    def denominator(self, model, layers) -> int:
        """Parameters a budget fraction is a share of: the charged variables in full."""
        return sum(int(np.prod(v.shape)) for v in self.charged_variables(model, layers))

    def limit(self, options: BudgetOptions, model, layers) -> float:
        """The budget in this model's units (a fraction is rounded down, as the authors' code does)."""
        if options.budget_unit == "fraction":
            return float(np.floor(options.budget * self.denominator(model, layers)))
        return float(options.budget)
