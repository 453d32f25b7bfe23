"""Channel reorganisation: sort each block's expansion channels by importance before shrinking.

A subnet with expand ratio ``e`` uses the first ``in * e`` expansion channels of a block,
so sorting them by importance (the L1 norm of each channel's project-conv weights, as
``re_organize_middle_weights`` in OFA and the DεpS reference) puts the most important ones
in every subnet's slice. The full model's function is unchanged: the expand conv's outputs,
their BatchNorm, the depthwise conv and the project conv's inputs are permuted together
(the kernel transformation matrices act per channel and are unaffected).
"""

from __future__ import annotations

import numpy as np


def channel_order(importance, boundaries=()) -> np.ndarray:
    """Descending-importance order of channels, sorted separately between ``boundaries``.

    Channels never cross a boundary: with ``boundaries=(64,)`` the first 64 stay first.
    The sort is stable, so sorting an already sorted block again is the identity.
    """
    importance = np.asarray(importance, np.float64)
    edges = [0, *sorted(b for b in boundaries if 0 < b < len(importance)), len(importance)]
    return np.concatenate([a + np.argsort(-importance[a:b], kind="stable") for a, b in zip(edges, edges[1:])])


def segment_boundaries(in_channels: int, expands) -> tuple[int, ...]:
    """Widths that must stay apart when these expand ratios are trained.

    The reference's ``expand_ratio_stage``: with ratios ``e_0 > e_1 > ... > e_s`` in use,
    channels are sorted within ``[0, in*e_s')`` segments bounded by every ratio but the
    largest and the smallest (OFA's first expand phase, ratios {6, 4}: one sort of all
    channels; with {6, 4, 3}: the first ``4 * in`` and the rest apart).
    """
    ratios = sorted(set(expands), reverse=True)
    return tuple(in_channels * e for e in ratios[1:-1])


def reorganize(model, expands=None, optimizer=None) -> int:
    """Sort every elastic block's expansion channels; returns how many channels moved.

    ``expands``: the expand ratios trained from now on (default: all of the space).
    SGD momentum of the permuted weights (``optimizer.momentums``, built in the order of
    ``model.trainable_variables``) is permuted with them.
    """
    expands = model.space.expands if expands is None else expands
    slots = _momentum_slots(model, optimizer)
    moved = 0
    for stage in model.blocks:
        for block in stage:
            importance = np.abs(block.project_kernel.numpy()).sum(axis=(0, 1, 3))
            order = channel_order(importance, segment_boundaries(block.in_channels, expands))
            moved += int(np.sum(order != np.arange(len(order))))
            for var, axis in _middle_variables(block):
                for target in (var, slots.get(id(var))):
                    if target is not None:
                        target.assign(np.take(target.numpy(), order, axis=axis))
    return moved


def _middle_variables(block):
    """(variable, axis of the expansion channels) of one block."""
    pairs = [(block.expand_kernel, 3), (block.depthwise_kernel, 2), (block.project_kernel, 2)]
    for bn in (block.expand_bn, block.depthwise_bn):
        pairs += [(bn.gamma, 0), (bn.beta, 0), (bn.moving_mean, 0), (bn.moving_variance, 0)]
    return pairs


def _momentum_slots(model, optimizer) -> dict:
    momentums = getattr(optimizer, "momentums", None) or []
    variables = model.trainable_variables
    if len(momentums) != len(variables) or any(m.shape != v.shape for m, v in zip(momentums, variables)):
        return {}
    return {id(v): m for v, m in zip(variables, momentums)}
