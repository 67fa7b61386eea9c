"""What the package's dictionary transforms share."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.transforms import MapTransform, Transform

__all__ = ["ArrayMapTransform"]


class ArrayMapTransform(MapTransform):
    """Dictionary version of an array transform ``self.transform``: applies it to every key."""

    transform: Transform

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
