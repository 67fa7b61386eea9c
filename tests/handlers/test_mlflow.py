import torch
from ignite.engine import Engine, Events
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
    # without resolved values: references to literals are followed, expressions left out
    assert p == {"lr": "0.01", "net._target_": "UNet", "net.channels": "[8, 16]", "opt.lr": "0.01"}


def test_flatten_config_params_logs_resolved_values_never_expressions():
    """With the values a real ConfigParser resolved: devices, paths, numbers from expressions; objects left out."""
    from monai.bundle import ConfigParser

    cfg = {"root": "/data", "out": "$@root + '/output'", "dev": "$torch.device('cpu')", "bs": 4,
           "lr": "$0.5 * 0.002", "net": {"_target_": "torch.nn.Linear", "in_features": "@bs", "out_features": 2},
           "model": "$@net.to(@dev)", "unused": "$1 + 1", "tfms": ["$@lr"], "imports": ["$import torch"]}
    parser = ConfigParser(cfg)
    parser.get_parsed_content("model")
    parser.get_parsed_content("out")
    parser.get_parsed_content("lr")
    p = flatten_config_params(parser.get(), resolved=parser.ref_resolver.resolved_content)
    assert p == {"root": "/data", "out": "/data/output", "dev": "cpu", "bs": "4", "lr": "0.001",
                 "net._target_": "torch.nn.Linear", "net.in_features": "4", "net.out_features": "2"}
    assert not any(v.startswith("$") or "@" in v for v in p.values())


def test_system_metrics_logged_while_the_run_is_open(tmp_path):
    """With psutil installed, the handler that closes the run samples MLflow's system metrics; the sampler stops
    with the run (a finished run gets no later points)."""
    import time

    import pytest

    pytest.importorskip("psutil")
    uri = f"sqlite:///{tmp_path}/mlruns.db"

    def step(engine, batch):
        time.sleep(0.6)
        return {"loss": torch.tensor(1.0)}

    engine = Engine(step)
    handler = MLflowRunHandler(tracking_uri=uri, experiment_name="e", run_name="r", close_on_complete=True,
                               output_transform=lambda o: o["loss"], system_metrics_interval=0.5)
    handler.attach(engine)
    engine.run(range(5), max_epochs=1)
    assert handler._monitor is None
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("e").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert "system/cpu_utilization_percentage" in run.data.metrics and "system/system_memory_usage_megabytes" in run.data.metrics
    n = len(client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage"))
    time.sleep(1.2)
    assert len(client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")) == n


def test_sigterm_and_ctrl_c_end_the_run_killed(tmp_path):
    """A real SIGTERM to this process mid-epoch (what a scheduler sends) and a Ctrl-C both end the run as KILLED,
    not FAILED or RUNNING; SIGTERM surfaces as SystemExit(143) after the handlers ran."""
    import os
    import signal

    import pytest

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        for name, interrupt in (("term", lambda: os.kill(os.getpid(), signal.SIGTERM)),
                                ("int", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))):
            def step(engine, batch, interrupt=interrupt):
                if engine.state.iteration == 3:
                    interrupt()
                return {"loss": torch.tensor(1.0)}

            engine = Engine(step)
            MLflowRunHandler(tracking_uri=uri, experiment_name="e", run_name=name, close_on_complete=True,
                             output_transform=lambda o: o["loss"], system_metrics=False).attach(engine)
            with pytest.raises((SystemExit, KeyboardInterrupt)) as err:
                engine.run(range(5), max_epochs=2)
            if name == "term":
                assert isinstance(err.value, SystemExit) and err.value.code == 143
            client = MlflowClient(tracking_uri=uri)
            run = client.search_runs([client.get_experiment_by_name("e").experiment_id],
                                     filter_string=f"attributes.run_name = '{name}'")[0]
            assert run.info.status == "KILLED", (name, run.info.status)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_unreachable_tracking_server_fails_fast_with_the_uri():
    import socket
    import time

    import pytest

    from weakseg.engines import check_tracking_uri

    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    t = time.monotonic()
    with pytest.raises(ConnectionError, match=f"MLflow tracking server {uri} is not reachable.*unset MLFLOW_TRACKING_URI"):
        check_tracking_uri(uri, timeout=2)
    assert time.monotonic() - t < 10
    assert check_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_tracking_outage_mid_run_never_stops_training(tmp_path):
    """The store fails for iterations 3-6: training goes on, the values are buffered with their steps and logged
    when it answers again; the run ends FINISHED with one value per iteration."""
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    engine = Engine(lambda e, b: {"loss": torch.tensor(float(e.state.iteration))})
    handler = MLflowRunHandler(tracking_uri=uri, experiment_name="e", run_name="r", close_on_complete=True,
                               output_transform=lambda o: o["loss"], tag_name="train_loss", epoch_log=False,
                               system_metrics=False, retry_interval=0)
    handler.attach(engine)
    real = None

    def flaky(*args, **kwargs):
        if 3 <= engine.state.iteration <= 6:
            raise ConnectionError("tracking server down")
        return real(*args, **kwargs)

    @engine.on(Events.STARTED)
    def _break_store(e):
        nonlocal real
        real = handler.client.log_batch
        handler.client.log_batch = flaky

    engine.run(range(5), max_epochs=2)
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("e").experiment_id])[0]
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(i, float(i)) for i in range(1, 11)]
