"""Two-stage size protocol through the bundle: pre-train on m annotated slices, fine-tune with sizes only."""

import torch

from .test_train_bundle import mlflow_runs, run_bundle


def test_pretrain_then_size_finetune(tmp_path, hippo_dir):
    common = ["--dataset_dir", str(hippo_dir), "--download", "False", "--max_train_volumes", "8",
              "--max_val_volumes", "2", "--num_annotated", "32", "--subset_seed", "1"]
    pre = run_bundle(tmp_path, *common, "--max_epochs", "2", "--samples_per_epoch", "128",
                     config=("train.json", "pretrain.json"))
    assert pre.returncode == 0, pre.stdout[-3000:] + pre.stderr[-3000:]
    ckpt = tmp_path / "output" / "pretrain_m32_s1" / "models" / "model.pt"
    assert ckpt.exists()
    size = run_bundle(tmp_path, *common, "--max_epochs", "2", "--num_samples", "2",
                      config=("train.json", "train_size.json"))
    assert size.returncode == 0, size.stdout[-3000:] + size.stderr[-3000:]

    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    by_method = {r.data.tags["method"]: r for r in runs}
    assert set(by_method) == {"pretrain_m32_s1", "size_m32_s1_n2"}
    pre_run, size_run = by_method["pretrain_m32_s1"], by_method["size_m32_s1_n2"]
    assert pre_run.info.status == size_run.info.status == "FINISHED"
    assert pre_run.data.params["num_annotated"] == "32" and pre_run.data.params["epoch_length"] == "2"
    p = size_run.data.params
    assert p["num_annotated"] == "32" and p["num_samples"] == "2" and p["size_loss._target_"] == "weakseg.losses.SizeLoss"
    assert p["supervised_weight"] == "0.0" and p["noise_scale"] == "1.0"
    assert p["pretrained_ckpt"].endswith("pretrain_m{}_s{}/models/model.pt'.format(@num_annotated or 'all', @subset_seed)")
    # E and IoU per epoch, epoch 0 being the pre-trained network
    e = client.get_metric_history(size_run.info.run_id, "val_size_error")
    iou = client.get_metric_history(size_run.info.run_id, "val_mean_iou")
    assert sorted(m.step for m in e) == [0, 1, 2] and sorted(m.step for m in iou) == [0, 1, 2]
    assert all(m.value >= 0 for m in e)
    assert "val_overlays_best.png" in {a.path for a in client.list_artifacts(size_run.info.run_id)}
    assert torch.load(tmp_path / "output" / "size_m32_s1_n2" / "models" / "model.pt", weights_only=True)

    # the variant that keeps the m masks: BCE on the annotated slices + sizes on all
    mixed = run_bundle(tmp_path, *common, "--max_epochs", "1", "--supervised_weight", "0.5",
                       config=("train.json", "train_size.json"))
    assert mixed.returncode == 0, mixed.stdout[-3000:] + mixed.stderr[-3000:]
    _, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    run = next(r for r in runs if r.data.tags["method"] == "size_m32_s1_n1_sw0.5")
    assert run.info.status == "FINISHED" and run.data.params["supervised_weight"] == "0.5"
    assert torch.load(tmp_path / "output" / "size_m32_s1_n1_sw0.5" / "models" / "model.pt", weights_only=True)

    # size-matched masks of a per-epoch snapshot instead of the paper's estimator, from the same checkpoint
    matched = run_bundle(tmp_path, *common, "--max_epochs", "2",
                         config=("train.json", "train_size.json", "train_size_matched.json"))
    assert matched.returncode == 0, matched.stdout[-3000:] + matched.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    run = next(r for r in runs if r.data.tags["method"] == "size_matched_m32_s1")
    assert run.info.status == "FINISHED"
    assert run.data.params["loss._target_"] == "weakseg.losses.SizeMatchedMaskLoss"
    assert run.data.params["loss.only_changed"] == "True"  # the default: no loss on slices already the right size
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_size_error")) == [0, 1, 2]
    assert torch.load(tmp_path / "output" / "size_matched_m32_s1" / "models" / "model.pt", weights_only=True)


def test_size_stage_training_items_hold_sizes_not_masks(hippo_dir):
    from monai.bundle import ConfigParser

    from weakseg.transforms import object_size

    from ..conftest import CONFIGS

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "train_size.json")])
    parser.update({"dataset_dir": str(hippo_dir), "download": False, "max_train_volumes": 2})
    items = parser.get_parsed_content("train#slices")
    assert items and all("label" not in d and d["size"].shape == (1,) for d in items)
    # the sizes are those of the masks the supervised config would have used
    parser2 = ConfigParser()
    parser2.read_config(str(CONFIGS / "train.json"))
    parser2.update({"dataset_dir": str(hippo_dir), "download": False, "max_train_volumes": 2})
    masks = torch.stack([torch.as_tensor(d["label"])[0] for d in parser2.get_parsed_content("train#slices")])
    assert torch.equal(torch.cat([d["size"] for d in items]), object_size(masks).float())


def test_mixed_supervision_keeps_exactly_the_pretraining_masks(hippo_dir):
    from monai.bundle import ConfigParser

    from ..conftest import CONFIGS

    def parsed(*configs, **over):
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / c) for c in configs])
        parser.update({"dataset_dir": str(hippo_dir), "download": False, "max_train_volumes": 3, "num_annotated": 20,
                       "subset_seed": 4, **over})
        return parser.get_parsed_content("train#slices")

    pre = parsed("train.json", "pretrain.json")
    items = parsed("train.json", "train_size.json", supervised_weight=1.0)
    flagged = [d for d in items if d["annotated"] == 1]
    assert len(pre) == len(flagged) == 20
    for a, b in zip(pre, flagged):  # the same slices, in order, with the same masks
        assert torch.equal(torch.as_tensor(a["image"]), torch.as_tensor(b["image"]))
        assert torch.equal(torch.as_tensor(a["label"]), torch.as_tensor(b["label"]))
    assert all(float(torch.as_tensor(d["label"]).abs().sum()) == 0 for d in items if d["annotated"] == 0)
    # sizes still come from the real masks of every slice
    assert sum(float(d["size"][0]) > 0 for d in items if d["annotated"] == 0) > 20


def test_size_stage_rejects_mismatched_checkpoint(tmp_path, hippo_dir):
    bad = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_train_volumes", "2",
                      "--max_val_volumes", "1", "--pretrained_ckpt", str(bad), config=("train.json", "train_size.json"))
    assert proc.returncode != 0
    assert "bad.pt' does not match the network UNet" in proc.stderr
