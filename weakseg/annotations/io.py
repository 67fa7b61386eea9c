"""Read and validate a weak-annotation file (``docs/weak_annotations.md``, schema ``schema.json`` beside this file).

Every entry is checked before any training, and every error names the file, the case and the field. Nothing is
dropped, clipped or rounded: a value that does not fit is an error.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weakseg.data.msd import NIFTI_SUFFIXES, RASTER_SUFFIXES

__all__ = [
    "FORMAT",
    "KINDS",
    "AnnotationError",
    "WeakAnnotations",
    "annotation_labels",
    "class_names",
    "annotation_name",
    "image_geometry",
    "load_weak_annotations",
    "schema_path",
]

FORMAT = "weakseg-annotations/1"
KINDS = ("size", "boxes", "classes", "centre", "mask")
"""The kinds of annotation a slice may carry (``size_mm`` is read as ``size``)."""

SECTIONS = ("training", "validation", "test")
_SLICE_KEYS = {"index", "size", "size_mm", "boxes", "classes", "centre", "mask"}
_CASE_2D_KEYS = _SLICE_KEYS - {"index"}
_CASE_KEYS = {"id", "image", "label", "slice_axis", "pixel_spacing", "slices"} | _CASE_2D_KEYS
_TOP_KEYS = {"format", "name", "description", "labels", "slice_axis", "simulated_from", *SECTIONS}


class AnnotationError(ValueError):
    """A weak-annotation file that cannot be used; the message names the file, the case and the field."""


def schema_path() -> Path:
    """The JSON Schema of the format (``weakseg/annotations/schema.json``)."""
    return Path(__file__).with_name("schema.json")


def _suffix(path: str) -> str:
    low = path.lower()
    return ".nii.gz" if low.endswith(".nii.gz") else os.path.splitext(low)[1]


def image_geometry(path: str | os.PathLike) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
    """Spatial shape of an image file as MONAI's ``LoadImage`` returns it (NIfTI: voxel axes; PNG/JPEG: rows,
    columns; DICOM: rows, columns) and its voxel spacing in mm (``None`` where the file has none), read from the
    header only."""
    path = str(path)
    suf = _suffix(path)
    if suf in NIFTI_SUFFIXES:
        import nibabel as nib

        img = nib.load(path)
        shape = tuple(int(s) for s in img.shape)
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        zooms = tuple(float(z) for z in img.header.get_zooms()[: len(shape)])
        return shape, zooms
    if suf in RASTER_SUFFIXES:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        return (h, w), None
    if suf == ".dcm":
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        sp = getattr(ds, "PixelSpacing", None)
        return (int(ds.Rows), int(ds.Columns)), (tuple(float(s) for s in sp) if sp is not None else None)
    raise AnnotationError(f"unsupported image type '{path}': expected NIfTI ({', '.join(NIFTI_SUFFIXES)}), "
                          f"{', '.join(RASTER_SUFFIXES)} or .dcm")


@dataclass
class WeakAnnotations:
    """A validated weak-annotation file.

    Attributes:
        path: the file.
        name: the file name without ``.json`` (:func:`annotation_name`), used in run names.
        labels: class id -> class name (0 is the background).
        sections: ``"training"`` / ``"validation"`` / ``"test"`` -> cases. A case is a dict with ``id``, ``image``
            (absolute path), ``label`` (absolute path, when given), ``ndim`` (2 or 3), ``slice_axis`` (3D) and
            ``slices``: one record per annotated 2D slice with ``index`` (``None`` for 2D images) and the kinds it
            carries: ``size`` (pixels, float), ``boxes`` (``[(class_id, (r0, c0), (r1, c1)), ...]``, end
            exclusive), ``classes`` (sorted foreground class ids), ``centre`` (``(row, col)``), ``mask`` (bool).
    """

    path: Path
    name: str
    labels: dict[int, str]
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return max(self.labels) + 1

    def cases(self, section: str = "training") -> list[dict[str, Any]]:
        if section not in self.sections:
            raise AnnotationError(f"{self.path}: no '{section}' section (sections: {sorted(self.sections)})")
        return self.sections[section]

    @property
    def splits(self) -> dict[str, list[dict[str, Any]]]:
        """``{"train", "val", "test"}`` -> cases, the form of :func:`weakseg.data.split_by_volume`."""
        return {"train": self.sections.get("training", []), "val": self.sections.get("validation", []),
                "test": self.sections.get("test", [])}

    def kinds(self, section: str = "training") -> set[str]:
        """The annotation kinds present on at least one slice of ``section``."""
        return {k for case in self.cases(section) for rec in case["slices"] for k in KINDS
                if rec.get(k) is not None and rec.get(k) is not False}

    def require(self, method: str, every_slice: Iterable[str] = (), any_of: Iterable[str] = (),
                where: str = "every", num_classes: int | None = None,
                section: str = "training") -> "WeakAnnotations":
        """Check, before any training, that ``method`` can use the file: each kind in ``every_slice`` on every slice
        of ``section``; one kind of ``any_of`` on every slice (``where="every"``) or on at least one
        (``where="some"``); and, when given, ``num_classes`` classes in ``labels``. Raises :class:`AnnotationError`
        naming the first case and slice that lacks what is needed. Returns ``self`` (for configs)."""
        every, anyk = list(every_slice), list(any_of)
        if num_classes is not None and int(num_classes) != self.num_classes:
            raise AnnotationError(f"{self.path}: field 'labels' has {self.num_classes} classes {self.labels} but the "
                                  f"{method} network has num_classes={num_classes}")
        found = False
        for case in self.cases(section):
            for rec in case["slices"]:
                at = _where(self.path, case["id"], rec.get("index"))
                for k in every:
                    if rec.get(k) is None or rec.get(k) is False:
                        have = sorted(k2 for k2 in KINDS if rec.get(k2)) or "nothing"
                        raise AnnotationError(f"{at}: the {method} method needs '{k}' on every {section} slice; "
                                              f"this one has {have}")
                hit = any(rec.get(k) is not None and rec.get(k) is not False for k in anyk)
                found = found or hit
                if anyk and where == "every" and not hit:
                    raise AnnotationError(f"{at}: the {method} method needs one of {anyk} on every {section} "
                                          "slice; this one has none")
        if anyk and where == "some" and not found:
            raise AnnotationError(f"{self.path}: the {method} method needs {anyk} on some {section} slice; "
                                  f"the file has only {sorted(self.kinds(section)) or 'no annotations'}")
        return self


def annotation_name(path: str | os.PathLike | None) -> str:
    """The name runs trained from an annotation file carry: its file name without ``.json`` (read without opening
    the file, so that a model can be evaluated on other data under the name it was trained with)."""
    if path is None or path == "":
        load_weak_annotations(None)  # the error that says how to make one
    return Path(path).name.removesuffix(".json")


def _where(path: Path, case: str, index: int | None = None, fld: str | None = None) -> str:
    out = f"{path}: case '{case}'"
    if index is not None:
        out += f", slice {index}"
    if fld is not None:
        out += f", field '{fld}'"
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _class_id(v: Any, labels: Mapping[int, str], where: str) -> int:
    names = {n: i for i, n in labels.items()}
    if isinstance(v, str) and v in names:
        cid = names[v]
    elif isinstance(v, int) and not isinstance(v, bool) and v in labels:
        cid = v
    else:
        raise AnnotationError(f"{where}: unknown class {v!r}; expected one of {dict(sorted(labels.items()))} "
                              "(id or name)")
    if cid == 0:
        raise AnnotationError(f"{where}: class {v!r} is the background; list foreground classes only")
    return cid


def _pair(v: Any, where: str, integer: bool) -> tuple:
    ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v)
    if ok and integer:
        ok = all(float(x).is_integer() for x in v)
    if not ok:
        kind = "two integers [row, column]" if integer else "two numbers [row, column]"
        raise AnnotationError(f"{where}: expected {kind}, got {v!r}")
    if not all(math.isfinite(float(x)) for x in v):
        raise AnnotationError(f"{where}: expected finite numbers, got {v!r}")
    return tuple(int(x) for x in v) if integer else tuple(float(x) for x in v)


def _size(rec: Mapping[str, Any], shape: Sequence[int], spacing: Sequence[float] | None, where: Any) -> float | None:
    if "size" in rec and "size_mm" in rec:
        raise AnnotationError(f"{where('size')}: give 'size' (pixels) or 'size_mm', not both")
    key = "size" if "size" in rec else "size_mm" if "size_mm" in rec else None
    if key is None:
        return None
    v = rec[key]
    if not _is_number(v) or not math.isfinite(float(v)) or v < 0:
        raise AnnotationError(f"{where(key)}: expected a finite number >= 0, got {v!r}")
    size = float(v)
    if key == "size_mm":
        if spacing is None:
            raise AnnotationError(f"{where(key)}: a size in mm needs the in-plane pixel spacing; the image has none, "
                                  "give the case 'pixel_spacing': [row_mm, column_mm] or a size in pixels")
        if abs(spacing[0] - spacing[1]) > 1e-2 * max(spacing):
            raise AnnotationError(f"{where(key)}: the in-plane pixel spacing {tuple(spacing)} mm is not square, so a "
                                  "size in mm is ambiguous; give the size in pixels")
        size = size / float(spacing[0])
    # the largest object of an H x W slice is the whole slice: g = 2 * ceil(min(H, W) / 2)
    biggest = 2 * math.ceil(min(shape) / 2)
    if size > biggest + 1e-6:
        raise AnnotationError(f"{where(key)}: size {v} ({size:g} px) is larger than any object in a "
                              f"{'x'.join(map(str, shape))} slice can have ({biggest} px)")
    return size


def _boxes(v: Any, shape: Sequence[int], labels: Mapping[int, str], where: Any) -> list:
    if not isinstance(v, list):
        raise AnnotationError(f"{where('boxes')}: expected a list of {{'class', 'start', 'end'}}, got {v!r}")
    out = []
    for j, box in enumerate(v):
        w = f"{where('boxes')}[{j}]"
        if not isinstance(box, dict) or set(box) != {"class", "start", "end"}:
            raise AnnotationError(f"{w}: expected {{'class': id or name, 'start': [row, col], 'end': [row, col]}}, "
                                  f"got {box!r}")
        cid = _class_id(box["class"], labels, w)
        start, end = _pair(box["start"], f"{w}.start", True), _pair(box["end"], f"{w}.end", True)
        if any(s >= e for s, e in zip(start, end)):
            raise AnnotationError(f"{w}: start {list(start)} must be above-left of end {list(end)} on both axes "
                                  "(end is exclusive; corners swapped or box empty?)")
        if any(s < 0 for s in start) or any(e > n for e, n in zip(end, shape)):
            raise AnnotationError(f"{w}: box {list(start)}-{list(end)} lies outside the {'x'.join(map(str, shape))} "
                                  "slice (rows and columns from 0; end at most the slice size)")
        out.append((cid, start, end))
    return out


def _record(rec: Mapping[str, Any], shape: Sequence[int], spacing, labels, has_label: bool, where: Any,
            allowed: set[str]) -> dict[str, Any]:
    unknown = set(rec) - allowed
    if unknown:
        raise AnnotationError(f"{where(sorted(unknown)[0])}: unknown field; expected some of {sorted(allowed)}")
    out: dict[str, Any] = {"size": _size(rec, shape, spacing, where)}
    out["boxes"] = _boxes(rec["boxes"], shape, labels, where) if "boxes" in rec else None
    if "classes" in rec:
        cl = rec["classes"]
        if not isinstance(cl, list):
            raise AnnotationError(f"{where('classes')}: expected a list of class ids or names, got {cl!r}")
        ids = [_class_id(c, labels, where("classes")) for c in cl]
        if len(set(ids)) != len(ids):
            raise AnnotationError(f"{where('classes')}: a class is listed twice in {cl!r}")
        out["classes"] = sorted(ids)
    else:
        out["classes"] = None
    if "centre" in rec:
        c = _pair(rec["centre"], where("centre"), False)
        if any(x < 0 or x > n - 1 for x, n in zip(c, shape)):
            raise AnnotationError(f"{where('centre')}: {list(c)} lies outside the {'x'.join(map(str, shape))} slice "
                                  f"(rows 0..{shape[0] - 1}, columns 0..{shape[1] - 1})")
        out["centre"] = c
    else:
        out["centre"] = None
    mask = rec.get("mask", False)
    if not isinstance(mask, bool):
        raise AnnotationError(f"{where('mask')}: expected true or false, got {mask!r}")
    if mask and not has_label:
        raise AnnotationError(f"{where('mask')}: the slice is marked as having a mask but the case has no 'label' file")
    out["mask"] = mask
    if out["boxes"] is not None and out["classes"] is not None:
        missing = {b[0] for b in out["boxes"]} - set(out["classes"])
        if missing:
            raise AnnotationError(f"{where('classes')}: classes {sorted(missing)} have boxes but are not listed as "
                                  "present")
    return out


def _resolve(v: Any, base: Path, where: str, allow_outside: bool) -> str:
    if not isinstance(v, str) or not v:
        raise AnnotationError(f"{where}: expected a file path (string), got {v!r}")
    p = Path(v).expanduser()
    full, root = Path(os.path.abspath(p if p.is_absolute() else base / p)), Path(os.path.abspath(base))
    if not allow_outside and not full.is_relative_to(root):
        raise AnnotationError(f"{where}: '{v}' lies outside the data folder {root}; use paths inside it "
                              "(or allow_outside=True)")
    if not full.is_file():
        raise AnnotationError(f"{where}: file '{v}' not found (looked for {full})")
    return str(full)


def _labels(desc: Mapping[str, Any], path: Path) -> dict[int, str]:
    raw_labels = desc.get("labels", {"0": "background", "1": "foreground"})
    if not isinstance(raw_labels, dict) or not all(isinstance(k, str) and k.isdigit() for k in raw_labels):
        raise AnnotationError(f"{path}: field 'labels' must map class ids ('0', '1', ...) to names, got {raw_labels!r}")
    labels = {int(k): str(v) for k, v in sorted(raw_labels.items(), key=lambda kv: int(kv[0]))}
    if 0 not in labels or sorted(labels) != list(range(len(labels))):
        raise AnnotationError(f"{path}: field 'labels' must number the classes 0..N-1 with 0 the background, "
                              f"got ids {sorted(labels)}")
    return labels


def annotation_labels(path: str | os.PathLike) -> dict[int, str]:
    """The class names of an annotation file (its ``labels``), read without checking its cases: what a network
    trained from the file predicts, also when it is applied to other data."""
    path = Path(path).expanduser()
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"annotation file '{path}' not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnnotationError(f"{path} cannot be read as JSON: {e}") from e
    if not isinstance(desc, dict):
        raise AnnotationError(f"{path}: expected a JSON object, got {type(desc).__name__}")
    return _labels(desc, path)


def class_names(annotation_file: str | os.PathLike | None, source: Any = None) -> dict[int, str]:
    """The classes a multi-class network predicts: those of the annotation file it is trained from
    (:func:`annotation_labels`), else the data source's (``source.labels``: ``dataset.json`` or ``labels.json``).
    Raises :class:`AnnotationError` when neither names them."""
    if annotation_file:
        return annotation_labels(annotation_file)
    labels = getattr(source, "labels", None)
    if not labels:
        raise AnnotationError(f"the classes of {getattr(source, 'root', 'the data')} are unknown: pass --class_names "
                              "\"{'0': 'background', '1': ...}\", or name them in dataset.json ('labels') or labels.json")
    return dict(labels)


def load_weak_annotations(path: str | os.PathLike | None, dataset_dir: str | os.PathLike | None = None,
                          default_slice_axis: int = 0, allow_outside: bool = False) -> WeakAnnotations:
    """Read and validate a weak-annotation file.

    Args:
        path: the JSON file (format ``weakseg-annotations/1``, ``docs/weak_annotations.md``).
        dataset_dir: the folder relative image/label paths start from (default: the file's folder).
        default_slice_axis: slice axis of 3D volumes when neither the file nor the case gives one.
        allow_outside: accept paths that leave ``dataset_dir`` (absolute or ``../``).

    Each training image's header is read to check slice indices, boxes, centres and sizes against its shape.

    Raises:
        AnnotationError: the first problem, naming the file, the case and the field.
    """
    if path is None or path == "":
        raise AnnotationError("no annotation file: weak-supervision methods read their weak labels from one; pass "
                              "--annotation_file weak.json (simulate one from masks with `python -m weakseg.annotations "
                              "simulate --dataset_dir ... --out weak.json`, see docs/weak_annotations.md)")
    path = Path(path).expanduser()
    if not path.is_file():
        raise AnnotationError(f"annotation file '{path}' not found")
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path} cannot be read: {e}") from e
    if not isinstance(desc, dict):
        raise AnnotationError(f"{path}: expected a JSON object with a 'training' list, got {type(desc).__name__}")
    unknown = set(desc) - _TOP_KEYS
    if unknown:
        raise AnnotationError(f"{path}: unknown top-level field '{sorted(unknown)[0]}'; expected some of "
                              f"{sorted(_TOP_KEYS)}")
    if desc.get("format", FORMAT) != FORMAT:
        raise AnnotationError(f"{path}: field 'format' is {desc['format']!r}; this version reads {FORMAT!r}")
    if not isinstance(desc.get("training"), list) or not desc["training"]:
        raise AnnotationError(f"{path}: field 'training' must be a non-empty list of cases")
    labels = _labels(desc, path)
    axis0 = desc.get("slice_axis", default_slice_axis)
    if axis0 not in (0, 1, 2):
        raise AnnotationError(f"{path}: field 'slice_axis' must be 0, 1 or 2, got {axis0!r}")
    base = Path(dataset_dir).expanduser() if dataset_dir is not None else path.parent
    out = WeakAnnotations(path=path, name=annotation_name(path), labels=labels)
    seen: dict[str, str] = {}
    for section in SECTIONS:
        if section not in desc:
            continue
        entries = desc[section]
        if not isinstance(entries, list):
            raise AnnotationError(f"{path}: field '{section}' must be a list of cases, got {type(entries).__name__}")
        cases = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise AnnotationError(f"{path}: {section}[{i}] must be an object with 'image', got {entry!r}")
            cid = entry.get("id")
            if cid is None:
                img = entry.get("image")
                cid = Path(img).name.removesuffix(".gz").rsplit(".", 1)[0] if isinstance(img, str) else f"#{i}"
            if not isinstance(cid, str) or not cid:
                raise AnnotationError(f"{path}: {section}[{i}], field 'id': expected a non-empty string, got {cid!r}")
            if cid in seen:
                raise AnnotationError(f"{path}: case '{cid}' appears twice ({seen[cid]} and {section}[{i}]); case ids "
                                      "must be unique")
            seen[cid] = f"{section}[{i}]"
            cases.append(_case(entry, cid, section, path, base, labels, axis0, allow_outside))
        out.sections[section] = cases
    return out


def _geometry(image: str, where: Any) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
    try:
        return image_geometry(image)
    except AnnotationError as e:
        raise AnnotationError(f"{where('image')}: {e}") from None
    except Exception as e:
        raise AnnotationError(f"{where('image')}: cannot read '{image}': {type(e).__name__}: {e}") from e


def _case(entry: dict, cid: str, section: str, path: Path, base: Path, labels, axis0: int,
          allow_outside: bool) -> dict[str, Any]:
    def where(fld=None, index=None):
        return _where(path, cid, index, fld)

    if "image" not in entry:
        raise AnnotationError(f"{where('image')}: missing; every case needs its image file")
    case: dict[str, Any] = {"id": cid, "image": _resolve(entry["image"], base, where("image"), allow_outside)}
    if "label" in entry:
        case["label"] = _resolve(entry["label"], base, where("label"), allow_outside)
    if section != "training":
        if "label" not in case:
            raise AnnotationError(f"{where('label')}: missing; {section} cases need a mask to be scored")
        extra = set(entry) & (_CASE_KEYS - {"id", "image", "label", "centre"})
        if extra:
            raise AnnotationError(f"{where(sorted(extra)[0])}: weak labels belong to 'training' cases, not {section} "
                                  "(only a 'centre' click, an input of click-based methods, may be given)")
        case["slices"] = []
        if "centre" in entry:  # the click a user gives at test time
            shape = _geometry(case["image"], where)[0]
            if len(shape) != 2:
                raise AnnotationError(f"{where('centre')}: a centre on a {section} case needs a 2D image, got shape "
                                      f"{shape}")
            case["ndim"] = 2
            case["slices"] = [{"index": None, **_record({"centre": entry["centre"]}, shape, None, labels, True,
                                                         lambda f: where(f), {"centre"})}]
        return case
    unknown = set(entry) - _CASE_KEYS
    if unknown:
        raise AnnotationError(f"{where(sorted(unknown)[0])}: unknown field; expected some of {sorted(_CASE_KEYS)}")
    shape, spacing = _geometry(case["image"], where)
    ndim = len(shape)
    if ndim not in (2, 3):
        raise AnnotationError(f"{where('image')}: expected a 2D image or a 3D volume, got shape {shape}")
    if "pixel_spacing" in entry:
        spacing = _pair(entry["pixel_spacing"], where("pixel_spacing"), False)
        if min(spacing) <= 0:
            raise AnnotationError(f"{where('pixel_spacing')}: expected positive numbers, got {list(spacing)}")
        spacing = tuple(spacing)
    case["ndim"] = ndim
    has_label = "label" in case
    if ndim == 2:
        if "slices" in entry:
            raise AnnotationError(f"{where('slices')}: the image is 2D ({shape}); put its weak labels on the case, "
                                  "not in 'slices'")
        if spacing is not None and len(spacing) > 2:
            spacing = spacing[:2]
        rec = _record({k: v for k, v in entry.items() if k in _CASE_2D_KEYS}, shape, spacing, labels, has_label,
                      lambda f: where(f), _CASE_2D_KEYS)
        case["slices"] = [{"index": None, **rec}]
        return case
    axis = entry.get("slice_axis", axis0)
    if axis not in (0, 1, 2):
        raise AnnotationError(f"{where('slice_axis')}: must be 0, 1 or 2, got {axis!r}")
    case["slice_axis"] = axis
    flat = set(entry) & _CASE_2D_KEYS
    if flat:
        raise AnnotationError(f"{where(sorted(flat)[0])}: the image is a 3D volume {shape}; weak labels go in "
                              "'slices': [{'index': k, ...}] along slice_axis")
    slices = entry.get("slices")
    if not isinstance(slices, list) or not slices:
        raise AnnotationError(f"{where('slices')}: a 3D case needs a non-empty list of annotated slices")
    plane = [n for a, n in enumerate(shape) if a != axis]
    plane_sp = [s for a, s in enumerate(spacing) if a != axis] if spacing is not None and len(spacing) == 3 else spacing
    recs, seen = [], set()
    for j, rec in enumerate(slices):
        if not isinstance(rec, dict) or "index" not in rec:
            raise AnnotationError(f"{where('slices')}[{j}]: expected an object with 'index', got {rec!r}")
        idx = rec["index"]
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < shape[axis]:
            raise AnnotationError(f"{where('index', idx)}: slice index {idx!r} outside the volume (axis {axis} has "
                                  f"{shape[axis]} slices, 0..{shape[axis] - 1})")
        if idx in seen:
            raise AnnotationError(f"{where('index', idx)}: slice listed twice")
        seen.add(idx)
        recs.append({"index": idx, **_record(rec, plane, plane_sp, labels, has_label,
                                              lambda f, i=idx: where(f, i), _SLICE_KEYS)})
    case["slices"] = recs
    return case
