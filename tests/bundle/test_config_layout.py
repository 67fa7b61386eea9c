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
        "validate#overlay": "weakseg.engines.OverlayHandler",
        "metrics_saver": "MetricsSaver",
        "montage_handler": "weakseg.engines.MontageHandler",
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
