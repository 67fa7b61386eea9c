"""Training batches from in-memory items without per-batch collation.

Small 2D slices (hippocampus 48×32, LV 160×160) make a GPU step take a few milliseconds; collating 64
dictionaries in Python, pinning and copying each batch then costs about as much as the step itself.
:class:`DeviceBatchLoader` stacks every item once, on the training device, and yields batches by indexing, in
the order of a sampler (``DistributedSampler`` for torchrun) or a fresh permutation per epoch.
:func:`training_loader` is the bundle's entry point: it takes MONAI ``DataLoader``'s arguments and returns a
:class:`DeviceBatchLoader` when the dataset is plain in-memory items without per-sample transforms, else a
MONAI ``DataLoader``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["DeviceBatchLoader", "training_loader"]

logger = logging.getLogger(__name__)


def _is_array(v: Any) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray, int, float, np.number)) and not isinstance(v, bool)


class DeviceBatchLoader:
    """Batches ``{key: Tensor[B, ...]}`` of in-memory ``data`` (a sequence of dicts with the same keys), stacked
    once on ``device``.

    Array-like values (tensors, numpy arrays, numbers) of a key are stacked into one tensor, as MONAI's collation
    does; other values (strings, ...) are returned as lists. Like a ``DataLoader``: ``batch_size``, ``shuffle``
    (a new permutation each epoch, drawn from torch's global generator, so ``set_determinism`` makes it
    reproducible), ``sampler`` (e.g. ``DistributedSampler``, whose ``set_epoch`` is honoured) and ``drop_last``;
    ``dataset`` is the item list.

    Raises:
        ValueError: no items, an item without a key of the first item, or values of one key with different shapes
            (names the key and the item index).
    """

    def __init__(self, data: Sequence[Mapping], batch_size: int = 1, shuffle: bool = False, sampler=None,
                 drop_last: bool = False, device: str | torch.device | None = None) -> None:
        items = list(data)
        if not items:
            raise ValueError("DeviceBatchLoader: no training items")
        if int(batch_size) < 1:
            raise ValueError(f"DeviceBatchLoader: batch_size must be >= 1, got {batch_size}")
        keys = list(items[0].keys())
        for i, it in enumerate(items):
            missing = [k for k in keys if k not in it]
            if missing:
                raise ValueError(f"DeviceBatchLoader: item {i} has no {missing} (item 0 has keys {keys})")
        if sampler is not None and shuffle:
            raise ValueError("DeviceBatchLoader: sampler and shuffle=True are mutually exclusive (as in DataLoader)")
        self.dataset, self.batch_size, self.shuffle = items, int(batch_size), bool(shuffle)
        self.sampler, self.drop_last = sampler, bool(drop_last)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.tensors: dict[str, torch.Tensor] = {}
        self.lists: dict[str, list] = {}
        for k in keys:
            vals = [it[k] for it in items]
            if not all(_is_array(v) for v in vals):
                self.lists[k] = vals
                continue
            vals = [torch.as_tensor(v) for v in vals]
            shape = vals[0].shape
            for i, v in enumerate(vals):
                if v.shape != shape:
                    raise ValueError(f"DeviceBatchLoader: '{k}' of item {i} has shape {tuple(v.shape)}, item 0 has "
                                     f"{tuple(shape)}; all items must have one shape per key")
            self.tensors[k] = torch.stack([v.as_subclass(torch.Tensor) for v in vals])
        self.to(self.device)

    def to(self, device: str | torch.device) -> DeviceBatchLoader:
        """Move the stacked tensors to ``device`` (where the batches are then made)."""
        self.device = torch.device(device)
        self.tensors = {k: t.to(self.device) for k, t in self.tensors.items()}
        return self

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def _num_indices(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.dataset)

    def __len__(self) -> int:
        n = self._num_indices()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> torch.Tensor:
        if self.sampler is not None:
            return torch.as_tensor(list(iter(self.sampler)), dtype=torch.long)
        n = len(self.dataset)
        if not self.shuffle:
            return torch.arange(n)
        gen = torch.Generator()
        gen.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        return torch.randperm(n, generator=gen)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = self._order()
        order_dev = order.to(self.device)
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order_dev[sl]
            batch: dict[str, Any] = {k: t.index_select(0, idx) for k, t in self.tensors.items()}
            for k, v in self.lists.items():
                batch[k] = [v[j] for j in order[sl].tolist()]
            yield batch


def training_loader(dataset, batch_size: int = 1, shuffle: bool = False, num_workers: int = 0,
                    pin_memory: bool = False, sampler=None, drop_last: bool = False,
                    device: str | torch.device | None = None, on_device: bool = True,
                    max_device_bytes: int = 2 << 30, **kwargs: Any):
    """MONAI ``DataLoader`` arguments in, the fastest loader out: a :class:`DeviceBatchLoader` on ``device`` when
    ``on_device`` and ``dataset`` is a MONAI ``Dataset`` of in-memory dicts without a transform (or an empty
    ``Compose``) whose arrays take at most ``max_device_bytes``; otherwise ``monai.data.DataLoader``."""
    from monai.data import DataLoader
    from monai.transforms import Compose

    transform = getattr(dataset, "transform", None)
    plain = transform is None or (isinstance(transform, Compose) and len(transform.transforms) == 0)
    data = getattr(dataset, "data", None)
    if on_device and plain and isinstance(data, Sequence) and data and all(isinstance(d, Mapping) for d in data):
        loader = DeviceBatchLoader(data, batch_size, shuffle, sampler, drop_last, "cpu")
        if loader.nbytes <= max_device_bytes:
            return loader.to(device if device is not None else "cpu")
        logger.info("training data take %.1f GiB > max_device_bytes: using a DataLoader", loader.nbytes / 2**30)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      pin_memory=pin_memory, sampler=sampler, drop_last=drop_last, **kwargs)
