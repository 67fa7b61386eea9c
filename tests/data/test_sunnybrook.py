"""Sunnybrook LV loader on the real DICOM + contour files, the ACDC-style NIfTI path, and bad input."""

import shutil
from pathlib import Path
from collections import Counter

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from weakseg.data import (
    LoadLVSliced,
    SunnybrookSource,
    load_sunnybrook_datalist,
    lv_slices,
    nifti_lv_datalist,
    read_contour,
    read_dicom_slice,
    split_by_patient,
)
from weakseg.transforms import polygon_to_mask


@pytest.fixture(scope="module")
def items(sunnybrook_dir):
    return load_sunnybrook_datalist(sunnybrook_dir)


def test_datalist_matches_the_files(items, sunnybrook_dir):
    # SOURCE.md: i-contours per patient 18/18/20/22 (SCD0000401 held out)
    assert Counter(it["patient"] for it in items) == {"SCD0000101": 18, "SCD0000201": 18, "SCD0000301": 20,
                                                     "SCD0000501": 22}
    first = items[0]
    num = int(first["image"].rsplit("/", 1)[1].split(".")[0])
    assert first["contour"].endswith(f"IM-0001-{num:04d}-icontour-manual.txt")
    assert len(load_sunnybrook_datalist(sunnybrook_dir, contour="o")) == 37
    src = SunnybrookSource(sunnybrook_dir).datalist()  # the source resolves symlinks in the root
    assert [it["id"] for it in src] == [it["id"] for it in items]
    assert all(Path(a["image"]).samefile(b["image"]) for a, b in zip(src, items))


def test_load_slice_image_mask_spacing(items):
    it = items[5]
    d = LoadLVSliced()(it)
    ds = pydicom.dcmread(it["image"])
    assert d["image"].shape == (1, 256, 256) and d["label"].shape == (1, 256, 256)
    np.testing.assert_array_equal(d["image"][0].numpy(), ds.pixel_array.astype(np.float32))
    assert d["spacing"].tolist() == pytest.approx([float(v) for v in ds.PixelSpacing])
    poly = read_contour(it["contour"])  # (row, col) = (y, x) of the file
    raw = np.loadtxt(it["contour"])
    np.testing.assert_array_equal(poly, raw[:, ::-1])
    assert torch.equal(d["label"][0] > 0, polygon_to_mask(torch.as_tensor(poly), (256, 256)))
    # the filled area is the polygon's area up to its boundary pixels (shoelace formula)
    x, y = raw[:, 0], raw[:, 1]
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    perimeter = np.linalg.norm(raw - np.roll(raw, -1, 0), axis=1).sum()
    assert abs(float(d["label"].sum()) - shoelace) < 0.5 * perimeter
    assert set(d["label"].unique().tolist()) == {0.0, 1.0}


def test_lv_slices_and_patient_split(items):
    data = lv_slices(items[:20], (160, 160))
    assert len(data) == 20
    for d, it in zip(data, items[:20]):
        assert d["image"].shape == (1, 160, 160)
        r, c = (int(round(float(v))) for v in d["centre"])
        assert d["label"][0, r, c] == 1  # the centre is inside the LV
        full = LoadLVSliced()(it)["image"][0]
        z = (full - full.mean()) / full.std(unbiased=False)  # z-scored over the whole slice, then centre crop
        torch.testing.assert_close(d["image"][0], z[48:208, 48:208], atol=1e-4, rtol=1e-4)
    split = split_by_patient(items, (0.5, 0.25, 0.25), seed=0)
    pats = {k: {it["patient"] for it in v} for k, v in split.items()}
    assert sum(len(v) for v in split.values()) == len(items)
    assert len(pats["train"]) == 2 and len(pats["val"]) == 1 and len(pats["test"]) == 1
    assert not (pats["train"] & pats["val"]) and not (pats["train"] & pats["test"]) and not (pats["val"] & pats["test"])
    with pytest.raises(ValueError, match="cut by"):
        lv_slices(items[:1], (40, 40))


def test_nifti_acdc_style_path_gives_the_same_slices(items, tmp_path):
    loaded = [LoadLVSliced()(it) for it in items[:3]]
    vol = np.stack([d["image"][0].numpy() for d in loaded], -1)
    gt = np.stack([d["label"][0].numpy() * 3 for d in loaded], -1).astype(np.uint8)  # LV = 3 as in ACDC
    gt[:5, :5, :] = 1  # another structure, not the LV
    gt[..., 1] = np.where(gt[..., 1] == 3, 2, gt[..., 1])  # slice 1 has no LV
    aff = np.diag([1.367188, 1.367188, 10.0, 1.0])
    nib.save(nib.Nifti1Image(vol, aff), tmp_path / "patient001_frame01.nii.gz")
    nib.save(nib.Nifti1Image(gt, aff), tmp_path / "patient001_frame01_gt.nii.gz")
    lst = nifti_lv_datalist([(str(tmp_path / "patient001_frame01.nii.gz"), str(tmp_path / "patient001_frame01_gt.nii.gz"))])
    assert [it["slice"] for it in lst] == [0, 2] and lst[0]["patient"] == "patient001"
    for it, ref in zip(lst, (loaded[0], loaded[2])):
        d = LoadLVSliced()(it)
        assert torch.equal(d["label"], ref["label"])
        assert torch.equal(d["image"], ref["image"])
        assert d["spacing"].tolist() == pytest.approx([1.367188, 1.367188])
    bad = vol.copy()
    bad[10, 10, 2] = np.nan
    nib.save(nib.Nifti1Image(bad, aff), tmp_path / "nan_image.nii.gz")
    with pytest.raises(ValueError, match=r"nan_image.nii.gz contains NaN or Inf"):
        LoadLVSliced()({"image": str(tmp_path / "nan_image.nii.gz"), "label": str(tmp_path / "patient001_frame01_gt.nii.gz"),
                        "slice": 2})
    nib.save(nib.Nifti1Image(gt[:100], aff), tmp_path / "bad_gt.nii.gz")
    with pytest.raises(ValueError, match="shape"):
        LoadLVSliced()({"image": str(tmp_path / "patient001_frame01.nii.gz"), "label": str(tmp_path / "bad_gt.nii.gz"),
                        "slice": 0})


def test_bad_input(items, tmp_path):
    few = tmp_path / "IM-0001-0001-icontour-manual.txt"
    few.write_text("1.0 2.0\n3.0 4.0\n")
    with pytest.raises(ValueError, match=r"IM-0001-0001.*2 point"):
        read_contour(few)
    junk = tmp_path / "junk.txt"
    junk.write_text("1.0 2.0\n3.0 four\n5 6\n")
    with pytest.raises(ValueError, match=r"junk.txt, line 2"):
        read_contour(junk)
    ds = pydicom.dcmread(items[0]["image"])
    del ds.PixelData
    nopix = tmp_path / "nopix.dcm"
    ds.save_as(nopix)
    with pytest.raises(ValueError, match=r"nopix.dcm has no pixel data"):
        read_dicom_slice(nopix)
    notdcm = tmp_path / "text.dcm"
    notdcm.write_text("not a dicom")
    with pytest.raises(ValueError, match="text.dcm"):
        read_dicom_slice(notdcm)


def test_missing_files_are_named(sunnybrook_dir, tmp_path):
    root = tmp_path / "sb"
    shutil.copytree(sunnybrook_dir, root)
    (root / "dicoms" / "SCD0000101" / "48.dcm").unlink()
    with pytest.raises(FileNotFoundError, match=r"IM-0001-0048-icontour-manual.txt has no matching DICOM.*48.dcm"):
        load_sunnybrook_datalist(root)
    with pytest.raises(FileNotFoundError, match="link.csv"):
        SunnybrookSource(tmp_path / "nowhere")


def test_annotation_file_slices_equal_the_datalist_slices(tmp_path, sunnybrook_dir, items):
    """simulate -> file -> lv_slices: the same images, masks and split as the Sunnybrook datalist; the 10 masked
    training slices are the telescopic subset EDPCNN used to draw; the recorded clicks, moved by the crop, are the
    masks' centroids (to the file's 3 decimals), and a hand-moved click is honoured."""
    from weakseg.annotations import dataset_sections, load_weak_annotations, simulate_weak_annotations
    from weakseg.data import crop_offset, telescopic_subset

    sections, labels = dataset_sections(sunnybrook_dir, (0.5, 0.25, 0.25), 0)
    desc = simulate_weak_annotations(sections, sunnybrook_dir, labels, kinds=["centre"], num_masks=10,
                                     mask_unit="slice", out=tmp_path / "lv.json")
    ann = load_weak_annotations(tmp_path / "lv.json", dataset_dir=sunnybrook_dir)
    split = split_by_patient(items, (0.5, 0.25, 0.25), 0)
    assert [c["id"] for c in ann.splits["test"]] == [it["id"] for it in split["test"]]
    masked = [c["id"] for c in ann.splits["train"] if c["slices"][0]["mask"]]
    assert masked == [it["id"] for it in telescopic_subset(split["train"], 10, seed=0)]

    ref = lv_slices(split["test"], (160, 160))
    got = lv_slices(ann.splits["test"], (160, 160), centres="file")
    assert len(got) == len(ref) == 18
    for a, b in zip(got, ref):
        assert a["id"] == b["id"] and torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert a["centre"].tolist() == pytest.approx(b["centre"].tolist(), abs=1e-3)
    # a click moved by hand by (+5, -7) pixels moves the centre by the same amount
    case = dict(ann.splits["test"][0], slices=[dict(ann.splits["test"][0]["slices"][0])])
    r, c = case["slices"][0]["centre"]
    case["slices"][0]["centre"] = (r + 5, c - 7)
    (moved,) = lv_slices([case], (160, 160), centres="file")
    assert moved["centre"].tolist() == pytest.approx([float(ref[0]["centre"][0]) + 5, float(ref[0]["centre"][1]) - 7], abs=1e-3)
    assert crop_offset((256, 256), (160, 160)) == (-48, -48) and crop_offset((150, 151), (160, 160)) == (5, 4)
    assert desc["test"][0]["centre"] == pytest.approx([r, c])
