"""ResumeHandler: a full disk while writing the resumable checkpoint keeps the previous one and says so; a
partial file left by a killed process is removed; the random generators are part of the checkpoint."""

import errno

import pytest
import torch
from ignite.engine import Engine

from weakseg.engines import RandFlipBatch, RandomStates, ResumeHandler


def _trainer(tmp_path, fail_at_epoch=None, **kw):
    net = torch.nn.Linear(2, 1)
    engine = Engine(lambda e, b: None)
    handler = ResumeHandler(tmp_path, {"model": net}, **kw)
    handler.attach(engine)
    real = torch.save

    def save(obj, f, *a, **k):  # an artificial ENOSPC after part of the file is written
        if engine.state.epoch == fail_at_epoch:
            with open(f, "wb") as out:
                out.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)

    return engine, handler, net, save


def test_disk_full_keeps_the_previous_checkpoint_and_names_it(tmp_path, monkeypatch):
    engine, handler, net, save = _trainer(tmp_path, fail_at_epoch=3)
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError) as err:
        engine.run(range(2), max_epochs=5)
    msg = str(err.value)
    assert str(tmp_path / "checkpoint_last.pt") in msg and "at epoch 3" in msg and "disk full" in msg
    assert "the previous checkpoint_last.pt (epoch 2) is kept" in msg
    assert not list(tmp_path.glob("*.tmp"))
    state = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert state["trainer"]["iteration"] // state["trainer"]["epoch_length"] == 2


def test_stale_partial_checkpoint_is_removed_at_start(tmp_path):
    (tmp_path / "checkpoint_last.pt.tmp").write_bytes(b"\0" * 100)
    _trainer(tmp_path)
    assert not (tmp_path / "checkpoint_last.pt.tmp").exists()


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    flips = RandFlipBatch(seed=3)
    flips.flip(torch.zeros(4, 1, 2, 2))  # the flip generator exists and has advanced
    states = RandomStates([flips])
    torch.save(states.state_dict(), tmp_path / "rng.pt")
    x = torch.arange(32.0).view(4, 1, 2, 4)
    first = (torch.rand(3), np.random.rand(2), random.random(), flips.flip(x)[0])
    states.load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(2), random.random(), flips.flip(x)[0])
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
    assert torch.equal(first[3], again[3])
