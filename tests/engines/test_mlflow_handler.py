import torch
from ignite.engine import Engine
from mlflow import MlflowClient
from monai.handlers import CheckpointSaver, StatsHandler

from weakseg.engines import MLflowRunHandler, flatten_config_params


def _engine(fail_at: int):
    net = torch.nn.Linear(2, 1)

    def step(engine, batch):
        if engine.state.iteration == fail_at:
            raise RuntimeError("boom at iteration %d" % fail_at)
        return {"loss": torch.tensor(float(engine.state.iteration))}

    return Engine(step), net


def test_crash_marks_run_failed_and_keeps_checkpoint(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    engine, net = _engine(fail_at=5)
    (tmp_path / "art.txt").write_text("partial")
    MLflowRunHandler(tracking_uri=uri, experiment_name="e", run_name="r1", tags={"data": "real"},
                     artifacts=[str(tmp_path / "art.txt")], output_transform=lambda o: o["loss"],
                     close_on_complete=True).attach(engine)
    CheckpointSaver(save_dir=str(tmp_path / "ckpt"), save_dict={"model": net}, save_final=True,
                    final_filename="final.pt").attach(engine)
    StatsHandler(iteration_log=False).attach(engine)
    try:
        engine.run(range(3), max_epochs=3)
        raise AssertionError("engine should have raised")
    except RuntimeError as e:
        assert "boom" in str(e)
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("e").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["data"] == "real"
    assert "art.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert (tmp_path / "ckpt" / "final.pt").exists()  # the checkpoint handler after it still ran


def test_exception_reraised_when_alone(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    engine, _ = _engine(fail_at=2)
    MLflowRunHandler(tracking_uri=uri, experiment_name="e", run_name="r2",
                     output_transform=lambda o: o["loss"]).attach(engine)
    try:
        engine.run(range(3), max_epochs=1)
        raise AssertionError("exception swallowed")
    except RuntimeError:
        pass
    client = MlflowClient(tracking_uri=uri)
    assert client.search_runs([client.get_experiment_by_name("e").experiment_id])[0].info.status == "FAILED"


def test_success_finished(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    engine, _ = _engine(fail_at=-1)
    MLflowRunHandler(tracking_uri=uri, experiment_name="e", run_name="ok", output_transform=lambda o: o["loss"],
                     close_on_complete=True).attach(engine)
    engine.run(range(3), max_epochs=2)
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("e").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "Loss")] == [1, 2, 3, 4, 5, 6]


def test_flatten_config_params():
    cfg = {"lr": 0.01, "net": {"_target_": "UNet", "channels": [8, 16]}, "opt": {"lr": "@lr"},
           "dev": "$torch.device('cpu')", "skip": {"a": 1}, "tfms": [{"_target_": "X"}]}
    p = flatten_config_params(cfg, skip=["skip"])
    assert p == {"lr": "0.01", "net._target_": "UNet", "net.channels": "[8, 16]", "opt.lr": "0.01",
                 "dev": "$torch.device('cpu')"}
