"""Augmentation of whole batches on the training device, inside ``prepare_batch``.

Per-sample MONAI dictionary transforms on MetaTensors cost about a millisecond each on the CPU (meta-data
bookkeeping), which dominates an epoch of small 2D slices on a GPU. :class:`RandFlipBatch` does what
``RandFlipd(prob, spatial_axis=a)`` for each ``a`` does — each sample flipped independently — as two
``torch.where`` over the batch once it is on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.engines import default_prepare_batch

__all__ = ["RandFlipBatch", "device_generator"]


def device_generator(cache: dict, seed: int | None, device: torch.device) -> torch.Generator:
    """The ``torch.Generator`` on ``device`` kept in ``cache`` (one per device), seeded with ``seed`` when first
    made (``None``: a random seed); drawing on the data's device avoids a host-to-device copy per batch."""
    key = str(device)
    if key not in cache:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed)) if seed is not None else g.seed()
        cache[key] = g
    return cache[key]


class RandFlipBatch:
    """``prepare_batch`` for MONAI's ``SupervisedTrainer``: prepare the batch with ``prepare_batch`` (default
    MONAI's), then flip every sample along each spatial axis in ``spatial_axes`` with probability ``prob``,
    image and target together (a target of another spatial shape, e.g. a size, is left as is).

    Args:
        prob: flip probability per sample and axis (as ``RandFlipd``'s ``prob``).
        spatial_axes: spatial axes (0 = first spatial dimension), each flipped independently.
        seed: seed of the flip decisions (a ``torch.Generator`` on the batch's device, so no host-to-device copy
            stalls the queue), for reproducible runs.
        prepare_batch: the wrapped ``prepare_batch``.
        transpose: also swap the two spatial axes of a 2D sample with probability ½; with both flips this draws
            uniformly from all 8 rotations by 90° and reflections (square images only).
    """

    def __init__(
        self,
        prob: float = 0.5,
        spatial_axes: Sequence[int] = (0, 1),
        seed: int | None = 0,
        prepare_batch: Callable = default_prepare_batch,
        transpose: bool = False,
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandFlipBatch: prob must be in [0, 1], got {prob}")
        self.prob, self.spatial_axes, self.prepare_batch = float(prob), tuple(int(a) for a in spatial_axes), prepare_batch
        self.seed = seed
        self.transpose = bool(transpose)
        self.generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        return device_generator(self.generators, self.seed, device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The states of the flip generators (one per device), so that a resumed training draws the flips an
        uninterrupted one would have drawn (:class:`weakseg.handlers.RandomStates`)."""
        return {dev: g.get_state() for dev, g in self.generators.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for dev, st in state.items():
            self._generator(torch.device(dev)).set_state(st)

    def flip(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Flip the samples of ``tensors`` (B, C, *spatial), all with the same random decisions."""
        ref = tensors[0]
        b, nd = ref.shape[0], ref.ndim - 2
        out = list(tensors)

        def apply(prob: float, op) -> None:  # op on the picked samples of every tensor shaped like ref
            pick = torch.rand(b, generator=self._generator(ref.device), device=ref.device) < prob
            for i, t in enumerate(out):
                if isinstance(t, torch.Tensor) and t.ndim == ref.ndim and t.shape[2:] == ref.shape[2:]:
                    m = pick.to(t.device).view((b,) + (1,) * (t.ndim - 1))
                    out[i] = torch.where(m, op(t), t)

        for a in self.spatial_axes:
            if not -nd <= a < nd:
                raise ValueError(f"RandFlipBatch: spatial axis {a} out of range for input of shape {tuple(ref.shape)}")
            dim = 2 + (a % nd)
            apply(self.prob, lambda t: t.flip(dim))
        if self.transpose:
            if nd != 2 or ref.shape[-1] != ref.shape[-2]:
                raise ValueError(f"RandFlipBatch: transpose needs square 2D samples, got shape {tuple(ref.shape)}")
            apply(0.5, lambda t: t.transpose(-1, -2))
        return out

    def __call__(self, batchdata: Any, device=None, non_blocking: bool = False, **kwargs: Any):
        prepared = self.prepare_batch(batchdata, device, non_blocking, **kwargs)
        inputs, targets = prepared[0], prepared[1]
        if (self.prob == 0.0 or not self.spatial_axes) and not self.transpose:
            return prepared
        if isinstance(targets, torch.Tensor):
            inputs, targets = self.flip(inputs, targets)
        else:
            (inputs,) = self.flip(inputs)
        return (inputs, targets, *prepared[2:])
