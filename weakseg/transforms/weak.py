"""Weak labels made from masks: bounding boxes and image-level labels, with the annotation type kept per sample
(Reiß et al., "Every Annotation Counts", CVPR 2021).

Annotation types: ``"mask"`` (pixel labels, code 0), ``"box"`` (each class's bounding box filled with its class id,
code 1) and ``"image"`` (only which classes are present, code 2; the pixel label becomes ``ignore_value``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from weakseg.transforms.labels import _ArrayMapTransform

__all__ = [
    "ANNOTATION_TYPES",
    "annotation_code",
    "assign_annotations",
    "box_to_mask",
    "BoxFromMask",
    "BoxFromMaskd",
    "ImageLabels",
    "WeakAnnotationd",
]

ANNOTATION_TYPES = ("mask", "box", "image")


def annotation_code(kind: str) -> int:
    """0 / 1 / 2 for ``"mask"`` / ``"box"`` / ``"image"``; anything else is an error naming the choices."""
    if kind not in ANNOTATION_TYPES:
        raise ValueError(f"annotation type must be one of {ANNOTATION_TYPES}, got {kind!r}")
    return ANNOTATION_TYPES.index(kind)


def box_to_mask(boxes: Sequence[tuple[int, Sequence[int], Sequence[int]]], spatial_size: Sequence[int]) -> np.ndarray:
    """Label map of ``spatial_size`` with boxes ``(class_id, start, end)`` (inclusive start, exclusive end per
    spatial axis) filled with their class id, in the given order (later boxes overwrite earlier ones).

    Raises:
        ValueError: a box outside the image, empty, or of the wrong dimension (the box is named).
    """
    out = np.zeros(tuple(int(s) for s in spatial_size), dtype=np.int64)
    for cls, start, end in boxes:
        start, end = [int(v) for v in start], [int(v) for v in end]
        if len(start) != out.ndim or len(end) != out.ndim:
            raise ValueError(f"box {(cls, start, end)} has {len(start)}D corners for a {out.ndim}D image")
        if any(s < 0 or e > n or s >= e for s, e, n in zip(start, end, out.shape)):
            raise ValueError(f"box {(cls, start, end)} lies (partly) outside the image of size {out.shape} or is empty")
        out[tuple(slice(s, e) for s, e in zip(start, end))] = int(cls)
    return out


def _boxes_of(label: np.ndarray) -> list[tuple[int, list[int], list[int]]]:
    boxes = []
    for cls in np.unique(label):
        if cls <= 0:
            continue
        idx = np.nonzero(label == cls)
        boxes.append((int(cls), [int(i.min()) for i in idx], [int(i.max()) + 1 for i in idx]))
    return boxes


class BoxFromMask(Transform):
    """``(1, *spatial)`` label map → the same shape with each class's bounding box filled with its class id
    (ascending class order, so a higher class id wins where boxes overlap)."""

    def __call__(self, label: Any) -> torch.Tensor:
        lab = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        if lab.ndim < 2 or lab.shape[0] != 1:
            raise ValueError(f"BoxFromMask expects a channel-first (1, *spatial) label map, got shape {lab.shape}")
        box = box_to_mask(_boxes_of(np.rint(lab[0]).astype(np.int64)), lab.shape[1:])
        return torch.as_tensor(box[None], dtype=torch.float32)


class BoxFromMaskd(_ArrayMapTransform):
    """Dictionary version of :class:`BoxFromMask`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = BoxFromMask()


class ImageLabels(Transform):
    """``(1, *spatial)`` label map → multi-hot float vector ``(num_classes,)`` of the classes present."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)

    def __call__(self, label: Any) -> torch.Tensor:
        lab = torch.as_tensor(label).round().long()
        if lab.numel() and (lab.min() < 0 or lab.max() >= self.num_classes):
            raise ValueError(f"label values must be in [0, {self.num_classes}), got range "
                             f"[{int(lab.min())}, {int(lab.max())}]")
        out = torch.zeros(self.num_classes, dtype=torch.float32)
        out[torch.unique(lab)] = 1.0
        return out


class WeakAnnotationd(MapTransform):
    """Turn a full label into the annotation type of the sample: ``kind`` fixed, or read per sample from
    ``annotation_key`` (as written by :func:`assign_annotations`). Writes ``image_labels_key`` (multi-hot of the
    classes present, for every type), ``annotation_key`` as its integer code (0 mask, 1 box, 2 image) and, for
    ``"box"``, the box label; for ``"image"`` the pixel label is replaced by ``ignore_value``.
    """

    def __init__(self, keys: KeysCollection, num_classes: int, kind: str | None = None,
                 annotation_key: str = "annotation", image_labels_key: str = "image_labels",
                 ignore_value: float = -1.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if kind is not None:
            annotation_code(kind)
        self.kind, self.annotation_key, self.image_labels_key = kind, annotation_key, image_labels_key
        self.ignore_value = float(ignore_value)
        self.labels, self.box = ImageLabels(num_classes), BoxFromMask()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        kind = self.kind if self.kind is not None else d.get(self.annotation_key, "mask")
        if isinstance(kind, (int, np.integer)):
            kind = ANNOTATION_TYPES[int(kind)] if 0 <= int(kind) < 3 else f"code {kind}"
        code = annotation_code(kind)
        for key in self.key_iterator(d):
            lab = d[key]
            d[self.image_labels_key] = self.labels(lab)
            if kind == "box":
                d[key] = self.box(lab)
            elif kind == "image":
                d[key] = torch.full(tuple(np.shape(lab)), self.ignore_value)
        d[self.annotation_key] = code
        return d


def assign_annotations(items: Sequence[dict], num_masks: int | str | None, box_fraction: float = 0.5, seed: int = 0,
                       key: str = "annotation") -> list[dict]:
    """Copies of ``items`` (volumes) with ``item[key]`` set: ``num_masks`` of them (a telescopic, seeded choice;
    ``None`` or ``"all"``: all) keep pixel masks, and of the rest a ``box_fraction`` share gets boxes and the others
    image-level labels. (On the ``monai.bundle`` command line use ``--num_masks all``: MONAI drops ``None``
    overrides, so ``--num_masks None`` would silently keep the config's value.)"""
    from weakseg.data.msd import telescopic_subset

    if not 0.0 <= box_fraction <= 1.0:
        raise ValueError(f"box_fraction must be in [0, 1], got {box_fraction}")
    ids = list(range(len(items)))
    masked = set(telescopic_subset(ids, num_masks, seed=seed, name="num_masks"))
    rest = [i for i in ids if i not in masked]
    perm = np.random.RandomState(seed + 1).permutation(len(rest))
    n_box = int(round(box_fraction * len(rest)))
    boxed = {rest[j] for j in perm[:n_box]}
    out = []
    for i, it in enumerate(items):
        e = dict(it)
        e[key] = "mask" if i in masked else ("box" if i in boxed else "image")
        out.append(e)
    return out
