"""Simulate weak annotations from full masks, as a separate, explicit step that writes an annotation file.

The research protocols run simulate -> train from the file; the training configs never see the masks of weakly
labelled cases. What is derived, per 2D slice, from the label of the slice as it is stored (before any crop):

- ``size``: the object size g of the union of the foreground classes (:func:`weakseg.transforms.object_size`);
- ``boxes``: one box per foreground class present, from ``scipy.ndimage.find_objects``;
- ``classes``: the foreground classes present;
- ``centre``: the centroid of the foreground (row, column);
- ``mask``: which slices keep their full mask (``num_masks`` cases or slices, a telescopic seeded choice).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weakseg.annotations.io import FORMAT
from weakseg.data.writers import write_json_atomic

__all__ = ["derive_slice_annotations", "simulate_weak_annotations", "read_label", "dataset_sections"]

logger = logging.getLogger("weakseg.annotations")

SIM_KINDS = ("size", "boxes", "classes", "centre")


def read_label(path: str | os.PathLike, image: str | os.PathLike | None = None) -> np.ndarray:
    """A label file as an integer array in the orientation MONAI's ``LoadImage`` gives (NIfTI voxel axes; PNG/JPEG
    rows, columns, with 255 read as 1 for {0, 255} masks). A ``.txt`` file is a Sunnybrook polygon contour, filled
    on the grid of its ``image`` (:class:`weakseg.data.LoadLVSliced`)."""
    path = str(path)
    low = path.lower()
    if low.endswith(".txt"):
        from weakseg.annotations.io import image_geometry
        from weakseg.data.sunnybrook import read_contour
        from weakseg.kernels.polygon import polygon_to_mask

        if image is None:
            raise ValueError(f"contour file '{path}' needs its image to be filled")
        shape = image_geometry(image)[0]
        return polygon_to_mask(torch.as_tensor(read_contour(path)), shape).numpy().astype(np.int64)
    if low.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        arr = np.asanyarray(nib.load(path).dataobj)
    else:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im)
        if arr.ndim == 3:
            arr = arr[..., 0]
        vals = np.unique(arr)
        if set(vals.tolist()) <= {0, 255}:
            arr = (arr > 0).astype(np.uint8)
    if not np.all(np.isfinite(arr)) or not np.allclose(arr, np.rint(arr)):
        raise ValueError(f"label file '{path}' holds non-integer values; expected class ids")
    return np.rint(arr).astype(np.int64)


def derive_slice_annotations(label: np.ndarray, kinds: Sequence[str] = SIM_KINDS,
                             border_is_background: bool = True) -> dict[str, Any]:
    """The weak labels of one 2D label slice ``(H, W)`` of class ids: ``size`` (int), ``boxes``
    (``[{"class", "start", "end"}]``, end exclusive), ``classes`` and ``centre`` (only the ``kinds`` asked for; no
    ``centre`` on an empty slice)."""
    from scipy import ndimage

    from weakseg.kernels.size import object_size

    lab = np.asarray(label)
    if lab.ndim != 2:
        raise ValueError(f"derive_slice_annotations expects a 2D label slice, got shape {lab.shape}")
    fg = lab > 0
    out: dict[str, Any] = {}
    if "size" in kinds:
        out["size"] = int(object_size(torch.from_numpy(fg), border_is_background))
    if "boxes" in kinds:
        boxes = []
        for cls, sl in enumerate(ndimage.find_objects(np.where(lab > 0, lab, 0)), start=1):
            if sl is not None:
                boxes.append({"class": cls, "start": [s.start for s in sl], "end": [s.stop for s in sl]})
        out["boxes"] = boxes
    if "classes" in kinds:
        out["classes"] = [int(c) for c in np.unique(lab) if c > 0]
    if "centre" in kinds and fg.any():
        rows, cols = np.nonzero(fg)
        out["centre"] = [round(float(rows.mean()), 3), round(float(cols.mean()), 3)]
    return out


def _observed_labels(cases: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Class names for a folder that names none: the class ids seen in the training labels."""
    ids = sorted(set().union(*(set(c["ids"]) for c in cases)) - {0}) or [1]
    if ids == [1]:
        return {0: "background", 1: "foreground"}
    return {0: "background", **{k: f"class {k}" for k in range(1, max(ids) + 1)}}


def _rel(path: str, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive
        return str(path)


def _case_id(item: Mapping[str, Any]) -> str:
    return str(item.get("id") or Path(item["image"]).name.removesuffix(".gz").rsplit(".", 1)[0])


def simulate_weak_annotations(
    sections: Mapping[str, Sequence[Mapping[str, Any]]],
    base_dir: str | os.PathLike,
    labels: Mapping[int, str] | None = None,
    kinds: Sequence[str] = ("size", "boxes", "classes"),
    num_masks: int | str | None = 0,
    mask_unit: str = "case",
    box_fraction: float = 1.0,
    seed: int = 0,
    slice_axis: int = 0,
    min_foreground: float = 0.01,
    border_is_background: bool = True,
    name: str | None = None,
    out: str | os.PathLike | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Derive weak annotations from the masks of ``sections["training"]`` and return (and write to ``out``) the
    annotation file.

    Args:
        sections: ``training`` / ``validation`` / ``test`` -> ``[{"image", "label", ...}]`` (absolute paths).
        base_dir: the data folder; paths in the file are written relative to it.
        labels: class id -> name (default background / foreground).
        kinds: which of ``size``, ``boxes``, ``classes``, ``centre`` to write.
        num_masks: how many training cases (``mask_unit="case"``) or slices (``"slice"``) keep their mask: an
            integer (0: none), or ``"all"``. The choice is telescopic (:func:`weakseg.data.telescopic_indices`).
        mask_unit: ``"case"`` (every annotated slice of the chosen cases) or ``"slice"``.
        box_fraction: the share of the cases without masks that get ``boxes`` (the others only ``classes``);
            with ``mask_unit="case"`` the choice is that of :func:`weakseg.transforms.assign_annotations`.
        seed: seed of the mask and box choices.
        slice_axis, min_foreground: 3D volumes are annotated on the slices along ``slice_axis`` whose foreground
            fraction is at least ``min_foreground`` (the slices :class:`weakseg.transforms.SliceVolume` keeps);
            a 2D image is annotated whole.
        provenance: more entries of the file's ``simulated_from`` (e.g. the split's seed and fractions).

    Only the training cases that keep at least one mask carry their ``label`` path, so that deleting the other
    masks changes nothing. Validation and test cases are copied with their labels.
    """
    from weakseg.utils import telescopic_indices
    from weakseg.transforms.slicing import SliceVolume
    from weakseg.transforms.weak import assign_annotations

    bad = set(kinds) - set(SIM_KINDS)
    if bad:
        raise ValueError(f"kinds: unknown {sorted(bad)}; expected some of {SIM_KINDS}")
    if mask_unit not in ("case", "slice"):
        raise ValueError(f"mask_unit must be 'case' or 'slice', got {mask_unit!r}")
    if not 0.0 <= float(box_fraction) <= 1.0:
        raise ValueError(f"box_fraction must be in [0, 1], got {box_fraction}")
    base = Path(base_dir).expanduser().resolve()  # as load_msd_datalist resolves the data folder
    train = list(sections.get("training", []))
    if not train:
        raise ValueError("simulate_weak_annotations: no training cases")
    slicer = SliceVolume(axis=slice_axis, min_foreground=min_foreground)
    none = num_masks is None or (isinstance(num_masks, int) and num_masks == 0)
    # which cases get boxes (and, per case, masks): the choice of assign_annotations
    if mask_unit == "case" and not none:
        kind_of = [a["annotation"] for a in assign_annotations(train, num_masks, box_fraction, seed=seed)]
    else:  # no case keeps its mask: the box choice of assign_annotations over every case
        perm = np.random.RandomState(seed + 1).permutation(len(train))
        boxed = set(perm[: int(round(box_fraction * len(train)))].tolist())
        kind_of = ["box" if i in boxed else "image" for i in range(len(train))]
    cases = []
    for i, item in enumerate(train):
        if "label" not in item:
            raise ValueError(f"training case {item.get('image')} has no label to simulate annotations from")
        try:
            lab = read_label(item["label"], item["image"])
        except Exception as e:
            raise ValueError(f"cannot read the label of case '{_case_id(item)}' ({item['label']}): {e}") from e
        if lab.ndim == 4 and lab.shape[-1] == 1:
            lab = lab[..., 0]
        if lab.ndim == 3:
            idx = slicer.slice_indices(lab[None])
            recs = []
            for k in idx:
                sl = [slice(None)] * 3
                sl[slice_axis] = k
                recs.append({"index": int(k), **derive_slice_annotations(lab[tuple(sl)], kinds, border_is_background)})
        elif lab.ndim == 2:
            recs = [derive_slice_annotations(lab, kinds, border_is_background)]
        else:
            raise ValueError(f"label of case '{_case_id(item)}' ({item['label']}) has shape {lab.shape}; expected 2D "
                             "or 3D")
        for r in recs:
            if kind_of[i] != "box":
                r.pop("boxes", None)
        cases.append({"item": item, "ndim": lab.ndim, "records": recs, "ids": np.unique(lab).tolist()})
    # masks
    if mask_unit == "case":
        for c, k in zip(cases, kind_of):
            for r in c["records"]:
                if k == "mask":
                    r["mask"] = True
    elif not none:
        flat = [r for c in cases for r in c["records"]]
        for j in telescopic_indices(len(flat), num_masks, seed=seed, name="num_masks"):
            flat[j]["mask"] = True
    training = []
    for c in cases:
        item = c["item"]
        entry: dict[str, Any] = {"id": _case_id(item), "image": _rel(item["image"], base)}
        if any(r.get("mask") for r in c["records"]):
            entry["label"] = _rel(item["label"], base)
        if c["ndim"] == 3:
            if not c["records"]:
                logger.warning("case %s has no slice with foreground >= %g; left out", entry["id"], min_foreground)
                continue
            entry["slices"] = c["records"]
        else:
            entry.update(c["records"][0])
        training.append(entry)
    desc: dict[str, Any] = {
        "format": FORMAT,
        "name": name or (Path(out).name.removesuffix(".json") if out else "simulated"),
        "description": "weak annotations simulated from full masks by weakseg.annotations.simulate",
        "labels": {str(k): v for k, v in sorted((labels or _observed_labels(cases)).items())},
        "slice_axis": slice_axis,
        "simulated_from": {"kinds": list(kinds), "num_masks": num_masks, "mask_unit": mask_unit,
                           "box_fraction": box_fraction, "seed": seed, "min_foreground": min_foreground,
                           "border_is_background": border_is_background, **(provenance or {})},
        "training": training,
    }
    for sec in ("validation", "test"):
        if sections.get(sec):
            desc[sec] = []
            for it in sections[sec]:
                entry = {"id": _case_id(it), "image": _rel(it["image"], base), "label": _rel(it["label"], base)}
                if "centre" in kinds:  # the click of a 2D case, an input of click-based methods
                    lab = read_label(it["label"], it["image"])
                    if lab.ndim == 2 and (lab > 0).any():
                        entry.update(derive_slice_annotations(lab, ("centre",), border_is_background))
                desc[sec].append(entry)
    if out is not None:
        write_json_atomic(out, desc, indent=1)
    return desc


def dataset_sections(dataset_dir: str | os.PathLike, fractions: Sequence[float] = (0.7, 0.1, 0.2),
                     seed: int = 0) -> tuple[dict[str, list[dict]], dict[int, str]]:
    """The labelled cases of a data folder split by case into ``training`` / ``validation`` / ``test`` (the split of
    :func:`weakseg.data.split_by_volume`), and its class names. ``dataset_dir``: an MSD-layout folder
    (``dataset.json``, its ``"training"`` list and ``"labels"``), a folder with ``images/`` and ``labels/`` (or
    ``masks/``) holding files of the same names (2D or 3D), or the Sunnybrook layout (``link.csv``; split by
    patient, each slice a case whose label is its contour file)."""
    from weakseg.data.msd import MSDSource, split_by_volume

    root = Path(dataset_dir).expanduser()
    if (root / "link.csv").is_file():  # Sunnybrook: DICOM slices with contour files, split by patient
        from weakseg.data.sunnybrook import SunnybrookSource, split_by_patient

        src = SunnybrookSource(root)
        items = [{"id": it["id"], "image": it["image"], "label": it["contour"], "patient": it["patient"]}
                 for it in src.datalist()]
        split = split_by_patient(items, fractions, seed)
        return {"training": split["train"], "validation": split["val"], "test": split["test"]}, src.labels
    src = MSDSource(root, download=False)  # the bundle's choice between an MSD folder and images/ + labels/
    split = split_by_volume(src.datalist("training"), fractions, seed)
    return {"training": split["train"], "validation": split["val"], "test": split["test"]}, src.labels
