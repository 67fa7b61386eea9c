"""The thesis's "random pick" augmentation (Bakos 2022): a patch of fixed size, cut at a random place of the
image rotated by a random angle; with ``positives_only`` the patch is centred on a foreground pixel so every patch
holds some object. Built from MONAI's ``RandRotated`` + ``RandSpatialCropd`` / ``RandCropByPosNegLabeld``."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, RandCropByPosNegLabeld, Randomizable, RandRotated, RandSpatialCropd

__all__ = ["RandPickd"]


class RandPickd(Randomizable, MapTransform):
    """Random rotation by θ ~ U[−max_angle, max_angle] (radians, about the image centre, size kept), then a random
    ``roi_size`` crop; every key gets the same rotation and crop.

    Args:
        keys: image and label keys.
        roi_size: patch size (H, W).
        max_angle: largest rotation in radians (default π: any orientation); 0 disables the rotation.
        label_key: mask used by ``positives_only``.
        positives_only: centre the patch on a random foreground pixel of ``label_key`` (the mask must have some).
        mode: interpolation per key for the rotation, e.g. ``("bilinear", "nearest")``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        roi_size: Sequence[int],
        max_angle: float = math.pi,
        label_key: str | None = None,
        positives_only: bool = False,
        mode: str | Sequence[str] = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if max_angle < 0:
            raise ValueError(f"RandPickd: max_angle must be ≥ 0, got {max_angle}")
        if positives_only and label_key is None:
            raise ValueError("RandPickd: positives_only needs label_key")
        self.rotate = RandRotated(keys, range_x=max_angle, prob=1.0 if max_angle > 0 else 0.0, keep_size=True,
                                  mode=mode, padding_mode="zeros", allow_missing_keys=allow_missing_keys)
        self.positives_only, self.label_key = positives_only, label_key
        if positives_only:
            self.crop: Randomizable = RandCropByPosNegLabeld(keys, label_key, roi_size, pos=1.0, neg=0.0,
                                                             num_samples=1, allow_smaller=False,
                                                             allow_missing_keys=allow_missing_keys)
        else:
            self.crop = RandSpatialCropd(keys, roi_size, random_size=False, allow_missing_keys=allow_missing_keys)

    def set_random_state(self, seed: int | None = None, state=None) -> RandPickd:
        super().set_random_state(seed, state)
        # independent streams for the angle and the position (one shared state would correlate them)
        self.rotate.set_random_state(seed, state)
        self.crop.set_random_state(None if seed is None else seed + 1, None if state is None else self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        pass

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = self.rotate(dict(data))
        if self.positives_only:
            lab = d[self.label_key]
            if not bool((lab > 0).any()):
                raise ValueError(
                    "RandPickd(positives_only=True): the mask has no foreground after rotation; filter the data "
                    "with positives_only (e.g. load_covid_qu_ex_datalist(..., positives_only=True))"
                )
            return self.crop(d)[0]
        return self.crop(d)


RandPickD = RandPickDict = RandPickd
