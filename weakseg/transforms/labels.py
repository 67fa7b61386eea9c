"""Label value remapping and input sanity checks."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapLabelValue, MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

from weakseg.transforms.slicing import source_name
from weakseg.transforms.utils import ArrayMapTransform

__all__ = [
    "MergeLabels",
    "MergeLabelsd",
    "BinaryMask",
    "BinaryMaskd",
    "CheckFinite",
    "CheckFinited",
    "CheckChannels",
    "CheckChannelsd",
    "CheckSameShape",
    "CheckSameShaped",
]


class MergeLabels(MapLabelValue):
    """
    Map label values through ``mapping`` (e.g. hippocampus ``{0: 0, 1: 1, 2: 1}`` -> binary). ``mapping=None``
    (the classes are not known): every class id > 0 becomes 1.

    Every value present in the label must be a key of ``mapping``; anything else raises ``ValueError`` naming
    the offending values (and the source file for MetaTensors), so a wrong label file never trains silently.
    Output has the input's type and dtype. The mapping itself is MONAI's :class:`~monai.transforms.MapLabelValue`;
    this class adds the value check, the 8-bit mask convention and the unknown-classes case.

    With ``mask_255`` (default), a label holding only 0 and 255 — a binary mask saved as an 8-bit image — is read
    as 0 / 1 first, unless 255 is a key of ``mapping`` (the convention of
    :func:`weakseg.annotations.read_label`, so annotation files and training agree).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, mapping: Mapping[int, int] | None, mask_255: bool = True) -> None:
        if mapping is not None and not mapping:
            raise ValueError("MergeLabels: mapping must be a non-empty {old_value: new_value} dict (or None).")
        self.mapping = None if mapping is None else {float(k): float(v) for k, v in mapping.items()}
        self.mask_255 = bool(mask_255) and (self.mapping is None or 255.0 not in self.mapping)
        orig = sorted(self.mapping) if self.mapping else []
        super().__init__(orig, [self.mapping[k] for k in orig], dtype=torch.float32)

    def __call__(self, label: NdarrayOrTensor) -> NdarrayOrTensor:
        values = torch.unique(label) if isinstance(label, torch.Tensor) else np.unique(label)
        values_f = [float(v) for v in values]
        if self.mapping is None:  # unknown classes: any class id > 0 is foreground
            bad = [v for v in values_f if v < 0 or v != int(v)]
            if bad:
                raise ValueError(f"MergeLabels: label {source_name(label, '<array>')} has values {bad[:8]}; expected "
                                 "class ids (non-negative integers).")
            return _binary(label)
        if self.mask_255 and 255.0 in values_f and set(values_f) <= {0.0, 255.0}:
            label = label / 255 if isinstance(label, torch.Tensor) else np.asarray(label) / 255
            label = label.to(values.dtype) if isinstance(label, torch.Tensor) else label.astype(values.dtype)
            values_f = [v / 255 for v in values_f]
        bad = [v for v in values_f if v not in self.mapping]
        if bad:
            raise ValueError(
                f"MergeLabels: label {source_name(label, '<array>')} has values {bad} outside the mapping "
                f"{sorted(self.mapping)}; expected only those values."
            )
        return convert_to_dst_type(super().__call__(label), dst=label, dtype=label.dtype)[0]


def _binary(label: NdarrayOrTensor) -> NdarrayOrTensor:
    out = label.clone() if isinstance(label, torch.Tensor) else np.array(label, copy=True)
    out[label > 0] = 1
    return out


class MergeLabelsd(ArrayMapTransform):
    """Dictionary version of :py:class:`MergeLabels`."""

    backend = MergeLabels.backend

    def __init__(self, keys: KeysCollection, mapping: Mapping[int, int] | None, mask_255: bool = True,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = MergeLabels(mapping, mask_255)


class BinaryMask(Transform):
    """
    Check that a mask holds only the two values ``values = (background, foreground)`` — (0, 1), or (0, 255) for
    8-bit PNG masks — and return it as 0/1 float32. Any other value raises ``ValueError`` naming the source file
    and the offending values (e.g. an anti-aliased or JPEG-compressed mask).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, values: tuple[float, float] = (0, 1)) -> None:
        if len(values) != 2 or values[0] == values[1]:
            raise ValueError(f"BinaryMask: values must be two distinct (background, foreground) numbers, got {values}")
        self.values = (float(values[0]), float(values[1]))

    def __call__(self, mask: NdarrayOrTensor) -> NdarrayOrTensor:
        bg, fg = self.values
        is_fg = mask == fg
        ok = is_fg | (mask == bg)
        if not bool(ok.all()):
            bad = torch.unique(torch.as_tensor(mask)[~torch.as_tensor(ok)])[:8].tolist()
            raise ValueError(
                f"BinaryMask: mask {source_name(mask, '<array>')} has values {bad}; expected only {bg:g} "
                f"(background) and {fg:g} (foreground)."
            )
        if isinstance(mask, torch.Tensor):
            out = mask.clone().to(torch.float32)
            out[...] = is_fg.to(torch.float32)
            return out
        return np.asarray(is_fg, dtype=np.float32)


class BinaryMaskd(ArrayMapTransform):
    """Dictionary version of :py:class:`BinaryMask`."""

    backend = BinaryMask.backend

    def __init__(self, keys: KeysCollection, values: tuple[float, float] = (0, 1), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = BinaryMask(values)


class CheckFinite(Transform):
    """Raise ``ValueError`` naming the source when an array holds NaN or Inf; return it unchanged otherwise.
    The source is the MetaTensor's file, or ``source`` when given (e.g. for arrays read without metadata)."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor, source: str | None = None) -> NdarrayOrTensor:
        finite = torch.isfinite(img).all() if isinstance(img, torch.Tensor) else np.isfinite(img).all()
        if not bool(finite):
            name = source if source is not None else source_name(img, "<array>")
            raise ValueError(f"CheckFinite: {name} contains NaN or Inf intensities.")
        return img


class CheckFinited(ArrayMapTransform):
    """Dictionary version of :py:class:`CheckFinite`."""

    backend = CheckFinite.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = CheckFinite()


class CheckChannels(Transform):
    """Raise ``ValueError`` naming the source when a channel-first array does not have ``num_channels`` channels."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_channels: int) -> None:
        self.num_channels = int(num_channels)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if img.shape[0] != self.num_channels:
            raise ValueError(
                f"CheckChannels: {source_name(img, '<array>')} has {img.shape[0]} channel(s) (shape "
                f"{tuple(img.shape)}); the network expects {self.num_channels}."
            )
        return img


class CheckChannelsd(ArrayMapTransform):
    """Dictionary version of :py:class:`CheckChannels`."""

    backend = CheckChannels.backend

    def __init__(self, keys: KeysCollection, num_channels: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = CheckChannels(num_channels)


class CheckSameShape(Transform):
    """Raise ``ValueError`` naming the sources when channel-first arrays differ in spatial shape (an image and its
    mask of another size would otherwise be resized separately and trained on misaligned); return them unchanged."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, *arrays: NdarrayOrTensor, names: tuple[str, ...] | None = None) -> tuple[NdarrayOrTensor, ...]:
        names = names or tuple(f"array {i}" for i in range(len(arrays)))
        shapes = [tuple(a.shape[1:]) for a in arrays]
        if len(set(shapes)) > 1:
            desc = ", ".join(f"{n} {source_name(a, '<array>')} {s}" for n, a, s in zip(names, arrays, shapes))
            raise ValueError(f"CheckSameShape: spatial shapes differ: {desc}; an image and its label must have the "
                             "same shape.")
        return arrays


class CheckSameShaped(MapTransform):
    """Dictionary version of :py:class:`CheckSameShape` over ``keys`` (missing keys are skipped with
    ``allow_missing_keys``)."""

    backend = CheckSameShape.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.check = CheckSameShape()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        self.check(*(d[k] for k in keys), names=tuple(str(k) for k in keys))
        return d


MergeLabelsD = MergeLabelsDict = MergeLabelsd
BinaryMaskD = BinaryMaskDict = BinaryMaskd
CheckFiniteD = CheckFiniteDict = CheckFinited
CheckChannelsD = CheckChannelsDict = CheckChannelsd
CheckSameShapeD = CheckSameShapeDict = CheckSameShaped
