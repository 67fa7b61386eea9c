"""Configs compose by name: no override addresses a list position, and the named pieces that method configs
override are what their names say."""

import json
import re

from ..conftest import CONFIGS

POSITIONAL = re.compile(r"(^|#)\d+(#|$)")


def _ids(node, prefix=""):
    """Every config id of a raw config, with ``#``-joined paths for the keys of nested dicts."""
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}#{k}" if prefix else k
            yield key
            yield from _ids(v, key)


def test_no_override_addresses_a_list_position():
    for path in sorted(CONFIGS.glob("*.json")):
        for key in json.loads(path.read_text()):
            assert not POSITIONAL.search(key.lstrip("+")), f"{path.name}: '{key}' overrides by list position"
    # the check itself: it would catch the old style
    assert POSITIONAL.search("train#handlers#3#save") and POSITIONAL.search("validate#handlers#1")
    assert not POSITIONAL.search("validate#checkpoint_saver#save_dict")


def test_overridden_names_point_at_the_intended_components():
    base = {}
    for name in ("inference.json", "evaluate.json", "train.json"):  # composition order: standalone first
        base.update(json.loads((CONFIGS / name).read_text()))
    expected = {
        "validate#checkpoint_saver": "CheckpointSaver",
        "validate#overlay": "weakseg.handlers.OverlayHandler",
        "metrics_saver": "MetricsSaver",
        "montage_handler": "weakseg.handlers.MontageHandler",
        "prediction_saver": "SaveImaged",
        "label_transform": "weakseg.transforms.MergeLabelsd",
        "preprocessing": "Compose",
    }
    for key, target in expected.items():
        node = base
        for part in key.split("#"):
            node = node[part]
        assert node["_target_"] == target, key
    # every dotted override of a method config names an id that the configs before it define
    known = set(_ids(base))
    for name in ("train_size.json", "train_mlds.json", "train_dp.json", "evaluate_dp.json", "inference_dp.json"):
        for key in json.loads((CONFIGS / name).read_text()):
            head = key.lstrip("+").rsplit("#", 1)[0]
            if "#" in key:
                assert head in known, f"{name}: '{key}' overrides inside '{head}', which no base config defines"


def test_size_matched_teacher_is_a_named_choice():
    """Size-matched fine-tuning proposes its masks from a copy taken each epoch (default) or, with
    --teacher_alpha 0.99 --teacher_event iteration, from an EMA teacher; the run is named after the choice."""
    from monai.bundle import ConfigParser

    def parsed(**overrides):
        p = ConfigParser()
        p.read_config([str(CONFIGS / c) for c in ("train.json", "train_size.json", "train_size_matched.json")])
        p["annotation_name"] = "m64_s0"
        for k, v in overrides.items():
            p[k] = v
        return p.get_parsed_content("teacher_handler"), p.get_parsed_content("method")

    (t, method), (ema, ema_method) = parsed(), parsed(teacher_alpha=0.99, teacher_event="iteration")
    assert (t.alpha, t.event, method) == (0.0, "epoch", "size_matched_m64_s0")
    assert (ema.alpha, ema.event, ema_method) == (0.99, "iteration", "size_matched_ema0.99_m64_s0")


def test_size_baseline_configs_swap_only_the_size_loss(small_hippo):
    """train_soft_size.json and train_size_bounds.json replace the size stage's loss and nothing else; the bounds'
    upper ratio is estimated from the validation masks."""
    from monai.bundle import ConfigParser

    from weakseg.losses import SizeBoundsLoss, SoftSizeLoss

    for extra, cls, method in (("train_soft_size.json", SoftSizeLoss, "soft_size_m64_s0"),
                               ("train_size_bounds.json", SizeBoundsLoss, "size_bounds_m64_s0")):
        p = ConfigParser()
        p.read_config([str(CONFIGS / c) for c in ("train.json", "train_size.json", extra)])
        p["dataset_dir"], p["download"], p["annotation_name"] = str(small_hippo), False, "m64_s0"
        p["splits"] = "$weakseg.data.split_by_volume(@msd.datalist(), fractions=@split_fractions, seed=@seed)"
        assert isinstance(p.get_parsed_content("loss"), cls) and p.get_parsed_content("method") == method
        if cls is SizeBoundsLoss:
            assert p.get_parsed_content("loss").upper_ratio > 1.0  # hippocampus slices are elongated: area > g²
