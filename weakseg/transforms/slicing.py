"""3D volume -> stack of 2D slices, keeping the slices with enough foreground."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

__all__ = ["SliceVolume", "SliceVolumed", "source_name"]


def source_name(data: Any, default: str = "<array>") -> str:
    """The file a MetaTensor was loaded from (``meta['filename_or_obj']``), or ``default``."""
    if isinstance(data, MetaTensor):
        name = data.meta.get("filename_or_obj")
        if name:
            return str(name)
    return default


def _foreground_fraction(mask: NdarrayOrTensor, axis: int) -> np.ndarray:
    """Fraction of foreground pixels (any channel > 0) in each slice along spatial ``axis`` of a (C, X, Y, Z) mask."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    fg = np.any(m > 0, axis=0)  # (X, Y, Z)
    other = tuple(a for a in range(3) if a != axis)
    return fg.mean(axis=other)


class SliceVolume(Transform):
    """
    Cut a channel-first 3D volume ``(C, X, Y, Z)`` into 2D slices ``(C, *in-plane)`` along a spatial ``axis``,
    keeping only the slices whose foreground fraction in ``mask`` is at least ``min_foreground``.

    Size-supervision paper (Baručić & Kybic 2022, Sec. 4.1): axis-0 slices with >= 1 % foreground.

    Args:
        axis: spatial axis (0, 1 or 2; the channel dimension is not counted) to slice along.
        min_foreground: keep a slice when ``mean(any(mask > 0, channels)) >= min_foreground`` on it.
            ``0.0`` keeps every slice.

    ``__call__(img, mask=None)`` returns a list of 2D slices of the same type as ``img`` (numpy, torch or
    MetaTensor). ``mask`` defaults to ``img``. For a MetaTensor each slice's ``meta`` holds ``slice_index``,
    ``slice_axis`` and ``volume_id`` (the source file name), and its affine is the 3D affine without ``axis``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, axis: int = 0, min_foreground: float = 0.01) -> None:
        if axis not in (0, 1, 2):
            raise ValueError(f"SliceVolume: axis must be a spatial axis 0, 1 or 2, got {axis!r}.")
        if not 0.0 <= float(min_foreground) <= 1.0:
            raise ValueError(f"SliceVolume: min_foreground must be in [0, 1], got {min_foreground!r}.")
        self.axis = int(axis)
        self.min_foreground = float(min_foreground)

    def _check(self, img: NdarrayOrTensor, name: str) -> None:
        if img.ndim != 4:
            raise ValueError(
                f"SliceVolume: {source_name(img, name)} must be channel-first 3D (C, X, Y, Z), got shape "
                f"{tuple(img.shape)}."
            )

    def slice_indices(self, mask: NdarrayOrTensor) -> list[int]:
        """Indices along ``axis`` of the slices that ``__call__`` keeps."""
        self._check(mask, "mask")
        frac = _foreground_fraction(mask, self.axis)
        # a tiny tolerance so that e.g. 16/1600 counts as 1 % despite floating point
        return [int(i) for i in np.nonzero(frac >= self.min_foreground - 1e-12)[0]]

    def take(self, img: NdarrayOrTensor, index: int) -> NdarrayOrTensor:
        """Slice ``index`` along ``axis`` of ``img``, with metadata for MetaTensors."""
        sl: list[Any] = [slice(None)] * 4
        sl[self.axis + 1] = index
        if isinstance(img, MetaTensor):
            arr = img.as_tensor()[tuple(sl)].clone()
            meta = dict(img.meta)
            keep = [a for a in range(4) if a != self.axis]
            aff = torch.as_tensor(img.affine, dtype=torch.float64)[keep][:, keep]
            meta.update(
                {
                    "slice_index": int(index),
                    "slice_axis": self.axis,
                    "volume_id": source_name(img),
                    "spatial_shape": np.asarray(arr.shape[1:]),
                }
            )
            meta["affine"] = aff
            return MetaTensor(arr, meta=meta, applied_operations=[])
        out = img[tuple(sl)]
        return out.clone() if isinstance(out, torch.Tensor) else np.ascontiguousarray(out)

    def __call__(self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None) -> list[NdarrayOrTensor]:
        self._check(img, "img")
        mask = img if mask is None else mask
        if tuple(mask.shape[1:]) != tuple(img.shape[1:]):
            raise ValueError(
                f"SliceVolume: mask {source_name(mask, 'mask')} has spatial shape {tuple(mask.shape[1:])}, "
                f"expected the image's {tuple(img.shape[1:])} ({source_name(img, 'img')})."
            )
        return [self.take(img, i) for i in self.slice_indices(mask)]


class SliceVolumed(MapTransform):
    """
    Dictionary version of :py:class:`SliceVolume`: returns a list of dictionaries, one per kept slice.

    Every key in ``keys`` is sliced at the same indices, chosen from ``label_key``. Each output dictionary also
    holds ``slice_index`` (int) and ``volume_id`` (str, the source file of ``keys[0]``) so that slices can be
    restacked into volumes after collation; other entries of the input are copied by reference.

    A channel-first 2D image ``(C, H, W)`` is one slice: it is returned whole (``slice_index`` 0), whatever its
    foreground, as :func:`weakseg.annotations.simulate_weak_annotations` annotates a 2D image whole. So the same
    pipeline reads folders of 2D images and of 3D volumes.

    Raises ``ValueError`` naming the files when the keys' spatial shapes differ.
    """

    backend = SliceVolume.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        axis: int = 0,
        min_foreground: float = 0.01,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key
        self.slicer = SliceVolume(axis=axis, min_foreground=min_foreground)

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        d = dict(data)
        if self.label_key not in d:
            raise KeyError(f"SliceVolumed: label_key {self.label_key!r} not in data (keys: {list(d)}).")
        mask = d[self.label_key]
        keys = list(self.key_iterator(d))
        flat = [k for k in keys if d[k].ndim == 3]
        if flat and len(flat) == len(keys) and mask.ndim == 3:  # 2D images: one slice each
            for k in keys:
                self._same_shape(d, k, mask)
            return [{**d, "slice_index": 0, "volume_id": source_name(d[keys[0]], "")}]
        for k in keys:
            self.slicer._check(d[k], k)
            self._same_shape(d, k, mask)
        volume_id = source_name(d[keys[0]], "") if keys else ""
        out = []
        for i in self.slicer.slice_indices(mask):
            item = dict(d)
            for k in keys:
                item[k] = self.slicer.take(d[k], i)
            item["slice_index"] = i
            item["volume_id"] = volume_id
            out.append(item)
        return out

    def _same_shape(self, d: Mapping[Hashable, Any], k: Hashable, mask: Any) -> None:
        if tuple(d[k].shape[1:]) != tuple(mask.shape[1:]):
            raise ValueError(
                f"SliceVolumed: '{k}' ({source_name(d[k], k)}) has spatial shape {tuple(d[k].shape[1:])} but "
                f"'{self.label_key}' ({source_name(mask, self.label_key)}) has {tuple(mask.shape[1:])}; "
                "image and label must have the same shape."
            )


SliceVolumeD = SliceVolumeDict = SliceVolumed
