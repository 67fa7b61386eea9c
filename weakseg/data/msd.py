"""Medical Segmentation Decathlon (MSD) folders -> volume-level splits -> in-memory 2D slice datasets."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weakseg.data.splits import split_by_volume
from weakseg.utils import telescopic_indices, telescopic_subset

__all__ = [
    "MSDSource",
    "load_msd_datalist",
    "load_folder_datalist",
    "load_dataset_labels",
    "split_by_volume",
    "volumes_to_slices",
    "make_synthetic_msd",
    "telescopic_subset",
    "telescopic_indices",
    "mark_annotated",
    "files_datalist",
    "image_files",
    "CheckedDataset",
    "SkipFailuresDataset",
]

logger = logging.getLogger("weakseg.data")

MSD_TASKS = ("Task04_Hippocampus",)


def load_msd_datalist(dataset_dir: str | os.PathLike, section: str = "training",
                      allow_outside: bool = False) -> list[dict[str, str]]:
    """
    Read ``dataset.json`` of an MSD-layout folder and return ``[{"image": path, "label": path}, ...]``
    (absolute paths) for ``section`` ("training": labelled cases, "test": images only). Every entry must be a
    path or an object of paths (strings); paths that leave the folder (absolute elsewhere, or ``../``) are refused
    unless ``allow_outside``.

    Raises ``FileNotFoundError`` naming the missing ``dataset.json`` or the first missing image/label file,
    and ``ValueError`` for a malformed ``dataset.json``.
    """
    root = Path(dataset_dir).expanduser().resolve()
    meta = root / "dataset.json"
    if not meta.is_file():
        raise FileNotFoundError(
            f"dataset_dir '{root}' has no dataset.json; expected an MSD-layout folder "
            "(dataset.json, imagesTr/, labelsTr/). Point --dataset_dir at e.g. .../Task04_Hippocampus."
        )
    try:
        with open(meta, encoding="utf-8") as f:
            desc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta} is not readable JSON: {e}") from e
    if section not in desc or not isinstance(desc[section], list):
        raise ValueError(f"{meta} has no list '{section}'; expected MSD keys 'training' and 'test'.")
    items = []
    for i, entry in enumerate(desc[section]):
        if not isinstance(entry, (str, dict)):
            raise ValueError(f"{meta}: {section}[{i}] must be a path or an object with 'image' (and 'label'), got "
                             f"{entry!r}")
        item = {"image": entry} if isinstance(entry, str) else dict(entry)
        for k, v in item.items():
            if not isinstance(v, str) or not v:
                raise ValueError(f"{meta}: {section}[{i}], field '{k}': expected a file path (string), got {v!r}")
            p = Path(os.path.abspath(root / v))  # symbolic links inside the data folder stay inside it
            if not allow_outside and not p.is_relative_to(root):
                raise ValueError(f"{meta}: {section}[{i}], field '{k}': '{v}' lies outside the data folder {root}; "
                                 "use paths inside it (or allow_outside=True)")
            if not p.is_file():
                raise FileNotFoundError(f"{meta} lists {k} '{v}' but {p} does not exist.")
            item[k] = str(p)
        items.append(item)
    if not items:
        raise ValueError(f"{meta}: section '{section}' is empty.")
    return items


NIFTI_SUFFIXES = (".nii.gz", ".nii")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + RASTER_SUFFIXES
"""File suffixes of the images the package reads: NIfTI (2D or 3D) and 2D raster formats."""


def load_folder_datalist(dataset_dir: str | os.PathLike) -> list[dict[str, str]]:
    """``[{"image", "label"}, ...]`` (absolute paths, sorted by name) of a folder laid out as ``images/`` and
    ``labels/`` (or ``masks/``) holding files of the same names: 2D images (PNG, JPEG, BMP, TIFF, 2D NIfTI) or 3D
    NIfTI volumes, labels as class ids (binary 8-bit masks may use 0/255).

    Raises ``FileNotFoundError`` naming the folder when the layout is not found or empty, or the image whose
    label is missing.
    """
    root = Path(dataset_dir).expanduser().resolve()
    img_dir = root / "images"
    lab_dir = next((root / n for n in ("labels", "masks") if (root / n).is_dir()), None)
    if not img_dir.is_dir() or lab_dir is None:
        raise FileNotFoundError(
            f"dataset_dir '{root}' is neither an MSD folder (dataset.json, imagesTr/, labelsTr/) nor an images/ + "
            "labels/ (or masks/) folder of files with the same names; see the README, 'Use your own data'."
        )
    items = []
    for img in sorted(p for p in img_dir.iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES)):
        lab = lab_dir / img.name
        if not lab.is_file():
            raise FileNotFoundError(f"image {img} has no label: expected {lab}")
        items.append({"image": str(img), "label": str(lab)})
    if not items:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {img_dir}")
    return items


def load_dataset_labels(dataset_dir: str | os.PathLike) -> dict[int, str] | None:
    """Class id -> name: the ``"labels"`` of an MSD ``dataset.json``, of a ``labels.json`` (``{"0": "background",
    "1": "lung"}``) beside ``images/``; ``None`` when the folder names no classes."""
    root = Path(dataset_dir).expanduser()
    for name, key in (("dataset.json", "labels"), ("labels.json", None)):
        f = root / name
        if f.is_file():
            try:
                desc = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{f} is not readable JSON: {e}") from e
            lab = desc.get(key) if key else desc
            if isinstance(lab, dict):
                try:
                    return {int(k): str(v) for k, v in sorted(lab.items(), key=lambda kv: int(kv[0]))}
                except ValueError as e:
                    raise ValueError(f"{f}: class ids must be integers ('0', '1', ...), got {sorted(lab)}") from e
    return None


def mark_annotated(
    items: Sequence[Mapping[str, Any]],
    m: int | str | None,
    seed: int = 0,
    mask_key: str = "label",
    flag_key: str = "annotated",
    name: str = "m",
) -> list[dict[str, Any]]:
    """
    Mixed supervision: copies of ``items`` in which the telescopic ``m``-subset (the slices
    :func:`telescopic_subset` picks for pre-training with the same ``seed``) keeps its mask and gets
    ``flag_key`` = 1, and every other item gets ``flag_key`` = 0 and an all-zero mask, so batches still collate
    and no mask outside the subset can reach a loss. A loss reads the flag to ignore the zero masks
    (:py:class:`weakseg.losses.SizeAndMaskLoss`). ``name``: the caller's argument name for error messages.
    """
    keep = set(telescopic_indices(len(items), m, seed, name=name))
    out = []
    for i, item in enumerate(items):
        if mask_key not in item:
            raise KeyError(f"mark_annotated: item {i} has no '{mask_key}' (keys: {sorted(item)}).")
        d = dict(item)
        if i not in keep:  # same type as the kept masks, so batches collate
            v = d[mask_key]
            d[mask_key] = torch.zeros_like(v) if torch.is_tensor(v) else np.zeros_like(np.asarray(v))
        d[flag_key] = np.float32(i in keep)
        out.append(d)
    return out


def image_files(folder: str | os.PathLike) -> list[str]:
    """The image files (:data:`IMAGE_SUFFIXES`: NIfTI volumes or 2D images) directly in ``folder``, sorted; a
    single file is returned as a one-item list."""
    p = Path(folder).expanduser()
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        return []
    return sorted(str(f) for f in p.iterdir() if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES))


def files_datalist(files: Sequence[str | os.PathLike], source: str | os.PathLike = "input") -> list[dict[str, str]]:
    """``[{"image": path}, ...]`` for inference; raises ``FileNotFoundError`` naming ``source`` when empty or a
    file is missing, ``ValueError`` naming a file that is not a NIfTI volume or 2D image."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise FileNotFoundError(f"no .nii/.nii.gz volumes or 2D images ({', '.join(RASTER_SUFFIXES)}) found in "
                                f"{source}; expected a folder or a list of image files.")
    out = []
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"input volume '{f}' does not exist.")
        if not str(f).lower().endswith(IMAGE_SUFFIXES):
            raise ValueError(f"input '{f}' is not an image file: expected NIfTI ({', '.join(NIFTI_SUFFIXES)}) or a "
                             f"2D image ({', '.join(RASTER_SUFFIXES)}).")
        out.append({"image": str(Path(f).resolve())})
    return out


def _root_cause(e: BaseException) -> BaseException:
    while e.__cause__ is not None:
        e = e.__cause__
    return e


def _files(item: Any) -> str:
    if isinstance(item, dict):
        return ", ".join(f"{k}={v}" for k, v in item.items() if isinstance(v, (str, os.PathLike)))
    return str(item)


class CheckedDataset:
    """
    MONAI ``Dataset`` whose errors name the files of the failing item and the root cause (MONAI wraps transform
    errors in long "applying transform" chains), e.g. for a truncated ``.nii.gz`` during inference.
    """

    def __new__(cls, data: Sequence, transform: Callable | None = None):
        from monai.data import Dataset

        class _Checked(Dataset):
            def _transform(self, index: int):
                try:
                    return super()._transform(index)
                except Exception as e:
                    root = _root_cause(e)
                    raise RuntimeError(
                        f"failed to load ({_files(self.data[index])}): {type(root).__name__}: {root}"
                    ) from e

        return _Checked(data=data, transform=transform)


class SkipFailuresDataset(torch.utils.data.IterableDataset):
    """
    Inference data that goes on past a bad input: each item of ``data`` is transformed in turn (``transform``,
    e.g. load + checks + normalisation); an item that fails is skipped and recorded in :attr:`failures`
    (``{"file": ..., "reason": ...}``, the root cause of MONAI's "applying transform" chain) with an error log
    line, and the next one is served. So one truncated volume does not stop a folder: every other input is
    still predicted. After the run, :meth:`raise_failures` writes the report and fails the workflow if any input
    failed. With DataLoader workers, items are shared out by index.
    """

    def __init__(self, data: Sequence, transform: Callable | None = None) -> None:
        super().__init__()
        self.data, self.transform = list(data), transform
        self.failures: list[dict[str, str]] = []

    def __iter__(self):
        from monai.transforms import apply_transform

        info = torch.utils.data.get_worker_info()
        for i, item in enumerate(self.data):
            if info is not None and i % info.num_workers != info.id:
                continue
            try:
                yield apply_transform(self.transform, dict(item)) if self.transform is not None else dict(item)
            except Exception as e:
                root = _root_cause(e)
                failure = {"file": _files(item), "reason": f"{type(root).__name__}: {root}"}
                self.failures.append(failure)
                logger.error("skipped input (%s): %s", failure["file"], failure["reason"])

    def raise_failures(self, report_dir: str | os.PathLike, name: str = "failed_inputs.json") -> None:
        """Write ``<report_dir>/<name>`` (the failed inputs, an empty list when none failed) and raise a
        ``RuntimeError`` naming them, so that the workflow exits non-zero, when any input failed."""
        from weakseg.data.writers import write_json_atomic  # writers imports this module

        report = write_json_atomic(Path(report_dir) / name, self.failures)
        if self.failures:
            files = "; ".join(f["file"] for f in self.failures)
            raise RuntimeError(f"{len(self.failures)} of {len(self.data)} inputs could not be processed ({files}); "
                               f"the others were written. Report: {report}")


def volumes_to_slices(datalist: Sequence[dict], transform: Callable) -> list[dict]:
    """
    Apply a volume-level ``transform`` that ends with :py:class:`weakseg.transforms.SliceVolumed` to every volume
    and flatten the results into one list of slice dictionaries (kept in memory: the MSD volumes are small).

    Any failure is re-raised naming the volume's files, before training starts. A volume that gives no slice
    (e.g. an all-background label) is named in a warning; no slice at all from a non-empty list is an error.
    """
    slices: list[dict] = []
    for item in datalist:
        try:
            out = transform(dict(item))
        except Exception as e:  # name the files and the root cause: MONAI wraps errors in "applying transform"
            root = _root_cause(e)
            raise RuntimeError(f"failed to prepare volume ({_files(item)}): {type(root).__name__}: {root}") from e
        out = out if isinstance(out, list) else [out]
        if not out:
            logger.warning("volume %s gives no slice (no slice with enough foreground)", item.get("label", item))
        slices.extend(out)
    if datalist and not slices:
        raise ValueError(
            f"none of the {len(datalist)} volumes gives a slice with enough foreground (e.g. "
            f"{datalist[0].get('label', datalist[0])}); check the labels or lower min_foreground."
        )
    return slices


def strip_meta(items: Sequence[dict], dtype: torch.dtype | None = torch.float32) -> list[dict]:
    """Copies of the dictionaries with every tensor/array turned into a plain ``torch.Tensor`` (MetaTensor meta
    data dropped) of ``dtype`` (None keeps it), once, before training: per-sample MONAI transforms on MetaTensors
    spend most of their time on meta-data bookkeeping, which a training loop over in-memory slices does not need."""
    out = []
    for d in items:
        e = {}
        for k, v in d.items():
            if isinstance(v, (torch.Tensor, np.ndarray)):
                t = v.as_tensor() if hasattr(v, "as_tensor") else torch.as_tensor(v)
                e[k] = t.to(dtype) if dtype is not None else t
            else:
                e[k] = v
        out.append(e)
    return out


def make_synthetic_msd(root: str | os.PathLike, num_volumes: int = 24, seed: int = 0) -> Path:
    """
    Write a small hippocampus-like phantom set in MSD layout (``dataset.json``, ``imagesTr``, ``labelsTr``):
    curved noisy ellipsoids of about 35x50x36 voxels, labels 1 (head) and 2 (body), float32 images.
    Used when no real data is present and none can be downloaded.
    """
    import nibabel as nib

    root = Path(root)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    training = []
    shape = (36, 50, 36)
    zz, yy, xx = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    for i in range(num_volumes):
        c = np.array(shape, dtype=np.float32) / 2 + rng.uniform(-3, 3, size=3)
        r = np.array([rng.uniform(5, 8), rng.uniform(14, 19), rng.uniform(5, 8)])
        bend = rng.uniform(-0.08, 0.08)
        dz = zz - c[0] - bend * (yy - c[1]) ** 2 / 4
        inside = (dz / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1.0
        label = np.zeros(shape, dtype=np.uint8)
        label[inside & (yy < c[1])] = 1
        label[inside & (yy >= c[1])] = 2
        img = 40 + 25 * rng.rand() + 60 * inside + 12 * rng.randn(*shape)
        img += 10 * np.sin(xx / 7 + rng.rand() * 6)  # smooth background structure
        name = f"phantom_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(img.astype(np.float32), np.eye(4)), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    desc = {
        "name": "SyntheticHippocampusPhantom",
        "description": "Synthetic phantom written by weakseg.data.make_synthetic_msd (NOT real data)",
        "labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
        "numTraining": num_volumes,
        "numTest": 0,
        "training": training,
        "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(desc, indent=2))
    return root


class MSDSource:
    """
    Locate an MSD task folder, downloading it with MONAI's ``DecathlonDataset`` when absent, or (as a last
    resort, when ``synthetic_fallback``) generating a synthetic phantom set so that the pipeline still runs.

    After construction: ``root`` (folder with ``dataset.json``), ``synthetic`` (bool) and ``datalist(section)``.

    Resolution order for ``dataset_dir``:
      0. ``dataset_dir/images`` with ``labels`` (or ``masks``) -> the generic folder layout of
         :func:`load_folder_datalist` (2D images or 3D volumes; no ``dataset.json`` needed);
      1. ``dataset_dir/dataset.json`` exists -> use it;
      2. ``dataset_dir/<task>/dataset.json`` exists -> use it;
      3. ``download``: ``DecathlonDataset(root_dir=..., task=task, download=True)`` into the parent of
         ``dataset_dir`` when its name is ``task``, else into ``dataset_dir``;
      4. ``synthetic_fallback``: write a phantom set to ``synthetic_dir`` and warn loudly;
      5. otherwise raise ``FileNotFoundError`` saying how to point ``dataset_dir`` at a local copy.
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        task: str = "Task04_Hippocampus",
        download: bool = True,
        synthetic_fallback: bool = False,
        synthetic_dir: str | os.PathLike | None = None,
        synthetic_volumes: int = 24,
        seed: int = 0,
    ) -> None:
        self.task = task
        self.synthetic = False
        self.layout = "msd"
        dataset_dir = Path(dataset_dir).expanduser()
        if (dataset_dir / "images").is_dir() and not (dataset_dir / "dataset.json").is_file():
            self.root, self.layout = dataset_dir.resolve(), "folder"
            return
        for cand in (dataset_dir, dataset_dir / task):
            if (cand / "dataset.json").is_file():
                self.root = cand.resolve()
                return
        reason = f"no dataset.json in '{dataset_dir.resolve()}' or '{(dataset_dir / task).resolve()}'"
        if download:
            dl_root = dataset_dir.parent if dataset_dir.name == task else dataset_dir
            try:
                self.root = self._download(dl_root)
                return
            except Exception as e:  # offline, proxy, disk...
                reason += f"; download of {task} failed: {e}"
                logger.warning("could not download %s: %s", task, e)
        if synthetic_fallback:
            target = Path(synthetic_dir) if synthetic_dir else dataset_dir / "synthetic_phantom"
            if not (target / "dataset.json").is_file():
                make_synthetic_msd(target, num_volumes=synthetic_volumes, seed=seed)
            banner = "#" * 100
            logger.warning(
                "\n%s\n# NO REAL DATA: %s.\n# Training on a SYNTHETIC phantom set in %s.\n"
                "# Pass --dataset_dir /path/to/%s for real results.\n%s",
                banner,
                reason,
                target.resolve(),
                task,
                banner,
            )
            self.root = target.resolve()
            self.synthetic = True
            return
        raise FileNotFoundError(
            f"{reason}. Point dataset_dir at a local copy of {task} (the folder holding dataset.json, "
            f"imagesTr/ and labelsTr/), e.g. `--dataset_dir /data/{task}`, or at a folder of images/ and labels/ (or "
            "masks/) with files of the same names, or enable download."
        )

    def _download(self, root_dir: Path) -> Path:
        from monai.apps import DecathlonDataset

        if self.task not in MSD_TASKS:
            raise ValueError(f"download supports {MSD_TASKS}, got task={self.task!r}")
        root_dir.mkdir(parents=True, exist_ok=True)
        DecathlonDataset(
            root_dir=str(root_dir), task=self.task, section="training", download=True, cache_num=0, progress=True
        )
        return (root_dir / self.task).resolve()

    @property
    def data_tag(self) -> str:
        """``"synthetic"`` or ``"real"``, logged as the MLflow run tag ``data``."""
        return "synthetic" if self.synthetic else "real"

    @property
    def labels(self) -> dict[int, str] | None:
        """Class id -> name (:func:`load_dataset_labels`; ``None`` when the folder names no classes)."""
        return load_dataset_labels(self.root)

    def datalist(self, section: str = "training") -> list[dict[str, str]]:
        """The labelled cases (``section="training"``) or, for MSD folders, the ``"test"`` images."""
        if self.layout == "folder":
            if section != "training":
                raise ValueError(f"{self.root}: an images/ + labels/ folder has only labelled cases; got section "
                                 f"{section!r}")
            return load_folder_datalist(self.root)
        return load_msd_datalist(self.root, section)
