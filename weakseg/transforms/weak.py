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
from monai.utils import TransformBackends

from weakseg.transforms.utils import ArrayMapTransform
from weakseg.utils import telescopic_subset

__all__ = [
    "ANNOTATION_TYPES",
    "annotation_code",
    "assign_annotations",
    "box_to_mask",
    "BoxFromMask",
    "BoxFromMaskd",
    "ImageLabels",
    "WeakAnnotationd",
    "WeakSliced",
    "MixedSupervisiond",
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
    """(class, start, stop) of the bounding box of every class id > 0 in an integer label map (scipy's
    ``find_objects``; negative ids are ignored)."""
    from scipy.ndimage import find_objects

    return [(cls, [s.start for s in sl], [s.stop for s in sl])
            for cls, sl in enumerate(find_objects(np.maximum(label, 0)), start=1) if sl is not None]


class BoxFromMask(Transform):
    """``(1, *spatial)`` label map → the same shape with each class's bounding box filled with its class id
    (ascending class order, so a higher class id wins where boxes overlap)."""

    def __call__(self, label: Any) -> torch.Tensor:
        lab = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        if lab.ndim < 2 or lab.shape[0] != 1:
            raise ValueError(f"BoxFromMask expects a channel-first (1, *spatial) label map, got shape {lab.shape}")
        box = box_to_mask(_boxes_of(np.rint(lab[0]).astype(np.int64)), lab.shape[1:])
        return torch.as_tensor(box[None], dtype=torch.float32)


class BoxFromMaskd(ArrayMapTransform):
    """Dictionary version of :class:`BoxFromMask`."""

    backend = BoxFromMask.backend

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


class WeakSliced(MapTransform):
    """
    A loaded case with weak-annotation records → one dictionary per annotated 2D slice (the records of
    :func:`weakseg.annotations.load_weak_annotations`; ``docs/weak_annotations.md``).

    Input: ``keys`` (image and, optionally, label) channel-first ``(C, X, Y, Z)`` for a 3D volume or ``(C, H, W)``
    for a 2D image, and ``records_key`` (default ``"slices"``): records with ``index`` (``None`` for 2D) and the
    kinds ``size``, ``boxes``, ``classes``, ``centre``, ``mask``; ``axis_key`` gives the slice axis of a volume.

    Output per record (only the ``kinds`` asked for, so that every item of a method has the same keys):
        - every key in ``keys`` but the label: the slice ``(C, H, W)``;
        - ``"mask"``: the label slice ``(1, H, W)`` under ``label_key`` where the record has a mask, else that key is
          absent (``missing_label=None``) or filled with ``missing_label``; ``"annotated"`` = 1.0 / 0.0;
        - ``"size"``: ``(1,)`` float, the object size g in pixels;
        - ``"boxes"``: ``boxes_key`` ``(1, H, W)``, each box filled with its class id (later boxes win), and
          ``has_boxes`` 1.0 / 0.0;
        - ``"classes"``: ``image_labels_key`` ``(num_classes,)`` multi-hot; the background (0) counts as present;
          and ``has_classes`` 1.0 / 0.0;
        - ``"centre"``: ``(2,)`` float ``(row, col)``;
        plus ``slice_index``, ``volume_id`` (the image file) and ``case_id``.

    The label of a slice without ``mask`` is never read, so a weakly labelled case needs no label file at all.
    With ``only_masks=True`` only the records with a mask are kept (pre-training on the annotated slices).
    A record that lacks a requested kind raises ``KeyError`` naming the case and slice, unless the kind is in
    ``optional`` (boxes: an all-zero map, classes: all-zero labels, and the ``has_*`` flag 0).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, keys: KeysCollection, kinds: Sequence[str], num_classes: int = 2, label_key: str = "label",
                 records_key: str = "slices", axis_key: str = "slice_axis", boxes_key: str = "boxes",
                 image_labels_key: str = "image_labels", missing_label: float | None = None,
                 optional: Sequence[str] = (), only_masks: bool = False, allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        bad = set(kinds) - {"size", "boxes", "classes", "centre", "mask"}
        if bad:
            raise ValueError(f"WeakSliced: unknown kinds {sorted(bad)}; expected size, boxes, classes, centre, mask")
        self.kinds, self.num_classes = tuple(kinds), int(num_classes)
        self.label_key, self.records_key, self.axis_key = label_key, records_key, axis_key
        self.boxes_key, self.image_labels_key = boxes_key, image_labels_key
        self.missing_label, self.only_masks = missing_label, only_masks
        self.optional = set(optional)
        if self.optional - {"boxes", "classes"}:
            raise ValueError(f"WeakSliced: only boxes and classes can be optional, got {sorted(self.optional)}")

    def _take(self, img: Any, index: int | None, axis: int) -> Any:
        if index is None:
            return img
        from weakseg.transforms.slicing import SliceVolume

        return SliceVolume(axis=axis, min_foreground=0.0).take(img, index)

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        from weakseg.transforms.slicing import source_name

        d = dict(data)
        records = d.pop(self.records_key)
        axis = int(d.get(self.axis_key) or 0)
        case = d.get("id", "")
        keys = [k for k in self.key_iterator(d) if k != self.label_key]
        volume_id = source_name(d[keys[0]], "") if keys else ""
        out = []
        for rec in records:
            if self.only_masks and not rec.get("mask"):
                continue
            where = f"case '{case}'" + (f", slice {rec['index']}" if rec.get("index") is not None else "")
            item = {k: v for k, v in d.items() if k != self.label_key}
            for k in keys:
                item[k] = self._take(d[k], rec.get("index"), axis)
            plane = tuple(item[keys[0]].shape[1:]) if keys else None
            for kind in self.kinds:
                if kind != "mask" and kind not in self.optional and rec.get(kind) is None:
                    raise KeyError(f"{where} has no '{kind}' annotation")
            if "mask" in self.kinds:
                if rec.get("mask"):
                    if self.label_key not in d:
                        raise KeyError(f"{where} is marked as having a mask but no '{self.label_key}' was loaded")
                    item[self.label_key] = self._take(d[self.label_key], rec.get("index"), axis)
                elif self.missing_label is not None:
                    item[self.label_key] = torch.full((1, *plane), float(self.missing_label))
                item["annotated"] = np.float32(bool(rec.get("mask")))
            if "size" in self.kinds:
                item["size"] = torch.tensor([float(rec["size"])], dtype=torch.float32)
            if "boxes" in self.kinds:
                item[self.boxes_key] = torch.as_tensor(box_to_mask(rec["boxes"] or [], plane)[None],
                                                       dtype=torch.float32)
                item["has_boxes"] = np.float32(rec["boxes"] is not None)
            if "classes" in self.kinds:
                labels = torch.zeros(self.num_classes, dtype=torch.float32)
                if rec["classes"] is not None:
                    labels[0] = 1.0
                    labels[list(rec["classes"])] = 1.0
                item[self.image_labels_key] = labels
                item["has_classes"] = np.float32(rec["classes"] is not None)
            if "centre" in self.kinds:
                item["centre"] = torch.tensor(rec["centre"], dtype=torch.float32)
            item["slice_index"] = rec.get("index") if rec.get("index") is not None else 0
            item["volume_id"] = volume_id
            item["case_id"] = case
            out.append(item)
        return out


class MixedSupervisiond(MapTransform):
    """
    The target of multi-label deep supervision from the output of :class:`WeakSliced` (kinds ``mask``, ``boxes``
    and ``classes``, boxes and classes optional), the annotation-file counterpart of :class:`WeakAnnotationd`:
    ``label`` becomes the mask where the slice has one (code 0), else its filled boxes where it has any (code 1),
    else ``ignore_value`` everywhere with only the image-level labels (code 2). ``image_labels`` of a masked slice
    are those of its mask; of a boxed slice without listed classes, the boxes' classes and the background.
    A slice with none of the three raises ``ValueError`` naming it.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, keys: KeysCollection = "label", num_classes: int = 2, boxes_key: str = "boxes",
                 annotation_key: str = "annotation", image_labels_key: str = "image_labels",
                 ignore_value: float = -1.0) -> None:
        super().__init__(keys, allow_missing_keys=False)
        self.labels = ImageLabels(num_classes)
        self.boxes_key, self.annotation_key = boxes_key, annotation_key
        self.image_labels_key, self.ignore_value = image_labels_key, float(ignore_value)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        boxes = d.pop(self.boxes_key)
        has_boxes, has_classes = bool(d.pop("has_boxes")), bool(d.pop("has_classes"))
        for key in self.key_iterator(d):
            if bool(d["annotated"]):
                d[self.image_labels_key], code = self.labels(d[key]), 0
            elif has_boxes:
                d[key], code = torch.as_tensor(boxes, dtype=torch.float32), 1
                if not has_classes:
                    d[self.image_labels_key] = self.labels(boxes)
                    d[self.image_labels_key][0] = 1.0
            elif has_classes:
                d[key], code = torch.full(tuple(np.shape(d[key])), self.ignore_value), 2
            else:
                raise ValueError(f"case '{d.get('case_id')}', slice {d.get('slice_index')}: no mask, boxes or "
                                 "classes to learn from")
            d[self.annotation_key] = code
        return d


BoxFromMaskD = BoxFromMaskDict = BoxFromMaskd
WeakAnnotationD = WeakAnnotationDict = WeakAnnotationd
WeakSliceD = WeakSliceDict = WeakSliced
MixedSupervisionD = MixedSupervisionDict = MixedSupervisiond
