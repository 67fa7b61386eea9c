"""Simulate -> annotation file -> training slices, on real hippocampus cases: the file holds exactly the weak labels
of the masks, the configs build the same training data as the in-pipeline derivation did, and no mask of a weakly
labelled case is needed (or read)."""

import json

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from scipy import ndimage

from weakseg.annotations import dataset_sections, load_weak_annotations, read_label, simulate_weak_annotations
from weakseg.transforms import SliceVolume, object_size

from ..conftest import CONFIGS, small_msd_copy


def _simulate(data_dir, out, **kw):
    sections, labels = dataset_sections(data_dir)
    simulate_weak_annotations(sections, data_dir, labels, out=out, **kw)
    return load_weak_annotations(out, dataset_dir=data_dir)


def test_round_trip_sizes_boxes_classes_centres_equal_the_masks(tmp_path, small_hippo):
    ann = _simulate(small_hippo, tmp_path / "weak.json", kinds=("size", "boxes", "classes", "centre"), num_masks=3,
                    box_fraction=0.5, seed=1)
    sections, _ = dataset_sections(small_hippo)
    assert [c["image"] for c in ann.cases("training")] == [c["image"] for c in sections["training"]]
    assert [c["label"] for c in ann.splits["test"]] == [c["label"] for c in sections["test"]]
    n_box = n_mask = 0
    for case, item in zip(ann.cases("training"), sections["training"]):
        lab = read_label(item["label"])
        idx = SliceVolume(axis=0, min_foreground=0.01).slice_indices(lab[None])
        assert [r["index"] for r in case["slices"]] == idx  # the slices the supervised pipeline keeps
        masks = torch.from_numpy(lab[idx] > 0)
        assert torch.equal(torch.tensor([r["size"] for r in case["slices"]]), object_size(masks).double())
        has_mask = any(r["mask"] for r in case["slices"])
        assert ("label" in case) == has_mask  # only masked cases point at their label file
        n_mask += has_mask
        for r, k in zip(case["slices"], idx):
            sl = lab[k]
            assert r["classes"] == sorted(int(c) for c in np.unique(sl) if c > 0)
            rows, cols = np.nonzero(sl)
            assert r["centre"] == (round(float(rows.mean()), 3), round(float(cols.mean()), 3))
            if r["boxes"] is not None:
                found = ndimage.find_objects(sl)
                assert r["boxes"] == [(c + 1, tuple(s.start for s in b), tuple(s.stop for s in b))
                                      for c, b in enumerate(found) if b is not None]
                n_box += 1
    assert n_mask == 3 and n_box > 0


def _slices(data_dir, annotation_file, *configs, **over):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / c) for c in ("train.json", *configs)])
    parser.update({"dataset_dir": str(data_dir), "download": False, **over})
    if annotation_file is not None:
        parser["annotation_file"] = str(annotation_file)
    return parser.get_parsed_content("train#slices")


def _equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (torch.Tensor, np.ndarray, np.generic)):
        return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    return a == b


def test_configs_build_the_slices_the_in_pipeline_derivation_built(tmp_path, small_hippo):
    """The file path gives the same training data as the derivation from masks inside the pipeline did."""
    from weakseg.data import telescopic_subset, volumes_to_slices
    from weakseg.transforms import WeakAnnotationd, assign_annotations

    supervised = _slices(small_hippo, None)
    # size stage: one size per supervised slice, from the same mask
    f = tmp_path / "sizes.json"
    _simulate(small_hippo, f, kinds=("size",), num_masks=20, mask_unit="slice", seed=4)
    sized = _slices(small_hippo, f, "train_size.json")
    assert [d["case_id"] + str(d["slice_index"]) for d in sized] == [
        d["volume_id"].split("/")[-1][:-7] + str(d["slice_index"]) for d in supervised]
    masks = torch.stack([torch.as_tensor(d["label"])[0] for d in supervised])
    assert torch.equal(torch.cat([d["size"] for d in sized]), object_size(masks).float())
    assert all(set(d) >= {"image", "size"} and "label" not in d for d in sized)
    # pre-training: the telescopic subset of slices the pretrain config used to draw
    pre = _slices(small_hippo, f, "pretrain.json")
    ref = telescopic_subset(supervised, 20, seed=4)
    assert len(pre) == 20 and all(torch.equal(torch.as_tensor(a["image"]), torch.as_tensor(b["image"])) and
                                  torch.equal(torch.as_tensor(a["label"]), torch.as_tensor(b["label"]))
                                  for a, b in zip(pre, ref))
    mixed = _slices(small_hippo, f, "train_size.json", supervised_weight=1.0)
    flagged = [d for d in mixed if d["annotated"] == 1]
    assert len(flagged) == 20 and all(torch.equal(torch.as_tensor(a["label"]), torch.as_tensor(b["label"]))
                                      for a, b in zip(flagged, pre))
    assert all(float(torch.as_tensor(d["label"]).abs().sum()) == 0 for d in mixed if d["annotated"] == 0)
    # MLDS: masks, boxes and image labels as WeakAnnotationd made them from the masks of assign_annotations' cases
    g = tmp_path / "mlds.json"
    _simulate(small_hippo, g, num_masks=3, box_fraction=0.5, seed=0)
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "train_mlds.json")])
    parser.update({"dataset_dir": str(small_hippo), "download": False})
    parser["splits"] = "$weakseg.data.split_by_volume(@msd.datalist(), fractions=@split_fractions, seed=@seed)"
    vols = assign_annotations(parser.get_parsed_content("splits")["train"], 3, 0.5, seed=0)
    weak = WeakAnnotationd("label", num_classes=3)
    old = [weak(s) for s in volumes_to_slices(vols, parser.get_parsed_content("volume_transforms"))]
    new = _slices(small_hippo, g, "train_mlds.json")
    assert len(old) == len(new) and {d["annotation"] for d in new} == {0, 1, 2}
    for a, b in zip(old, new):
        assert a["annotation"] == b["annotation"]
        assert torch.equal(torch.as_tensor(a["label"]), torch.as_tensor(b["label"]))
        assert torch.equal(a["image_labels"], b["image_labels"])
        assert torch.equal(torch.as_tensor(a["image"]), torch.as_tensor(b["image"]))


def _batches_reaching_the_loss(bundle_root, data_dir, annotation_file, configs, iterations=3):
    """Run the method's trainer for a few iterations and record what reaches its loss function."""
    from monai.utils import set_determinism

    set_determinism(seed=0)
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / c) for c in ("train.json", *configs)])
    parser.update({"dataset_dir": str(data_dir), "download": False, "bundle_root": str(bundle_root),
                   "annotation_file": str(annotation_file), "max_epochs": 1, "max_val_volumes": 1,
                   "batch_size": 16, "pretrained_ckpt": str(bundle_root / "pre.pt")})
    torch.save(parser.get_parsed_content("network").state_dict(), bundle_root / "pre.pt")
    parser.get_parsed_content("initialize")  # set_determinism and, for fine-tuning, loading "pre.pt"
    trainer = parser.get_parsed_content("train#trainer")
    if "validate#early_stop" in parser:
        parser.get_parsed_content("validate#early_stop").set_trainer(trainer=trainer)
    seen = []
    loss = trainer.loss_function

    def recording(pred, target, *a, **k):
        seen.append(target.detach().clone() if isinstance(target, torch.Tensor) else
                    {k2: v.detach().clone() for k2, v in target.items()} if isinstance(target, dict) else
                    tuple(t.detach().clone() for t in target))
        return loss(pred, target, *a, **k)

    trainer.loss_function = recording
    trainer.state.epoch_length = iterations
    trainer.state.max_epochs = 1
    trainer.run()
    return seen


@pytest.mark.parametrize("configs,kw", [
    (("train_size.json",), dict(kinds=("size",), num_masks=20, mask_unit="slice", seed=4)),
    (("train_size.json", "train_size_matched.json"), dict(kinds=("size",), num_masks=20, mask_unit="slice", seed=4)),
    (("train_mlds.json",), dict(num_masks=3, box_fraction=0.5, seed=0)),
], ids=["size", "size_matched", "mlds_boxes_and_image_labels"])
def test_no_leakage_weak_methods_train_without_the_masks_of_weak_cases(tmp_path, small_hippo, configs, kw):
    full = small_msd_copy(tmp_path / "full")
    f = tmp_path / "weak.json"
    _simulate(full, f, **kw)
    pruned = small_msd_copy(tmp_path / "pruned")
    desc = json.loads(f.read_text())
    weak_cases = [c for c in desc["training"] if "label" not in c]
    for c in weak_cases:  # delete every mask of a weakly labelled case
        (pruned / "labelsTr" / f"{c['id']}.nii.gz").unlink()
    assert weak_cases and len(list((pruned / "labelsTr").iterdir())) < len(list((full / "labelsTr").iterdir()))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_masks = _batches_reaching_the_loss(tmp_path / "a", full, f, configs)
    without = _batches_reaching_the_loss(tmp_path / "b", pruned, f, configs)
    assert len(with_masks) == len(without) == 3
    assert _equal(with_masks, without)
