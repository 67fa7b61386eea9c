"""COVID-QU-Ex chest X-ray infection segmentation data (Tahir et al. 2021; Kaggle ``anasmohammedtahir/covidqu``).

Layout (the Kaggle one): ``<root>/Infection Segmentation Data/<split>/<class>/{images,lung masks,infection masks}/
<name>.png`` with ``<split>`` in Train/Val/Test, ``<class>`` in COVID-19/Non-COVID/Normal, 8-bit grey 256×256
images and masks with values {0, 255}. ``root`` may also be the ``Infection Segmentation Data`` folder itself.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from weakseg.data.splits import stratified_split

__all__ = ["COVID_CLASSES", "CovidQUExSource", "load_covid_qu_ex_datalist", "stratified_split", "has_foreground"]

logger = logging.getLogger(__name__)

COVID_CLASSES = ("COVID-19", "Non-COVID", "Normal")
_MASK_DIRS = {"infection": "infection masks", "lung": "lung masks"}


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _data_root(root: Path) -> Path:
    if (root / "Infection Segmentation Data").is_dir():
        return root / "Infection Segmentation Data"
    return root


def has_foreground(mask_file: str | os.PathLike) -> bool:
    """Whether a PNG mask has any non-zero pixel."""
    from PIL import Image

    with Image.open(mask_file) as im:
        return bool(np.asarray(im).any())


def load_covid_qu_ex_datalist(
    root: str | os.PathLike,
    split: str = "Test",
    classes: Sequence[str] = COVID_CLASSES,
    mask: str = "infection",
    positives_only: bool = False,
) -> list[dict[str, str]]:
    """``[{"image", "label", "lung", "class", "id"}, ...]`` for one split, natural-sorted by file name.

    Args:
        root: the dataset folder (holding ``Infection Segmentation Data``) or that folder itself.
        split: ``"Train"``, ``"Val"`` or ``"Test"``.
        classes: which image classes to list.
        mask: which mask becomes ``"label"``: ``"infection"`` or ``"lung"`` (both are always given as paths,
            ``"infection"`` and ``"lung"``).
        positives_only: keep only images whose label mask has foreground (the thesis's "positives only"
            sampling; e.g. only COVID-19 images for infection).

    Raises:
        FileNotFoundError: the split/class folder is missing or empty, or an image has no matching mask (both
            paths named).
        ValueError: unknown ``mask`` or class name.
    """
    if mask not in _MASK_DIRS:
        raise ValueError(f"mask must be 'infection' or 'lung', got {mask!r}")
    base = _data_root(Path(root)) / split
    if not base.is_dir():
        raise FileNotFoundError(
            f"COVID-QU-Ex split folder {base} not found; expected <root>/Infection Segmentation Data/{split}/<class>/images"
        )
    items: list[dict[str, str]] = []
    for cls in classes:
        if cls not in COVID_CLASSES:
            raise ValueError(f"unknown COVID-QU-Ex class {cls!r}; expected some of {COVID_CLASSES}")
        img_dir = base / cls / "images"
        images = sorted(img_dir.glob("*.png"), key=_natural_key)
        if not images:
            raise FileNotFoundError(f"no PNG images in {img_dir}")
        for img in images:
            paths = {}
            for kind, sub in _MASK_DIRS.items():
                m = base / cls / sub / img.name
                if not m.is_file():
                    raise FileNotFoundError(f"image {img} has no matching {kind} mask: expected {m}")
                paths[kind] = str(m)
            items.append(
                {"image": str(img), "label": paths[mask], "infection": paths["infection"], "lung": paths["lung"],
                 "class": cls, "id": f"{cls}/{img.stem}"}
            )
    if positives_only:
        kept = [it for it in items if has_foreground(it["label"])]
        logger.info("positives only: %d of %d images have %s foreground", len(kept), len(items), mask)
        if not kept:
            raise ValueError(f"positives_only: none of the {len(items)} {mask} masks under {base} has foreground")
        items = kept
    return items


class CovidQUExSource:
    """Local COVID-QU-Ex infection segmentation data with the interface of :class:`weakseg.data.MSDSource`
    (``root``, ``data_tag``, ``datalist()``), so the bundle swaps data sources with one override file.

    The data are not downloaded at run time (Kaggle needs an account): get ``anasmohammedtahir/covidqu`` from
    Kaggle (``kaggle datasets download anasmohammedtahir/covidqu``) and point ``dataset_dir`` at the folder that
    holds ``Infection Segmentation Data``.
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        split: str = "Test",
        mask: str = "infection",
        positives_only: bool = True,
        classes: Sequence[str] = COVID_CLASSES,
    ) -> None:
        root = Path(dataset_dir).expanduser()
        if not (_data_root(root) / split).is_dir():
            raise FileNotFoundError(
                f"COVID-QU-Ex not found: no '{split}' folder under {root.resolve()} (or its 'Infection Segmentation "
                "Data'). Download anasmohammedtahir/covidqu from Kaggle and pass --dataset_dir /path/to/it."
            )
        self.root = root.resolve()
        self.split, self.mask, self.positives_only, self.classes = split, mask, positives_only, tuple(classes)
        self.synthetic = False

    @property
    def data_tag(self) -> str:
        return "real"

    @property
    def labels(self) -> dict[int, str]:
        """Class id -> name: the background and the masked structure (``mask``)."""
        return {0: "background", 1: self.mask}

    def datalist(self, section: str | None = None) -> list[dict[str, str]]:
        """All images of the configured split (``section`` is accepted for interface compatibility: a Kaggle
        split name such as "Train" replaces the configured one)."""
        split = section if section in ("Train", "Val", "Test") else self.split
        return load_covid_qu_ex_datalist(self.root, split, self.classes, self.mask, self.positives_only)
