"""Resumable training: an atomic per-epoch checkpoint of network, optimizer, scheduler and trainer state."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

from weakseg.networks.utils import unwrap_parallel

__all__ = ["RandomStates", "ResumeHandler"]

logger = logging.getLogger("weakseg.engines")


class RandomStates:
    """The random generators of a training as one ``state_dict``: torch's CPU generator, the CUDA generators (when
    CUDA is initialised), NumPy's and Python's global generators, and those of ``sources`` (objects with
    ``state_dict``/``load_state_dict``, e.g. :class:`weakseg.engines.RandFlipBatch`). Saved in the resumable
    checkpoint, it makes a killed-and-resumed CPU training give the weights of an uninterrupted one bit for bit.
    Everything is stored as tensors and plain numbers, so the checkpoint loads with ``weights_only=True``.
    """

    def __init__(self, sources: Sequence[Any] = ()) -> None:
        self.sources = []
        for s in sources or ():
            if hasattr(s, "state_dict") and hasattr(s, "load_state_dict"):
                self.sources.append(s)
            else:  # no generator of its own: it draws from the global ones, which are saved
                logger.debug("RandomStates: %s has no state_dict; assumed to use the global generators", type(s).__name__)

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
            "sources": [s.state_dict() for s in self.sources],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        p = state["python"]
        random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss_next"]))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        for s, st in zip(self.sources, state.get("sources", [])):
            s.load_state_dict(st)


class ResumeHandler:
    """
    Attach to the trainer. After every ``save_interval`` epochs it writes ``<save_dir>/<filename>`` holding the
    state dicts of ``save_dict`` (network, optimizer, lr scheduler, …) **and of the trainer itself** (epoch,
    iteration), atomically (a crash mid-write leaves the previous file intact). With ``resume=True`` and the file
    present, the states are restored when the trainer starts, so the run continues at the next epoch up to the
    configured ``max_epochs``; without the file it starts from scratch and says so.

    List it after the ``ValidationHandler`` so that a saved epoch always has its validation logged; its loading
    runs first at start whatever the order. The trainer is added to the saved objects at ``attach`` time, so a bundle config needs no circular
    reference from a handler to its own trainer. Loading uses ``torch.load(..., weights_only=True)``.
    ``save=False`` only loads (the non-zero ranks of a distributed run). ``best_metric``: an object with
    ``state_dict``/``load_state_dict`` holding the validation's best-so-far state
    (:class:`weakseg.handlers.BestMetricState`), saved and restored with the rest, so that a resumed run's
    first validation does not count as a new best and overwrite a better ``model.pt``. A (Distributed)DataParallel network is
    saved as its module, so the file is the same with one process or many. ``random_state`` (default on): the
    random generators (:class:`RandomStates`, with those of ``random_sources``, e.g. the trainer's
    ``prepare_batch``) are saved and restored too, so a resumed run continues the random streams.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        resume: bool = False,
        filename: str = "checkpoint_last.pt",
        save_interval: int = 1,
        save: bool = True,
        best_metric: Any = None,
        random_state: bool = True,
        random_sources: Sequence[Any] = (),
    ) -> None:
        self.save_dir = Path(save_dir)
        # as MONAI's CheckpointSaver: store a (Distributed)DataParallel network's module, so that the checkpoint
        # loads into the plain network and resumes with any number of processes
        self.save_dict = {k: unwrap_parallel(v) for k, v in save_dict.items()}
        self.resume = bool(resume)
        self.filename = filename
        self.save_interval = int(save_interval)
        self.do_save = bool(save)
        self.best_metric = best_metric
        self.random_states = RandomStates(random_sources) if random_state else None

    @property
    def path(self) -> Path:
        return self.save_dir / self.filename

    def attach(self, engine: Engine) -> None:
        stale = self.path.with_name(self.path.name + ".tmp")
        if self.do_save and stale.is_file():  # left by a process killed mid-write: never a valid checkpoint
            logger.warning("removing %s, an incomplete checkpoint left by an interrupted run", stale)
            stale.unlink(missing_ok=True)
        self._saved_epoch = None
        self.to_save = {**self.save_dict, "trainer": engine}
        if self.best_metric is not None:
            self.to_save["best_metric"] = self.best_metric
        if self.random_states is not None:
            self.to_save["rng"] = self.random_states
        if self.do_save:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save)
        if self.resume:
            engine.add_event_handler(Events.STARTED, self.load)
            handlers = engine._event_handlers[Events.STARTED]  # load before anything else runs at start
            handlers.insert(0, handlers.pop())

    def save(self, engine: Engine) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            torch.save({k: v.state_dict() for k, v in self.to_save.items()}, tmp)
            os.replace(tmp, self.path)  # atomic: a kill mid-write leaves the previous checkpoint
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            at = f" (epoch {self._saved_epoch})" if self._saved_epoch else ""
            kept = f"the previous {self.path.name}{at} is kept" if self.path.is_file() else "no earlier checkpoint exists"
            raise OSError(f"could not write the resumable checkpoint {self.path} at epoch {engine.state.epoch} "
                          f"({type(e).__name__}: {e}); is the disk full? {kept}, the partial file was removed") from e
        self._saved_epoch = engine.state.epoch

    def load(self, engine: Engine) -> None:
        if not self.path.is_file():
            logger.warning("resume requested but %s does not exist: training from scratch", self.path)
            return
        max_epochs = engine.state.max_epochs  # the configured length wins over the saved one
        epoch_length = engine.state.epoch_length
        try:
            ckpt = torch.load(self.path, map_location="cpu", weights_only=True)
            to_load = dict(self.to_save)
            if "best_metric" in to_load and "best_metric" not in ckpt:
                logger.warning("%s holds no best-metric state (an older checkpoint): the first validation after "
                               "the resume counts as the best so far", self.path)
                to_load.pop("best_metric")
            if "rng" in to_load and "rng" not in ckpt:
                logger.warning("%s holds no random state (an older checkpoint): the resumed run draws other random "
                               "numbers than an uninterrupted one would", self.path)
                to_load.pop("rng")
            Checkpoint.load_objects(to_load=to_load, checkpoint=ckpt)
        except Exception as e:
            raise RuntimeError(f"cannot resume from '{self.path}': {e}") from e
        engine.state.max_epochs = max_epochs
        if epoch_length is not None and engine.state.epoch_length != epoch_length:
            raise RuntimeError(
                f"cannot resume from '{self.path}': it was written with {engine.state.epoch_length} iterations per "
                f"epoch and this run has {epoch_length} (another batch size, data or epoch length); resume with the "
                "settings of the interrupted run, or start a new run without --resume"
            )
        self._saved_epoch = engine.state.epoch
        logger.info("resumed from %s at epoch %d, iteration %d", self.path, engine.state.epoch, engine.state.iteration)
