import pytest

from .test_train_bundle import run_bundle


@pytest.fixture(scope="session")
def trained(tmp_path_factory, hippo_dir):
    """A checkpoint of the bundle network trained for 2 epochs on 10 real volumes (shared by the bundle tests)."""
    root = tmp_path_factory.mktemp("trained")
    proc = run_bundle(root, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "2",
                      "--max_train_volumes", "10", "--max_val_volumes", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "output" / "supervised" / "models" / "model.pt"
