"""Training MACs of each optimizer step: forward and backward passes of every sampled
(sub)network over the batch, its augmented views included."""

from __future__ import annotations

from keras_edge.models import count_macs
from keras_edge.protocols import ElasticModel


class StepMacs:
    """Counts ``3 x images x MACs per image`` per step (forward + two backward products)."""

    def __init__(self, strategy):
        self.strategy = strategy
        self._of = (None, 0)

    def __call__(self, model, samples, batch) -> int:
        local = self.strategy.experimental_local_results
        views = batch.get("views")
        images = sum(int(t.shape[0]) for t in local(batch["image"]))
        images *= 1 + (0 if views is None else len(local(views)[0]))
        macs, elastic = 0, isinstance(model, ElasticModel)
        for sample in samples:
            if sample.config is not None and elastic:
                macs += int(model.subnet_macs(sample.config))
            else:
                macs += self.full(model)
        return 3 * images * macs

    def full(self, model) -> int:
        """MACs of one forward pass of the whole model on one example (cached per model)."""
        if self._of[0] is not model:
            self._of = (model, count_macs(model))
        return self._of[1]
