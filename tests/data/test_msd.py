import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

import weakseg
from weakseg.data import MSDSource, load_msd_datalist, make_synthetic_msd, split_by_volume, telescopic_subset

from ..conftest import CONFIGS


def volume_transforms(**overrides):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    for k, v in overrides.items():
        parser[k] = v
    return parser.get_parsed_content("volume_transforms")


def expected_kept(label_path: str, min_fg: float = 0.01) -> int:
    """Independent count with nibabel + numpy: axis-0 slices with >= min_fg foreground (labels 1 and 2)."""
    lab = np.asanyarray(nib.load(label_path).dataobj)
    frac = (lab > 0).reshape(lab.shape[0], -1).mean(1)
    return int((frac >= min_fg).sum())


class TestRealHippocampus:
    def test_slice_count_split_and_shape(self, hippo_dir):
        items = load_msd_datalist(hippo_dir)
        assert len(items) == 208
        expected = sum(expected_kept(it["label"]) for it in items)
        slices = weakseg.data.volumes_to_slices(items, volume_transforms())
        print(f"\n208 volumes -> {len(slices)} axis-0 slices with >= 1% foreground (independent count {expected})")
        assert len(slices) == expected
        assert all(tuple(s["image"].shape) == (1, 48, 32) and tuple(s["label"].shape) == (1, 48, 32) for s in slices)
        assert set(np.unique(np.concatenate([np.unique(np.asarray(s["label"])) for s in slices]))) == {0.0, 1.0}
        # split by volume: disjoint, complete, and no volume contributes slices to two splits
        sp = split_by_volume(items, (0.7, 0.1, 0.2), seed=0)
        names = {k: {d["image"] for d in v} for k, v in sp.items()}
        assert not (names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"])
        assert sum(len(v) for v in names.values()) == 208
        assert (len(sp["train"]), len(sp["val"]), len(sp["test"])) == (145, 21, 42)
        by_split = {k: {s["volume_id"] for s in slices if s["volume_id"] in v} for k, v in names.items()}
        assert sum(len(v) for v in by_split.values()) == 208
        # seeded and independent of dataset.json order
        assert split_by_volume(items[::-1], (0.7, 0.1, 0.2), seed=0) == sp
        assert split_by_volume(items, (0.7, 0.1, 0.2), seed=1) != sp

    def test_split_by_volume_keeps_the_published_splits(self):
        """split_by_volume runs on MONAI's partition_dataset; every split must stay the one the results were
        measured on: the first n_train / n_val / n_test entries of RandomState(seed).permutation(n) over the
        volumes sorted by path, with n_val, n_test rounded and at least 1 from 3 volumes on."""
        def reference(items, fractions, seed):
            fr = np.asarray(fractions, float) / sum(fractions)
            n = len(items)
            order = sorted(items, key=lambda d: d["image"])
            n_val, n_test = int(round(fr[1] * n)), int(round(fr[2] * n))
            if n >= 3:
                n_val, n_test = (max(n_val, 1) if fr[1] > 0 else 0), (max(n_test, 1) if fr[2] > 0 else 0)
            perm = np.random.RandomState(seed).permutation(n)
            cut = [0, n - n_val - n_test, n - n_test, n]
            return {k: [order[i] for i in sorted(perm[cut[j]:cut[j + 1]])] for j, k in enumerate(("train", "val", "test"))}

        for n in (1, 2, 3, 7, 24, 60, 208):
            items = [{"image": f"v{i:03d}.nii.gz"} for i in range(n)][::-1]
            for seed in (0, 1, 5):
                for fr in ((0.7, 0.1, 0.2), (0.5, 0.25, 0.25), (0.8, 0.2, 0.0), (1, 0, 0)):
                    assert split_by_volume(items, fr, seed) == reference(items, fr, seed), (n, seed, fr)

    def test_per_volume_normalisation_mixed_dtypes(self, hippo_dir):
        items = load_msd_datalist(hippo_dir)
        dtypes = {}
        for it in items:
            dtypes.setdefault(nib.load(it["image"]).get_data_dtype().name, it)
            if len(dtypes) == 2:
                break
        assert set(dtypes) == {"uint8", "float32"}
        vt = volume_transforms(min_foreground=0.0)
        for it in dtypes.values():
            sl = vt(dict(it))
            vol = np.stack([np.asarray(s["image"]) for s in sl])
            raw = np.asanyarray(nib.load(it["image"]).dataobj).astype(np.float64)
            # z-score over the whole volume (before cropping), so compare statistics of the uncropped volume
            full = volume_transforms(min_foreground=0.0, spatial_size=list(raw.shape[1:]))(dict(it))
            v = np.stack([np.asarray(s["image"]) for s in full])
            assert abs(v.mean()) < 1e-4 and abs(v.std() - 1) < 1e-3
            assert vol.shape[1:] == (1, 48, 32)


class TestSplitsAndSubsets:
    def test_telescopic(self):
        items = list(range(100))
        a, b = telescopic_subset(items, 8, seed=3), telescopic_subset(items, 16, seed=3)
        assert len(a) == 8 and len(b) == 16 and set(a) <= set(b)
        assert telescopic_subset(items, None) == items == telescopic_subset(items, "All") == telescopic_subset(items, 500)
        with pytest.raises(ValueError, match="m must be >= 1, got 0"):
            telescopic_subset(items, 0)
        for bad in ("half", "None", True, 2.0):
            with pytest.raises(ValueError, match="subset size m_train must be an integer, None or 'all'"):
                telescopic_subset(items, bad, name="m_train")

    def test_mark_annotated(self):
        from weakseg.data import mark_annotated

        items = [{"label": np.full((1, 2, 3), i + 1.0), "i": i} for i in range(30)]
        out = mark_annotated(items, 7, seed=5)
        keep = [d["i"] for d in telescopic_subset(items, 7, seed=5)]
        assert [d["i"] for d in out if d["annotated"] == 1] == keep
        for d in out:
            want = d["i"] + 1.0 if d["i"] in keep else 0.0
            assert np.all(d["label"] == want) and d["label"].shape == (1, 2, 3)
        assert items[0]["label"][0, 0, 0] == 1.0 and "annotated" not in items[0]  # inputs untouched
        assert all(d["annotated"] == 1 for d in mark_annotated(items, "all"))
        t = mark_annotated([{"label": torch.ones(1, 2)} for _ in range(4)], 2, seed=0)
        assert all(torch.is_tensor(d["label"]) for d in t) and sum(float(d["label"].sum()) for d in t) == 4.0
        with pytest.raises(KeyError, match="item 1 has no 'label'"):
            mark_annotated([{"label": np.zeros(1)}, {"image": 1}], 1)

    def test_bad_fractions(self):
        with pytest.raises(ValueError, match="fractions"):
            split_by_volume([{"image": "a"}], (0.5, 0.5))


def _write_case(root: Path, name: str, img: np.ndarray, lab: np.ndarray):
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(img, np.eye(4)), str(root / "imagesTr" / name))
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "labelsTr" / name))
    return {"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"}


def _dataset(root: Path, cases):
    (root / "dataset.json").write_text(json.dumps({"training": cases, "test": []}))
    return root


class TestBadInput:
    def test_missing_dataset_json(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"no dataset\.json.*--dataset_dir"):
            MSDSource(tmp_path, download=False, synthetic_fallback=False)

    def test_missing_nifti_named(self, tmp_path):
        c = _write_case(tmp_path, "a.nii.gz", np.zeros((4, 8, 8), np.float32), np.zeros((4, 8, 8), np.uint8))
        _dataset(tmp_path, [c, {"image": "./imagesTr/gone.nii.gz", "label": "./labelsTr/gone.nii.gz"}])
        with pytest.raises(FileNotFoundError, match="gone.nii.gz"):
            load_msd_datalist(tmp_path)

    def test_datalist_entries_are_type_checked_and_stay_inside_the_folder(self, tmp_path):
        root = tmp_path / "ds"
        c = _write_case(root, "a.nii.gz", np.zeros((4, 8, 8), np.float32), np.zeros((4, 8, 8), np.uint8))
        outside = _write_case(tmp_path, "b.nii.gz", np.zeros((4, 8, 8), np.float32), np.zeros((4, 8, 8), np.uint8))
        _dataset(root, [c, {"image": 3, "label": c["label"]}])
        with pytest.raises(ValueError, match=r"training\[1\], field 'image': expected a file path \(string\), got 3"):
            load_msd_datalist(root)
        _dataset(root, [c, 7])
        with pytest.raises(ValueError, match=r"training\[1\] must be a path or an object"):
            load_msd_datalist(root)
        up = {k: "../" + v[2:] for k, v in outside.items()}  # ../imagesTr/b.nii.gz exists, outside the folder
        _dataset(root, [c, up])
        with pytest.raises(ValueError, match=r"training\[1\], field 'image': '../imagesTr/b.nii.gz' lies outside"):
            load_msd_datalist(root)
        assert len(load_msd_datalist(root, allow_outside=True)) == 2
        _dataset(root, [c, {k: str((tmp_path / v).resolve()) for k, v in outside.items()}])  # absolute, elsewhere
        with pytest.raises(ValueError, match="lies outside the data folder"):
            load_msd_datalist(root)

    def test_unreadable_nifti_named(self, tmp_path):
        c = _write_case(tmp_path, "a.nii.gz", np.zeros((4, 8, 8), np.float32), np.zeros((4, 8, 8), np.uint8))
        (tmp_path / "imagesTr" / "a.nii.gz").write_bytes(b"\x1f\x8b\x08 this is not a nifti")
        items = load_msd_datalist(_dataset(tmp_path, [c]))
        with pytest.raises(RuntimeError, match=r"imagesTr/a\.nii\.gz"):
            weakseg.data.volumes_to_slices(items, volume_transforms())

    def test_shape_mismatch_named(self, tmp_path):
        lab = np.zeros((4, 8, 8), np.uint8)
        lab[1, 2:5, 2:5] = 1
        c = _write_case(tmp_path, "b.nii.gz", np.random.rand(4, 8, 9).astype(np.float32), lab)
        items = load_msd_datalist(_dataset(tmp_path, [c]))
        with pytest.raises(RuntimeError, match=r"imagesTr/b\.nii\.gz.*same shape"):
            weakseg.data.volumes_to_slices(items, volume_transforms())

    def test_label_outside_mapping_named(self, tmp_path):
        lab = np.zeros((4, 8, 8), np.uint8)
        lab[1, 2:5, 2:5] = 3
        c = _write_case(tmp_path, "c.nii.gz", np.random.rand(4, 8, 8).astype(np.float32), lab)
        items = load_msd_datalist(_dataset(tmp_path, [c]))
        with pytest.raises(RuntimeError, match=r"labelsTr/c\.nii\.gz.*outside the mapping"):
            weakseg.data.volumes_to_slices(items, volume_transforms())


class TestSyntheticFallback:
    def test_download_failure_falls_back_to_phantom(self, tmp_path, monkeypatch):
        def fail(self, root):
            raise ConnectionError("no network")

        monkeypatch.setattr(MSDSource, "_download", fail)
        src = MSDSource(tmp_path / "Task04_Hippocampus", download=True, synthetic_fallback=True,
                        synthetic_dir=tmp_path / "phantom", synthetic_volumes=4)
        assert src.synthetic and src.data_tag == "synthetic"
        items = src.datalist()
        assert len(items) == 4
        slices = weakseg.data.volumes_to_slices(items, volume_transforms())
        assert len(slices) > 20 and tuple(slices[0]["image"].shape) == (1, 48, 32)

    def test_finds_task_subfolder(self, tmp_path):
        make_synthetic_msd(tmp_path / "Task04_Hippocampus", num_volumes=2)
        src = MSDSource(tmp_path, download=False)
        assert src.root == (tmp_path / "Task04_Hippocampus").resolve() and not src.synthetic


def test_strip_meta_gives_plain_float_tensors():
    from monai.data import MetaTensor

    from weakseg.data import strip_meta

    items = [{"image": MetaTensor(torch.arange(6, dtype=torch.uint8).reshape(1, 2, 3), meta={"x": 1}),
              "label": np.ones((1, 2, 3), dtype=np.int64), "id": "a"}]
    (out,) = strip_meta(items)
    assert type(out["image"]) is torch.Tensor and out["image"].dtype == torch.float32
    assert torch.equal(out["image"], torch.arange(6.0).reshape(1, 2, 3))
    assert type(out["label"]) is torch.Tensor and out["label"].dtype == torch.float32 and out["id"] == "a"
    assert isinstance(items[0]["image"], MetaTensor)  # the input is left alone


def test_inference_inputs_are_checked_and_named(tmp_path):
    """A missing file or one that is no image is named before any work; a folder gives its image files sorted."""
    from weakseg.data import files_datalist, image_files

    (tmp_path / "b.nii.gz").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [Path(f).name for f in image_files(tmp_path)] == ["a.png", "b.nii.gz"]
    assert files_datalist(image_files(tmp_path / "b.nii.gz")) == [{"image": str((tmp_path / "b.nii.gz").resolve())}]
    with pytest.raises(FileNotFoundError, match="missing.nii.gz' does not exist"):
        files_datalist([str(tmp_path / "missing.nii.gz")])
    with pytest.raises(ValueError, match=r"notes.txt' is not an image file: expected NIfTI"):
        files_datalist([str(tmp_path / "notes.txt")])
    with pytest.raises(FileNotFoundError, match="no .nii/.nii.gz volumes or 2D images"):
        files_datalist(image_files(tmp_path / "empty"), source=tmp_path / "empty")
