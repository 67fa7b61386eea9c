"""Small helpers shared by transforms, annotations and data (no dependency on the rest of the package)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["telescopic_indices", "telescopic_subset"]


def telescopic_subset(items: Sequence[Any], m: int | str | None, seed: int = 0, name: str = "m") -> list[Any]:
    """
    The first ``m`` items of a seeded permutation of ``items``: for the same seed the ``m``-subset is contained
    in the ``2m``-subset (nested, "telescopic" subsets). ``m`` = ``"all"`` (any case), ``None`` or
    ``>= len(items)`` returns all items. ``name`` is the caller's argument name, used in error messages.
    """
    return [items[i] for i in telescopic_indices(len(items), m, seed, name=name)]


def telescopic_indices(n: int, m: int | str | None, seed: int = 0, name: str = "m") -> list[int]:
    """Sorted indices of :func:`telescopic_subset` among ``n`` items."""
    if m is None or (isinstance(m, str) and m.strip().lower() == "all"):
        return list(range(n))
    if not isinstance(m, int) or isinstance(m, bool):
        raise ValueError(f"subset size {name} must be an integer, None or 'all', got {m!r}.")
    if m >= n:
        return list(range(n))
    if m < 1:
        raise ValueError(f"subset size {name} must be >= 1, got {m}.")
    perm = np.random.RandomState(seed).permutation(n)
    return sorted(int(i) for i in perm[:m])
