"""Left-ventricle slices: Sunnybrook Cardiac Data (DICOM + polygon contours) and ACDC-style NIfTI volumes.

Sunnybrook layout (the 5-patient repackaging of the MICCAI 2009 LV challenge data, CC0)::

    <root>/link.csv                                   patient_id,original_id   (e.g. SCD0000101,SC-HF-I-1)
    <root>/dicoms/<patient_id>/<n>.dcm                2D short-axis slices
    <root>/contourfiles/<original_id>/i-contours/IM-0001-<nnnn>-icontour-manual.txt   (n zero-padded to 4)

A contour file lists polygon vertices ``x y`` (x = column, y = row, pixel units), one per line; ``i`` contours
are the LV endocardium (blood pool), ``o`` contours the epicardium. Only slices with a contour are listed.

ACDC layout: 3D NIfTI image + ground truth per case, the LV blood pool being label ``lv_label`` (3 in ACDC);
:func:`nifti_lv_datalist` lists the slices that contain it.

Both produce items that :class:`LoadLVSliced` turns into ``image`` (1, H, W) float32, ``label`` (1, H, W)
float32 {0, 1}, ``spacing`` (2,) mm and ``patient``; the bundle then pads/crops every slice to a fixed size
(default 160×160 pixels at native resolution, ~1.3 mm: the LV of every Sunnybrook slice lies within 40 px of
the image centre, so the crop keeps it) and adds the LV ``centre`` (:class:`weakseg.transforms.MaskCentroidd`).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from weakseg.data.splits import split_by_patient
from weakseg.kernels.polygon import polygon_to_mask
from weakseg.transforms.labels import CheckFinite

__all__ = [
    "read_contour",
    "read_dicom_slice",
    "load_sunnybrook_datalist",
    "nifti_lv_datalist",
    "split_by_patient",
    "LoadLVSliced",
    "SunnybrookSource",
    "lv_slices",
    "crop_offset",
]

logger = logging.getLogger(__name__)

_CONTOUR_RE = re.compile(r"IM-\d+-(\d+)-([io])contour-manual\.txt$")


def read_contour(path: str | os.PathLike) -> np.ndarray:
    """Polygon of a contour file as ``(K, 2)`` float64 ``(row, col)`` (the file holds ``x y`` = col, row).

    Raises:
        ValueError: a line that is not two numbers, non-finite values, or fewer than 3 vertices (file named).
    """
    pts = []
    with open(path) as fh:
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError
                x, y = float(parts[0]), float(parts[1])
            except ValueError:
                raise ValueError(f"contour file {path}, line {ln}: expected two numbers 'x y', got {line.strip()!r}")
            pts.append((y, x))
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    if len(arr) < 3:
        raise ValueError(f"contour file {path} has {len(arr)} point(s); a closed contour needs at least 3")
    if not np.isfinite(arr).all():
        raise ValueError(f"contour file {path} has non-finite coordinates")
    return arr


def read_dicom_slice(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float]]:
    """Pixel data (H, W) float32 (rescale slope/intercept applied) and pixel spacing (row, col) in mm.

    Raises:
        ValueError: the file is not DICOM, has no pixel data, is not a single 2D frame, or has no spacing.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as e:  # pydicom raises InvalidDicomError, OSError, ...
        raise ValueError(f"cannot read DICOM file {path}: {e}") from e
    if "PixelData" not in ds:
        raise ValueError(f"DICOM file {path} has no pixel data (PixelData element missing)")
    try:
        arr = np.asarray(ds.pixel_array, dtype=np.float32)
    except Exception as e:
        raise ValueError(f"cannot decode the pixel data of DICOM file {path}: {e}") from e
    if arr.ndim != 2:
        raise ValueError(f"DICOM file {path}: expected one 2D frame, got pixel array of shape {arr.shape}")
    arr = arr * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
    sp = getattr(ds, "PixelSpacing", None)
    if sp is None or len(sp) != 2:
        raise ValueError(f"DICOM file {path} has no PixelSpacing; cannot report distances in mm")
    return arr, (float(sp[0]), float(sp[1]))


def load_sunnybrook_datalist(root: str | os.PathLike, contour: str = "i") -> list[dict[str, Any]]:
    """``[{"image", "contour", "patient", "original_id", "id"}, ...]`` for every slice with a ``contour``
    (``"i"`` endocardium or ``"o"`` epicardium) file, sorted by patient and image number.

    Raises:
        FileNotFoundError: ``link.csv`` or a patient folder is missing, no contour is found, or a contour has no
            DICOM (both paths named).
    """
    if contour not in ("i", "o"):
        raise ValueError(f"contour must be 'i' (endocardium) or 'o' (epicardium), got {contour!r}")
    root = Path(root)
    link = root / "link.csv"
    if not link.is_file():
        raise FileNotFoundError(f"Sunnybrook data: {link} not found; expected <root>/link.csv, dicoms/, contourfiles/")
    items: list[dict[str, Any]] = []
    with open(link, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"patient_id", "original_id"} <= set(rows[0]):
        raise ValueError(f"{link}: expected a header 'patient_id,original_id' and one row per patient")
    for row in sorted(rows, key=lambda r: r["patient_id"]):
        pid, oid = row["patient_id"].strip(), row["original_id"].strip()
        cdir = root / "contourfiles" / oid / f"{contour}-contours"
        if not cdir.is_dir():
            raise FileNotFoundError(f"Sunnybrook patient {pid} ({oid}): contour folder {cdir} not found")
        found = []
        for f in cdir.iterdir():
            mt = _CONTOUR_RE.search(f.name)
            if mt and mt.group(2) == contour:
                found.append((int(mt.group(1)), f))
        for num, f in sorted(found):
            dcm = root / "dicoms" / pid / f"{num}.dcm"
            if not dcm.is_file():
                raise FileNotFoundError(f"contour {f} has no matching DICOM: expected {dcm}")
            items.append({"image": str(dcm), "contour": str(f), "patient": pid, "original_id": oid,
                          "id": f"{pid}/{num}"})
    if not items:
        raise FileNotFoundError(f"no {contour}-contour files under {root / 'contourfiles'}")
    return items


def nifti_lv_datalist(
    pairs: Sequence[tuple[str, str]] | Sequence[dict], lv_label: int = 3, min_pixels: int = 1
) -> list[dict[str, Any]]:
    """ACDC-style data: for each (image, ground-truth) 3D NIfTI pair, one item per slice (last axis) whose
    ground truth has at least ``min_pixels`` pixels of ``lv_label``: ``{"image", "label", "slice",
    "lv_label", "patient", "id"}``. ``pairs`` may also be dicts with ``image``/``label`` (and ``patient``)."""
    import nibabel as nib

    items: list[dict[str, Any]] = []
    for p in pairs:
        img, gt = (p["image"], p["label"]) if isinstance(p, Mapping) else p
        patient = p.get("patient") if isinstance(p, Mapping) else None
        patient = patient or Path(img).name.split(".")[0].split("_")[0]
        lab = np.asanyarray(nib.load(str(gt)).dataobj)
        if lab.ndim != 3:
            raise ValueError(f"ground truth {gt}: expected a 3D volume, got shape {lab.shape}")
        for k in range(lab.shape[-1]):
            if int((lab[..., k] == lv_label).sum()) >= min_pixels:
                items.append({"image": str(img), "label": str(gt), "slice": k, "lv_label": int(lv_label),
                              "patient": str(patient), "id": f"{patient}/{k}"})
    return items


def centres_datalist(
    files: Sequence[str | os.PathLike], centres_file: str | os.PathLike, source: str | os.PathLike = "input"
) -> list[dict[str, Any]]:
    """Inference items ``{"image": path, "centres": float32 (K, 3)}`` for :class:`weakseg.inferers.DPVolumeInferer`.

    ``centres_file`` is JSON mapping each input file name (or its path as given) to a list of
    ``[slice, row, col]`` voxel positions of the object centre, one per slice to segment, e.g.
    ``{"patient101_frame01.nii.gz": [[3, 110.5, 98.0], [4, 111.0, 97.5]]}``. An empty list means no slice.

    Raises:
        FileNotFoundError / ValueError: naming ``centres_file`` (unreadable, not a JSON object, an entry that is
        not a list of ``[slice, row, col]`` numbers) or the input file without an entry.
    """
    import json

    from weakseg.data.msd import files_datalist

    items = files_datalist(files, source)
    path = Path(centres_file)
    if not path.is_file():
        raise FileNotFoundError(f"centres file '{centres_file}' does not exist; expected JSON "
                                '{"<input file name>": [[slice, row, col], ...]}')
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"centres file '{centres_file}' is not valid JSON: {e}") from e
    if not isinstance(spec, Mapping):
        raise ValueError(f"centres file '{centres_file}': expected a JSON object keyed by input file name, "
                         f"got {type(spec).__name__}")
    given = [str(f) for f in ([files] if isinstance(files, (str, os.PathLike)) else files)]
    for it, raw in zip(items, given):
        keys = (raw, it["image"], Path(it["image"]).name)
        key = next((k for k in keys if k in spec), None)
        if key is None:
            raise ValueError(f"centres file '{centres_file}' has no entry for input '{raw}' (use its file name "
                             f"'{keys[2]}' as key)")
        entry = spec[key]
        ok = isinstance(entry, list) and all(
            isinstance(e, list) and len(e) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in e)
            for e in entry
        )
        if not ok:
            raise ValueError(f"centres file '{centres_file}', entry '{key}': expected a list of [slice, row, col] "
                             f"finite numbers, got {str(entry)[:80]}")
        it["centres"] = np.asarray(entry, dtype=np.float32).reshape(-1, 3)
    return items


class LoadLVSliced(MapTransform):
    """Load one LV slice item (from :func:`load_sunnybrook_datalist` or :func:`nifti_lv_datalist`).

    Output keys: ``image`` (1, H, W) float32, ``label`` (1, H, W) float32 in {0, 1} (the rasterised contour —
    pixel centres inside the polygon — or ``gt == lv_label``), ``spacing`` float32 (2,) in mm; other keys are
    kept except the file paths, which move to ``image_file``/``label_file``.
    """

    def __init__(self, keys: KeysCollection = ("image", "label"), allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        src = str(d["image"])
        if "contour" not in d and str(d.get("label", "")).lower().endswith(".txt"):
            d["contour"] = d.pop("label")  # an annotation-file case whose mask is a Sunnybrook contour file
        if "contour" in d:
            img, spacing = read_dicom_slice(src)
            poly = read_contour(d["contour"])
            lab = polygon_to_mask(torch.as_tensor(poly), img.shape).numpy()
            if not lab.any():
                raise ValueError(f"contour {d['contour']} encloses no pixel centre of {src}")
            d["label_file"] = str(d.pop("contour"))
        elif "label" in d and "slice" in d:
            import nibabel as nib

            k = int(d["slice"])
            nimg, ngt = nib.load(src), nib.load(str(d["label"]))
            if nimg.shape != ngt.shape:
                raise ValueError(f"image {src} has shape {nimg.shape} but ground truth {d['label']} has {ngt.shape}")
            img = np.asarray(nimg.dataobj[..., k], dtype=np.float32)
            lab = np.asarray(ngt.dataobj[..., k]) == int(d.get("lv_label", 3))
            zooms = nimg.header.get_zooms()
            spacing = (float(zooms[0]), float(zooms[1]))
            d["label_file"] = str(d["label"])
        elif "label" in d:  # 2D image and mask files (PNG, NIfTI, ...), as MONAI's LoadImage reads them
            from monai.data import PILReader
            from monai.transforms import LoadImage

            from weakseg.transforms.labels import MergeLabels

            load = LoadImage(image_only=True, reader=PILReader(reverse_indexing=False))
            mi, ml = load(src), load(str(d["label"]))
            if mi.ndim != 2 or ml.shape != mi.shape:
                raise ValueError(f"image {src} {tuple(mi.shape)} and mask {d['label']} {tuple(ml.shape)}: expected "
                                 "2D files of the same shape")
            img = np.asarray(mi, dtype=np.float32)
            lab = np.asarray(MergeLabels({0: 0, 1: 1})(ml.as_tensor())) > 0
            spacing = tuple(float(v) for v in torch.as_tensor(mi.pixdim).reshape(-1)[:2])
            d["label_file"] = str(d["label"])
        else:
            raise KeyError(f"LV slice item for {src} needs 'contour' (Sunnybrook), 'label' + 'slice' (NIfTI volume) "
                           "or a 2D 'label' file")
        CheckFinite()(img, source=src)
        d["image_file"] = src
        d["image"] = torch.as_tensor(img, dtype=torch.float32)[None]
        d["label"] = torch.as_tensor(lab, dtype=torch.float32)[None]
        d["spacing"] = torch.tensor(spacing, dtype=torch.float32)
        return d


class SunnybrookSource:
    """Local Sunnybrook LV data with the interface of :class:`weakseg.data.MSDSource` (``root``, ``data_tag``,
    ``datalist()``). The data are not downloaded at run time: get the Sunnybrook Cardiac Data (CC0) from the
    Cardiac Atlas Project and arrange it as described in this module, then pass ``--dataset_dir``."""

    def __init__(self, dataset_dir: str | os.PathLike, contour: str = "i") -> None:
        root = Path(dataset_dir).expanduser()
        if not (root / "link.csv").is_file():
            raise FileNotFoundError(
                f"Sunnybrook data not found: no link.csv under {root.resolve()}; expected link.csv, dicoms/<patient>/"
                "<n>.dcm and contourfiles/<original id>/i-contours/. Pass --dataset_dir /path/to/it."
            )
        self.root = root.resolve()
        self.contour = contour
        self.synthetic = False

    @property
    def data_tag(self) -> str:
        return "real"

    @property
    def labels(self) -> dict[int, str]:
        """Class id -> name: the background and the left-ventricle cavity (or wall, for ``contour="o"``)."""
        return {0: "background", 1: "left ventricle"}

    def datalist(self) -> list[dict[str, Any]]:
        return load_sunnybrook_datalist(self.root, self.contour)


def crop_offset(in_size: Sequence[int], out_size: Sequence[int]) -> tuple[int, ...]:
    """Where pixel ``(0, 0)`` of an image of ``in_size`` lands after MONAI's centred ``ResizeWithPadOrCrop`` to
    ``out_size`` (negative: cropped away), per axis: ``-(n // 2 - m // 2)`` when cropping, ``(m - n) // 2`` when
    padding."""
    return tuple((m - n) // 2 if m >= n else -(n // 2 - m // 2) for n, m in zip(in_size, out_size))


def lv_slices(items: Sequence[dict], spatial_size: Sequence[int] = (160, 160),
              keep: Sequence[str] = ("image", "label", "centre", "spacing", "patient", "id"),
              centres: str = "mask") -> list[dict]:
    """Load and prepare LV slice items in memory: :class:`LoadLVSliced`, z-score intensity per slice,
    centred pad/crop to ``spatial_size`` and the LV ``centre`` (row, col); only ``keep`` keys remain (plain
    tensors, ready for a ``DataLoader``).

    ``items``: datalist items (:func:`load_sunnybrook_datalist`, :func:`nifti_lv_datalist`) or 2D cases of a weak
    annotation file (:func:`weakseg.annotations.load_weak_annotations`; their ``centre`` is the click recorded in
    the file). ``centres``: ``"mask"`` (the mask centroid), ``"file"`` (the item's recorded centre, moved by the
    crop; an item without one is an error naming it) or ``"auto"`` (the recorded one where given).

    Raises:
        ValueError: a slice whose LV does not survive the crop (names the file): increase ``spatial_size``.
    """
    from monai.transforms import Compose, NormalizeIntensityd, ResizeWithPadOrCropd

    from weakseg.transforms.contour import MaskCentroidd

    if centres not in ("mask", "file", "auto"):
        raise ValueError(f"centres must be 'mask', 'file' or 'auto', got {centres!r}")
    load = LoadLVSliced()
    rest = Compose([NormalizeIntensityd("image"), ResizeWithPadOrCropd(["image", "label"], spatial_size)])
    cen = MaskCentroidd("label")
    out = []
    for it in items:
        it = dict(it)
        recs = it.pop("slices", None) or [{}]
        if len(recs) != 1 or recs[0].get("index") is not None:
            raise ValueError(f"case '{it.get('id')}': LV slices are 2D images; got a 3D case with {len(recs)} slices")
        given = recs[0].get("centre") if it.get("centre") is None else it["centre"]
        for k in ("ndim", "centre"):
            it.pop(k, None)
        if centres == "file" and given is None:
            raise ValueError(f"case '{it.get('id', it.get('image'))}' has no 'centre' in the annotation file; the "
                             "evaluation of a click-based method reads the click from it")
        d = load(it)
        area = float(d["label"].sum())
        in_size = tuple(d["image"].shape[1:])
        d = rest(d)
        if float(torch.as_tensor(d["label"]).sum()) < area:
            raise ValueError(f"the LV of {d['image_file']} is cut by the {tuple(spatial_size)} crop; use a larger "
                             "spatial_size")
        d["image"] = torch.as_tensor(d["image"]).as_subclass(torch.Tensor).float()
        d["label"] = torch.as_tensor(d["label"]).as_subclass(torch.Tensor).float()
        if given is not None and centres != "mask":
            off = crop_offset(in_size, spatial_size)
            d["centre"] = torch.tensor([float(c) + o for c, o in zip(given, off)], dtype=torch.float32)
        else:
            d = cen(d)
        d.setdefault("patient", str(d.get("id", "")).split("/")[0])
        out.append({k: d[k] for k in keep if k in d})
    return out
