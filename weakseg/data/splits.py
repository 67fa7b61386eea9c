"""Seeded train/val/test splits that keep every volume, patient or class group together (on MONAI's
:func:`~monai.data.partition_dataset`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from monai.data import partition_dataset

__all__ = ["split_by_patient", "split_by_volume", "stratified_split"]


def split_by_volume(
    datalist: Sequence[dict], fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0
) -> dict[str, list[dict]]:
    """
    Split a list of volumes (not slices) into ``train``/``val``/``test`` by a seeded permutation, so no volume's
    slices appear in two splits. Fractions are normalised; every split gets at least one volume when possible.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers (train, val, test), got {fractions}.")
    n = len(datalist)
    order = sorted(datalist, key=lambda d: d["image"])  # independent of dataset.json ordering
    fr = fr / fr.sum()
    n_val = int(round(fr[1] * n))
    n_test = int(round(fr[2] * n))
    if n >= 3:
        n_val = max(n_val, 1) if fr[1] > 0 else 0
        n_test = max(n_test, 1) if fr[2] > 0 else 0
    n_train = n - n_val - n_test
    # MONAI's seeded partition with the counts as ratios: the same permutation as RandomState(seed).permutation(n)
    parts = partition_dataset(list(range(n)), ratios=[n_train, n_val, n_test], shuffle=True, seed=seed)
    return {k: [order[i] for i in sorted(p)] for k, p in zip(("train", "val", "test"), parts)}


def split_by_patient(
    items: Sequence[dict], fractions: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0, key: str = "patient"
) -> dict[str, list[dict]]:
    """Seeded train/val/test split of slices such that every patient's slices land in one split."""
    groups = sorted({str(it[key]) for it in items})
    part = split_by_volume([{"image": g} for g in groups], fractions, seed)
    which = {d["image"]: k for k, v in part.items() for d in v}
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for it in items:
        out[which[str(it[key])]].append(it)
    return out


def stratified_split(
    items: Sequence[dict], fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0, key: str = "class"
) -> dict[str, list[dict]]:
    """Seeded train/val/test split of images, done separately within each value of ``item[key]`` (so every split
    keeps the class mix); COVID-QU-Ex has one image per patient in a split, so an image split is a patient split."""
    groups: dict[str, list[dict]] = {}
    for it in items:
        groups.setdefault(str(it.get(key)), []).append(it)
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for g in sorted(groups):
        part = split_by_volume(groups[g], fractions, seed)
        for k in out:
            out[k].extend(part[k])
    return out
