"""The elastic search space: subnet configurations as fixed-length int vectors.

A configuration of a supernet with ``S`` stages of at most ``D`` blocks is the int32
vector ``[depth of each stage (S), kernel of each block (S*D), expand of each block
(S*D)]``; entries of blocks beyond a stage's depth are ignored (kept at their
largest value so equal subnets have equal vectors). One shape for every subnet lets
the compiled train step run any of them without retracing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_edge.errors import KerasEdgeError


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    num_stages: int
    depths: tuple = (2, 3, 4)
    kernels: tuple = (3, 5, 7)
    expands: tuple = (3, 4, 6)

    def __post_init__(self):
        for name in ("depths", "kernels", "expands"):
            values = getattr(self, name)
            if not values or sorted(set(values)) != list(values) or min(values) < 1:
                raise KerasEdgeError(f"model.options.{name}: {list(values)!r} must be increasing "
                                     f"positive integers; use e.g. [2, 3, 4]")
        if any(k % 2 == 0 for k in self.kernels):
            raise KerasEdgeError(f"model.options.kernels: {list(self.kernels)!r} must be odd; use [3, 5, 7]")

    @property
    def max_depth(self) -> int:
        return self.depths[-1]

    @property
    def length(self) -> int:
        return self.num_stages * (1 + 2 * self.max_depth)

    def block_positions(self, stage: int, index: int) -> tuple[int, int]:
        """Where block ``index`` of ``stage`` has its kernel and its expand ratio in a config."""
        block = stage * self.max_depth + index
        return self.num_stages + block, self.num_stages * (1 + self.max_depth) + block

    def encode(self, depth, kernel, expand) -> np.ndarray:
        """Vector of per-stage ``depth`` and per-block ``kernel``/``expand`` (``S x D`` nested lists)."""
        vector = np.concatenate([np.asarray(depth).ravel(), np.asarray(kernel).ravel(),
                                 np.asarray(expand).ravel()]).astype(np.int32)
        return self.canonical(vector)

    def decode(self, vector) -> dict:
        """``{"depth": [S], "kernel": [S][D], "expand": [S][D]}`` of the active blocks."""
        depth, kernel, expand = self.parts(self.check(vector))
        return {"depth": depth.tolist(),
                "kernel": [kernel[s, :d].tolist() for s, d in enumerate(depth)],
                "expand": [expand[s, :d].tolist() for s, d in enumerate(depth)]}

    def parts(self, vector):
        """``(depth [S], kernel [S, D], expand [S, D])`` arrays of a config vector."""
        s, d = self.num_stages, self.max_depth
        vector = np.asarray(vector, np.int32)
        return vector[:s], vector[s:s + s * d].reshape(s, d), vector[s + s * d:].reshape(s, d)

    def check(self, vector) -> np.ndarray:
        vector = np.asarray(vector, np.int32)
        if vector.shape != (self.length,):
            raise KerasEdgeError(f"subnet config has shape {vector.shape}, the supernet expects "
                                 f"({self.length},); build configs with SearchSpace.encode")
        depth, kernel, expand = self.parts(vector)
        for name, values, allowed in (("depth", depth, self.depths), ("kernel", kernel, self.kernels),
                                      ("expand", expand, self.expands)):
            bad = sorted(set(values.ravel().tolist()) - set(allowed))
            if bad:
                raise KerasEdgeError(f"subnet config: {name} values {bad} are not in {list(allowed)}")
        return vector

    def canonical(self, vector) -> np.ndarray:
        """Same subnet with the unused blocks' entries set to the largest choice."""
        depth, kernel, expand = (a.copy() for a in self.parts(self.check(vector)))
        for s, d in enumerate(depth):
            kernel[s, d:], expand[s, d:] = self.kernels[-1], self.expands[-1]
        return np.concatenate([depth, kernel.ravel(), expand.ravel()]).astype(np.int32)

    def uniform(self, depth, kernel, expand) -> np.ndarray:
        s, d = self.num_stages, self.max_depth
        return self.encode([depth] * s, np.full((s, d), kernel), np.full((s, d), expand))

    def largest(self) -> np.ndarray:
        return self.uniform(self.depths[-1], self.kernels[-1], self.expands[-1])

    def smallest(self) -> np.ndarray:
        return self.uniform(self.depths[0], self.kernels[0], self.expands[0])

    def sample(self, rng: np.random.Generator, depths=None, kernels=None, expands=None) -> np.ndarray:
        """A uniformly random subnet, optionally restricted to some of the choices."""
        s, d = self.num_stages, self.max_depth
        return self.encode(rng.choice(depths or self.depths, s),
                           rng.choice(kernels or self.kernels, (s, d)),
                           rng.choice(expands or self.expands, (s, d)))

    def mutate(self, vector, rng: np.random.Generator, prob: float) -> np.ndarray:
        """Resample each gene with probability ``prob``."""
        fresh = self.sample(rng)
        depth, kernel, expand = self.parts(vector)
        new_depth, new_kernel, new_expand = self.parts(fresh)
        pick = lambda old, new: np.where(rng.random(old.shape) < prob, new, old)  # noqa: E731
        return self.encode(pick(depth, new_depth), pick(kernel, new_kernel), pick(expand, new_expand))

    def crossover(self, a, b, rng: np.random.Generator) -> np.ndarray:
        """Each gene from ``a`` or ``b`` with equal probability."""
        a, b = np.asarray(a), np.asarray(b)
        return self.canonical(np.where(rng.random(a.shape) < 0.5, a, b))
