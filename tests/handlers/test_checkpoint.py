"""Final checkpoints only from a state that trained; the best-metric state survives a resume."""

import hashlib

import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver

from weakseg.handlers import BestMetricState, TrainedCheckpointSaver


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failed_start_keeps_the_final_checkpoint_and_a_failed_epoch_writes_it(tmp_path):
    net = torch.nn.Linear(2, 1)

    def fail_at(when):
        def step(engine, batch):
            if engine.state.iteration == when:
                raise RuntimeError("boom")
            with torch.no_grad():
                net.weight.add_(1.0)
        return Engine(step)

    # reference behaviour, MONAI's saver: an exception at start replaces the file with the current weights
    (tmp_path / "model_final.pt").write_bytes(b"trained weights")
    monai_engine = fail_at(0)
    monai_engine.add_event_handler(Events.STARTED, lambda e: (_ for _ in ()).throw(RuntimeError("bad resume")))
    CheckpointSaver(str(tmp_path), {"model": net}, save_final=True, final_filename="model_final.pt").attach(monai_engine)
    with pytest.raises(RuntimeError, match="bad resume"):
        monai_engine.run([0, 1], max_epochs=1)
    assert (tmp_path / "model_final.pt").read_bytes() != b"trained weights"  # the fault

    (tmp_path / "model_final.pt").write_bytes(b"trained weights")
    before = _digest(tmp_path / "model_final.pt")
    engine = fail_at(0)
    engine.add_event_handler(Events.STARTED, lambda e: (_ for _ in ()).throw(RuntimeError("bad resume")))
    TrainedCheckpointSaver(str(tmp_path), {"model": net}, save_final=True, final_filename="model_final.pt").attach(engine)
    with pytest.raises(RuntimeError, match="bad resume"):
        engine.run([0, 1], max_epochs=1)
    assert _digest(tmp_path / "model_final.pt") == before

    # an exception after two completed iterations: the weights trained so far are saved (and the error re-raised)
    engine = fail_at(3)
    TrainedCheckpointSaver(str(tmp_path), {"model": net}, save_final=True, final_filename="model_final.pt").attach(engine)
    with pytest.raises(RuntimeError, match="boom"):
        engine.run([0, 1, 2, 3], max_epochs=1)
    saved = torch.load(tmp_path / "model_final.pt", weights_only=True)
    assert torch.equal(saved["weight"], net.weight.detach())


def test_best_metric_state_round_trip_keeps_a_worse_validation_from_replacing_the_best(tmp_path):
    net = torch.nn.Linear(2, 1)
    scores = iter([0.8, 0.5])

    def validator():
        ev = Engine(lambda e, b: None)
        ev.state.best_metric, ev.state.best_metric_epoch = -1, -1

        @ev.on(Events.EPOCH_COMPLETED)
        def _metric(e):
            e.state.metrics = {"dice": next(scores)}
        return ev

    ev = validator()
    saver = CheckpointSaver(str(tmp_path), {"model": net}, save_key_metric=True, key_metric_name="dice",
                            key_metric_filename="model.pt")
    saver.attach(ev)
    ev.run([0], max_epochs=1)  # dice 0.8: model.pt written
    ev.state.best_metric, ev.state.best_metric_epoch = 0.8, 1
    state = BestMetricState(ev, saver).state_dict()
    assert state["best_metric"] == 0.8 and state["best_metric_epoch"] == 1
    assert [p for p, _ in state["saved"]] == [0.8]  # ignite's name for model.pt, with its score
    torch.save({"best": state}, tmp_path / "ckpt.pt")  # loads with weights_only
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["best"]

    with torch.no_grad():
        net.weight.fill_(7.0)  # the "resumed" network has changed
    digest = _digest(tmp_path / "model.pt")
    ev2 = validator()
    saver2 = CheckpointSaver(str(tmp_path), {"model": net}, save_key_metric=True, key_metric_name="dice",
                             key_metric_filename="model.pt")
    saver2.attach(ev2)
    BestMetricState(ev2, saver2).load_state_dict(state)
    assert (ev2.state.best_metric, ev2.state.best_metric_epoch) == (0.8, 1)
    ev2.run([0], max_epochs=1)  # dice 0.5 < 0.8: model.pt stays the best one
    assert _digest(tmp_path / "model.pt") == digest
    with pytest.raises(ValueError, match="save_key_metric=False"):
        BestMetricState(ev2, CheckpointSaver(str(tmp_path), {"model": net}, save_final=True)).state_dict()
