"""Training logs to a real MLflow tracking server (SQLite backend) over HTTP on a loopback port."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ..conftest import CONFIGS, REPO

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    proc = subprocess.Popen(
        [mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # bounded wait for start-up
            try:
                if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_training_logs_to_tracking_server(tmp_path, hippo_dir, mlflow_server):
    from mlflow import MlflowClient

    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(CONFIGS / "train.json"),
           "--bundle_root", str(tmp_path / "b"), "--dataset_dir", str(hippo_dir), "--download", "False",
           "--max_epochs", "1", "--max_train_volumes", "4", "--max_val_volumes", "2"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "b" / "output" / "mlruns.db").exists()  # nothing went to the local store
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.search_runs([client.get_experiment_by_name("weakseg_hippocampus").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.tags["data"] == "real"
    assert {"val_mean_dice", "val_mean_iou", "train_loss"} <= set(run.data.metrics)
    assert {"model.pt", "val_overlays_best.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
