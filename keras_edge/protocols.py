"""What the core asks of a model beyond being a Keras model, declared as protocols.

They are structural (``typing.Protocol``): a model or layer satisfies one by having the
members, without inheriting from it; the core tests with ``isinstance``. The supernet of
``plugins/keras_edge_deps`` implements all three.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ElasticModel(Protocol):
    """A weight-sharing supernet: ``model(x, training=True, subnet=config)`` runs the subnet
    ``config`` (a fixed-shape int tensor from ``sample_subnets``), and ``subnet_macs(config)``
    gives its MACs per example (``subnet_macs(None)``: the full model's), so training MACs
    are counted per subnet and ``count_macs`` asks the model."""

    def subnet_macs(self, config: Any) -> int: ...


@runtime_checkable
class SynchronizableNorm(Protocol):
    """A normalisation layer whose ``synchronized = True`` makes it use the global batch's
    statistics across replicas (Keras's ``BatchNormalization`` is one)."""

    synchronized: bool


@runtime_checkable
class JitAware(Protocol):
    """A layer that says whether XLA can compile it; ``supports_jit = False`` keeps
    ``train.jit_compile = "auto"`` off (layers without the attribute are assumed to compile)."""

    supports_jit: bool
