"""Runs the real bundle command in a subprocess and reads the MLflow SQLite store back."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ..conftest import CONFIGS, REPO

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def run_bundle(workdir: Path, *args: str, config=("train.json",), run_id: str = "training", timeout: int = 600):
    configs = "[" + ",".join(f"'{CONFIGS / c}'" for c in config) + "]" if len(config) > 1 else str(CONFIGS / config[0])
    cmd = [
        sys.executable, "-m", "monai.bundle", "run", run_id,
        "--config_file", configs,
        "--meta_file", str(CONFIGS / "metadata.json"),
        "--logging_file", str(CONFIGS / "logging.conf"),
        "--bundle_root", str(workdir),
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def mlflow_runs(db: Path, experiment: str = "weakseg_hippocampus"):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment} in {db}"
    return client, client.search_runs([exp.experiment_id])


def test_training_on_real_volumes_logs_to_mlflow(tmp_path, hippo_dir):
    proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "2",
                      "--max_train_volumes", "6", "--max_val_volumes", "2", "--learning_rate", "0.002")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "output"
    client, runs = mlflow_runs(out / "mlruns.db")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["data"] == "real" and run.data.tags["method"] == "supervised"
    p = run.data.params
    assert p["learning_rate"] == "0.002" and p["optimizer.lr"] == "0.002"
    assert p["max_epochs"] == "2" and p["batch_size"] == "64"
    assert p["network_def.channels"] == "[32, 64, 128, 256]" and p["network_def.num_res_units"] == "2"
    assert p["min_foreground"] == "0.01" and p["spatial_size"] == "[48, 32]"
    for key in ("val_mean_dice", "val_mean_iou"):
        hist = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in hist) == [1, 2], key
        assert all(0.0 <= m.value <= 1.0 for m in hist)
    loss_hist = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(loss_hist) >= 2  # per iteration
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"val_overlays_best.png", "learning_curves.png", "model.pt", "executed_config.json"} <= arts
    png = Path(client.download_artifacts(run.info.run_id, "val_overlays_best.png", str(tmp_path / "dl")))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the best checkpoint is a plain state dict that loads safely
    sd = torch.load(out / "supervised" / "models" / "model.pt", weights_only=True)
    assert any(k.endswith("weight") for k in sd)


def test_no_data_trains_on_synthetic_phantom(tmp_path):
    root = tmp_path / "it's mine"  # a quote in the output path must not break the MLflow queries
    proc = run_bundle(root, "--dataset_dir", str(tmp_path / "nothing_here"), "--download", "False",
                      "--max_epochs", "1", "--max_train_volumes", "4", "--max_val_volumes", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SYNTHETIC" in proc.stdout + proc.stderr
    _, runs = mlflow_runs(root / "output" / "mlruns.db")
    assert runs[0].data.tags["data"] == "synthetic" and runs[0].info.status == "FINISHED"
    assert runs[0].info.run_name.startswith("supervised_synthetic_seed0_")


def test_bad_dataset_dir_fails_before_training(tmp_path):
    proc = run_bundle(tmp_path, "--dataset_dir", str(tmp_path / "nothing_here"), "--download", "False",
                      "--synthetic_fallback", "False")
    assert proc.returncode != 0
    assert "no dataset.json" in proc.stderr and "dataset_dir" in proc.stderr
    assert "Epoch" not in proc.stdout + proc.stderr
