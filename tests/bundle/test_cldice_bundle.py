"""train_cldice.json: MONAI's SoftDiceclDiceLoss (forward(input, target)) with hard clDice and Betti-error
validation metrics, through the MONAI bundle on real hippocampus volumes."""

import math

import pytest

from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def test_cldice_config_trains_and_logs_topology_metrics(tmp_path, hippo_dir):
    proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "2",
                      "--max_train_volumes", "6", "--max_val_volumes", "2", "--cldice_alpha", "0.3",
                      config=("train.json", "train_cldice.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.tags["method"] == "cldice_a0.3"
    assert run.data.params["cldice_alpha"] == "0.3"
    loss = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert loss and all(0.0 <= v <= 1.0 for v in loss)  # (1 - a) Dice loss + a clDice loss, both in [0, 1]
    for key, lo, hi in (("val_cldice", 0.0, 1.0), ("val_betti0_error", 0.0, math.inf),
                        ("val_betti1_error", 0.0, math.inf), ("val_mean_dice", 0.0, 1.0)):
        hist = client.get_metric_history(run.info.run_id, key)
        assert len(hist) == 2 and all(lo <= h.value <= hi for h in hist), key
