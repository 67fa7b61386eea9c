"""The checks of the MONAI model-zoo's CI (``ci/verify_bundle.py`` of Project-MONAI/model-zoo: required files,
version and changelog, metadata schema, ``check_properties``, ``verify_net_in_out``, ``ckpt_export`` + TorchScript
reload) as tests, the standalone inference/evaluation configs, and the bundle run from an installed wheel."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ..conftest import CONFIGS, REPO
from .test_train_bundle import mlflow_runs

BUNDLE = CONFIGS.parent
META = CONFIGS / "metadata.json"
SCHEMA = BUNDLE / "docs" / "meta_schema.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_required_files_version_and_changelog():
    import weakseg

    for f in ("configs/metadata.json", "LICENSE", "configs/inference.json", "configs/evaluate.json",
              "docs/README.md", "docs/data_license.txt"):
        assert (BUNDLE / f).is_file(), f
    meta = json.loads(META.read_text())
    assert meta["version"] in meta["changelog"]
    assert meta["required_packages_version"]["monai-weakseg"] == weakseg.__version__
    assert meta["optional_packages_version"] == meta["required_packages_version"]
    readme = (BUNDLE / "docs" / "README.md").read_text()
    for section in ("# Model overview", "# Data", "# Training configuration", "# Performance",
                    "# MONAI Bundle Commands", "# References", "# License"):
        assert section in readme, section


def test_metadata_is_valid_under_the_bundle_schema(tmp_path):
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(META), filepath=str(SCHEMA))  # the file exists: nothing is downloaded
    # measured figures, not a pointer to a document
    assert all(isinstance(v, float) for v in json.loads(META.read_text())["eval_metrics"].values())
    # the schema can fail: what the published one refused before is refused here too
    for change in ({"optional_packages_version": None}, {"eval_metrics": {"val_mean_dice": "see RESULTS.md"}}):
        meta = json.loads(META.read_text())
        meta.update(change)
        meta = {k: v for k, v in meta.items() if v is not None}
        bad = tmp_path / "metadata.json"
        bad.write_text(json.dumps(meta))
        with pytest.raises(ValueError):
            verify_metadata(meta_file=str(bad), filepath=str(SCHEMA))


@pytest.mark.parametrize("workflow,configs", [
    ("train", ["train.json"]),
    ("infer", ["inference.json"]),
    ("infer", ["evaluate.json"]),
    ("infer", ["evaluate.json", "train.json", "train_thesis.json"]),
    ("infer", ["inference.json", "train.json", "train_thesis.json"]),
])
def test_check_properties(workflow, configs, tmp_path, hippo_dir):
    """MONAI's property check of each workflow type, alone and composed (the model-zoo runs the inference one)."""
    from monai.bundle import ConfigWorkflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wf = ConfigWorkflow(config_file=[str(CONFIGS / c) for c in configs], meta_file=str(META),
                            workflow_type=workflow, bundle_root=str(tmp_path), dataset_dir=str(hippo_dir),
                            download=False, max_train_volumes=2, max_val_volumes=1,
                            input_dir=str(hippo_dir / "imagesTs"))
        wf.initialize()
        assert wf.check_properties() == []


def test_net_in_out_export_and_torchscript_reload(tmp_path, trained):
    """verify_net_in_out and ckpt_export on the standalone inference.json, as the model-zoo CI runs them."""
    from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verify_net_in_out(net_id="network_def", meta_file=str(META), config_file=str(CONFIGS / "inference.json"),
                          bundle_root=str(tmp_path))
        ts = tmp_path / "model.ts"
        ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(trained), meta_file=str(META),
                    config_file=str(CONFIGS / "inference.json"), bundle_root=str(tmp_path))
    scripted = torch.jit.load(str(ts))
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(trained, weights_only=True))
    net.eval()
    x = torch.randn(3, 1, 48, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


def test_training_publishes_its_best_weights_at_bundle_root(trained):
    """The model-zoo layout: <bundle_root>/models/model.pt holds the run's best weights after training."""
    published = trained.parents[3] / "models" / "model.pt"
    assert published.is_file() and _sha(published) == _sha(trained)


def _run(cwd: Path, *args: str, python: str = sys.executable, env: dict | None = None) -> subprocess.CompletedProcess:
    env = env if env is not None else {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([python, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def _predict_reference(model_pt: Path, image: Path) -> np.ndarray:
    """The bundle's inference done by hand: z-score, 48x32 sliding windows over axis-0 slices, sigmoid > 0.5."""
    from monai.inferers import SliceInferer
    from monai.networks.nets import UNet
    from monai.transforms import LoadImage, NormalizeIntensity

    net = UNet(2, 1, 1, (32, 64, 128, 256), (2, 2, 2), num_res_units=2)
    net.load_state_dict(torch.load(model_pt, weights_only=True))
    net.eval()
    img = NormalizeIntensity()(LoadImage(image_only=True, ensure_channel_first=True)(str(image)))
    inferer = SliceInferer(roi_size=(48, 32), sw_batch_size=512, overlap=0.25, spatial_dim=0)
    with torch.no_grad():
        logits = inferer(torch.as_tensor(img)[None].float(), net)
    return (torch.sigmoid(logits) > 0.5)[0, 0].numpy()


def test_standalone_inference_and_evaluation_of_models_model_pt(tmp_path, hippo_dir, small_hippo, trained):
    """Model-zoo style: ``run`` (the default id) of inference.json / evaluate.json alone, weights read by
    CheckpointLoader from <bundle_root>/models/model.pt; a missing model is a clear error before any work."""
    import nibabel as nib

    root = tmp_path / "bundle_root"
    (root / "models").mkdir(parents=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = sorted(p.name for p in (hippo_dir / "imagesTs").glob("*.nii.gz"))[:2]
    for n in names:
        (inputs / n).symlink_to(hippo_dir / "imagesTs" / n)

    missing = _run(REPO, "monai.bundle", "run", "--config_file", str(CONFIGS / "inference.json"),
                   "--bundle_root", str(root), "--input_dir", str(inputs))
    assert missing.returncode != 0 and "train a model first" in missing.stderr and "--ckpt_path" in missing.stderr
    assert not (root / "predictions").exists() or not any((root / "predictions").iterdir())

    shutil.copy(trained, root / "models" / "model.pt")
    proc = _run(REPO, "monai.bundle", "run", "--config_file", str(CONFIGS / "inference.json"),
                "--bundle_root", str(root), "--input_dir", str(inputs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for n in names:
        out = nib.load(root / "predictions" / n.replace(".nii.gz", "_seg.nii.gz"))
        src = nib.load(inputs / n)
        assert out.shape == src.shape and np.allclose(out.affine, src.affine)
        np.testing.assert_array_equal(np.asanyarray(out.dataobj) > 0, _predict_reference(trained, inputs / n))

    ev = _run(REPO, "monai.bundle", "run", "--config_file", str(CONFIGS / "evaluate.json"),
              "--bundle_root", str(root), "--dataset_dir", str(small_hippo), "--eval_split", "all")
    assert ev.returncode == 0, ev.stderr[-3000:]
    res = json.loads((root / "eval_all" / "metrics.json").read_text())
    assert len(res["per_case"]) == 16 and {"dice", "iou", "hd95_mm"} <= set(res["metrics"])
    _, runs = mlflow_runs(root / "output" / "mlruns.db")
    assert runs[0].info.status == "FINISHED" and runs[0].data.metrics["all_dice"] == pytest.approx(res["metrics"]["dice"])


@pytest.mark.integration
def test_wheel_runs_the_bundle_from_an_empty_folder(tmp_path, hippo_dir):
    """`pip wheel` -> a fresh venv without the source tree -> `python -m weakseg.bundle` finds the packaged bundle
    -> one training epoch (with MONAI's --tracking mlflow) and one standalone inference from an empty folder.
    The MLflow run holds resolved params only and one train_loss value per iteration."""
    wheels = tmp_path / "wheels"
    b = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(wheels), str(REPO)], capture_output=True, text=True, timeout=600)
    assert b.returncode == 0, b.stderr[-3000:]
    wheel = next(wheels.glob("monai_weakseg-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site = next(venv.glob("lib/python*/site-packages"))
    i = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert i.returncode == 0, i.stderr[-3000:]
    # the dependencies (torch, MONAI, ...) come from this environment's site-packages, added as a plain path: its
    # .pth files (the editable install of the source tree among them) are not processed
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir() and not p.startswith(str(venv))]
    (site / "_deps.pth").write_text("\n".join(deps) + "\n")
    py = str(venv / "bin" / "python")
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}

    where = _run(work, "weakseg.bundle", python=py, env=env)
    assert where.returncode == 0, where.stderr[-2000:]
    bundle = Path(where.stdout.strip())
    assert bundle.is_relative_to(site) and (bundle / "configs" / "train.json").is_file()

    tr = _run(work, "monai.bundle", "run", "training", "--config_file", str(bundle / "configs" / "train.json"),
              "--bundle_root", ".", "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "1",
              "--max_train_volumes", "3", "--max_val_volumes", "1", "--batch_size", "32", "--tracking", "mlflow",
              python=py, env=env)
    assert tr.returncode == 0, tr.stderr[-3000:]
    assert (work / "models" / "model.pt").is_file()
    one = sorted((hippo_dir / "imagesTs").glob("*.nii.gz"))[0]
    inf = _run(work, "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
               "--bundle_root", ".", "--input_dir", str(one), python=py, env=env)
    assert inf.returncode == 0, inf.stderr[-3000:]
    assert (work / "predictions" / one.name.replace(".nii.gz", "_seg.nii.gz")).is_file()

    client, runs = mlflow_runs(work / "output" / "mlruns.db")
    (run,) = runs
    assert run.info.status == "FINISHED"
    params = run.data.params
    bad = {k: v for k, v in params.items() if v.startswith("$") or "@" in v}
    assert not bad, bad
    assert params["device"] == "cpu" and params["output_dir"] == str(work / "output")
    assert "is_not_rank0" not in params and "save_execute_config" not in params
    history = client.get_metric_history(run.info.run_id, "train_loss")
    iterations = int(params["epoch_length"]) * int(params["max_epochs"])
    assert len(history) == iterations  # once per iteration, not once per handler
