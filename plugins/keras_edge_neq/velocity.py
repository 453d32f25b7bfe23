"""Neuron velocity as in NEq (Bragagnolo et al. 2022), measured on a fixed velocity set.

For every neuron ``i`` and measurement ``t`` (once per epoch):

* ``phi_t[i]``: mean over the velocity-set samples of the cosine similarity between the
  neuron's output map now and at the previous measurement (a dense unit's output is
  one number per sample, so its cosine is taken over the vector of samples, as the
  reference code does for 2-D outputs); two all-zero maps count as similar (1), one
  all-zero map against a non-zero one as 0, as in the reference ``cosine_similarity``;
* ``delta_phi_t = phi_t - phi_{t-1}``, with ``phi_0 = 1`` (the reference code starts its
  buffer of ``1 - phi`` at 0): before any change, outputs count as unchanged;
* the velocity, by one of two recurrences (``velocity_0 = 0``):

  - ``"code"`` (the authors' ``Hook.get_velocity`` / ``update_velocity``): the ranked value
    is ``u_t = v_{t-1} + delta_phi_t`` and the stored one ``v_t = mu_eq * u_t - delta_phi_t``,
    that is ``u_t = delta_phi_t - delta_phi_{t-1} + mu_eq * u_{t-1}``;
  - ``"paper"`` (NEq's equation): ``v_t = delta_phi_t - mu_eq * v_{t-1}``, ranked as is.

  Both give ``delta_phi_1`` at the first velocity, and the same second velocity when
  ``mu_eq = 0.5``; they differ from the third on.

Outputs are read at ``at``: the layer's own output (``"layer"``, before BatchNorm, as the
authors' hooks on ``nn.Conv2d``) or after its BatchNorm (``"batchnorm"``).
"""

from __future__ import annotations

import keras
import numpy as np


def channel_cosine(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Mean cosine similarity per channel between two ``(samples, ..., channels)`` outputs."""
    if now.ndim == 2:
        now, before = now[None], before[None]
    now = now.reshape(now.shape[0], -1, now.shape[-1]).astype(np.float64)
    before = before.reshape(before.shape[0], -1, before.shape[-1]).astype(np.float64)
    norm_now, norm_before = np.linalg.norm(now, axis=1), np.linalg.norm(before, axis=1)
    both = (norm_now > 0) & (norm_before > 0)
    dot = np.sum(now * before, axis=1)
    cosine = np.where(both, dot / np.where(both, norm_now * norm_before, 1.0), 0.0)
    cosine = np.where((norm_now == 0) & (norm_before == 0), 1.0, cosine)
    return cosine.mean(axis=0)


class VelocityTracker:
    """Keeps the last outputs, ``phi`` and velocity of every neuron of a list of layers."""

    def __init__(self, mu_eq: float = 0.5, recurrence: str = "code", at: str = "layer", batch_size: int = 256):
        self.mu_eq, self.recurrence, self.at = mu_eq, recurrence, at
        self.batch_size = batch_size
        self.outputs = None
        self.phi = {}
        self.velocity = {}
        self._probe = None

    def update(self, model, layers, images) -> dict | None:
        """Measure the outputs of ``layers`` on ``images`` (float32 NHWC) and return
        ``{layer name: velocity per neuron}``, or ``None`` at the first measurement."""
        outputs = self._measure(model, layers, images)
        previous, self.outputs = self.outputs, outputs
        if previous is None:
            return None
        ranked = {}
        for layer in layers:
            phi = channel_cosine(outputs[layer.name], previous[layer.name])
            phi = phi.reshape(layer.units, layer.multiplier).mean(axis=1)
            delta_phi = phi - self.phi.get(layer.name, 1.0)
            ranked[layer.name], self.velocity[layer.name] = self.step(delta_phi, self.velocity.get(layer.name, 0.0))
            self.phi[layer.name] = phi
        return ranked

    def step(self, delta_phi, stored):
        """(velocity to rank by, velocity to store) from ``delta_phi_t`` and the stored ``v_{t-1}``."""
        if self.recurrence == "paper":
            velocity = delta_phi - self.mu_eq * stored
            return velocity, velocity
        ranked = stored + delta_phi
        return ranked, self.mu_eq * ranked - delta_phi

    def state(self) -> dict | None:
        """What ``load`` needs to continue the measurements (saved with checkpoints)."""
        if self.outputs is None:
            return None
        return {"mu_eq": self.mu_eq, "recurrence": self.recurrence, "at": self.at,
                "outputs": self.outputs, "phi": self.phi, "velocity": self.velocity}

    @classmethod
    def load(cls, state: dict) -> "VelocityTracker":
        tracker = cls(state["mu_eq"], state.get("recurrence", "paper"), state.get("at", "batchnorm"))
        tracker.outputs, tracker.phi, tracker.velocity = state["outputs"], state["phi"], state["velocity"]
        return tracker

    def _measure(self, model, layers, images) -> dict:
        if self._probe is None or self._probe[0] is not model:
            probe = keras.Model(model.inputs, [layer.output if self.at == "layer" else layer.normalized
                                               for layer in layers])
            self._probe = (model, probe)
        probe = self._probe[1]
        chunks = []
        for i in range(0, len(images), self.batch_size):
            out = probe([images[i:i + self.batch_size]], training=False)
            chunks.append(out if isinstance(out, (list, tuple)) else [out])
        return {layer.name: np.concatenate([np.asarray(c[j]) for c in chunks])
                for j, layer in enumerate(layers)}
