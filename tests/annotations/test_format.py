"""The weak-annotation file format: every bad entry is refused before training, naming the file, case and field."""

import json
import math

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from weakseg.annotations import AnnotationError, load_weak_annotations, schema_path


def _data(root):
    """A 3D volume (10 x 20 x 16, spacing 2 x 0.5 x 0.5 mm) and a 2D PNG (24 x 30)."""
    (root / "images").mkdir(exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    aff = np.diag([2.0, 0.5, 0.5, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((10, 20, 16), np.float32), aff), str(root / "images" / "vol.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((10, 20, 16), np.uint8), aff), str(root / "labels" / "vol.nii.gz"))
    Image.fromarray(np.zeros((24, 30), np.uint8)).save(root / "images" / "xray.png")


def _good():
    return {
        "labels": {"0": "background", "1": "head", "2": "body"},
        "training": [
            {"id": "vol", "image": "images/vol.nii.gz", "label": "labels/vol.nii.gz", "slices": [
                {"index": 3, "size": 6, "boxes": [{"class": 1, "start": [2, 3], "end": [10, 12]},
                                                  {"class": "body", "start": [0, 0], "end": [20, 16]}],
                 "classes": ["head", 2], "centre": [5.5, 7.0], "mask": True},
                {"index": 4, "size_mm": 3.0}]},
            {"id": "xray", "image": "images/xray.png", "size": 8, "classes": [], "centre": [23, 29]},
        ],
        "validation": [{"id": "val", "image": "images/vol.nii.gz", "label": "labels/vol.nii.gz"}],
    }


def _write(tmp_path, desc):
    _data(tmp_path)
    f = tmp_path / "weak.json"
    f.write_text(json.dumps(desc) if not isinstance(desc, str) else desc)
    return f


def test_a_good_file_loads_with_names_resolved_and_mm_converted(tmp_path):
    ann = load_weak_annotations(_write(tmp_path, _good()))
    vol, xray = ann.cases("training")
    assert ann.name == "weak" and ann.labels == {0: "background", 1: "head", 2: "body"} and ann.num_classes == 3
    s3, s4 = vol["slices"]
    assert s3["boxes"] == [(1, (2, 3), (10, 12)), (2, (0, 0), (20, 16))] and s3["classes"] == [1, 2]
    assert s3["mask"] is True and s3["centre"] == (5.5, 7.0) and s3["size"] == 6.0
    assert s4["size"] == 6.0  # 3 mm / 0.5 mm in-plane spacing (axis 0 is the slice axis)
    assert xray["ndim"] == 2 and xray["slices"][0]["index"] is None and xray["slices"][0]["size"] == 8
    assert ann.splits["val"][0]["label"].endswith("vol.nii.gz")
    assert ann.kinds() == {"size", "boxes", "classes", "centre", "mask"}


def test_the_good_file_is_valid_under_the_json_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(_good(), schema)
    bad = _good()
    bad["training"][0]["slices"][0]["boxs"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def _set(path, value):
    def edit(d):
        obj = d
        for p in path[:-1]:
            obj = obj[p]
        if value is _DEL:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value
        return d
    return edit


_DEL = object()
S3 = ("training", 0, "slices", 0)
TEST_CASES = [
    ("negative size", _set(S3 + ("size",), -2), "case 'vol', slice 3, field 'size': expected a finite number >= 0"),
    ("nan size", _set(S3 + ("size",), math.nan), "case 'vol', slice 3, field 'size': expected a finite number"),
    ("size larger than the slice", _set(S3 + ("size",), 40), "field 'size': size 40 (40 px) is larger than any"),
    ("box outside", _set(S3 + ("boxes", 0, "end"), [21, 12]), "slice 3, field 'boxes'[0]: box [2, 3]-[21, 12] lies "
                                                               "outside the 20x16 slice"),
    ("box corners swapped", _set(S3 + ("boxes", 0), {"class": 1, "start": [10, 12], "end": [2, 3]}),
     "field 'boxes'[0]: start [10, 12] must be above-left of end [2, 3]"),
    ("box of an unknown class", _set(S3 + ("boxes", 0, "class"), 7), "field 'boxes'[0]: unknown class 7"),
    ("slice outside the volume", _set(S3 + ("index",), 10), "case 'vol', slice 10, field 'index': slice index 10 "
                                                           "outside the volume (axis 0 has 10 slices"),
    ("unknown class name", _set(S3 + ("classes",), ["tail"]), "case 'vol', slice 3, field 'classes': unknown class "
                                                              "'tail'"),
    ("background as a class", _set(S3 + ("classes",), [0]), "field 'classes': class 0 is the background"),
    ("centre outside", _set(("training", 1, "centre"), [24, 3]), "case 'xray', field 'centre': [24.0, 3.0] lies "
                                                                "outside the 24x30 slice"),
    ("missing image", _set(("training", 1, "image"), "images/nope.png"), "case 'xray', field 'image': file "
                                                                         "'images/nope.png' not found"),
    ("image not a string", _set(("training", 1, "image"), 3), "field 'image': expected a file path (string), got 3"),
    ("image outside the data folder", _set(("training", 1, "image"), "../xray.png"), "lies outside the data folder"),
    ("typo in a field", _set(S3 + ("boxs",), []), "case 'vol', slice 3, field 'boxs': unknown field"),
    ("mask without a label file", _set(("training", 1, "mask"), True), "case 'xray', field 'mask': the slice is "
                                                                        "marked as having a mask but the case has no"),
    ("size and size_mm", _set(("training", 1, "size_mm"), 4.0), "case 'xray', field 'size': give 'size' (pixels)"),
    ("mm without spacing", lambda d: _set(("training", 1, "size"), _DEL)(_set(("training", 1, "size_mm"), 4.0)(d)),
     "case 'xray', field 'size_mm': a size in mm needs the in-plane pixel spacing"),
    ("3D labels on the case", _set(("training", 0, "size"), 4), "case 'vol', field 'size': the image is a 3D volume"),
    ("validation case without mask", _set(("validation", 0, "label"), _DEL), "case 'val', field 'label': missing"),
    ("boxed class not listed", _set(S3 + ("classes",), [1]), "field 'classes': classes [2] have boxes but are not"),
]


@pytest.mark.parametrize("edit,message", [c[1:] for c in TEST_CASES], ids=[c[0] for c in TEST_CASES])
def test_bad_entries_are_refused_naming_case_and_field(tmp_path, edit, message):
    f = _write(tmp_path, edit(_good()))
    with pytest.raises(AnnotationError) as err:
        load_weak_annotations(f)
    assert str(f) in str(err.value) and message in str(err.value), str(err.value)


def test_duplicated_case_ids_invalid_json_and_other_datasets(tmp_path):
    dup = _good()
    dup["validation"][0]["id"] = "vol"
    with pytest.raises(AnnotationError, match=r"case 'vol' appears twice \(training\[0\] and validation\[0\]\)"):
        load_weak_annotations(_write(tmp_path, dup))
    with pytest.raises(AnnotationError, match=r"is not valid JSON: .* at line 1, column"):
        load_weak_annotations(_write(tmp_path, '{"training": [}'))
    # an annotation file for another dataset: its first case's image is named
    other = {"training": [{"id": "hippocampus_001", "image": "imagesTr/hippocampus_001.nii.gz", "slices": [
        {"index": 3, "size": 4}]}]}
    with pytest.raises(AnnotationError, match=r"case 'hippocampus_001', field 'image': file "
                                              r"'imagesTr/hippocampus_001.nii.gz' not found"):
        load_weak_annotations(_write(tmp_path, other))
    with pytest.raises(AnnotationError, match="'training' must be a non-empty list"):
        load_weak_annotations(_write(tmp_path, {"training": []}))


def test_a_method_refuses_a_file_without_the_kind_it_needs(tmp_path):
    desc = _good()
    desc["training"][0]["slices"][1] = {"index": 4, "boxes": [{"class": 1, "start": [0, 0], "end": [2, 2]}],
                                        "classes": [1]}
    ann = load_weak_annotations(_write(tmp_path, desc))
    with pytest.raises(AnnotationError, match=r"case 'vol', slice 4: the size method needs 'size' on every training "
                                              r"slice; this one has \['boxes', 'classes'\]"):
        ann.require("size", every_slice=["size"])
    with pytest.raises(AnnotationError, match="'labels' has 3 classes .* but the mlds network has num_classes=2"):
        ann.require("mlds", any_of=["mask", "boxes", "classes"], num_classes=2)
    ann.require("mlds", any_of=["mask", "boxes", "classes"], num_classes=3)
    desc["training"][0]["slices"][0]["mask"] = False
    with pytest.raises(AnnotationError, match=r"pre-training method needs \['mask'\] on some training slice"):
        load_weak_annotations(_write(tmp_path, desc)).require("pre-training", any_of=["mask"], where="some")
