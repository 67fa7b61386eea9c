"""The override configs address handlers of train.json by list index: keep those indices pointing right."""

import json

from ..conftest import CONFIGS


def test_indexed_overrides_point_at_the_intended_handlers():
    base = json.loads((CONFIGS / "train.json").read_text())
    train = [h["_target_"] for h in base["train"]["handlers"]]
    val = [h["_target_"] for h in base["validate"]["handlers"]]
    targets = {"train": train, "validate": val}
    expected = {
        ("train_size.json", "train#handlers#2#exec_at_start"): "ValidationHandler",
        ("train_size.json", "validate#handlers#1#key_metric_negative_sign"): "CheckpointSaver",
        ("multi_gpu_train.json", "train#handlers#3#save"): "weakseg.engines.ResumeHandler",
    }
    for (cfg, key), target in expected.items():
        assert key in json.loads((CONFIGS / cfg).read_text()), (cfg, key)
        section, _, idx, _ = key.split("#")
        assert targets[section][int(idx)] == target, (cfg, key, targets[section])
