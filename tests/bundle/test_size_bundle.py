"""Two-stage size protocol through the bundle: simulate the annotation file (sizes on every training slice, 32
masks), pre-train on the masked slices, fine-tune with sizes only."""

import subprocess
import sys

import pytest
import torch

from ..conftest import REPO
from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def simulate(data_dir, out, *args):
    proc = subprocess.run([sys.executable, "-m", "weakseg.annotations", "simulate", "--dataset_dir", str(data_dir),
                           "--out", str(out), *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_pretrain_then_size_finetune(tmp_path, small_hippo):
    weak = simulate(small_hippo, tmp_path / "m32_s1.json", "--kinds", "size", "--num_masks", "32", "--mask_unit",
                    "slice", "--mask_seed", "1")
    common = ["--dataset_dir", str(small_hippo), "--download", "False", "--annotation_file", str(weak),
              "--max_val_volumes", "2"]
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
    assert pre_run.data.params["annotation_file"] == str(weak) and pre_run.data.params["epoch_length"] == "2"
    p = size_run.data.params
    assert p["num_samples"] == "2" and p["size_loss._target_"] == "weakseg.losses.SizeLoss"
    assert p["supervised_weight"] == "0.0" and p["noise_scale"] == "1.0"
    # params hold the resolved value of the expression, not its text
    assert p["pretrained_ckpt"] == str(tmp_path / "output" / "pretrain_m32_s1" / "models" / "model.pt")
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


def test_size_stage_rejects_mismatched_checkpoint(tmp_path, small_hippo):
    bad = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    weak = simulate(small_hippo, tmp_path / "weak.json", "--kinds", "size")
    proc = run_bundle(tmp_path, "--dataset_dir", str(small_hippo), "--download", "False", "--annotation_file",
                      str(weak), "--max_val_volumes", "1", "--pretrained_ckpt", str(bad),
                      config=("train.json", "train_size.json"))
    assert proc.returncode != 0
    assert "bad.pt' does not match the network UNet" in proc.stderr


def test_weak_methods_refuse_missing_or_unusable_annotation_files_before_training(tmp_path, small_hippo):
    size = ("train.json", "train_size.json")
    base = ("--dataset_dir", str(small_hippo), "--download", "False", "--max_val_volumes", "1")
    proc = run_bundle(tmp_path, *base, config=size)
    assert proc.returncode != 0 and "no annotation file: weak-supervision methods read" in proc.stderr
    assert "python -m weakseg.annotations simulate" in proc.stderr
    boxes = simulate(small_hippo, tmp_path / "boxes.json", "--kinds", "boxes,classes", "--box_fraction", "1")
    proc = run_bundle(tmp_path, *base, "--annotation_file", str(boxes), config=size)
    assert proc.returncode != 0
    assert "the size method needs 'size' on every training slice; this one has ['boxes', 'classes']" in proc.stderr
    proc = run_bundle(tmp_path, *base, "--annotation_file", str(boxes), config=("train.json", "pretrain.json"))
    assert proc.returncode != 0 and "pre-training method needs ['mask'] on some training slice" in proc.stderr
    # nothing was trained, and no run was left RUNNING
    assert not (tmp_path / "output" / "size_boxes_n1" / "models").exists()
    db = tmp_path / "output" / "mlruns.db"
    if db.exists():
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        assert all(r.info.status != "RUNNING" for r in runs)
